//! `/broker/*`: the MQTT broker's HTTP auth and ACL calls, in the shapes of
//! mosquitto-go-auth's HTTP backend, amqtt's HTTP plugins, EMQX 5's HTTP authenticator and
//! authorizer, and EMQX 4 / RMQTT auth-http.
//!
//! No Bearer auth: these are reachable only from `broker_allow` networks and, when
//! `FLEETCA_BROKER_SECRET` is set, only with it in `X-Broker-Secret`.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use fleetca_ca::secret::constant_time_eq;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, Problem, problem_response};
use crate::extract::{is_json, read_body};
use crate::http::route;
use crate::service::acl::Access;
use crate::service::broker::{AuthRequest, Decision};
use crate::state::AppState;

const BODY_LIMIT: usize = 64 * 1024;

pub fn routes() -> super::Routes {
    vec![
        (
            "/broker/auth",
            vec![
                route("POST", || web::post().to(auth)),
                route("GET", || web::get().to(auth_get)),
            ],
        ),
        ("/broker/superuser", vec![route("POST", || web::post().to(superuser))]),
        (
            "/broker/acl",
            vec![
                route("POST", || web::post().to(acl)),
                route("GET", || web::get().to(acl_get)),
            ],
        ),
        ("/broker/emqx/authn", vec![route("POST", || web::post().to(emqx_authn))]),
        ("/broker/emqx/authz", vec![route("POST", || web::post().to(emqx_authz))]),
    ]
}

/// What brokers send (JSON or form). Every field is optional; each endpoint reads its own.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct BrokerRequest {
    pub username: Option<String>,
    pub password: Option<String>,
    /// Also accepted as `client_id` or `clientId`.
    pub clientid: Option<String>,
    pub topic: Option<String>,
    /// go-auth/amqtt ACL: 1 read, 2 write, 3 read and write, 4 subscribe.
    pub acc: Option<u8>,
    /// EMQX 4 / RMQTT ACL: 1 subscribe, 2 publish.
    pub access: Option<String>,
    /// EMQX 5 authz: `publish` or `subscribe`.
    pub action: Option<String>,
    /// The client certificate's SHA-256 fingerprint (hex, colons optional), when the broker sends it.
    pub cert_fingerprint: Option<String>,
    /// The client certificate (PEM), when the broker sends it.
    pub cert_pem: Option<String>,
}

/// go-auth/amqtt JSON response mode (`?response=json`).
#[derive(Serialize, ToSchema)]
pub struct OkResponse {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
}

/// EMQX's response.
#[derive(Serialize, ToSchema)]
pub struct EmqxResponse {
    /// `allow`, `deny` or `ignore` (fleetca could not decide).
    pub result: &'static str,
    pub is_superuser: bool,
}

struct Fields(HashMap<String, String>);

impl Fields {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn first(&self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| self.get(k)).map(str::to_owned)
    }
    fn clientid(&self) -> Option<String> {
        self.first(&["clientid", "client_id", "clientId"])
    }
}

/// Refuses callers outside `broker_allow` or without the broker secret.
fn check_caller(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    let ip = req.peer_addr().map(|a| a.ip());
    if !ip.is_some_and(|ip| state.config.broker_allow.iter().any(|net| net.contains(&ip))) {
        return Err(ApiError::Forbidden(
            "This address may not call the broker endpoints (see broker_allow).".into(),
        ));
    }
    if let Some(secret) = &state.config.broker_secret {
        let sent = req
            .headers()
            .get("x-broker-secret")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !constant_time_eq(sent, secret.expose().as_bytes()) {
            return Err(ApiError::Forbidden("Send the broker secret in X-Broker-Secret.".into()));
        }
    }
    Ok(())
}

