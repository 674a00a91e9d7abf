//! `/api/v4/manage/mqtt-certificates/` and `/api/v4/manage/server-certificates/`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use fleetca_ca::crl::Reason;
use fleetca_storage::Certificate;
use fleetca_storage::certificates::{CertificateFilter, StatusFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::PageRequest;
use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{AdminAuth, ApiJson, Auth};
use crate::http::{PageOf, parse_id, route};
use crate::service::certificates::{self as svc, CreateCertificate, MAX_VALIDITY_HOURS, MIN_VALIDITY_HOURS};
use crate::state::AppState;

pub fn routes() -> super::Routes {
    vec![
        (
            "/api/v4/manage/mqtt-certificates",
            vec![
                route("GET", || web::get().to(list)),
                route("POST", || web::post().to(create)),
            ],
        ),
        (
            "/api/v4/manage/mqtt-certificates/{id}",
            vec![route("GET", || web::get().to(get))],
        ),
        (
            "/api/v4/manage/mqtt-certificates/{id}/revoke",
            vec![route("POST", || web::post().to(revoke))],
        ),
        (
            "/api/v4/manage/server-certificates",
            vec![route("POST", || web::post().to(create_server))],
        ),
    ]
}

/// Certificate status.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Revoked,
    Expired,
}

fn status_of(c: &Certificate, now: DateTime<Utc>) -> Status {
    if c.revoked_at.is_some() {
        Status::Revoked
    } else if c.not_after <= now {
        Status::Expired
    } else {
        Status::Active
    }
}

/// A certificate as the API shows it. Never a private key.
#[derive(Serialize, ToSchema)]
pub struct CertificateOut {
    pub id: uuid::Uuid,
    pub name: String,
    pub api_key_id: Option<uuid::Uuid>,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// SHA-256 of the DER, lowercase hex without colons.
    pub fingerprint: String,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    /// The certificate's notAfter.
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// RFC 5280 reason name, when revoked.
    pub reason: Option<String>,
    /// PEM; in single-certificate responses only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_pem: Option<String>,
}

impl CertificateOut {
    fn new(c: Certificate, with_pem: bool) -> Self {
        Self {
            status: status_of(&c, Utc::now()),
            id: c.id,
            name: c.name,
            api_key_id: c.api_key_id,
            serial: c.serial,
            fingerprint: c.fingerprint,
            created_at: c.created_at,
            expires_at: c.not_after,
            revoked_at: c.revoked_at,
            reason: c.revocation_reason,
            certificate_pem: with_pem.then_some(c.certificate_pem),
        }
    }
}

/// The create response: the certificate, its private key (only when fleetca generated it;
/// shown in this response only, never stored) and the CA certificate.
#[derive(Serialize, ToSchema)]
pub struct CreatedCertificate {
    #[serde(flatten)]
    pub certificate: CertificateOut,
    /// The new P-256 key as an `EC PRIVATE KEY` PEM. Absent when a CSR was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_pem: Option<String>,
    /// The CA certificate that clients use to verify the broker and that signed this one.
    pub ca_certificate_pem: String,
}

/// Create an MQTT client certificate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCertificateBody {
    /// 1–200 characters.
    #[schema(example = "Production MQTT Client")]
    pub name: String,
    /// The API key (service account) the certificate authenticates as.
    pub api_key_id: uuid::Uuid,
    /// 8760 (1 year, the default) to 87600 (10 years).
    pub validity_hours: Option<i64>,
    /// A PKCS#10 CSR (PEM, P-256). The key then never leaves the device and no
    /// `private_key_pem` is returned.
    pub csr_pem: Option<String>,
}

/// Revoke a certificate.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// RFC 5280 reason name (default `unspecified`): unspecified, keyCompromise,
    /// cACompromise, affiliationChanged, superseded, cessationOfOperation,
    /// privilegeWithdrawn, aACompromise.
    pub reason: Option<String>,
}

/// Create a broker's TLS server certificate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServerCertificateBody {
    pub name: Option<String>,
    /// DNS names (SANs); the first is also the CN.
    #[serde(default)]
    pub dns_names: Vec<String>,
    /// IP addresses (SANs).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub ip_addresses: Vec<std::net::IpAddr>,
    /// 1–3650 days (default 825).
    pub validity_days: Option<i64>,
}

