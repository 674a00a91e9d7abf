//! `/api/v4/auth/`: browser sign-in for human users (the admin UI).

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::Password;
use crate::error::ApiError;
use crate::http::extract::{ApiJson, Caller, Human, SESSION_COOKIE};
use crate::http::openapi::{PublicProblems, ReadProblems, WriteProblems};
use crate::http::users::UserOut;
use crate::http::{route, secret_json};
use crate::service::Error;
use crate::service::sessions::{SESSION_LIFETIME, SignedIn};
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
        PublicProblems,
    )
)]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let peer = req.peer_addr().map(|a| a.ip().to_canonical());
    let signed_in = state.sessions.login(&body.username, body.password, peer).await;
    if let Err(crate::service::Error::BadCredentials | crate::service::Error::RateLimited { .. }) = &signed_in {
        let context = crate::http::request_context(&req);
        state
            .audit
            .failed(crate::service::audit::failure(
                &body.username,
                "auth.sign_in_failed",
                &context,
            ))
            .await;
    }
    let SignedIn { cookie, session } = signed_in?;
    let user = state.sessions.me(&session.principal).await?;
    let max_age = CookieDuration::seconds(SESSION_LIFETIME.num_seconds());
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(&state, cookie, max_age))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(SessionOut {
            user: user.into(),
            csrf_token: session.csrf_token,
        }))
}

#[utoipa::path(post, path = "/api/v4/auth/logout", tag = "auth", responses((status = 204, description = "Signed out; the cookie is cleared"), (status = 503, description = "The database is unreachable", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn logout(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if let Some(c) = req.cookie(SESSION_COOKIE) {
        state.sessions.logout(c.value()).await?;
    }
    Ok(HttpResponse::NoContent()
        .cookie(session_cookie(&state, String::new(), CookieDuration::ZERO))
        .finish())
}

#[utoipa::path(
    get, path = "/api/v4/auth/me", tag = "auth",
    responses((status = 200, body = SessionOut), ReadProblems)
)]
pub async fn me(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let cookie = req.cookie(SESSION_COOKIE).ok_or(Error::Unauthenticated)?;
    let session = state
        .sessions
        .session(cookie.value())
        .await?
        .ok_or(Error::Unauthenticated)?;
    let user = state.sessions.me(&session.principal).await?;
    Ok(secret_json(
        actix_web::http::StatusCode::OK,
        &SessionOut {
            user: user.into(),
            csrf_token: session.csrf_token,
        },
    ))
}

#[utoipa::path(
    post, path = "/api/v4/auth/password", tag = "auth", request_body = PasswordBody,
    responses(
        (status = 204, description = "Password changed; your other sessions end"),
        WriteProblems,
    ),
    security(("bearer" = []))
)]
pub async fn password(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller<Human>,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<HttpResponse, ApiError> {
    let new = Password::parse(body.new_password).map_err(|e| ApiError::field("new_password", e))?;
    let cookie = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    state
        .sessions
        .change_password(
            &caller,
            cookie.as_deref(),
            body.current_password.unwrap_or_default(),
            new,
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
