//! The HTTP layer: routes, middleware and handlers. Handlers parse input into validated
//! types, make one service call and serialize the result; every error is problem+json.

pub mod audit;
pub mod auth;
pub mod broker;
pub mod certificates;
pub mod claims;
pub mod devices;
pub mod disconnects;
pub mod est;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod overview;
pub mod products;
pub mod public;
pub mod rabbitmq;
pub mod ui;
pub mod users;
pub mod webhooks;
pub mod whole;

use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, Route, web};
use serde::Serialize;
use tracing::Instrument;

use crate::domain::{Listing, PageRequest};
use crate::error::ApiError;
use crate::service::Error;
use crate::state::AppState;

/// A route table entry: a path (mounted with and without a trailing slash) and its methods.
pub type Routes = Vec<(&'static str, Vec<(&'static str, fn() -> Route)>)>;

/// One method of a route table entry.
pub fn route(method: &'static str, make: fn() -> Route) -> (&'static str, fn() -> Route) {
    (method, make)
}

/// Every route the server mounts, besides the OpenAPI document and the docs UI.
pub fn routes() -> Routes {
    // The broker's calls come first: actix tries resources in order.
    let mut all = Routes::new();
    all.extend(broker::routes());
    all.extend(rabbitmq::routes());
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

/// Registers every route, each path twice (with and without the trailing slash) as separate
/// resources: actix matches a resource with one static pattern by string comparison, but a
/// resource with several patterns through a regex set, which cost a sixth of the CPU of a
/// broker call before this.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Static paths first: they match by string comparison, and no static path here is also
    // matched by a dynamic pattern, so the order between the two groups changes nothing else.
    let (static_routes, dynamic_routes): (Routes, Routes) = routes().into_iter().partition(|(p, _)| !p.contains('{'));
    for (path, methods) in static_routes.into_iter().chain(dynamic_routes) {
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
    openapi::configure(cfg);
}

/// The answer to an unknown path.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NoRoute)
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id `request_log` gave a request, in its extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Where a request came from, for the audit log.
pub fn request_context(req: &actix_web::HttpRequest) -> crate::domain::RequestContext {
    crate::domain::RequestContext {
        request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
        client_addr: req.peer_addr().map(|a| a.ip().to_canonical().to_string()),
    }
}

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
/// inside a tracing span carrying that id, and logs its outcome.
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
    let quiet = path.starts_with("/broker/") || path == "/healthz";
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

/// A page of results, as the N-Hub API shapes it.
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct PageOf<T> {
    /// How many match in all.
    pub count: u64,
    /// The next page's URL, if any.
    pub next: Option<String>,
    /// The previous page's URL, if any.
    pub previous: Option<String>,
    pub results: Vec<T>,
}

impl<T> PageOf<T> {
    /// Builds the page with absolute `next`/`previous` links on the public URL.
    pub fn new<U>(state: &AppState, req: &HttpRequest, page: PageRequest, listing: Listing<U>) -> Self
    where
        T: From<U>,
    {
        let Listing { items, count } = listing;
        let results: Vec<T> = items.into_iter().map(T::from).collect();
        let link = |n: u64| {
            let mut pairs: Vec<(String, String)> = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
                .map(|q| q.into_inner())
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| k != "page")
                .collect();
            pairs.push(("page".into(), n.to_string()));
            let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
            format!("{}{}?{}", state.config.public_url, req.path(), query)
        };
        let shown = page
            .page
            .saturating_sub(1)
            .saturating_mul(page.page_size)
            .saturating_add(results.len() as u64);
        Self {
            count,
            next: (shown < count && !results.is_empty()).then(|| link(page.page.saturating_add(1))),
            previous: (page.page > 1).then(|| link(page.page.saturating_sub(1))),
            results,
        }
    }
}

/// Parses a path id, reporting a malformed one as "not found" (it cannot name anything).
pub fn parse_id(raw: &str, what: &'static str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| Error::NotFound(what).into())
}

/// A JSON response that carries a secret (a private key, a token, a password): never
/// stored by a cache.
pub fn secret_json(status: actix_web::http::StatusCode, body: &impl Serialize) -> actix_web::HttpResponse {
    actix_web::HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}
