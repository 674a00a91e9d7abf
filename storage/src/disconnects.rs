//! The queue of live sessions to end: when a change invalidates a credential (a certificate
//! revoked, a key deactivated, a device disabled, …), [`crate::outbox::append`] stores a row in
//! the change's transaction; the workers of every instance lease due rows
//! ([`Store::lease_disconnects`]) and record which brokers confirmed
//! ([`Store::finish_disconnect`]).

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    Set,
};

use crate::audit::NewAudit;
pub use crate::entity::disconnects::Model as Disconnect;
use crate::entity::disconnects::{ActiveModel, Column, Entity as Disconnects};
use crate::{Page, StorageError, Store};

/// Waiting for (another) attempt.
pub const PENDING: &str = "pending";
/// Every configured broker confirmed.
pub const DONE: &str = "done";
/// Given up after the retry period.
pub const FAILED: &str = "failed";

/// How one attempt went.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Every broker confirmed.
    Done { brokers: Vec<String> },
    /// Some did; try the others again at `next_at`.
    Retry {
        brokers: Vec<String>,
        error: String,
        next_at: DateTime<Utc>,
    },
    /// Give up.
    GiveUp { brokers: Vec<String>, error: String },
}

static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Starts queueing disconnects (the process has brokers to tell; without any, changes queue
/// nothing).
pub fn enable() {
    ENABLED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Queues the disconnects of `records` that end sessions, in the caller's transaction.
pub(crate) async fn enqueue<C: ConnectionTrait>(
    txn: &C,
    records: &[NewAudit],
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let rows = rows(records, now);
    for chunk in rows.chunks(200) {
        Disconnects::insert_many(chunk.to_vec()).exec(txn).await?;
    }
    Ok(())
}

/// The rows `records` queue (none while no broker is told).
pub(crate) fn rows(records: &[NewAudit], now: DateTime<Utc>) -> Vec<ActiveModel> {
    if !ENABLED.load(std::sync::atomic::Ordering::Relaxed) {
        return Vec::new();
    }
    records
        .iter()
        .filter(|r| r.ends_sessions && !r.target_id.is_empty())
        .map(|r| ActiveModel {
            action: Set(r.action.clone()),
            target_kind: Set(r.target_kind.clone()),
            target_id: Set(r.target_id.clone()),
            enterprise: Set(r.enterprise.clone()),
            status: Set(PENDING.into()),
            attempts: Set(0),
            done_brokers: Set(String::new()),
            next_attempt_at: Set(now),
            lease_until: Set(None),
            last_error: Set(None),
            created_at: Set(now),
            done_at: Set(None),
            ..Default::default()
        })
        .collect()
}

fn truncate(s: &str) -> String {
    s.chars().take(500).collect()
}

impl Store {
    /// Leases up to `limit` due disconnects for `lease`; a row leased by another worker is
    /// skipped, so each is worked on by one at a time.
    pub async fn lease_disconnects(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u64,
    ) -> Result<Vec<Disconnect>, StorageError> {
        crate::lease::lease_due::<Disconnects>(self, Condition::all(), now, lease, limit).await
    }

    /// Records an attempt and releases the lease.
    pub async fn finish_disconnect(&self, id: i64, outcome: Outcome, now: DateTime<Utc>) -> Result<(), StorageError> {
        let current = Disconnects::find_by_id(id)
            .one(self.conn())
            .await?
            .ok_or(StorageError::NotFound)?;
        let attempts = current.attempts + 1;
        let mut model: ActiveModel = current.into();
        model.attempts = Set(attempts);
        model.lease_until = Set(None);
        match outcome {
            Outcome::Done { brokers } => {
                model.status = Set(DONE.into());
                model.done_brokers = Set(brokers.join(","));
                model.last_error = Set(None);
                model.done_at = Set(Some(now));
            }
            Outcome::Retry {
                brokers,
                error,
                next_at,
            } => {
                model.done_brokers = Set(brokers.join(","));
                model.last_error = Set(Some(truncate(&error)));
                model.next_attempt_at = Set(next_at);
            }
            Outcome::GiveUp { brokers, error } => {
                model.status = Set(FAILED.into());
                model.done_brokers = Set(brokers.join(","));
                model.last_error = Set(Some(truncate(&error)));
            }
        }
        model.update(self.conn()).await?;
        Ok(())
    }

    /// One page of disconnects (of one enterprise, one status), newest first.
    pub async fn list_disconnects(
        &self,
        enterprise: Option<&str>,
        status: Option<&str>,
        page: Page,
    ) -> Result<(Vec<Disconnect>, u64), StorageError> {
        let mut query = Disconnects::find();
        if let Some(e) = enterprise {
            query = query.filter(Column::Enterprise.eq(e));
        }
        if let Some(s) = status {
            query = query.filter(Column::Status.eq(s));
        }
        self.page_of(query, |q| q.order_by_desc(Column::Id), page).await
    }

    /// Counts disconnects by status (for the metrics).
    pub async fn count_disconnects(&self, status: &str) -> Result<u64, StorageError> {
        Ok(Disconnects::find()
            .filter(Column::Status.eq(status))
            .count(self.conn())
            .await?)
    }

    /// Drops done and failed disconnects created before `before`.
    pub async fn prune_disconnects(&self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        let done = Disconnects::delete_many()
            .filter(Column::Status.ne(PENDING))
            .filter(Column::CreatedAt.lt(before))
            .exec(self.conn())
            .await?;
        Ok(done.rows_affected)
    }
}

impl crate::lease::LeaseTable for Disconnects {
    const ID: Column = Column::Id;
    const STATUS: Column = Column::Status;
    const NEXT_ATTEMPT_AT: Column = Column::NextAttemptAt;
    const LEASE_UNTIL: Column = Column::LeaseUntil;
    const PENDING: &'static str = PENDING;
    fn id(row: &Disconnect) -> i64 {
        row.id
    }
    fn set_lease(row: &mut Disconnect, until: DateTime<Utc>) {
        row.lease_until = Some(until);
    }
}
