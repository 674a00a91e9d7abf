//! Request extractors: the JSON body parser that names bad fields, and who is calling.
//! Authorization shows in a handler's signature: a handler that takes [`Caller`] cannot run
//! for an anonymous caller, one that takes `Caller<Manager>` not for an API key, one that
//! takes `Caller<Admin>` not for a manager; [`BrokerCaller`] admits only the broker's
//! networks and secret. Each is checked before the handler body runs.

use std::future::Future;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::BytesMut;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use fleetca_ca::secret::constant_time_eq;

use crate::domain::AuditAction;
use crate::domain::{FieldErrors, Principal, Role};
use crate::error::ApiError;
use crate::state::AppState;
use crate::support::Error;

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
            // A JSON array would fill a struct's fields by position: only an object names them.
            if body
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b != b'{')
            {
                return Err(ApiError::BadRequest("Send the body as a JSON object.".into()));
            }
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
/// A body that may be empty (or `null`), meaning `T::default()`; otherwise a JSON object.
pub fn optional_json<T: DeserializeOwned + Default>(req: &HttpRequest, body: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(body).unwrap_or("").trim();
    if text.is_empty() || text == "null" {
        return Ok(T::default());
    }
    require_json(req)?;
    if !text.starts_with('{') {
        return Err(ApiError::BadRequest("Send the body as a JSON object.".into()));
    }
    parse_json(body)
}

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
        ApiError::from(errors)
    })
}

fn join_path(path: &str, field: &str) -> String {
    if path == "." || path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// Largest body of a bulk request.
pub const BULK_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// A bulk request's body: a JSON array of 1 to `max` rows, each parsed into `B` and
/// validated into `I`, with every row's problems keyed `{row}.{field}` (row = 0-based index).
pub async fn bulk_rows<B, I>(
    req: &HttpRequest,
    payload: &mut web::Payload,
    max: usize,
    validate: impl Fn(B) -> Result<I, FieldErrors>,
) -> Result<Vec<I>, ApiError>
where
    B: DeserializeOwned,
{
    require_json(req)?;
    let body = read_body(payload, BULK_BODY_LIMIT).await?;
    let rows: Vec<serde_json::Value> = parse_json(&body)?;
    if rows.is_empty() || rows.len() > max {
        return Err(ApiError::field("body", format!("send a JSON array of 1 to {max} rows")));
    }
    let mut problems = crate::domain::Problems::new();
    let mut inputs = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        let parsed = serde_json::from_value::<B>(row).map_err(|e| {
            let mut f = FieldErrors::new();
            f.insert("row".into(), vec![e.to_string()]);
            f
        });
        match parsed.and_then(&validate) {
            Ok(input) => inputs.push(input),
            Err(row_errors) => problems.nest(&i.to_string(), row_errors),
        }
    }
    problems.finish()?;
    Ok(inputs)
}

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "fleetca_session";

/// Who may call a handler; the type parameter of [`Caller`].
pub trait Policy {
    /// Whether a caller of this role passes.
    fn admits(role: Role) -> bool;
    /// Why a caller that does not pass is refused.
    const REFUSAL: &'static str;
}

/// Anyone authenticated: admins, managers and API keys.
pub struct Anyone;
/// Admins and managers (each within its scope): the people who manage credentials.
pub struct Manager;
/// Admins only.
pub struct Admin;
/// Human users (admins and managers), never an API key.
pub struct Human;

impl Policy for Anyone {
    fn admits(_: Role) -> bool {
        true
    }
    const REFUSAL: &'static str = "";
}

impl Policy for Manager {
    fn admits(role: Role) -> bool {
        matches!(role, Role::Admin | Role::Manager)
    }
    const REFUSAL: &'static str = "An API key cannot do this; ask a manager or admin.";
}

impl Policy for Human {
    fn admits(role: Role) -> bool {
        matches!(role, Role::Admin | Role::Manager)
    }
    const REFUSAL: &'static str = "Only a human user may do this; an API key has no password or session.";
}

impl Policy for Admin {
    fn admits(role: Role) -> bool {
        role == Role::Admin
    }
    const REFUSAL: &'static str = "Only an admin may do this.";
}

/// The authenticated caller, admitted by the policy `P`. Authenticated by a Bearer token
/// or, from the admin UI, by the session cookie; a cookie-authenticated request that
/// changes state must carry the session's CSRF token in `X-CSRF-Token`.
pub struct Caller<P: Policy = Anyone> {
    principal: Principal,
    _policy: PhantomData<P>,
}

impl<P: Policy> Deref for Caller<P> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.principal
    }
}

fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

