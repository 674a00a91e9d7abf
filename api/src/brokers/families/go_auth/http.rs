//! mosquitto-go-auth's HTTP backend and amqtt's HTTP plugins: `/broker/auth`,
//! `/broker/superuser` and `/broker/acl`, answered 200 / 403 (or `{"ok": …}` with
//! `?response=json`), 503 when fleetca cannot decide.
//!
//! No Bearer auth: these are reachable only from `broker_allow` networks and, when
//! `FLEETCA_BROKER_SECRET` is set, only with it in `X-Broker-Secret` ([`BrokerCaller`]).

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::brokers::acl::Access;
use crate::brokers::decision::Decision;
use crate::brokers::http::fields::BrokerRequest;
use crate::error::ApiError;
use crate::http::edge::route;
use crate::http::extract::BrokerCaller;
use crate::http::problems::BrokerProblems;
use crate::state::AppState;
use crate::support::Error;

pub fn routes() -> crate::http::edge::Routes {
    vec![
        (
            "/broker/auth",
            vec![
                route("POST", || web::post().to(auth)),
                route("GET", || web::get().to(auth)),
            ],
        ),
        ("/broker/superuser", vec![route("POST", || web::post().to(superuser))]),
        (
            "/broker/acl",
            vec![
                route("POST", || web::post().to(acl)),
                route("GET", || web::get().to(acl)),
            ],
        ),
    ]
}

/// `?response=json`: every answer 200 with `{"ok": bool}` (mosquitto-go-auth's
/// `auth_opt_http_response_mode json`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ResponseMode {
    /// `json` for 200 with {"ok": bool}
    pub response: Option<String>,
}

/// An auth or ACL answer: 200 allowed (or any answer in JSON mode), else a problem.
#[derive(utoipa::IntoResponses)]
#[response(status = 200, description = "Allowed (or any answer in JSON mode)")]
#[allow(dead_code)]
pub struct GoAuthAllowed(OkResponse);

/// What `/broker/auth` and `/broker/acl` answer.
pub struct GoAuthAnswers;

impl utoipa::IntoResponses for GoAuthAnswers {
    fn responses() -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        let mut all = <GoAuthAllowed as utoipa::IntoResponses>::responses();
        all.extend(<BrokerProblems as utoipa::IntoResponses>::responses());
        all
    }
}

/// go-auth/amqtt JSON response mode (`?response=json`).
#[derive(Serialize, ToSchema)]
pub struct OkResponse {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
}

/// The JSON answers, made once: what [`OkResponse`] serialises to.
const ALLOWED: &str = r#"{"ok":true}"#;
const DENIED: &str = r#"{"ok":false,"error":"not authorized"}"#;

fn json_mode(req: &HttpRequest) -> bool {
    req.query_string().split('&').any(|p| p == "response=json")
}

/// go-auth/amqtt answer: 200 or 403, or always 200 with `{"ok": ...}` in JSON mode; 503
/// when fleetca cannot decide, in both modes, so brokers do not cache a denial.
fn answer(req: &HttpRequest, decision: Decision) -> HttpResponse {
    if let Decision::Deny(reason) = decision {
        tracing::debug!(reason, "broker request denied");
    }
    let json = |body: &'static str| {
        HttpResponse::Ok()
            .content_type(actix_web::http::header::ContentType::json())
            .body(body)
    };
    match (decision, json_mode(req)) {
        (Decision::Allow, _) => json(ALLOWED),
        (Decision::Deny(_), true) => json(DENIED),
        (Decision::Deny(_), false) => ApiError::from(Error::Forbidden("Not authorized.".into())).error_response(),
        (Decision::Unknown, _) => ApiError::from(Error::Unavailable).error_response(),
    }
}

/// POST, and GET for amqtt: its HTTP plugins default to GET with a JSON body (its YAML
/// loader cannot switch them to POST); the fields may also come as a form or a query string.
#[utoipa::path(
    method(post, get), path = "/broker/auth", tag = "broker",
    request_body(content = BrokerRequest, content_type = "application/json", description = "Also accepted as a form (POST) or a query string (GET): username, password, clientid"),
    params(ResponseMode),
    responses(GoAuthAnswers)
)]
pub async fn auth(
    state: web::Data<AppState>,
    _broker: BrokerCaller,
    req: HttpRequest,
    f: BrokerRequest,
) -> Result<HttpResponse, ApiError> {
    let decision = state.broker.authenticate(&f.auth_request()).await;
    Ok(answer(&req, decision))
}

#[utoipa::path(
    post, path = "/broker/superuser", tag = "broker", request_body(content = BrokerRequest, content_type = "application/json"),
    params(ResponseMode),
    responses(
        (status = 200, description = "JSON mode: always {\"ok\": false}", body = OkResponse),
        BrokerProblems,
    )
)]
pub async fn superuser(
    _broker: BrokerCaller,
    req: HttpRequest,
    _fields: BrokerRequest,
) -> Result<HttpResponse, ApiError> {
    Ok(answer(&req, Decision::Deny("fleetca has no MQTT superusers")))
}

/// POST, and GET for amqtt (see [`auth`]).
#[utoipa::path(
    method(post, get), path = "/broker/acl", tag = "broker",
    request_body(content = BrokerRequest, content_type = "application/json", description = "username, clientid, topic, acc (1 read, 2 write, 3 both, 4 subscribe); also as a form (POST) or a query string (GET)"),
    params(ResponseMode),
    responses(GoAuthAnswers)
)]
pub async fn acl(
    state: web::Data<AppState>,
    _broker: BrokerCaller,
    req: HttpRequest,
    f: BrokerRequest,
) -> Result<HttpResponse, ApiError> {
    let access: &[Access] = match f.acc.as_deref() {
        Some("1") => &[Access::Read],
        Some("2") => &[Access::Write],
        Some("3") => &[Access::Read, Access::Write],
        Some("4") => &[Access::Subscribe],
        _ => return Ok(answer(&req, Decision::Deny("missing or unknown acc"))),
    };
    let decision = match f.acl_request(access) {
        Some(acl) => state.broker.authorize(&acl).await,
        None => Decision::Deny("missing username or topic"),
    };
    Ok(answer(&req, decision))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prebuilt_answers_are_what_ok_response_serialises_to() {
        let allowed = OkResponse { ok: true, error: None };
        let denied = OkResponse {
            ok: false,
            error: Some("not authorized"),
        };
        assert_eq!(serde_json::to_string(&allowed).unwrap(), ALLOWED);
        assert_eq!(serde_json::to_string(&denied).unwrap(), DENIED);
    }
}
