//! Claims (fleet provisioning by claim, as AWS IoT and Azure DPS have it): a manager creates
//! a claim for a tenant and gets its certificate and key once; a factory image carries them;
//! each device enrolls over mTLS with the claim certificate for its own device id (EST
//! `simpleenroll`, see `est`). A claim is good for `max_uses` enrollments until
//! `expires_at`, may register unknown device ids or only enroll provisioned ones, and can be
//! revoked (its certificate with it).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use fleetca_storage::claims::{ClaimFilter, NewClaim};
use fleetca_storage::{Claim, StorageError, Store};
use uuid::Uuid;

use crate::domain::AuditAction;
use crate::domain::CertificateKind;
use crate::domain::{CertificateName, Listing, PageRequest, Principal, Tenant};
use crate::outbox::audit;
use crate::outbox::changes::Changes;
use crate::pki::issuer::Issuer;
use crate::support::Error;
use crate::support::clock::Clock;
use serde_json::json;

/// A validated claim to create.
#[derive(Debug)]
pub struct CreateClaim {
    pub name: CertificateName,
    pub tenant: Tenant,
    pub max_uses: i64,
    pub expires_at: DateTime<Utc>,
    pub register_unknown: bool,
    pub validity_days: i64,
}

/// A claim just created: its certificate and key, shown once.
pub struct CreatedClaim {
    pub claim: Claim,
    pub certificate_pem: String,
    pub private_key_pem: String,
    pub ca_certificate_pem: String,
    pub chain_pem: String,
}

/// The claim flows of the management API.
pub struct ClaimService {
    store: Store,
    issuer: Arc<Issuer>,
    changes: Arc<Changes>,
    clock: Arc<dyn Clock>,
}

