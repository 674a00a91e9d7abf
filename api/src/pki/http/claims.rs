//! `/api/v4/manage/claims/`: claim certificates for fleet provisioning (see
//! `service::claims`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use fleetca_storage::Claim;
use fleetca_storage::claims::ClaimFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::{CertificateName, PageRequest, Problems, Tenant};
use crate::error::ApiError;
use crate::http::edge::{PageOf, parse_id, route, secret_json};
use crate::http::extract::{ApiJson, Caller, Manager};
use crate::http::problems::{ReadProblems, WriteProblems};
use crate::pki::claims::CreateClaim;
use crate::state::AppState;

pub fn routes() -> crate::http::edge::Routes {
    vec![
        (
            "/api/v4/manage/claims",
            vec![
                route("GET", || web::get().to(list)),
                route("POST", || web::post().to(create)),
            ],
        ),
        ("/api/v4/manage/claims/{id}", vec![route("GET", || web::get().to(get))]),
        (
            "/api/v4/manage/claims/{id}/revoke",
            vec![route("POST", || web::post().to(revoke))],
        ),
    ]
}

/// Create a claim.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClaimBody {
    /// 1–200 characters, e.g. the factory line.
    #[schema(
        example = "Line 3, batch 2026-12",
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub name: String,
    /// The tenant whose devices enroll with it.
    #[schema(example = "nnn.acme", pattern = "^[a-z0-9][a-z0-9.-]{0,63}$")]
    pub tenant: String,
    /// How many devices may enroll with it: 1 to 1,000,000.
    #[schema(minimum = 1, maximum = 1000000)]
    #[serde(deserialize_with = "crate::http::whole::required")]
    pub max_uses: i64,
    /// Until when (RFC 3339, at most 10 years ahead; default 30 days from now). The claim
    /// certificate expires then too.
    pub expires_at: Option<DateTime<Utc>>,
    /// Register a device id that is not provisioned on its first enrollment (default
    /// false: only provisioned devices enroll).
    #[serde(default)]
    pub register_unknown: bool,
    /// Validity of the device certificates enrolled with it: 1 to 3650 days (default 365).
    #[schema(minimum = 1, maximum = 3650)]
    #[serde(default, deserialize_with = "crate::http::whole::optional")]
    pub validity_days: Option<i64>,
}

/// A claim as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct ClaimOut {
    pub id: uuid::Uuid,
    pub name: String,
    pub tenant: String,
    /// The claim certificate (kind `claim` under `/mqtt-certificates/`).
    pub certificate_id: uuid::Uuid,
    pub max_uses: i64,
    /// Enrollments so far.
    pub uses: i64,
    pub expires_at: DateTime<Utc>,
    pub register_unknown: bool,
    pub validity_days: i64,
    /// `active`, `revoked`, `expired` or `used_up`.
    pub status: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<Claim> for ClaimOut {
    fn from(c: Claim) -> Self {
        let status = if c.revoked_at.is_some() {
            "revoked"
        } else if c.expires_at <= Utc::now() {
            "expired"
        } else if c.uses >= c.max_uses {
            "used_up"
        } else {
            "active"
        };
        Self {
            status: status.into(),
            id: c.id,
            name: c.name,
            tenant: c.tenant,
            certificate_id: c.certificate_id,
            max_uses: c.max_uses,
            uses: c.uses,
            expires_at: c.expires_at,
            register_unknown: c.register_unknown,
            validity_days: c.validity_days,
            created_by: c.created_by,
            created_at: c.created_at,
            revoked_at: c.revoked_at,
        }
    }
}

