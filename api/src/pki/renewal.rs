//! Renewal: a device or API key replaces its certificate with the certificate itself (EST
//! `simplereenroll` over mTLS), or a manager renews one (`POST …/{id}/renew/`). The new
//! certificate keeps the identity and the binding; the old one stays valid for a grace
//! (`renewal_grace_hours`) in which it counts against no limit — a device that lost the
//! answer renews again and the lost renewal is revoked at once — and is then revoked as
//! `superseded` by [`RenewalService::supersede_due`], which a background task runs.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fleetca_storage::certificates::Renewal;
use fleetca_storage::{Certificate, StorageError, Store};
use uuid::Uuid;

use crate::domain::AuditAction;
use crate::domain::CertificateKind;
use crate::domain::{CertificateName, Principal, ValidityHours};
use crate::identity::tokens::Tokens;
use crate::outbox::audit;
use crate::outbox::changes::Changes;
use crate::pki::issuer::{DeviceIssue, Issued, Issuer, KeySource, refused};
use crate::support::Error;
use crate::support::clock::Clock;
use serde_json::json;

/// When a certificate may renew itself, and how long the old one lives on.
#[derive(Clone, Copy, Debug)]
pub struct RenewalPolicy {
    /// Re-enrollment opens when this share of the lifetime is left (percent; 33 = the last third).
    pub window_percent: u32,
    /// How long after expiry a certificate may still re-enroll (devices offline for months);
    /// `None`: not at all.
    pub after_expiry: Option<chrono::Duration>,
    /// How long a renewed certificate stays valid before it is revoked as superseded.
    pub grace: chrono::Duration,
}

impl Default for RenewalPolicy {
    fn default() -> Self {
        Self {
            window_percent: 33,
            after_expiry: None,
            grace: chrono::Duration::hours(24),
        }
    }
}

/// The renewal flows.
pub struct RenewalService {
    pub(crate) store: Store,
    pub(crate) issuer: Arc<Issuer>,
    pub(crate) tokens: Arc<Tokens>,
    pub(crate) changes: Arc<Changes>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) policy: RenewalPolicy,
}

/// A certificate's lifetime as the validity of its renewal: whole hours, so the few
/// minutes each certificate is backdated by do not add up over renewals.
fn lifetime(cert: &Certificate) -> chrono::Duration {
    chrono::Duration::hours((cert.not_after - cert.not_before).num_hours())
}

impl RenewalService {
    /// The policy (for the HTTPS listener: whether expired certificates may still connect).
    pub fn policy(&self) -> RenewalPolicy {
        self.policy
    }

