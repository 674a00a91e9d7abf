//! `/api/v4/manage/stats/` and `/api/v4/manage/ca/`: what the overview and CA pages show.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::brokers::acl::Access;
use crate::error::ApiError;
use crate::http::edge::route;
use crate::http::extract::{Admin, Caller};
use crate::http::problems::{ReadProblems, WriteProblems};
use crate::ops::http::public::{CrlState, RepairOut};
use crate::state::AppState;

pub fn routes() -> crate::http::edge::Routes {
    vec![
        ("/api/v4/manage/stats", vec![route("GET", || web::get().to(stats))]),
        ("/api/v4/manage/ca", vec![route("GET", || web::get().to(ca))]),
        (
            "/api/v4/manage/settings",
            vec![route("GET", || web::get().to(settings))],
        ),
        ("/api/v4/manage/repairs", vec![route("GET", || web::get().to(repairs))]),
        (
            "/api/v4/manage/repairs/{id}/acknowledge",
            vec![route("POST", || web::post().to(acknowledge_repair))],
        ),
    ]
}

/// Repairs fleetca made at start after a restore, not yet acknowledged (admins only).
#[utoipa::path(
    get, path = "/api/v4/manage/repairs/", tag = "overview",
    responses((status = 200, body = Vec<RepairOut>), ReadProblems),
    security(("bearer" = []))
)]
pub async fn repairs(state: web::Data<AppState>, _admin: Caller<Admin>) -> Result<HttpResponse, ApiError> {
    let open = state.overview.open_repairs().await?;
    Ok(HttpResponse::Ok().json(open.into_iter().map(RepairOut::from).collect::<Vec<_>>()))
}

/// Acknowledges a repair: `/readyz` stops showing it (admins only; audited).
#[utoipa::path(
    post, path = "/api/v4/manage/repairs/{id}/acknowledge/", tag = "overview", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = RepairOut), WriteProblems),
    security(("bearer" = []))
)]
pub async fn acknowledge_repair(
    state: web::Data<AppState>,
    admin: Caller<Admin>,
    id: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    let repair = state.overview.acknowledge_repair(&admin, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(RepairOut::from(repair)))
}

#[derive(Serialize, ToSchema)]
pub struct CertificateCounts {
    pub active: u64,
    pub revoked: u64,
    pub expiring_30d: u64,
}

#[derive(Serialize, ToSchema)]
pub struct MonthCount {
    /// `YYYY-MM`.
    pub month: String,
    pub count: u64,
}

/// Counts in the caller's scope, and the CRL's state.
#[derive(Serialize, ToSchema)]
pub struct Stats {
    pub api_keys: u64,
    pub devices: u64,
    pub certificates: CertificateCounts,
    /// Active certificates by the month they expire.
    pub expiries_by_month: Vec<MonthCount>,
    pub crl: Option<CrlState>,
    /// The revocation canary's latest check of each broker with an `mqtt_url` (not shown
    /// to API keys).
    pub canaries: Vec<CanaryOut>,
}

/// The revocation canary's latest check of one broker.
#[derive(Serialize, ToSchema)]
pub struct CanaryOut {
    /// The `[[brokers]]` entry's name.
    pub broker: String,
    /// The revoked canary certificate was refused and the valid one accepted; null before
    /// the first check.
    pub enforced: Option<bool>,
    /// The valid canary certificate got a CONNACK.
    pub valid_accepted: Option<bool>,
    /// The revoked canary certificate was refused.
    pub revoked_refused: Option<bool>,
    pub checked_at: Option<DateTime<Utc>>,
    /// How long the valid canary took from connecting to its CONNACK.
    pub latency_ms: Option<u64>,
    /// What failed, in words.
    pub detail: Option<String>,
}

