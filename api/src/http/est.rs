//! `/.well-known/est/` (RFC 7030): `cacerts`, `csrattrs` and `simpleenroll`, each also under
//! a label (`/.well-known/est/{label}/…`) that names the tenant a device belongs to. Bodies
//! and answers are base64 DER as the RFC says; errors are plain text with the status the RFC
//! gives them (400 bad CSR, 401 with a challenge, 403 a subject the credential may not
//! enroll).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::domain::{DeviceId, Tenant};
use crate::error::Deliberate;
use crate::http::route;
use crate::service::Error;
use crate::service::est::EnrollError;
use crate::state::AppState;

pub fn routes() -> super::Routes {
    vec![
        (
            "/.well-known/est/cacerts",
            vec![route("GET", || web::get().to(cacerts))],
        ),
        (
            "/.well-known/est/csrattrs",
            vec![route("GET", || web::get().to(csrattrs))],
        ),
        (
            "/.well-known/est/simpleenroll",
            vec![route("POST", || web::post().to(simpleenroll))],
        ),
        (
            "/.well-known/est/{label}/cacerts",
            vec![route("GET", || web::get().to(cacerts_labelled))],
        ),
        (
            "/.well-known/est/{label}/csrattrs",
            vec![route("GET", || web::get().to(csrattrs_labelled))],
        ),
        (
            "/.well-known/est/{label}/simpleenroll",
            vec![route("POST", || web::post().to(simpleenroll_labelled))],
        ),
    ]
}

/// Largest CSR accepted (base64).
const BODY_LIMIT: usize = 16 * 1024;

/// A plain-text answer, as RFC 7030 has errors, kept out of the problem+json rewrite.
fn text(status: StatusCode, message: &str) -> HttpResponse {
    deliberate(
        HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
            .body(format!("{message}\n")),
    )
}

fn deliberate(mut response: HttpResponse) -> HttpResponse {
    response.extensions_mut().insert(Deliberate);
    response
}

fn base64_der(content_type: &'static str, der: &[u8]) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header(("Content-Transfer-Encoding", "base64"))
        .body(STANDARD.encode(der))
}

fn failure(e: Error) -> HttpResponse {
    match e {
        Error::Unavailable => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "fleetca cannot enroll right now; retry",
        ),
        Error::Conflict(why) => text(StatusCode::FORBIDDEN, &why),
        Error::RateLimited { .. } => text(StatusCode::TOO_MANY_REQUESTS, "too many requests; retry later"),
        other => {
            tracing::error!(error = %other, "EST enrollment failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "internal error; it has been logged")
        }
    }
}

/// The CA certificate as a certs-only PKCS#7 (base64 DER).
#[utoipa::path(get, path = "/.well-known/est/cacerts", tag = "est", responses(
    (status = 200, description = "base64 DER certs-only PKCS#7 with the CA certificate", content_type = "application/pkcs7-mime", body = String),
))]
pub async fn cacerts(state: web::Data<AppState>) -> HttpResponse {
    match state.est.cacerts() {
        Ok(der) => base64_der("application/pkcs7-mime; smime-type=certs-only", &der),
        Err(e) => failure(e),
    }
}

/// As `/cacerts`, under a label.
#[utoipa::path(get, path = "/.well-known/est/{label}/cacerts", tag = "est", params(("label" = String, Path)), responses(
    (status = 200, description = "base64 DER certs-only PKCS#7 with the CA certificate", content_type = "application/pkcs7-mime", body = String),
))]
pub async fn cacerts_labelled(state: web::Data<AppState>, _label: web::Path<String>) -> HttpResponse {
    cacerts(state).await
}

/// The CSR attributes fleetca wants: a P-256 key signed with ECDSA-SHA256 (base64 DER).
#[utoipa::path(get, path = "/.well-known/est/csrattrs", tag = "est", responses(
    (status = 200, description = "base64 DER CsrAttrs", content_type = "application/csrattrs", body = String),
))]
pub async fn csrattrs() -> HttpResponse {
    base64_der("application/csrattrs", &fleetca_ca::est::csr_attributes())
}

/// As `/csrattrs`, under a label.
#[utoipa::path(get, path = "/.well-known/est/{label}/csrattrs", tag = "est", params(("label" = String, Path)), responses(
    (status = 200, description = "base64 DER CsrAttrs", content_type = "application/csrattrs", body = String),
))]
pub async fn csrattrs_labelled(_label: web::Path<String>) -> HttpResponse {
    csrattrs().await
}

enum Credential {
    Basic(String, String),
    Bearer(String),
}

fn credential(req: &HttpRequest) -> Option<Credential> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => {
            let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
            let (user, password) = decoded.split_once(':')?;
            Some(Credential::Basic(user.to_owned(), password.to_owned()))
        }
        "bearer" => Some(Credential::Bearer(rest.trim().to_owned())),
        _ => None,
    }
}

