//! `/api/v4/auth/`: browser sign-in for human users (the admin UI), and the first-time
//! set-up that lets the bootstrapped admin choose its password with its API token.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::AuditAction;
use crate::domain::Password;
use crate::error::ApiError;
use crate::http::edge::{route, secret_json};
use crate::http::extract::{ApiJson, Caller, Human, SESSION_COOKIE};
use crate::http::problems::{PublicProblems, ReadProblems, WriteProblems};
use crate::identity::http::users::UserOut;
use crate::identity::sessions::{SESSION_LIFETIME, SignedIn};
use crate::state::AppState;
use crate::support::Error;

pub fn routes() -> crate::http::edge::Routes {
    vec![
        ("/api/v4/auth/login", vec![route("POST", || web::post().to(login))]),
        ("/api/v4/auth/logout", vec![route("POST", || web::post().to(logout))]),
        ("/api/v4/auth/me", vec![route("GET", || web::get().to(me))]),
        ("/api/v4/auth/whoami", vec![route("GET", || web::get().to(whoami))]),
        (
            "/api/v4/auth/setup",
            vec![
                route("GET", || web::get().to(setup_status)),
                route("POST", || web::post().to(setup)),
            ],
        ),
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
    #[schema(min_length = 12, max_length = 256)]
    pub new_password: String,
}

/// Whether the first-time set-up is open, and where the admin's token is.
#[derive(Serialize, ToSchema)]
pub struct SetupOut {
    /// True while no active admin has a password yet (the sign-in page then offers the set-up).
    pub needed: bool,
    /// While `needed`: the file on the server that fleetca wrote the first admin's API token
    /// to on its first start (unless `FLEETCA_BOOTSTRAP_TOKEN` gave the token).
    pub token_file: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupBody {
    /// The admin's API token.
    pub token: String,
    /// The admin's username; when given, it must be the token's.
    pub username: Option<String>,
    /// 12–256 characters.
    #[schema(min_length = 12, max_length = 256)]
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
    let peer = crate::http::extract::peer_ip(&req);
    let signed_in = state.sessions.login(&body.username, body.password, peer).await;
    if let Err(crate::support::Error::BadCredentials | crate::support::Error::RateLimited { .. }) = &signed_in {
        let context = crate::http::edge::request_context(&req);
        state
            .audit
            .failed(crate::outbox::audit::failure(
                &body.username,
                AuditAction::AuthSignInFailed,
                &context,
            ))
            .await;
    }
    signed_in_response(&state, signed_in?).await
}

/// The answer to a sign-in: the session cookie, and the user with the CSRF token.
async fn signed_in_response(state: &AppState, signed_in: SignedIn) -> Result<HttpResponse, ApiError> {
    let SignedIn { cookie, session } = signed_in;
    let user = state.sessions.me(&session.principal).await?;
    let max_age = CookieDuration::seconds(SESSION_LIFETIME.num_seconds());
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(state, cookie, max_age))
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(SessionOut {
            user: user.into(),
            csrf_token: session.csrf_token,
        }))
}

#[utoipa::path(
    get, path = "/api/v4/auth/setup", tag = "auth",
    responses(
        (status = 200, description = "Whether the sign-in page should offer the first-time set-up", body = SetupOut),
        (status = 503, description = "The database is unreachable", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn setup_status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let needed = state.sessions.setup_needed().await?;
    // Absolute, for the page cannot know the server's working directory; named only while
    // it matters.
    let token_file = needed.then(|| {
        let path = state.config.data_dir.join("admin-token");
        std::path::absolute(&path).unwrap_or(path).display().to_string()
    });
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(SetupOut { needed, token_file }))
}

#[utoipa::path(
    post, path = "/api/v4/auth/setup", tag = "auth", request_body = SetupBody,
    responses(
        (status = 200, description = "The admin's password is set and it is signed in; sets the session cookie as sign-in does", body = SessionOut),
        (status = 409, description = "The set-up is done: an admin has a password", body = crate::error::Problem, content_type = "application/problem+json"),
        PublicProblems,
    )
)]
pub async fn setup(
    state: web::Data<AppState>,
    req: HttpRequest,
    ApiJson(body): ApiJson<SetupBody>,
) -> Result<HttpResponse, ApiError> {
    let new = Password::parse(body.new_password).map_err(|e| ApiError::field("new_password", e))?;
    let token = body.token.trim();
    let username = body.username.as_deref().map(str::trim).filter(|u| !u.is_empty());
    let peer = crate::http::extract::peer_ip(&req);
    let context = crate::http::edge::request_context(&req);
    let signed_in = state
        .sessions
        .set_up(&state.tokens, token, username, new, peer, &context)
        .await;
    if let Err(Error::BadCredentials | Error::RateLimited { .. }) = &signed_in {
        state
            .audit
            .failed(crate::outbox::audit::failure(
                &claimed(username, token),
                AuditAction::AuthSignInFailed,
                &context,
            ))
            .await;
    }
    signed_in_response(&state, signed_in?).await
}

/// Who a refused set-up claimed to be: the username it named, else the lookup part of a
/// fleetca token (`fca_<lookup>_…`, not secret). Nothing else of a token is recorded.
fn claimed(username: Option<&str>, token: &str) -> String {
    if let Some(name) = username {
        return name.to_owned();
    }
    token
        .strip_prefix("fca_")
        .and_then(|rest| rest.get(..12))
        .filter(|l| l.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(|| "token".to_owned(), |l| format!("token fca_{l}"))
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

/// Who the caller is: the user behind a token (an API key or a human's) or a session.
#[utoipa::path(
    get, path = "/api/v4/auth/whoami", tag = "auth",
    responses((status = 200, body = UserOut), ReadProblems),
    security(("bearer" = []))
)]
pub async fn whoami(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let user = state.sessions.me(&caller).await?;
    Ok(HttpResponse::Ok().json(UserOut::from(user)))
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
