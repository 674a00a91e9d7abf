//! Issued certificates: reading them, revoking them. Storing new ones is
//! [`crate::issuance`]'s.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use sea_orm::sea_query::ExprTrait;
use uuid::Uuid;

use crate::audit::NewAudit;
use crate::entity::certificates::{ActiveModel, Column, Entity as Certificates};
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
    /// The CA that signed it.
    pub issuer_id: i32,
    /// The shard of that CA's CRL it names as its distribution point (none: the CA's own CRL).
    pub crl_shard: Option<i16>,
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
type RevocationRow = (
    String,
    Option<DateTime<Utc>>,
    Option<String>,
    DateTime<Utc>,
    i32,
    Option<i16>,
);

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
    /// The CA whose CRL lists it.
    pub issuer_id: i32,
    /// The shard of that CA's CRL that lists it (none: the CA's own CRL).
    pub shard: Option<i16>,
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
    /// this call revoked. A bulk revocation goes through its ids 500 at a time: first every
    /// chunk's rows are read and locked (in id order, so concurrent ones lock rows in one
    /// order), then each chunk is revoked and audited, its records made and written before
    /// the next chunk's. Every row is locked before the audit head is (as every other writer
    /// does: certificates, then the head), so a single revocation running meanwhile cannot
    /// deadlock with it; and not every chunk's audit records and statements are held at once.
    pub async fn revoke_certificates(
        &self,
        ids: &[Uuid],
        reason: &str,
        records: RevocationRecords<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Certificate>, StorageError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids = ids.to_vec();
        ids.sort();
        ids.dedup();
        let txn = self.write_txn().await?;
        let mut revoked = Vec::new();
        for chunk in ids.chunks(REVOKE_CHUNK) {
            let found = certificates_for_update(&txn, chunk).await?;
            revoked.extend(found.into_iter().filter(|c| c.revoked_at.is_none()));
        }
        for chunk in revoked.chunks_mut(REVOKE_CHUNK) {
            mark_revoked(&txn, chunk, reason, now).await?;
            crate::outbox::append(&txn, &records(chunk), now).await?;
        }
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
        use futures_util::TryStreamExt;
        // Streamed: the driver's copy of each row is freed as it is read (100,000 rows held
        // at once were 80 MB at the peak of a start, for 15 MB of revocations).
        let mut rows = Certificates::find()
            .select_only()
            .column(Column::Serial)
            .column(Column::RevokedAt)
            .column(Column::RevocationReason)
            .column(Column::NotAfter)
            .column(Column::IssuerId)
            .column(Column::CrlShard)
            .filter(Column::RevokedAt.is_not_null())
            .filter(Column::NotAfter.gt(since))
            .order_by_asc(Column::RevokedAt)
            .into_tuple::<RevocationRow>()
            .stream(self.conn())
            .await?;
        let mut revocations = Vec::new();
        while let Some((serial, at, reason, not_after, issuer_id, shard)) = rows.try_next().await? {
            if let Some(revoked_at) = at {
                revocations.push(Revocation {
                    serial,
                    revoked_at,
                    reason: reason.unwrap_or_else(|| "unspecified".into()),
                    not_after,
                    issuer_id,
                    shard,
                });
            }
        }
        Ok(revocations)
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
}

