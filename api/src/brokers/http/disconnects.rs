//! `/api/v4/manage/disconnects/`: the live sessions fleetca asked the brokers to end, and
//! how that went (see `service::disconnects`).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use fleetca_storage::disconnects::Disconnect;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::PageRequest;
use crate::error::ApiError;
use crate::http::edge::{PageOf, route};
use crate::http::extract::{Caller, Manager};
use crate::http::problems::ReadProblems;
use crate::state::AppState;

pub fn routes() -> crate::http::edge::Routes {
    vec![("/api/v4/manage/disconnects", vec![route("GET", || web::get().to(list))])]
}

/// A change's live sessions to end at the brokers.
#[derive(Serialize, ToSchema)]
pub struct DisconnectOut {
    pub id: i64,
    /// The change: `certificate.revoke`, `user.deactivate`, `user.rotate_token`,
    /// `device.disable`, …
    pub action: String,
    /// `certificate`, `user`, `device`, `product_device` or `product`.
    pub target_kind: String,
    pub target_id: String,
    pub enterprise: Option<String>,
    /// `pending` (some broker has not confirmed yet), `done` or `failed` (given up).
    pub status: String,
    pub attempts: i32,
    /// The brokers that confirmed.
    pub done_brokers: Vec<String>,
    /// When the next attempt is due (pending ones).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
}

impl From<Disconnect> for DisconnectOut {
    fn from(d: Disconnect) -> Self {
        Self {
            next_attempt_at: (d.status == fleetca_storage::disconnects::PENDING).then_some(d.next_attempt_at),
            done_brokers: d
                .done_brokers
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            id: d.id,
            action: d.action,
            target_kind: d.target_kind,
            target_id: d.target_id,
            enterprise: d.enterprise,
            status: d.status,
            attempts: d.attempts,
            last_error: d.last_error,
            created_at: d.created_at,
            done_at: d.done_at,
        }
    }
}

/// A disconnect's status.
#[derive(Deserialize, ToSchema, Clone, Copy, Debug)]
#[serde(rename_all = "lowercase")]
pub enum DisconnectStatus {
    Pending,
    Done,
    Failed,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DisconnectQuery {
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u64>,
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u64>,
    pub status: Option<DisconnectStatus>,
}

/// The disconnect queue, newest first, with the configured brokers' names.
#[derive(Serialize, ToSchema)]
pub struct DisconnectPage {
    #[serde(flatten)]
    pub page: PageOf<DisconnectOut>,
    /// The brokers fleetca tells (`[[brokers]]` in the settings); empty: none, and changes
    /// queue nothing.
    pub brokers: Vec<String>,
}

#[utoipa::path(
    get, path = "/api/v4/manage/disconnects/", tag = "brokers", params(DisconnectQuery),
    responses((status = 200, body = DisconnectPage), ReadProblems),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller<Manager>,
    q: web::Query<DisconnectQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::parse(q.page, q.page_size)?;
    let status = q.status.map(|s| match s {
        DisconnectStatus::Pending => fleetca_storage::disconnects::PENDING,
        DisconnectStatus::Done => fleetca_storage::disconnects::DONE,
        DisconnectStatus::Failed => fleetca_storage::disconnects::FAILED,
    });
    let listing = state.disconnects.list(&caller, status, page).await?;
    Ok(HttpResponse::Ok().json(DisconnectPage {
        page: PageOf::<DisconnectOut>::new(&state, &req, page, listing),
        brokers: state.disconnects.brokers().to_vec(),
    }))
}
