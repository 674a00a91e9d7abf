//! Unauthenticated endpoints: health, readiness, the CA certificate and the CRL.

use actix_web::http::header::{self, EntityTag, HttpDate};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::edge::route;
use crate::pki::crl::{PublishStatus, PublishedCrl};
use crate::state::AppState;

pub fn routes() -> crate::http::edge::Routes {
    vec![
        ("/healthz", vec![route("GET", || web::get().to(healthz))]),
        ("/readyz", vec![route("GET", || web::get().to(readyz))]),
        ("/ca.pem", vec![route("GET", || web::get().to(ca_pem))]),
        ("/crl.der", vec![route("GET", || web::get().to(crl_der))]),
        ("/crl.pem", vec![route("GET", || web::get().to(crl_pem))]),
        ("/crl/{ca}.der", vec![route("GET", || web::get().to(ca_crl_der))]),
        ("/crl/{ca}.pem", vec![route("GET", || web::get().to(ca_crl_pem))]),
        (
            "/crl/{ca}/{shard}.der",
            vec![route("GET", || web::get().to(shard_crl_der))],
        ),
        (
            "/crl/{ca}/{shard}.pem",
            vec![route("GET", || web::get().to(shard_crl_pem))],
        ),
    ]
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// How the last publication of the CRL to its file and reload command went.
#[derive(Serialize, ToSchema)]
pub struct PublishState {
    /// Whether the last file write and reload command succeeded (true when neither is configured).
    pub ok: bool,
    /// When it was attempted.
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// What failed; shown to signed-in users only (the log has it too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The state of the CRL served.
#[derive(Serialize, ToSchema)]
pub struct CrlState {
    pub number: u64,
    pub this_update: chrono::DateTime<chrono::Utc>,
    pub next_update: chrono::DateTime<chrono::Utc>,
    pub entries: usize,
    /// The last write of the CRL file and run of the reload command.
    pub publish: PublishState,
}

impl CrlState {
    /// The CRL's state; `with_error` only for an authenticated caller, since a reload
    /// command's error output may say more about the host than anonymous callers should see.
    pub fn new(crl: Option<PublishedCrl>, publish: PublishStatus, with_error: bool) -> Option<Self> {
        crl.map(|c| CrlState {
            number: c.number,
            this_update: c.this_update,
            next_update: c.next_update,
            entries: c.entries,
            publish: PublishState {
                ok: publish.ok,
                at: publish.at,
                error: publish.error.filter(|_| with_error),
            },
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    pub status: &'static str,
    /// Whether the database answers.
    pub database: bool,
    /// Whether the issuing CA's key can sign: always for a key sealed in the database; for
    /// one in a PKCS#11 token, whether the token answers (fleetca reconnects when it returns).
    pub ca_key: bool,
    pub crl: Option<CrlState>,
    /// Repairs fleetca made at start because its database was behind the CRL it had
    /// published (a restored older backup) that no admin has acknowledged yet; the details
    /// are at `GET /api/v4/manage/repairs/` (admins).
    pub unacknowledged_repairs: usize,
}

/// A repair of a restored database (see the README's "Backups and restore").
#[derive(Serialize, ToSchema)]
pub struct RepairOut {
    pub id: uuid::Uuid,
    pub at: chrono::DateTime<chrono::Utc>,
    /// The published and database CRL numbers, and what was revoked again.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub acknowledged_at: Option<chrono::DateTime<chrono::Utc>>,
    pub acknowledged_by: Option<String>,
}

impl From<fleetca_storage::repairs::Repair> for RepairOut {
    fn from(r: fleetca_storage::repairs::Repair) -> Self {
        Self {
            id: r.id,
            at: r.at,
            details: serde_json::from_str(&r.details).unwrap_or_default(),
            acknowledged_at: r.acknowledged_at,
            acknowledged_by: r.acknowledged_by,
        }
    }
}

/// Ready to serve: the database answers, the issuing CA's key can sign, and the last CRL
/// publication succeeded.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, body = Readiness),
    (status = 503, description = "Database unreachable, the CA key's token not answering, or the CRL file/reload failed", body = Readiness),
))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let readiness = state.overview.readiness().await;
    let ready = readiness.ready();
    let unacknowledged_repairs = state.overview.open_repairs().await.map_or(0, |r| r.len());
    let body = Readiness {
        status: if ready { "ready" } else { "unavailable" },
        database: readiness.database,
        ca_key: readiness.ca_key,
        crl: CrlState::new(readiness.crl, readiness.publish, false),
        unacknowledged_repairs,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// The trust bundle (PEM): every CA certificate of fleetca's that is not retired, roots
/// first. What a broker loads as its `cafile`; with a single CA, that CA's certificate.
#[utoipa::path(get, path = "/ca.pem", tag = "pki", responses((status = 200, content_type = "application/x-pem-file", body = String)))]
pub async fn ca_pem(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/x-pem-file"))
        .insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"ca.crt\""))
        .body(state.certificates.trust_bundle_pem())
}

/// The first CA's current CRL, DER (`application/pkix-crl`): the distribution point of the
/// certificates it signed. Supports `If-None-Match`.
#[utoipa::path(get, path = "/crl.der", tag = "pki", responses(
    (status = 200, content_type = "application/pkix-crl", body = Vec<u8>),
    (status = 304, description = "Unchanged since the ETag sent"),
))]
pub async fn crl_der(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    crl_response(&state, &req, 1, false)
}

