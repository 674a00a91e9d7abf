//! Browser sign-in for human users: password check, sessions, and login rate limiting.
//!
//! A session is a random cookie value (stored only as its SHA-256) plus a CSRF token the
//! page must echo in `X-CSRF-Token` on every state-changing request. After
//! [`MAX_FAILURES`] failed sign-ins for one username or from one address within
//! [`WINDOW`], further attempts get "too many requests" until the window passes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use fleetca_ca::secret;
use fleetca_storage::{StorageError, User};
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::service::auth::Principal;
use crate::service::blocking;
use crate::state::AppState;

/// How long a session lasts.
pub const SESSION_LIFETIME: Duration = Duration::hours(12);
/// Failed sign-ins allowed per username and per address within [`WINDOW`].
pub const MAX_FAILURES: u32 = 5;
/// The rate-limit window.
pub const WINDOW: StdDuration = StdDuration::from_secs(15 * 60);

/// A signed-in browser.
pub struct Session {
    pub principal: Principal,
    pub csrf_token: String,
}

/// Sign-in state of this instance.
pub struct Sessions {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    dummy_hash: String,
    hash_slots: Semaphore,
}

impl Sessions {
    pub fn new() -> Result<Self, fleetca_ca::CaError> {
        Ok(Self {
            failures: Mutex::new(HashMap::new()),
            dummy_hash: secret::dummy_password_hash()?,
            hash_slots: Semaphore::new(2),
        })
    }

    /// Seconds until `keys` may try again, if any of them is locked out.
    fn locked_for(&self, keys: &[String]) -> Option<u64> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (_, since)| since.elapsed() < WINDOW);
        keys.iter()
            .filter_map(|k| map.get(k))
            .filter(|(n, _)| *n >= MAX_FAILURES)
            .map(|(_, since)| WINDOW.saturating_sub(since.elapsed()).as_secs().max(1))
            .max()
    }

    fn record_failure(&self, keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.clear();
        }
        for k in keys {
            let entry = map.entry(k.clone()).or_insert((0, Instant::now()));
            entry.0 += 1;
        }
    }

    fn clear(&self, keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            map.remove(k);
        }
    }

    /// Checks a password against a hash off the executor, bounded.
    async fn verify(&self, password: String, hash: String) -> Result<bool, ApiError> {
        let _permit = self.hash_slots.acquire().await.map_err(|_| ApiError::Unavailable)?;
        blocking(move || secret::verify_hash(password.as_bytes(), &hash)).await
    }
}

/// Signs a human in; returns the cookie value and the session.
pub async fn login(
    state: &AppState,
    username: &str,
    password: String,
    peer: Option<IpAddr>,
) -> Result<(String, Session), ApiError> {
    let keys = vec![
        format!("user:{username}"),
        format!("ip:{}", peer.map(|p| p.to_string()).unwrap_or_default()),
    ];
    if let Some(secs) = state.sessions.locked_for(&keys) {
        return Err(ApiError::TooManyRequests(secs));
    }
    let user = match state.store.user_by_username(username).await {
        Ok(u) => Some(u),
        Err(StorageError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let usable = user
        .as_ref()
        .filter(|u| u.is_active && !u.is_service_account && u.password_hash.is_some());
    let hash = usable
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| state.sessions.dummy_hash.clone());
    let ok = state.sessions.verify(password, hash).await? && usable.is_some();
    let Some(user) = usable.filter(|_| ok) else {
        state.sessions.record_failure(&keys);
        tracing::info!(%username, "sign-in failed");
        return Err(ApiError::Unauthorized);
    };
    state.sessions.clear(&keys);
    let (cookie, digest, csrf) = secret::new_session()?;
    let now = fleetca_storage::now();
    state
        .store
        .create_session(digest, user.id, csrf.clone(), now, now + SESSION_LIFETIME)
        .await?;
    tracing::info!(user_id = %user.id, %username, "signed in");
    Ok((
        cookie,
        Session {
            principal: Principal::from_user(user),
            csrf_token: csrf,
        },
    ))
}

/// The session a cookie names, if it is valid and its user active.
pub async fn session(state: &AppState, cookie: &str) -> Result<Option<Session>, ApiError> {
    match state
        .store
        .session(&secret::session_digest(cookie), fleetca_storage::now())
        .await
    {
        Ok((s, user)) if user.is_active => Ok(Some(Session {
            principal: Principal::from_user(&user),
            csrf_token: s.csrf_token,
        })),
        Ok(_) | Err(StorageError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Ends a session.
pub async fn logout(state: &AppState, cookie: &str) -> Result<(), ApiError> {
    Ok(state.store.delete_session(&secret::session_digest(cookie)).await?)
}

/// Changes the caller's own password after checking the current one; ends its other
/// sessions (the one making the change, named by `cookie`, stays).
pub async fn change_password(
    state: &AppState,
    caller: &Principal,
    cookie: Option<&str>,
    current: String,
    new: String,
) -> Result<User, ApiError> {
    let user = state.store.user(caller.id).await?;
    if user.is_service_account {
        return Err(ApiError::Forbidden("An API key has no password.".into()));
    }
    if let Some(hash) = user.password_hash.clone()
        && !state.sessions.verify(current, hash).await?
    {
        return Err(ApiError::field("current_password", "is not your current password"));
    }
    let hash = state.auth.hash_password(new).await?;
    let keep = cookie.map(secret::session_digest);
    state.store.delete_user_sessions(user.id, keep.as_deref()).await?;
    Ok(state
        .store
        .set_user_password(user.id, Some(hash), fleetca_storage::now())
        .await?)
}
