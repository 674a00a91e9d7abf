//! The OpenAPI 3.1 document (`/api/openapi.json`) and interactive docs (`/api/docs/`),
//! gathered from every context's handlers. Error responses are declared once in
//! [`super::problems`] and named by each path.

use actix_web::web;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::brokers::families::{emqx, go_auth, mosquitto, rabbitmq};
use crate::brokers::http::disconnects;
use crate::fleet::http::{devices, products};
use crate::http::metrics;
use crate::identity::http::{auth, users};
use crate::ops::http::{overview, public};
use crate::outbox::http::{audit, webhooks};
use crate::pki::http::{authorities, certificates, claims, est};

#[derive(OpenApi)]
#[openapi(
    info(title = "fleetca", description = "Certificate authority and credential service for MQTT device fleets. Errors are RFC 9457 application/problem+json."),
    paths(
        public::healthz, public::readyz, metrics::metrics, public::ca_pem, public::crl_der, public::crl_pem, public::ca_crl_der, public::ca_crl_pem, public::shard_crl_der, public::shard_crl_pem,
        users::create, users::list, users::get, users::patch, users::deactivate, users::rotate_token,
        certificates::create, certificates::list, certificates::get, certificates::revoke, certificates::revoke_many, certificates::renew,
        claims::create, claims::list, claims::get, claims::revoke,
        authorities::add, authorities::import, authorities::activate, authorities::revoke,
        audit::list,
        webhooks::create, webhooks::list, webhooks::get, webhooks::patch, webhooks::delete, webhooks::rotate_secret,
        webhooks::test, webhooks::deliveries, webhooks::redeliver,
        disconnects::list,
        certificates::create_server, certificates::list_server, certificates::get_server, certificates::revoke_server,
        devices::create, devices::bulk, devices::list, devices::get, devices::patch, devices::delete, devices::rotate,
        devices::certificates, devices::revoke_certificate,
        products::create, products::list, products::get, products::patch, products::delete, products::rotate_secret,
        products::create_device, products::bulk_devices, products::list_devices, products::get_device,
        products::patch_device, products::delete_device, products::rotate_device_secret, products::reset_activation,
        products::register,
        est::cacerts, est::cacerts_labelled, est::csrattrs, est::csrattrs_labelled, est::simpleenroll, est::simpleenroll_labelled,
        est::simplereenroll, est::simplereenroll_labelled,
        auth::login, auth::logout, auth::me, auth::whoami, auth::password, auth::setup_status, auth::setup,
        overview::stats, overview::ca, overview::settings, overview::repairs, overview::acknowledge_repair,
        go_auth::http::auth, go_auth::http::superuser, go_auth::http::acl, emqx::http::emqx_authn, emqx::http::emqx_authz,
        mosquitto::http::login, mosquitto::http::acl, mosquitto::http::feed,
        rabbitmq::http::user, rabbitmq::http::vhost, rabbitmq::http::resource, rabbitmq::http::topic,
    ),
    components(schemas(crate::error::Problem)),
    modifiers(&BearerScheme, &OperationIds),
    tags(
        (name = "users", description = "API keys (service accounts) and human users"),
        (name = "mqtt-certificates", description = "MQTT client certificates"),
        (name = "server-certificates", description = "TLS certificates for brokers (admins only)"),
        (name = "audit", description = "The tamper-evident audit log (admins: all; managers: their enterprise)"),
        (name = "webhooks", description = "Endpoints that receive signed events (Standard Webhooks), their delivery logs and test events"),
        (name = "brokers", description = "Live sessions fleetca asked the brokers to end after a credential stopped being valid"),
        (name = "claims", description = "Claim certificates: fleet provisioning by claim over EST"),
        (name = "devices", description = "Devices and their HA1 credentials"),
        (name = "products", description = "Products of sign-based devices (EnOS, Alibaba Cloud IoT), their devices, and HTTPS dynamic registration"),
        (name = "broker", description = "The MQTT broker's HTTP auth and ACL calls (no Bearer auth; broker_allow networks only)"),
        (name = "auth", description = "Browser sign-in for human users (the admin UI)"),
        (name = "overview", description = "Counts, CA facts and settings for the admin UI"),
        (name = "pki", description = "CA certificate and revocation list"),
        (name = "est", description = "Enrollment over Secure Transport (RFC 7030): base64 DER in and out, plain-text errors"),
        (name = "operations", description = "Health and readiness"),
    )
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Gives every operation a unique id from its method and path (`post_api_v4_manage_users`),
/// where utoipa would name several after the same handler function name.
struct OperationIds;

impl Modify for OperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let slug: String = path
                .trim_matches('/')
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let slug = slug.replace("__", "_");
            for (method, op) in [
                ("get", item.get.as_mut()),
                ("post", item.post.as_mut()),
                ("put", item.put.as_mut()),
                ("patch", item.patch.as_mut()),
                ("delete", item.delete.as_mut()),
            ] {
                if let Some(op) = op {
                    op.operation_id = Some(format!("{method}_{}", slug.trim_matches('_')));
                }
            }
        }
    }
}

/// The document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.openapi = utoipa::openapi::OpenApiVersion::Version31;
    doc
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(SwaggerUi::new("/api/docs/{_:.*}").url("/api/openapi.json", document()));
}
