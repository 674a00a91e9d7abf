//! The group-commit writer for single revocations.
//!
//! Revoking one certificate is a short transaction, but on SQLite each commit is an fsync
//! and the audit chain serialises them, so 64 revocations in flight queue behind one another.
//! [`RevokeQueue`] collects the revocations that arrive while a commit is running and writes
//! them all in the next transaction, as [`crate::certificates::IssueQueue`] does for
//! issuance. Each caller gets its answer only once the transaction with its row and its audit
//! record has committed.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::audit::NewAudit;
use crate::entity::certificates::{Column, Entity as Certificates};
use crate::{Certificate, StorageError, Store};

/// Most revocations one transaction takes.
const MAX_BATCH: usize = 512;

struct RevokeJob {
    id: Uuid,
    reason: String,
    audit: NewAudit,
    now: DateTime<Utc>,
    reply: oneshot::Sender<Result<(Certificate, bool), StorageError>>,
}

/// The handle of the revocation writer (cheap to clone).
#[derive(Clone)]
pub struct RevokeQueue {
    tx: mpsc::Sender<RevokeJob>,
}

impl Store {
    /// Starts the group-commit writer for single revocations.
    pub fn revoke_queue(&self) -> RevokeQueue {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(self.clone(), rx));
        RevokeQueue { tx }
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
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(RevokeJob {
                id,
                reason: reason.to_owned(),
                audit,
                now,
                reply,
            })
            .await
            .map_err(|_| StorageError::Unavailable("revoke queue stopped".into()))?;
        rx.await
            .map_err(|_| StorageError::Internal("revoke queue dropped a request".into()))?
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<RevokeJob>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs = std::mem::take(&mut batch);
        match write_batch(&store, &jobs).await {
            Ok(results) => {
                for (job, result) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, rows = jobs.len(), "revocation batch failed");
                for job in jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
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
