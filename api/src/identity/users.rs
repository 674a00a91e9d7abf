//! Users: API keys (service accounts) and human admins and managers.
//!
//! Scope: an admin manages everyone; a manager manages the non-admin users of its own
//! enterprise and sees nothing of others (they are "not found", not "forbidden"); a
//! service account sees only itself and changes nothing (the handlers' extractors keep it
//! out of every change).

use std::sync::Arc;

use fleetca_ca::crl::Reason;
use fleetca_storage::users::{NewUser, UserFilter, UserPatch};
use fleetca_storage::{StorageError, Store, User};
use uuid::Uuid;

use crate::domain::AuditAction;
use crate::domain::EventKind;
use crate::domain::{Enterprise, Listing, PageRequest, Password, Principal, RequestContext, Role, Username};
use crate::identity::hashing::Hasher;
use crate::outbox::audit;
use crate::outbox::changes::Changes;
use crate::support::Error;
use crate::support::clock::Clock;
use serde_json::json;

/// The reason recorded on certificates revoked because their API key was deactivated.
pub const DEACTIVATION_REASON: Reason = Reason::CessationOfOperation;

/// A validated create request.
#[derive(Debug)]
pub struct CreateUser {
    pub username: Username,
    pub is_service_account: bool,
    pub enterprise: Option<Enterprise>,
    pub role: Option<Role>,
    pub password: Option<Password>,
}

/// A validated change of a user.
#[derive(Debug, Default)]
pub struct UserChange {
    pub is_active: Option<bool>,
    pub role: Option<Role>,
}

/// The user flows.
pub struct UserService {
    store: Store,
    hasher: Arc<Hasher>,
    changes: Arc<Changes>,
    clock: Arc<dyn Clock>,
}

/// Whether `caller` may see `user`.
fn can_see(caller: &Principal, user: &User) -> bool {
    match caller.role {
        Role::Admin => true,
        Role::Manager => user.enterprise == caller.enterprise,
        Role::Service => user.id == caller.id,
    }
}

