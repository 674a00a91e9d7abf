//! `/api/v4/manage/stats/` and `/api/v4/manage/ca/`: what the overview and CA pages show.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use fleetca_storage::stats::Scope;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::Role;
use crate::error::{ApiError, Problem};
use crate::extract::Auth;
use crate::http::public::CrlState;
use crate::http::route;
use crate::state::AppState;

pub fn routes() -> super::Routes {
    vec![
        ("/api/v4/manage/stats", vec![route("GET", || web::get().to(stats))]),
        ("/api/v4/manage/ca", vec![route("GET", || web::get().to(ca))]),
    ]
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
}

#[derive(Serialize, ToSchema)]
pub struct CaInfo {
    pub subject: String,
    /// SHA-256 of the CA certificate's DER, lowercase hex.
    pub fingerprint: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub certificate_pem: String,
}

#[utoipa::path(
    get, path = "/api/v4/manage/stats/", tag = "overview",
    responses((status = 200, body = Stats), (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn stats(state: web::Data<AppState>, Auth(caller): Auth) -> Result<HttpResponse, ApiError> {
    let scope = match caller.role {
        Role::Admin => Scope::All,
        Role::Manager => Scope::Enterprise(caller.enterprise.clone()),
        Role::Service => Scope::ApiKey(caller.id),
    };
    let s = state.store.stats(&scope, Utc::now()).await?;
    let mut months: BTreeMap<String, u64> = BTreeMap::new();
    for t in &s.active_expiries {
        *months.entry(t.format("%Y-%m").to_string()).or_default() += 1;
    }
    let crl = crate::http::public::crl_state(&state);
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
    }))
}

#[utoipa::path(
    get, path = "/api/v4/manage/ca/", tag = "overview",
    responses((status = 200, body = CaInfo), (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn ca(state: web::Data<AppState>, _caller: Auth) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(CaInfo {
        subject: state.ca.subject().to_owned(),
        fingerprint: state.ca.fingerprint(),
        not_before: state.ca.not_before(),
        not_after: state.ca.not_after(),
        certificate_pem: state.ca.certificate_pem().to_owned(),
    }))
}
