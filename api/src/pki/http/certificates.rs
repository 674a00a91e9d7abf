//! `/api/v4/manage/mqtt-certificates/` and `/api/v4/manage/server-certificates/`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use fleetca_ca::crl::Reason;
use fleetca_storage::certificates::{CertificateFilter, StatusFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::CertificateKind;
use crate::domain::{CertificateName, PageRequest, Problems, ServerCertRequest, ValidityHours, query_text};
use crate::error::ApiError;
use crate::http::edge::{PageOf, parse_id, route, secret_json};
use crate::http::extract::{Admin, ApiJson, BULK_BODY_LIMIT, Caller, Manager, parse_json, read_body, require_json};
use crate::http::problems::{ReadProblems, WriteProblems};
use crate::pki::certificates::{self as svc, CreateCertificate, Record};
use crate::pki::issuer::CsrKey;
use crate::pki::issuer::KeySource;
use crate::state::AppState;

pub fn routes() -> crate::http::edge::Routes {
    vec![
        (
            "/api/v4/manage/mqtt-certificates",
            vec![
                route("GET", || web::get().to(list)),
                route("POST", || web::post().to(create)),
            ],
        ),
        // Before `{id}`, which would take "revoke" for an id.
        (
            "/api/v4/manage/mqtt-certificates/revoke",
            vec![route("POST", || web::post().to(revoke_many))],
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
            "/api/v4/manage/mqtt-certificates/{id}/renew",
            vec![route("POST", || web::post().to(renew))],
        ),
        (
            "/api/v4/manage/server-certificates",
            vec![
                route("GET", || web::get().to(list_server)),
                route("POST", || web::post().to(create_server)),
            ],
        ),
        (
            "/api/v4/manage/server-certificates/{id}",
            vec![route("GET", || web::get().to(get_server))],
        ),
        (
            "/api/v4/manage/server-certificates/{id}/revoke",
            vec![route("POST", || web::post().to(revoke_server))],
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

impl From<svc::Status> for Status {
    fn from(s: svc::Status) -> Self {
        match s {
            svc::Status::Active => Status::Active,
            svc::Status::Revoked => Status::Revoked,
            svc::Status::Expired => Status::Expired,
        }
    }
}

/// What a certificate is for.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An API key's MQTT client certificate.
    Client,
    /// A device's certificate, enrolled over EST.
    Device,
    /// A claim certificate: it enrolls devices of a tenant and does nothing else.
    Claim,
    /// A broker's TLS server certificate (admins only, under `/server-certificates/`).
    Server,
}

impl Kind {
    fn of(kind: &str) -> Self {
        match CertificateKind::parse(kind) {
            Some(CertificateKind::Device) => Kind::Device,
            Some(CertificateKind::Claim) => Kind::Claim,
            Some(CertificateKind::Server) => Kind::Server,
            _ => Kind::Client,
        }
    }
}

/// A certificate as the API shows it. Never a private key.
#[derive(Serialize, ToSchema)]
pub struct CertificateOut {
    pub id: uuid::Uuid,
    pub name: String,
    pub kind: Kind,
    /// The device (`{tenant}/{device_id}`) of a device certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The certificate that renewed this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewed_by: Option<uuid::Uuid>,
    /// A renewed certificate is revoked as `superseded` at this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supersede_at: Option<DateTime<Utc>>,
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

impl From<Record> for CertificateOut {
    fn from(r: Record) -> Self {
        Self::new(r, false)
    }
}

impl CertificateOut {
    pub(crate) fn new(r: Record, with_pem: bool) -> Self {
        let c = r.certificate;
        Self {
            status: r.status.into(),
            id: c.id,
            name: c.name,
            kind: Kind::of(&c.kind),
            device: c.device,
            renewed_by: c.renewed_by,
            supersede_at: c.supersede_at,
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
    /// The root CA certificate this one chains to: what clients trust (to verify the
    /// broker, too).
    pub ca_certificate_pem: String,
    /// The intermediate CA certificates between this certificate and `ca_certificate_pem`
    /// (PEM, nearest first): a client presents them after its own certificate. Empty when
    /// the root signed it.
    pub chain_pem: String,
}

/// Create an MQTT client certificate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCertificateBody {
    /// 1–200 characters.
    #[schema(
        example = "Production MQTT Client",
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub name: String,
    /// The API key (service account) the certificate authenticates as.
    pub api_key_id: uuid::Uuid,
    /// 8760 (1 year, the default) to 87600 (10 years).
    #[schema(minimum = 8760, maximum = 87600)]
    #[serde(default, deserialize_with = "crate::http::whole::optional")]
    pub validity_hours: Option<i64>,
    /// A PKCS#10 CSR (PEM; an ECDSA P-256 or P-384, Ed25519 or RSA-2048 to 8192 key). The key then never leaves the device and no
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
    #[schema(
        example = "keyCompromise",
        pattern = "^(unspecified|keyCompromise|cACompromise|affiliationChanged|superseded|cessationOfOperation|privilegeWithdrawn|aACompromise)$"
    )]
    pub reason: Option<String>,
}

/// Revoke many certificates at once: `ids` or `api_key_id`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeManyBody {
    /// 1 to 10,000 ids of client, device or claim certificates in your scope.
    #[schema(min_items = 1, max_items = 10000)]
    pub ids: Option<Vec<String>>,
    /// Instead of `ids`: every certificate of this API key not yet revoked.
    pub api_key_id: Option<String>,
    /// RFC 5280 reason name (default `unspecified`).
    #[schema(
        example = "keyCompromise",
        pattern = "^(unspecified|keyCompromise|cACompromise|affiliationChanged|superseded|cessationOfOperation|privilegeWithdrawn|aACompromise)$"
    )]
    pub reason: Option<String>,
}

