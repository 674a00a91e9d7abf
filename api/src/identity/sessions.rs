//! Browser sign-in for human users and their passwords: password check, sessions, login
//! rate limiting, password changes and resets, and the first-time set-up.
//!
//! A session is a random cookie value (stored only as its SHA-256) plus a CSRF token the
//! page must echo in `X-CSRF-Token` on every state-changing request. After
//! [`MAX_FAILURES`] failed sign-ins for one username or from one address within
//! [`WINDOW`], further attempts are refused until the window passes. An attempt is counted
//! *before* its password is hashed, so concurrent attempts cannot race past the limit;
//! a successful one takes its count back. The lockout concerns sign-in alone: API tokens
//! keep working.
//!
//! The first-time set-up lets the bootstrapped admin, who has only an API token, choose a
//! password from the sign-in page: the token stands in for the password it does not have.
//! It is open only while no active admin has a password, and counted against the same
//! limits as a sign-in.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use fleetca_ca::secret;
use fleetca_storage::{StorageError, Store, User};

use crate::domain::AuditAction;
use crate::domain::{Password, Principal, RequestContext, Role, Username};
use crate::identity::hashing::Hasher;
use crate::identity::tokens::Tokens;
use crate::support::Error;
use crate::support::clock::Clock;
use crate::support::limits::{FailureLimiter, network};

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

/// A new session: the cookie value to set, and the session.
pub struct SignedIn {
    pub cookie: String,
    pub session: Session,
}

/// Sign-in, sessions and passwords.
pub struct SessionService {
    store: Store,
    hasher: Arc<Hasher>,
    clock: Arc<dyn Clock>,
    attempts: FailureLimiter,
}

