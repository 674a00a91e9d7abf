//! The HTTP edge on top of every context: the route table gathered from each context's
//! `http` module, the OpenAPI document, `/metrics`, the admin UI's assets, the request log.
//! The handlers themselves live in their context (`pki/http/`, `fleet/http/`, …) and share
//! [`edge`] (route shapes, pages, ids) and [`extract`] (the extractors that authenticate and
//! authorise before a handler runs); every error becomes problem+json in `crate::error`.

pub mod broker_edge;
pub mod edge;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod problems;
pub mod ui;
pub mod whole;

use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument;

use self::edge::{RequestId, Routes};
use crate::brokers::families::{emqx, go_auth, mosquitto, rabbitmq};
use crate::brokers::http::disconnects;
use crate::error::ApiError;
use crate::fleet::http::{devices, products};
use crate::identity::http::{auth, users};
use crate::ops::http::{overview, public};
use crate::outbox::http::{audit, webhooks};
use crate::pki::http::{authorities, certificates, claims, est};

/// Every route the server mounts, besides the OpenAPI document and the docs UI.
pub fn routes() -> Routes {
    // The brokers' routes are mounted apart, in a scope of their own (`configure_brokers`).
    let mut all = Routes::new();
    all.extend(go_auth::http::routes());
    all.extend(emqx::http::routes());
    all.extend(rabbitmq::http::routes());
    all.extend(mosquitto::http::routes());
    all.extend(public::routes());
    all.extend(metrics::routes());
    all.extend(est::routes());
    all.extend(users::routes());
    all.extend(certificates::routes());
    all.extend(claims::routes());
    all.extend(audit::routes());
    all.extend(webhooks::routes());
    all.extend(disconnects::routes());
    all.extend(devices::routes());
    all.extend(products::routes());
    all.extend(auth::routes());
    all.extend(overview::routes());
    all.extend(authorities::routes());
    all
}

/// `(METHOD, path)` of every mounted route, for the test that holds the OpenAPI document
/// to the routes.
pub fn mounted() -> Vec<(String, String)> {
    routes()
        .into_iter()
        .flat_map(|(path, methods)| methods.into_iter().map(move |(m, _)| (m.to_owned(), path.to_owned())))
        .collect()
}

/// The prefix of the brokers' routes, mounted as a scope of their own ([`broker_edge`]).
pub const BROKER_SCOPE: &str = "/broker";

/// Registers every route but the brokers' (see [`configure_brokers`]), and the OpenAPI
/// document.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let rest = routes().into_iter().filter(|(p, _)| !is_broker(p)).collect();
    register(cfg, rest, "");
    openapi::configure(cfg);
}

/// Registers the brokers' routes inside the `/broker` scope (their paths without it).
pub fn configure_brokers(cfg: &mut web::ServiceConfig) {
    let brokers: Routes = routes().into_iter().filter(|(p, _)| is_broker(p)).collect();
    metrics::name_broker_routes(brokers.iter().map(|(p, _)| *p).filter(|p| !p.contains('{')));
    register(cfg, brokers, BROKER_SCOPE);
}

fn is_broker(path: &str) -> bool {
    path.strip_prefix(BROKER_SCOPE)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// Registers routes, each path twice (with and without the trailing slash) as separate
/// resources: actix matches a resource with one static pattern by string comparison, but a
/// resource with several patterns through a regex set, which cost a sixth of the CPU of a
/// broker call before this. `scope` is the prefix the paths are mounted under.
fn register(cfg: &mut web::ServiceConfig, routes: Routes, scope: &str) {
    // Static paths first: they match by string comparison, and no static path here is also
    // matched by a dynamic pattern, so the order between the two groups changes nothing else.
    let (static_routes, dynamic_routes): (Routes, Routes) = routes.into_iter().partition(|(p, _)| !p.contains('{'));
    for (path, methods) in static_routes.into_iter().chain(dynamic_routes) {
        let path = path.strip_prefix(scope).unwrap_or(path);
        let mut patterns = vec![path.to_owned()];
        if !path.ends_with('/') && !path.contains('.') {
            patterns.push(format!("{path}/"));
        }
        // A 405 names what the path takes (RFC 9110 §15.5.6).
        let allow = methods.iter().map(|(m, _)| *m).collect::<Vec<_>>().join(", ");
        for pattern in patterns {
            let allow = allow.clone();
            let mut resource = web::resource(pattern).default_service(web::to(move || {
                let allow = allow.clone();
                async move { Err::<actix_web::HttpResponse, _>(ApiError::MethodNotAllowed(allow)) }
            }));
            for (_, make) in &methods {
                resource = resource.route(make());
            }
            cfg.service(resource);
        }
    }
}

/// The answer to an unknown path.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NoRoute)
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A request id unique across restarts and instances: a random per-process prefix and a
/// counter (no system call per request, unlike a random UUID).
fn next_request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
    format!("{prefix}-{:x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Gives every request an id (the caller's `X-Request-Id` if it sent a sane one), runs it
/// inside a tracing span carrying that id, and logs its outcome. (The brokers' routes have
/// their own edge: [`broker_edge`].)
pub async fn request_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> actix_web::Result<ServiceResponse<EitherBody<impl MessageBody>>> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(str::to_owned)
        .unwrap_or_else(next_request_id);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().to_string();
    let path = req.path().to_owned();
    // Successful requests are logged at debug level: at thousands of requests a second a
    // line each would cost more than the work. Failures, slow requests and the audit lines
    // that services write (who created, rotated, revoked what) stay at info.
    let quiet = path == "/healthz";
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let started = Instant::now();
    let mut res = next.call(req).instrument(span.clone()).await?;
    let status = res.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if (quiet || status < 400) && ms < 500.0 {
            tracing::debug!(status, ms, "served");
        } else {
            tracing::info!(status, ms, "served");
        }
    });
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID.clone(), v);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(res.map_into_left_body())
}