/// The outcome of a bulk revocation.
#[derive(Serialize, ToSchema)]
pub struct RevokedMany {
    /// The ids this request revoked.
    pub revoked: Vec<uuid::Uuid>,
    /// How many were revoked already and left as they were.
    pub already_revoked: usize,
}

/// Most ids in one bulk revocation.
pub const MAX_REVOKE_IDS: usize = 10_000;

/// Create a broker's TLS server certificate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServerCertificateBody {
    pub name: Option<String>,
    /// DNS names (SANs); the first is also the CN. With the IP addresses, at most 100 names.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub dns_names: Vec<String>,
    /// IP addresses (SANs).
    #[serde(default)]
    #[schema(value_type = Vec<String>, max_items = 100)]
    pub ip_addresses: Vec<std::net::IpAddr>,
    /// 1–3650 days (default 825).
    #[schema(minimum = 1, maximum = 3650)]
    #[serde(default, deserialize_with = "crate::http::whole::optional")]
    pub validity_days: Option<i64>,
}

/// A server certificate with its new key (shown once).
#[derive(Serialize, ToSchema)]
pub struct CreatedServerCertificate {
    #[serde(flatten)]
    pub certificate: CertificateOut,
    pub private_key_pem: String,
    pub ca_certificate_pem: String,
    /// The intermediates between this certificate and `ca_certificate_pem` (PEM, nearest
    /// first): the broker presents them after its certificate. Empty when the root signed it.
    pub chain_pem: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CertificateQuery {
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u64>,
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u64>,
    pub api_key_id: Option<uuid::Uuid>,
    /// `active`, `revoked` or `expired`.
    pub status: Option<Status>,
    /// Name contains this.
    #[param(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub search: Option<String>,
    /// `client` (the default), `device` or `claim`.
    #[param(value_type = Option<String>, pattern = "^(client|device|claim)$")]
    pub kind: Option<Kind>,
    /// Only active certificates that expire within this many days (1 to 3650).
    #[param(minimum = 1, maximum = 3650)]
    pub expiring_within_days: Option<i64>,
}

/// Renew a certificate.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RenewBody {
    /// A PKCS#10 CSR (PEM; P-256, P-384, Ed25519 or RSA-2048+) for the new certificate; required for a device
    /// certificate. Without one, fleetca makes a new key and returns it once.
    pub csr_pem: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ServerCertificateQuery {
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u64>,
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u64>,
    /// `active`, `revoked` or `expired`.
    pub status: Option<Status>,
    /// Name contains this.
    #[param(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub search: Option<String>,
}

fn status_filter(s: Status) -> StatusFilter {
    match s {
        Status::Active => StatusFilter::Active,
        Status::Revoked => StatusFilter::Revoked,
        Status::Expired => StatusFilter::Expired,
    }
}

/// The reason of a revoke request: an empty body is `unspecified`.
pub(crate) fn revoke_reason(req: &HttpRequest, body: &[u8]) -> Result<Reason, ApiError> {
    let body: RevokeBody = crate::http::extract::optional_json(req, body)?;
    reason(body.reason.as_deref())
}

/// A revocation reason by its RFC 5280 name (`unspecified` when absent).
pub(crate) fn reason(name: Option<&str>) -> Result<Reason, ApiError> {
    match name {
        None => Ok(Reason::Unspecified),
        Some(r) => r.parse().map_err(|_| {
            let names: Vec<&str> = Reason::ALL.iter().map(|r| r.name()).collect();
            ApiError::field("reason", format!("must be one of {}", names.join(", ")))
        }),
    }
}

#[utoipa::path(
    post, path = "/api/v4/manage/mqtt-certificates/", tag = "mqtt-certificates", request_body = CreateCertificateBody,
    responses(
        (status = 201, description = "Created; private_key_pem is shown only here", body = CreatedCertificate),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    ApiJson(body): ApiJson<CreateCertificateBody>,
) -> Result<HttpResponse, ApiError> {
    let mut problems = Problems::new();
    let name = problems.check("name", CertificateName::parse(&body.name));
    let validity = problems.check("validity_hours", ValidityHours::parse(body.validity_hours));
    let csr = body
        .csr_pem
        .as_deref()
        .and_then(|pem| problems.check("csr_pem", CsrKey::parse(pem)));
    problems.finish()?;
    let (Some(name), Some(validity)) = (name, validity) else {
        return Err(ApiError::field("name", "is required"));
    };
    let input = CreateCertificate {
        name,
        api_key_id: body.api_key_id,
        validity,
        csr,
    };
    let created = state.certificates.create(&caller, input).await?;
    Ok(secret_json(
        StatusCode::CREATED,
        &CreatedCertificate {
            certificate: CertificateOut::new(created.record, true),
            private_key_pem: created.private_key_pem,
            ca_certificate_pem: created.ca_certificate_pem,
            chain_pem: state.certificates.chain_pem().to_owned(),
        },
    ))
}

#[utoipa::path(
    get, path = "/api/v4/manage/mqtt-certificates/", tag = "mqtt-certificates", params(CertificateQuery),
    responses((status = 200, body = PageOf<CertificateOut>), ReadProblems),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    q: web::Query<CertificateQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let page = PageRequest::parse(q.page, q.page_size)?;
    let mut problems = Problems::new();
    let kinds = match q.kind {
        None => Vec::new(),
        Some(Kind::Server) => {
            problems.add(
                "kind",
                "must be client, device or claim (server certificates are under /server-certificates/)",
            );
            Vec::new()
        }
        Some(k) => vec![
            match k {
                Kind::Device => CertificateKind::Device.as_str(),
                Kind::Claim => CertificateKind::Claim.as_str(),
                _ => CertificateKind::Client.as_str(),
            }
            .to_owned(),
        ],
    };
    let expiring_within = match q.expiring_within_days {
        Some(d) if (1..=3650).contains(&d) => Some(chrono::Duration::days(d)),
        Some(_) => {
            problems.add("expiring_within_days", "must be from 1 to 3650");
            None
        }
        None => None,
    };
    let filter = CertificateFilter {
        enterprise: None,
        api_key_id: q.api_key_id,
        kinds,
        device: None,
        expiring_within,
        status: q.status.map(status_filter),
        search: q.search.and_then(|s| problems.check("search", query_text(&s))),
    };
    problems.finish()?;
    let listing = state.certificates.list(&caller, filter, page).await?;
    Ok(HttpResponse::Ok().json(PageOf::<CertificateOut>::new(&state, &req, page, listing)))
}

