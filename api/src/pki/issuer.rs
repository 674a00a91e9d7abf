//! Signing and storing certificates: a key made here or taken from a CSR, signed by the CA,
//! stored through the issue queue (group commit; the per-key limit checked in the same
//! transaction as the insert). Who may ask for a certificate is decided by the caller of
//! this module (`certificates` for the API, the `server-cert` command for operators).

use std::sync::Arc;

use fleetca_ca::{Authority, ClientProfile, IssuedCertificate, PublicKey, ServerProfile, generate_p256};
use fleetca_storage::certificates::{NewCertificate, Renewal};
use fleetca_storage::issuance::{IssueJob, IssueQueue, Stored};
use fleetca_storage::{Certificate, StorageError, User};

use crate::domain::AuditAction;
use crate::domain::CertificateKind;
use crate::domain::{CertificateName, ServerCertRequest, ValidityHours};
use crate::pki::authorities::Authorities;
use crate::support::Error;
use crate::support::clock::Clock;

/// In EST a refusal is a 403 (RFC 7030 knows no conflict): what issuance refuses (a used-up
/// claim, a limit, a disabled device) is the caller's to fix, not a clash of two writes.
pub fn refused(e: Error) -> Error {
    match e {
        Error::Conflict(why) => Error::Forbidden(why),
        other => other,
    }
}

/// The public key of a PKCS#10 CSR whose signature checked out.
#[derive(Clone, Debug)]
pub struct CsrKey(fleetca_ca::PublicKey);

impl CsrKey {
    pub fn parse(pem: &str) -> Result<Self, String> {
        fleetca_ca::csr::parse_csr_pem(pem).map(Self).map_err(|e| e.to_string())
    }
    pub fn into_inner(self) -> fleetca_ca::PublicKey {
        self.0
    }
}

/// At most this many active client certificates per API key.
pub const MAX_ACTIVE_PER_KEY: u64 = 10;
/// At most this many active certificates per device: the current one and its renewal.
pub const MAX_ACTIVE_PER_DEVICE: u64 = 2;

/// Where a client certificate's key comes from.
pub enum KeySource {
    /// fleetca makes a P-256 key and returns it once.
    Generate,
    /// The public key of a CSR; the private key never leaves its owner.
    Csr(PublicKey),
}

/// A certificate just made, with its private key when fleetca made the key.
pub struct Issued {
    pub certificate: Certificate,
    pub private_key_pem: Option<String>,
    /// What the renewal revoked now (see [`Stored`]).
    pub discarded: Vec<Certificate>,
}

/// What else a device certificate's issuance does in its transaction.
#[derive(Clone, Debug, Default)]
pub struct DeviceIssue {
    /// It renews this certificate.
    pub renews: Option<Renewal>,
    /// It takes a use of this claim.
    pub claim: Option<uuid::Uuid>,
    /// The audit record stored with it (its target filled in by storage).
    pub audit: Option<fleetca_storage::NewAudit>,
}

/// Counts a certificate issued, by kind (`fleetca_certificates_issued_total`).
pub fn issued_metric(kind: CertificateKind) {
    metrics::counter!("fleetca_certificates_issued_total", "kind" => kind.as_str()).increment(1);
}

fn refusal(e: StorageError, limit: &str) -> Error {
    match e {
        StorageError::LimitReached => Error::Conflict(limit.to_owned()),
        StorageError::Conflict(why) => Error::Conflict(format!("{why}.")),
        other => other.into(),
    }
}

const KEY_LIMIT: &str =
    "This API key already has 10 active certificates, the most allowed; revoke one before creating another.";
const DEVICE_LIMIT: &str = "This device already has 2 active certificates; revoke one first.";

