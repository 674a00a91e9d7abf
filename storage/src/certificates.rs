//! Issued certificates, revocation, and the group-commit writer for issuance.
//!
//! Issuance is the hot write path, so [`IssueQueue`] writes it by group commit
//! ([`crate::group_commit`]): the certificates that arrive while a commit is running go into
//! the next transaction together, and a 201 still means the row is durable. The per-API-key limit of active certificates is checked inside that same
//! transaction, with the API key's row locked on PostgreSQL, so it holds under concurrency
//! and across instances.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use std::collections::HashMap;

use sea_orm::sea_query::ExprTrait;
use uuid::Uuid;

use crate::audit::NewAudit;
use crate::entity::certificates::{ActiveModel, Column, Entity as Certificates};
use crate::entity::users::{Column as UserCol, Entity as Users};
use crate::group_commit::GroupCommit;
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
    /// The certificate this one renews, and when that one is to be revoked as superseded.
    pub renews: Option<Renewal>,
    /// The claim this device certificate is enrolled with: one of its uses is taken in the
    /// same transaction, or the certificate is refused ([`StorageError::Conflict`]).
    pub claim: Option<Uuid>,
}

/// A renewal: the old certificate stays valid until `supersede_at` (the grace in which a
/// device that lost the answer may renew again) and counts against no limit meanwhile. A
/// second renewal of the same old certificate within the grace revokes the first renewal
/// at once, so a device never holds more than its limit.
#[derive(Clone, Copy, Debug)]
pub struct Renewal {
    pub old: Uuid,
    pub supersede_at: DateTime<Utc>,
    /// `est` (the certificate renewed itself) or `api` (a manager renewed it).
    pub via: &'static str,
}

/// A certificate just stored, and what its renewal revoked now: the earlier renewal it
/// replaces, and the certificate the renewed one had renewed, if still in its grace.
#[derive(Clone, Debug)]
pub struct Stored {
    pub certificate: Certificate,
    pub discarded: Vec<Certificate>,
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
    /// Only these kinds (`client`, `server`, `device`, `claim`); empty: any.
    pub kinds: Vec<String>,
    /// Only the certificates of this device (`{tenant}/{device_id}`).
    pub device: Option<String>,
    /// Only active certificates that expire within this long.
    pub expiring_within: Option<chrono::Duration>,
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
        if !filter.kinds.is_empty() {
            cond = cond.add(Column::Kind.is_in(filter.kinds.iter().map(String::as_str)));
        }
        if let Some(d) = &filter.device {
            cond = cond.add(Column::Device.eq(d.as_str()));
        }
        if let Some(within) = filter.expiring_within {
            cond = cond
                .add(Column::RevokedAt.is_null())
                .add(Column::NotAfter.gt(now))
                .add(Column::NotAfter.lte(now + within));
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
        self.page_of(
            query,
            |q| q.order_by_desc(Column::CreatedAt).order_by_asc(Column::Id),
            page,
        )
        .await
    }

