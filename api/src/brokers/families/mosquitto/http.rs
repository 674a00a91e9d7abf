//! `/broker/plugin/login`, `/broker/plugin/acl` and `/broker/plugin/feed`: what
//! `fleetca_mosquitto.so` asks. JSON answers, always 200 for a question fleetca could read:
//! `result` is `allow`, `deny` or `ignore` (fleetca could not decide; the plugin refuses the
//! login and caches nothing).
//!
//! No Bearer auth: `broker_allow` networks only, and the broker secret when it is set.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
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

/// The longest a feed request waits for a change before answering with none.
const FEED_WAIT: Duration = Duration::from_secs(25);
/// How long a decision may be cached by default, in seconds.
const MAX_AGE: u64 = 600;

pub fn routes() -> crate::http::edge::Routes {
    vec![
        ("/broker/plugin/login", vec![route("POST", || web::post().to(login))]),
        ("/broker/plugin/acl", vec![route("POST", || web::post().to(acl))]),
        ("/broker/plugin/feed", vec![route("GET", || web::get().to(feed))]),
    ]
}

/// A message the plugin hands one client at once (`mosquitto_broker_publish` to its id).
#[derive(Serialize, ToSchema)]
pub struct PluginMessage {
    pub topic: String,
    pub payload: String,
}

/// The answer to a login.
#[derive(Serialize, ToSchema)]
pub struct PluginLogin {
    /// `allow`, `deny` or `ignore`.
    pub result: &'static str,
    /// The MQTT username the session takes: a certificate's common name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// What the decision depends on; a change to one of them drops it, or ends the session.
    pub tags: Vec<String>,
    /// An EnOS activation login's `thing.activate.info`, on its documented topic.
    pub messages: Vec<PluginMessage>,
    /// How long the plugin may cache an allowed login, in seconds (0: not at all, for a
    /// password whose timestamp fleetca's clock check would refuse later).
    pub max_age: u64,
}

impl PluginLogin {
    fn refused(result: &'static str) -> Self {
        Self {
            result,
            username: None,
            tags: Vec::new(),
            messages: Vec::new(),
            max_age: 0,
        }
    }
}

#[utoipa::path(
    post, path = "/broker/plugin/login", tag = "broker",
    request_body(content = BrokerRequest, content_type = "application/json", description = "username, password, clientid, and cert_pem when the client presented a certificate (its common name is then the username)"),
    responses((status = 200, description = "result: allow, deny or ignore; tags; messages", body = PluginLogin), BrokerProblems)
)]
pub async fn login(
    state: web::Data<AppState>,
    _broker: BrokerCaller,
    f: BrokerRequest,
) -> Result<HttpResponse, ApiError> {
    let mut auth = f.auth_request();
    auth.broker_delivers_activation = true;
    let mut username = None;
    if let Some(pem) = auth.cert_pem.as_deref().filter(|p| !p.is_empty()) {
        // A presented certificate is the identity, as `use_identity_as_username` makes it.
        let Some(cn) = fleetca_ca::common_name(pem) else {
            return Ok(HttpResponse::Ok().json(PluginLogin::refused("deny")));
        };
        auth.username = cn.clone();
        auth.password.clear();
        username = Some(cn);
    } else if auth.password.is_empty() {
        // The plugin always sends the certificate a client presented: without one, a login
        // with no password is nobody's (whatever broker_trust_username_for_certificates says
        // for brokers that cannot send certificates).
        tracing::debug!("plugin login without a password or a certificate refused");
        return Ok(HttpResponse::Ok().json(PluginLogin::refused("deny")));
    }
    let decision = state.broker.authenticate(&auth).await;
    if decision != Decision::Allow {
        return Ok(HttpResponse::Ok().json(PluginLogin::refused(decision.word())));
    }
    let tags = state.broker.plugin_tags(&auth).await;
    let activation = state.broker.activation_secret(&auth).await;
    let clock = state.broker.login_checks_clock(&auth).await;
    match (tags, activation, clock) {
        (Ok(tags), Ok(activation), Ok(clock)) => Ok(HttpResponse::Ok().json(PluginLogin {
            result: "allow",
            username,
            tags,
            messages: activation_messages(activation),
            max_age: if clock { 0 } else { MAX_AGE },
        })),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            tracing::warn!(error = %e, "an allowed plugin login's tags could not be read");
            Ok(HttpResponse::Ok().json(PluginLogin::refused("ignore")))
        }
    }
}

