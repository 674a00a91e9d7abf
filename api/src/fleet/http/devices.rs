//! `/api/v4/manage/devices/`: device provisioning.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use fleetca_storage::Device;
use fleetca_storage::devices::DeviceFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::{Description, DeviceId, FieldErrors, PageRequest, Problems, Realm, Tenant, query_text};
use crate::error::ApiError;
use crate::fleet::devices::DeviceCredential;
use crate::fleet::devices::{DeviceChange, DeviceInput, Provisioned};
use crate::http::edge::{PageOf, route, secret_json};
use crate::http::extract::{ApiJson, Caller, Manager, bulk_rows};
use crate::http::problems::{ReadProblems, WriteProblems};
use crate::pki::http::certificates::{CertificateOut, RevokeBody, revoke_reason};
use crate::state::AppState;

/// Most devices in one bulk request.
pub const MAX_BULK: usize = 10_000;

pub fn routes() -> crate::http::edge::Routes {
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
        (
            "/api/v4/manage/devices/{tenant}/{device_id}/certificates",
            vec![route("GET", || web::get().to(certificates))],
        ),
        (
            "/api/v4/manage/devices/{tenant}/{device_id}/certificates/{id}/revoke",
            vec![route("POST", || web::post().to(revoke_certificate))],
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
        let (password, ha1) = p
            .generated
            .map(|g| (Some(g.password), Some(g.ha1)))
            .unwrap_or((None, None));
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
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    pub device_id: String,
    /// The tenant (an enterprise code).
    #[schema(pattern = "^[a-z0-9][a-z0-9.-]{0,63}$")]
    pub tenant: String,
    /// HA1 = MD5(device_id:realm:password) is stored; the password is not.
    #[schema(min_length = 8, max_length = 256)]
    pub password: Option<String>,
    /// An HA1 as 32 hex characters.
    #[schema(pattern = "^[0-9A-Fa-f]{32}$")]
    pub ha1: Option<String>,
    /// Digest realm (default: the tenant).
    #[schema(min_length = 1, max_length = 128, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub realm: Option<String>,
    #[schema(max_length = 500, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub description: Option<String>,
}

/// Rotate a device's credentials (same rules as creation).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CredentialsBody {
    #[schema(min_length = 8, max_length = 256)]
    pub password: Option<String>,
    #[schema(pattern = "^[0-9A-Fa-f]{32}$")]
    pub ha1: Option<String>,
    #[schema(min_length = 1, max_length = 128, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub realm: Option<String>,
}

/// Change a device.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchDeviceBody {
    pub is_active: Option<bool>,
    #[schema(max_length = 500, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub description: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceQuery {
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u64>,
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u64>,
    #[param(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub tenant: Option<String>,
    pub is_active: Option<bool>,
    /// device_id contains this.
    #[param(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub search: Option<String>,
}

/// Validates one device; the errors are keyed by field.
fn validate(body: DeviceBody) -> Result<DeviceInput, FieldErrors> {
    let mut problems = Problems::new();
    let device_id = problems.check("device_id", DeviceId::parse(&body.device_id));
    let tenant = problems.check("tenant", Tenant::parse(&body.tenant));
    let realm = body.realm.and_then(|r| problems.check("realm", Realm::parse(&r)));
    let description = body
        .description
        .and_then(|d| problems.check("description", Description::parse(&d)));
    let credential = DeviceCredential::parse(body.password, body.ha1, &mut problems);
    match (device_id, tenant) {
        (Some(device_id), Some(tenant)) if problems.is_empty() => Ok(DeviceInput {
            tenant,
            device_id,
            realm,
            description,
            credential,
        }),
        _ => Err(problems.into_inner()),
    }
}

/// Path segments name a device only if they could be one; anything else names nothing.
fn device_path(path: web::Path<(String, String)>) -> Result<(String, String), ApiError> {
    let (tenant, device_id) = path.into_inner();
    if Tenant::parse(&tenant).is_err() || DeviceId::parse(&device_id).is_err() {
        return Err(crate::support::Error::NotFound("device").into());
    }
    Ok((tenant, device_id))
}

#[utoipa::path(
    post, path = "/api/v4/manage/devices/", tag = "devices", request_body = DeviceBody,
    responses(
        (status = 201, description = "Provisioned; a generated password and its HA1 are shown only here", body = ProvisionedOut),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    ApiJson(body): ApiJson<DeviceBody>,
) -> Result<HttpResponse, ApiError> {
    let input = validate(body)?;
    let provisioned = state.devices.create(&caller, input).await?;
    Ok(secret_json(StatusCode::CREATED, &ProvisionedOut::from(provisioned)))
}

#[utoipa::path(
    post, path = "/api/v4/manage/devices/bulk/", tag = "devices", request_body = Vec<DeviceBody>,
    responses(
        (status = 201, description = "All provisioned; generated passwords and HA1s are shown only here", body = BulkCreated),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn bulk(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller<Manager>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let inputs = bulk_rows(&req, &mut payload, MAX_BULK, validate).await?;
    let created = state.devices.bulk(&caller, inputs).await?;
    Ok(secret_json(
        StatusCode::CREATED,
        &BulkCreated {
            created: created.len(),
            results: created.into_iter().map(ProvisionedOut::from).collect(),
        },
    ))
}

#[utoipa::path(
    get, path = "/api/v4/manage/devices/", tag = "devices", params(DeviceQuery),
    responses((status = 200, body = PageOf<DeviceOut>), ReadProblems),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller<Manager>,
    q: web::Query<DeviceQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let page = PageRequest::parse(q.page, q.page_size)?;
    let mut problems = Problems::new();
    let filter = DeviceFilter {
        tenant: q.tenant.and_then(|t| problems.check("tenant", query_text(&t))),
        is_active: q.is_active,
        search: q.search.and_then(|s| problems.check("search", query_text(&s))),
    };
    problems.finish()?;
    let devices = state.devices.list(&caller, filter, page).await?;
    Ok(HttpResponse::Ok().json(PageOf::<DeviceOut>::new(&state, &req, page, devices)))
}