    /// The stored record of a certificate a client presented (over TLS or through a trusted
    /// proxy), if fleetca's CA signed it. Says nothing yet of revocation or expiry.
    pub async fn presented(&self, der: &[u8]) -> Result<Option<Certificate>, Error> {
        let Some(fingerprint) = self.issuer.issued_here(der) else {
            return Ok(None);
        };
        match self.store.certificate_by_fingerprint(&fingerprint).await {
            Ok(c) => Ok(Some(c)),
            Err(StorageError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a presented certificate authenticates anything now: not revoked, not past
    /// its renewal grace, and not expired (or, for re-enrollment, within the after-expiry
    /// window when one is set).
    pub fn usable(&self, cert: &Certificate, for_reenroll: bool) -> bool {
        let now = self.clock.now();
        if cert.revoked_at.is_some() || cert.supersede_at.is_some_and(|t| t <= now) {
            return false;
        }
        if cert.not_after > now {
            return true;
        }
        for_reenroll && self.policy.after_expiry.is_some_and(|d| now <= cert.not_after + d)
    }

    /// When `cert` may first renew itself.
    pub fn window_opens(&self, cert: &Certificate) -> DateTime<Utc> {
        cert.not_after - lifetime(cert) * i32::try_from(self.policy.window_percent.min(100)).unwrap_or(100) / 100
    }

    /// `simplereenroll`: the certificate presented over mTLS renews itself for the CSR's key.
    pub async fn reenroll(&self, current: &Certificate, csr_der: &[u8]) -> Result<Issued, Error> {
        let now = self.clock.now();
        if !self.usable(current, true) {
            if current.revoked_at.is_none() && current.not_after <= now {
                return Err(Error::Forbidden(
                    "the certificate has expired; enroll again with a first credential".into(),
                ));
            }
            return Err(Error::Unauthenticated);
        }
        if !CertificateKind::Device.is(&current.kind) && !CertificateKind::Client.is(&current.kind) {
            return Err(Error::Forbidden(
                "only device and API-key certificates re-enroll (a claim certificate enrolls with simpleenroll)".into(),
            ));
        }
        // A renewal retried within its grace is not held to the window: it was open before.
        if current.supersede_at.is_none() && now < self.window_opens(current) {
            return Err(Error::Forbidden(format!(
                "this certificate may renew itself from {} on",
                self.window_opens(current)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        let csr = fleetca_ca::csr::parse_csr_der(csr_der).map_err(|e| Error::invalid("csr", e.to_string()))?;
        let renews = Some(Renewal {
            old: current.id,
            supersede_at: now + self.policy.grace,
            via: "est",
        });
        let issued = if CertificateKind::Device.is(&current.kind) {
            let Some((tenant, device_id)) = current.device.as_deref().and_then(|d| d.split_once('/')) else {
                return Err(Error::Internal("a device certificate without its device".into()));
            };
            if csr.common_name.as_deref() != Some(device_id) {
                return Err(Error::Forbidden("the CSR's subject CN must be the device id".into()));
            }
            match self.store.device(tenant, device_id).await {
                Ok(d) if d.is_active => {}
                Ok(_) | Err(StorageError::NotFound) => {
                    return Err(Error::Forbidden("the device is disabled or deleted".into()));
                }
                Err(e) => return Err(e.into()),
            }
            self.issuer
                .issue_device(
                    tenant,
                    device_id,
                    csr.public_key,
                    lifetime(current),
                    DeviceIssue {
                        renews,
                        claim: None,
                        audit: Some(audit::by_device(
                            tenant,
                            device_id,
                            AuditAction::CertificateRenew,
                            json!({"via": "est", "renews": current.id}),
                        )),
                    },
                )
                .await
                .map_err(refused)?
        } else {
            let owner = match current.api_key_id {
                Some(id) => self.tokens.user(id).await?,
                None => None,
            };
            let Some(owner) = owner.filter(|u| u.is_active && u.is_service_account) else {
                return Err(Error::Forbidden("the API key is deactivated".into()));
            };
            if csr.common_name.as_deref() != Some(owner.username.as_str()) {
                return Err(Error::Forbidden(
                    "the CSR's subject CN must be the API key's username".into(),
                ));
            }
            let name = CertificateName::parse(&current.name).map_err(Error::Internal)?;
            self.issuer
                .issue_client(
                    &owner,
                    name,
                    KeySource::Csr(csr.public_key),
                    self.validity_of(current),
                    renews,
                    Some(audit::by(
                        &Principal::from_user(&owner),
                        AuditAction::CertificateRenew,
                        "certificate",
                        "",
                        None,
                        json!({"via": "est", "renews": current.id}),
                    )),
                )
                .await
                .map_err(refused)?
        };
        self.discard(&issued).await?;
        Ok(issued)
    }

    fn validity_of(&self, cert: &Certificate) -> ValidityHours {
        ValidityHours::parse(Some(lifetime(cert).num_hours())).unwrap_or_default()
    }

    /// Publishes the revocations a renewal made (see `Stored::discarded`).
    async fn discard(&self, issued: &Issued) -> Result<(), Error> {
        self.changes.revoked(&issued.discarded).await
    }

    /// A manager renews a client or device certificate of their scope: a new key (or the
    /// CSR's), the same name and binding, the old one superseded after the grace.
    pub async fn renew(&self, caller: &Principal, id: Uuid, key: KeySource) -> Result<Issued, Error> {
        let current = match self.store.certificate(id).await {
            Ok(c)
                if (CertificateKind::Client.is(&c.kind) || CertificateKind::Device.is(&c.kind))
                    && caller.manages(&c.enterprise) =>
            {
                c
            }
            Ok(_) | Err(StorageError::NotFound) => return Err(Error::NotFound("certificate")),
            Err(e) => return Err(e.into()),
        };
        let now = self.clock.now();
        if !self.usable(&current, false) {
            return Err(Error::Conflict(
                "This certificate is revoked, superseded or expired; create a new one instead.".into(),
            ));
        }
        let renews = Some(Renewal {
            old: current.id,
            supersede_at: now + self.policy.grace,
            via: "api",
        });
        let record = audit::by(
            caller,
            AuditAction::CertificateRenew,
            "certificate",
            "",
            None,
            json!({"via": "api", "renews": current.id}),
        );
        let issued = if CertificateKind::Device.is(&current.kind) {
            let KeySource::Csr(public_key) = key else {
                return Err(Error::invalid(
                    "csr",
                    "a device certificate renews only for the device's own key: send its CSR",
                ));
            };
            let Some((tenant, device_id)) = current.device.as_deref().and_then(|d| d.split_once('/')) else {
                return Err(Error::Internal("a device certificate without its device".into()));
            };
            self.issuer
                .issue_device(
                    tenant,
                    device_id,
                    public_key,
                    lifetime(&current),
                    DeviceIssue {
                        renews,
                        claim: None,
                        audit: Some(record),
                    },
                )
                .await?
        } else {
            let owner = match current.api_key_id {
                Some(k) => self.tokens.user(k).await?,
                None => None,
            };
            let Some(owner) = owner.filter(|u| u.is_active) else {
                return Err(Error::Conflict("This certificate's API key is deactivated.".into()));
            };
            let name = CertificateName::parse(&current.name).map_err(Error::Internal)?;
            self.issuer
                .issue_client(&owner, name, key, self.validity_of(&current), renews, Some(record))
                .await?
        };
        self.discard(&issued).await?;
        tracing::info!(old = %current.id, new = %issued.certificate.id, by = %caller.username, "certificate renewed");
        Ok(issued)
    }

    /// Revokes, as superseded, the renewed certificates whose grace has passed, and
    /// publishes the CRL listing them. Returns how many.
    pub async fn supersede_due(&self) -> Result<usize, Error> {
        let now = self.clock.now();
        let due = self.store.due_supersessions(now).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let revoked = self
            .store
            .revoke_certificates(
                &due,
                fleetca_storage::certificates::SUPERSEDED,
                &audit::revocations(
                    audit::system(AuditAction::CertificateRevoke, "certificate", "", None, json!({})),
                    fleetca_storage::certificates::SUPERSEDED,
                ),
                now,
            )
            .await?;
        self.changes.revoked(&revoked).await?;
        tracing::info!(count = revoked.len(), "renewed certificates revoked as superseded");
        Ok(revoked.len())
    }

    /// Runs [`RenewalService::supersede_due`] every half grace (at least every second, at
    /// most every minute) until the process stops.
    pub fn spawn(self: &Arc<Self>) {
        let me = self.clone();
        let every = (me.policy.grace / 2)
            .to_std()
            .unwrap_or(Duration::from_secs(60))
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            loop {
                interval.tick().await;
                if let Err(e) = me.supersede_due().await {
                    tracing::warn!(error = %e, "could not revoke superseded certificates; will retry");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{Kit, admin, csr};
    use crate::domain::{DeviceId, Secret, Tenant};
    use crate::fleet::devices::DeviceCredential;
    use crate::fleet::devices::{DeviceChange, DeviceInput};

    async fn device(kit: &Kit, id: &str) {
        let input = DeviceInput {
            tenant: Tenant::parse("acme").unwrap(),
            device_id: DeviceId::parse(id).unwrap(),
            realm: None,
            description: None,
            credential: DeviceCredential::Password(Secret::new("device-password")),
        };
        kit.devices.create(&admin(), input).await.unwrap();
    }

    async fn enrolled(kit: &Kit, id: &str) -> Certificate {
        kit.est
            .enroll_device("acme", id, "device-password", &csr(id), None)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_device_renews_in_the_last_third_keeps_its_limit_and_the_old_one_is_superseded_after_the_grace() {
        let kit = Kit::new().await;
        device(&kit, "meter-1").await;
        let first = enrolled(&kit, "meter-1").await;
        let start = kit.clock.now();
        // Too early: two thirds of the lifetime are left.
        assert!(matches!(
            kit.renewal.reenroll(&first, &csr("meter-1")).await,
            Err(Error::Forbidden(_))
        ));
        kit.clock.set(start + chrono::Duration::days(250));
        assert!(matches!(
            kit.renewal.reenroll(&first, &csr("meter-2")).await,
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            kit.renewal.reenroll(&first, b"junk").await,
            Err(Error::Invalid(_))
        ));
        let second = kit.renewal.reenroll(&first, &csr("meter-1")).await.unwrap().certificate;
        assert_eq!(second.device.as_deref(), Some("acme/meter-1"));
        assert_eq!(second.not_after - second.not_before, first.not_after - first.not_before);
        let old = kit.store.certificate(first.id).await.unwrap();
        assert_eq!(old.renewed_by, Some(second.id));
        assert!(old.revoked_at.is_none(), "the old certificate works during the grace");
        // The renewed one counts for nothing: the device still has room for one more.
        let extra = enrolled(&kit, "meter-1").await;
        assert!(matches!(
            kit.est
                .enroll_device("acme", "meter-1", "device-password", &csr("meter-1"), None)
                .await,
            Err(Error::Forbidden(_))
        ));
        // A renewal never takes a device over its limit: it replaces what it renews.
        let public_key = fleetca_ca::csr::parse_csr_der(&csr("meter-1")).unwrap().public_key;
        kit.renewal
            .renew(&admin(), extra.id, KeySource::Csr(public_key))
            .await
            .unwrap();
        assert!(matches!(
            kit.est
                .enroll_device("acme", "meter-1", "device-password", &csr("meter-1"), None)
                .await,
            Err(Error::Forbidden(_))
        ));
        // The answer was lost: renewing the old one again replaces the lost renewal at once.
        let third = kit.renewal.reenroll(&old, &csr("meter-1")).await.unwrap();
        let lost = kit.store.certificate(second.id).await.unwrap();
        assert_eq!(lost.revocation_reason.as_deref(), Some("superseded"));
        assert_eq!(
            third.discarded.iter().map(|d| d.id).collect::<Vec<_>>(),
            vec![second.id]
        );
        assert_eq!(kit.crl.current().unwrap().entries, 1);
        // After the grace the old one is revoked as superseded, and authenticates nothing.
        assert_eq!(kit.renewal.supersede_due().await.unwrap(), 0);
        kit.clock
            .set(start + chrono::Duration::days(251) + chrono::Duration::hours(1));
        // The first and `extra`, both renewed.
        assert_eq!(kit.renewal.supersede_due().await.unwrap(), 2);
        let old = kit.store.certificate(first.id).await.unwrap();
        assert_eq!(old.revocation_reason.as_deref(), Some("superseded"));
        assert_eq!(kit.crl.current().unwrap().entries, 3);
        assert!(matches!(
            kit.renewal.reenroll(&old, &csr("meter-1")).await,
            Err(Error::Unauthenticated)
        ));
    }

    #[tokio::test]
    async fn an_expired_certificate_renews_only_within_the_after_expiry_window() {
        let kit = Kit::new().await;
        device(&kit, "meter-3").await;
        let cert = enrolled(&kit, "meter-3").await;
        kit.clock.set(cert.not_after + chrono::Duration::days(1));
        assert!(matches!(
            kit.renewal.reenroll(&cert, &csr("meter-3")).await,
            Err(Error::Forbidden(why)) if why.contains("expired")
        ));
    }

    #[tokio::test]
    async fn disabling_a_device_revokes_its_certificates_and_its_renewal() {
        let kit = Kit::new().await;
        device(&kit, "meter-4").await;
        let cert = enrolled(&kit, "meter-4").await;
        let change = DeviceChange {
            is_active: Some(false),
            description: None,
        };
        kit.devices.change(&admin(), "acme", "meter-4", change).await.unwrap();
        let cert = kit.store.certificate(cert.id).await.unwrap();
        assert_eq!(cert.revocation_reason.as_deref(), Some("privilegeWithdrawn"));
        assert!(!kit.renewal.usable(&cert, true));
        assert_eq!(kit.crl.current().unwrap().entries, 1);
    }

    #[tokio::test]
    async fn an_api_key_certificate_is_renewed_by_a_manager_with_a_new_key() {
        let kit = Kit::new().await;
        let (key, _) = kit.api_key("svc-renew", "acme").await;
        let created = kit.certificate(&key).await;
        let old = created.record.certificate;
        let renewed = kit.renewal.renew(&admin(), old.id, KeySource::Generate).await.unwrap();
        assert!(renewed.private_key_pem.is_some());
        assert_eq!(renewed.certificate.api_key_id, Some(key.id));
        assert_eq!(renewed.certificate.name, old.name);
        let old = kit.store.certificate(old.id).await.unwrap();
        assert!(old.supersede_at.is_some());
        // Another enterprise's manager sees nothing to renew.
        assert!(matches!(
            kit.renewal
                .renew(&crate::app::testing::manager("globex"), old.id, KeySource::Generate)
                .await,
            Err(Error::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_renewal_chain_keeps_one_certificate_in_its_grace_and_a_managers_renewal_is_final() {
        let kit = Kit::new().await;
        device(&kit, "meter-5").await;
        let a = enrolled(&kit, "meter-5").await;
        kit.clock.set(kit.clock.now() + chrono::Duration::days(300));
        let b = kit.renewal.reenroll(&a, &csr("meter-5")).await.unwrap().certificate;
        // B renews itself while A is not revoked yet (the sweep has not run): A goes at once.
        kit.clock.set(kit.clock.now() + chrono::Duration::days(250));
        let c = kit.renewal.reenroll(&b, &csr("meter-5")).await.unwrap();
        assert_eq!(c.discarded.iter().map(|d| d.id).collect::<Vec<_>>(), vec![a.id]);
        let a = kit.store.certificate(a.id).await.unwrap();
        assert_eq!(a.revocation_reason.as_deref(), Some("superseded"));
        // A manager renews C (say it leaked): C cannot renew itself again during its grace,
        // which would revoke the manager's renewal.
        let c = c.certificate;
        let public_key = fleetca_ca::csr::parse_csr_der(&csr("meter-5")).unwrap().public_key;
        kit.renewal
            .renew(&admin(), c.id, KeySource::Csr(public_key))
            .await
            .unwrap();
        let c = kit.store.certificate(c.id).await.unwrap();
        assert!(matches!(
            kit.renewal.reenroll(&c, &csr("meter-5")).await,
            Err(Error::Forbidden(why)) if why.contains("manager")
        ));
    }
}