async fn fields(state: &AppState, req: &HttpRequest, payload: &mut web::Payload) -> Result<Fields, ApiError> {
    check_caller(state, req)?;
    let body = read_body(payload, BODY_LIMIT).await?;
    let mut map = HashMap::new();
    let parsed_json = if is_json(req) || body.first() == Some(&b'{') {
        match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body) {
            Ok(obj) => {
                for (k, v) in obj {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Null => continue,
                        other => other.to_string(),
                    };
                    map.insert(k, v);
                }
                true
            }
            Err(_) if is_json(req) => return Err(ApiError::BadRequest("The body is not a JSON object.".into())),
            Err(_) => false,
        }
    } else {
        false
    };
    if !parsed_json {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|_| ApiError::BadRequest("The body is neither JSON nor a form.".into()))?;
        map.extend(pairs);
    }
    // EMQX 4 / RMQTT may send the fields as a query string.
    if let Ok(query) = serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string()) {
        for (k, v) in query {
            if k != "response" {
                map.entry(k).or_insert(v);
            }
        }
    }
    Ok(Fields(map))
}

fn json_mode(req: &HttpRequest) -> bool {
    req.query_string().split('&').any(|p| p == "response=json")
}

/// go-auth/amqtt answer: 200 or 403, or always 200 with `{"ok": ...}` in JSON mode; 503
/// when fleetca cannot decide, in both modes, so brokers do not cache a denial.
fn answer(req: &HttpRequest, decision: Decision) -> HttpResponse {
    if let Decision::Deny(reason) = decision {
        tracing::debug!(reason, "broker request denied");
    }
    match (decision, json_mode(req)) {
        (Decision::Allow, true) => HttpResponse::Ok().json(OkResponse { ok: true, error: None }),
        (Decision::Deny(_), true) => HttpResponse::Ok().json(OkResponse {
            ok: false,
            error: Some("not authorized"),
        }),
        (Decision::Allow, false) => HttpResponse::Ok().json(OkResponse { ok: true, error: None }),
        (Decision::Deny(_), false) => problem_response(StatusCode::FORBIDDEN, "denied", "Not authorized.".into()),
        (Decision::Unknown, _) => problem_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "fleetca cannot decide right now (database unreachable); retry.".into(),
        ),
    }
}

fn emqx_answer(decision: Decision) -> HttpResponse {
    let result = match decision {
        Decision::Allow => "allow",
        Decision::Deny(reason) => {
            tracing::debug!(reason, "broker request denied");
            "deny"
        }
        Decision::Unknown => "ignore",
    };
    HttpResponse::Ok().json(EmqxResponse {
        result,
        is_superuser: false,
    })
}

fn auth_request(f: &Fields) -> AuthRequest {
    AuthRequest {
        username: f.get("username").unwrap_or_default().to_owned(),
        password: f.get("password").unwrap_or_default().to_owned(),
        clientid: f.clientid(),
        cert_fingerprint: f.first(&["cert_fingerprint", "fingerprint"]),
        cert_pem: f.first(&["cert_pem", "certificate", "cert"]),
    }
}

