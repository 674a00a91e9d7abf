//! Webhook endpoints and their outbox.
//!
//! An event is stored in the transaction of the change it announces: [`crate::outbox::append`]
//! turns each audit record that names an event into one `webhook_deliveries` row per matching
//! endpoint. Senders of every instance lease due rows ([`Store::lease_deliveries`]), so each
//! row is sent by one of them at a time, and record each attempt
//! ([`Store::finish_delivery`]); a row is the event's delivery log for its endpoint.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

use crate::audit::NewAudit;
use crate::entity::certificates::{Column as CertColumn, Entity as Certificates};
pub use crate::entity::webhook_deliveries::Model as Delivery;
use crate::entity::webhook_deliveries::{ActiveModel as DeliveryModel, Column as DColumn, Entity as Deliveries};
pub use crate::entity::webhooks::Model as Webhook;
pub use events::{DELIVERED, FAILED, NewEvent, PENDING};
use events::{delivery, enqueue, event_id, payload};

pub mod events;
use crate::entity::webhooks::{ActiveModel, Column, Entity as Webhooks};
use crate::{Page, StorageError, Store};

/// What a webhook change sets (`None`: unchanged).
#[derive(Clone, Debug, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<String>,
    pub is_active: Option<bool>,
    pub secret_sealed: Option<Vec<u8>>,
}

/// How one delivery attempt went.
#[derive(Clone, Debug)]
pub enum Attempt {
    /// 2xx.
    Delivered { status: i32 },
    /// Try again at `next_at`.
    Retry {
        status: Option<i32>,
        error: String,
        next_at: DateTime<Utc>,
    },
    /// Give up.
    GiveUp { status: Option<i32>, error: String },
}

/// An expiry warning due for a certificate: the tightest of 30, 7 and 1 days it is within.
fn warning_due(not_after: DateTime<Utc>, now: DateTime<Utc>) -> Option<i32> {
    let left = not_after - now;
    [1, 7, 30].into_iter().find(|d| left <= Duration::days(i64::from(*d)))
}

