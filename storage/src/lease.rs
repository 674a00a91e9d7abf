//! Lease queues: rows that several workers (one per instance) take turns at. A worker leases
//! the due rows for a while by a conditional update, so a row leased by another is skipped
//! and each is worked on by one at a time; a worker that dies only delays its rows until
//! the lease runs out. Webhook deliveries and disconnects are two such queues.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::{StorageError, Store};

/// A queue's table: its row type and the columns a lease reads and writes.
pub(crate) trait LeaseTable: EntityTrait {
    const ID: Self::Column;
    const STATUS: Self::Column;
    const NEXT_ATTEMPT_AT: Self::Column;
    const LEASE_UNTIL: Self::Column;
    /// The status of a row that waits for an attempt.
    const PENDING: &'static str;
    fn id(row: &Self::Model) -> i64;
    fn set_lease(row: &mut Self::Model, until: DateTime<Utc>);
}

/// Leases up to `limit` rows of `T` that are due (pending, their next attempt not after
/// `now`, in `scope`) for `lease`, earliest first; returns those this call took.
pub(crate) async fn lease_due<T: LeaseTable>(
    store: &Store,
    scope: Condition,
    now: DateTime<Utc>,
    lease: Duration,
    limit: u64,
) -> Result<Vec<T::Model>, StorageError>
where
    T::Model: Send + Sync,
{
    let free = || {
        Condition::any()
            .add(T::LEASE_UNTIL.is_null())
            .add(T::LEASE_UNTIL.lt(now))
    };
    let due = T::find()
        .filter(T::STATUS.eq(T::PENDING))
        .filter(T::NEXT_ATTEMPT_AT.lte(now))
        .filter(scope)
        .filter(free())
        .order_by_asc(T::NEXT_ATTEMPT_AT)
        .order_by_asc(T::ID)
        .limit(limit)
        .all(store.conn())
        .await?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let txn = store.write_txn().await?;
    let mut leased = Vec::with_capacity(due.len());
    for mut row in due {
        let taken = T::update_many()
            .col_expr(T::LEASE_UNTIL, Expr::value(now + lease))
            .filter(T::ID.eq(T::id(&row)))
            .filter(T::STATUS.eq(T::PENDING))
            .filter(free())
            .exec(&txn)
            .await?;
        if taken.rows_affected == 1 {
            T::set_lease(&mut row, now + lease);
            leased.push(row);
        }
    }
    txn.commit().await?;
    Ok(leased)
}
