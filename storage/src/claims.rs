//! Claims: a claim certificate (kind `claim`) with which the devices of a tenant enroll
//! their own certificates, a counted number of times, until it expires or is revoked.
//! Uses are taken in the issue queue's transaction (see `certificates::NewCertificate::claim`).

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

use crate::audit::NewAudit;
use crate::certificates::NewCertificate;
use crate::entity::certificates::{ActiveModel as CertificateModel, Entity as Certificates};
use crate::entity::claims::{ActiveModel, Column, Entity as Claims};
use crate::{Certificate, Claim, Page, StorageError, Store};

/// A claim to create, with its certificate.
#[derive(Clone, Debug)]
pub struct NewClaim {
    pub name: String,
    pub enterprise: String,
    pub tenant: String,
    pub max_uses: i64,
    pub expires_at: DateTime<Utc>,
    pub register_unknown: bool,
    pub validity_days: i64,
    pub created_by: String,
}

/// Filters of a claim listing.
#[derive(Clone, Debug, Default)]
pub struct ClaimFilter {
    pub enterprise: Option<String>,
    pub tenant: Option<String>,
}

impl Store {
    /// Stores a claim and its certificate in one transaction.
    pub async fn create_claim(
        &self,
        id: Uuid,
        claim: NewClaim,
        cert: NewCertificate,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<(Claim, Certificate), StorageError> {
        let txn = self.write_txn().await?;
        let certificate = Certificate {
            id: Uuid::new_v4(),
            name: cert.name,
            kind: cert.kind,
            api_key_id: None,
            enterprise: cert.enterprise,
            serial: cert.serial,
            fingerprint: cert.fingerprint,
            certificate_pem: cert.certificate_pem,
            not_before: cert.not_before,
            not_after: cert.not_after,
            created_at: now,
            revoked_at: None,
            revocation_reason: None,
            device: None,
            supersede_at: None,
            renewed_by: None,
            renewed_via: None,
            expiry_warned: None,
            issuer_id: cert.issuer_id,
            crl_shard: cert.crl_shard,
        };
        Certificates::insert(CertificateModel::from(certificate.clone()))
            .exec(&txn)
            .await?;
        let model = ActiveModel {
            id: Set(id),
            name: Set(claim.name),
            enterprise: Set(claim.enterprise),
            tenant: Set(claim.tenant),
            certificate_id: Set(certificate.id),
            max_uses: Set(claim.max_uses),
            uses: Set(0),
            expires_at: Set(claim.expires_at),
            register_unknown: Set(claim.register_unknown),
            validity_days: Set(claim.validity_days),
            created_by: Set(claim.created_by),
            created_at: Set(now),
            revoked_at: Set(None),
        };
        let claim = model.insert(&txn).await?;
        crate::rows::commit_audited(txn, audit, now).await?;
        Ok((claim, certificate))
    }

    /// A claim by id.
    pub async fn claim(&self, id: Uuid) -> Result<Claim, StorageError> {
        Claims::find_by_id(id)
            .one(self.conn())
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// The claim a claim certificate belongs to.
    pub async fn claim_by_certificate(&self, certificate_id: Uuid) -> Result<Claim, StorageError> {
        Claims::find()
            .filter(Column::CertificateId.eq(certificate_id))
            .one(self.conn())
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// One page of claims, newest first, and the total that match.
    pub async fn list_claims(&self, filter: &ClaimFilter, page: Page) -> Result<(Vec<Claim>, u64), StorageError> {
        let mut cond = Condition::all();
        if let Some(e) = &filter.enterprise {
            cond = cond.add(Column::Enterprise.eq(e.as_str()));
        }
        if let Some(t) = &filter.tenant {
            cond = cond.add(Column::Tenant.eq(t.as_str()));
        }
        let query = Claims::find().filter(cond);
        self.page_of(
            query,
            |q| q.order_by_desc(Column::CreatedAt).order_by_asc(Column::Id),
            page,
        )
        .await
    }

    /// Revokes a claim and its certificate in one transaction. Returns the claim and the
    /// certificate when this call revoked it (`None` when the claim was already revoked).
    pub async fn revoke_claim(
        &self,
        id: Uuid,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<(Claim, Option<Certificate>), StorageError> {
        let txn = self.write_txn().await?;
        let claim = Claims::find_by_id(id).one(&txn).await?.ok_or(StorageError::NotFound)?;
        if claim.revoked_at.is_some() {
            return Ok((claim, None));
        }
        let mut model: ActiveModel = claim.into();
        model.revoked_at = Set(Some(now));
        let claim = model.update(&txn).await?;
        let cert = Certificates::find_by_id(claim.certificate_id)
            .one(&txn)
            .await?
            .ok_or(StorageError::NotFound)?;
        let cert = if cert.revoked_at.is_none() {
            let mut m: CertificateModel = cert.into();
            m.revoked_at = Set(Some(now));
            m.revocation_reason = Set(Some("cessationOfOperation".into()));
            Some(m.update(&txn).await?)
        } else {
            None
        };
        crate::rows::commit_audited(txn, audit, now).await?;
        Ok((claim, cert))
    }
}
