//! Request extractors: the JSON body parser that names bad fields, and authentication.
//! Authorization shows in a handler's signature: a handler that takes [`Auth`] cannot run
//! for an anonymous caller, one that takes [`AdminAuth`] not for a non-admin.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::BytesMut;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::domain::Role;
use crate::error::{ApiError, FieldErrors};
use crate::service::auth::Principal;
use crate::service::sessions;
use crate::state::AppState;
use fleetca_ca::secret::constant_time_eq;

type BoxFut<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

/// A JSON body, parsed so that a bad value is reported against its field name.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = BoxFut<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.config.body_limit_bytes)
            .unwrap_or(64 * 1024);
        let is_json = is_json(req);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !is_json {
                return Err(ApiError::UnsupportedMediaType("application/json"));
            }
            if declared.is_some_and(|n| n > limit) {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            let body = read_body(&mut payload, limit).await?;
            parse_json(&body).map(ApiJson)
        })
    }
}

/// Whether a request declares a JSON body.
pub fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")))
}

/// Refuses a body that is not declared as JSON.
pub fn require_json(req: &HttpRequest) -> Result<(), ApiError> {
    if is_json(req) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType("application/json"))
    }
}

/// Reads a body of at most `limit` bytes.
pub async fn read_body<S, E>(payload: &mut S, limit: usize) -> Result<BytesMut, ApiError>
where
    S: futures_util::Stream<Item = Result<web::Bytes, E>> + Unpin,
{
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::BadRequest("The request body could not be read.".into()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses JSON, reporting type errors against the path of the offending field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "The request body is empty; send a JSON object.".into(),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::BadRequest(format!("The request body is not valid JSON: {inner}."));
        }
        let message = inner.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
        let mut errors = FieldErrors::new();
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
        {
            errors.insert(join_path(&path, field), vec!["is required".into()]);
        } else if let Some(rest) = message.strip_prefix("unknown field `") {
            let field = rest.split('`').next().unwrap_or("");
            // The path already ends with the unknown field's name.
            let key = if path == "." { field.to_owned() } else { path };
            errors.insert(key, vec![format!("is not a known field ({message})")]);
        } else {
            let key = if path == "." { "body".to_owned() } else { path };
            errors.insert(key, vec![message]);
        }
        ApiError::Validation(errors)
    })
}

fn join_path(path: &str, field: &str) -> String {
    if path == "." || path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "fleetca_session";

/// The caller, authenticated by a Bearer token or, from the admin UI, by the session
/// cookie. A cookie-authenticated request that changes state must carry the session's
/// CSRF token in `X-CSRF-Token`.
pub struct Auth(pub Principal);

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = BoxFut<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(|t| t.trim().to_owned());
        let cookie = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
        let safe_method = matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS");
        let csrf = req.headers().get("x-csrf-token").map(|v| v.as_bytes().to_vec());
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::Internal("no app state".into()))?;
            if let Some(token) = token.filter(|t| !t.is_empty()) {
                let principal = state
                    .auth
                    .verify_token(&state.store, &token)
                    .await?
                    .ok_or(ApiError::Unauthorized)?;
                return Ok(Auth(principal));
            }
            let cookie = cookie.filter(|c| !c.is_empty()).ok_or(ApiError::Unauthorized)?;
            let session = sessions::session(&state, &cookie)
                .await?
                .ok_or(ApiError::Unauthorized)?;
            if !safe_method && !csrf.is_some_and(|t| constant_time_eq(&t, session.csrf_token.as_bytes())) {
                return Err(ApiError::Forbidden(
                    "Missing or wrong X-CSRF-Token header; reload the page and sign in again.".into(),
                ));
            }
            Ok(Auth(session.principal))
        })
    }
}

/// The caller, who must be an admin.
pub struct AdminAuth(pub Principal);

impl FromRequest for AdminAuth {
    type Error = ApiError;
    type Future = BoxFut<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let auth = Auth::from_request(req, payload);
        Box::pin(async move {
            let Auth(p) = auth.await?;
            if p.role != Role::Admin {
                return Err(ApiError::Forbidden("Only an admin may do this.".into()));
            }
            Ok(AdminAuth(p))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        validity_hours: Option<u32>,
    }

    fn fields(e: ApiError) -> Vec<String> {
        match e {
            ApiError::Validation(f) => f.keys().cloned().collect(),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn type_errors_name_their_field() {
        let e = parse_json::<Body>(br#"{"name":"a","validity_hours":"x"}"#).unwrap_err();
        assert_eq!(fields(e), vec!["validity_hours"]);
        let e = parse_json::<Body>(br#"{"name":"a","validity_hours":-1}"#).unwrap_err();
        assert_eq!(fields(e), vec!["validity_hours"]);
        let e = parse_json::<Body>(br#"{"validity_hours":1}"#).unwrap_err();
        assert_eq!(fields(e), vec!["name"]);
        let e = parse_json::<Body>(br#"{"name":"a","nmae":1}"#).unwrap_err();
        assert_eq!(fields(e), vec!["nmae"]);
    }

    #[test]
    fn broken_json_is_a_bad_request() {
        assert!(matches!(parse_json::<Body>(b"{"), Err(ApiError::BadRequest(_))));
        assert!(matches!(parse_json::<Body>(b""), Err(ApiError::BadRequest(_))));
    }
}
