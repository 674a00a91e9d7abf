//! `/.well-known/est/` (RFC 7030): `cacerts`, `csrattrs`, `simpleenroll` and
//! `simplereenroll`, each also under a label (`/.well-known/est/{label}/…`) that names the
//! tenant a device belongs to. Bodies and answers are base64 DER as the RFC says; errors are
//! plain text with the status the RFC gives them (400 bad CSR, 401 with a challenge, 403 a
//! subject the credential may not enroll).
//!
//! The client certificate of a request is the one its TLS connection verified, or — from a
//! `trusted_proxies` address only — the one a TLS-terminating proxy forwards in
//! `X-SSL-Client-Cert` (nginx's `$ssl_client_escaped_cert`), checked against the CA here.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use fleetca_ca::digest::DigestCredentials;
use fleetca_storage::Certificate;

use crate::domain::AuditAction;
use crate::domain::{DeviceId, Tenant};
use crate::error::{ApiError, Deliberate};
use crate::http::edge::route;
use crate::state::AppState;
use crate::support::Error;
use crate::tls::PeerCertificate;

pub fn routes() -> crate::http::edge::Routes {
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
            "/.well-known/est/simplereenroll",
            vec![route("POST", || web::post().to(simplereenroll))],
        ),
        (
            "/.well-known/est/{label}/simplereenroll",
            vec![route("POST", || web::post().to(simplereenroll_labelled))],
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

/// A refusal in EST's plain text, its status from the one table (`crate::error`).
fn refusal(e: Error) -> HttpResponse {
    let detail = match &e {
        Error::Invalid(fields) => fields
            .iter()
            .map(|(field, why)| format!("{field}: {}", why.join("; ")))
            .collect::<Vec<_>>()
            .join("\n"),
        Error::Forbidden(why) | Error::Conflict(why) => why.clone(),
        // EST's only rate limit: the failure limiter of device passwords.
        Error::RateLimited { retry_after_secs } => {
            format!("too many wrong passwords for this device or from this address; retry in {retry_after_secs} s")
        }
        Error::Internal(cause) => {
            tracing::error!(%cause, "EST enrollment failed");
            String::new()
        }
        _ => String::new(),
    };
    let error = ApiError::from(e);
    let detail = if detail.is_empty() {
        error.problem().detail
    } else {
        detail
    };
    let mut response = text(error.status_code(), &detail);
    if let ApiError::Service(Error::RateLimited { retry_after_secs }) = &error
        && let Ok(value) = header::HeaderValue::from_str(&retry_after_secs.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The CA certificate as a certs-only PKCS#7 (base64 DER).
#[utoipa::path(get, path = "/.well-known/est/cacerts", tag = "est", responses(
    (status = 200, description = "base64 DER certs-only PKCS#7 with the CA certificate", content_type = "application/pkcs7-mime", body = String),
))]
pub async fn cacerts(state: web::Data<AppState>) -> HttpResponse {
    match state.est.cacerts() {
        Ok(der) => base64_der("application/pkcs7-mime; smime-type=certs-only", &der),
        Err(e) => refusal(e),
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
    Digest(Box<DigestCredentials>),
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
        "digest" => Some(Credential::Digest(Box::new(DigestCredentials::parse(rest)?))),
        "bearer" => Some(Credential::Bearer(rest.trim().to_owned())),
        _ => None,
    }
}

/// The header a TLS-terminating proxy forwards the client certificate in.
pub const CLIENT_CERT_HEADER: &str = "X-SSL-Client-Cert";

/// The header a trusted proxy proves itself with, when `FLEETCA_PROXY_SECRET` is set.
pub const PROXY_SECRET_HEADER: &str = "X-Proxy-Secret";

/// The client certificate of this request (DER): from its own TLS connection, or from a
/// trusted proxy's header. Anyone else's header is ignored.
pub fn client_certificate(state: &AppState, req: &HttpRequest) -> Option<Vec<u8>> {
    if let Some(peer) = req.conn_data::<PeerCertificate>() {
        return Some(peer.0.clone());
    }
    if !crate::http::extract::peer_within(req, &state.config.trusted_proxies) {
        return None;
    }
    // With a proxy secret set, an address in the range is not enough: the proxy proves
    // itself too (compared in constant time).
    if let Some(secret) = &state.config.proxy_secret {
        let sent = req.headers().get(PROXY_SECRET_HEADER)?.as_bytes();
        if !fleetca_ca::secret::constant_time_eq(sent, secret.expose().as_bytes()) {
            return None;
        }
    }
    let escaped = req.headers().get(CLIENT_CERT_HEADER)?.to_str().ok()?;
    let text = percent_encoding::percent_decode_str(escaped).decode_utf8().ok()?;
    let block = pem::parse(text.trim()).ok()?;
    (block.tag() == "CERTIFICATE").then(|| block.into_contents())
}

