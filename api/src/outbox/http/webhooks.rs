//! `/api/v4/manage/webhooks/`: endpoints that receive fleetca's events, their delivery logs
//! and test events (see `service::webhooks`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use fleetca_storage::webhooks::{Delivery, Webhook};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::{Enterprise, EventKind, PageRequest, Problems};
use crate::error::ApiError;
use crate::http::edge::{PageOf, parse_id, route, secret_json};
use crate::http::extract::{ApiJson, Caller, Manager};
use crate::http::problems::{ReadProblems, WriteProblems};
use crate::outbox::webhooks::{CreateWebhook, WebhookChange};
use crate::state::AppState;

pub fn routes() -> crate::http::edge::Routes {
    vec![
        (
            "/api/v4/manage/webhooks",
            vec![
                route("GET", || web::get().to(list)),
                route("POST", || web::post().to(create)),
            ],
        ),
        (
            "/api/v4/manage/webhooks/{id}",
            vec![
                route("GET", || web::get().to(get)),
                route("PATCH", || web::patch().to(patch)),
                route("DELETE", || web::delete().to(delete)),
            ],
        ),
        (
            "/api/v4/manage/webhooks/{id}/rotate-secret",
            vec![route("POST", || web::post().to(rotate_secret))],
        ),
        (
            "/api/v4/manage/webhooks/{id}/test",
            vec![route("POST", || web::post().to(test))],
        ),
        (
            "/api/v4/manage/webhooks/{id}/deliveries",
            vec![route("GET", || web::get().to(deliveries))],
        ),
        (
            "/api/v4/manage/webhooks/{id}/deliveries/{delivery}/redeliver",
            vec![route("POST", || web::post().to(redeliver))],
        ),
    ]
}

/// The events an endpoint can subscribe to, in the OpenAPI document: a string of
/// [`EventKind`]'s names. `crl.publication_failed` and `broker.revocation_not_enforced` concern
/// fleetca itself: only endpoints of every enterprise (an admin's) receive them.
impl utoipa::PartialSchema for EventKind {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(EventKind::ALL.iter().map(|e| e.as_str())))
            .description(Some("An event an endpoint can subscribe to."))
            .into()
    }
}

impl ToSchema for EventKind {
    fn name() -> std::borrow::Cow<'static, str> {
        "EventType".into()
    }
}

fn names(events: &[EventKind]) -> Vec<String> {
    events.iter().map(|e| e.as_str().to_owned()).collect()
}

/// Create a webhook endpoint.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookBody {
    /// Where events are POSTed: an `https://` (or `http://`) URL on a public address.
    #[schema(example = "https://hooks.example.com/fleetca")]
    pub url: String,
    /// The events wanted (at least one).
    #[schema(min_items = 1)]
    pub events: Vec<EventKind>,
    /// Only this enterprise's events. A manager's endpoint is always its enterprise's; an
    /// admin may leave it out for every enterprise's events and fleetca's own.
    #[schema(example = "nnn.acme", pattern = "^[a-z0-9][a-z0-9.-]{0,63}$")]
    pub enterprise: Option<String>,
    /// Up to 200 characters.
    #[serde(default)]
    #[schema(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub description: String,
}

/// Change a webhook endpoint.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWebhookBody {
    pub url: Option<String>,
    #[schema(min_items = 1)]
    pub events: Option<Vec<EventKind>>,
    #[schema(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub description: Option<String>,
    /// A paused endpoint gets no new events.
    pub is_active: Option<bool>,
}

