//! The change log that keeps several instances' caches and CRLs in step.
//!
//! Each instance appends an event after a change and polls for the others' events. Polling
//! works the same on SQLite and PostgreSQL; because PostgreSQL may commit ids out of
//! order, readers look back over a window of ids and skip those they have already seen.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use uuid::Uuid;

pub use crate::entity::events::Model as Event;
use crate::entity::events::{ActiveModel, Column, Entity as Events};
use crate::{StorageError, Store};

impl Store {
    /// Appends an event.
    pub async fn record_event(
        &self,
        origin: Uuid,
        kind: &str,
        subject: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        self.record_events(origin, kind, &[subject.to_owned()], now).await
    }

    /// Appends events of one kind, one per subject, in one transaction.
    pub async fn record_events(
        &self,
        origin: Uuid,
        kind: &str,
        subjects: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        if subjects.is_empty() {
            return Ok(());
        }
        let txn = self.write_txn().await?;
        in_commit_order(&txn).await?;
        for chunk in subjects.chunks(500) {
            Events::insert_many(chunk.iter().map(|subject| ActiveModel {
                origin: Set(origin),
                kind: Set(kind.to_owned()),
                subject: Set(subject.clone()),
                created_at: Set(now),
                ..Default::default()
            }))
            .exec(&txn)
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Events with an id above `after`, oldest first (at most `limit`).
    pub async fn events_after(&self, after: i64, limit: u64) -> Result<Vec<Event>, StorageError> {
        Ok(Events::find()
            .filter(Column::Id.gt(after))
            .order_by_asc(Column::Id)
            .limit(limit)
            .all(self.conn())
            .await?)
    }

    /// The newest event id (0 when there is none).
    pub async fn last_event_id(&self) -> Result<i64, StorageError> {
        let id: Option<i64> = Events::find()
            .select_only()
            .column(Column::Id)
            .order_by_desc(Column::Id)
            .into_tuple()
            .one(self.conn())
            .await?;
        Ok(id.unwrap_or(0))
    }

    /// Drops events older than `before`.
    pub async fn prune_events(&self, before: DateTime<Utc>) -> Result<(), StorageError> {
        Events::delete_many()
            .filter(Column::CreatedAt.lt(before))
            .exec(self.conn())
            .await?;
        Ok(())
    }
}

/// Makes event ids commit in the order they were taken. Readers look back over a window of
/// ids for rows that committed late; on PostgreSQL a transaction holding thousands of new
/// ids could commit after a later one and fall out of that window, so event writers take a
/// transaction-scoped advisory lock before taking ids (SQLite's write lock already does this).
async fn in_commit_order(txn: &sea_orm::DatabaseTransaction) -> Result<(), StorageError> {
    if crate::is_postgres(txn) {
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(726100117)")
            .await?;
    }
    Ok(())
}