/// Whether the request reached fleetca encrypted: over its TLS listener, or from a trusted
/// proxy that terminated TLS. Only then is HTTP Basic, which sends the password itself,
/// offered or accepted.
fn encrypted(state: &AppState, req: &HttpRequest) -> bool {
    req.conn_data::<crate::tls::OverTls>().is_some() || from_trusted_proxy(state, req)
}

/// A request a trusted proxy forwarded: from a `trusted_proxies` address and, with a proxy
/// secret set, carrying it (compared in constant time).
fn from_trusted_proxy(state: &AppState, req: &HttpRequest) -> bool {
    if !crate::http::extract::peer_within(req, &state.config.trusted_proxies) {
        return false;
    }
    match &state.config.proxy_secret {
        None => true,
        Some(secret) => req
            .headers()
            .get(PROXY_SECRET_HEADER)
            .is_some_and(|sent| fleetca_ca::secret::constant_time_eq(sent.as_bytes(), secret.expose().as_bytes())),
    }
}

fn challenge(state: &AppState, req: &HttpRequest, label: Option<&str>, stale: bool) -> HttpResponse {
    let realm = label.filter(|l| Tenant::parse(l).is_ok()).unwrap_or("fleetca");
    let mut response = HttpResponse::Unauthorized();
    response.insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"));
    match state.est.nonce() {
        Ok(nonce) => {
            let stale = if stale { ", stale=true" } else { "" };
            response.append_header((
                header::WWW_AUTHENTICATE,
                format!("Digest realm=\"{realm}\", qop=\"auth\", algorithm=MD5, nonce=\"{nonce}\"{stale}"),
            ));
        }
        Err(e) => tracing::error!(error = %e, "could not mint a Digest nonce"),
    }
    if encrypted(state, req) {
        response.append_header((
            header::WWW_AUTHENTICATE,
            format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
        ));
        return deliberate(response.body(
            "authenticate: a device with Digest or Basic (its id and password, the label naming its tenant), \
             an API key with its Bearer token, a device with its tenant's claim certificate over mTLS\n",
        ));
    }
    deliberate(response.body(
        "authenticate: a device with Digest (its id and password, the label naming its tenant; Basic only over \
         HTTPS, since it sends the password itself), an API key with its Bearer token, a device with its \
         tenant's claim certificate over mTLS\n",
    ))
}

fn answer(
    state: &AppState,
    req: &HttpRequest,
    label: Option<&str>,
    result: Result<Certificate, Error>,
) -> HttpResponse {
    match result {
        Ok(cert) => match pem::parse(&cert.certificate_pem)
            .map_err(|e| Error::Internal(e.to_string()))
            .and_then(|p| fleetca_ca::est::certs_only(&[p.contents()]).map_err(Error::from))
        {
            Ok(der) => base64_der("application/pkcs7-mime; smime-type=certs-only", &der),
            Err(e) => refusal(e),
        },
        Err(Error::Unauthenticated) => challenge(state, req, label, false),
        Err(Error::Stale) => challenge(state, req, label, true),
        Err(e) => refusal(e),
    }
}

/// The CSR of a request body (base64 DER, whitespace allowed), or why not.
fn csr_der(body: &[u8]) -> Result<Vec<u8>, (StatusCode, &'static str)> {
    if body.len() > BODY_LIMIT {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, "the CSR is too large"));
    }
    let compact: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    STANDARD.decode(&compact).map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            "the body is not base64 (send the DER PKCS#10, base64-encoded)",
        )
    })
}

async fn enroll(state: &AppState, req: &HttpRequest, label: Option<&str>, body: &[u8]) -> HttpResponse {
    let credential = credential(req);
    let peer = if credential.is_none() {
        client_certificate(state, req)
    } else {
        None
    };
    if credential.is_none() && peer.is_none() {
        return challenge(state, req, label, false);
    }
    if matches!(credential, Some(Credential::Basic(..))) && !encrypted(state, req) {
        // The password itself would have crossed the network in clear: refused, whatever
        // it is, and never checked.
        return challenge(state, req, label, false);
    }
    // Behind a trusted proxy every device has the proxy's address: only per-device counts.
    let from = crate::http::extract::peer_ip(req).filter(|_| !from_trusted_proxy(state, req));
    let csr = match csr_der(body) {
        Ok(csr) => csr,
        Err((status, why)) => return text(status, why),
    };
    let tenant = label.filter(|l| Tenant::parse(l).is_ok());
    let result = match (credential, peer) {
        (Some(Credential::Basic(device_id, password)), _) => {
            let (Some(tenant), true) = (tenant, DeviceId::parse(&device_id).is_ok()) else {
                return challenge(state, req, label, false);
            };
            let r = state.est.enroll_device(tenant, &device_id, &password, &csr, from).await;
            audit_refusal(state, req, &r, tenant, &device_id).await;
            r
        }
        (Some(Credential::Digest(creds)), _) => {
            let Some(tenant) = tenant else {
                return challenge(state, req, label, false);
            };
            let r = state
                .est
                .enroll_device_digest(tenant, &creds, req.method().as_str(), req.path(), &csr, from)
                .await;
            audit_refusal(state, req, &r, tenant, &creds.username).await;
            r
        }
        (Some(Credential::Bearer(token)), _) => match state.tokens.verify(&token).await {
            Ok(Some(principal)) => state.est.enroll_api_key(&principal, &csr).await,
            Ok(None) => Err(Error::Unauthenticated),
            Err(e) => Err(e),
        },
        (None, Some(der)) => match state.renewal.presented(&der).await {
            Ok(Some(cert)) => state.est.enroll_with_claim(&cert, label, &csr).await,
            Ok(None) => Err(Error::Unauthenticated),
            Err(e) => Err(e),
        },
        (None, None) => Err(Error::Unauthenticated),
    };
    answer(state, req, label, result)
}