/// A webhook endpoint as the API shows it. Never includes its secret.
#[derive(Serialize, ToSchema)]
pub struct WebhookOut {
    pub id: uuid::Uuid,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    /// `null`: every enterprise.
    pub enterprise: Option<String>,
    pub is_active: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Webhook> for WebhookOut {
    fn from(w: Webhook) -> Self {
        Self {
            events: w.events.split(',').map(str::to_owned).collect(),
            id: w.id,
            url: w.url,
            description: w.description,
            enterprise: w.enterprise,
            is_active: w.is_active,
            created_by: w.created_by,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// A webhook endpoint with its signing secret: only in the create and rotate-secret responses.
#[derive(Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: WebhookOut,
    /// The Standard Webhooks signing secret (`whsec_…`). Shown in this response only.
    pub secret: String,
}

/// One event for one endpoint, and how its delivery went.
#[derive(Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: i64,
    pub webhook_id: uuid::Uuid,
    /// The `webhook-id` header: the same on every attempt, so receivers can drop duplicates.
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed` (given up after the retry period).
    pub status: String,
    pub attempts: i32,
    /// When the next attempt is due (pending ones).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's last HTTP status.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// The body as signed and sent.
    pub payload: serde_json::Value,
}

impl From<Delivery> for DeliveryOut {
    fn from(d: Delivery) -> Self {
        Self {
            next_attempt_at: (d.status == fleetca_storage::webhooks::PENDING).then_some(d.next_attempt_at),
            payload: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
            id: d.id,
            webhook_id: d.webhook_id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: d.created_at,
            delivered_at: d.delivered_at,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u64>,
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u64>,
}

/// A delivery's status.
#[derive(Deserialize, ToSchema, Clone, Copy, Debug)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u64>,
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u64>,
    /// Only deliveries in this state.
    pub status: Option<DeliveryStatus>,
}

fn check_description(problems: &mut Problems, description: &str) {
    if description.chars().count() > 200 || description.chars().any(char::is_control) {
        problems.add(
            "description",
            "must be at most 200 characters, without control characters",
        );
    }
}

#[utoipa::path(
    post, path = "/api/v4/manage/webhooks/", tag = "webhooks", request_body = CreateWebhookBody,
    responses(
        (status = 201, description = "Created; the signing secret is shown only here", body = WebhookWithSecret),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    ApiJson(body): ApiJson<CreateWebhookBody>,
) -> Result<HttpResponse, ApiError> {
    let mut problems = Problems::new();
    let enterprise = body
        .enterprise
        .as_deref()
        .and_then(|e| problems.check("enterprise", Enterprise::parse(e)))
        .map(|e| e.as_str().to_owned());
    check_description(&mut problems, &body.description);
    problems.finish()?;
    let input = CreateWebhook {
        url: body.url,
        description: body.description,
        events: names(&body.events),
        enterprise,
    };
    let (webhook, secret) = state.webhooks.create(&caller, input).await?;
    Ok(secret_json(
        StatusCode::CREATED,
        &WebhookWithSecret {
            webhook: webhook.into(),
            secret,
        },
    ))
}

#[utoipa::path(
    get, path = "/api/v4/manage/webhooks/", tag = "webhooks", params(PageQuery),
    responses((status = 200, body = PageOf<WebhookOut>), ReadProblems),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller<Manager>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::parse(q.page, q.page_size)?;
    let listing = state.webhooks.list(&caller, page).await?;
    Ok(HttpResponse::Ok().json(PageOf::<WebhookOut>::new(&state, &req, page, listing)))
}

#[utoipa::path(
    get, path = "/api/v4/manage/webhooks/{id}/", tag = "webhooks", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = WebhookOut), ReadProblems),
    security(("bearer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "webhook")?;
    Ok(HttpResponse::Ok().json(WebhookOut::from(state.webhooks.get(&caller, id).await?)))
}

#[utoipa::path(
    patch, path = "/api/v4/manage/webhooks/{id}/", tag = "webhooks", params(("id" = uuid::Uuid, Path)),
    request_body = PatchWebhookBody,
    responses((status = 200, body = WebhookOut), WriteProblems),
    security(("bearer" = []))
)]
pub async fn patch(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    id: web::Path<String>,
    ApiJson(body): ApiJson<PatchWebhookBody>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "webhook")?;
    let mut problems = Problems::new();
    if let Some(d) = &body.description {
        check_description(&mut problems, d);
    }
    problems.finish()?;
    let change = WebhookChange {
        url: body.url,
        description: body.description,
        events: body.events.as_deref().map(names),
        is_active: body.is_active,
    };
    Ok(HttpResponse::Ok().json(WebhookOut::from(state.webhooks.change(&caller, id, change).await?)))
}

#[utoipa::path(
    delete, path = "/api/v4/manage/webhooks/{id}/", tag = "webhooks", params(("id" = uuid::Uuid, Path)),
    responses((status = 204, description = "Deleted, with its delivery log"), WriteProblems),
    security(("bearer" = []))
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "webhook")?;
    state.webhooks.delete(&caller, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post, path = "/api/v4/manage/webhooks/{id}/rotate-secret/", tag = "webhooks", params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "A new signing secret, shown only here; the old one stops signing at once", body = WebhookWithSecret),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn rotate_secret(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "webhook")?;
    let (webhook, secret) = state.webhooks.rotate_secret(&caller, id).await?;
    Ok(secret_json(
        StatusCode::OK,
        &WebhookWithSecret {
            webhook: webhook.into(),
            secret,
        },
    ))
}

#[utoipa::path(
    post, path = "/api/v4/manage/webhooks/{id}/test/", tag = "webhooks", params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 202, description = "A `webhook.test` event queued for this endpoint; its delivery", body = DeliveryOut),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn test(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "webhook")?;
    let delivery = state.webhooks.send_test(&caller, id).await?;
    Ok(HttpResponse::Accepted().json(DeliveryOut::from(delivery)))
}

#[utoipa::path(
    get, path = "/api/v4/manage/webhooks/{id}/deliveries/", tag = "webhooks",
    params(("id" = uuid::Uuid, Path), DeliveryQuery),
    responses((status = 200, description = "The delivery log, newest first", body = PageOf<DeliveryOut>), ReadProblems),
    security(("bearer" = []))
)]
pub async fn deliveries(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller<Manager>,
    id: web::Path<String>,
    q: web::Query<DeliveryQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "webhook")?;
    let page = PageRequest::parse(q.page, q.page_size)?;
    let status = q.status.map(|s| match s {
        DeliveryStatus::Pending => fleetca_storage::webhooks::PENDING,
        DeliveryStatus::Delivered => fleetca_storage::webhooks::DELIVERED,
        DeliveryStatus::Failed => fleetca_storage::webhooks::FAILED,
    });
    let listing = state.webhooks.deliveries(&caller, id, status, page).await?;
    Ok(HttpResponse::Ok().json(PageOf::<DeliveryOut>::new(&state, &req, page, listing)))
}

#[utoipa::path(
    post, path = "/api/v4/manage/webhooks/{id}/deliveries/{delivery}/redeliver/", tag = "webhooks",
    params(("id" = uuid::Uuid, Path), ("delivery" = i64, Path)),
    responses(
        (status = 202, description = "Queued again now (a failed one gets one more attempt)", body = DeliveryOut),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn redeliver(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, delivery) = path.into_inner();
    let id = parse_id(&id, "webhook")?;
    let delivery: i64 = delivery
        .parse()
        .map_err(|_| ApiError::from(crate::support::Error::NotFound("delivery")))?;
    let row = state.webhooks.redeliver(&caller, id, delivery).await?;
    Ok(HttpResponse::Accepted().json(DeliveryOut::from(row)))
}
