//! `/api/v4/manage/products/`: products of sign-based devices (EnOS, Alibaba Cloud IoT) and
//! their devices; and `/auth/register/device`, the HTTPS dynamic registration.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use fleetca_storage::products::{ProductDeviceFilter, ProductFilter};
use fleetca_storage::{Product, ProductDevice};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::{
    CertificateName, Description, DeviceKey, Enterprise, FieldErrors, PageRequest, Problems, ProductKey, Scheme,
    clock_skew, query_text, sign_secret,
};
use crate::error::ApiError;
use crate::fleet::products::{
    CreatedSignDevice, NewProductInput, NewSignDevice, ProductChange, RegisterRefusal, Registration, SignDeviceChange,
};
use crate::http::edge::{PageOf, route, secret_json};
use crate::http::extract::{ApiJson, Caller, Manager, bulk_rows};
use crate::http::problems::{ReadProblems, WriteProblems};
use crate::state::AppState;
use crate::support::Error;

/// Most devices in one bulk request.
pub const MAX_BULK: usize = 10_000;

pub fn routes() -> crate::http::edge::Routes {
    vec![
        (
            "/api/v4/manage/products",
            vec![
                route("GET", || web::get().to(list)),
                route("POST", || web::post().to(create)),
            ],
        ),
        (
            "/api/v4/manage/products/{product_key}",
            vec![
                route("GET", || web::get().to(get)),
                route("PATCH", || web::patch().to(patch)),
                route("DELETE", || web::delete().to(delete)),
            ],
        ),
        (
            "/api/v4/manage/products/{product_key}/rotate-secret",
            vec![route("POST", || web::post().to(rotate_secret))],
        ),
        (
            "/api/v4/manage/products/{product_key}/devices",
            vec![
                route("GET", || web::get().to(list_devices)),
                route("POST", || web::post().to(create_device)),
            ],
        ),
        // Before `{device_key}`: actix tries resources in order.
        (
            "/api/v4/manage/products/{product_key}/devices/bulk",
            vec![route("POST", || web::post().to(bulk_devices))],
        ),
        (
            "/api/v4/manage/products/{product_key}/devices/{device_key}",
            vec![
                route("GET", || web::get().to(get_device)),
                route("PATCH", || web::patch().to(patch_device)),
                route("DELETE", || web::delete().to(delete_device)),
            ],
        ),
        (
            "/api/v4/manage/products/{product_key}/devices/{device_key}/rotate-secret",
            vec![route("POST", || web::post().to(rotate_device_secret))],
        ),
        (
            "/api/v4/manage/products/{product_key}/devices/{device_key}/reset-activation",
            vec![route("POST", || web::post().to(reset_activation))],
        ),
        (
            "/auth/register/device",
            vec![route("POST", || web::post().to(register))],
        ),
    ]
}

/// The sign-based family of a product.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, Debug)]
#[serde(rename_all = "lowercase")]
pub enum SchemeName {
    /// EnOS: password = upper-case hex SHA-256(content + secret).
    Enos,
    /// Alibaba Cloud IoT: password = hex HMAC-SHA1/SHA256/MD5(device secret, content).
    Aliyun,
}

impl From<SchemeName> for Scheme {
    fn from(s: SchemeName) -> Self {
        match s {
            SchemeName::Enos => Scheme::Enos,
            SchemeName::Aliyun => Scheme::Aliyun,
        }
    }
}