fn challenge(label: Option<&str>) -> HttpResponse {
    let realm = label.filter(|l| Tenant::parse(l).is_ok()).unwrap_or("fleetca");
    deliberate(
        HttpResponse::Unauthorized()
            .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
            .insert_header((header::WWW_AUTHENTICATE, format!("Basic realm=\"{realm}\", charset=\"UTF-8\"")))
            .body("authenticate: a device with Basic (its id and password, the label naming its tenant), an API key with its Bearer token\n"),
    )
}

async fn enroll(state: &AppState, req: &HttpRequest, label: Option<&str>, body: &[u8]) -> HttpResponse {
    if body.len() > BODY_LIMIT {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "the CSR is too large");
    }
    let Some(credential) = credential(req) else {
        return challenge(label);
    };
    let compact: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    let Ok(csr) = STANDARD.decode(&compact) else {
        return text(
            StatusCode::BAD_REQUEST,
            "the body is not base64 (send the DER PKCS#10, base64-encoded)",
        );
    };
    let result = match credential {
        Credential::Basic(device_id, password) => {
            let (Some(tenant), true) = (label, DeviceId::parse(&device_id).is_ok()) else {
                return challenge(label);
            };
            if Tenant::parse(tenant).is_err() {
                return challenge(label);
            }
            state.est.enroll_device(tenant, &device_id, &password, &csr).await
        }
        Credential::Bearer(token) => match state.tokens.verify(&token).await {
            Ok(Some(principal)) => state.est.enroll_api_key(&principal, &csr).await,
            Ok(None) => Err(EnrollError::Unauthenticated),
            Err(e) => Err(EnrollError::Service(e)),
        },
    };
    match result {
        Ok(cert) => match pem::parse(&cert.certificate_pem)
            .map_err(|e| Error::Internal(e.to_string()))
            .and_then(|p| fleetca_ca::est::certs_only(&[p.contents()]).map_err(Error::from))
        {
            Ok(der) => base64_der("application/pkcs7-mime; smime-type=certs-only", &der),
            Err(e) => failure(e),
        },
        Err(EnrollError::BadRequest(why)) => text(StatusCode::BAD_REQUEST, &why),
        Err(EnrollError::Unauthenticated) => challenge(label),
        Err(EnrollError::Forbidden(why)) => text(StatusCode::FORBIDDEN, why),
        Err(EnrollError::Service(e)) => failure(e),
    }
}

/// Enrolls: a device with HTTP Basic (under a label naming its tenant), or an API key with
/// its Bearer token. Body: the base64 DER PKCS#10.
#[utoipa::path(post, path = "/.well-known/est/simpleenroll", tag = "est",
    request_body(content = String, content_type = "application/pkcs10", description = "base64 DER PKCS#10"),
    responses(
        (status = 200, description = "base64 DER certs-only PKCS#7 with the new certificate", content_type = "application/pkcs7-mime", body = String),
        (status = 400, description = "A malformed CSR", content_type = "text/plain", body = String),
        (status = 401, description = "No or wrong credentials (with a challenge)", content_type = "text/plain", body = String),
        (status = 403, description = "The credential may not enroll this subject, or its limit is reached", content_type = "text/plain", body = String),
        (status = 413, description = "The CSR is too large", content_type = "text/plain", body = String),
        (status = 503, description = "Retry later", content_type = "text/plain", body = String),
    ),
    security(("bearer" = []))
)]
pub async fn simpleenroll(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    enroll(&state, &req, None, &body).await
}

/// As `/simpleenroll`, under a label (a device's tenant).
#[utoipa::path(post, path = "/.well-known/est/{label}/simpleenroll", tag = "est", params(("label" = String, Path)),
    request_body(content = String, content_type = "application/pkcs10", description = "base64 DER PKCS#10"),
    responses(
        (status = 200, description = "base64 DER certs-only PKCS#7 with the new certificate", content_type = "application/pkcs7-mime", body = String),
        (status = 400, description = "A malformed CSR", content_type = "text/plain", body = String),
        (status = 401, description = "No or wrong credentials (with a challenge)", content_type = "text/plain", body = String),
        (status = 403, description = "The credential may not enroll this subject, or its limit is reached", content_type = "text/plain", body = String),
        (status = 413, description = "The CSR is too large", content_type = "text/plain", body = String),
        (status = 503, description = "Retry later", content_type = "text/plain", body = String),
    ),
    security(("bearer" = []))
)]
pub async fn simpleenroll_labelled(
    state: web::Data<AppState>,
    req: HttpRequest,
    label: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    enroll(&state, &req, Some(&label), &body).await
}
