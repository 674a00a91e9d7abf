//! The group-commit writer for single revocations ([`crate::group_commit`]): revoking one
//! certificate is a short transaction, but on SQLite each commit is an fsync and the audit
//! chain serialises them, so 64 revocations in flight would queue behind one another. Each
//! caller gets its answer only once the transaction with its row and its audit record has
//! committed.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::audit::NewAudit;
use crate::entity::certificates::{Column, Entity as Certificates};
use crate::group_commit::GroupCommit;
use crate::{Certificate, StorageError, Store};

/// Most revocations one transaction takes.
const MAX_BATCH: usize = 512;

struct RevokeJob {
    id: Uuid,
    reason: String,
    audit: NewAudit,
    now: DateTime<Utc>,
}

/// The handle of the revocation writer (cheap to clone).
#[derive(Clone)]
pub struct RevokeQueue {
    writer: GroupCommit<RevokeJob, (Certificate, bool)>,
}

impl Store {
    /// Starts the group-commit writer for single revocations.
    pub fn revoke_queue(&self) -> RevokeQueue {
        RevokeQueue {
            writer: GroupCommit::start(self.clone(), "revocation", MAX_BATCH, |store, jobs| async move {
                write_batch(&store, &jobs).await
            }),
        }
    }
}

impl RevokeQueue {
    /// Revokes certificate `id` with `reason` and appends `audit` in the same transaction;
    /// returns it and whether this call revoked it (false: it was revoked already, and
    /// nothing was written).
    pub async fn revoke(
        &self,
        id: Uuid,
        reason: &str,
        audit: NewAudit,
        now: DateTime<Utc>,
    ) -> Result<(Certificate, bool), StorageError> {
        self.writer
            .submit(RevokeJob {
                id,
                reason: reason.to_owned(),
                audit,
                now,
            })
            .await
    }
}

/// One transaction for the batch: read the certificates, mark those not yet revoked (the
/// first job naming one wins), append the audit records of the changes, commit.
async fn write_batch(
    store: &Store,
    jobs: &[RevokeJob],
) -> Result<Vec<Result<(Certificate, bool), StorageError>>, StorageError> {
    let txn = store.write_txn().await?;
    let now = jobs.iter().map(|j| j.now).min().unwrap_or_else(crate::now);
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    let mut found: HashMap<Uuid, Certificate> = crate::certificates::certificates_for_update(&txn, &ids)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let mut results = Vec::with_capacity(jobs.len());
    let mut by_reason: HashMap<&str, Vec<Uuid>> = HashMap::new();
    let mut records = Vec::new();
    for job in jobs {
        let Some(cert) = found.get_mut(&job.id) else {
            results.push(Err(StorageError::NotFound));
            continue;
        };
        if cert.revoked_at.is_some() {
            results.push(Ok((cert.clone(), false)));
            continue;
        }
        cert.revoked_at = Some(now);
        cert.revocation_reason = Some(job.reason.clone());
        by_reason.entry(job.reason.as_str()).or_default().push(job.id);
        records.push(job.audit.clone());
        results.push(Ok((cert.clone(), true)));
    }
    for (reason, ids) in by_reason {
        for chunk in ids.chunks(500) {
            Certificates::update_many()
                .col_expr(Column::RevokedAt, Expr::value(now))
                .col_expr(Column::RevocationReason, Expr::value(reason))
                .filter(Column::Id.is_in(chunk.to_vec()))
                .filter(Column::RevokedAt.is_null())
                .exec(&txn)
                .await?;
        }
    }
    crate::outbox::append(&txn, &records, now).await?;
    txn.commit().await?;
    Ok(results)
}
