//! EMQX 5's HTTP authenticator and authorizer, and EMQX 4 / RMQTT auth-http:
//! `/broker/emqx/authn` and `/broker/emqx/authz`, answered `{"result": "allow" | "deny" |
//! "ignore"}`; an allowed certificate login carries its expiry and its topic rules (EMQX 5.8+).
//!
//! No Bearer auth: `broker_allow` networks only, and the broker secret when it is set.

use actix_web::{HttpResponse, web};
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

pub fn routes() -> crate::http::edge::Routes {
    vec![
        ("/broker/emqx/authn", vec![route("POST", || web::post().to(emqx_authn))]),
        ("/broker/emqx/authz", vec![route("POST", || web::post().to(emqx_authz))]),
    ]
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

fn emqx_answer(decision: Decision) -> HttpResponse {
    emqx_answer_with(decision, crate::brokers::decision::EmqxGrant::default())
}

fn emqx_answer_with(decision: Decision, grant: crate::brokers::decision::EmqxGrant) -> HttpResponse {
    HttpResponse::Ok().json(EmqxResponse {
        result: decision.word(),
        is_superuser: false,
        expire_at: grant.expire_at,
        acl: grant.acl.map(|rules| rules.into_iter().map(EmqxRule::from).collect()),
    })
}

#[utoipa::path(
    post, path = "/broker/emqx/authn", tag = "broker",
    request_body(content = BrokerRequest, content_type = "application/json", description = "EMQX 5 JSON, or the EMQX 4 / RMQTT form (username, password, clientid, ipaddr, protocol)"),
    responses((status = 200, description = "result: allow, deny or ignore", body = EmqxResponse), BrokerProblems)
)]
pub async fn emqx_authn(
    state: web::Data<AppState>,
    _broker: BrokerCaller,
    f: BrokerRequest,
) -> Result<HttpResponse, ApiError> {
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
    f: BrokerRequest,
) -> Result<HttpResponse, ApiError> {
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