/// Signs (with the issuing CA) and stores certificates.
pub struct Issuer {
    cas: Arc<Authorities>,
    /// The issuing CA.
    ca: Arc<Authority>,
    issuer_id: i32,
    queue: IssueQueue,
    clock: Arc<dyn Clock>,
    /// The issuing CA's CRL shards: each new certificate names the next one in turn as its
    /// distribution point (its own CRL when it has no shards).
    shard_urls: Vec<String>,
    crl_url: String,
    next_shard: std::sync::atomic::AtomicUsize,
    /// The intermediates a client presents after its certificate (empty when a root issues).
    chain_pem: String,
    /// The roots clients trust.
    roots_pem: String,
    /// The enterprise server certificates are filed under (the admins').
    server_enterprise: String,
    /// Set when the issuing CA was revoked (by another instance, or the CLI) before this
    /// instance restarted with a new one: it then issues nothing.
    stopped: std::sync::atomic::AtomicBool,
}

impl Issuer {
    pub fn new(cas: Arc<Authorities>, queue: IssueQueue, clock: Arc<dyn Clock>, server_enterprise: String) -> Self {
        Self {
            stopped: std::sync::atomic::AtomicBool::new(false),
            ca: cas.issuer(),
            issuer_id: cas.issuing().id,
            crl_url: cas.issuing().crl_url.clone(),
            shard_urls: cas.issuing().crl_shards().to_vec(),
            // From a random shard: instances and restarts do not all favour the first ones.
            next_shard: std::sync::atomic::AtomicUsize::new(usize::from(uuid::Uuid::new_v4().as_bytes()[0])),
            chain_pem: cas.chain_pem(),
            roots_pem: cas.roots_pem(),
            cas,
            queue,
            clock,
            server_enterprise,
        }
    }

    /// The root certificates (PEM) a client trusts, returned beside every new certificate:
    /// the one new certificates chain to, and any other root not retired (see
    /// [`Authorities::roots_pem`]).
    pub fn ca_certificate_pem(&self) -> &str {
        &self.roots_pem
    }

    /// The intermediates between a new certificate and its root (PEM, nearest first; empty
    /// when the root issues): what a client presents after its own certificate.
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// The trust bundle a broker loads (see [`Authorities::bundle_pem`]).
    pub fn trust_bundle_pem(&self) -> String {
        self.cas.bundle_pem()
    }

    /// The CRL shard the next certificate names, and its URL (none and the CA's own CRL when
    /// its CRL has no shards).
    fn shard(&self) -> (Option<i16>, &str) {
        let n = self.next_shard.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.shard_urls.len() {
            0 => (None, &self.crl_url),
            count => {
                let shard = n % count;
                let url = self.shard_urls.get(shard).map_or(self.crl_url.as_str(), String::as_str);
                (i16::try_from(shard).ok(), url)
            }
        }
    }

