//! What every context's handlers share: the route table's shape, the request id and
//! context, pages of results, path ids and responses that carry secrets. It imports no
//! context; `http/mod.rs` gathers the contexts' routes on top of it.

use actix_web::HttpMessage;
use actix_web::http::header;
use actix_web::{HttpRequest, Route, web};
use serde::Serialize;

use crate::domain::{Listing, PageRequest};
use crate::error::ApiError;
use crate::state::AppState;
use crate::support::Error;

/// A route table entry: a path (mounted with and without a trailing slash) and its methods.
pub type Routes = Vec<(&'static str, Vec<(&'static str, fn() -> Route)>)>;

/// One method of a route table entry.
pub fn route(method: &'static str, make: fn() -> Route) -> (&'static str, fn() -> Route) {
    (method, make)
}

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