/// A product as the API shows it. Never its secret after creation.
#[derive(Serialize, ToSchema)]
pub struct ProductOut {
    pub product_key: String,
    pub name: String,
    pub enterprise: String,
    /// `enos` or `aliyun`.
    pub scheme: String,
    pub dynamic_activation: bool,
    /// `null`: the timestamp in the client id is not checked.
    pub max_clock_skew_seconds: Option<i64>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Product> for ProductOut {
    fn from(p: Product) -> Self {
        Self {
            product_key: p.product_key,
            name: p.name,
            enterprise: p.enterprise,
            scheme: p.scheme,
            dynamic_activation: p.dynamic_activation,
            max_clock_skew_seconds: p.max_clock_skew_seconds,
            is_active: p.is_active,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A product with its secret: in the create and rotate responses only.
#[derive(Serialize, ToSchema)]
pub struct ProductWithSecret {
    #[serde(flatten)]
    pub product: ProductOut,
    /// The product secret fleetca generated. Shown in this response only; store it now.
    /// Absent when the request gave one (a given secret is never echoed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_secret: Option<String>,
}

/// A device of a product as the API shows it. Never its secret after creation.
#[derive(Serialize, ToSchema)]
pub struct SignDeviceOut {
    pub product_key: String,
    /// Alibaba's `deviceName`.
    pub device_key: String,
    pub description: Option<String>,
    pub is_active: bool,
    /// Whether the device has connected with its device secret (or obtained it by
    /// registration); it cannot activate again until reset.
    pub activated: bool,
    pub activated_at: Option<DateTime<Utc>>,
    /// The MQTT username the device uses.
    #[schema(example = "dev-001&a1b2c3d4e5f")]
    pub mqtt_username: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ProductDevice> for SignDeviceOut {
    fn from(d: ProductDevice) -> Self {
        Self {
            mqtt_username: format!("{}&{}", d.device_key, d.product_key),
            product_key: d.product_key,
            device_key: d.device_key,
            description: d.description,
            is_active: d.is_active,
            activated: d.activated_at.is_some(),
            activated_at: d.activated_at,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// A device just registered; `device_secret` when fleetca generated it, in this response only.
#[derive(Serialize, ToSchema)]
pub struct CreatedSignDeviceOut {
    #[serde(flatten)]
    pub device: SignDeviceOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_secret: Option<String>,
}

impl From<CreatedSignDevice> for CreatedSignDeviceOut {
    fn from(c: CreatedSignDevice) -> Self {
        Self {
            device: c.device.into(),
            device_secret: c.generated_secret,
        }
    }
}

/// A device with its new secret: the rotate response.
#[derive(Serialize, ToSchema)]
pub struct RotatedSignDevice {
    #[serde(flatten)]
    pub device: SignDeviceOut,
    pub device_secret: String,
}

/// The bulk response.
#[derive(Serialize, ToSchema)]
pub struct BulkSignDevices {
    pub created: usize,
    pub results: Vec<CreatedSignDeviceOut>,
}

/// Create a product.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProductBody {
    /// 4–32 of `[A-Za-z0-9_-]` (EnOS keys have 8, Alibaba ProductKeys 11); generated when absent.
    #[schema(pattern = "^[A-Za-z0-9_-]{4,32}$")]
    pub product_key: Option<String>,
    /// 1–200 characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub name: String,
    /// Defaults to the caller's.
    #[schema(pattern = "^[a-z0-9][a-z0-9.-]{0,63}$")]
    pub enterprise: Option<String>,
    pub scheme: SchemeName,
    /// Devices may obtain their secret with the product secret (EnOS `securemode=3` over
    /// MQTT, or the HTTPS registration). Default false.
    #[serde(default)]
    pub dynamic_activation: bool,
    /// Allowed distance of the client id's timestamp from server time, 1–86400 s; `null`
    /// or absent (the default) turns the check off, as on the platforms, whose SDKs send
    /// their boot-time password on every reconnect.
    #[serde(default = "default_skew", deserialize_with = "crate::http::whole::nullable")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 86400)]
    pub max_clock_skew_seconds: Option<Option<i64>>,
    /// The product secret the platform issued, when moving a product over: 16–128
    /// printable ASCII characters without spaces. Sealed, and never echoed. Generated (and
    /// returned once) when absent.
    #[schema(value_type = Option<String>, min_length = 16, max_length = 128, pattern = "^[!-~]{16,128}$")]
    pub product_secret: Option<String>,
}

fn default_skew() -> Option<Option<i64>> {
    None
}

/// Change a product.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchProductBody {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub name: Option<String>,
    pub is_active: Option<bool>,
    pub dynamic_activation: Option<bool>,
    /// `null` turns the timestamp check off.
    #[serde(default, deserialize_with = "crate::http::whole::nullable")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 86400)]
    pub max_clock_skew_seconds: Option<Option<i64>>,
}

/// Register a device of a product.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignDeviceBody {
    /// 1–64 of `[A-Za-z0-9_.:@-]`, unique within the product.
    #[schema(pattern = "^[A-Za-z0-9_.:@-]{1,64}$")]
    pub device_key: String,
    /// 16–128 printable ASCII characters without spaces; generated when absent (and then returned once).
    #[schema(min_length = 16, max_length = 128, pattern = "^[!-~]{16,128}$")]
    pub device_secret: Option<String>,
    #[schema(max_length = 500, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub description: Option<String>,
}

/// Change a device of a product.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchSignDeviceBody {
    pub is_active: Option<bool>,
    #[schema(max_length = 500, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub description: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u64>,
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u64>,
    #[param(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub enterprise: Option<String>,
    /// `enos` or `aliyun`.
    pub scheme: Option<SchemeName>,
    /// product_key or name contains this.
    #[param(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub search: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignDeviceQuery {
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u64>,
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u64>,
    pub is_active: Option<bool>,
    /// device_key contains this.
    #[param(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub search: Option<String>,
}

fn product_key(raw: &str) -> Result<String, ApiError> {
    ProductKey::parse(raw)
        .map(ProductKey::into_inner)
        .map_err(|_| Error::NotFound("product").into())
}

fn device_path(path: web::Path<(String, String)>) -> Result<(String, String), ApiError> {
    let (p, d) = path.into_inner();
    let p = product_key(&p)?;
    DeviceKey::parse(&d).map_err(|_| ApiError::from(Error::NotFound("device")))?;
    Ok((p, d))
}

fn validate_device(body: SignDeviceBody) -> Result<NewSignDevice, FieldErrors> {
    let mut problems = Problems::new();
    let device_key = problems.check("device_key", DeviceKey::parse(&body.device_key));
    let device_secret = body
        .device_secret
        .and_then(|s| problems.check("device_secret", sign_secret(&s)));
    let description = body
        .description
        .and_then(|d| problems.check("description", Description::parse(&d)));
    match device_key {
        Some(device_key) if problems.is_empty() => Ok(NewSignDevice {
            device_key,
            device_secret,
            description,
        }),
        _ => Err(problems.into_inner()),
    }
}

#[utoipa::path(
    post, path = "/api/v4/manage/products/", tag = "products", request_body = CreateProductBody,
    responses((status = 201, description = "Created; a generated product_secret is shown only here, a given one never", body = ProductWithSecret), WriteProblems),
    security(("bearer" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    ApiJson(body): ApiJson<CreateProductBody>,
) -> Result<HttpResponse, ApiError> {
    let mut problems = Problems::new();
    let key = body
        .product_key
        .as_deref()
        .and_then(|k| problems.check("product_key", ProductKey::parse(k)));
    let name = problems.check("name", CertificateName::parse(&body.name));
    let enterprise = body
        .enterprise
        .as_deref()
        .and_then(|e| problems.check("enterprise", Enterprise::parse(e)));
    let skew = problems.check(
        "max_clock_skew_seconds",
        clock_skew(body.max_clock_skew_seconds.unwrap_or(None)),
    );
    let product_secret = body
        .product_secret
        .as_deref()
        .and_then(|s| problems.check("product_secret", sign_secret(s)));
    problems.finish()?;
    let (Some(name), Some(max_clock_skew_seconds)) = (name, skew) else {
        return Err(ApiError::field("name", "is required"));
    };
    let input = NewProductInput {
        product_key: key,
        name,
        enterprise,
        scheme: body.scheme.into(),
        dynamic_activation: body.dynamic_activation,
        max_clock_skew_seconds,
        product_secret,
    };
    let (product, secret) = state.products.create(&caller, input).await?;
    Ok(secret_json(
        StatusCode::CREATED,
        &ProductWithSecret {
            product: product.into(),
            product_secret: secret,
        },
    ))
}

#[utoipa::path(
    get, path = "/api/v4/manage/products/", tag = "products", params(ProductQuery),
    responses((status = 200, body = PageOf<ProductOut>), ReadProblems),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller<Manager>,
    q: web::Query<ProductQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let page = PageRequest::parse(q.page, q.page_size)?;
    let mut problems = Problems::new();
    let filter = ProductFilter {
        enterprise: q.enterprise.and_then(|e| problems.check("enterprise", query_text(&e))),
        scheme: q.scheme.map(|s| Scheme::from(s).as_str().to_owned()),
        search: q.search.and_then(|s| problems.check("search", query_text(&s))),
    };
    problems.finish()?;
    let listing = state.products.list(&caller, filter, page).await?;
    Ok(HttpResponse::Ok().json(PageOf::<ProductOut>::new(&state, &req, page, listing)))
}

#[utoipa::path(
    get, path = "/api/v4/manage/products/{product_key}/", tag = "products", params(("product_key" = String, Path)),
    responses((status = 200, body = ProductOut), ReadProblems),
    security(("bearer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let product = state.products.get(&caller, &product_key(&path)?).await?;
    Ok(HttpResponse::Ok().json(ProductOut::from(product)))
}

#[utoipa::path(
    patch, path = "/api/v4/manage/products/{product_key}/", tag = "products", params(("product_key" = String, Path)), request_body = PatchProductBody,
    responses((status = 200, description = "Changed; a disabled product's devices are refused at once", body = ProductOut), WriteProblems),
    security(("bearer" = []))
)]
pub async fn patch(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    path: web::Path<String>,
    ApiJson(body): ApiJson<PatchProductBody>,
) -> Result<HttpResponse, ApiError> {
    let key = product_key(&path)?;
    let mut problems = Problems::new();
    let name = body
        .name
        .and_then(|n| problems.check("name", CertificateName::parse(&n)));
    let skew = match body.max_clock_skew_seconds {
        Some(v) => problems.check("max_clock_skew_seconds", clock_skew(v)),
        None => None,
    };
    problems.finish()?;
    let change = ProductChange {
        name,
        is_active: body.is_active,
        dynamic_activation: body.dynamic_activation,
        max_clock_skew_seconds: body.max_clock_skew_seconds.map(|_| skew.flatten()),
    };
    let product = state.products.change(&caller, &key, change).await?;
    Ok(HttpResponse::Ok().json(ProductOut::from(product)))
}

#[utoipa::path(
    delete, path = "/api/v4/manage/products/{product_key}/", tag = "products", params(("product_key" = String, Path)),
    responses((status = 204, description = "Deleted with its devices"), WriteProblems),
    security(("bearer" = []))
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.products.delete(&caller, &product_key(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post, path = "/api/v4/manage/products/{product_key}/rotate-secret/", tag = "products", params(("product_key" = String, Path)),
    responses((status = 200, description = "The new product secret, shown only here", body = ProductWithSecret), WriteProblems),
    security(("bearer" = []))
)]
pub async fn rotate_secret(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (product, secret) = state.products.rotate_secret(&caller, &product_key(&path)?).await?;
    Ok(secret_json(
        StatusCode::OK,
        &ProductWithSecret {
            product: product.into(),
            product_secret: Some(secret),
        },
    ))
}

#[utoipa::path(
    post, path = "/api/v4/manage/products/{product_key}/devices/", tag = "products", params(("product_key" = String, Path)), request_body = SignDeviceBody,
    responses((status = 201, description = "Registered; a generated device_secret is shown only here", body = CreatedSignDeviceOut), WriteProblems),
    security(("bearer" = []))
)]
pub async fn create_device(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    path: web::Path<String>,
    ApiJson(body): ApiJson<SignDeviceBody>,
) -> Result<HttpResponse, ApiError> {
    let key = product_key(&path)?;
    let input = validate_device(body)?;
    let created = state.products.create_device(&caller, &key, input).await?;
    Ok(secret_json(StatusCode::CREATED, &CreatedSignDeviceOut::from(created)))
}

#[utoipa::path(
    post, path = "/api/v4/manage/products/{product_key}/devices/bulk/", tag = "products", params(("product_key" = String, Path)), request_body = Vec<SignDeviceBody>,
    responses((status = 201, description = "All registered; generated secrets are shown only here", body = BulkSignDevices), WriteProblems),
    security(("bearer" = []))
)]
pub async fn bulk_devices(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller<Manager>,
    path: web::Path<String>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let key = product_key(&path)?;
    let inputs = bulk_rows(&req, &mut payload, MAX_BULK, validate_device).await?;
    let created = state.products.bulk_devices(&caller, &key, inputs).await?;
    Ok(secret_json(
        StatusCode::CREATED,
        &BulkSignDevices {
            created: created.len(),
            results: created.into_iter().map(CreatedSignDeviceOut::from).collect(),
        },
    ))
}