#[utoipa::path(
    get, path = "/api/v4/manage/mqtt-certificates/{id}/", tag = "mqtt-certificates", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = CertificateOut), ReadProblems),
    security(("bearer" = []))
)]
pub async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "certificate")?;
    let record = state.certificates.get(&caller, id).await?;
    Ok(HttpResponse::Ok().json(CertificateOut::new(record, true)))
}

#[utoipa::path(
    post, path = "/api/v4/manage/mqtt-certificates/{id}/revoke/", tag = "mqtt-certificates", params(("id" = uuid::Uuid, Path)),
    request_body(content = Option<RevokeBody>, description = "Optional; an empty body revokes with reason `unspecified`"),
    responses(
        (status = 200, description = "Revoked, and a CRL listing it published; revoking again returns the same record", body = CertificateOut),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller<Manager>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "certificate")?;
    let reason = revoke_reason(&req, &body)?;
    let record = state.certificates.revoke(&caller, id, reason).await?;
    Ok(HttpResponse::Ok().json(CertificateOut::new(record, true)))
}

#[utoipa::path(
    post, path = "/api/v4/manage/mqtt-certificates/revoke/", tag = "mqtt-certificates", request_body = RevokeManyBody,
    responses(
        (status = 200, description = "All revoked (or revoked already), and a CRL listing them published; nothing is revoked when any id is refused", body = RevokedMany),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn revoke_many(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller<Manager>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    require_json(&req)?;
    let body = read_body(&mut payload, BULK_BODY_LIMIT).await?;
    let body: RevokeManyBody = parse_json(&body)?;
    let reason = reason(body.reason.as_deref())?;
    let target = match (body.ids, body.api_key_id) {
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() > MAX_REVOKE_IDS {
                return Err(ApiError::field(
                    "ids",
                    format!("give 1 to {MAX_REVOKE_IDS} certificate ids (send more in several requests)"),
                ));
            }
            let mut problems = Problems::new();
            let mut seen = std::collections::HashSet::with_capacity(ids.len());
            let mut parsed = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                match uuid::Uuid::parse_str(id) {
                    Ok(u) if seen.insert(u) => parsed.push(u),
                    Ok(_) => problems.add(&format!("ids.{i}"), "appears twice"),
                    Err(_) => problems.add(&format!("ids.{i}"), "is not a certificate id (a UUID)"),
                }
            }
            problems.finish()?;
            svc::RevokeMany::Ids(parsed)
        }
        (None, Some(key)) => svc::RevokeMany::ApiKey(
            uuid::Uuid::parse_str(&key).map_err(|_| ApiError::field("api_key_id", "is not an API key id (a UUID)"))?,
        ),
        _ => return Err(ApiError::field("ids", "give either ids or api_key_id")),
    };
    let done = state.certificates.revoke_many(&caller, target, reason).await?;
    Ok(HttpResponse::Ok().json(RevokedMany {
        revoked: done.revoked,
        already_revoked: done.already_revoked,
    }))
}

