//! The one table that turns every failure into an RFC 9457 `application/problem+json`
//! response: the service layer's [`support::Error`], HTTP-level failures of parsing a
//! request, and the error responses actix itself makes ([`problemize`]). Domain and storage
//! errors carry no HTTP; this module alone picks the status. Internal error text is logged,
//! never sent.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::FieldErrors;
use crate::support;

/// A problem details body (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type.
    #[schema(example = "urn:fleetca:problem:validation")]
    pub r#type: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong and what to do about it.
    pub detail: String,
    /// For validation problems and per-row conflicts: each bad field and what is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::BTreeMap<String, Vec<String>>>)]
    pub errors: Option<FieldErrors>,
}

/// The problem media type.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request itself is malformed (body, query string); the text says how.
    #[error("{0}")]
    BadRequest(String),
    #[error("no such route")]
    NoRoute,
    /// The path exists, the method does not; the methods it takes, for the `Allow` header
    /// (empty when not known).
    #[error("method not allowed")]
    MethodNotAllowed(String),
    #[error("body too large")]
    PayloadTooLarge(usize),
    #[error("unsupported media type")]
    UnsupportedMediaType(&'static str),
    /// A service's answer.
    #[error(transparent)]
    Service(#[from] support::Error),
}

impl From<FieldErrors> for ApiError {
    fn from(errors: FieldErrors) -> Self {
        ApiError::Service(support::Error::Invalid(errors))
    }
}

impl ApiError {
    /// A validation error on one field.
    pub fn field(name: &str, message: impl Into<String>) -> Self {
        ApiError::Service(support::Error::invalid(name, message))
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        use support::Error as E;
        match self {
            ApiError::BadRequest(d) => (StatusCode::BAD_REQUEST, "bad-request", d.clone()),
            ApiError::NoRoute => (
                StatusCode::NOT_FOUND,
                "not-found",
                "No such path; see /api/openapi.json for the API.".into(),
            ),
            ApiError::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "This path does not accept this HTTP method; see /api/openapi.json for what it accepts.".into(),
            ),
            ApiError::PayloadTooLarge(0) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "The request body is too large.".into(),
            ),
            ApiError::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                format!("The request body is larger than the limit of {limit} bytes."),
            ),
            ApiError::UnsupportedMediaType(expected) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                format!("Send the body with `Content-Type: {expected}`."),
            ),
            ApiError::Service(e) => match e {
                E::Invalid(errors) => {
                    let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
                    (
                        StatusCode::BAD_REQUEST,
                        "validation",
                        format!(
                            "Fix these fields: {}. See `errors` for what is wrong with each.",
                            fields.join(", ")
                        ),
                    )
                }
                E::Unauthenticated => (
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "Send a valid token as `Authorization: Bearer <token>`, or sign in.".into(),
                ),
                E::Stale => (
                    StatusCode::UNAUTHORIZED,
                    "stale-credentials",
                    "The challenge these credentials answered has expired; authenticate again.".into(),
                ),
                E::BadCredentials => (
                    StatusCode::UNAUTHORIZED,
                    "bad-credentials",
                    "Wrong username or password.".into(),
                ),
                E::Forbidden(d) => (StatusCode::FORBIDDEN, "forbidden", d.clone()),
                E::NotFound(what) => (
                    StatusCode::NOT_FOUND,
                    "not-found",
                    format!("No {what} with this id exists, or it is outside what you may see."),
                ),
                E::Conflict(d) | E::ConflictRows(d, _) => (StatusCode::CONFLICT, "conflict", d.clone()),
                E::RateLimited { retry_after_secs } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "too-many-requests",
                    format!("Too many attempts; try again in {retry_after_secs} seconds."),
                ),
                E::Unavailable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "The database is unreachable; retry shortly. Nothing was changed.".into(),
                ),
                E::KeyUnavailable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "The CA's key is unavailable (its PKCS#11 token does not answer); retry shortly. Nothing was changed."
                        .into(),
                ),
                E::IssuerRevoked => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "The CA this instance issues from was revoked; it issues again once restarted with the new issuing CA (retry on another instance). Nothing was changed."
                        .into(),
                ),
                E::Internal(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "An internal error occurred; it has been logged.".into(),
                ),
            },
        }
    }

    /// The problem body of this error.
    pub fn problem(&self) -> Problem {
        let (status, slug, detail) = self.parts();
        Problem {
            r#type: format!("urn:fleetca:problem:{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            errors: match self {
                ApiError::Service(support::Error::Invalid(e) | support::Error::ConflictRows(_, e)) => Some(e.clone()),
                _ => None,
            },
        }
    }

    /// The error for a status that actix or a library answered with, when no handler
    /// of ours made it.
    fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => ApiError::NoRoute,
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed(String::new()),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(0),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType("application/json"),
            StatusCode::UNAUTHORIZED => ApiError::Service(support::Error::Unauthenticated),
            s if s.is_server_error() => ApiError::Service(support::Error::Internal(format!("status {s}"))),
            s => ApiError::BadRequest(format!(
                "The request failed: {}.",
                s.canonical_reason().unwrap_or("error")
            )),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Service(support::Error::Internal(cause)) = self {
            tracing::error!(%cause, "internal error");
        }
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        match self {
            ApiError::Service(support::Error::Unauthenticated) => {
                resp.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            ApiError::Service(support::Error::RateLimited { retry_after_secs }) => {
                resp.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            ApiError::MethodNotAllowed(allow) if !allow.is_empty() => {
                if let Ok(value) = HeaderValue::from_str(allow) {
                    resp.insert_header((header::ALLOW, value));
                }
            }
            _ => {}
        }
        resp.body(serde_json::to_string(&self.problem()).unwrap_or_default())
    }
}

/// Marks an error response whose format a protocol prescribes (EST's plain text), which
/// [`problemize`] must leave alone.
#[derive(Clone, Copy, Debug)]
pub struct Deliberate;

/// Turns any error response that is not yet problem+json (from actix itself or a library)
/// into one, with the same words as our own, so clients see one error format everywhere.
pub fn problemize<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>>
where
    B: MessageBody,
{
    // Our own answers (problem+json, a JSON body such as /readyz's, or one a protocol
    // prescribes, marked `Deliberate`) stay as they are.
    let ours = res.response().extensions().get::<Deliberate>().is_some()
        || res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
            v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()) || v.as_bytes().starts_with(b"application/json")
        });
    if ours {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let error = ApiError::from_status(res.status());
    let (req, _) = res.into_parts();
    let resp: HttpResponse<EitherBody<B>> = error.error_response().map_into_right_body();
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, resp)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_never_show_their_cause() {
        let p = ApiError::from(support::Error::Internal("secret path /var/x".into())).problem();
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("/var/x"));
    }

    #[test]
    fn storage_conflicts_never_show_database_text() {
        let e = support::Error::from(fleetca_storage::StorageError::Conflict(
            "UNIQUE constraint failed: users.username".into(),
        ));
        let p = ApiError::from(e).problem();
        assert_eq!(p.status, 409);
        assert!(!p.detail.contains("users.username"), "{}", p.detail);
    }

    #[test]
    fn validation_problems_name_each_field() {
        let p = ApiError::field("username", "too short").problem();
        assert_eq!(p.status, 400);
        assert!(p.detail.contains("username"));
        assert_eq!(p.errors.unwrap()["username"], vec!["too short".to_string()]);
    }
}