/// Revokes every certificate of `ids` not yet revoked, inside the caller's transaction;
/// returns those it revoked.
pub(crate) async fn revoke_in(
    txn: &DatabaseTransaction,
    ids: &[Uuid],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Certificate>, StorageError> {
    let mut revoked: Vec<Certificate> = certificates_for_update(txn, ids)
        .await?
        .into_iter()
        .filter(|c| c.revoked_at.is_none())
        .collect();
    for chunk in revoked.chunks_mut(REVOKE_CHUNK) {
        mark_revoked(txn, chunk, reason, now).await?;
    }
    Ok(revoked)
}

/// Revokes `certs` (read and locked by [`certificates_for_update`], none revoked yet), and
/// says so in the rows given.
async fn mark_revoked(
    txn: &DatabaseTransaction,
    certs: &mut [Certificate],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    Certificates::update_many()
        .col_expr(Column::RevokedAt, sea_orm::sea_query::Expr::value(now))
        .col_expr(Column::RevocationReason, sea_orm::sea_query::Expr::value(reason))
        .filter(Column::Id.is_in(certs.iter().map(|c| c.id)))
        .filter(Column::RevokedAt.is_null())
        .exec(txn)
        .await?;
    for c in certs {
        c.revoked_at = Some(now);
        c.revocation_reason = Some(reason.to_owned());
    }
    Ok(())
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

/// How many certificates a bulk revocation reads, revokes and audits at a time.
const REVOKE_CHUNK: usize = 500;

/// The audit records of certificates revoked together, made by the caller from the ones
/// the call revoked (those already revoked are left out).
pub type RevocationRecords<'a> = &'a (dyn Fn(&[Certificate]) -> Vec<NewAudit> + Send + Sync);

/// RFC 5280's name of the reason a renewed certificate is revoked with.
pub const SUPERSEDED: &str = "superseded";

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveModelTrait, IntoActiveModel};

    use super::*;

    fn revocation_record(c: &Certificate) -> NewAudit {
        let target = c.id.to_string();
        crate::testing::system_record(
            "certificate.revoke",
            "certificate",
            target,
            serde_json::json!({"serial": c.serial}),
        )
    }

    /// Past a chunk: every certificate revoked once, audited once and in id order, the chain
    /// whole, and the ones revoked before left out (whatever chunk they fall in).
    #[tokio::test]
    async fn a_bulk_revocation_past_a_chunk_revokes_and_audits_each_once() {
        let (store, path) = crate::testing::fresh_store().await;
        let now = Utc::now();
        let authority = crate::testing::new_ca("root", "active", None);
        let issuer = store.add_authority(authority, &[], now).await.unwrap();
        let n = REVOKE_CHUNK * 2 + 100;
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let id = Uuid::new_v4();
            ids.push(id);
            Certificate {
                id,
                name: format!("c{i}"),
                kind: "client".into(),
                api_key_id: None,
                enterprise: "acme".into(),
                serial: format!("{i:040x}"),
                fingerprint: format!("{i:064x}"),
                certificate_pem: "-".into(),
                not_before: now,
                not_after: now + chrono::Duration::days(365),
                created_at: now,
                revoked_at: None,
                revocation_reason: None,
                device: None,
                supersede_at: None,
                renewed_by: None,
                renewed_via: None,
                expiry_warned: None,
                issuer_id: issuer,
                crl_shard: Some(0),
            }
            .into_active_model()
            .insert(store.conn())
            .await
            .unwrap();
        }
        // Two already revoked: one in the first chunk, one in the last (by id order).
        let mut sorted = ids.clone();
        sorted.sort();
        let before = [sorted[3], sorted[n - 3]];
        let records = |revoked: &[Certificate]| revoked.iter().map(revocation_record).collect::<Vec<_>>();
        assert_eq!(
            store
                .revoke_certificates(&before, "keyCompromise", &records, now)
                .await
                .unwrap()
                .len(),
            2
        );
        let audited_before = store.verify_audit().await.unwrap().unwrap();

        // Reversed, with a duplicate: still each once, in id order.
        let mut asked: Vec<Uuid> = ids.iter().rev().copied().collect();
        asked.push(ids[0]);
        let revoked = store
            .revoke_certificates(&asked, "superseded", &records, now)
            .await
            .unwrap();
        assert_eq!(revoked.len(), n - 2);
        assert!(revoked.windows(2).all(|w| w[0].id < w[1].id));
        assert!(
            revoked
                .iter()
                .all(|c| c.revocation_reason.as_deref() == Some("superseded"))
        );
        assert!(!revoked.iter().any(|c| before.contains(&c.id)));
        let audited = store.verify_audit().await.unwrap().unwrap();
        assert_eq!(audited - audited_before, (n - 2) as i64);
        assert_eq!(
            store.certificate(before[1]).await.unwrap().revocation_reason.as_deref(),
            Some("keyCompromise")
        );
        drop(store);
        let _ = std::fs::remove_file(path);
    }
}
