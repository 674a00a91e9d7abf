//! Issued certificates, revocation, and the group-commit writer for issuance.
//!
//! Issuance is the hot write path: one fsync'd SQLite commit costs about a millisecond,
//! so committing each certificate on its own caps issuance near 1,000/s. The
//! [`IssueQueue`] instead collects the certificates that arrive while a commit is running
//! and writes them all in the next transaction (group commit). Every caller still gets its
//! answer only after the transaction holding its row has committed, so a 201 means the row
//! is durable. The per-API-key limit of active certificates is checked inside that same
//! transaction, with the API key's row locked on PostgreSQL, so it holds under concurrency
//! and across instances.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::entity::certificates::{ActiveModel, Column, Entity as Certificates};
use crate::entity::users::{Column as UserCol, Entity as Users};
use crate::{Certificate, Page, StorageError, Store, is_postgres};

/// A certificate to store.
#[derive(Clone, Debug)]
pub struct NewCertificate {
    /// Display name.
    pub name: String,
    /// `client` or `server`.
    pub kind: String,
    /// The API key it belongs to (client certificates).
    pub api_key_id: Option<Uuid>,
    /// The enterprise it belongs to.
    pub enterprise: String,
    /// Serial, lowercase hex.
    pub serial: String,
    /// SHA-256 fingerprint, lowercase hex.
    pub fingerprint: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// notBefore.
    pub not_before: DateTime<Utc>,
    /// notAfter.
    pub not_after: DateTime<Utc>,
    /// The device (`{tenant}/{device_id}`) of a device certificate.
    pub device: Option<String>,
}

/// Status filter of a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    /// Not revoked and not expired.
    Active,
    /// Revoked.
    Revoked,
    /// Expired and not revoked.
    Expired,
}

/// Filters of a certificate listing.
#[derive(Clone, Debug, Default)]
pub struct CertificateFilter {
    /// Only this enterprise.
    pub enterprise: Option<String>,
    /// Only this API key's.
    pub api_key_id: Option<Uuid>,
    /// Only `client` or `server`.
    pub kind: Option<String>,
    /// Only this status.
    pub status: Option<StatusFilter>,
    /// Name contains.
    pub search: Option<String>,
}

/// serial, revoked_at, reason, not_after
type RevocationRow = (String, Option<DateTime<Utc>>, Option<String>, DateTime<Utc>);

/// One revocation, as the CRL needs it.
#[derive(Clone, Debug)]
pub struct Revocation {
    /// Serial, lowercase hex.
    pub serial: String,
    /// When.
    pub revoked_at: DateTime<Utc>,
    /// RFC 5280 reason name.
    pub reason: String,
    /// The certificate's notAfter (entries may leave the CRL after it).
    pub not_after: DateTime<Utc>,
}