/// A wrong device password is an audit record (within the log's budget for refused callers).
async fn audit_refusal(
    state: &AppState,
    req: &HttpRequest,
    result: &Result<Certificate, Error>,
    tenant: &str,
    device_id: &str,
) {
    if matches!(result, Err(Error::Unauthenticated | Error::RateLimited { .. })) {
        let claimed: String = format!("device {tenant}/{device_id}").chars().take(64).collect();
        let context = crate::http::edge::request_context(req);
        state
            .audit
            .failed(crate::outbox::audit::failure(
                &claimed,
                AuditAction::EstAuthFailed,
                &context,
            ))
            .await;
    }
}

async fn reenroll(state: &AppState, req: &HttpRequest, body: &[u8]) -> HttpResponse {
    let Some(der) = client_certificate(state, req) else {
        return deliberate(
            HttpResponse::Unauthorized()
                .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
                .body("re-enrollment is authenticated by the current certificate: present it over mTLS\n"),
        );
    };
    let csr = match csr_der(body) {
        Ok(csr) => csr,
        Err((status, why)) => return text(status, why),
    };
    let result = match state.renewal.presented(&der).await {
        Ok(Some(cert)) => state.renewal.reenroll(&cert, &csr).await.map(|i| i.certificate),
        Ok(None) => Err(Error::Forbidden("this certificate was not issued by fleetca".into())),
        Err(e) => Err(e),
    };
    match result {
        Err(Error::Unauthenticated) => text(
            StatusCode::UNAUTHORIZED,
            "the certificate is revoked, superseded or expired: it authenticates nothing",
        ),
        other => answer(state, req, None, other),
    }
}

/// Re-enrolls: the certificate presented over mTLS (a device's or an API key's) renews
/// itself for the CSR's key, keeping its subject. Body: the base64 DER PKCS#10.
#[utoipa::path(post, path = "/.well-known/est/simplereenroll", tag = "est",
    request_body(content = String, content_type = "application/pkcs10", description = "base64 DER PKCS#10 naming the same subject"),
    responses(
        (status = 200, description = "base64 DER certs-only PKCS#7 with the new certificate", content_type = "application/pkcs7-mime", body = String),
        (status = 400, description = "A malformed CSR", content_type = "text/plain", body = String),
        (status = 401, description = "No client certificate, or a revoked or superseded one", content_type = "text/plain", body = String),
        (status = 403, description = "Another subject, too early in the certificate's lifetime, expired, or its device or key disabled", content_type = "text/plain", body = String),
        (status = 413, description = "The CSR is too large", content_type = "text/plain", body = String),
    ),
)]
pub async fn simplereenroll(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    reenroll(&state, &req, &body).await
}

/// As `/simplereenroll`, under a label.
#[utoipa::path(post, path = "/.well-known/est/{label}/simplereenroll", tag = "est", params(("label" = String, Path)),
    request_body(content = String, content_type = "application/pkcs10", description = "base64 DER PKCS#10 naming the same subject"),
    responses(
        (status = 200, description = "base64 DER certs-only PKCS#7 with the new certificate", content_type = "application/pkcs7-mime", body = String),
        (status = 400, description = "A malformed CSR", content_type = "text/plain", body = String),
        (status = 401, description = "No client certificate, or a revoked or superseded one", content_type = "text/plain", body = String),
        (status = 403, description = "Another subject, too early in the certificate's lifetime, expired, or its device or key disabled", content_type = "text/plain", body = String),
        (status = 413, description = "The CSR is too large", content_type = "text/plain", body = String),
    ),
)]
pub async fn simplereenroll_labelled(
    state: web::Data<AppState>,
    req: HttpRequest,
    _label: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    reenroll(&state, &req, &body).await
}

/// Enrolls: a device with HTTP Digest or Basic (under a label naming its tenant), an API key
/// with its Bearer token, or a device with its tenant's claim certificate over mTLS. Body: the base64 DER PKCS#10.
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