#[utoipa::path(
    get, path = "/api/v4/manage/products/{product_key}/devices/", tag = "products", params(("product_key" = String, Path), SignDeviceQuery),
    responses((status = 200, body = PageOf<SignDeviceOut>), ReadProblems),
    security(("bearer" = []))
)]
pub async fn list_devices(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller<Manager>,
    path: web::Path<String>,
    q: web::Query<SignDeviceQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = product_key(&path)?;
    let q = q.into_inner();
    let page = PageRequest::parse(q.page, q.page_size)?;
    let mut problems = Problems::new();
    let filter = ProductDeviceFilter {
        is_active: q.is_active,
        search: q.search.and_then(|s| problems.check("search", query_text(&s))),
    };
    problems.finish()?;
    let listing = state.products.list_devices(&caller, &key, filter, page).await?;
    Ok(HttpResponse::Ok().json(PageOf::<SignDeviceOut>::new(&state, &req, page, listing)))
}

#[utoipa::path(
    get, path = "/api/v4/manage/products/{product_key}/devices/{device_key}/", tag = "products", params(("product_key" = String, Path), ("device_key" = String, Path)),
    responses((status = 200, body = SignDeviceOut), ReadProblems),
    security(("bearer" = []))
)]
pub async fn get_device(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (p, d) = device_path(path)?;
    let device = state.products.get_device(&caller, &p, &d).await?;
    Ok(HttpResponse::Ok().json(SignDeviceOut::from(device)))
}