impl<P: Policy + 'static> FromRequest for Caller<P> {
    type Error = ApiError;
    type Future = BoxFut<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req);
        let cookie = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
        let safe_method = matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS");
        let csrf = req.headers().get("x-csrf-token").map(|v| v.as_bytes().to_vec());
        let context = crate::http::edge::request_context(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| Error::Internal("no app state".into()))?;
            let mut principal = if let Some(token) = token {
                match state.tokens.verify(&token).await? {
                    Some(p) => p,
                    None => {
                        // A fleetca token's lookup part (`fca_<lookup>_…`) is not secret and
                        // says which key was tried; nothing else of a token is recorded.
                        let claimed = token
                            .strip_prefix("fca_")
                            .and_then(|rest| rest.get(..12))
                            .filter(|l| l.bytes().all(|b| b.is_ascii_hexdigit()))
                            .map_or_else(|| "token".to_owned(), |l| format!("token fca_{l}"));
                        state
                            .audit
                            .failed(crate::outbox::audit::failure(
                                &claimed,
                                AuditAction::AuthTokenFailed,
                                &context,
                            ))
                            .await;
                        return Err(Error::Unauthenticated.into());
                    }
                }
            } else {
                let cookie = cookie.filter(|c| !c.is_empty()).ok_or(Error::Unauthenticated)?;
                let session = state.sessions.session(&cookie).await?.ok_or(Error::Unauthenticated)?;
                if !safe_method && !csrf.is_some_and(|t| constant_time_eq(&t, session.csrf_token.as_bytes())) {
                    return Err(Error::Forbidden(
                        "Missing or wrong X-CSRF-Token header; reload the page and sign in again.".into(),
                    )
                    .into());
                }
                session.principal
            };
            if !P::admits(principal.role) {
                return Err(Error::Forbidden(P::REFUSAL.into()).into());
            }
            principal.context = context;
            Ok(Caller {
                principal,
                _policy: PhantomData,
            })
        })
    }
}

/// The address a request came from, IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`, what a
/// `[::]` listener sees of an IPv4 peer) as the IPv4 addresses they are: every allow-list
/// (`broker_allow`, `metrics_allow`, `trusted_proxies`) is checked against this.
pub fn peer_ip(req: &HttpRequest) -> Option<IpAddr> {
    req.peer_addr().map(|a| a.ip().to_canonical())
}

/// Whether the request came from one of `networks`.
pub fn peer_within(req: &HttpRequest, networks: &[ipnet::IpNet]) -> bool {
    peer_ip(req).is_some_and(|ip| networks.iter().any(|net| net.contains(&ip)))
}

/// The MQTT broker calling: from a `broker_allow` network and, when a broker secret is set,
/// with it in `X-Broker-Secret` (compared in constant time). An IPv4 peer seen through an
/// IPv6 socket (`::ffff:a.b.c.d`) is matched as the IPv4 address it is.
pub struct BrokerCaller;

impl FromRequest for BrokerCaller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(check_broker(req).map(|()| BrokerCaller))
    }
}

fn check_broker(req: &HttpRequest) -> Result<(), ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| Error::Internal("no app state".into()))?;
    if !peer_within(req, &state.config.broker_allow) {
        return Err(
            Error::Forbidden("This address may not call the broker endpoints (see broker_allow).".into()).into(),
        );
    }
    if let Some(secret) = &state.config.broker_secret {
        let sent = req
            .headers()
            .get("x-broker-secret")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !constant_time_eq(sent, secret.expose().as_bytes()) {
            return Err(Error::Forbidden("Send the broker secret in X-Broker-Secret.".into()).into());
        }
    }
    Ok(())
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
            ApiError::Service(Error::Invalid(f)) => f.keys().cloned().collect(),
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

    #[test]
    fn an_ipv4_peer_on_an_ipv6_listener_is_checked_as_ipv4() {
        // What a `[::]` listener sees of 127.0.0.1; metrics_allow and trusted_proxies failed
        // closed on it before.
        let loopback: Vec<ipnet::IpNet> = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let from = |addr: &str| {
            actix_web::test::TestRequest::default()
                .peer_addr(addr.parse().unwrap())
                .to_http_request()
        };
        assert!(peer_within(&from("[::ffff:127.0.0.1]:5000"), &loopback));
        assert!(peer_within(&from("127.0.0.1:5000"), &loopback));
        assert!(peer_within(&from("[::1]:5000"), &loopback));
        assert!(!peer_within(&from("[::ffff:10.0.0.1]:5000"), &loopback));
        assert_eq!(
            peer_ip(&from("[::ffff:192.0.2.7]:1")),
            Some("192.0.2.7".parse().unwrap())
        );
    }
}