#[utoipa::path(
    post, path = "/api/v4/manage/mqtt-certificates/{id}/renew/", tag = "mqtt-certificates", params(("id" = uuid::Uuid, Path)),
    request_body(content = Option<RenewBody>, description = "Optional; without a CSR fleetca makes the new key (client certificates only)"),
    responses(
        (status = 201, description = "The renewal: same name and binding; the old certificate is revoked as superseded after the renewal grace. private_key_pem is shown only here", body = CreatedCertificate),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn renew(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller<Manager>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "certificate")?;
    let body: RenewBody = crate::http::extract::optional_json(&req, &body)?;
    let key = match body.csr_pem.as_deref() {
        Some(pem) => KeySource::Csr(
            CsrKey::parse(pem)
                .map_err(|e| ApiError::field("csr_pem", e))?
                .into_inner(),
        ),
        None => KeySource::Generate,
    };
    let issued = state.renewal.renew(&caller, id, key).await?;
    let record = Record {
        certificate: issued.certificate,
        status: svc::Status::Active,
    };
    Ok(secret_json(
        StatusCode::CREATED,
        &CreatedCertificate {
            certificate: CertificateOut::new(record, true),
            private_key_pem: issued.private_key_pem,
            ca_certificate_pem: state.certificates.ca_certificate_pem().to_owned(),
            chain_pem: state.certificates.chain_pem().to_owned(),
        },
    ))
}

