//! `/api/v4/manage/users/`: API keys and human users.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use fleetca_storage::User;
use fleetca_storage::users::UserFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::{Enterprise, PageRequest, Password, Problems, Role, Username, query_text};
use crate::error::ApiError;
use crate::http::edge::{PageOf, parse_id, route, secret_json};
use crate::http::extract::{ApiJson, Caller, Manager};
use crate::http::problems::{ReadProblems, WriteProblems};
use crate::identity::users::{CreateUser, UserChange};
use crate::state::AppState;

pub fn routes() -> crate::http::edge::Routes {
    vec![
        (
            "/api/v4/manage/users",
            vec![
                route("GET", || web::get().to(list)),
                route("POST", || web::post().to(create)),
            ],
        ),
        (
            "/api/v4/manage/users/{id}",
            vec![
                route("GET", || web::get().to(get)),
                route("PATCH", || web::patch().to(patch)),
                route("DELETE", || web::delete().to(deactivate)),
            ],
        ),
        (
            "/api/v4/manage/users/{id}/rotate-token",
            vec![route("POST", || web::post().to(rotate_token))],
        ),
    ]
}

/// A user's role: `admin` (everything), `manager` (everything within its enterprise),
/// `service` (an API key).
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, Debug)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    Admin,
    Manager,
    Service,
}

impl From<Role> for RoleName {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => RoleName::Admin,
            Role::Manager => RoleName::Manager,
            Role::Service => RoleName::Service,
        }
    }
}

impl From<RoleName> for Role {
    fn from(r: RoleName) -> Self {
        match r {
            RoleName::Admin => Role::Admin,
            RoleName::Manager => Role::Manager,
            RoleName::Service => Role::Service,
        }
    }
}

/// A user as the API shows it. Never includes a token or password hash.
#[derive(Serialize, ToSchema)]
pub struct UserOut {
    pub id: uuid::Uuid,
    pub username: String,
    pub is_service_account: bool,
    pub enterprise: String,
    pub role: RoleName,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            role: Role::stored(&u.role, &u.username).into(),
            username: u.username,
            is_service_account: u.is_service_account,
            enterprise: u.enterprise,
            is_active: u.is_active,
            created_at: u.created_at,
        }
    }
}

/// A user with its token: only in the create and rotate-token responses.
#[derive(Serialize, ToSchema)]
pub struct UserWithToken {
    #[serde(flatten)]
    pub user: UserOut,
    /// The API token. Shown in this response only; store it now.
    pub token: String,
}

/// Create a user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    /// 3–64 of `[a-z0-9._-]`, unique.
    #[schema(example = "svc-mqtt-prod", pattern = "^(?!fleetca-)[a-z0-9._-]{3,64}$")]
    pub username: String,
    /// True for an API key (service account), false for a human.
    pub is_service_account: bool,
    /// Enterprise code; defaults to the caller's.
    #[schema(example = "nnn.acme", pattern = "^[a-z0-9][a-z0-9.-]{0,63}$")]
    pub enterprise: Option<String>,
    /// `service` for API keys; `admin` or `manager` (default) for humans.
    pub role: Option<RoleName>,
    /// A human's password for the admin UI (12–256 characters).
    #[schema(min_length = 12, max_length = 256)]
    pub password: Option<String>,
}

/// Change a user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUserBody {
    pub is_active: Option<bool>,
    pub role: Option<RoleName>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Page number, from 1.
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u64>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u64>,
    #[param(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub enterprise: Option<String>,
    pub is_service_account: Option<bool>,
    pub is_active: Option<bool>,
    /// Username contains this.
    #[param(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub search: Option<String>,
}

#[utoipa::path(
    post, path = "/api/v4/manage/users/", tag = "users", request_body = CreateUserBody,
    responses(
        (status = 201, description = "Created; the token is shown only here", body = UserWithToken),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> Result<HttpResponse, ApiError> {
    let mut problems = Problems::new();
    let username = problems.check("username", Username::parse(&body.username));
    let enterprise = body
        .enterprise
        .as_deref()
        .and_then(|e| problems.check("enterprise", Enterprise::parse(e)));
    let password = body
        .password
        .and_then(|p| problems.check("password", Password::parse(p)));
    problems.finish()?;
    let Some(username) = username else {
        return Err(ApiError::field("username", "is required"));
    };
    let input = CreateUser {
        username,
        is_service_account: body.is_service_account,
        enterprise,
        role: body.role.map(Role::from),
        password,
    };
    let (user, token) = state.users.create(&caller, input).await?;
    Ok(secret_json(
        StatusCode::CREATED,
        &UserWithToken {
            user: user.into(),
            token,
        },
    ))
}

#[utoipa::path(
    get, path = "/api/v4/manage/users/", tag = "users", params(UserQuery),
    responses((status = 200, body = PageOf<UserOut>), ReadProblems),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    q: web::Query<UserQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let page = PageRequest::parse(q.page, q.page_size)?;
    let mut problems = Problems::new();
    let filter = UserFilter {
        enterprise: q.enterprise.and_then(|e| problems.check("enterprise", query_text(&e))),
        is_service_account: q.is_service_account,
        is_active: q.is_active,
        search: q.search.and_then(|s| problems.check("search", query_text(&s))),
    };
    problems.finish()?;
    let users = state.users.list(&caller, filter, page).await?;
    Ok(HttpResponse::Ok().json(PageOf::<UserOut>::new(&state, &req, page, users)))
}

#[utoipa::path(
    get, path = "/api/v4/manage/users/{id}/", tag = "users", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = UserOut), ReadProblems),
    security(("bearer" = []))
)]
pub async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "user")?;
    let user = state.users.get(&caller, id).await?;
    Ok(HttpResponse::Ok().json(UserOut::from(user)))
}

#[utoipa::path(
    patch, path = "/api/v4/manage/users/{id}/", tag = "users", params(("id" = uuid::Uuid, Path)), request_body = PatchUserBody,
    responses(
        (status = 200, description = "Changed; deactivating revokes the key's active certificates", body = UserOut),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn patch(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    id: web::Path<String>,
    ApiJson(body): ApiJson<PatchUserBody>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "user")?;
    let change = UserChange {
        is_active: body.is_active,
        role: body.role.map(Role::from),
    };
    let user = state.users.change(&caller, id, change).await?;
    Ok(HttpResponse::Ok().json(UserOut::from(user)))
}

#[utoipa::path(
    delete, path = "/api/v4/manage/users/{id}/", tag = "users", params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 204, description = "Deactivated (the record stays); its active certificates are revoked"),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn deactivate(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "user")?;
    let change = UserChange {
        is_active: Some(false),
        role: None,
    };
    state.users.change(&caller, id, change).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post, path = "/api/v4/manage/users/{id}/rotate-token/", tag = "users", params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The new token, shown only here; the old one no longer works", body = UserWithToken),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn rotate_token(
    state: web::Data<AppState>,
    caller: Caller<Manager>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "user")?;
    let (user, token) = state.users.rotate_token(&caller, id).await?;
    Ok(secret_json(
        StatusCode::OK,
        &UserWithToken {
            user: user.into(),
            token,
        },
    ))
}