#[utoipa::path(
    patch, path = "/api/v4/manage/products/{product_key}/devices/{device_key}/", tag = "products", params(("product_key" = String, Path), ("device_key" = String, Path)), request_body = PatchSignDeviceBody,
    responses((status = 200, description = "Changed; a disabled device is refused at once", body = SignDeviceOut), WriteProblems),
    security(("bearer" = []))
)]
pub async fn patch_device(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    path: web::Path<(String, String)>,
    ApiJson(body): ApiJson<PatchSignDeviceBody>,
) -> Result<HttpResponse, ApiError> {
    let (p, d) = device_path(path)?;
    let mut problems = Problems::new();
    let description = body
        .description
        .and_then(|x| problems.check("description", Description::parse(&x)));
    problems.finish()?;
    let change = SignDeviceChange {
        is_active: body.is_active,
        description,
    };
    let device = state.products.change_device(&caller, &p, &d, change).await?;
    Ok(HttpResponse::Ok().json(SignDeviceOut::from(device)))
}

#[utoipa::path(
    delete, path = "/api/v4/manage/products/{product_key}/devices/{device_key}/", tag = "products", params(("product_key" = String, Path), ("device_key" = String, Path)),
    responses((status = 204, description = "Deleted"), WriteProblems),
    security(("bearer" = []))
)]
pub async fn delete_device(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (p, d) = device_path(path)?;
    state.products.delete_device(&caller, &p, &d).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post, path = "/api/v4/manage/products/{product_key}/devices/{device_key}/rotate-secret/", tag = "products", params(("product_key" = String, Path), ("device_key" = String, Path)),
    responses((status = 200, description = "The new device secret, shown only here; the old one stops working at once", body = RotatedSignDevice), WriteProblems),
    security(("bearer" = []))
)]
pub async fn rotate_device_secret(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (p, d) = device_path(path)?;
    let (device, secret) = state.products.rotate_device_secret(&caller, &p, &d).await?;
    Ok(secret_json(
        StatusCode::OK,
        &RotatedSignDevice {
            device: device.into(),
            device_secret: secret,
        },
    ))
}

