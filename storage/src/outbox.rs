//! One outbox, written in the transaction of the change it records: the change's audit
//! records (hash-chained, see [`crate::audit`]), the webhook events they announce
//! ([`crate::webhooks::events`]) and the disconnects they need ([`crate::disconnects`]). No
//! change without them, none of them for a change that rolled back.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::audit::NewAudit;
use crate::{StorageError, Store};

/// Appends `entries` and what they announce, in the caller's transaction.
pub(crate) async fn append<C: ConnectionTrait>(
    txn: &C,
    entries: &[NewAudit],
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    if entries.is_empty() || crate::audit::disabled() {
        return Ok(());
    }
    let first = crate::audit::append_records(txn, entries, now).await?;
    let events: Vec<_> = entries
        .iter()
        .zip(first..)
        .filter_map(|(e, seq)| crate::webhooks::events::event_of(e, seq))
        .collect();
    crate::webhooks::events::enqueue(txn, &events, now).await?;
    crate::disconnects::enqueue(txn, entries, now).await?;
    Ok(())
}

impl Store {
    /// Appends records on their own (failed sign-ins: no change to go with).
    pub async fn append_audit(&self, entries: &[NewAudit], now: DateTime<Utc>) -> Result<(), StorageError> {
        let txn = self.write_txn().await?;
        append(&txn, entries, now).await?;
        txn.commit().await?;
        Ok(())
    }
}
