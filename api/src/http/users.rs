//! `/api/v4/manage/users/`: API keys and human users.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use fleetca_storage::User;
use fleetca_storage::users::{UserFilter, UserPatch};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::config::Secret;
use crate::domain::{Enterprise, PageRequest, Role, Username};
use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, Auth};
use crate::http::{PageOf, parse_id, route};
use crate::service::users::{self as svc, CreateUser};
use crate::state::AppState;

pub fn routes() -> super::Routes {
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

/// A user as the API shows it. Never includes a token or password hash.
#[derive(Serialize, ToSchema)]
pub struct UserOut {
    pub id: uuid::Uuid,
    pub username: String,
    pub is_service_account: bool,
    pub enterprise: String,
    pub role: Role,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            role: Role::parse(&u.role).unwrap_or(Role::Service),
            username: u.username,
            is_service_account: u.is_service_account,
            enterprise: u.enterprise,
            is_active: u.is_active,
            created_at: u.created_at,
        }
    }
}

impl UserOut {
    /// The current record of a principal.
    pub async fn from_principal(state: &AppState, p: &crate::service::auth::Principal) -> Result<Self, ApiError> {
        Ok(state.store.user(p.id).await?.into())
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
    #[schema(example = "svc-mqtt-prod")]
    pub username: String,
    /// True for an API key (service account), false for a human.
    pub is_service_account: bool,
    /// Enterprise code; defaults to the caller's.
    #[schema(example = "nnn.acme")]
    pub enterprise: Option<String>,
    /// `service` for API keys; `admin` or `manager` (default) for humans.
    pub role: Option<Role>,
    /// A human's password for the admin UI (12–256 characters).
    pub password: Option<String>,
}

/// Change a user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUserBody {
    pub is_active: Option<bool>,
    pub role: Option<Role>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Page number, from 1.
    pub page: Option<u64>,
    /// Page size, 1–500 (default 50).
    pub page_size: Option<u64>,
    pub enterprise: Option<String>,
    pub is_service_account: Option<bool>,
    pub is_active: Option<bool>,
    /// Username contains this.
    pub search: Option<String>,
}

#[utoipa::path(
    post, path = "/api/v4/manage/users/", tag = "users", request_body = CreateUserBody,
    responses(
        (status = 201, description = "Created; the token is shown only here", body = UserWithToken),
        (status = 400, description = "Invalid body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not do this", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Username taken", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::new();
    let username = Username::parse(&body.username)
        .map_err(|e| errors.insert("username".into(), vec![e]))
        .ok();
    let enterprise = match body.enterprise.as_deref().map(Enterprise::parse).transpose() {
        Ok(e) => e,
        Err(e) => {
            errors.insert("enterprise".into(), vec![e]);
            None
        }
    };
    if let Some(p) = &body.password
        && let Err(e) = svc::check_password(p)
    {
        errors.insert("password".into(), vec![e]);
    }
    let Some(username) = username.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let input = CreateUser {
        username,
        is_service_account: body.is_service_account,
        enterprise,
        role: body.role,
        password: body.password.map(Secret::new),
    };
    let (user, token) = svc::create(&state, &caller, input).await?;
    Ok(HttpResponse::Created().json(UserWithToken {
        user: user.into(),
        token,
    }))
}

#[utoipa::path(
    get, path = "/api/v4/manage/users/", tag = "users", params(UserQuery),
    responses(
        (status = 200, body = PageOf<UserOut>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(caller): Auth,
    q: web::Query<UserQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let page = PageRequest::parse(q.page, q.page_size)?;
    let filter = UserFilter {
        enterprise: q.enterprise,
        is_service_account: q.is_service_account,
        is_active: q.is_active,
        search: q.search,
    };
    let (users, count) = svc::list(&state, &caller, filter, page).await?;
    let page = PageOf::new(
        &state,
        &req,
        page,
        count,
        users.into_iter().map(UserOut::from).collect(),
    );
    Ok(HttpResponse::Ok().json(page))
}

#[utoipa::path(
    get, path = "/api/v4/manage/users/{id}/", tag = "users", params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = UserOut),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "user")?;
    let user = svc::visible(&state, &caller, id).await?;
    Ok(HttpResponse::Ok().json(UserOut::from(user)))
}

#[utoipa::path(
    patch, path = "/api/v4/manage/users/{id}/", tag = "users", params(("id" = uuid::Uuid, Path)), request_body = PatchUserBody,
    responses(
        (status = 200, description = "Changed; deactivating revokes the key's active certificates", body = UserOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn patch(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    id: web::Path<String>,
    ApiJson(body): ApiJson<PatchUserBody>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "user")?;
    let patch = UserPatch {
        is_active: body.is_active,
        role: body.role.map(|r| r.as_str().to_owned()),
    };
    let user = svc::patch(&state, &caller, id, patch).await?;
    Ok(HttpResponse::Ok().json(UserOut::from(user)))
}

#[utoipa::path(
    delete, path = "/api/v4/manage/users/{id}/", tag = "users", params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 204, description = "Deactivated (the record stays); its active certificates are revoked"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn deactivate(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "user")?;
    svc::patch(
        &state,
        &caller,
        id,
        UserPatch {
            is_active: Some(false),
            role: None,
        },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post, path = "/api/v4/manage/users/{id}/rotate-token/", tag = "users", params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The new token, shown only here; the old one no longer works", body = UserWithToken),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn rotate_token(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "user")?;
    let (user, token) = svc::rotate_token(&state, &caller, id).await?;
    Ok(HttpResponse::Ok().json(UserWithToken {
        user: user.into(),
        token,
    }))
}