impl ClaimService {
    pub fn new(store: Store, issuer: Arc<Issuer>, changes: Arc<Changes>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            issuer,
            changes,
            clock,
        }
    }

    /// Creates a claim for a tenant the caller manages.
    pub async fn create(&self, caller: &Principal, input: CreateClaim) -> Result<CreatedClaim, Error> {
        if !caller.manages(input.tenant.as_str()) {
            return Err(Error::Forbidden(format!(
                "You may only create claims for your enterprise {:?}.",
                caller.enterprise
            )));
        }
        let now = self.clock.now();
        if input.expires_at <= now {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        let id = Uuid::new_v4();
        let tenant = input.tenant.into_inner();
        let (mut cert, key) =
            self.issuer
                .sign_claim(&id.simple().to_string(), &tenant, &tenant, input.expires_at - now)?;
        cert.name = input.name.into_inner();
        let certificate_pem = cert.certificate_pem.clone();
        let new = NewClaim {
            name: cert.name.clone(),
            enterprise: tenant.clone(),
            tenant,
            max_uses: input.max_uses,
            expires_at: input.expires_at,
            register_unknown: input.register_unknown,
            validity_days: input.validity_days,
            created_by: caller.username.clone(),
        };
        let record = audit::by(
            caller,
            AuditAction::ClaimCreate,
            "claim",
            &id.to_string(),
            Some(&new.tenant),
            json!({"name": new.name, "max_uses": new.max_uses, "expires_at": new.expires_at, "register_unknown": new.register_unknown}),
        );
        let (claim, _) = self.store.create_claim(id, new, cert, &[record], now).await?;
        crate::pki::issuer::issued_metric(CertificateKind::Claim);
        tracing::info!(claim_id = %claim.id, tenant = %claim.tenant, max_uses = claim.max_uses, by = %caller.username, "claim created");
        Ok(CreatedClaim {
            claim,
            certificate_pem,
            private_key_pem: key,
            ca_certificate_pem: self.issuer.ca_certificate_pem().to_owned(),
            chain_pem: self.issuer.chain_pem().to_owned(),
        })
    }

    /// One page of the claims the caller may see.
    pub async fn list(
        &self,
        caller: &Principal,
        mut filter: ClaimFilter,
        page: PageRequest,
    ) -> Result<Listing<Claim>, Error> {
        if !caller.pin_enterprise(&mut filter.enterprise) {
            return Ok(Listing::empty());
        }
        Ok(self.store.list_claims(&filter, page.storage()).await?.into())
    }

    /// One claim the caller may see.
    pub async fn get(&self, caller: &Principal, id: Uuid) -> Result<Claim, Error> {
        match self.store.claim(id).await {
            Ok(c) if caller.manages(&c.enterprise) => Ok(c),
            Ok(_) | Err(StorageError::NotFound) => Err(Error::NotFound("claim")),
            Err(e) => Err(e.into()),
        }
    }

    /// Revokes a claim and its certificate; returns once the CRL lists it. Revoking a
    /// revoked claim returns it unchanged.
    pub async fn revoke(&self, caller: &Principal, id: Uuid) -> Result<Claim, Error> {
        let current = self.get(caller, id).await?;
        let record = audit::by(
            caller,
            AuditAction::ClaimRevoke,
            "claim",
            &id.to_string(),
            Some(&current.tenant),
            json!({}),
        );
        let (claim, cert) = self.store.revoke_claim(id, &[record], self.clock.now()).await?;
        if let Some(cert) = cert {
            self.changes.revoked(std::slice::from_ref(&cert)).await?;
            tracing::info!(claim_id = %claim.id, by = %caller.username, "claim revoked");
        }
        Ok(claim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{Kit, admin, csr, manager};

    fn input(max_uses: i64, register_unknown: bool, now: DateTime<Utc>) -> CreateClaim {
        CreateClaim {
            name: CertificateName::parse("line 3").unwrap(),
            tenant: Tenant::parse("acme").unwrap(),
            max_uses,
            expires_at: now + chrono::Duration::days(30),
            register_unknown,
            validity_days: 90,
        }
    }

    async fn claim_certificate(kit: &Kit, created: &CreatedClaim) -> fleetca_storage::Certificate {
        kit.store.certificate(created.claim.certificate_id).await.unwrap()
    }

    #[tokio::test]
    async fn a_claim_enrolls_devices_until_used_up_and_registers_unknown_ones_only_when_allowed() {
        let kit = Kit::new().await;
        let now = kit.clock.now();
        assert!(matches!(
            kit.claims.create(&manager("globex"), input(2, true, now)).await,
            Err(Error::Forbidden(_))
        ));
        let created = kit.claims.create(&admin(), input(2, true, now)).await.unwrap();
        assert!(created.private_key_pem.contains("PRIVATE KEY"));
        let claim_cert = claim_certificate(&kit, &created).await;
        assert_eq!(claim_cert.kind, "claim");
        let cert = kit
            .est
            .enroll_with_claim(&claim_cert, Some("acme"), &csr("new-1"))
            .await
            .unwrap();
        assert_eq!(cert.device.as_deref(), Some("acme/new-1"));
        assert_eq!(
            cert.not_after - cert.not_before,
            chrono::Duration::days(90) + chrono::Duration::minutes(5)
        );
        assert!(kit.store.device("acme", "new-1").await.is_ok(), "registered");
        assert!(matches!(
            kit.est
                .enroll_with_claim(&claim_cert, Some("globex"), &csr("new-2"))
                .await,
            Err(Error::Forbidden(_))
        ));
        kit.est
            .enroll_with_claim(&claim_cert, None, &csr("new-2"))
            .await
            .unwrap();
        assert!(matches!(
            kit.est.enroll_with_claim(&claim_cert, None, &csr("new-3")).await,
            Err(Error::Forbidden(why)) if why.contains("used up")
        ));
        assert!(kit.store.device("acme", "new-3").await.is_err(), "nothing written");
        assert_eq!(kit.claims.get(&admin(), created.claim.id).await.unwrap().uses, 2);

        let strict = kit.claims.create(&admin(), input(5, false, now)).await.unwrap();
        let strict_cert = claim_certificate(&kit, &strict).await;
        assert!(matches!(
            kit.est.enroll_with_claim(&strict_cert, None, &csr("unknown-9")).await,
            Err(Error::Forbidden(why)) if why.contains("not provisioned")
        ));
        assert_eq!(kit.claims.get(&admin(), strict.claim.id).await.unwrap().uses, 0);
    }

    #[tokio::test]
    async fn a_revoked_claim_enrolls_nothing_and_its_certificate_is_on_the_crl() {
        let kit = Kit::new().await;
        let created = kit
            .claims
            .create(&admin(), input(5, true, kit.clock.now()))
            .await
            .unwrap();
        let revoked = kit.claims.revoke(&admin(), created.claim.id).await.unwrap();
        assert!(revoked.revoked_at.is_some());
        assert_eq!(kit.crl.current().unwrap().entries, 1);
        let claim_cert = claim_certificate(&kit, &created).await;
        assert!(matches!(
            kit.est.enroll_with_claim(&claim_cert, None, &csr("new-1")).await,
            Err(Error::Forbidden(why)) if why.contains("revoked")
        ));
        // A claim certificate cannot renew itself either.
        assert!(matches!(
            kit.renewal.reenroll(&claim_cert, &csr("new-1")).await,
            Err(Error::Unauthenticated)
        ));
    }

    #[tokio::test]
    async fn a_claim_cannot_mint_a_certificate_that_passes_for_a_user_and_registers_nothing_it_refuses() {
        let kit = Kit::new().await;
        kit.api_key("svc-billing", "globex").await;
        let created = kit
            .claims
            .create(&admin(), input(5, true, kit.clock.now()))
            .await
            .unwrap();
        let claim_cert = claim_certificate(&kit, &created).await;
        let long = "d".repeat(65);
        for id in ["svc-billing", "fleetca-activation", long.as_str()] {
            assert!(
                matches!(
                    kit.est.enroll_with_claim(&claim_cert, None, &csr(id)).await,
                    Err(Error::Forbidden(_) | Error::Invalid(_))
                ),
                "{id}"
            );
            assert!(kit.store.device("acme", id).await.is_err(), "{id} registered");
        }
        assert_eq!(kit.claims.get(&admin(), created.claim.id).await.unwrap().uses, 0);
    }
}
