//! MQTT client certificates and broker server certificates.
//!
//! Create: check the API key is an active service account the caller manages → make or
//! take the key → sign with the CA → store (group commit, limit checked in the same
//! transaction). Revoke: mark in the database → publish a CRL listing it → return.

use chrono::Duration;
use fleetca_ca::crl::Reason;
use fleetca_ca::{ClientProfile, IssuedCertificate, PublicKey, ServerProfile, csr, generate_p256};
use fleetca_storage::certificates::{CertificateFilter, NewCertificate};
use fleetca_storage::{Certificate, StorageError};
use uuid::Uuid;

use crate::domain::{PageRequest, Role};
use crate::error::ApiError;
use crate::service::auth::Principal;
use crate::state::AppState;

/// At most this many active certificates per API key.
pub const MAX_ACTIVE_PER_KEY: u64 = 10;
/// Validity bounds, hours: 1 to 10 years.
pub const MIN_VALIDITY_HOURS: i64 = 8760;
pub const MAX_VALIDITY_HOURS: i64 = 87600;

/// A validated create request.
#[derive(Debug)]
pub struct CreateCertificate {
    pub name: String,
    pub api_key_id: Uuid,
    pub validity_hours: i64,
    /// A CSR's public key, already parsed and its signature checked.
    pub csr_key: Option<PublicKey>,
}

/// A certificate just created; `private_key_pem` is present when fleetca made the key.
pub struct Created {
    pub certificate: Certificate,
    pub private_key_pem: Option<String>,
}

/// Parses a CSR, reporting problems against the `csr_pem` field.
pub fn parse_csr(pem: &str) -> Result<PublicKey, String> {
    csr::parse_csr_pem(pem).map_err(|e| e.to_string())
}

fn not_found() -> ApiError {
    ApiError::NotFound("certificate")
}

fn can_see(caller: &Principal, cert: &Certificate) -> bool {
    match caller.role {
        Role::Admin => true,
        Role::Manager => cert.enterprise == caller.enterprise,
        Role::Service => cert.api_key_id == Some(caller.id),
    }
}