    /// The issuing CA, unless it was revoked since this instance started.
    fn signer(&self) -> Result<&Authority, Error> {
        if self.stopped.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::IssuerRevoked);
        }
        Ok(&self.ca)
    }

    /// Stops issuing when `revoked` is the CA this instance issues from; returns whether it
    /// was (then certificates it signed since the revocation must be revoked too).
    pub fn stop_if_issuing(&self, revoked: i32) -> bool {
        let mine = revoked == self.issuer_id;
        if mine {
            self.stopped.store(true, std::sync::atomic::Ordering::Release);
            tracing::error!(
                ca = revoked,
                "the issuing CA was revoked: this instance issues nothing until it restarts with another (activate one, then restart)"
            );
        }
        mine
    }

    /// Every CA certificate a client may need (DER): EST's `/cacerts`.
    pub fn ca_certificates_der(&self) -> Vec<Vec<u8>> {
        self.cas.certificates_der()
    }

    /// Issues a client certificate for an API key (CN = its username, O = its enterprise).
    pub async fn issue_client(
        &self,
        owner: &User,
        name: CertificateName,
        key: KeySource,
        validity: ValidityHours,
        renews: Option<Renewal>,
        audit: Option<fleetca_storage::NewAudit>,
    ) -> Result<Issued, Error> {
        let (public_key, private_key_pem) = match key {
            KeySource::Csr(k) => (k, None),
            KeySource::Generate => {
                let generated = generate_p256()?;
                (generated.public_key, Some(generated.private_key_pem))
            }
        };
        let (shard, crl_url) = self.shard();
        let profile = ClientProfile {
            common_name: &owner.username,
            organization: &owner.enterprise,
            validity: validity.duration(),
            crl_url,
        };
        let issued = self.signer()?.issue_client(&profile, &public_key, self.clock.now())?;
        let mut new = self.new_certificate(name.into_inner(), CertificateKind::Client, Some(owner), (issued, shard));
        new.renews = renews;
        let Stored { certificate, discarded } = self
            .queue
            .insert(IssueJob {
                cert: new,
                max_active: Some(MAX_ACTIVE_PER_KEY),
                audit,
                now: self.clock.now(),
            })
            .await
            .map_err(|e| refusal(e, KEY_LIMIT))?;
        issued_metric(CertificateKind::Client);
        tracing::info!(certificate_id = %certificate.id, serial = %certificate.serial, api_key_id = %owner.id, renews = ?renews.map(|r| r.old), "client certificate issued");
        Ok(Issued {
            certificate,
            private_key_pem,
            discarded,
        })
    }

    /// Issues a device certificate for a CSR's key (see `fleetca_ca::DeviceProfile`).
    pub async fn issue_device(
        &self,
        tenant: &str,
        device_id: &str,
        key: fleetca_ca::PublicKey,
        validity: chrono::Duration,
        with: DeviceIssue,
    ) -> Result<Issued, Error> {
        let (shard, crl_url) = self.shard();
        let profile = fleetca_ca::DeviceProfile {
            device_id,
            tenant,
            enterprise: tenant,
            validity,
            crl_url,
        };
        let issued = self
            .signer()?
            .issue_device(&profile, &key, self.clock.now())
            .map_err(|e| match e {
                fleetca_ca::CaError::InvalidName(why) => Error::Conflict(why),
                other => other.into(),
            })?;
        let new = NewCertificate {
            name: format!("{tenant}/{device_id}"),
            kind: CertificateKind::Device.as_str().to_owned(),
            api_key_id: None,
            enterprise: tenant.to_owned(),
            serial: issued.serial_hex,
            fingerprint: issued.fingerprint,
            certificate_pem: issued.pem,
            not_before: issued.not_before,
            not_after: issued.not_after,
            device: Some(format!("{tenant}/{device_id}")),
            renews: with.renews,
            issuer_id: self.issuer_id,
            crl_shard: shard,
            claim: with.claim,
        };
        let Stored { certificate, discarded } = self
            .queue
            .insert(IssueJob {
                cert: new,
                max_active: Some(MAX_ACTIVE_PER_DEVICE),
                audit: with.audit.clone(),
                now: self.clock.now(),
            })
            .await
            .map_err(|e| refusal(e, DEVICE_LIMIT))?;
        issued_metric(CertificateKind::Device);
        tracing::info!(certificate_id = %certificate.id, serial = %certificate.serial, %tenant, %device_id, renews = ?with.renews.map(|r| r.old), claim = ?with.claim, "device certificate issued");
        Ok(Issued {
            certificate,
            private_key_pem: None,
            discarded,
        })
    }

    /// Signs a claim certificate with a new key (stored by the caller, with its claim).
    pub fn sign_claim(
        &self,
        claim_id: &str,
        tenant: &str,
        enterprise: &str,
        validity: chrono::Duration,
    ) -> Result<(NewCertificate, String), Error> {
        let key = generate_p256()?;
        let (shard, crl_url) = self.shard();
        let profile = fleetca_ca::ClaimProfile {
            claim_id,
            tenant,
            enterprise,
            validity,
            crl_url,
        };
        let issued = self
            .signer()?
            .issue_claim(&profile, &key.public_key, self.clock.now())?;
        let mut new = self.new_certificate(format!("claim {tenant}"), CertificateKind::Claim, None, (issued, shard));
        new.enterprise = enterprise.to_owned();
        Ok((new, key.private_key_pem))
    }

    /// Whether one of fleetca's CAs signed this DER certificate; its fingerprint if so.
    pub fn issued_here(&self, der: &[u8]) -> Option<String> {
        self.cas.check_issued_der(der)
    }

    /// Issues a broker's TLS server certificate with a new key.
    pub async fn issue_server(
        &self,
        request: &ServerCertRequest,
        audit: Option<fleetca_storage::NewAudit>,
    ) -> Result<(Certificate, String), Error> {
        let key = generate_p256()?;
        let dns_names: Vec<String> = request.dns_names.iter().map(|d| d.as_str().to_owned()).collect();
        let (shard, crl_url) = self.shard();
        let profile = ServerProfile {
            dns_names: &dns_names,
            ip_addresses: &request.ip_addresses,
            validity: request.validity,
            crl_url,
        };
        let issued = self
            .signer()?
            .issue_server(&profile, &key.public_key, self.clock.now())
            .map_err(|e| match e {
                fleetca_ca::CaError::InvalidName(why) => Error::invalid("dns_names", why),
                other => other.into(),
            })?;
        let new = self.new_certificate(request.name.clone(), CertificateKind::Server, None, (issued, shard));
        let cert = self
            .queue
            .insert(IssueJob {
                cert: new,
                max_active: None,
                audit,
                now: self.clock.now(),
            })
            .await
            .map_err(|e| refusal(e, KEY_LIMIT))?
            .certificate;
        issued_metric(CertificateKind::Server);
        tracing::info!(certificate_id = %cert.id, serial = %cert.serial, "server certificate issued");
        Ok((cert, key.private_key_pem))
    }

    /// Issues one of fleetca's own revocation canaries (see `brokers::canary`): a client
    /// certificate named by its CN, filed under the admins' enterprise, audited as
    /// `canary.issue`. Returns it with its new key, which the caller keeps in memory only.
    pub async fn issue_canary(
        &self,
        common_name: &str,
        validity: chrono::Duration,
    ) -> Result<(Certificate, String), Error> {
        let key = generate_p256()?;
        let (shard, crl_url) = self.shard();
        let profile = ClientProfile {
            common_name,
            organization: &self.server_enterprise,
            validity,
            crl_url,
        };
        let now = self.clock.now();
        let issued = self.signer()?.issue_client(&profile, &key.public_key, now)?;
        let audit = crate::outbox::audit::system(
            AuditAction::CanaryIssue,
            "certificate",
            "",
            Some(&self.server_enterprise),
            serde_json::json!({"serial": issued.serial_hex, "common_name": common_name, "not_after": issued.not_after}),
        );
        let new = self.new_certificate(common_name.to_owned(), CertificateKind::Canary, None, (issued, shard));
        let cert = self
            .queue
            .insert(IssueJob {
                cert: new,
                max_active: None,
                audit: Some(audit),
                now,
            })
            .await
            .map_err(|e| refusal(e, KEY_LIMIT))?
            .certificate;
        issued_metric(CertificateKind::Canary);
        Ok((cert, key.private_key_pem))
    }

    fn new_certificate(
        &self,
        name: String,
        kind: CertificateKind,
        owner: Option<&User>,
        (issued, crl_shard): (IssuedCertificate, Option<i16>),
    ) -> NewCertificate {
        NewCertificate {
            name,
            kind: kind.as_str().to_owned(),
            api_key_id: owner.map(|o| o.id),
            enterprise: owner.map_or_else(|| self.server_enterprise.clone(), |o| o.enterprise.clone()),
            serial: issued.serial_hex,
            fingerprint: issued.fingerprint,
            certificate_pem: issued.pem,
            not_before: issued.not_before,
            not_after: issued.not_after,
            device: None,
            renews: None,
            issuer_id: self.issuer_id,
            crl_shard,
            claim: None,
        }
    }
}