impl UserService {
    pub fn new(store: Store, hasher: Arc<Hasher>, changes: Arc<Changes>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            hasher,
            changes,
            clock,
        }
    }

    /// A user the caller may see, or "not found".
    pub async fn get(&self, caller: &Principal, id: Uuid) -> Result<User, Error> {
        match self.store.user(id).await {
            Ok(u) if can_see(caller, &u) => Ok(u),
            Ok(_) | Err(StorageError::NotFound) => Err(Error::NotFound("user")),
            Err(e) => Err(e.into()),
        }
    }

    /// A user the caller may change.
    async fn manageable(&self, caller: &Principal, id: Uuid) -> Result<User, Error> {
        let user = self.get(caller, id).await?;
        if !caller.manages(&user.enterprise) {
            return Err(Error::Forbidden("You may read this user but change nothing.".into()));
        }
        if caller.role == Role::Manager && user.role == Role::Admin.as_str() {
            return Err(Error::Forbidden("A manager cannot change an admin.".into()));
        }
        Ok(user)
    }

    /// Creates a user and returns it with its token, which is shown this once.
    pub async fn create(&self, caller: &Principal, input: CreateUser) -> Result<(User, String), Error> {
        let enterprise = input
            .enterprise
            .map(Enterprise::into_inner)
            .unwrap_or_else(|| caller.enterprise.clone());
        if !caller.manages(&enterprise) {
            return Err(Error::Forbidden(format!(
                "You may only create users in your enterprise {:?}.",
                caller.enterprise
            )));
        }
        let role = match (input.is_service_account, input.role) {
            (true, None | Some(Role::Service)) => Role::Service,
            (true, Some(_)) => {
                return Err(Error::invalid(
                    "role",
                    "a service account (API key) always has the role \"service\"",
                ));
            }
            (false, None) => Role::Manager,
            (false, Some(Role::Service)) => {
                return Err(Error::invalid(
                    "role",
                    "a human user is \"admin\" or \"manager\"; use is_service_account for API keys",
                ));
            }
            (false, Some(r)) => r,
        };
        if role == Role::Admin && caller.role != Role::Admin {
            return Err(Error::Forbidden("Only an admin may create an admin.".into()));
        }
        let password_hash = match input.password {
            Some(_) if input.is_service_account => {
                return Err(Error::invalid(
                    "password",
                    "only human users (is_service_account: false) have a password",
                ));
            }
            Some(p) => Some(self.hasher.hash_password(p.expose().to_owned()).await?),
            None => None,
        };
        let token = self.hasher.new_token().await?;
        let new = NewUser {
            username: input.username.into_inner(),
            is_service_account: input.is_service_account,
            enterprise,
            role: role.as_str().to_owned(),
            token_lookup: token.lookup.clone(),
            token_hash: token.hash.clone(),
            password_hash,
        };
        let record = audit::by(
            caller,
            AuditAction::UserCreate,
            "user",
            "",
            Some(&new.enterprise),
            json!({"username": new.username, "role": new.role, "is_service_account": new.is_service_account}),
        );
        let user = self
            .store
            .create_user(new, &[record], self.clock.now())
            .await
            .map_err(|e| match e {
                // One answer whether a user or a device (of any tenant) has the name, so another
                // enterprise's device ids cannot be probed this way.
                StorageError::Conflict(_) => Error::Conflict(
                    "This username is taken, by a user or as a device id (a broker that takes a certificate's CN as the username could not tell them apart); choose another username.".into(),
                ),
                other => other.into(),
            })?;
        tracing::info!(user_id = %user.id, username = %user.username, by = %caller.username, "user created");
        Ok((user, token.plaintext))
    }

    /// One page of the users the caller may see.
    pub async fn list(
        &self,
        caller: &Principal,
        mut filter: UserFilter,
        page: PageRequest,
    ) -> Result<Listing<User>, Error> {
        if !caller.pin_enterprise(&mut filter.enterprise) {
            return Ok(Listing::empty());
        }
        if caller.role == Role::Service {
            // An API key sees itself alone.
            let me = self.store.user(caller.id).await?;
            let matches = filter.enterprise.as_ref().is_none_or(|e| *e == me.enterprise)
                && filter.is_service_account.is_none_or(|v| v == me.is_service_account)
                && filter.is_active.is_none_or(|v| v == me.is_active)
                && filter.search.as_ref().is_none_or(|s| me.username.contains(s.as_str()));
            return Ok(Listing {
                count: u64::from(matches),
                items: if matches && page.page == 1 {
                    vec![me]
                } else {
                    Vec::new()
                },
            });
        }
        Ok(self.store.list_users(&filter, page.storage()).await?.into())
    }

    /// Changes a user's role or active flag. Deactivating also revokes the user's active
    /// certificates and republishes the CRL before returning.
    pub async fn change(&self, caller: &Principal, id: Uuid, change: UserChange) -> Result<User, Error> {
        let user = self.manageable(caller, id).await?;
        if let Some(role) = change.role {
            if role == Role::Admin && caller.role != Role::Admin {
                return Err(Error::Forbidden("Only an admin may make someone an admin.".into()));
            }
            if user.is_service_account != (role == Role::Service) {
                return Err(Error::invalid(
                    "role",
                    "an API key has the role \"service\"; a human user \"admin\" or \"manager\"",
                ));
            }
        }
        if change.is_active == Some(false) && user.id == caller.id {
            return Err(Error::Conflict(
                "You cannot deactivate your own account; ask another admin.".into(),
            ));
        }
        let deactivating = change.is_active == Some(false);
        let patch = UserPatch {
            is_active: change.is_active,
            role: change.role.map(|r| r.as_str().to_owned()),
        };
        let action = match change.is_active {
            Some(false) => AuditAction::UserDeactivate,
            Some(true) => AuditAction::UserActivate,
            None => AuditAction::UserUpdate,
        };
        let mut record = audit::by(
            caller,
            action,
            "user",
            &id.to_string(),
            Some(&user.enterprise),
            json!({"username": user.username, "is_active": patch.is_active, "role": patch.role}),
        );
        if deactivating && user.is_service_account && user.is_active {
            record.event = Some(EventKind::ApiKeyDeactivated.as_str().into());
        }
        let (user, revoked) = self
            .store
            .update_user(
                id,
                patch,
                DEACTIVATION_REASON.name(),
                &[record.clone()],
                &audit::revocations(record, DEACTIVATION_REASON.name()),
                self.clock.now(),
            )
            .await?;
        self.changes.user_changed(id).await;
        if deactivating {
            self.store.delete_user_sessions(id, None).await?;
        }
        if !revoked.is_empty() {
            tracing::info!(user_id = %id, count = revoked.len(), "revoked the certificates of a deactivated API key");
            self.changes.revoked(&revoked).await?;
        }
        Ok(user)
    }

    /// Issues a new token; the old one stops working at once.
    pub async fn rotate_token(&self, caller: &Principal, id: Uuid) -> Result<(User, String), Error> {
        let current = self.manageable(caller, id).await?;
        let token = self.hasher.new_token().await?;
        let record = audit::by(
            caller,
            AuditAction::UserRotateToken,
            "user",
            &id.to_string(),
            Some(&current.enterprise),
            json!({"username": current.username}),
        );
        let user = self
            .store
            .set_user_token(id, token.lookup, token.hash, &[record], self.clock.now())
            .await?;
        self.changes.user_changed(id).await;
        tracing::info!(user_id = %id, by = %caller.username, "token rotated");
        Ok((user, token.plaintext))
    }
}