#[utoipa::path(
    post, path = "/api/v4/manage/products/{product_key}/devices/{device_key}/reset-activation/", tag = "products", params(("product_key" = String, Path), ("device_key" = String, Path)),
    responses((status = 200, description = "The device may activate again", body = SignDeviceOut), WriteProblems),
    security(("bearer" = []))
)]
pub async fn reset_activation(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (p, d) = device_path(path)?;
    let device = state.products.reset_activation(&caller, &p, &d).await?;
    Ok(HttpResponse::Ok().json(SignDeviceOut::from(device)))
}

/// The registration form (`application/x-www-form-urlencoded`).
#[derive(Deserialize, ToSchema, Default)]
pub struct RegisterForm {
    #[serde(rename = "productKey")]
    pub product_key: Option<String>,
    #[serde(rename = "deviceName")]
    pub device_name: Option<String>,
    pub random: Option<String>,
    /// `hmacmd5`, `hmacsha1` or `hmacsha256`.
    #[serde(rename = "signMethod")]
    pub sign_method: Option<String>,
    /// hex HMAC(key = product secret, `deviceName{…}productKey{…}random{…}`).
    pub sign: Option<String>,
}

/// What a registration returns.
#[derive(Serialize, ToSchema)]
pub struct RegisterData {
    #[serde(rename = "productKey")]
    pub product_key: String,
    #[serde(rename = "deviceName")]
    pub device_name: String,
    #[serde(rename = "deviceSecret")]
    pub device_secret: String,
}

