//! Users: API keys (service accounts) and human admins and managers.
//!
//! Scope: an admin manages everyone; a manager manages the non-admin users of its own
//! enterprise and sees nothing of others (they are "not found", not "forbidden"); a
//! service account sees only itself and changes nothing.

use fleetca_ca::crl::Reason;
use fleetca_ca::secret;
use fleetca_storage::users::{NewUser, UserFilter, UserPatch};
use fleetca_storage::{StorageError, User};
use uuid::Uuid;

use crate::domain::{Enterprise, PageRequest, Role, Username};
use crate::error::ApiError;
use crate::service::auth::Principal;
use crate::service::blocking;
use crate::state::AppState;

/// The reason recorded on certificates revoked because their API key was deactivated.
pub const DEACTIVATION_REASON: Reason = Reason::CessationOfOperation;

/// A validated create request.
#[derive(Debug)]
pub struct CreateUser {
    pub username: Username,
    pub is_service_account: bool,
    pub enterprise: Option<Enterprise>,
    pub role: Option<Role>,
    pub password: Option<crate::config::Secret>,
}

/// Minimum length of a human password.
pub const MIN_PASSWORD_LEN: usize = 12;

/// Checks a human password's length; returns the message for the `password` field.
pub fn check_password(p: &str) -> Result<(), String> {
    let n = p.chars().count();
    if !(MIN_PASSWORD_LEN..=256).contains(&n) {
        return Err(format!("must be {MIN_PASSWORD_LEN} to 256 characters"));
    }
    Ok(())
}

fn not_found() -> ApiError {
    ApiError::NotFound("user")
}

/// Whether `caller` may see `user`.
pub fn can_see(caller: &Principal, user: &User) -> bool {
    match caller.role {
        Role::Admin => true,
        Role::Manager => user.enterprise == caller.enterprise,
        Role::Service => user.id == caller.id,
    }
}

