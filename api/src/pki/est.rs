//! Enrollment over Secure Transport (RFC 7030): the CA certificates, and `simpleenroll` for
//! a provisioned device (HTTP Digest or Basic, checked against the HA1 fleetca already
//! stores: no new secret), an API key (its Bearer token, for its own MQTT client
//! certificate, counted against its limit) or a device holding a claim certificate (over
//! mTLS, for its own device id). Re-enrollment is `renewal`'s. The wire formats are
//! `fleetca_ca::est`'s; the HTTP layer decodes base64 and answers in RFC 7030's
//! shapes; what each [`Error`] means to a client is the one table's (`crate::error`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use fleetca_ca::digest::{DigestCredentials, Nonce, NonceKey};
use fleetca_ca::{MasterKey, device};
use fleetca_storage::devices::NewDevice;
use fleetca_storage::{Certificate, StorageError, Store};
use subtle::ConstantTimeEq;

use crate::domain::AuditAction;
use crate::domain::CertificateKind;
use crate::domain::{CertificateName, DeviceId, Principal, ValidityHours};
use crate::identity::tokens::Tokens;
use crate::outbox::changes::Changes;
use crate::pki::issuer::{DeviceIssue, Issuer, KeySource, refused};
use crate::support::Error;
use crate::support::clock::Clock;
use crate::support::limits::{FailureLimiter, network};

/// An audit record of a device registering itself through a claim, or its undoing.
fn device_record(tenant: &str, device_id: &str, action: AuditAction, why: &str) -> fleetca_storage::NewAudit {
    let mut record = crate::outbox::audit::by_device(tenant, device_id, action, serde_json::json!({"why": why}));
    record.target_kind = "device".into();
    record.target_id = format!("{tenant}/{device_id}");
    record
}

/// How long a Digest nonce may be used (once).
pub const NONCE_SECONDS: i64 = 300;

/// The EST flows.
pub struct EstService {
    store: Store,
    master: Arc<MasterKey>,
    tokens: Arc<Tokens>,
    issuer: Arc<Issuer>,
    changes: Arc<Changes>,
    clock: Arc<dyn Clock>,
    nonces: NonceKey,
    /// Digest nonces already used, with when they were minted (single use).
    used: Mutex<HashMap<String, i64>>,
    /// Wrong device passwords (Basic or Digest) per device and per address.
    failures: FailureLimiter,
}

/// Wrong device passwords allowed per device and per address within [`FAILURE_WINDOW`];
/// more are refused (429) until it passes, so a password cannot be guessed at a thousand a
/// second.
pub const MAX_FAILURES: u32 = 10;
/// See [`MAX_FAILURES`].
pub const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Device certificates last a year unless the tenant says otherwise.
const DEVICE_VALIDITY_DAYS: i64 = 365;

impl EstService {
    pub fn new(
        store: Store,
        master: Arc<MasterKey>,
        tokens: Arc<Tokens>,
        issuer: Arc<Issuer>,
        changes: Arc<Changes>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let nonces = NonceKey::new(master.derive("fleetca/est/digest-nonce/v1").as_bytes());
        Self {
            store,
            master,
            tokens,
            issuer,
            changes,
            clock,
            nonces,
            used: Mutex::new(HashMap::new()),
            failures: FailureLimiter::new(MAX_FAILURES, FAILURE_WINDOW),
        }
    }

    /// Runs a device password check counted against the device's and the address's limit:
    /// refused at once while either is locked out, the count taken back on success.
    /// `peer` is `None` for a request a trusted proxy forwarded: the proxy's address is every
    /// device's, so only the device's own count applies then. `check` sets `verified` once the
    /// password was right.
    async fn counted<T>(
        &self,
        tenant: &str,
        device_id: &str,
        peer: Option<IpAddr>,
        verified: &std::sync::atomic::AtomicBool,
        check: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let mut keys = vec![format!("device:{tenant}/{device_id}")];
        if let Some(peer) = peer {
            keys.push(format!("ip:{}", network(peer)));
        }
        self.failures
            .begin(&keys)
            .map_err(|retry_after_secs| Error::RateLimited { retry_after_secs })?;
        let outcome = check.await;
        if verified.load(std::sync::atomic::Ordering::Acquire) {
            // The password was right: its count, and the address's, start again.
            self.failures.succeeded(&keys);
        } else if !matches!(outcome, Err(Error::Unauthenticated)) {
            // Nothing was proved either way (an expired nonce, a failure before the check):
            // this attempt counts neither for nor against.
            self.failures.undo(&keys);
        }
        outcome
    }

