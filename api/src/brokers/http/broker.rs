//! `/broker/*`: the MQTT broker's HTTP auth and ACL calls, in the shapes of
//! mosquitto-go-auth's HTTP backend, amqtt's HTTP plugins, EMQX 5's HTTP authenticator and
//! authorizer, and EMQX 4 / RMQTT auth-http.
//!
//! No Bearer auth: these are reachable only from `broker_allow` networks and, when
//! `FLEETCA_BROKER_SECRET` is set, only with it in `X-Broker-Secret` ([`BrokerCaller`]).

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::brokers::acl::Access;
use crate::brokers::decision::{AclRequest, AuthRequest, Decision};
use crate::error::ApiError;
use crate::http::edge::route;
use crate::http::extract::{BrokerCaller, is_json, read_body};
use crate::http::problems::BrokerProblems;
use crate::state::AppState;
use crate::support::Error;

const BODY_LIMIT: usize = 64 * 1024;

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
        ("/broker/emqx/authn", vec![route("POST", || web::post().to(emqx_authn))]),
        ("/broker/emqx/authz", vec![route("POST", || web::post().to(emqx_authz))]),
    ]
}

/// What brokers send (JSON, a form or a query string). Every field is optional; each
/// endpoint reads its own.
#[derive(Deserialize, ToSchema, Default, Debug)]
pub struct BrokerRequest {
    pub username: Option<String>,
    pub password: Option<String>,
    /// Also accepted as `client_id` or `clientId`.
    pub clientid: Option<String>,
    pub topic: Option<String>,
    /// go-auth/amqtt ACL: 1 read, 2 write, 3 read and write, 4 subscribe.
    #[schema(value_type = Option<u8>)]
    pub acc: Option<String>,
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
    /// Authentication only, allowed certificate logins: the certificate's notAfter (Unix
    /// seconds); EMQX 5.8+ ends the session then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_at: Option<i64>,
    /// Authentication only, allowed: the client's topic rules (first match wins, the last
    /// denies the rest); EMQX 5.8+ then asks no authorization per publish and subscribe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl: Option<Vec<EmqxRule>>,
}

/// One rule of EMQX's authentication-provided ACL.
#[derive(Serialize, ToSchema)]
pub struct EmqxRule {
    /// `allow` or `deny`.
    pub permission: &'static str,
    /// `publish`, `subscribe` or `all`.
    pub action: &'static str,
    pub topic: String,
}

impl From<crate::brokers::decision::EmqxRule> for EmqxRule {
    fn from(r: crate::brokers::decision::EmqxRule) -> Self {
        Self {
            permission: r.permission,
            action: r.action,
            topic: r.topic,
        }
    }
}

impl BrokerRequest {
    /// Takes the fields this API knows from what the broker sent; the client id may be
    /// `clientid`, `client_id` or `clientId`, the certificate `cert_pem`, `certificate` or
    /// `cert`, its fingerprint `cert_fingerprint` or `fingerprint`.
    fn from_fields(mut map: HashMap<String, String>) -> Self {
        let mut first = |keys: &[&str]| keys.iter().find_map(|k| map.remove(*k));
        Self {
            username: first(&["username"]),
            password: first(&["password"]),
            clientid: first(&["clientid", "client_id", "clientId"]),
            topic: first(&["topic"]),
            acc: first(&["acc"]),
            access: first(&["access"]),
            action: first(&["action"]),
            cert_fingerprint: first(&["cert_fingerprint", "fingerprint"]),
            cert_pem: first(&["cert_pem", "certificate", "cert"]),
        }
    }

    fn auth_request(self) -> AuthRequest {
        AuthRequest {
            certificate_verified_by_broker: false,
            username: self.username.unwrap_or_default(),
            password: self.password.unwrap_or_default(),
            clientid: self.clientid,
            cert_fingerprint: self.cert_fingerprint,
            cert_pem: self.cert_pem,
        }
    }

    fn acl_request<'a>(&'a self, access: &'a [Access]) -> Option<AclRequest<'a>> {
        Some(AclRequest {
            amqp: false,
            username: self.username.as_deref()?,
            clientid: self.clientid.as_deref(),
            topic: self.topic.as_deref()?,
            access,
        })
    }
}

async fn fields(req: &HttpRequest, payload: &mut web::Payload) -> Result<BrokerRequest, ApiError> {
    Ok(BrokerRequest::from_fields(field_map(req, payload).await?))
}

/// Every field a broker sent, from a JSON object, a form or the query string.
pub(crate) async fn field_map(
    req: &HttpRequest,
    payload: &mut web::Payload,
) -> Result<HashMap<String, String>, ApiError> {
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
    Ok(map)
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
        (Decision::Deny(_), false) => ApiError::from(Error::Forbidden("Not authorized.".into())).error_response(),
        (Decision::Unknown, _) => ApiError::from(Error::Unavailable).error_response(),
    }
}

