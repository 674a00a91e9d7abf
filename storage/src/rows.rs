//! The steps every repository repeats, written once: an audited change (its rows and its
//! audit records in one transaction, all or nothing), a bulk insert in chunks, a delete or
//! an update that must find its row, and one page of a listing with its total.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, Condition, DatabaseTransaction, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QuerySelect, Select,
};

use crate::audit::NewAudit;
use crate::{Page, StorageError, Store};

/// Ends an audited change: its audit records are appended in its transaction, then it commits.
pub(crate) async fn commit_audited(
    txn: DatabaseTransaction,
    audit: &[NewAudit],
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    crate::outbox::append(&txn, audit, now).await?;
    txn.commit().await?;
    Ok(())
}

/// Inserts `rows` in statements of at most `per_statement` rows (SQLite caps a statement's
/// parameters), inside the caller's transaction.
pub(crate) async fn insert_chunked<A>(
    txn: &DatabaseTransaction,
    rows: impl IntoIterator<Item = A>,
    per_statement: usize,
) -> Result<(), StorageError>
where
    A: ActiveModelTrait + Send,
{
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(per_statement).collect();
        A::Entity::insert_many(chunk).exec(txn).await?;
    }
    Ok(())
}

/// Deletes the rows `cond` matches; none is [`StorageError::NotFound`].
pub(crate) async fn delete_found<E: EntityTrait>(
    txn: &DatabaseTransaction,
    cond: Condition,
) -> Result<(), StorageError> {
    let res = E::delete_many().filter(cond).exec(txn).await?;
    if res.rows_affected == 0 {
        return Err(StorageError::NotFound);
    }
    Ok(())
}

impl Store {
    /// Inserts one row and its audit records in one transaction. A taken unique key is
    /// [`StorageError::Conflict`].
    pub(crate) async fn insert_audited<A>(
        &self,
        row: A,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<<A::Entity as EntityTrait>::Model, StorageError>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Send,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    {
        let txn = self.write_txn().await?;
        let row = row.insert(&txn).await?;
        commit_audited(txn, audit, now).await?;
        Ok(row)
    }

    /// Reads the row `find` names in a write transaction, lets `change` set its new values,
    /// writes it and its audit records: all or nothing. No row is [`StorageError::NotFound`].
    pub(crate) async fn update_audited<A>(
        &self,
        find: Select<A::Entity>,
        change: impl FnOnce(&mut A),
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<<A::Entity as EntityTrait>::Model, StorageError>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Send,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    {
        let txn = self.write_txn().await?;
        let row = find.one(&txn).await?.ok_or(StorageError::NotFound)?;
        let mut model = row.into_active_model();
        change(&mut model);
        let row = model.update(&txn).await?;
        commit_audited(txn, audit, now).await?;
        Ok(row)
    }

    /// Deletes the rows `cond` matches and appends the audit records: all or nothing. None
    /// is [`StorageError::NotFound`].
    pub(crate) async fn delete_audited<E: EntityTrait>(
        &self,
        cond: Condition,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let txn = self.write_txn().await?;
        delete_found::<E>(&txn, cond).await?;
        commit_audited(txn, audit, now).await
    }

    /// One page of `query`, in the order `order` gives it, and the total that match.
    pub(crate) async fn page_of<E>(
        &self,
        query: Select<E>,
        order: impl FnOnce(Select<E>) -> Select<E>,
        page: Page,
    ) -> Result<(Vec<E::Model>, u64), StorageError>
    where
        E: EntityTrait,
        E::Model: Sync,
    {
        let total = query.clone().count(self.conn()).await?;
        let rows = order(query)
            .offset(page.offset)
            .limit(page.limit)
            .all(self.conn())
            .await?;
        Ok((rows, total))
    }
}
