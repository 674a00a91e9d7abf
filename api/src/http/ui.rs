//! The admin UI: static files from `web/`, embedded in the binary at build time.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

use crate::error::ApiError;

#[derive(RustEmbed)]
#[folder = "../web/"]
struct Assets;

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// Serves an embedded asset for GET requests, `/` being `index.html`; anything else is
/// the API's 404 problem (or 405 for other methods on an asset).
pub async fn serve(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let path = req.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let Some(file) = Assets::get(path) else {
        return Err(ApiError::NoRoute);
    };
    if req.method() != actix_web::http::Method::GET && req.method() != actix_web::http::Method::HEAD {
        return Err(ApiError::MethodNotAllowed("GET, HEAD".into()));
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type(path)))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(file.data.into_owned()))
}