fn emqx_answer(decision: Decision) -> HttpResponse {
    emqx_answer_with(decision, crate::brokers::decision::EmqxGrant::default())
}

fn emqx_answer_with(decision: Decision, grant: crate::brokers::decision::EmqxGrant) -> HttpResponse {
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
        expire_at: grant.expire_at,
        acl: grant.acl.map(|rules| rules.into_iter().map(EmqxRule::from).collect()),
    })
}

/// POST, and GET for amqtt: its HTTP plugins default to GET with a JSON body (its YAML
/// loader cannot switch them to POST); the fields may also come as a form or a query string.
#[utoipa::path(
    method(post, get), path = "/broker/auth", tag = "broker",
    request_body(content = BrokerRequest, content_type = "application/json", description = "Also accepted as a form (POST) or a query string (GET): username, password, clientid"),
    params(("response" = Option<String>, Query, description = "`json` for 200 with {\"ok\": bool}")),
    responses(
        (status = 200, description = "Allowed (or any answer in JSON mode)", body = OkResponse),
        BrokerProblems,
    )
)]
pub async fn auth(
    state: web::Data<AppState>,
    _broker: BrokerCaller,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let f = fields(&req, &mut payload).await?;
    let decision = state.broker.authenticate(&f.auth_request()).await;
    Ok(answer(&req, decision))
}

#[utoipa::path(
    post, path = "/broker/superuser", tag = "broker", request_body(content = BrokerRequest, content_type = "application/json"),
    params(("response" = Option<String>, Query, description = "`json` for 200 with {\"ok\": bool}")),
    responses(
        (status = 200, description = "JSON mode: always {\"ok\": false}", body = OkResponse),
        BrokerProblems,
    )
)]
pub async fn superuser(
    _broker: BrokerCaller,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    fields(&req, &mut payload).await?;
    Ok(answer(&req, Decision::Deny("fleetca has no MQTT superusers")))
}

/// POST, and GET for amqtt (see [`auth`]).
#[utoipa::path(
    method(post, get), path = "/broker/acl", tag = "broker",
    request_body(content = BrokerRequest, content_type = "application/json", description = "username, clientid, topic, acc (1 read, 2 write, 3 both, 4 subscribe); also as a form (POST) or a query string (GET)"),
    params(("response" = Option<String>, Query, description = "`json` for 200 with {\"ok\": bool}")),
    responses(
        (status = 200, description = "Allowed (or any answer in JSON mode)", body = OkResponse),
        BrokerProblems,
    )
)]
pub async fn acl(
    state: web::Data<AppState>,
    _broker: BrokerCaller,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let f = fields(&req, &mut payload).await?;
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

#[utoipa::path(
    post, path = "/broker/emqx/authn", tag = "broker",
    request_body(content = BrokerRequest, content_type = "application/json", description = "EMQX 5 JSON, or the EMQX 4 / RMQTT form (username, password, clientid, ipaddr, protocol)"),
    responses((status = 200, description = "result: allow, deny or ignore", body = EmqxResponse), BrokerProblems)
)]
pub async fn emqx_authn(
    state: web::Data<AppState>,
    _broker: BrokerCaller,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let f = fields(&req, &mut payload).await?;
    let auth = f.auth_request();
    let decision = state.broker.authenticate(&auth).await;
    let grant = match decision {
        Decision::Allow => state.broker.emqx_grant(&auth).await,
        _ => Default::default(),
    };
    Ok(emqx_answer_with(decision, grant))
}

#[utoipa::path(
    post, path = "/broker/emqx/authz", tag = "broker",
    request_body(content = BrokerRequest, content_type = "application/json", description = "EMQX 5: username, clientid, topic, action (publish/subscribe); EMQX 4 / RMQTT: access 1 = subscribe, 2 = publish"),
    responses((status = 200, description = "result: allow, deny or ignore", body = EmqxResponse), BrokerProblems)
)]
pub async fn emqx_authz(
    state: web::Data<AppState>,
    _broker: BrokerCaller,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let f = fields(&req, &mut payload).await?;
    let access: &[Access] = match (f.action.as_deref(), f.access.as_deref()) {
        (Some("publish"), _) | (None, Some("2")) => &[Access::Write],
        (Some("subscribe"), _) | (None, Some("1")) => &[Access::Subscribe],
        (Some("all"), _) => &[Access::Write, Access::Subscribe],
        _ => return Ok(emqx_answer(Decision::Deny("missing or unknown action"))),
    };
    let decision = match f.acl_request(access) {
        Some(acl) => state.broker.authorize(&acl).await,
        None => Decision::Deny("missing username or topic"),
    };
    Ok(emqx_answer(decision))
}
