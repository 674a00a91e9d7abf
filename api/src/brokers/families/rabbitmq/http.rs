//! `/broker/rabbitmq/*`: RabbitMQ's HTTP auth backend (`rabbitmq_auth_backend_http`), in its
//! request shapes (GET query or POST form, as `auth_http.http_method` says) and its plain-text
//! answers `allow` / `deny` (the questions themselves are [`super::RabbitMq`]'s).
//!
//! Like the other broker endpoints: no Bearer auth, `broker_allow` networks only, and
//! `X-Broker-Secret` when `FLEETCA_BROKER_SECRET` is set (RabbitMQ cannot send it: leave it
//! unset, or put a proxy that adds it in between).

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::brokers::decision::Decision;
use crate::brokers::families::rabbitmq::RabbitRequest;
use crate::brokers::http::fields::Fields;
use crate::error::ApiError;
use crate::http::edge::route;
use crate::http::extract::BrokerCaller;
use crate::http::problems::BrokerProblems;
use crate::state::AppState;

pub fn routes() -> crate::http::edge::Routes {
    let both = |path: &'static str, post: fn() -> actix_web::Route, get: fn() -> actix_web::Route| {
        (path, vec![route("POST", post), route("GET", get)])
    };
    vec![
        both("/broker/rabbitmq/user", || web::post().to(user), || web::get().to(user)),
        both(
            "/broker/rabbitmq/vhost",
            || web::post().to(vhost),
            || web::get().to(vhost),
        ),
        both(
            "/broker/rabbitmq/resource",
            || web::post().to(resource),
            || web::get().to(resource),
        ),
        both(
            "/broker/rabbitmq/topic",
            || web::post().to(topic),
            || web::get().to(topic),
        ),
    ]
}

/// The form fields RabbitMQ's HTTP backend sends (each path sends some of them; a GET sends
/// them as the query). Documentation only: the handlers read whichever fields arrive.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RabbitForm {
    pub username: Option<String>,
    pub password: Option<String>,
    pub vhost: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub tags: Option<String>,
    /// `exchange`, `queue` or `topic`.
    pub resource: Option<String>,
    pub name: Option<String>,
    /// `configure`, `write` or `read`.
    pub permission: Option<String>,
    pub routing_key: Option<String>,
    #[serde(rename = "variable_map.client_id")]
    pub variable_map_client_id: Option<String>,
    #[serde(rename = "variable_map.username")]
    pub variable_map_username: Option<String>,
}

fn request(mut map: HashMap<String, String>) -> RabbitRequest {
    let mut take = |keys: &[&str]| keys.iter().find_map(|k| map.remove(*k));
    RabbitRequest {
        username: take(&["username"]).unwrap_or_default(),
        password: take(&["password"]),
        vhost: take(&["vhost"]),
        resource: take(&["resource"]),
        name: take(&["name"]),
        permission: take(&["permission"]),
        routing_key: take(&["routing_key"]),
        client_id: take(&["client_id", "variable_map.client_id"]).filter(|c| !c.is_empty()),
    }
}

/// `allow` or `deny`, as the backend reads them (RabbitMQ refuses anything else too).
fn answer(decision: Decision) -> HttpResponse {
    let text = match decision {
        Decision::Allow => "allow",
        Decision::Deny(reason) => {
            tracing::debug!(reason, "broker request denied");
            "deny"
        }
        Decision::Unknown => "deny",
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
        .body(text)
}

/// RabbitMQ `user_path`: `username`, `password` (absent for a certificate login), `vhost`,
/// `client_id`.
#[utoipa::path(
    method(get, post), path = "/broker/rabbitmq/user", tag = "broker",
    request_body(content = RabbitForm, content_type = "application/x-www-form-urlencoded", description = "username, password, vhost, client_id (or as a GET query, `auth_http.http_method = get`)"),
    responses((status = 200, description = "`allow` or `deny`", content_type = "text/plain", body = String), BrokerProblems)
)]
pub async fn user(
    state: web::Data<AppState>,
    _broker: BrokerCaller,
    Fields(fields): Fields,
) -> Result<HttpResponse, ApiError> {
    let r = request(fields);
    Ok(answer(state.rabbitmq.user(&r).await))
}

/// RabbitMQ `vhost_path`: `username`, `vhost`, `ip`, `tags`, `client_id`.
#[utoipa::path(
    method(get, post), path = "/broker/rabbitmq/vhost", tag = "broker",
    request_body(content = RabbitForm, content_type = "application/x-www-form-urlencoded", description = "username, vhost, ip, tags, client_id"),
    responses((status = 200, description = "`allow` or `deny`", content_type = "text/plain", body = String), BrokerProblems)
)]
pub async fn vhost(
    state: web::Data<AppState>,
    _broker: BrokerCaller,
    Fields(fields): Fields,
) -> Result<HttpResponse, ApiError> {
    let r = request(fields);
    Ok(answer(state.rabbitmq.vhost(&r)))
}

/// RabbitMQ `resource_path`: `username`, `vhost`, `resource` (`exchange`/`queue`), `name`,
/// `permission` (`configure`/`write`/`read`).
#[utoipa::path(
    method(get, post), path = "/broker/rabbitmq/resource", tag = "broker",
    request_body(content = RabbitForm, content_type = "application/x-www-form-urlencoded", description = "username, vhost, resource, name, permission"),
    responses((status = 200, description = "`allow` or `deny`", content_type = "text/plain", body = String), BrokerProblems)
)]
pub async fn resource(
    state: web::Data<AppState>,
    _broker: BrokerCaller,
    Fields(fields): Fields,
) -> Result<HttpResponse, ApiError> {
    let r = request(fields);
    Ok(answer(state.rabbitmq.resource(&r)))
}

/// RabbitMQ `topic_path`: `username`, `vhost`, `resource=topic`, `name` (the exchange),
/// `permission` (`write` publish, `read` subscribe), `routing_key`, `variable_map.client_id`.
#[utoipa::path(
    method(get, post), path = "/broker/rabbitmq/topic", tag = "broker",
    request_body(content = RabbitForm, content_type = "application/x-www-form-urlencoded", description = "username, vhost, resource, name, permission, routing_key, variable_map.client_id, variable_map.username"),
    responses((status = 200, description = "`allow` or `deny`", content_type = "text/plain", body = String), BrokerProblems)
)]
pub async fn topic(
    state: web::Data<AppState>,
    _broker: BrokerCaller,
    Fields(fields): Fields,
) -> Result<HttpResponse, ApiError> {
    let r = request(fields);
    Ok(answer(state.rabbitmq.topic(&r).await))
}
