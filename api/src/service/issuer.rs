//! Signing and storing certificates: a key made here or taken from a CSR, signed by the CA,
//! stored through the issue queue (group commit; the per-key limit checked in the same
//! transaction as the insert). Who may ask for a certificate is decided by the caller of
//! this module (`certificates` for the API, the `server-cert` command for operators).

use std::sync::Arc;

use fleetca_ca::{Authority, ClientProfile, IssuedCertificate, PublicKey, ServerProfile, generate_p256};
use fleetca_storage::certificates::{IssueQueue, NewCertificate};
use fleetca_storage::{Certificate, StorageError, User};

use super::Error;
use super::clock::Clock;
use crate::domain::{CertificateName, ServerCertRequest, ValidityHours};

/// At most this many active client certificates per API key.
pub const MAX_ACTIVE_PER_KEY: u64 = 10;
/// At most this many active certificates per device: the current one and its renewal.
pub const MAX_ACTIVE_PER_DEVICE: u64 = 2;

/// The kinds of certificate fleetca stores.
pub mod kind {
    /// An MQTT client certificate of an API key.
    pub const CLIENT: &str = "client";
    /// A broker's TLS server certificate.
    pub const SERVER: &str = "server";
    /// A device's certificate (enrolled over EST).
    pub const DEVICE: &str = "device";
}

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
}

/// Signs and stores certificates.
pub struct Issuer {
    ca: Arc<Authority>,
    queue: IssueQueue,
    clock: Arc<dyn Clock>,
    crl_url: String,
    /// The enterprise server certificates are filed under (the admins').
    server_enterprise: String,
}

impl Issuer {
    pub fn new(
        ca: Arc<Authority>,
        queue: IssueQueue,
        clock: Arc<dyn Clock>,
        crl_url: String,
        server_enterprise: String,
    ) -> Self {
        Self {
            ca,
            queue,
            clock,
            crl_url,
            server_enterprise,
        }
    }

    /// The CA certificate (PEM), returned beside every new certificate.
    pub fn ca_certificate_pem(&self) -> &str {
        self.ca.certificate_pem()
    }

    /// Issues a client certificate for an API key (CN = its username, O = its enterprise).
    pub async fn issue_client(
        &self,
        owner: &User,
        name: CertificateName,
        key: KeySource,
        validity: ValidityHours,
    ) -> Result<Issued, Error> {
        let (public_key, private_key_pem) = match key {
            KeySource::Csr(k) => (k, None),
            KeySource::Generate => {
                let generated = generate_p256()?;
                (generated.public_key, Some(generated.private_key_pem))
            }
        };
        let profile = ClientProfile {
            common_name: &owner.username,
            organization: &owner.enterprise,
            validity: validity.duration(),
            crl_url: &self.crl_url,
        };
        let issued = self.ca.issue_client(&profile, &public_key, self.clock.now())?;
        let certificate = self
            .store(
                name.into_inner(),
                kind::CLIENT,
                Some(owner),
                issued,
                Some(MAX_ACTIVE_PER_KEY),
            )
            .await?;
        tracing::info!(certificate_id = %certificate.id, serial = %certificate.serial, api_key_id = %owner.id, "client certificate issued");
        Ok(Issued {
            certificate,
            private_key_pem,
        })
    }

    /// Issues a device certificate for a CSR's key (see `fleetca_ca::DeviceProfile`).
    pub async fn issue_device(
        &self,
        tenant: &str,
        device_id: &str,
        key: fleetca_ca::PublicKey,
        validity: chrono::Duration,
    ) -> Result<Certificate, Error> {
        let profile = fleetca_ca::DeviceProfile {
            device_id,
            tenant,
            enterprise: tenant,
            validity,
            crl_url: &self.crl_url,
        };
        let issued = self.ca.issue_device(&profile, &key, self.clock.now())?;
        let new = NewCertificate {
            name: format!("{tenant}/{device_id}"),
            kind: kind::DEVICE.to_owned(),
            api_key_id: None,
            enterprise: tenant.to_owned(),
            serial: issued.serial_hex,
            fingerprint: issued.fingerprint,
            certificate_pem: issued.pem,
            not_before: issued.not_before,
            not_after: issued.not_after,
            device: Some(format!("{tenant}/{device_id}")),
        };
        let cert = self
            .queue
            .insert(new, Some(MAX_ACTIVE_PER_DEVICE), self.clock.now())
            .await
            .map_err(|e| match e {
                StorageError::LimitReached => Error::Conflict(format!(
                    "This device already has {MAX_ACTIVE_PER_DEVICE} active certificates; revoke one first."
                )),
                other => other.into(),
            })?;
        tracing::info!(certificate_id = %cert.id, serial = %cert.serial, %tenant, %device_id, "device certificate issued");
        Ok(cert)
    }

    /// The DER of the CA certificate.
    pub fn ca_certificate_der(&self) -> &[u8] {
        self.ca.certificate_der()
    }

    /// Issues a broker's TLS server certificate with a new key.
    pub async fn issue_server(&self, request: &ServerCertRequest) -> Result<(Certificate, String), Error> {
        let key = generate_p256()?;
        let dns_names: Vec<String> = request.dns_names.iter().map(|d| d.as_str().to_owned()).collect();
        let profile = ServerProfile {
            dns_names: &dns_names,
            ip_addresses: &request.ip_addresses,
            validity: request.validity,
            crl_url: &self.crl_url,
        };
        let issued = self
            .ca
            .issue_server(&profile, &key.public_key, self.clock.now())
            .map_err(|e| match e {
                fleetca_ca::CaError::InvalidName(why) => Error::invalid("dns_names", why),
                other => other.into(),
            })?;
        let cert = self
            .store(request.name.clone(), kind::SERVER, None, issued, None)
            .await?;
        tracing::info!(certificate_id = %cert.id, serial = %cert.serial, "server certificate issued");
        Ok((cert, key.private_key_pem))
    }

    async fn store(
        &self,
        name: String,
        kind: &str,
        owner: Option<&User>,
        issued: IssuedCertificate,
        max_active: Option<u64>,
    ) -> Result<Certificate, Error> {
        let new = NewCertificate {
            name,
            kind: kind.to_owned(),
            api_key_id: owner.map(|o| o.id),
            enterprise: owner.map_or_else(|| self.server_enterprise.clone(), |o| o.enterprise.clone()),
            serial: issued.serial_hex,
            fingerprint: issued.fingerprint,
            certificate_pem: issued.pem,
            not_before: issued.not_before,
            not_after: issued.not_after,
            device: None,
        };
        self.queue
            .insert(new, max_active, self.clock.now())
            .await
            .map_err(|e| match e {
                StorageError::LimitReached => Error::Conflict(format!(
                    "This API key already has {MAX_ACTIVE_PER_KEY} active certificates, the most allowed; revoke one before creating another."
                )),
                other => other.into(),
            })
    }
}