impl Store {
    /// Creates an endpoint.
    pub async fn create_webhook(
        &self,
        webhook: Webhook,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<Webhook, StorageError> {
        let txn = self.write_txn().await?;
        let created = ActiveModel::from(webhook).insert(&txn).await?;
        crate::rows::commit_audited(txn, audit, now).await?;
        Ok(created)
    }

    /// How many endpoints an enterprise has (`None`: those of every enterprise).
    pub async fn count_webhooks(&self, enterprise: Option<&str>) -> Result<u64, StorageError> {
        let query = match enterprise {
            Some(e) => Webhooks::find().filter(Column::Enterprise.eq(e)),
            None => Webhooks::find().filter(Column::Enterprise.is_null()),
        };
        Ok(query.count(self.conn()).await?)
    }

    /// An endpoint by id.
    pub async fn webhook(&self, id: Uuid) -> Result<Webhook, StorageError> {
        Webhooks::find_by_id(id)
            .one(self.conn())
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// One page of endpoints (of one enterprise only, when `enterprise` is set), newest first.
    pub async fn list_webhooks(
        &self,
        enterprise: Option<&str>,
        page: Page,
    ) -> Result<(Vec<Webhook>, u64), StorageError> {
        let mut query = Webhooks::find();
        if let Some(e) = enterprise {
            query = query.filter(Column::Enterprise.eq(e));
        }
        self.page_of(
            query,
            |q| q.order_by_desc(Column::CreatedAt).order_by_asc(Column::Id),
            page,
        )
        .await
    }

    /// Changes an endpoint.
    pub async fn update_webhook(
        &self,
        id: Uuid,
        patch: WebhookPatch,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<Webhook, StorageError> {
        let change = |model: &mut ActiveModel| {
            if let Some(v) = patch.url {
                model.url = Set(v);
            }
            if let Some(v) = patch.description {
                model.description = Set(v);
            }
            if let Some(v) = patch.events {
                model.events = Set(v);
            }
            if let Some(v) = patch.is_active {
                model.is_active = Set(v);
            }
            if let Some(v) = patch.secret_sealed {
                model.secret_sealed = Set(v);
            }
            model.updated_at = Set(now);
        };
        self.update_audited(Webhooks::find_by_id(id), change, audit, now).await
    }

    /// Deletes an endpoint and its delivery log.
    pub async fn delete_webhook(&self, id: Uuid, audit: &[NewAudit], now: DateTime<Utc>) -> Result<(), StorageError> {
        let txn = self.write_txn().await?;
        // The audit head first: every audited change takes it before any row it then locks
        // (a delivery's foreign key locks its endpoint), so no two wait on each other.
        crate::outbox::append(&txn, audit, now).await?;
        Deliveries::delete_many()
            .filter(DColumn::WebhookId.eq(id))
            .exec(&txn)
            .await?;
        let done = Webhooks::delete_by_id(id).exec(&txn).await?;
        if done.rows_affected == 0 {
            return Err(StorageError::NotFound);
        }
        txn.commit().await?;
        Ok(())
    }

    /// Stores events that go with no other change (fleetca's own: a CRL publication that
    /// failed). Returns how many deliveries were queued.
    pub async fn enqueue_events(&self, events: &[NewEvent], now: DateTime<Utc>) -> Result<usize, StorageError> {
        let txn = self.write_txn().await?;
        let n = enqueue(&txn, events, now).await?;
        txn.commit().await?;
        Ok(n)
    }

    /// Queues `event` for one endpoint alone (its "send test event"), whatever it subscribes to.
    pub async fn enqueue_test(
        &self,
        webhook_id: Uuid,
        event: &NewEvent,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<Delivery, StorageError> {
        let txn = self.write_txn().await?;
        Webhooks::find_by_id(webhook_id)
            .one(&txn)
            .await?
            .ok_or(StorageError::NotFound)?;
        let row = delivery(webhook_id, &event_id(), event, &payload(event, now), now)
            .insert(&txn)
            .await?;
        crate::rows::commit_audited(txn, audit, now).await?;
        Ok(row)
    }

    /// Announces `certificate.expiring` for up to `limit` active certificates that came within
    /// 30, 7 or 1 days of expiry since their last warning: each threshold once per
    /// certificate (a certificate issued with 5 days left gets the 7-day warning, then the
    /// 1-day one). The warning is marked in the same transaction as its events, by a
    /// conditional update, so with several instances each is announced once. Returns how
    /// many certificates were warned about.
    pub async fn warn_expiring(&self, now: DateTime<Utc>, limit: u64) -> Result<usize, StorageError> {
        let txn = self.write_txn().await?;
        let candidates = Certificates::find()
            // The revocation canaries renew themselves; nobody is to be warned about them.
            .filter(CertColumn::Kind.ne("canary"))
            .filter(CertColumn::RevokedAt.is_null())
            .filter(CertColumn::SupersedeAt.is_null())
            .filter(CertColumn::NotAfter.gt(now))
            .filter(CertColumn::NotAfter.lte(now + Duration::days(30)))
            // Only those with a warning due: never warned, or past a tighter threshold.
            .filter(
                Condition::any()
                    .add(CertColumn::ExpiryWarned.is_null())
                    .add(
                        Condition::all()
                            .add(CertColumn::ExpiryWarned.gt(7))
                            .add(CertColumn::NotAfter.lte(now + Duration::days(7))),
                    )
                    .add(
                        Condition::all()
                            .add(CertColumn::ExpiryWarned.gt(1))
                            .add(CertColumn::NotAfter.lte(now + Duration::days(1))),
                    ),
            )
            .order_by_asc(CertColumn::NotAfter)
            .limit(limit)
            .all(&txn)
            .await?;
        let mut events = Vec::new();
        for c in candidates {
            let Some(days) = warning_due(c.not_after, now) else {
                continue;
            };
            if c.expiry_warned.is_some_and(|w| w <= days) {
                continue;
            }
            let marked = Certificates::update_many()
                .col_expr(CertColumn::ExpiryWarned, Expr::value(days))
                .filter(CertColumn::Id.eq(c.id))
                .filter(
                    Condition::any()
                        .add(CertColumn::ExpiryWarned.is_null())
                        .add(CertColumn::ExpiryWarned.gt(days)),
                )
                .exec(&txn)
                .await?;
            if marked.rows_affected == 0 {
                continue;
            }
            events.push(NewEvent {
                event_type: "certificate.expiring".into(),
                enterprise: Some(c.enterprise.clone()),
                data: json!({
                    "target": {"kind": "certificate", "id": c.id},
                    "enterprise": c.enterprise,
                    "days": days,
                    "expires_at": c.not_after,
                    "serial": c.serial,
                    "kind": c.kind,
                    "name": c.name,
                    "api_key_id": c.api_key_id,
                    "device": c.device,
                }),
            });
        }
        enqueue(&txn, &events, now).await?;
        txn.commit().await?;
        Ok(events.len())
    }

    /// Leases up to `limit` due deliveries for `lease` and returns them with their
    /// endpoints. A row leased by another sender is skipped, so each is sent by one.
    pub async fn lease_deliveries(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u64,
    ) -> Result<Vec<(Delivery, Webhook)>, StorageError> {
        // A paused endpoint's deliveries wait (pending) until it is resumed.
        let hooks = Webhooks::find()
            .filter(Column::IsActive.eq(true))
            .all(self.conn())
            .await?;
        if hooks.is_empty() {
            return Ok(Vec::new());
        }
        let active: Vec<Uuid> = hooks.iter().map(|h| h.id).collect();
        let leased = crate::lease::lease_due::<Deliveries>(
            self,
            Condition::all().add(DColumn::WebhookId.is_in(active)),
            now,
            lease,
            limit,
        )
        .await?;
        Ok(leased
            .into_iter()
            .filter_map(|d| {
                let hook = hooks.iter().find(|h| h.id == d.webhook_id)?.clone();
                Some((d, hook))
            })
            .collect())
    }

    /// Records an attempt and releases the lease, if this sender still holds it (`leased_until`,
    /// as [`Store::lease_deliveries`] returned it): a sender whose lease ran out while it
    /// posted records nothing, since another may have taken the row over. Returns whether it
    /// recorded.
    pub async fn finish_delivery(
        &self,
        id: i64,
        leased_until: Option<DateTime<Utc>>,
        attempt: Attempt,
        now: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        let mut update = Deliveries::update_many()
            .col_expr(DColumn::Attempts, Expr::col(DColumn::Attempts).add(1))
            .col_expr(DColumn::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .filter(DColumn::Id.eq(id))
            .filter(DColumn::Status.eq(PENDING));
        update = match leased_until {
            Some(lease) => update.filter(DColumn::LeaseUntil.eq(lease)),
            None => update.filter(DColumn::LeaseUntil.is_null()),
        };
        update = match attempt {
            Attempt::Delivered { status } => update
                .col_expr(DColumn::Status, Expr::value(DELIVERED))
                .col_expr(DColumn::LastStatus, Expr::value(status))
                .col_expr(DColumn::LastError, Expr::value(Option::<String>::None))
                .col_expr(DColumn::DeliveredAt, Expr::value(now)),
            Attempt::Retry { status, error, next_at } => update
                .col_expr(DColumn::LastStatus, Expr::value(status))
                .col_expr(DColumn::LastError, Expr::value(truncate(&error)))
                .col_expr(DColumn::NextAttemptAt, Expr::value(next_at)),
            Attempt::GiveUp { status, error } => update
                .col_expr(DColumn::Status, Expr::value(FAILED))
                .col_expr(DColumn::LastStatus, Expr::value(status))
                .col_expr(DColumn::LastError, Expr::value(truncate(&error))),
        };
        Ok(update.exec(self.conn()).await?.rows_affected == 1)
    }

    /// One page of an endpoint's deliveries, newest first.
    pub async fn list_deliveries(
        &self,
        webhook_id: Uuid,
        status: Option<&str>,
        page: Page,
    ) -> Result<(Vec<Delivery>, u64), StorageError> {
        let mut query = Deliveries::find().filter(DColumn::WebhookId.eq(webhook_id));
        if let Some(s) = status {
            query = query.filter(DColumn::Status.eq(s));
        }
        self.page_of(query, |q| q.order_by_desc(DColumn::Id), page).await
    }

    /// One delivery of an endpoint.
    pub async fn delivery(&self, webhook_id: Uuid, id: i64) -> Result<Delivery, StorageError> {
        Deliveries::find_by_id(id)
            .filter(DColumn::WebhookId.eq(webhook_id))
            .one(self.conn())
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// Queues a delivery again now (one that failed, or one still waiting for its next try).
    /// Its retry period still counts from when the event was stored: one that failed gets
    /// one more attempt.
    pub async fn redeliver(
        &self,
        webhook_id: Uuid,
        id: i64,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<Delivery, StorageError> {
        let txn = self.write_txn().await?;
        let current = Deliveries::find_by_id(id)
            .filter(DColumn::WebhookId.eq(webhook_id))
            .one(&txn)
            .await?
            .ok_or(StorageError::NotFound)?;
        let mut model: DeliveryModel = current.into();
        model.status = Set(PENDING.into());
        model.next_attempt_at = Set(now);
        let row = model.update(&txn).await?;
        crate::rows::commit_audited(txn, audit, now).await?;
        Ok(row)
    }

    /// Counts deliveries by status (for the metrics).
    pub async fn count_deliveries(&self, status: &str) -> Result<u64, StorageError> {
        Ok(Deliveries::find()
            .filter(DColumn::Status.eq(status))
            .count(self.conn())
            .await?)
    }

    /// Drops delivered and failed deliveries created before `before`.
    pub async fn prune_deliveries(&self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        let done = Deliveries::delete_many()
            .filter(DColumn::Status.ne(PENDING))
            .filter(DColumn::CreatedAt.lt(before))
            .exec(self.conn())
            .await?;
        Ok(done.rows_affected)
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(500).collect()
}

impl crate::lease::LeaseTable for Deliveries {
    const ID: DColumn = DColumn::Id;
    const STATUS: DColumn = DColumn::Status;
    const NEXT_ATTEMPT_AT: DColumn = DColumn::NextAttemptAt;
    const LEASE_UNTIL: DColumn = DColumn::LeaseUntil;
    const PENDING: &'static str = PENDING;
    fn id(row: &Delivery) -> i64 {
        row.id
    }
    fn set_lease(row: &mut Delivery, until: DateTime<Utc>) {
        row.lease_until = Some(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tightest_threshold_is_due() {
        let now = Utc::now();
        assert_eq!(warning_due(now + Duration::days(40), now), None);
        assert_eq!(warning_due(now + Duration::days(20), now), Some(30));
        assert_eq!(warning_due(now + Duration::days(5), now), Some(7));
        assert_eq!(warning_due(now + Duration::hours(3), now), Some(1));
    }
}
