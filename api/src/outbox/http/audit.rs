//! `/api/v4/manage/audit/`: the audit log, newest first, with filters; `?format=jsonl`
//! streams every matching record oldest first, a page at a time, however many there are.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use fleetca_storage::AuditRecord;
use fleetca_storage::audit::AuditFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::{PageRequest, Problems, query_text};
use crate::error::ApiError;
use crate::http::edge::{PageOf, route};
use crate::http::extract::{Caller, Manager};
use crate::http::problems::ReadProblems;
use crate::state::AppState;

pub fn routes() -> crate::http::edge::Routes {
    vec![("/api/v4/manage/audit", vec![route("GET", || web::get().to(list))])]
}

/// One audit record.
#[derive(Serialize, ToSchema)]
pub struct AuditOut {
    /// Position in the chain, from 1.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_id: Option<uuid::Uuid>,
    /// A username, `system`, `{tenant}/{device_id}` for a device, or what a refused caller claimed.
    pub actor: String,
    /// `admin`, `manager`, `service`, `device`, `system` or `anonymous`.
    pub role: String,
    /// `certificate.create`, `certificate.revoke`, `device.disable`, `auth.sign_in_failed`, …
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub enterprise: Option<String>,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    /// Details without secrets.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// SHA-256 of the previous record's hash and this record's content (hex).
    pub hash: String,
    pub prev_hash: String,
}

impl From<AuditRecord> for AuditOut {
    fn from(r: AuditRecord) -> Self {
        Self {
            seq: r.seq,
            at: r.at,
            actor_id: r.actor_id,
            actor: r.actor,
            role: r.role,
            action: r.action,
            target_kind: r.target_kind,
            target_id: r.target_id,
            enterprise: r.enterprise,
            request_id: r.request_id,
            client_addr: r.client_addr,
            outcome: r.outcome,
            details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
            hash: r.hash,
            prev_hash: r.prev_hash,
        }
    }
}

/// How the audit log is answered.
#[derive(Deserialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuditFormat {
    /// A page of JSON (the default).
    Json,
    /// Every matching record as JSON Lines.
    Jsonl,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u64>,
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u64>,
    /// Actor (username, `system`, …).
    #[param(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub actor: Option<String>,
    /// Action, e.g. `certificate.revoke`.
    #[param(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub action: Option<String>,
    /// Target kind (`certificate`, `device`, `user`, `claim`, `session`).
    #[param(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub target_kind: Option<String>,
    /// Target id.
    #[param(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub target_id: Option<String>,
    /// Enterprise (admins; a manager sees only their own).
    #[param(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub enterprise: Option<String>,
    /// From this time on (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// `jsonl`: every matching record, oldest first, one JSON object a line (no paging).
    pub format: Option<AuditFormat>,
}

#[utoipa::path(
    get, path = "/api/v4/manage/audit/", tag = "audit", params(AuditQuery),
    responses(
        (status = 200, description = "A page of records, newest first; with format=jsonl every matching record, oldest first, one JSON object a line", content(
            (PageOf<AuditOut> = "application/json"),
            (String = "application/x-ndjson"),
        )),
        ReadProblems,
    ),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller<Manager>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let page = PageRequest::parse(q.page, q.page_size)?;
    let mut problems = Problems::new();
    let mut text = |field: &str, v: Option<String>| v.and_then(|s| problems.check(field, query_text(&s)));
    let filter = AuditFilter {
        actor: text("actor", q.actor),
        action: text("action", q.action),
        target_kind: text("target_kind", q.target_kind),
        target_id: text("target_id", q.target_id),
        enterprise: text("enterprise", q.enterprise),
        since: q.since,
        until: q.until,
    };
    let jsonl = q.format == Some(AuditFormat::Jsonl);
    problems.finish()?;
    if !jsonl {
        let listing = state.audit.list(&caller, filter, page).await?;
        return Ok(HttpResponse::Ok().json(PageOf::<AuditOut>::new(&state, &req, page, listing)));
    }
    // Checks the caller's scope once before streaming (a refusal is a problem, not a stream).
    state.audit.after(&caller, filter.clone(), i64::MAX, 1).await?;
    let caller = caller.clone();
    let pages = futures_util::stream::unfold(Some(0i64), move |after| {
        let (state, caller, filter) = (state.clone(), caller.clone(), filter.clone());
        async move {
            let after = after?;
            match state.audit.after(&caller, filter, after, 1000).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let last = rows.last().map_or(after, |r| r.seq);
                    let mut chunk = Vec::with_capacity(rows.len() * 400);
                    for row in rows {
                        if serde_json::to_writer(&mut chunk, &AuditOut::from(row)).is_ok() {
                            chunk.push(b'\n');
                        }
                    }
                    Some((Ok::<_, actix_web::Error>(web::Bytes::from(chunk)), Some(last)))
                }
                Err(e) => {
                    tracing::error!(error = %e, "the audit export stopped");
                    Some((
                        Err(actix_web::error::ErrorServiceUnavailable("the audit export stopped")),
                        None,
                    ))
                }
            }
        }
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/x-ndjson"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(pages))
}