impl Store {
    /// A certificate by id.
    pub async fn certificate(&self, id: Uuid) -> Result<Certificate, StorageError> {
        Certificates::find_by_id(id)
            .one(self.conn())
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// One page of certificates, newest first, and the total that match.
    pub async fn list_certificates(
        &self,
        filter: &CertificateFilter,
        page: Page,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Certificate>, u64), StorageError> {
        let mut cond = Condition::all();
        if let Some(e) = &filter.enterprise {
            cond = cond.add(Column::Enterprise.eq(e.as_str()));
        }
        if let Some(k) = filter.api_key_id {
            cond = cond.add(Column::ApiKeyId.eq(k));
        }
        if let Some(k) = &filter.kind {
            cond = cond.add(Column::Kind.eq(k.as_str()));
        }
        if let Some(s) = &filter.search {
            cond = cond.add(Column::Name.contains(s.as_str()));
        }
        cond = match filter.status {
            None => cond,
            Some(StatusFilter::Active) => cond.add(Column::RevokedAt.is_null()).add(Column::NotAfter.gt(now)),
            Some(StatusFilter::Revoked) => cond.add(Column::RevokedAt.is_not_null()),
            Some(StatusFilter::Expired) => cond.add(Column::RevokedAt.is_null()).add(Column::NotAfter.lte(now)),
        };
        let query = Certificates::find().filter(cond);
        let total = query.clone().count(self.conn()).await?;
        let rows = query
            .order_by_desc(Column::CreatedAt)
            .order_by_asc(Column::Id)
            .offset(page.offset)
            .limit(page.limit)
            .all(self.conn())
            .await?;
        Ok((rows, total))
    }

    /// Revokes a certificate. Returns it and whether this call revoked it (false when it
    /// was already revoked, in which case it is returned unchanged).
    pub async fn revoke_certificate(
        &self,
        id: Uuid,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(Certificate, bool), StorageError> {
        let txn = self.write_txn().await?;
        let cert = Certificates::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(StorageError::NotFound)?;
        if cert.revoked_at.is_some() {
            return Ok((cert, false));
        }
        let mut model: ActiveModel = cert.into();
        model.revoked_at = Set(Some(now));
        model.revocation_reason = Set(Some(reason.to_owned()));
        let cert = model.update(&txn).await?;
        txn.commit().await?;
        Ok((cert, true))
    }

    /// Every revocation of a certificate that has not expired before `since`.
    pub async fn revocations(&self, since: DateTime<Utc>) -> Result<Vec<Revocation>, StorageError> {
        let rows: Vec<RevocationRow> = Certificates::find()
            .select_only()
            .column(Column::Serial)
            .column(Column::RevokedAt)
            .column(Column::RevocationReason)
            .column(Column::NotAfter)
            .filter(Column::RevokedAt.is_not_null())
            .filter(Column::NotAfter.gt(since))
            .order_by_asc(Column::RevokedAt)
            .into_tuple()
            .all(self.conn())
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(serial, at, reason, not_after)| {
                Some(Revocation {
                    serial,
                    revoked_at: at?,
                    reason: reason.unwrap_or_else(|| "unspecified".into()),
                    not_after,
                })
            })
            .collect())
    }

    /// Fingerprints of an API key's active client certificates, with their notAfter (a
    /// caller that keeps them must still check expiry on each use).
    pub async fn active_fingerprints(
        &self,
        api_key_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StorageError> {
        Ok(Certificates::find()
            .select_only()
            .column(Column::Fingerprint)
            .column(Column::NotAfter)
            .filter(Column::ApiKeyId.eq(api_key_id))
            .filter(Column::Kind.eq("client"))
            .filter(Column::RevokedAt.is_null())
            .filter(Column::NotAfter.gt(now))
            .into_tuple()
            .all(self.conn())
            .await?)
    }

    /// Starts the group-commit writer for issuance (see the module docs).
    pub fn issue_queue(&self) -> IssueQueue {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run_issue_queue(self.clone(), rx));
        IssueQueue { tx }
    }
}

struct IssueJob {
    cert: NewCertificate,
    /// At most this many active certificates for the API key, counting this one.
    max_active: Option<u64>,
    now: DateTime<Utc>,
    reply: oneshot::Sender<Result<Certificate, StorageError>>,
}

/// The handle to the group-commit writer; cheap to clone.
#[derive(Clone, Debug)]
pub struct IssueQueue {
    tx: mpsc::Sender<IssueJob>,
}

/// Most certificates one transaction takes.
const MAX_BATCH: usize = 256;

impl IssueQueue {
    /// Stores `cert` durably. With `max_active`, refuses with [`StorageError::LimitReached`]
    /// when the API key already has that many active certificates.
    pub async fn insert(
        &self,
        cert: NewCertificate,
        max_active: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<Certificate, StorageError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(IssueJob {
                cert,
                max_active,
                now,
                reply,
            })
            .await
            .map_err(|_| StorageError::Unavailable("issue queue stopped".into()))?;
        rx.await
            .map_err(|_| StorageError::Internal("issue queue dropped a request".into()))?
    }
}