fn activation_messages(activation: Option<(String, String, String)>) -> Vec<PluginMessage> {
    let Some((product_key, device_key, secret)) = activation else {
        return Vec::new();
    };
    let payload = crate::brokers::activation::message(&product_key, &device_key, &secret);
    let payload = String::from_utf8_lossy(&payload).into_owned();
    tracing::info!(%product_key, %device_key, "activation message handed to the mosquitto plugin");
    // One message, on the documented topic, as EnOS sends it (the SDK would handle a second
    // copy as a second activation).
    vec![PluginMessage {
        topic: crate::brokers::acl::activation_topic(&product_key, &device_key),
        payload,
    }]
}

/// The answer to an ACL question.
#[derive(Serialize, ToSchema)]
pub struct PluginAcl {
    /// `allow`, `deny` or `ignore`.
    pub result: &'static str,
}

#[utoipa::path(
    post, path = "/broker/plugin/acl", tag = "broker",
    request_body(content = BrokerRequest, content_type = "application/json", description = "username, clientid, topic, acc (1 read, 2 write, 4 subscribe)"),
    responses((status = 200, description = "result: allow, deny or ignore", body = PluginAcl), BrokerProblems)
)]
pub async fn acl(
    state: web::Data<AppState>,
    _broker: BrokerCaller,
    f: BrokerRequest,
) -> Result<HttpResponse, ApiError> {
    let access: &[Access] = match f.acc.as_deref() {
        Some("1") => &[Access::Read],
        Some("2") => &[Access::Write],
        Some("4") => &[Access::Subscribe],
        _ => {
            return Ok(HttpResponse::Ok().json(PluginAcl {
                result: Decision::Deny("missing or unknown acc").word(),
            }));
        }
    };
    let decision = match f.acl_request(access) {
        Some(acl) => state.broker.authorize(&acl).await,
        None => Decision::Deny("missing username or topic"),
    };
    Ok(HttpResponse::Ok().json(PluginAcl {
        result: decision.word(),
    }))
}

/// What `/broker/plugin/feed` answers ([`crate::brokers::feed::Batch`], described here for
/// the OpenAPI document).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FeedBatch {
    /// Pass it back as `cursor`, once the events are applied.
    pub cursor: String,
    /// Events were missed: forget every cached decision.
    pub reset: bool,
    /// `{"drop": {"tags": [...]}}`, `{"cut": {"tags": [...], "scope": "all" | "password" |
    /// "certificate"}}` or `"reload"` (fleetca wrote its CRL file).
    pub events: Vec<serde_json::Value>,
}

/// Which plugin follows, and from where.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The broker's name, as its `[[brokers]]` entry (`kind = "mosquitto-plugin"`) names it:
    /// 1 to 64 characters without commas.
    #[param(min_length = 1, max_length = 64, pattern = "^[^,]+$")]
    pub broker: String,
    /// The `cursor` of the last answer, once its events are applied; none at first.
    pub cursor: Option<String>,
    /// How long to wait for a change, in seconds (0 to 25, default 25).
    pub wait: Option<u64>,
}

#[utoipa::path(
    get, path = "/broker/plugin/feed", tag = "broker", params(FeedQuery),
    responses((status = 200, description = "The changes after the cursor (waits up to `wait` s for one)", body = FeedBatch), BrokerProblems)
)]
pub async fn feed(
    state: web::Data<AppState>,
    _broker: BrokerCaller,
    q: web::Query<FeedQuery>,
) -> Result<HttpResponse, ApiError> {
    if q.broker.is_empty() || q.broker.chars().count() > 64 || q.broker.contains(',') {
        return Err(Error::invalid("broker", "give this broker's name: 1 to 64 characters without commas").into());
    }
    let wait = Duration::from_secs(q.wait.unwrap_or(FEED_WAIT.as_secs())).min(FEED_WAIT);
    let batch = state.feed.follow(&q.broker, q.cursor.as_deref(), wait).await;
    Ok(HttpResponse::Ok().json(batch))
}