/// Every CRL fleetca publishes, PEM, one after another: what the CRL file holds, for a
/// broker that fetches it (with one CA, that CA's CRL). Supports `If-None-Match`.
#[utoipa::path(get, path = "/crl.pem", tag = "pki", responses(
    (status = 200, content_type = "application/x-pem-file", body = String),
    (status = 304, description = "Unchanged since the ETag sent"),
))]
pub async fn crl_pem(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some((pem, this_update, tag)) = state.overview.all_crls_pem() else {
        return HttpResponse::ServiceUnavailable().finish();
    };
    conditional(&req, EntityTag::new_strong(tag), this_update, |resp| {
        resp.insert_header((header::CONTENT_TYPE, "application/x-pem-file"))
            .body(pem)
    })
}

/// The current CRL of CA `ca` (an intermediate, or a root made later), DER: the
/// distribution point of what that CA signed. 404 for a CA whose CRL fleetca does not
/// publish. Supports `If-None-Match`.
#[utoipa::path(get, path = "/crl/{ca}.der", tag = "pki", params(("ca" = i32, Path, description = "The CA's id")), responses(
    (status = 200, content_type = "application/pkix-crl", body = Vec<u8>),
    (status = 304, description = "Unchanged since the ETag sent"),
    (status = 404, description = "No CRL of that CA"),
))]
pub async fn ca_crl_der(state: web::Data<AppState>, req: HttpRequest, ca: web::Path<String>) -> HttpResponse {
    match ca.parse() {
        Ok(id) => crl_response(&state, &req, id, false),
        Err(_) => HttpResponse::NotFound().finish(),
    }
}

/// As `/crl/{ca}.der`, PEM.
#[utoipa::path(get, path = "/crl/{ca}.pem", tag = "pki", params(("ca" = i32, Path, description = "The CA's id")), responses(
    (status = 200, content_type = "application/x-pem-file", body = String),
    (status = 304, description = "Unchanged since the ETag sent"),
    (status = 404, description = "No CRL of that CA"),
))]
pub async fn ca_crl_pem(state: web::Data<AppState>, req: HttpRequest, ca: web::Path<String>) -> HttpResponse {
    match ca.parse() {
        Ok(id) => crl_response(&state, &req, id, true),
        Err(_) => HttpResponse::NotFound().finish(),
    }
}

/// Shard `shard` of CA `ca`'s CRL, DER: the distribution point of the certificates that CA
/// issued naming that shard (see the README's "Sharded CRLs"). 404 for a shard fleetca does
/// not publish. Supports `If-None-Match`.
#[utoipa::path(get, path = "/crl/{ca}/{shard}.der", tag = "pki", params(
    ("ca" = i32, Path, description = "The CA's id", example = 2),
    ("shard" = i16, Path, description = "The shard, from 0", example = 0),
), responses(
    (status = 200, content_type = "application/pkix-crl", body = Vec<u8>),
    (status = 304, description = "Unchanged since the ETag sent"),
    (status = 404, description = "No such shard"),
))]
pub async fn shard_crl_der(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    shard_response(&state, &req, &path, false)
}

/// As `/crl/{ca}/{shard}.der`, PEM.
#[utoipa::path(get, path = "/crl/{ca}/{shard}.pem", tag = "pki", params(
    ("ca" = i32, Path, description = "The CA's id", example = 2),
    ("shard" = i16, Path, description = "The shard, from 0", example = 0),
), responses(
    (status = 200, content_type = "application/x-pem-file", body = String),
    (status = 304, description = "Unchanged since the ETag sent"),
    (status = 404, description = "No such shard"),
))]
pub async fn shard_crl_pem(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    shard_response(&state, &req, &path, true)
}

fn shard_response(state: &AppState, req: &HttpRequest, (ca, shard): &(String, String), pem: bool) -> HttpResponse {
    let crl = match (ca.parse(), shard.parse()) {
        (Ok(ca), Ok(shard)) => state
            .overview
            .crl_shard(ca, shard)
            .map(|crl| (format!("{ca}-{shard}"), crl)),
        _ => None,
    };
    match crl {
        Some((name, crl)) => send_crl(req, &name, crl, pem),
        None => HttpResponse::NotFound().finish(),
    }
}

fn crl_response(state: &AppState, req: &HttpRequest, ca: i32, pem: bool) -> HttpResponse {
    let Some(crl) = state.overview.crl_of(ca) else {
        return if ca == 1 {
            HttpResponse::ServiceUnavailable().finish()
        } else {
            HttpResponse::NotFound().finish()
        };
    };
    send_crl(req, &ca.to_string(), crl, pem)
}

/// A CRL, DER or PEM, with an ETag naming it (`name`) and its number.
fn send_crl(req: &HttpRequest, name: &str, crl: PublishedCrl, pem: bool) -> HttpResponse {
    let etag = EntityTag::new_strong(format!("crl-{name}-{}-{}", crl.number, if pem { "pem" } else { "der" }));
    conditional(req, etag, crl.this_update, |resp| {
        if pem {
            resp.insert_header((header::CONTENT_TYPE, "application/x-pem-file"))
                .body(crl.pem)
        } else {
            resp.insert_header((header::CONTENT_TYPE, "application/pkix-crl"))
                .body(crl.der)
        }
    })
}

/// A 304 when `If-None-Match` names `etag`, else 200 with the body `send` adds; with the
/// ETag, Last-Modified and `no-cache` either way.
fn conditional(
    req: &HttpRequest,
    etag: EntityTag,
    this_update: chrono::DateTime<chrono::Utc>,
    send: impl FnOnce(&mut actix_web::HttpResponseBuilder) -> HttpResponse,
) -> HttpResponse {
    let last_modified = HttpDate::from(std::time::SystemTime::from(this_update));
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag.to_string() || t.trim() == "*"));
    let mut resp = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header((header::ETAG, etag))
        .insert_header((header::LAST_MODIFIED, last_modified))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if matches {
        return resp.finish();
    }
    send(&mut resp)
}