impl SessionService {
    pub fn new(store: Store, hasher: Arc<Hasher>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            hasher,
            clock,
            attempts: FailureLimiter::new(MAX_FAILURES, WINDOW),
        }
    }

    /// Signs a human in.
    pub async fn login(&self, username: &str, password: String, peer: Option<IpAddr>) -> Result<SignedIn, Error> {
        let address = format!("ip:{}", peer.map(network).unwrap_or_default());
        // A name no user can have (the username rules: at most 64 characters) is refused at
        // once and counted against the address alone: the lockout table and the log keep
        // only names of bounded size, and nothing is hashed for it.
        if Username::parse(username).is_err() {
            self.attempts
                .begin(&[address])
                .map_err(|retry_after_secs| Error::RateLimited { retry_after_secs })?;
            tracing::info!(username_length = username.len(), "sign-in failed: not a username");
            return Err(Error::BadCredentials);
        }
        let keys = vec![format!("user:{username}"), address];
        self.attempts
            .begin(&keys)
            .map_err(|retry_after_secs| Error::RateLimited { retry_after_secs })?;
        let user = match self.store.user_by_username(username).await {
            Ok(u) => Some(u),
            Err(StorageError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let usable = user
            .as_ref()
            .filter(|u| u.is_active && !u.is_service_account && u.password_hash.is_some());
        let hash = usable.and_then(|u| u.password_hash.clone());
        let ok = self.hasher.verify(password, hash).await?;
        let Some(user) = usable.filter(|_| ok) else {
            tracing::info!(%username, "sign-in failed");
            return Err(Error::BadCredentials);
        };
        self.attempts.succeeded(&keys);
        self.start_session(user).await
    }

    /// Whether the first-time set-up is open: an active human admin has no password and
    /// none has one, so no admin can sign in to the UI yet. Once one can, the sign-in page
    /// must not offer it to everyone else.
    pub async fn setup_needed(&self) -> Result<bool, Error> {
        let (with, without) = self.store.count_admin_passwords().await?;
        Ok(with == 0 && without > 0)
    }

    /// The first-time set-up: sets the password of the admin whose API token `token` is
    /// (checked as Bearer authentication checks it), then signs it in as [`Self::login`]
    /// does. The token must be an active human admin's that has no password and, when
    /// `username` is given, that user's.
    pub async fn set_up(
        &self,
        tokens: &Tokens,
        token: &str,
        username: Option<&str>,
        new: Password,
        peer: Option<IpAddr>,
        context: &RequestContext,
    ) -> Result<SignedIn, Error> {
        if !self.setup_needed().await? {
            return Err(Error::Conflict(
                "The first-time set-up is done: an admin has a password. Sign in with it.".into(),
            ));
        }
        let mut keys = vec![format!("ip:{}", peer.map(network).unwrap_or_default())];
        if let Some(name) = username.filter(|n| Username::parse(n).is_ok()) {
            keys.push(format!("user:{name}"));
        }
        self.attempts
            .begin(&keys)
            .map_err(|retry_after_secs| Error::RateLimited { retry_after_secs })?;
        let user = match tokens.verify(token).await? {
            Some(p) => match self.store.user(p.id).await {
                Ok(u) => Some(u),
                Err(StorageError::NotFound) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let Some(user) = user.filter(|u| {
            u.is_active
                && !u.is_service_account
                && u.role == Role::Admin.as_str()
                && u.password_hash.is_none()
                && username.is_none_or(|name| name == u.username)
        }) else {
            tracing::info!("first-time set-up refused: not the token of an admin without a password");
            return Err(Error::BadCredentials);
        };
        self.attempts.succeeded(&keys);
        let user = self.set(&user, new, None, context).await?;
        tracing::info!(user_id = %user.id, username = %user.username, "first-time set-up: the admin chose a password");
        self.start_session(&user).await
    }

    async fn start_session(&self, user: &User) -> Result<SignedIn, Error> {
        let (cookie, digest, csrf) = secret::new_session()?;
        let now = self.clock.now();
        self.store
            .create_session(digest, user.id, csrf.clone(), now, now + SESSION_LIFETIME)
            .await?;
        tracing::info!(user_id = %user.id, username = %user.username, "signed in");
        Ok(SignedIn {
            cookie,
            session: Session {
                principal: Principal::from_user(user),
                csrf_token: csrf,
            },
        })
    }

    /// The session a cookie names, if it is valid and its user active.
    pub async fn session(&self, cookie: &str) -> Result<Option<Session>, Error> {
        match self
            .store
            .session(&secret::session_digest(cookie), self.clock.now())
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
    pub async fn logout(&self, cookie: &str) -> Result<(), Error> {
        Ok(self.store.delete_session(&secret::session_digest(cookie)).await?)
    }

    /// The caller's current record.
    pub async fn me(&self, caller: &Principal) -> Result<User, Error> {
        Ok(self.store.user(caller.id).await?)
    }

    /// Changes the caller's own password after checking the current one; ends its other
    /// sessions (the one making the change, named by `cookie`, stays).
    pub async fn change_password(
        &self,
        caller: &Principal,
        cookie: Option<&str>,
        current: String,
        new: Password,
    ) -> Result<User, Error> {
        let user = self.store.user(caller.id).await?;
        if user.is_service_account {
            return Err(Error::Forbidden("An API key has no password.".into()));
        }
        if let Some(hash) = user.password_hash.clone()
            && !self.hasher.verify(current, Some(hash)).await?
        {
            return Err(Error::invalid("current_password", "is not your current password"));
        }
        self.set(&user, new, cookie, &caller.context).await
    }

    /// Sets a human user's password without the current one (the operator's reset, from
    /// the command line); ends all of the user's sessions.
    pub async fn reset_password(&self, username: &str, new: Password) -> Result<User, Error> {
        let user = self
            .store
            .user_by_username(username)
            .await
            .map_err(crate::support::error::not_found_as("user"))?;
        if user.is_service_account {
            return Err(Error::Forbidden(format!(
                "{username:?} is an API key; only human users have passwords."
            )));
        }
        self.set(&user, new, None, &RequestContext::default()).await
    }

    /// Sets a password as `user` itself did, in the request `context`.
    async fn set(
        &self,
        user: &User,
        new: Password,
        keep_cookie: Option<&str>,
        context: &RequestContext,
    ) -> Result<User, Error> {
        let hash = self.hasher.hash_password(new.expose().to_owned()).await?;
        let keep = keep_cookie.map(secret::session_digest);
        self.store.delete_user_sessions(user.id, keep.as_deref()).await?;
        let mut actor = Principal::from_user(user);
        actor.context = context.clone();
        let user = self
            .store
            .set_user_password(
                user.id,
                Some(hash),
                &[crate::outbox::audit::by(
                    &actor,
                    AuditAction::UserSetPassword,
                    "user",
                    &user.id.to_string(),
                    Some(&user.enterprise),
                    serde_json::json!({}),
                )],
                self.clock.now(),
            )
            .await?;
        tracing::info!(user_id = %user.id, "password changed; other sessions ended");
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{Kit, admin};
    use crate::domain::{Enterprise, Username};
    use crate::identity::users::CreateUser;

    async fn human(kit: &Kit, name: &str) -> (User, String) {
        let input = CreateUser {
            username: Username::parse(name).unwrap(),
            is_service_account: false,
            enterprise: Some(Enterprise::parse("acme").unwrap()),
            role: None,
            password: Some(Password::parse("correct horse battery".into()).unwrap()),
        };
        kit.users.create(&admin(), input).await.unwrap()
    }

    #[tokio::test]
    async fn huge_usernames_from_many_addresses_keep_the_lockout_table_small() {
        // 1,200 sign-ins with 60,000-character names from rotating addresses: each held
        // its whole name in the lockout table before.
        let kit = Kit::new().await;
        let huge = "a".repeat(60_000);
        for i in 0..1_200u32 {
            let peer = Some(IpAddr::from([127, (i >> 16) as u8, (i >> 8) as u8, i as u8]));
            let r = kit.sessions.login(&format!("{huge}{i}"), "wrong".into(), peer).await;
            assert!(matches!(r, Err(Error::BadCredentials)), "{i}");
        }
        let (keys, bytes) = kit.sessions.attempts.size();
        assert_eq!(keys, 1_200, "one per address, none per name");
        assert!(bytes < 1_200 * 32, "{bytes} bytes of keys");
    }

    #[tokio::test]
    async fn concurrent_wrong_passwords_cannot_race_past_the_limit_and_tokens_still_work() {
        let kit = Arc::new(Kit::new().await);
        let (_, token) = human(&kit, "alice").await;
        let mut tasks = Vec::new();
        for i in 0..20u8 {
            let kit = kit.clone();
            let peer = Some(IpAddr::from([127, 0, 0, i]));
            tasks.push(tokio::spawn(async move {
                kit.sessions.login("alice", "wrong".into(), peer).await.err()
            }));
        }
        let mut bad = 0;
        let mut limited = 0;
        for t in tasks {
            match t.await.unwrap() {
                Some(Error::BadCredentials) => bad += 1,
                Some(Error::RateLimited { .. }) => limited += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(bad, MAX_FAILURES);
        assert_eq!(limited, 20 - MAX_FAILURES);
        // Even the right password waits out the window; the token does not.
        assert!(matches!(
            kit.sessions.login("alice", "correct horse battery".into(), None).await,
            Err(Error::RateLimited { .. })
        ));
        assert!(kit.tokens.verify(&token).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn the_first_time_set_up_takes_an_admins_token_once() {
        let kit = Kit::new().await;
        let input = CreateUser {
            username: Username::parse("root").unwrap(),
            is_service_account: false,
            enterprise: Some(Enterprise::parse("default").unwrap()),
            role: Some(Role::Admin),
            password: None,
        };
        let (_, token) = kit.users.create(&admin(), input).await.unwrap();
        let (_, key_token) = kit.api_key("svc", "acme").await;
        let context = RequestContext::default();
        let password = || Password::parse("a first admin password".into()).unwrap();
        assert!(kit.sessions.setup_needed().await.unwrap());
        for wrong in [key_token.as_str(), "not a token"] {
            assert!(matches!(
                kit.sessions
                    .set_up(&kit.tokens, wrong, None, password(), None, &context)
                    .await,
                Err(Error::BadCredentials)
            ));
        }
        assert!(matches!(
            kit.sessions
                .set_up(&kit.tokens, &token, Some("someone"), password(), None, &context)
                .await,
            Err(Error::BadCredentials)
        ));
        let signed = kit
            .sessions
            .set_up(&kit.tokens, &token, Some("root"), password(), None, &context)
            .await
            .unwrap();
        assert!(kit.sessions.session(&signed.cookie).await.unwrap().is_some());
        assert!(!kit.sessions.setup_needed().await.unwrap());
        assert!(matches!(
            kit.sessions
                .set_up(&kit.tokens, &token, None, password(), None, &context)
                .await,
            Err(Error::Conflict(_))
        ));
        assert!(
            kit.sessions
                .login("root", "a first admin password".into(), None)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_password_reset_ends_every_session() {
        let kit = Kit::new().await;
        human(&kit, "bob").await;
        let signed = kit
            .sessions
            .login("bob", "correct horse battery".into(), None)
            .await
            .unwrap();
        assert!(kit.sessions.session(&signed.cookie).await.unwrap().is_some());
        kit.sessions
            .reset_password("bob", Password::parse("another long passphrase".into()).unwrap())
            .await
            .unwrap();
        assert!(kit.sessions.session(&signed.cookie).await.unwrap().is_none());
        assert!(
            kit.sessions
                .login("bob", "another long passphrase".into(), None)
                .await
                .is_ok()
        );
        assert!(matches!(
            kit.sessions
                .reset_password("nobody", Password::parse("another long passphrase".into()).unwrap())
                .await,
            Err(Error::NotFound(_))
        ));
    }
}