impl From<crate::brokers::canary::CanaryStatus> for CanaryOut {
    fn from(s: crate::brokers::canary::CanaryStatus) -> Self {
        Self {
            broker: s.broker,
            enforced: s.enforced,
            valid_accepted: s.valid_accepted,
            revoked_refused: s.revoked_refused,
            checked_at: s.checked_at,
            latency_ms: s.latency_ms,
            detail: s.detail,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CaInfo {
    /// The first CA: a new installation's root (what clients trust), or the single CA of an
    /// installation made before fleetca had several.
    pub subject: String,
    /// SHA-256 of the CA certificate's DER, lowercase hex.
    pub fingerprint: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub certificate_pem: String,
    /// Every CA, oldest first: the root, the intermediate that issues, those that stand by
    /// or retire.
    pub authorities: Vec<CaLine>,
}

/// One CA.
#[derive(Serialize, ToSchema)]
pub struct CaLine {
    pub id: i32,
    /// `root` or `intermediate`.
    #[schema(example = "intermediate")]
    pub role: String,
    /// `active` (issues), `standby`, `pending`, `retiring`, `retired` or `revoked`.
    #[schema(example = "active")]
    pub state: String,
    /// Absent while it waits for its certificate.
    pub subject: Option<String>,
    pub not_after: Option<DateTime<Utc>>,
    /// Whether fleetca holds its key (not for an operator's own root).
    pub holds_key: bool,
    /// Where its key is: `token` (a PKCS#11 token) or `database` (sealed); absent when
    /// fleetca does not hold it.
    #[schema(example = "database")]
    pub key_store: Option<String>,
    /// Certificates it signed that have not expired, revoked ones included (a retiring CA
    /// is retired at the first start after this reaches 0).
    pub live_certificates: u64,
    /// Whether this instance runs with it as shown: false for a CA added, imported or
    /// activated since it started (a restart brings it in).
    pub loaded: bool,
    /// When its root revoked it (an intermediate; kept once it retires).
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why (RFC 5280's reason name).
    pub revocation_reason: Option<String>,
}

#[utoipa::path(
    get, path = "/api/v4/manage/stats/", tag = "overview",
    responses((status = 200, body = Stats), ReadProblems),
    security(("bearer" = []))
)]
pub async fn stats(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let stats = state.overview.stats(&caller).await?;
    let s = stats.counts;
    let months = stats.expiries_by_month;
    let (crl, publish) = state.overview.crl();
    // The reload command's error output is for the people who run fleetca, not API keys.
    let crl = CrlState::new(crl, publish, caller.role != crate::domain::Role::Service);
    Ok(HttpResponse::Ok().json(Stats {
        api_keys: s.api_keys,
        devices: s.devices,
        certificates: CertificateCounts {
            active: s.active,
            revoked: s.revoked,
            expiring_30d: s.expiring_30d,
        },
        expiries_by_month: months
            .into_iter()
            .map(|(month, count)| MonthCount { month, count })
            .collect(),
        crl,
        canaries: if caller.role == crate::domain::Role::Service {
            Vec::new()
        } else {
            state.overview.canaries().into_iter().map(CanaryOut::from).collect()
        },
    }))
}

#[utoipa::path(
    get, path = "/api/v4/manage/ca/", tag = "overview",
    responses((status = 200, body = CaInfo), ReadProblems),
    security(("bearer" = []))
)]
pub async fn ca(state: web::Data<AppState>, _caller: Caller) -> Result<HttpResponse, ApiError> {
    let ca = state.overview.ca().await?;
    Ok(HttpResponse::Ok().json(CaInfo {
        subject: ca.subject,
        fingerprint: ca.fingerprint,
        not_before: ca.not_before,
        not_after: ca.not_after,
        certificate_pem: ca.certificate_pem,
        authorities: ca
            .authorities
            .into_iter()
            .map(|c| CaLine {
                id: c.id,
                role: c.role.as_str().into(),
                state: c.state.as_str().into(),
                subject: c.subject,
                not_after: c.not_after,
                holds_key: c.holds_key,
                key_store: c.key_store.map(str::to_owned),
                live_certificates: c.live_certificates,
                loaded: c.loaded,
                revoked_at: c.revoked.as_ref().map(|(at, _)| *at),
                revocation_reason: c.revoked.map(|(_, why)| why),
            })
            .collect(),
    }))
}

/// One topic rule of the ACL.
#[derive(Serialize, ToSchema)]
pub struct AclRuleOut {
    /// A topic pattern with placeholders such as `{enterprise}`.
    #[schema(example = "v4/groups/{enterprise}.master/#")]
    pub pattern: String,
    /// Any of `read`, `write`, `subscribe`.
    pub access: Vec<String>,
}

/// The server's settings that the admin UI shows.
#[derive(Serialize, ToSchema)]
pub struct SettingsOut {
    /// The RFC 5280 reason names a revoke accepts.
    pub revocation_reasons: Vec<&'static str>,
    /// Topic rules of API keys.
    pub acl_api_key: Vec<AclRuleOut>,
    /// Topic rules of devices.
    pub acl_device: Vec<AclRuleOut>,
}

fn rules_out(rules: &[crate::brokers::acl::AclRule]) -> Vec<AclRuleOut> {
    rules
        .iter()
        .map(|r| AclRuleOut {
            pattern: r.pattern.clone(),
            access: r
                .access
                .iter()
                .map(|a| {
                    match a {
                        Access::Read => "read",
                        Access::Write => "write",
                        Access::Subscribe => "subscribe",
                    }
                    .to_owned()
                })
                .collect(),
        })
        .collect()
}

#[utoipa::path(
    get, path = "/api/v4/manage/settings/", tag = "overview",
    responses((status = 200, body = SettingsOut), ReadProblems),
    security(("bearer" = []))
)]
pub async fn settings(state: web::Data<AppState>, _caller: Caller) -> Result<HttpResponse, ApiError> {
    let s = state.overview.settings();
    Ok(HttpResponse::Ok().json(SettingsOut {
        revocation_reasons: s.revocation_reasons,
        acl_api_key: rules_out(&s.acl.api_key),
        acl_device: rules_out(&s.acl.device),
    }))
}
