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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DeviceCredential, DeviceId, Secret, Tenant};
    use crate::service::devices::DeviceInput;
    use crate::service::testing::{Kit, admin};

    fn csr(cn: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.serialize_request(&key).unwrap().der().to_vec()
    }

    #[tokio::test]
    async fn a_device_enrolls_with_its_password_for_its_own_name_only() {
        let kit = Kit::new().await;
        let input = DeviceInput {
            tenant: Tenant::parse("acme").unwrap(),
            device_id: DeviceId::parse("meter-1").unwrap(),
            realm: None,
            description: None,
            credential: DeviceCredential::Password(Secret::new("device-password")),
        };
        kit.devices.create(&admin(), input).await.unwrap();
        let cert = kit
            .est
            .enroll_device("acme", "meter-1", "device-password", &csr("meter-1"))
            .await
            .unwrap();
        assert_eq!(cert.kind, "device");
        assert_eq!(cert.device.as_deref(), Some("acme/meter-1"));
        assert!(matches!(
            kit.est.enroll_device("acme", "meter-1", "wrong", &csr("meter-1")).await,
            Err(EnrollError::Unauthenticated)
        ));
        assert!(matches!(
            kit.est
                .enroll_device("acme", "meter-9", "device-password", &csr("meter-9"))
                .await,
            Err(EnrollError::Unauthenticated)
        ));
        assert!(matches!(
            kit.est
                .enroll_device("acme", "meter-1", "device-password", &csr("meter-2"))
                .await,
            Err(EnrollError::Forbidden(_))
        ));
        assert!(matches!(
            kit.est
                .enroll_device("acme", "meter-1", "device-password", b"junk")
                .await,
            Err(EnrollError::BadRequest(_))
        ));
        // The second is its renewal; a third is refused.
        kit.est
            .enroll_device("acme", "meter-1", "device-password", &csr("meter-1"))
            .await
            .unwrap();
        assert!(matches!(
            kit.est
                .enroll_device("acme", "meter-1", "device-password", &csr("meter-1"))
                .await,
            Err(EnrollError::Service(Error::Conflict(_)))
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
            Err(EnrollError::Forbidden(_))
        ));
        assert!(matches!(
            kit.est.enroll_api_key(&admin(), &csr("root")).await,
            Err(EnrollError::Forbidden(_))
        ));
    }
}
