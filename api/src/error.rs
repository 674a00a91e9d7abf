//! The one table that turns every failure into an RFC 9457 `application/problem+json`
//! response. Domain and storage errors carry no HTTP; this module picks the status.
//! Internal error text is logged, never sent.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use fleetca_storage::StorageError;
use serde::Serialize;
use utoipa::ToSchema;

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
    /// For validation problems: each bad field and what is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, Vec<String>>>,
}

/// Field errors of a validation failure.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("validation failed")]
    Validation(FieldErrors),
    #[error("authentication required")]
    Unauthorized,
    #[error("wrong username or password")]
    BadCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// A conflict with per-field (or per-row) details.
    #[error("{0}")]
    ConflictFields(String, FieldErrors),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("body too large")]
    PayloadTooLarge(usize),
    #[error("unsupported media type")]
    UnsupportedMediaType(&'static str),
    #[error("too many requests")]
    TooManyRequests(u64),
    #[error("service unavailable")]
    Unavailable,
    /// Internal failure; the text is logged only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A validation error on one field.
    pub fn field(name: &str, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::new();
        errors.insert(name.to_owned(), vec![message.into()]);
        ApiError::Validation(errors)
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::BadRequest(d) => (StatusCode::BAD_REQUEST, "bad-request", d.clone()),
            ApiError::Validation(errors) => {
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
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Send a valid token as `Authorization: Bearer <token>`, or sign in.".into(),
            ),
            ApiError::BadCredentials => (
                StatusCode::UNAUTHORIZED,
                "bad-credentials",
                "Wrong username or password.".into(),
            ),
            ApiError::Forbidden(d) => (StatusCode::FORBIDDEN, "forbidden", d.clone()),
            ApiError::NotFound("route") => (
                StatusCode::NOT_FOUND,
                "not-found",
                "No such path; see /api/openapi.json for the API.".into(),
            ),
            ApiError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "not-found",
                format!("No {what} with this id exists, or it is outside what you may see."),
            ),
            ApiError::Conflict(d) | ApiError::ConflictFields(d, _) => (StatusCode::CONFLICT, "conflict", d.clone()),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "This path does not accept this HTTP method; see /api/openapi.json for what it accepts.".into(),
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
            ApiError::TooManyRequests(secs) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                format!("Too many failed attempts; try again in {secs} seconds."),
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The database is unreachable; retry shortly. Nothing was changed.".into(),
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "An internal error occurred; it has been logged.".into(),
            ),
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
                ApiError::Validation(e) | ApiError::ConflictFields(_, e) => Some(e.clone()),
                _ => None,
            },
        }
    }
}

/// The problem+json response for a status with a detail, for places that have no ApiError.
pub fn problem_response(status: StatusCode, slug: &str, detail: String) -> HttpResponse {
    let body = Problem {
        r#type: format!("urn:fleetca:problem:{slug}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        errors: None,
    };
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)))
        .body(serde_json::to_string(&body).unwrap_or_default())
}

/// The problem media type.
pub const PROBLEM_JSON: &str = "application/problem+json";

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            tracing::error!(%cause, "internal error");
        }
        let problem = self.problem();
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        if let ApiError::Unauthorized = self {
            resp.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if let ApiError::TooManyRequests(secs) = self {
            resp.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        resp.body(serde_json::to_string(&problem).unwrap_or_default())
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => ApiError::NotFound("object"),
            StorageError::Conflict(what) => {
                ApiError::Conflict(format!("A {what} with this value already exists; choose another."))
            }
            StorageError::LimitReached => ApiError::Conflict("A limit was reached.".into()),
            StorageError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                ApiError::Unavailable
            }
            StorageError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

impl From<fleetca_ca::CaError> for ApiError {
    fn from(e: fleetca_ca::CaError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_never_show_their_cause() {
        let p = ApiError::Internal("secret path /var/x".into()).problem();
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("/var/x"));
    }

    #[test]
    fn validation_problems_name_each_field() {
        let p = ApiError::field("username", "too short").problem();
        assert_eq!(p.status, 400);
        assert!(p.detail.contains("username"));
        assert_eq!(p.errors.unwrap()["username"], vec!["too short".to_string()]);
    }
}