/// A server certificate with its new key (shown once).
#[derive(Serialize, ToSchema)]
pub struct CreatedServerCertificate {
    #[serde(flatten)]
    pub certificate: CertificateOut,
    pub private_key_pem: String,
    pub ca_certificate_pem: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CertificateQuery {
    pub page: Option<u64>,
    pub page_size: Option<u64>,
    pub api_key_id: Option<uuid::Uuid>,
    /// `active`, `revoked` or `expired`.
    pub status: Option<Status>,
    /// Name contains this.
    pub search: Option<String>,
}

#[utoipa::path(
    post, path = "/api/v4/manage/mqtt-certificates/", tag = "mqtt-certificates", request_body = CreateCertificateBody,
    responses(
        (status = 201, description = "Created; private_key_pem is shown only here", body = CreatedCertificate),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The API key already has 10 active certificates", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<CreateCertificateBody>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::new();
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        errors.insert("name".into(), vec!["must be 1 to 200 characters".into()]);
    }
    let validity_hours = body.validity_hours.unwrap_or(MIN_VALIDITY_HOURS);
    if !(MIN_VALIDITY_HOURS..=MAX_VALIDITY_HOURS).contains(&validity_hours) {
        errors.insert(
            "validity_hours".into(),
            vec![format!(
                "must be from {MIN_VALIDITY_HOURS} (1 year) to {MAX_VALIDITY_HOURS} (10 years) hours"
            )],
        );
    }
    let csr_key = match body.csr_pem.as_deref().map(svc::parse_csr).transpose() {
        Ok(k) => k,
        Err(e) => {
            errors.insert("csr_pem".into(), vec![e]);
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let input = CreateCertificate {
        name,
        api_key_id: body.api_key_id,
        validity_hours,
        csr_key,
    };
    let created = svc::create(&state, &caller, input).await?;
    Ok(HttpResponse::Created().json(CreatedCertificate {
        certificate: CertificateOut::new(created.certificate, true),
        private_key_pem: created.private_key_pem,
        ca_certificate_pem: state.ca.certificate_pem().to_owned(),
    }))
}

#[utoipa::path(
    get, path = "/api/v4/manage/mqtt-certificates/", tag = "mqtt-certificates", params(CertificateQuery),
    responses(
        (status = 200, body = PageOf<CertificateOut>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(caller): Auth,
    q: web::Query<CertificateQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let page = PageRequest::parse(q.page, q.page_size)?;
    let filter = CertificateFilter {
        enterprise: None,
        api_key_id: q.api_key_id,
        kind: Some("client".into()),
        status: q.status.map(|s| match s {
            Status::Active => StatusFilter::Active,
            Status::Revoked => StatusFilter::Revoked,
            Status::Expired => StatusFilter::Expired,
        }),
        search: q.search,
    };
    let (certs, count) = svc::list(&state, &caller, filter, page).await?;
    let results = certs.into_iter().map(|c| CertificateOut::new(c, false)).collect();
    Ok(HttpResponse::Ok().json(PageOf::new(&state, &req, page, count, results)))
}

#[utoipa::path(
    get, path = "/api/v4/manage/mqtt-certificates/{id}/", tag = "mqtt-certificates", params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = CertificateOut),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "certificate")?;
    let cert = svc::get(&state, &caller, id).await?;
    Ok(HttpResponse::Ok().json(CertificateOut::new(cert, true)))
}

#[utoipa::path(
    post, path = "/api/v4/manage/mqtt-certificates/{id}/revoke/", tag = "mqtt-certificates", params(("id" = uuid::Uuid, Path)),
    request_body(content = Option<RevokeBody>, description = "Optional; an empty body revokes with reason `unspecified`"),
    responses(
        (status = 200, description = "Revoked, and a CRL listing it published; revoking again returns the same record", body = CertificateOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(caller): Auth,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "certificate")?;
    let body: RevokeBody = if body.iter().all(u8::is_ascii_whitespace) {
        RevokeBody::default()
    } else {
        crate::extract::require_json(&req)?;
        crate::extract::parse_json(&body)?
    };
    let reason = match body.reason.as_deref() {
        None => Reason::Unspecified,
        Some(r) => r.parse().map_err(|_| {
            let names: Vec<&str> = Reason::ALL.iter().map(|r| r.name()).collect();
            ApiError::field("reason", format!("must be one of {}", names.join(", ")))
        })?,
    };
    let cert = svc::revoke(&state, &caller, id, reason).await?;
    Ok(HttpResponse::Ok().json(CertificateOut::new(cert, true)))
}

#[utoipa::path(
    post, path = "/api/v4/manage/server-certificates/", tag = "server-certificates", request_body = CreateServerCertificateBody,
    responses(
        (status = 201, description = "Created; private_key_pem is shown only here", body = CreatedServerCertificate),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_server(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    ApiJson(body): ApiJson<CreateServerCertificateBody>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::new();
    if body.dns_names.is_empty() && body.ip_addresses.is_empty() {
        errors.insert(
            "dns_names".into(),
            vec!["give at least one DNS name or IP address".into()],
        );
    }
    if let Some(bad) = body.dns_names.iter().find(|n| !is_dns_name(n)) {
        errors.insert(
            "dns_names".into(),
            vec![format!(
                "{bad:?} is not a DNS name (labels of a-z, 0-9 and '-', optionally starting with \"*.\")"
            )],
        );
    }
    let days = body.validity_days.unwrap_or(825);
    if !(1..=3650).contains(&days) {
        errors.insert("validity_days".into(), vec!["must be from 1 to 3650".into()]);
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let name = body
        .name
        .unwrap_or_else(|| body.dns_names.first().cloned().unwrap_or_else(|| "broker".into()));
    let (cert, key) =
        svc::create_server(&state, name, &body.dns_names, &body.ip_addresses, Duration::days(days)).await?;
    Ok(HttpResponse::Created().json(CreatedServerCertificate {
        certificate: CertificateOut::new(cert, true),
        private_key_pem: key,
        ca_certificate_pem: state.ca.certificate_pem().to_owned(),
    }))
}

/// A hostname (RFC 1123 labels), optionally a leading `*.` wildcard.
fn is_dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}