impl Principal {
    /// The caller a stored user is (an unknown stored role gives the least access, logged).
    pub fn from_user(u: &User) -> Self {
        Self {
            id: u.id,
            username: u.username.clone(),
            enterprise: u.enterprise.clone(),
            role: Role::stored(&u.role, &u.username),
            is_service_account: u.is_service_account,
            context: RequestContext::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{Kit, admin, manager};

    fn human(username: &str, enterprise: &str, role: Option<Role>) -> CreateUser {
        CreateUser {
            username: Username::parse(username).unwrap(),
            is_service_account: false,
            enterprise: Some(Enterprise::parse(enterprise).unwrap()),
            role,
            password: None,
        }
    }

    #[tokio::test]
    async fn managers_create_within_their_enterprise_and_never_admins() {
        let kit = Kit::new().await;
        let m = manager("acme");
        assert!(kit.users.create(&m, human("h-1", "acme", None)).await.is_ok());
        assert!(matches!(
            kit.users.create(&m, human("h-2", "globex", None)).await,
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            kit.users.create(&m, human("h-3", "acme", Some(Role::Admin))).await,
            Err(Error::Forbidden(_))
        ));
        let (user, _) = kit
            .users
            .create(&admin(), human("h-4", "acme", Some(Role::Admin)))
            .await
            .unwrap();
        assert!(matches!(
            kit.users
                .change(
                    &m,
                    user.id,
                    UserChange {
                        is_active: Some(false),
                        role: None
                    }
                )
                .await,
            Err(Error::Forbidden(_))
        ));
        let (other, _) = kit.users.create(&admin(), human("h-5", "globex", None)).await.unwrap();
        assert!(matches!(kit.users.get(&m, other.id).await, Err(Error::NotFound(_))));
    }

    #[tokio::test]
    async fn deactivating_a_key_revokes_its_certificates_and_publishes_the_crl() {
        let kit = Kit::new().await;
        let (key, token) = kit.api_key("svc-gone", "acme").await;
        kit.certificate(&key).await;
        kit.certificate(&key).await;
        let before = kit.crl.current().unwrap().number;
        kit.users
            .change(
                &admin(),
                key.id,
                UserChange {
                    is_active: Some(false),
                    role: None,
                },
            )
            .await
            .unwrap();
        let crl = kit.crl.current().unwrap();
        assert_eq!(crl.entries, 2);
        assert!(crl.number > before);
        assert!(kit.tokens.verify(&token).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_rotated_token_replaces_the_old_one_at_once() {
        let kit = Kit::new().await;
        let (key, old) = kit.api_key("svc-rot", "acme").await;
        assert!(kit.tokens.verify(&old).await.unwrap().is_some());
        let (_, new) = kit.users.rotate_token(&admin(), key.id).await.unwrap();
        assert!(kit.tokens.verify(&old).await.unwrap().is_none());
        assert_eq!(kit.tokens.verify(&new).await.unwrap().unwrap().id, key.id);
    }
}
