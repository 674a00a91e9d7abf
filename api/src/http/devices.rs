//! `/api/v4/manage/devices/`: device provisioning.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use fleetca_ca::device::is_ha1;
use fleetca_storage::Device;
use fleetca_storage::devices::{DeviceFilter, DevicePatch};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::config::Secret;
use crate::domain::{Enterprise, PageRequest};
use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, Auth, parse_json, read_body, require_json};
use crate::http::{PageOf, route};
use crate::service::devices::{self as svc, BulkOutcome, Credential, DeviceInput, Provisioned};
use crate::state::AppState;

/// Most devices in one bulk request.
pub const MAX_BULK: usize = 10_000;
/// Body limit of a bulk request.
const BULK_BODY_LIMIT: usize = 16 * 1024 * 1024;

pub fn routes() -> super::Routes {
    vec![
        (
            "/api/v4/manage/devices",
            vec![
                route("GET", || web::get().to(list)),
                route("POST", || web::post().to(create)),
            ],
        ),
        (
            "/api/v4/manage/devices/bulk",
            vec![route("POST", || web::post().to(bulk))],
        ),
        (
            "/api/v4/manage/devices/{tenant}/{device_id}",
            vec![
                route("GET", || web::get().to(get)),
                route("PATCH", || web::patch().to(patch)),
                route("DELETE", || web::delete().to(delete)),
            ],
        ),
        (
            "/api/v4/manage/devices/{tenant}/{device_id}/credentials",
            vec![route("PUT", || web::put().to(rotate))],
        ),
    ]
}