    /// Revokes a certificate. Returns it and whether this call revoked it (false when it
    /// was already revoked, in which case it is returned unchanged).
    pub async fn revoke_certificate(
        &self,
        id: Uuid,
        reason: &str,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<(Certificate, bool), StorageError> {
        let txn = self.write_txn().await?;
        let cert = certificates_for_update(&txn, &[id])
            .await?
            .into_iter()
            .next()
            .ok_or(StorageError::NotFound)?;
        if cert.revoked_at.is_some() {
            return Ok((cert, false));
        }
        let mut model: ActiveModel = cert.into();
        model.revoked_at = Set(Some(now));
        model.revocation_reason = Set(Some(reason.to_owned()));
        let cert = model.update(&txn).await?;
        crate::rows::commit_audited(txn, audit, now).await?;
        Ok((cert, true))
    }

    /// How many active certificates (not revoked, not renewed) expire within `within`.
    pub async fn count_expiring(&self, now: DateTime<Utc>, within: chrono::Duration) -> Result<u64, StorageError> {
        Ok(Certificates::find()
            .filter(Column::Kind.ne("canary"))
            .filter(Column::RevokedAt.is_null())
            .filter(Column::SupersedeAt.is_null())
            .filter(Column::NotAfter.gt(now))
            .filter(Column::NotAfter.lte(now + within))
            .count(self.conn())
            .await?)
    }

    /// A certificate by its SHA-256 fingerprint (lowercase hex).
    pub async fn certificate_by_fingerprint(&self, fingerprint: &str) -> Result<Certificate, StorageError> {
        Certificates::find()
            .filter(Column::Fingerprint.eq(fingerprint))
            .one(self.conn())
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// Whether an unrevoked, unexpired certificate of `kind` is named `name` (fleetca's
    /// revocation canaries are named by their CN).
    pub async fn has_active_named(&self, kind: &str, name: &str, now: DateTime<Utc>) -> Result<bool, StorageError> {
        Ok(Certificates::find()
            .filter(Column::Kind.eq(kind))
            .filter(Column::Name.eq(name))
            .filter(Column::RevokedAt.is_null())
            .filter(Column::NotAfter.gt(now))
            .count(self.conn())
            .await?
            > 0)
    }

    /// Revokes every certificate of `ids` not yet revoked, in one transaction; returns those
    /// this call revoked.
    pub async fn revoke_certificates(
        &self,
        ids: &[Uuid],
        reason: &str,
        audit: &NewAudit,
        now: DateTime<Utc>,
    ) -> Result<Vec<Certificate>, StorageError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let txn = self.write_txn().await?;
        let mut revoked: Vec<Certificate> = certificates_for_update(&txn, ids)
            .await?
            .into_iter()
            .filter(|c| c.revoked_at.is_none())
            .collect();
        for chunk in revoked.chunks(500) {
            Certificates::update_many()
                .col_expr(Column::RevokedAt, sea_orm::sea_query::Expr::value(now))
                .col_expr(Column::RevocationReason, sea_orm::sea_query::Expr::value(reason))
                .filter(Column::Id.is_in(chunk.iter().map(|c| c.id)))
                .filter(Column::RevokedAt.is_null())
                .exec(&txn)
                .await?;
        }
        for c in &mut revoked {
            c.revoked_at = Some(now);
            c.revocation_reason = Some(reason.to_owned());
        }
        crate::outbox::append(&txn, &revocation_records(audit, &revoked, reason), now).await?;
        txn.commit().await?;
        Ok(revoked)
    }

    /// The certificates of `ids` that exist (any order).
    pub async fn certificates_by_ids(&self, ids: &[Uuid]) -> Result<Vec<Certificate>, StorageError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            found.extend(
                Certificates::find()
                    .filter(Column::Id.is_in(chunk.to_vec()))
                    .all(self.conn())
                    .await?,
            );
        }
        Ok(found)
    }

    /// Ids of an API key's certificates not yet revoked.
    pub async fn api_key_certificate_ids(&self, api_key_id: Uuid) -> Result<Vec<Uuid>, StorageError> {
        Ok(Certificates::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::ApiKeyId.eq(api_key_id))
            .filter(Column::RevokedAt.is_null())
            .into_tuple()
            .all(self.conn())
            .await?)
    }

    /// Ids of the active certificates of a device (`{tenant}/{device_id}`).
    pub async fn device_certificate_ids(&self, device: &str) -> Result<Vec<Uuid>, StorageError> {
        Ok(Certificates::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::Device.eq(device))
            .filter(Column::RevokedAt.is_null())
            .into_tuple()
            .all(self.conn())
            .await?)
    }

    /// Ids of the renewed certificates whose grace has passed (to revoke as superseded).
    pub async fn due_supersessions(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, StorageError> {
        Ok(Certificates::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::SupersedeAt.lte(now))
            .filter(Column::RevokedAt.is_null())
            .limit(10_000)
            .into_tuple()
            .all(self.conn())
            .await?)
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
            .filter(Column::SupersedeAt.is_null().or(Column::SupersedeAt.gt(now)))
            .filter(Column::Kind.eq("client"))
            .filter(Column::RevokedAt.is_null())
            .filter(Column::NotAfter.gt(now))
            .into_tuple()
            .all(self.conn())
            .await?)
    }

    /// Starts the group-commit writer for issuance (see the module docs).
    pub fn issue_queue(&self) -> IssueQueue {
        IssueQueue {
            writer: GroupCommit::start(self.clone(), "certificate", MAX_BATCH, |store, jobs| async move {
                write_batch(&store, &jobs).await
            }),
        }
    }
}

struct IssueJob {
    cert: NewCertificate,
    /// Appended when the certificate is stored, with its id as the target.
    audit: Option<NewAudit>,
    /// At most this many active certificates for the API key, counting this one.
    max_active: Option<u64>,
    now: DateTime<Utc>,
}