async fn run_issue_queue(store: Store, mut rx: mpsc::Receiver<IssueJob>) {
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
                tracing::warn!(error = %e, rows = jobs.len(), "certificate batch failed");
                for job in jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Writes one batch in one transaction: per-job results for the limit check, or an error
/// for the whole batch when the transaction itself failed (then nothing was written).
///
/// Three statements however large the batch: lock the API keys (PostgreSQL), count their
/// active certificates, insert the accepted rows.
async fn write_batch(store: &Store, jobs: &[IssueJob]) -> Result<Vec<Result<Certificate, StorageError>>, StorageError> {
    let txn = store.write_txn().await?;
    let mut keys: Vec<Uuid> = jobs
        .iter()
        .filter(|j| j.max_active.is_some())
        .filter_map(|j| j.cert.api_key_id)
        .collect();
    keys.sort();
    keys.dedup();
    let mut active: HashMap<Uuid, u64> = HashMap::new();
    if !keys.is_empty() {
        if is_postgres(&txn) {
            // Serialize issuance per API key across instances (sorted: no deadlocks).
            Users::find()
                .filter(UserCol::Id.is_in(keys.clone()))
                .order_by_asc(UserCol::Id)
                .lock_exclusive()
                .all(&txn)
                .await?;
        }
        let now = jobs.iter().map(|j| j.now).min().unwrap_or_else(crate::now);
        let counts: Vec<(Option<Uuid>, i64)> = Certificates::find()
            .select_only()
            .column(Column::ApiKeyId)
            .column_as(Column::Id.count(), "n")
            .filter(Column::ApiKeyId.is_in(keys))
            .filter(Column::RevokedAt.is_null())
            .filter(Column::NotAfter.gt(now))
            .group_by(Column::ApiKeyId)
            .into_tuple()
            .all(&txn)
            .await?;
        active.extend(counts.into_iter().filter_map(|(k, n)| Some((k?, n as u64))));
    }
    let mut devices: Vec<String> = jobs
        .iter()
        .filter(|j| j.max_active.is_some())
        .filter_map(|j| j.cert.device.clone())
        .collect();
    devices.sort();
    devices.dedup();
    let mut device_active: HashMap<String, u64> = HashMap::new();
    if !devices.is_empty() {
        let now = jobs.iter().map(|j| j.now).min().unwrap_or_else(crate::now);
        let counts: Vec<(Option<String>, i64)> = Certificates::find()
            .select_only()
            .column(Column::Device)
            .column_as(Column::Id.count(), "n")
            .filter(Column::Device.is_in(devices))
            .filter(Column::RevokedAt.is_null())
            .filter(Column::NotAfter.gt(now))
            .group_by(Column::Device)
            .into_tuple()
            .all(&txn)
            .await?;
        device_active.extend(counts.into_iter().filter_map(|(d, n)| Some((d?, n as u64))));
    }
    let mut results = Vec::with_capacity(jobs.len());
    let mut rows = Vec::with_capacity(jobs.len());
    for job in jobs {
        if let (Some(max), Some(key)) = (job.max_active, job.cert.api_key_id) {
            let count = active.entry(key).or_default();
            if *count >= max {
                results.push(Err(StorageError::LimitReached));
                continue;
            }
            *count += 1;
        }
        if let (Some(max), Some(device)) = (job.max_active, job.cert.device.clone()) {
            let count = device_active.entry(device).or_default();
            if *count >= max {
                results.push(Err(StorageError::LimitReached));
                continue;
            }
            *count += 1;
        }
        let c = job.cert.clone();
        let model = Certificate {
            id: Uuid::new_v4(),
            name: c.name,
            kind: c.kind,
            api_key_id: c.api_key_id,
            enterprise: c.enterprise,
            serial: c.serial,
            fingerprint: c.fingerprint,
            certificate_pem: c.certificate_pem,
            not_before: c.not_before,
            not_after: c.not_after,
            created_at: job.now,
            revoked_at: None,
            revocation_reason: None,
            device: c.device,
        };
        rows.push(ActiveModel::from(model.clone()));
        results.push(Ok(model));
    }
    for chunk in rows.chunks(500) {
        Certificates::insert_many(chunk.to_vec()).exec(&txn).await?;
    }
    txn.commit().await?;
    Ok(results)
}