    /// A new Digest nonce for a challenge.
    pub fn nonce(&self) -> Result<String, Error> {
        Ok(self.nonces.mint(self.clock.now().timestamp())?)
    }

    /// Marks a nonce used; false when it already was (a replay).
    fn use_nonce(&self, nonce: &str, minted: i64) -> bool {
        let now = self.clock.now().timestamp();
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if used.len() > 1024 {
            used.retain(|_, at| now - *at <= NONCE_SECONDS + 5);
        }
        used.insert(nonce.to_owned(), minted).is_none()
    }

    /// The device and its HA1 when it exists, is enabled and its HA1 opens.
    async fn device_ha1(
        &self,
        tenant: &str,
        device_id: &str,
    ) -> Result<Option<(fleetca_storage::Device, String)>, Error> {
        let device = match self.store.device(tenant, device_id).await {
            Ok(d) => d,
            Err(StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let ha1 = match device::open_ha1(&self.master, &device.tenant, &device.device_id, &device.sealed_ha1) {
            Ok(ha1) => ha1,
            Err(e) => {
                tracing::warn!(%tenant, %device_id, error = %e, "a device's sealed HA1 does not open with this master key or is not an HA1; its enrollment is refused");
                return Ok(None);
            }
        };
        Ok(device.is_active.then_some((device, ha1)))
    }

    /// `/simpleenroll` by a device with HTTP Digest (RFC 7616, MD5, `qop=auth`): username =
    /// device id, realm = its realm (the tenant unless provisioned otherwise), the label =
    /// its tenant. Each nonce works once and for [`NONCE_SECONDS`].
    pub async fn enroll_device_digest(
        &self,
        tenant: &str,
        creds: &DigestCredentials,
        method: &str,
        path: &str,
        csr_der: &[u8],
        peer: Option<IpAddr>,
    ) -> Result<Certificate, Error> {
        let name = creds.username.chars().take(64).collect::<String>();
        let verified = std::sync::atomic::AtomicBool::new(false);
        let check = self.digest_enroll(tenant, creds, method, path, csr_der, &verified);
        self.counted(tenant, &name, peer, &verified, check).await
    }

    async fn digest_enroll(
        &self,
        tenant: &str,
        creds: &DigestCredentials,
        method: &str,
        path: &str,
        csr_der: &[u8],
        verified: &std::sync::atomic::AtomicBool,
    ) -> Result<Certificate, Error> {
        let minted = match self
            .nonces
            .check(&creds.nonce, self.clock.now().timestamp(), NONCE_SECONDS)
        {
            Nonce::Fresh(at) => at,
            Nonce::Stale => return Err(Error::Stale),
            Nonce::Invalid => return Err(Error::Unauthenticated),
        };
        if creds.uri != path || DeviceId::parse(&creds.username).is_err() {
            return Err(Error::Unauthenticated);
        }
        let Some((device, ha1)) = self.device_ha1(tenant, &creds.username).await? else {
            return Err(Error::Unauthenticated);
        };
        if creds.realm != device.realm || !creds.verify(&ha1, method) || !self.use_nonce(&creds.nonce, minted) {
            return Err(Error::Unauthenticated);
        }
        verified.store(true, std::sync::atomic::Ordering::Release);
        self.issue_for_device(
            &device.tenant,
            &device.device_id,
            csr_der,
            DeviceIssue::default(),
            DEVICE_VALIDITY_DAYS,
        )
        .await
    }

    async fn issue_for_device(
        &self,
        tenant: &str,
        device_id: &str,
        csr_der: &[u8],
        mut with: DeviceIssue,
        validity_days: i64,
    ) -> Result<Certificate, Error> {
        let csr = fleetca_ca::csr::parse_csr_der(csr_der).map_err(|e| Error::invalid("csr", e.to_string()))?;
        if csr.common_name.as_deref() != Some(device_id) {
            return Err(Error::Forbidden("the CSR's subject CN must be the device id".into()));
        }
        self.check_subject(device_id).await?;
        if with.audit.is_none() {
            with.audit = Some(crate::outbox::audit::by_device(
                tenant,
                device_id,
                AuditAction::CertificateEnroll,
                serde_json::json!({"via": "est", "claim_id": with.claim}),
            ));
        }
        let issued = self
            .issuer
            .issue_device(
                tenant,
                device_id,
                csr.public_key,
                chrono::Duration::days(validity_days),
                with,
            )
            .await
            .map_err(refused)?;
        Ok(issued.certificate)
    }

    /// A device certificate's CN is the device id, and brokers that take a certificate's CN
    /// as the MQTT username (mosquitto's `use_identity_as_username`) would take it for a
    /// user of that name: so no certificate names a device id that is a user's name or
    /// carries fleetca's reserved prefix, and no id longer than a CN may be (64).
    async fn check_subject(&self, device_id: &str) -> Result<(), Error> {
        if device_id.len() > 64 {
            return Err(Error::invalid(
                "csr",
                "a device id longer than 64 characters cannot be a certificate's CN",
            ));
        }
        if device_id.starts_with(crate::domain::Username::RESERVED_PREFIX) {
            return Err(Error::Forbidden(
                "device ids starting with fleetca- get no certificate (the prefix is fleetca's own)".into(),
            ));
        }
        match self.store.user_by_username(device_id).await {
            Ok(_) => Err(Error::Forbidden("this device id is also a user's name: a certificate with it as CN could pass for that user at a broker".into())),
            Err(StorageError::NotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `/simpleenroll` by a device presenting its tenant's claim certificate over mTLS, for
    /// the device id in the CSR's CN. An unknown id is registered (with a random secret it
    /// never learns: it authenticates with its certificate) when the claim allows it.
    pub async fn enroll_with_claim(
        &self,
        claim_certificate: &Certificate,
        label: Option<&str>,
        csr_der: &[u8],
    ) -> Result<Certificate, Error> {
        if !CertificateKind::Claim.is(&claim_certificate.kind) {
            return Err(Error::Forbidden(
                "this certificate re-enrolls with simplereenroll; simpleenroll over mTLS takes a claim certificate"
                    .into(),
            ));
        }
        let claim = match self.store.claim_by_certificate(claim_certificate.id).await {
            Ok(c) => c,
            Err(StorageError::NotFound) => return Err(Error::Unauthenticated),
            Err(e) => return Err(e.into()),
        };
        let now = self.clock.now();
        if claim.revoked_at.is_some() || claim_certificate.revoked_at.is_some() {
            return Err(Error::Forbidden("the claim is revoked".into()));
        }
        if claim.expires_at <= now || claim_certificate.not_after <= now {
            return Err(Error::Forbidden("the claim has expired".into()));
        }
        if claim.uses >= claim.max_uses {
            return Err(Error::Forbidden("the claim has been used up".into()));
        }
        if label.is_some_and(|l| l != claim.tenant) {
            return Err(Error::Forbidden("the claim is for another tenant".into()));
        }
        let csr = fleetca_ca::csr::parse_csr_der(csr_der).map_err(|e| Error::invalid("csr", e.to_string()))?;
        let Some(device_id) = csr.common_name.filter(|cn| DeviceId::parse(cn).is_ok()) else {
            return Err(Error::invalid(
                "csr",
                "the CSR's subject CN must be the device id (1 to 64 of A-Z a-z 0-9 . _ : -)",
            ));
        };
        self.check_subject(&device_id).await?;
        let mut registered = false;
        match self.store.device(&claim.tenant, &device_id).await {
            Ok(d) if d.is_active => {}
            Ok(_) => return Err(Error::Forbidden("the device is disabled".into())),
            Err(StorageError::NotFound) if claim.register_unknown => {
                registered = self.register(&claim.tenant, &device_id).await?;
            }
            Err(StorageError::NotFound) => {
                return Err(Error::Forbidden(
                    "this claim enrolls provisioned devices only, and this device id is not provisioned".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let with = DeviceIssue {
            renews: None,
            claim: Some(claim.id),
            audit: None,
        };
        let cert = match self
            .issue_for_device(&claim.tenant, &device_id, csr_der, with, claim.validity_days)
            .await
        {
            Ok(cert) => cert,
            Err(e) => {
                // Refused (the claim used up meanwhile, say): the device registered for this
                // enrollment goes too.
                if registered {
                    let undo = self
                        .store
                        .delete_device(
                            &claim.tenant,
                            &device_id,
                            &[device_record(
                                &claim.tenant,
                                &device_id,
                                AuditAction::DeviceDelete,
                                "the enrollment it was registered for was refused",
                            )],
                            self.clock.now(),
                        )
                        .await;
                    if let Err(undo) = undo {
                        tracing::warn!(error = %undo, %device_id, "could not remove a device registered for a refused enrollment");
                    }
                    self.changes.device_changed(&claim.tenant, &device_id).await;
                }
                return Err(e);
            }
        };
        tracing::info!(claim_id = %claim.id, tenant = %claim.tenant, %device_id, "device enrolled with a claim");
        Ok(cert)
    }

    /// Registers a device first seen through a claim, with a random secret nobody learns.
    /// True when this call registered it.
    async fn register(&self, tenant: &str, device_id: &str) -> Result<bool, Error> {
        let password = device::generate_password().map_err(Error::from)?;
        let ha1 = device::ha1(device_id, tenant, &password);
        let sealed_ha1 = self
            .master
            .seal(&device::ha1_seal_context(tenant, device_id), ha1.as_bytes())
            .map_err(Error::from)?;
        let new = NewDevice {
            tenant: tenant.to_owned(),
            device_id: device_id.to_owned(),
            realm: tenant.to_owned(),
            sealed_ha1,
            description: Some("registered by a claim".into()),
        };
        let record = device_record(
            tenant,
            device_id,
            AuditAction::DeviceCreate,
            "registered by a claim on first enrollment",
        );
        let registered = match self.store.create_device(new, &[record], self.clock.now()).await {
            Ok(_) => true,
            // A concurrent enrollment of the same id registered it first.
            Err(StorageError::Conflict(_)) => false,
            Err(e) => return Err(e.into()),
        };
        self.changes.device_changed(tenant, device_id).await;
        Ok(registered)
    }

    /// `/cacerts`: the CA certificate as a certs-only SignedData (DER).
    pub fn cacerts(&self) -> Result<Vec<u8>, Error> {
        let certificates = self.issuer.ca_certificates_der();
        let certificates: Vec<&[u8]> = certificates.iter().map(Vec::as_slice).collect();
        Ok(fleetca_ca::est::certs_only(&certificates)?)
    }

    /// `/simpleenroll` by a device with its password (HTTP Basic; username = device id,
    /// the label = its tenant). The CSR must name the device (CN = device id).
    pub async fn enroll_device(
        &self,
        tenant: &str,
        device_id: &str,
        password: &str,
        csr_der: &[u8],
        peer: Option<IpAddr>,
    ) -> Result<Certificate, Error> {
        let verified = std::sync::atomic::AtomicBool::new(false);
        let check = async {
            let Some((device, ha1)) = self.device_ha1(tenant, device_id).await? else {
                return Err(Error::Unauthenticated);
            };
            let presented = device::ha1(device_id, &device.realm, password);
            if !bool::from(presented.as_bytes().ct_eq(ha1.as_bytes())) {
                return Err(Error::Unauthenticated);
            }
            verified.store(true, std::sync::atomic::Ordering::Release);
            self.issue_for_device(tenant, device_id, csr_der, DeviceIssue::default(), DEVICE_VALIDITY_DAYS)
                .await
        };
        self.counted(tenant, device_id, peer, &verified, check).await
    }

    /// `/simpleenroll` by an API key with its token: its own MQTT client certificate
    /// (CN = its username), counted against its limit.
    pub async fn enroll_api_key(&self, caller: &Principal, csr_der: &[u8]) -> Result<Certificate, Error> {
        if !caller.is_service_account {
            return Err(Error::Forbidden("only an API key enrolls its own certificate".into()));
        }
        let csr = fleetca_ca::csr::parse_csr_der(csr_der).map_err(|e| Error::invalid("csr", e.to_string()))?;
        if csr.common_name.as_deref() != Some(caller.username.as_str()) {
            return Err(Error::Forbidden(
                "the CSR's subject CN must be the API key's username".into(),
            ));
        }
        let owner = self
            .tokens
            .user(caller.id)
            .await?
            .filter(|u| u.is_active)
            .ok_or(Error::Unauthenticated)?;
        let name = CertificateName::parse("EST").map_err(Error::Internal)?;
        let validity = ValidityHours::parse(None).map_err(Error::Internal)?;
        let issued = self
            .issuer
            .issue_client(
                &owner,
                name,
                KeySource::Csr(csr.public_key),
                validity,
                None,
                Some(crate::outbox::audit::by(
                    caller,
                    AuditAction::CertificateEnroll,
                    "certificate",
                    "",
                    None,
                    serde_json::json!({"via": "est"}),
                )),
            )
            .await
            .map_err(refused)?;
        Ok(issued.certificate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{Kit, admin, csr};
    use crate::domain::{DeviceId, Secret, Tenant};
    use crate::fleet::devices::DeviceCredential;
    use crate::fleet::devices::DeviceInput;

    #[tokio::test]
    async fn a_device_enrolls_with_its_password_for_its_own_name_only() {
        let kit = Kit::new().await;
        meter_1(&kit).await;
        let cert = kit
            .est
            .enroll_device("acme", "meter-1", "device-password", &csr("meter-1"), None)
            .await
            .unwrap();
        assert_eq!(cert.kind, "device");
        assert_eq!(cert.device.as_deref(), Some("acme/meter-1"));
        assert!(matches!(
            kit.est
                .enroll_device("acme", "meter-1", "wrong", &csr("meter-1"), None)
                .await,
            Err(Error::Unauthenticated)
        ));
        assert!(matches!(
            kit.est
                .enroll_device("acme", "meter-9", "device-password", &csr("meter-9"), None)
                .await,
            Err(Error::Unauthenticated)
        ));
        assert!(matches!(
            kit.est
                .enroll_device("acme", "meter-1", "device-password", &csr("meter-2"), None)
                .await,
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            kit.est
                .enroll_device("acme", "meter-1", "device-password", b"junk", None)
                .await,
            Err(Error::Invalid(_))
        ));
        // The second is its renewal; a third is refused.
        kit.est
            .enroll_device("acme", "meter-1", "device-password", &csr("meter-1"), None)
            .await
            .unwrap();
        assert!(matches!(
            kit.est
                .enroll_device("acme", "meter-1", "device-password", &csr("meter-1"), None)
                .await,
            Err(Error::Forbidden(_))
        ));
        assert!(kit.est.cacerts().unwrap().len() > 100);
    }

    #[tokio::test]
    async fn an_api_key_enrolls_only_its_own_name() {
        let kit = Kit::new().await;
        let (key, _) = kit.api_key("svc-est", "acme").await;
        let caller = crate::domain::Principal::from_user(&key);
        let cert = kit.est.enroll_api_key(&caller, &csr("svc-est")).await.unwrap();
        assert_eq!(cert.api_key_id, Some(key.id));
        assert!(matches!(
            kit.est.enroll_api_key(&caller, &csr("svc-other")).await,
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            kit.est.enroll_api_key(&admin(), &csr("root")).await,
            Err(Error::Forbidden(_))
        ));
    }

    /// Device meter-1 of acme, password `device-password`.
    async fn meter_1(kit: &Kit) {
        let input = DeviceInput {
            tenant: Tenant::parse("acme").unwrap(),
            device_id: DeviceId::parse("meter-1").unwrap(),
            realm: None,
            description: None,
            credential: DeviceCredential::Password(Secret::new("device-password")),
        };
        kit.devices.create(&admin(), input).await.unwrap();
    }

    fn digest_for(kit: &Kit, nonce: &str, password: &str, path: &str) -> DigestCredentials {
        let ha1 = device::ha1("meter-1", "acme", password);
        let ha2 = format!("{:x}", md5_of(&format!("POST:{path}")));
        let response = format!("{:x}", md5_of(&format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}")));
        let _ = kit;
        DigestCredentials {
            username: "meter-1".into(),
            realm: "acme".into(),
            nonce: nonce.into(),
            uri: path.into(),
            response,
            algorithm: Some("MD5".into()),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("c0ffee".into()),
            opaque: None,
        }
    }

    fn md5_of(text: &str) -> impl std::fmt::LowerHex {
        use md5::Digest;
        md5::Md5::digest(text.as_bytes())
    }

    #[tokio::test]
    async fn an_expired_nonce_neither_counts_nor_resets_the_wrong_passwords() {
        let kit = Kit::new().await;
        meter_1(&kit).await;
        let peer = Some(IpAddr::from([192, 0, 2, 7]));
        let request = csr("meter-1");
        let wrong = || kit.est.enroll_device("acme", "meter-1", "guess", &request, peer);
        for _ in 0..MAX_FAILURES - 1 {
            assert!(matches!(wrong().await, Err(Error::Unauthenticated)));
        }
        // A nonce of ours that has expired: the challenge again, and the count stays.
        let path = "/.well-known/est/acme/simpleenroll";
        let nonce = kit.est.nonce().unwrap();
        kit.clock
            .set(kit.clock.now() + chrono::Duration::seconds(NONCE_SECONDS + 1));
        let stale = digest_for(&kit, &nonce, "guess", path);
        assert!(matches!(
            kit.est
                .enroll_device_digest("acme", &stale, "POST", path, &csr("meter-1"), peer)
                .await,
            Err(Error::Stale)
        ));
        assert!(matches!(wrong().await, Err(Error::Unauthenticated)), "the tenth");
        assert!(matches!(wrong().await, Err(Error::RateLimited { .. })));
        // The right password waits too, then works once the window has passed.
        assert!(matches!(
            kit.est
                .enroll_device("acme", "meter-1", "device-password", &csr("meter-1"), peer)
                .await,
            Err(Error::RateLimited { .. })
        ));
    }

    #[tokio::test]
    async fn digest_nonces_work_once_and_expire() {
        let kit = Kit::new().await;
        meter_1(&kit).await;
        let path = "/.well-known/est/acme/simpleenroll";
        let nonce = kit.est.nonce().unwrap();
        let creds = digest_for(&kit, &nonce, "device-password", path);
        let cert = kit
            .est
            .enroll_device_digest("acme", &creds, "POST", path, &csr("meter-1"), None)
            .await
            .unwrap();
        assert_eq!(cert.device.as_deref(), Some("acme/meter-1"));
        // The same nonce again: a replay.
        assert!(matches!(
            kit.est
                .enroll_device_digest("acme", &creds, "POST", path, &csr("meter-1"), None)
                .await,
            Err(Error::Unauthenticated)
        ));
        // Wrong password, another URI, a foreign nonce.
        let fresh = kit.est.nonce().unwrap();
        for (creds, uri) in [
            (digest_for(&kit, &fresh, "wrong-password", path), path),
            (
                digest_for(&kit, &fresh, "device-password", path),
                "/.well-known/est/other/simpleenroll",
            ),
            (digest_for(&kit, "Zm9yZWlnbg", "device-password", path), path),
        ] {
            assert!(matches!(
                kit.est
                    .enroll_device_digest("acme", &creds, "POST", uri, &csr("meter-1"), None)
                    .await,
                Err(Error::Unauthenticated)
            ));
        }
        // An old nonce is stale: the client is challenged again.
        let old = kit.est.nonce().unwrap();
        kit.clock
            .set(kit.clock.now() + chrono::Duration::seconds(NONCE_SECONDS + 1));
        let creds = digest_for(&kit, &old, "device-password", path);
        assert!(matches!(
            kit.est
                .enroll_device_digest("acme", &creds, "POST", path, &csr("meter-1"), None)
                .await,
            Err(Error::Stale)
        ));
    }
}