/// The registration answer: `code` 200 with `data`, or another code with a message.
#[derive(Serialize, ToSchema)]
pub struct RegisterResponse {
    /// 200 success; 400 a missing or malformed field; 403 refused (unknown product or
    /// device, no dynamic activation, already activated, disabled, or a wrong sign); 429
    /// too many registrations for this product; 503 retry later.
    pub code: u16,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<RegisterData>,
}

/// HTTPS dynamic registration, as Alibaba Cloud IoT's: the answer is always HTTP 200 with
/// a JSON `code`, so device SDKs read one shape.
#[utoipa::path(
    post, path = "/auth/register/device", tag = "products",
    request_body(content = RegisterForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`code` 200 with the device secret, or an error code", body = RegisterResponse))
)]
pub async fn register(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let form: RegisterForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let registration = Registration {
        peer: crate::http::extract::peer_ip(&req),
        product_key: form.product_key.unwrap_or_default(),
        device_name: form.device_name.unwrap_or_default(),
        random: form.random.unwrap_or_default(),
        sign_method: form.sign_method.unwrap_or_default(),
        sign: form.sign.unwrap_or_default(),
    };
    let response = match state.products.register(&registration).await {
        Ok((product_key, device_name, device_secret)) => RegisterResponse {
            code: 200,
            message: "success".into(),
            data: Some(RegisterData {
                product_key,
                device_name,
                device_secret,
            }),
        },
        Err(refusal) => {
            let (code, message) = match refusal {
                RegisterRefusal::BadRequest(field) => (400, format!("{field} is missing or malformed")),
                RegisterRefusal::Denied => (403, "registration refused".to_owned()),
                RegisterRefusal::RateLimited => {
                    (429, "too many registrations for this product; retry later".to_owned())
                }
                RegisterRefusal::Unavailable => (503, "fleetca cannot decide right now; retry".to_owned()),
            };
            RegisterResponse {
                code,
                message,
                data: None,
            }
        }
    };
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(response)
}