/// Loads a user the caller may see, or "not found".
pub async fn visible(state: &AppState, caller: &Principal, id: Uuid) -> Result<User, ApiError> {
    match state.store.user(id).await {
        Ok(u) if can_see(caller, &u) => Ok(u),
        Ok(_) | Err(StorageError::NotFound) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

/// Loads a user the caller may change.
async fn manageable(state: &AppState, caller: &Principal, id: Uuid) -> Result<User, ApiError> {
    if caller.role == Role::Service {
        return Err(ApiError::Forbidden(
            "An API key may read its own record but change nothing.".into(),
        ));
    }
    let user = visible(state, caller, id).await?;
    if caller.role == Role::Manager && user.role == Role::Admin.as_str() {
        return Err(ApiError::Forbidden("A manager cannot change an admin.".into()));
    }
    Ok(user)
}

/// Creates a user and returns it with its token, which is shown this once.
pub async fn create(state: &AppState, caller: &Principal, input: CreateUser) -> Result<(User, String), ApiError> {
    if caller.role == Role::Service {
        return Err(ApiError::Forbidden("An API key cannot create users.".into()));
    }
    let enterprise = input
        .enterprise
        .map(Enterprise::into_inner)
        .unwrap_or_else(|| caller.enterprise.clone());
    if !caller.manages(&enterprise) {
        return Err(ApiError::Forbidden(format!(
            "You may only create users in your enterprise {:?}.",
            caller.enterprise
        )));
    }
    let role = match (input.is_service_account, input.role) {
        (true, None | Some(Role::Service)) => Role::Service,
        (true, Some(_)) => {
            return Err(ApiError::field(
                "role",
                "a service account (API key) always has the role \"service\"",
            ));
        }
        (false, None) => Role::Manager,
        (false, Some(Role::Service)) => {
            return Err(ApiError::field(
                "role",
                "a human user is \"admin\" or \"manager\"; use is_service_account for API keys",
            ));
        }
        (false, Some(r)) => r,
    };
    if role == Role::Admin && caller.role != Role::Admin {
        return Err(ApiError::Forbidden("Only an admin may create an admin.".into()));
    }
    let password_hash = match input.password {
        Some(_) if input.is_service_account => {
            return Err(ApiError::field(
                "password",
                "only human users (is_service_account: false) have a password",
            ));
        }
        Some(p) => Some(state.auth.hash_password(p.expose().to_owned()).await?),
        None => None,
    };
    let token = blocking(secret::generate_token).await??;
    let new = NewUser {
        username: input.username.into_inner(),
        is_service_account: input.is_service_account,
        enterprise,
        role: role.as_str().to_owned(),
        token_lookup: token.lookup.clone(),
        token_hash: token.hash.clone(),
        password_hash,
    };
    let user = state
        .store
        .create_user(new, fleetca_storage::now())
        .await
        .map_err(|e| match e {
            StorageError::Conflict(_) => {
                ApiError::Conflict("A user with this username already exists; choose another username.".into())
            }
            other => other.into(),
        })?;
    tracing::info!(user_id = %user.id, username = %user.username, by = %caller.username, "user created");
    Ok((user, token.plaintext))
}

/// One page of the users the caller may see.
pub async fn list(
    state: &AppState,
    caller: &Principal,
    mut filter: UserFilter,
    page: PageRequest,
) -> Result<(Vec<User>, u64), ApiError> {
    match caller.role {
        Role::Admin => {}
        Role::Manager => {
            if !caller.pin_enterprise(&mut filter.enterprise) {
                return Ok((Vec::new(), 0));
            }
        }
        Role::Service => {
            let me = state.store.user(caller.id).await?;
            let matches = filter.enterprise.as_ref().is_none_or(|e| *e == me.enterprise)
                && filter.is_service_account.is_none_or(|v| v == me.is_service_account)
                && filter.is_active.is_none_or(|v| v == me.is_active)
                && filter.search.as_ref().is_none_or(|s| me.username.contains(s.as_str()));
            return Ok(if matches && page.page == 1 {
                (vec![me], 1)
            } else {
                (Vec::new(), u64::from(matches))
            });
        }
    }
    Ok(state.store.list_users(&filter, page.storage()).await?)
}

/// Changes a user's role or active flag. Deactivating also revokes the user's active
/// certificates and republishes the CRL before returning.
pub async fn patch(state: &AppState, caller: &Principal, id: Uuid, patch: UserPatch) -> Result<User, ApiError> {
    let user = manageable(state, caller, id).await?;
    if let Some(role) = patch.role.as_deref().and_then(Role::parse) {
        if role == Role::Admin && caller.role != Role::Admin {
            return Err(ApiError::Forbidden("Only an admin may make someone an admin.".into()));
        }
        if user.is_service_account != (role == Role::Service) {
            return Err(ApiError::field(
                "role",
                "an API key has the role \"service\"; a human user \"admin\" or \"manager\"",
            ));
        }
    }
    if patch.is_active == Some(false) && user.id == caller.id {
        return Err(ApiError::Conflict(
            "You cannot deactivate your own account; ask another admin.".into(),
        ));
    }
    let (user, revoked) = state
        .store
        .update_user(id, patch, DEACTIVATION_REASON.name(), fleetca_storage::now())
        .await?;
    state.user_changed(id).await;
    if !revoked.is_empty() {
        tracing::info!(user_id = %id, count = revoked.len(), "revoked the certificates of a deactivated API key");
        state.crl.add_revocations(revoked.iter()).await?;
        for cert in &revoked {
            state.certificate_revoked(cert).await;
        }
    }
    Ok(user)
}

/// Issues a new token; the old one stops working at once.
pub async fn rotate_token(state: &AppState, caller: &Principal, id: Uuid) -> Result<(User, String), ApiError> {
    manageable(state, caller, id).await?;
    let token = blocking(secret::generate_token).await??;
    let user = state
        .store
        .set_user_token(id, token.lookup, token.hash, fleetca_storage::now())
        .await?;
    state.user_changed(id).await;
    tracing::info!(user_id = %id, by = %caller.username, "token rotated");
    Ok((user, token.plaintext))
}