#[utoipa::path(
    get, path = "/api/v4/manage/devices/{tenant}/{device_id}/", tag = "devices", params(("tenant" = String, Path), ("device_id" = String, Path)),
    responses((status = 200, body = DeviceOut), ReadProblems),
    security(("bearer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, device_id) = device_path(path)?;
    let device = state.devices.get(&caller, &tenant, &device_id).await?;
    Ok(HttpResponse::Ok().json(DeviceOut::from(device)))
}

#[utoipa::path(
    patch, path = "/api/v4/manage/devices/{tenant}/{device_id}/", tag = "devices", params(("tenant" = String, Path), ("device_id" = String, Path)), request_body = PatchDeviceBody,
    responses(
        (status = 200, description = "Changed; a disabled device is refused on its next connection", body = DeviceOut),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn patch(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    path: web::Path<(String, String)>,
    ApiJson(body): ApiJson<PatchDeviceBody>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, device_id) = device_path(path)?;
    let mut problems = Problems::new();
    let description = body
        .description
        .and_then(|d| problems.check("description", Description::parse(&d)));
    problems.finish()?;
    let change = DeviceChange {
        is_active: body.is_active,
        description,
    };
    let device = state.devices.change(&caller, &tenant, &device_id, change).await?;
    Ok(HttpResponse::Ok().json(DeviceOut::from(device)))
}

#[utoipa::path(
    delete, path = "/api/v4/manage/devices/{tenant}/{device_id}/", tag = "devices", params(("tenant" = String, Path), ("device_id" = String, Path)),
    responses((status = 204, description = "Deleted"), WriteProblems),
    security(("bearer" = []))
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, device_id) = device_path(path)?;
    state.devices.delete(&caller, &tenant, &device_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    put, path = "/api/v4/manage/devices/{tenant}/{device_id}/credentials/", tag = "devices", params(("tenant" = String, Path), ("device_id" = String, Path)), request_body = CredentialsBody,
    responses(
        (status = 200, description = "Rotated; the old credentials stop working at once. A generated password and HA1 are shown only here", body = ProvisionedOut),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn rotate(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    path: web::Path<(String, String)>,
    ApiJson(body): ApiJson<CredentialsBody>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, device_id) = device_path(path)?;
    let mut problems = Problems::new();
    let realm = body.realm.and_then(|r| problems.check("realm", Realm::parse(&r)));
    let credential = DeviceCredential::parse(body.password, body.ha1, &mut problems);
    problems.finish()?;
    let provisioned = state
        .devices
        .rotate(&caller, &tenant, &device_id, realm, credential)
        .await?;
    Ok(secret_json(StatusCode::OK, &ProvisionedOut::from(provisioned)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceCertificateQuery {
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u64>,
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u64>,
}

/// The device's certificates (enrolled over EST), newest first.
#[utoipa::path(
    get, path = "/api/v4/manage/devices/{tenant}/{device_id}/certificates/", tag = "devices",
    params(("tenant" = String, Path), ("device_id" = String, Path), DeviceCertificateQuery),
    responses((status = 200, body = PageOf<CertificateOut>), ReadProblems),
    security(("bearer" = []))
)]
pub async fn certificates(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller<Manager>,
    path: web::Path<(String, String)>,
    q: web::Query<DeviceCertificateQuery>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, device_id) = device_path(path)?;
    let page = PageRequest::parse(q.page, q.page_size)?;
    let listing = state.devices.certificates(&caller, &tenant, &device_id, page).await?;
    Ok(HttpResponse::Ok().json(PageOf::<CertificateOut>::new(&state, &req, page, listing)))
}

/// Revokes one of the device's certificates.
#[utoipa::path(
    post, path = "/api/v4/manage/devices/{tenant}/{device_id}/certificates/{id}/revoke/", tag = "devices",
    params(("tenant" = String, Path), ("device_id" = String, Path), ("id" = uuid::Uuid, Path)),
    request_body(content = Option<RevokeBody>, description = "Optional; an empty body revokes with reason `unspecified`"),
    responses(
        (status = 200, description = "Revoked, and a CRL listing it published; revoking again returns the same record", body = CertificateOut),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn revoke_certificate(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller<Manager>,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (tenant, device_id, id) = path.into_inner();
    let (tenant, device_id) = device_path(web::Path::from((tenant, device_id)))?;
    let id = crate::http::edge::parse_id(&id, "certificate")?;
    let reason = revoke_reason(&req, &body)?;
    let record = state
        .devices
        .revoke_certificate(&caller, &tenant, &device_id, id, reason)
        .await?;
    Ok(HttpResponse::Ok().json(CertificateOut::new(record, true)))
}