/// Issues a client certificate for an API key.
pub async fn create(state: &AppState, caller: &Principal, input: CreateCertificate) -> Result<Created, ApiError> {
    if caller.role == Role::Service {
        return Err(ApiError::Forbidden(
            "An API key cannot create certificates; ask a manager or admin.".into(),
        ));
    }
    let key_owner = match state.auth.user(&state.store, input.api_key_id).await {
        Ok(u) if caller.manages(&u.enterprise) && u.is_service_account => u,
        Ok(_) | Err(StorageError::NotFound) => {
            return Err(ApiError::field(
                "api_key_id",
                "no API key (service account) with this id exists in your scope",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if !key_owner.is_active {
        return Err(ApiError::field(
            "api_key_id",
            "this API key is deactivated; certificates can only be issued to active keys",
        ));
    }
    let now = fleetca_storage::now();
    let (public_key, private_key_pem) = match input.csr_key {
        Some(k) => (k, None),
        None => {
            let generated = generate_p256()?;
            (generated.public_key, Some(generated.private_key_pem))
        }
    };
    let crl_url = state.config.crl_url();
    let profile = ClientProfile {
        common_name: &key_owner.username,
        organization: &key_owner.enterprise,
        validity: Duration::hours(input.validity_hours),
        crl_url: &crl_url,
    };
    let issued = state.ca.issue_client(&profile, &public_key, now)?;
    let certificate = store(
        state,
        input.name,
        "client",
        Some(key_owner.id),
        key_owner.enterprise,
        issued,
        Some(MAX_ACTIVE_PER_KEY),
    )
    .await?;
    tracing::info!(certificate_id = %certificate.id, serial = %certificate.serial, api_key_id = %key_owner.id, by = %caller.username, "client certificate issued");
    Ok(Created {
        certificate,
        private_key_pem,
    })
}

async fn store(
    state: &AppState,
    name: String,
    kind: &str,
    api_key_id: Option<Uuid>,
    enterprise: String,
    issued: IssuedCertificate,
    max_active: Option<u64>,
) -> Result<Certificate, ApiError> {
    let new = NewCertificate {
        name,
        kind: kind.to_owned(),
        api_key_id,
        enterprise,
        serial: issued.serial_hex,
        fingerprint: issued.fingerprint,
        certificate_pem: issued.pem,
        not_before: issued.not_before,
        not_after: issued.not_after,
    };
    state.issue_queue.insert(new, max_active, fleetca_storage::now()).await.map_err(|e| match e {
        StorageError::LimitReached => ApiError::Conflict(format!(
            "This API key already has {MAX_ACTIVE_PER_KEY} active certificates, the most allowed; revoke one before creating another."
        )),
        other => other.into(),
    })
}

/// Issues a TLS server certificate for a broker; returns it with its new private key.
pub async fn create_server(
    state: &AppState,
    name: String,
    dns_names: &[String],
    ip_addresses: &[std::net::IpAddr],
    validity: Duration,
) -> Result<(Certificate, String), ApiError> {
    let key = generate_p256()?;
    let crl_url = state.config.crl_url();
    let profile = ServerProfile {
        dns_names,
        ip_addresses,
        validity,
        crl_url: &crl_url,
    };
    let issued = state
        .ca
        .issue_server(&profile, &key.public_key, fleetca_storage::now())
        .map_err(|e| match e {
            fleetca_ca::CaError::InvalidKey(m) => ApiError::field("dns_names", m),
            other => other.into(),
        })?;
    let cert = store(
        state,
        name,
        "server",
        None,
        state.config.admin_enterprise.clone(),
        issued,
        None,
    )
    .await?;
    tracing::info!(certificate_id = %cert.id, serial = %cert.serial, "server certificate issued");
    Ok((cert, key.private_key_pem))
}

/// One page of the certificates the caller may see.
pub async fn list(
    state: &AppState,
    caller: &Principal,
    mut filter: CertificateFilter,
    page: PageRequest,
) -> Result<(Vec<Certificate>, u64), ApiError> {
    match caller.role {
        Role::Admin => {}
        Role::Manager => {
            if !caller.pin_enterprise(&mut filter.enterprise) {
                return Ok((Vec::new(), 0));
            }
        }
        Role::Service => {
            if filter.api_key_id.is_some_and(|k| k != caller.id) {
                return Ok((Vec::new(), 0));
            }
            filter.api_key_id = Some(caller.id);
        }
    }
    Ok(state
        .store
        .list_certificates(&filter, page.storage(), fleetca_storage::now())
        .await?)
}

/// One certificate the caller may see.
pub async fn get(state: &AppState, caller: &Principal, id: Uuid) -> Result<Certificate, ApiError> {
    match state.store.certificate(id).await {
        Ok(c) if can_see(caller, &c) => Ok(c),
        Ok(_) | Err(StorageError::NotFound) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

/// Revokes a certificate and returns once the CRL that lists it is published. Revoking a
/// revoked certificate returns it unchanged.
pub async fn revoke(state: &AppState, caller: &Principal, id: Uuid, reason: Reason) -> Result<Certificate, ApiError> {
    let cert = get(state, caller, id).await?;
    if caller.role == Role::Service {
        return Err(ApiError::Forbidden(
            "An API key cannot revoke certificates; ask a manager or admin.".into(),
        ));
    }
    let (cert, changed) = state
        .store
        .revoke_certificate(cert.id, reason.name(), fleetca_storage::now())
        .await?;
    if changed {
        state.crl.add_revocations(std::iter::once(&cert)).await?;
        state.certificate_revoked(&cert).await;
        tracing::info!(certificate_id = %cert.id, serial = %cert.serial, %reason, by = %caller.username, "certificate revoked");
    }
    Ok(cert)
}
