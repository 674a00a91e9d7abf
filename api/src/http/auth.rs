//! `/api/v4/auth/`: browser sign-in for human users (the admin UI).

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, Auth, SESSION_COOKIE};
use crate::http::route;
use crate::http::users::UserOut;
use crate::service::sessions::{self as svc, SESSION_LIFETIME};
use crate::service::users::check_password;
use crate::state::AppState;

pub fn routes() -> super::Routes {
    vec![
        ("/api/v4/auth/login", vec![route("POST", || web::post().to(login))]),
        ("/api/v4/auth/logout", vec![route("POST", || web::post().to(logout))]),
        ("/api/v4/auth/me", vec![route("GET", || web::get().to(me))]),
        (
            "/api/v4/auth/password",
            vec![route("POST", || web::post().to(password))],
        ),
    ]
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
}

/// The signed-in user and the CSRF token to send as `X-CSRF-Token`.
#[derive(Serialize, ToSchema)]
pub struct SessionOut {
    pub user: UserOut,
    pub csrf_token: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    pub current_password: Option<String>,
    /// 12–256 characters.
    pub new_password: String,
}

fn session_cookie<'a>(state: &AppState, value: String, max_age: CookieDuration) -> Cookie<'a> {
    Cookie::build(SESSION_COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.public_url.starts_with("https://"))
        .max_age(max_age)
        .finish()
}

#[utoipa::path(
    post, path = "/api/v4/auth/login", tag = "auth", request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in; sets an HttpOnly, SameSite=Strict session cookie", body = SessionOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong username or password", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let peer = req.peer_addr().map(|a| a.ip());
    let (cookie, session) = svc::login(&state, &body.username, body.password, peer)
        .await
        .map_err(|e| match e {
            ApiError::Unauthorized => ApiError::BadCredentials,
            other => other,
        })?;
    let max_age = CookieDuration::seconds(SESSION_LIFETIME.num_seconds());
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(&state, cookie, max_age))
        .json(SessionOut {
            user: UserOut::from_principal(&state, &session.principal).await?,
            csrf_token: session.csrf_token,
        }))
}

#[utoipa::path(post, path = "/api/v4/auth/logout", tag = "auth", responses((status = 204, description = "Signed out; the cookie is cleared")))]
pub async fn logout(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if let Some(c) = req.cookie(SESSION_COOKIE) {
        svc::logout(&state, c.value()).await?;
    }
    Ok(HttpResponse::NoContent()
        .cookie(session_cookie(&state, String::new(), CookieDuration::ZERO))
        .finish())
}

#[utoipa::path(
    get, path = "/api/v4/auth/me", tag = "auth",
    responses((status = 200, body = SessionOut), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
pub async fn me(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let cookie = req.cookie(SESSION_COOKIE).ok_or(ApiError::Unauthorized)?;
    let session = svc::session(&state, cookie.value())
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok(HttpResponse::Ok().json(SessionOut {
        user: UserOut::from_principal(&state, &session.principal).await?,
        csrf_token: session.csrf_token,
    }))
}

#[utoipa::path(
    post, path = "/api/v4/auth/password", tag = "auth", request_body = PasswordBody,
    responses(
        (status = 204, description = "Password changed; your other sessions end"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn password(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<HttpResponse, ApiError> {
    check_password(&body.new_password).map_err(|e| ApiError::field("new_password", e))?;
    let cookie = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    svc::change_password(
        &state,
        &caller,
        cookie.as_deref(),
        body.current_password.unwrap_or_default(),
        body.new_password,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
