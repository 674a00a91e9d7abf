//! The OpenAPI 3.1 document (`/api/openapi.json`) and interactive docs (`/api/docs/`).

use actix_web::web;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::http::{auth, broker, certificates, devices, overview, public, users};

#[derive(OpenApi)]
#[openapi(
    info(title = "fleetca", description = "Certificate authority and credential service for MQTT device fleets. Errors are RFC 9457 application/problem+json."),
    paths(
        public::healthz, public::readyz, public::ca_pem, public::crl_der, public::crl_pem,
        users::create, users::list, users::get, users::patch, users::deactivate, users::rotate_token,
        certificates::create, certificates::list, certificates::get, certificates::revoke, certificates::create_server,
        devices::create, devices::bulk, devices::list, devices::get, devices::patch, devices::delete, devices::rotate,
        auth::login, auth::logout, auth::me, auth::password, overview::stats, overview::ca,
        broker::auth, broker::auth_get, broker::superuser, broker::acl, broker::acl_get, broker::emqx_authn, broker::emqx_authz,
    ),
    components(schemas(crate::error::Problem)),
    modifiers(&BearerScheme),
    tags(
        (name = "users", description = "API keys (service accounts) and human users"),
        (name = "mqtt-certificates", description = "MQTT client certificates"),
        (name = "server-certificates", description = "TLS certificates for brokers"),
        (name = "devices", description = "Devices and their HA1 credentials"),
        (name = "broker", description = "The MQTT broker's HTTP auth and ACL calls (no Bearer auth; broker_allow networks only)"),
        (name = "auth", description = "Browser sign-in for human users (the admin UI)"),
        (name = "overview", description = "Counts and CA facts for the admin UI"),
        (name = "pki", description = "CA certificate and revocation list"),
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

/// The document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.openapi = utoipa::openapi::OpenApiVersion::Version31;
    doc
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(SwaggerUi::new("/api/docs/{_:.*}").url("/api/openapi.json", document()));
}