/// The handle to the group-commit writer; cheap to clone.
#[derive(Clone, Debug)]
pub struct IssueQueue {
    writer: GroupCommit<IssueJob, Stored>,
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
        audit: Option<NewAudit>,
        now: DateTime<Utc>,
    ) -> Result<Stored, StorageError> {
        self.writer
            .submit(IssueJob {
                cert,
                audit,
                max_active,
                now,
            })
            .await
    }
}

/// Writes one batch in one transaction: per-job results for the limit, renewal and claim
/// checks, or an error for the whole batch when the transaction itself failed (then nothing
/// was written).
///
/// A handful of statements however large the batch: lock the API keys (PostgreSQL), count
/// their and the devices' active certificates (a renewed certificate in its grace counts
/// for nothing), read the certificates being renewed, take claim uses, insert the accepted
/// rows, mark the renewed ones.
async fn write_batch(store: &Store, jobs: &[IssueJob]) -> Result<Vec<Result<Stored, StorageError>>, StorageError> {
    let txn = store.write_txn().await?;
    let now = jobs.iter().map(|j| j.now).min().unwrap_or_else(crate::now);
    let counted_filter = || {
        Condition::all()
            .add(Column::RevokedAt.is_null())
            .add(Column::NotAfter.gt(now))
            .add(Column::SupersedeAt.is_null())
    };
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
        let counts: Vec<(Option<Uuid>, i64)> = Certificates::find()
            .select_only()
            .column(Column::ApiKeyId)
            .column_as(Column::Id.count(), "n")
            .filter(Column::ApiKeyId.is_in(keys))
            .filter(counted_filter())
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
    // The devices must exist and be enabled when their certificate commits: their rows are
    // read (and on PostgreSQL locked, in order) here, so a concurrent disable or delete
    // either comes first and refuses this, or waits and then revokes what this wrote.
    let mut enabled: HashMap<String, bool> = HashMap::new();
    if !devices.is_empty() {
        use crate::entity::devices::{Column as DeviceCol, Entity as Devices};
        let mut cond = Condition::any();
        for d in &devices {
            if let Some((tenant, id)) = d.split_once('/') {
                cond = cond.add(DeviceCol::Tenant.eq(tenant).and(DeviceCol::DeviceId.eq(id)));
            }
        }
        let mut query = Devices::find()
            .filter(cond)
            .order_by_asc(DeviceCol::Tenant)
            .order_by_asc(DeviceCol::DeviceId);
        if is_postgres(&txn) {
            query = query.lock_exclusive();
        }
        for row in query.all(&txn).await? {
            enabled.insert(format!("{}/{}", row.tenant, row.device_id), row.is_active);
        }
        let counts: Vec<(Option<String>, i64)> = Certificates::find()
            .select_only()
            .column(Column::Device)
            .column_as(Column::Id.count(), "n")
            .filter(Column::Device.is_in(devices))
            .filter(counted_filter())
            .group_by(Column::Device)
            .into_tuple()
            .all(&txn)
            .await?;
        device_active.extend(counts.into_iter().filter_map(|(d, n)| Some((d?, n as u64))));
    }
    // The certificates being renewed, and their earlier renewals.
    let mut renewed: HashMap<Uuid, Certificate> = HashMap::new();
    let mut old_ids: Vec<Uuid> = jobs.iter().filter_map(|j| j.cert.renews.map(|r| r.old)).collect();
    old_ids.sort();
    old_ids.dedup();
    // Certificates that the renewed ones renewed earlier, still in their grace: a renewal
    // chain keeps at most one certificate in its grace, so they are revoked now.
    let mut predecessors: HashMap<Uuid, Vec<Certificate>> = HashMap::new();
    if !old_ids.is_empty() {
        let mut query = Certificates::find()
            .filter(Column::Id.is_in(old_ids.clone()))
            .order_by_asc(Column::Id);
        if is_postgres(&txn) {
            // Two renewals of one certificate on two instances: the second waits and then
            // sees the first's renewal (and discards it).
            query = query.lock_exclusive();
        }
        let olds = query.all(&txn).await?;
        let rows = Certificates::find()
            .filter(Column::RenewedBy.is_in(old_ids))
            .filter(Column::RevokedAt.is_null())
            .all(&txn)
            .await?;
        for row in rows {
            if let Some(by) = row.renewed_by {
                predecessors.entry(by).or_default().push(row);
            }
        }
        let earlier: Vec<Uuid> = olds.iter().filter_map(|c| c.renewed_by).collect();
        renewed.extend(olds.into_iter().map(|c| (c.id, c)));
        if !earlier.is_empty() {
            let rows = Certificates::find().filter(Column::Id.is_in(earlier)).all(&txn).await?;
            renewed.extend(rows.into_iter().map(|c| (c.id, c)));
        }
    }
    let counts = |c: &Certificate| c.revoked_at.is_none() && c.not_after > now && c.supersede_at.is_none();

    let mut results = Vec::with_capacity(jobs.len());
    let mut rows = Vec::with_capacity(jobs.len());
    let mut discards: Vec<Uuid> = Vec::new();
    let mut records: Vec<NewAudit> = Vec::new();
    let mut marks: Vec<(Uuid, DateTime<Utc>, Uuid, &'static str)> = Vec::new();
    for job in jobs {
        let id = Uuid::new_v4();
        // Counted certificates this job takes off its owner's count (the one it renews and
        // that one's earlier renewal).
        let mut relief = 0u64;
        let mut discard: Option<Certificate> = None;
        let mut mark = None;
        if let Some(r) = job.cert.renews {
            let Some(old) = renewed.get(&r.old).cloned() else {
                results.push(Err(StorageError::NotFound));
                continue;
            };
            if old.revoked_at.is_some() || old.supersede_at.is_some_and(|t| t <= job.now) {
                results.push(Err(StorageError::Conflict(
                    "the certificate is revoked or already superseded".into(),
                )));
                continue;
            }
            if r.via == "est" && old.renewed_via.as_deref() == Some("api") {
                results.push(Err(StorageError::Conflict(
                    "a manager renewed this certificate; only its renewal may renew itself".into(),
                )));
                continue;
            }
            if counts(&old) {
                relief += 1;
            }
            if let Some(earlier) = old.renewed_by.and_then(|e| renewed.get(&e))
                && earlier.revoked_at.is_none()
            {
                if counts(earlier) {
                    relief += 1;
                }
                discard = Some(earlier.clone());
            }
            mark = Some((old.id, old.supersede_at.unwrap_or(r.supersede_at), id, r.via));
        }
        if let Some(device) = &job.cert.device
            && job.max_active.is_some()
            && !enabled.get(device).copied().unwrap_or(false)
        {
            results.push(Err(StorageError::Conflict("the device is disabled or deleted".into())));
            continue;
        }
        let key_count = job
            .max_active
            .zip(job.cert.api_key_id)
            .map(|(max, k)| (max, active.get(&k).copied().unwrap_or(0).saturating_sub(relief)));
        let device_count = job
            .max_active
            .zip(job.cert.device.as_ref())
            .map(|(max, d)| (max, device_active.get(d).copied().unwrap_or(0).saturating_sub(relief)));
        if [key_count, device_count].into_iter().flatten().any(|(max, n)| n >= max) {
            results.push(Err(StorageError::LimitReached));
            continue;
        }
        if let Some(claim) = job.cert.claim {
            use crate::entity::claims::{Column as ClaimCol, Entity as Claims};
            use sea_orm::sea_query::Expr;
            let taken = Claims::update_many()
                .col_expr(ClaimCol::Uses, Expr::col(ClaimCol::Uses).add(1))
                .filter(ClaimCol::Id.eq(claim))
                .filter(ClaimCol::RevokedAt.is_null())
                .filter(ClaimCol::ExpiresAt.gt(job.now))
                .filter(Expr::col(ClaimCol::Uses).lt(Expr::col(ClaimCol::MaxUses)))
                .exec(&txn)
                .await?;
            if taken.rows_affected == 0 {
                results.push(Err(StorageError::Conflict(
                    "the claim is revoked, expired or used up".into(),
                )));
                continue;
            }
        }
        if let (Some(k), Some((_, n))) = (job.cert.api_key_id, key_count) {
            active.insert(k, n + 1);
        }
        if let (Some(d), Some((_, n))) = (job.cert.device.clone(), device_count) {
            device_active.insert(d, n + 1);
        }
        let c = job.cert.clone();
        let model = Certificate {
            id,
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
            supersede_at: None,
            renewed_by: None,
            renewed_via: None,
            expiry_warned: None,
        };
        // Later jobs of this batch see this one's effects.
        if let Some((old, at, by, via)) = mark {
            if let Some(o) = renewed.get_mut(&old) {
                o.supersede_at = Some(at);
                o.renewed_by = Some(by);
                o.renewed_via = Some(via.to_owned());
            }
            renewed.insert(id, model.clone());
            marks.push((old, at, by, via));
        }
        let mut discarded: Vec<Certificate> = discard.into_iter().collect();
        if let Some((old, ..)) = mark {
            discarded.extend(predecessors.remove(&old).unwrap_or_default());
        }
        for d in &mut discarded {
            d.revoked_at = Some(job.now);
            d.revocation_reason = Some(SUPERSEDED.into());
            discards.push(d.id);
            renewed.insert(d.id, d.clone());
        }
        if let Some(mut record) = job.audit.clone() {
            record.target_kind = "certificate".into();
            record.target_id = id.to_string();
            record.enterprise = Some(model.enterprise.clone());
            if let serde_json::Value::Object(details) = &mut record.details {
                details.insert("serial".into(), model.serial.clone().into());
                details.insert("kind".into(), model.kind.clone().into());
                details.insert("name".into(), model.name.clone().into());
                details.insert("expires_at".into(), serde_json::json!(model.not_after));
                if let Some(device) = &model.device {
                    details.insert("device".into(), device.clone().into());
                }
                if !discarded.is_empty() {
                    let ids: Vec<String> = discarded.iter().map(|d| d.id.to_string()).collect();
                    details.insert("superseded_now".into(), ids.into());
                }
            }
            records.push(record);
        }
        rows.push(ActiveModel::from(model.clone()));
        results.push(Ok(Stored {
            certificate: model,
            discarded,
        }));
    }
    for chunk in rows.chunks(500) {
        Certificates::insert_many(chunk.to_vec()).exec(&txn).await?;
    }
    crate::outbox::append(&txn, &records, now).await?;
    for (old, at, by, via) in marks {
        use sea_orm::sea_query::Expr;
        Certificates::update_many()
            .col_expr(Column::SupersedeAt, Expr::value(at))
            .col_expr(Column::RenewedBy, Expr::value(by))
            .col_expr(Column::RenewedVia, Expr::value(via))
            .filter(Column::Id.eq(old))
            .exec(&txn)
            .await?;
    }
    if !discards.is_empty() {
        use sea_orm::sea_query::Expr;
        Certificates::update_many()
            .col_expr(Column::RevokedAt, Expr::value(now))
            .col_expr(Column::RevocationReason, Expr::value(SUPERSEDED))
            .filter(Column::Id.is_in(discards))
            .filter(Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(results)
}

/// The certificates of `ids` that exist, in id order, read for a change in `txn`: on
/// PostgreSQL their rows are locked (in id order: no deadlocks), so a concurrent revocation
/// of the same ones (another request, a bulk revocation, another instance) waits and then
/// finds them revoked, and each is decided, audited and answered once. SQLite's write lock
/// already serialises the transactions.
pub(crate) async fn certificates_for_update(
    txn: &DatabaseTransaction,
    ids: &[Uuid],
) -> Result<Vec<Certificate>, StorageError> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let mut query = Certificates::find()
            .filter(Column::Id.is_in(chunk.to_vec()))
            .order_by_asc(Column::Id);
        if is_postgres(txn) {
            query = query.lock_exclusive();
        }
        found.extend(query.all(txn).await?);
    }
    Ok(found)
}

/// One `certificate.revoke` record (announcing `certificate.revoked`) per certificate
/// revoked, from `template` (the actor and the request).
pub(crate) fn revocation_records(template: &NewAudit, revoked: &[Certificate], reason: &str) -> Vec<NewAudit> {
    revoked
        .iter()
        .map(|c| {
            let mut r = template.clone();
            r.action = "certificate.revoke".into();
            r.event = Some("certificate.revoked".into());
            r.target_kind = "certificate".into();
            r.target_id = c.id.to_string();
            r.enterprise = Some(c.enterprise.clone());
            r.details = serde_json::json!({
                "serial": c.serial,
                "reason": reason,
                "kind": c.kind,
                "api_key_id": c.api_key_id,
                "device": c.device,
            });
            r
        })
        .collect()
}

/// RFC 5280's name of the reason a renewed certificate is revoked with.
pub const SUPERSEDED: &str = "superseded";