#[utoipa::path(
    post, path = "/broker/auth", tag = "broker",
    request_body(content = BrokerRequest, content_type = "application/json", description = "Also accepted as a form: username, password, clientid"),
    params(("response" = Option<String>, Query, description = "`json` for 200 with {\"ok\": bool}")),
    responses(
        (status = 200, description = "Allowed (or any answer in JSON mode)", body = OkResponse),
        (status = 403, description = "Denied, or a caller outside broker_allow", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "fleetca cannot decide", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn auth(
    state: web::Data<AppState>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let f = fields(&state, &req, &mut payload).await?;
    let decision = state.broker.authenticate(&state, &auth_request(&f)).await;
    Ok(answer(&req, decision))
}

#[utoipa::path(
    post, path = "/broker/superuser", tag = "broker", request_body(content = BrokerRequest, content_type = "application/json"),
    params(("response" = Option<String>, Query, description = "`json` for 200 with {\"ok\": bool}")),
    responses(
        (status = 200, description = "JSON mode: always {\"ok\": false}", body = OkResponse),
        (status = 403, description = "No client is a superuser", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn superuser(
    state: web::Data<AppState>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    fields(&state, &req, &mut payload).await?;
    Ok(answer(&req, Decision::Deny("fleetca has no MQTT superusers")))
}

#[utoipa::path(
    post, path = "/broker/acl", tag = "broker",
    request_body(content = BrokerRequest, content_type = "application/json", description = "username, clientid, topic, acc (1 read, 2 write, 3 both, 4 subscribe); also as a form"),
    params(("response" = Option<String>, Query, description = "`json` for 200 with {\"ok\": bool}")),
    responses(
        (status = 200, description = "Allowed (or any answer in JSON mode)", body = OkResponse),
        (status = 403, description = "Denied", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "fleetca cannot decide", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn acl(
    state: web::Data<AppState>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let f = fields(&state, &req, &mut payload).await?;
    let access: &[Access] = match f.get("acc") {
        Some("1") => &[Access::Read],
        Some("2") => &[Access::Write],
        Some("3") => &[Access::Read, Access::Write],
        Some("4") => &[Access::Subscribe],
        _ => return Ok(answer(&req, Decision::Deny("missing or unknown acc"))),
    };
    let decision = match (f.get("username"), f.get("topic")) {
        (Some(u), Some(t)) => {
            state
                .broker
                .authorize(&state, u, f.clientid().as_deref(), t, access)
                .await
        }
        _ => Decision::Deny("missing username or topic"),
    };
    Ok(answer(&req, decision))
}

#[utoipa::path(
    post, path = "/broker/emqx/authn", tag = "broker",
    request_body(content = BrokerRequest, content_type = "application/json", description = "EMQX 5 JSON, or the EMQX 4 / RMQTT form (username, password, clientid, ipaddr, protocol)"),
    responses((status = 200, description = "result: allow, deny or ignore", body = EmqxResponse), (status = 403, description = "Caller outside broker_allow", body = Problem, content_type = "application/problem+json"))
)]
pub async fn emqx_authn(
    state: web::Data<AppState>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let f = fields(&state, &req, &mut payload).await?;
    Ok(emqx_answer(state.broker.authenticate(&state, &auth_request(&f)).await))
}

#[utoipa::path(
    post, path = "/broker/emqx/authz", tag = "broker",
    request_body(content = BrokerRequest, content_type = "application/json", description = "EMQX 5: username, clientid, topic, action (publish/subscribe); EMQX 4 / RMQTT: access 1 = subscribe, 2 = publish"),
    responses((status = 200, description = "result: allow, deny or ignore", body = EmqxResponse), (status = 403, description = "Caller outside broker_allow", body = Problem, content_type = "application/problem+json"))
)]
pub async fn emqx_authz(
    state: web::Data<AppState>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let f = fields(&state, &req, &mut payload).await?;
    let access: &[Access] = match (f.get("action"), f.get("access")) {
        (Some("publish"), _) | (None, Some("2")) => &[Access::Write],
        (Some("subscribe"), _) | (None, Some("1")) => &[Access::Subscribe],
        (Some("all"), _) => &[Access::Write, Access::Subscribe],
        _ => return Ok(emqx_answer(Decision::Deny("missing or unknown action"))),
    };
    let decision = match (f.get("username"), f.get("topic")) {
        (Some(u), Some(t)) => {
            state
                .broker
                .authorize(&state, u, f.clientid().as_deref(), t, access)
                .await
        }
        _ => Decision::Deny("missing username or topic"),
    };
    Ok(emqx_answer(decision))
}

/// amqtt's HTTP plugins default to GET with a JSON body (and its YAML loader cannot switch
/// them to POST), so the same calls answer GET; the fields may also come as a query string.
#[utoipa::path(
    get, path = "/broker/auth", tag = "broker",
    params(("response" = Option<String>, Query, description = "`json` for 200 with {\"ok\": bool}")),
    request_body(content = BrokerRequest, content_type = "application/json", description = "As POST; or the fields as a query string"),
    responses(
        (status = 200, description = "Allowed (or any answer in JSON mode)", body = OkResponse),
        (status = 403, description = "Denied", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "fleetca cannot decide", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn auth_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth(state, req, payload).await
}

/// GET form of `/broker/acl` (see [`auth_get`]).
#[utoipa::path(
    get, path = "/broker/acl", tag = "broker",
    params(("response" = Option<String>, Query, description = "`json` for 200 with {\"ok\": bool}")),
    request_body(content = BrokerRequest, content_type = "application/json", description = "As POST; or the fields as a query string"),
    responses(
        (status = 200, description = "Allowed (or any answer in JSON mode)", body = OkResponse),
        (status = 403, description = "Denied", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "fleetca cannot decide", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn acl_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    acl(state, req, payload).await
}