/// A new claim with its certificate and key, shown only in this response.
#[derive(Serialize, ToSchema)]
pub struct CreatedClaimOut {
    #[serde(flatten)]
    pub claim: ClaimOut,
    pub certificate_pem: String,
    /// The claim certificate's P-256 key (`PRIVATE KEY` PEM). Never stored.
    pub private_key_pem: String,
    pub ca_certificate_pem: String,
    /// The intermediate CA certificates between this certificate and `ca_certificate_pem`
    /// (PEM, nearest first): a client presents them after its own certificate. Empty when
    /// the root signed it.
    pub chain_pem: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClaimQuery {
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u64>,
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u64>,
    /// Only this tenant's.
    #[param(pattern = "^[a-z0-9][a-z0-9.-]{0,63}$")]
    pub tenant: Option<String>,
}

#[utoipa::path(
    post, path = "/api/v4/manage/claims/", tag = "claims", request_body = CreateClaimBody,
    responses(
        (status = 201, description = "Created; the claim certificate's key is shown only here", body = CreatedClaimOut),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    ApiJson(body): ApiJson<CreateClaimBody>,
) -> Result<HttpResponse, ApiError> {
    let mut problems = Problems::new();
    let name = problems.check("name", CertificateName::parse(&body.name));
    let tenant = problems.check("tenant", Tenant::parse(&body.tenant));
    if !(1..=1_000_000).contains(&body.max_uses) {
        problems.add("max_uses", "must be from 1 to 1000000");
    }
    let now = Utc::now();
    let expires_at = body.expires_at.unwrap_or(now + chrono::Duration::days(30));
    if expires_at <= now {
        problems.add("expires_at", "must be in the future");
    } else if expires_at > now + chrono::Duration::days(3650) {
        problems.add("expires_at", "must be at most 10 years ahead");
    }
    let validity_days = body.validity_days.unwrap_or(365);
    if !(1..=3650).contains(&validity_days) {
        problems.add("validity_days", "must be from 1 to 3650");
    }
    problems.finish()?;
    let (Some(name), Some(tenant)) = (name, tenant) else {
        return Err(ApiError::field("name", "is required"));
    };
    let input = CreateClaim {
        name,
        tenant,
        max_uses: body.max_uses,
        expires_at,
        register_unknown: body.register_unknown,
        validity_days,
    };
    let created = state.claims.create(&caller, input).await?;
    Ok(secret_json(
        StatusCode::CREATED,
        &CreatedClaimOut {
            claim: created.claim.into(),
            certificate_pem: created.certificate_pem,
            private_key_pem: created.private_key_pem,
            ca_certificate_pem: created.ca_certificate_pem,
            chain_pem: created.chain_pem,
        },
    ))
}

#[utoipa::path(
    get, path = "/api/v4/manage/claims/", tag = "claims", params(ClaimQuery),
    responses((status = 200, body = PageOf<ClaimOut>), ReadProblems),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller<Manager>,
    q: web::Query<ClaimQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let page = PageRequest::parse(q.page, q.page_size)?;
    let mut problems = Problems::new();
    let tenant = q
        .tenant
        .and_then(|t| problems.check("tenant", Tenant::parse(&t)))
        .map(Tenant::into_inner);
    problems.finish()?;
    let filter = ClaimFilter {
        enterprise: None,
        tenant,
    };
    let listing = state.claims.list(&caller, filter, page).await?;
    Ok(HttpResponse::Ok().json(PageOf::<ClaimOut>::new(&state, &req, page, listing)))
}

#[utoipa::path(
    get, path = "/api/v4/manage/claims/{id}/", tag = "claims", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = ClaimOut), ReadProblems),
    security(("bearer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "claim")?;
    Ok(HttpResponse::Ok().json(ClaimOut::from(state.claims.get(&caller, id).await?)))
}

#[utoipa::path(
    post, path = "/api/v4/manage/claims/{id}/revoke/", tag = "claims", params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "Revoked with its certificate, and a CRL listing it published; revoking again returns the same record", body = ClaimOut),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn revoke(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "claim")?;
    Ok(HttpResponse::Ok().json(ClaimOut::from(state.claims.revoke(&caller, id).await?)))
}
