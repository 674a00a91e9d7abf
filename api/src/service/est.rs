//! Enrollment over Secure Transport (RFC 7030): the CA certificates, and `simpleenroll` for
//! a provisioned device (HTTP Basic with its password, checked against the HA1 fleetca
//! already stores: no new secret) or an API key (its Bearer token, for its own MQTT client
//! certificate, counted against its limit). The wire formats are `fleetca_ca::est`'s; the
//! HTTP layer only decodes base64 and maps [`EnrollError`] to RFC 7030's statuses.

use std::sync::Arc;

use fleetca_ca::{MasterKey, device};
use fleetca_storage::{Certificate, StorageError, Store};
use subtle::ConstantTimeEq;

use super::Error;
use super::issuer::{Issuer, KeySource};
use super::tokens::Tokens;
use crate::domain::{CertificateName, Principal, ValidityHours};

/// Why an enrollment was refused, in RFC 7030's terms.
#[derive(Debug)]
pub enum EnrollError {
    /// The CSR is malformed (400, plain text).
    BadRequest(String),
    /// No or wrong credentials (401 with a challenge).
    Unauthenticated,
    /// The credential may not enroll this subject (403).
    Forbidden(&'static str),
    /// The service failed (its `Error`).
    Service(Error),
}

impl From<Error> for EnrollError {
    fn from(e: Error) -> Self {
        EnrollError::Service(e)
    }
}

impl From<StorageError> for EnrollError {
    fn from(e: StorageError) -> Self {
        EnrollError::Service(e.into())
    }
}

/// The EST flows.
pub struct EstService {
    store: Store,
    master: Arc<MasterKey>,
    tokens: Arc<Tokens>,
    issuer: Arc<Issuer>,
}

/// Device certificates last a year unless the tenant says otherwise.
const DEVICE_VALIDITY_DAYS: i64 = 365;

impl EstService {
    pub fn new(store: Store, master: Arc<MasterKey>, tokens: Arc<Tokens>, issuer: Arc<Issuer>) -> Self {
        Self {
            store,
            master,
            tokens,
            issuer,
        }
    }

    /// `/cacerts`: the CA certificate as a certs-only SignedData (DER).
    pub fn cacerts(&self) -> Result<Vec<u8>, Error> {
        Ok(fleetca_ca::est::certs_only(&[self.issuer.ca_certificate_der()])?)
    }

    /// `/simpleenroll` by a device with its password (HTTP Basic; username = device id,
    /// the label = its tenant). The CSR must name the device (CN = device id).
    pub async fn enroll_device(
        &self,
        tenant: &str,
        device_id: &str,
        password: &str,
        csr_der: &[u8],
    ) -> Result<Certificate, EnrollError> {
        let device = match self.store.device(tenant, device_id).await {
            Ok(d) => Some(d),
            Err(StorageError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let ha1 = device.as_ref().and_then(|d| {
            self.master
                .open(&device::ha1_seal_context(&d.tenant, &d.device_id), &d.sealed_ha1)
                .ok()
        });
        let (Some(device), Some(ha1)) = (device, ha1) else {
            return Err(EnrollError::Unauthenticated);
        };
        let presented = device::ha1(device_id, &device.realm, password);
        if !bool::from(presented.as_bytes().ct_eq(&ha1)) || !device.is_active {
            return Err(EnrollError::Unauthenticated);
        }
        let csr = fleetca_ca::csr::parse_csr_der(csr_der).map_err(|e| EnrollError::BadRequest(e.to_string()))?;
        if csr.common_name.as_deref() != Some(device_id) {
            return Err(EnrollError::Forbidden("the CSR's subject CN must be the device id"));
        }
        Ok(self
            .issuer
            .issue_device(
                tenant,
                device_id,
                csr.public_key,
                chrono::Duration::days(DEVICE_VALIDITY_DAYS),
            )
            .await?)
    }

    /// `/simpleenroll` by an API key with its token: its own MQTT client certificate
    /// (CN = its username), counted against its limit.
    pub async fn enroll_api_key(&self, caller: &Principal, csr_der: &[u8]) -> Result<Certificate, EnrollError> {
        if !caller.is_service_account {
            return Err(EnrollError::Forbidden("only an API key enrolls its own certificate"));
        }
        let csr = fleetca_ca::csr::parse_csr_der(csr_der).map_err(|e| EnrollError::BadRequest(e.to_string()))?;
        if csr.common_name.as_deref() != Some(caller.username.as_str()) {
            return Err(EnrollError::Forbidden(
                "the CSR's subject CN must be the API key's username",
            ));
        }
        let owner = self
            .tokens
            .user(caller.id)
            .await?
            .filter(|u| u.is_active)
            .ok_or(EnrollError::Unauthenticated)?;
        let name = CertificateName::parse("EST").map_err(|e| EnrollError::Service(Error::Internal(e)))?;
        let validity = ValidityHours::parse(None).map_err(|e| EnrollError::Service(Error::Internal(e)))?;
        let issued = self
            .issuer
            .issue_client(&owner, name, KeySource::Csr(csr.public_key), validity)
            .await?;
        Ok(issued.certificate)
    }
}