/// A device as the API shows it. Never its HA1.
#[derive(Serialize, ToSchema)]
pub struct DeviceOut {
    pub tenant: String,
    pub device_id: String,
    pub realm: String,
    pub description: Option<String>,
    pub is_active: bool,
    /// The MQTT username the device must use.
    #[schema(example = "device=dev-001&tenant=acme")]
    pub mqtt_username: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Device> for DeviceOut {
    fn from(d: Device) -> Self {
        Self {
            mqtt_username: format!("device={}&tenant={}", d.device_id, d.tenant),
            tenant: d.tenant,
            device_id: d.device_id,
            realm: d.realm,
            description: d.description,
            is_active: d.is_active,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// A provisioned device; `password` and `ha1` only when fleetca generated them, in this
/// response only.
#[derive(Serialize, ToSchema)]
pub struct ProvisionedOut {
    #[serde(flatten)]
    pub device: DeviceOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ha1: Option<String>,
}

impl From<Provisioned> for ProvisionedOut {
    fn from(p: Provisioned) -> Self {
        let (password, ha1) = p.generated.map(|(p, h)| (Some(p), Some(h))).unwrap_or((None, None));
        Self {
            device: p.device.into(),
            password,
            ha1,
        }
    }
}

/// The bulk response.
#[derive(Serialize, ToSchema)]
pub struct BulkCreated {
    pub created: usize,
    pub results: Vec<ProvisionedOut>,
}

/// Provision a device. Give `password` or `ha1`, or neither to have one generated.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceBody {
    /// 1–128 of `[A-Za-z0-9._:-]`, unique within the tenant.
    pub device_id: String,
    /// The tenant (an enterprise code).
    pub tenant: String,
    /// HA1 = MD5(device_id:realm:password) is stored; the password is not.
    pub password: Option<String>,
    /// An HA1 as 32 hex characters.
    pub ha1: Option<String>,
    /// Digest realm (default: the tenant).
    pub realm: Option<String>,
    pub description: Option<String>,
}

/// Rotate a device's credentials (same rules as creation).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CredentialsBody {
    pub password: Option<String>,
    pub ha1: Option<String>,
    pub realm: Option<String>,
}

/// Change a device.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchDeviceBody {
    pub is_active: Option<bool>,
    pub description: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceQuery {
    pub page: Option<u64>,
    pub page_size: Option<u64>,
    pub tenant: Option<String>,
    pub is_active: Option<bool>,
    /// device_id contains this.
    pub search: Option<String>,
}

fn check_device_id(id: &str) -> Result<(), String> {
    if !(1..=128).contains(&id.len())
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err("must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'".into());
    }
    Ok(())
}

fn check_realm(realm: &str) -> Result<(), String> {
    if !(1..=128).contains(&realm.chars().count()) || realm.chars().any(char::is_control) {
        return Err("must be 1 to 128 printable characters".into());
    }
    Ok(())
}

fn credential(password: Option<String>, ha1: Option<String>, errors: &mut FieldErrors) -> Credential {
    match (password, ha1) {
        (Some(_), Some(_)) => {
            errors.insert("password".into(), vec!["give either password or ha1, not both".into()]);
            Credential::Generate
        }
        (Some(p), None) => {
            if !(8..=256).contains(&p.chars().count()) {
                errors.insert("password".into(), vec!["must be 8 to 256 characters".into()]);
            }
            Credential::Password(Secret::new(p))
        }
        (None, Some(h)) => {
            if !is_ha1(&h) {
                errors.insert("ha1".into(), vec!["must be 32 hex characters (an MD5 digest)".into()]);
            }
            Credential::Ha1(Secret::new(h))
        }
        (None, None) => Credential::Generate,
    }
}

/// Validates one device; the errors are keyed by field.
fn validate(body: DeviceBody) -> Result<DeviceInput, FieldErrors> {
    let mut errors = FieldErrors::new();
    if let Err(e) = check_device_id(&body.device_id) {
        errors.insert("device_id".into(), vec![e]);
    }
    if let Err(e) = Enterprise::parse(&body.tenant) {
        errors.insert("tenant".into(), vec![e]);
    }
    if let Some(Err(e)) = body.realm.as_deref().map(check_realm) {
        errors.insert("realm".into(), vec![e]);
    }
    if body.description.as_ref().is_some_and(|d| d.chars().count() > 500) {
        errors.insert("description".into(), vec!["must be at most 500 characters".into()]);
    }
    let credential = credential(body.password, body.ha1, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(DeviceInput {
        tenant: body.tenant,
        device_id: body.device_id,
        realm: body.realm,
        description: body.description,
        credential,
    })
}

#[utoipa::path(
    post, path = "/api/v4/manage/devices/", tag = "devices", request_body = DeviceBody,
    responses(
        (status = 201, description = "Provisioned; a generated password and its HA1 are shown only here", body = ProvisionedOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "device_id taken in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<DeviceBody>,
) -> Result<HttpResponse, ApiError> {
    let input = validate(body).map_err(ApiError::Validation)?;
    let provisioned = svc::create(&state, &caller, input).await?;
    Ok(HttpResponse::Created().json(ProvisionedOut::from(provisioned)))
}

#[utoipa::path(
    post, path = "/api/v4/manage/devices/bulk/", tag = "devices", request_body = Vec<DeviceBody>,
    responses(
        (status = 201, description = "All provisioned", body = BulkCreated),
        (status = 400, description = "Per-row errors keyed `{row}.{field}` (row = 0-based array index); nothing written", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Rows whose device_id exists; nothing written", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn bulk(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(caller): Auth,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    require_json(&req)?;
    let body = read_body(&mut payload, BULK_BODY_LIMIT).await?;
    let rows: Vec<serde_json::Value> = parse_json(&body)?;
    if rows.is_empty() || rows.len() > MAX_BULK {
        return Err(ApiError::field(
            "body",
            format!("send a JSON array of 1 to {MAX_BULK} devices"),
        ));
    }
    let mut errors = FieldErrors::new();
    let mut inputs = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        let parsed = serde_json::from_value::<DeviceBody>(row).map_err(|e| {
            let mut f = FieldErrors::new();
            f.insert("row".into(), vec![e.to_string()]);
            f
        });
        match parsed.and_then(validate) {
            Ok(input) => inputs.push(input),
            Err(row_errors) => {
                for (field, messages) in row_errors {
                    errors.insert(format!("{i}.{field}"), messages);
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    match svc::bulk(&state, &caller, inputs).await? {
        BulkOutcome::Created(created) => Ok(HttpResponse::Created().json(BulkCreated {
            created: created.len(),
            results: created.into_iter().map(ProvisionedOut::from).collect(),
        })),
        BulkOutcome::Rejected { rows, conflicts_only } => {
            let mut errors = FieldErrors::new();
            for (i, field, message) in rows {
                errors.entry(format!("{i}.{field}")).or_default().push(message);
            }
            if conflicts_only {
                Err(ApiError::ConflictFields(
                    "Some devices already exist; nothing was written. See `errors` for the rows.".into(),
                    errors,
                ))
            } else {
                Err(ApiError::Validation(errors))
            }
        }
    }
}

#[utoipa::path(
    get, path = "/api/v4/manage/devices/", tag = "devices", params(DeviceQuery),
    responses(
        (status = 200, body = PageOf<DeviceOut>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(caller): Auth,
    q: web::Query<DeviceQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let page = PageRequest::parse(q.page, q.page_size)?;
    let filter = DeviceFilter {
        tenant: q.tenant,
        is_active: q.is_active,
        search: q.search,
    };
    let (devices, count) = svc::list(&state, &caller, filter, page).await?;
    let results = devices.into_iter().map(DeviceOut::from).collect();
    Ok(HttpResponse::Ok().json(PageOf::new(&state, &req, page, count, results)))
}

#[utoipa::path(
    get, path = "/api/v4/manage/devices/{tenant}/{device_id}/", tag = "devices", params(("tenant" = String, Path), ("device_id" = String, Path)),
    responses(
        (status = 200, body = DeviceOut),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, device_id) = path.into_inner();
    let device = svc::get(&state, &caller, &tenant, &device_id).await?;
    Ok(HttpResponse::Ok().json(DeviceOut::from(device)))
}

#[utoipa::path(
    patch, path = "/api/v4/manage/devices/{tenant}/{device_id}/", tag = "devices", params(("tenant" = String, Path), ("device_id" = String, Path)), request_body = PatchDeviceBody,
    responses(
        (status = 200, description = "Changed; a disabled device is refused on its next connection", body = DeviceOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn patch(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<(String, String)>,
    ApiJson(body): ApiJson<PatchDeviceBody>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, device_id) = path.into_inner();
    if body.description.as_ref().is_some_and(|d| d.chars().count() > 500) {
        return Err(ApiError::field("description", "must be at most 500 characters"));
    }
    let patch = DevicePatch {
        is_active: body.is_active,
        description: body.description.map(Some),
        credentials: None,
    };
    let device = svc::patch(&state, &caller, &tenant, &device_id, patch).await?;
    Ok(HttpResponse::Ok().json(DeviceOut::from(device)))
}

#[utoipa::path(
    delete, path = "/api/v4/manage/devices/{tenant}/{device_id}/", tag = "devices", params(("tenant" = String, Path), ("device_id" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, device_id) = path.into_inner();
    svc::delete(&state, &caller, &tenant, &device_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    put, path = "/api/v4/manage/devices/{tenant}/{device_id}/credentials/", tag = "devices", params(("tenant" = String, Path), ("device_id" = String, Path)), request_body = CredentialsBody,
    responses(
        (status = 200, description = "Rotated; the old credentials stop working at once. A generated password and HA1 are shown only here", body = ProvisionedOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn rotate(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<(String, String)>,
    ApiJson(body): ApiJson<CredentialsBody>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, device_id) = path.into_inner();
    let mut errors = FieldErrors::new();
    if let Some(Err(e)) = body.realm.as_deref().map(check_realm) {
        errors.insert("realm".into(), vec![e]);
    }
    let credential = credential(body.password, body.ha1, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let provisioned = svc::rotate(&state, &caller, &tenant, &device_id, body.realm, credential).await?;
    Ok(HttpResponse::Ok().json(ProvisionedOut::from(provisioned)))
}