#[utoipa::path(
    post, path = "/api/v4/manage/server-certificates/", tag = "server-certificates", request_body = CreateServerCertificateBody,
    responses(
        (status = 201, description = "Created; private_key_pem is shown only here", body = CreatedServerCertificate),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn create_server(
    state: web::Data<AppState>,
    admin: Caller<Admin>,
    ApiJson(body): ApiJson<CreateServerCertificateBody>,
) -> Result<HttpResponse, ApiError> {
    let request = ServerCertRequest::parse(
        body.name.as_deref(),
        &body.dns_names,
        body.ip_addresses,
        body.validity_days,
    )?;
    let (record, key) = state.certificates.create_server(&admin, &request).await?;
    Ok(secret_json(
        StatusCode::CREATED,
        &CreatedServerCertificate {
            certificate: CertificateOut::new(record, true),
            private_key_pem: key,
            ca_certificate_pem: state.certificates.ca_certificate_pem().to_owned(),
            chain_pem: state.certificates.chain_pem().to_owned(),
        },
    ))
}

#[utoipa::path(
    get, path = "/api/v4/manage/server-certificates/", tag = "server-certificates", params(ServerCertificateQuery),
    responses((status = 200, body = PageOf<CertificateOut>), ReadProblems),
    security(("bearer" = []))
)]
pub async fn list_server(
    state: web::Data<AppState>,
    req: HttpRequest,
    _admin: Caller<Admin>,
    q: web::Query<ServerCertificateQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let page = PageRequest::parse(q.page, q.page_size)?;
    let mut problems = Problems::new();
    let filter = CertificateFilter {
        status: q.status.map(status_filter),
        search: q.search.and_then(|s| problems.check("search", query_text(&s))),
        ..Default::default()
    };
    problems.finish()?;
    let listing = state.certificates.list_server(filter, page).await?;
    Ok(HttpResponse::Ok().json(PageOf::<CertificateOut>::new(&state, &req, page, listing)))
}

#[utoipa::path(
    get, path = "/api/v4/manage/server-certificates/{id}/", tag = "server-certificates", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = CertificateOut), ReadProblems),
    security(("bearer" = []))
)]
pub async fn get_server(
    state: web::Data<AppState>,
    admin: Caller<Admin>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "certificate")?;
    let record = state.certificates.get_server(&admin, id).await?;
    Ok(HttpResponse::Ok().json(CertificateOut::new(record, true)))
}

#[utoipa::path(
    post, path = "/api/v4/manage/server-certificates/{id}/revoke/", tag = "server-certificates", params(("id" = uuid::Uuid, Path)),
    request_body(content = Option<RevokeBody>, description = "Optional; an empty body revokes with reason `unspecified`"),
    responses(
        (status = 200, description = "Revoked, and a CRL listing it published", body = CertificateOut),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn revoke_server(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Caller<Admin>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "certificate")?;
    let reason = revoke_reason(&req, &body)?;
    let record = state.certificates.revoke_server(&admin, id, reason).await?;
    Ok(HttpResponse::Ok().json(CertificateOut::new(record, true)))
}
