//! Users: service accounts (API keys) and human admins/managers.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use crate::audit::{NewAudit, with_target_id};
use crate::entity::certificates::{Column as CertCol, Entity as Certificates};
use crate::entity::users::{ActiveModel, Column, Entity as Users};
use crate::{Certificate, Page, StorageError, Store, User};

/// A user to insert. The token and password arrive already hashed.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// Unique username.
    pub username: String,
    /// API key (true) or human (false).
    pub is_service_account: bool,
    /// Enterprise code.
    pub enterprise: String,
    /// `admin`, `manager` or `service`.
    pub role: String,
    /// Non-secret token lookup id.
    pub token_lookup: String,
    /// argon2id hash of the token.
    pub token_hash: String,
    /// argon2id hash of the password, if any.
    pub password_hash: Option<String>,
}

/// Filters of a user listing; `None` means "any".
#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    /// Only this enterprise.
    pub enterprise: Option<String>,
    /// Only API keys or only humans.
    pub is_service_account: Option<bool>,
    /// Only active or only inactive.
    pub is_active: Option<bool>,
    /// Username contains this.
    pub search: Option<String>,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct UserPatch {
    /// New active flag.
    pub is_active: Option<bool>,
    /// New role.
    pub role: Option<String>,
}

impl Store {
    /// Inserts a user. A taken username is [`StorageError::Conflict`].
    pub async fn create_user(
        &self,
        new: NewUser,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<User, StorageError> {
        let txn = self.write_txn().await?;
        // A device certificate's CN is its device id, and a broker that takes a certificate's
        // CN as the MQTT username would take that certificate for a user of the same name:
        // no user may be named like a device of any tenant. (Issuing a device certificate
        // checks the other way round.) Inside the write transaction, so no device of that id
        // can appear between the check and the insert on SQLite, whose writers take turns.
        let devices = crate::entity::devices::Entity::find()
            .filter(crate::entity::devices::Column::DeviceId.eq(new.username.as_str()))
            .count(&txn)
            .await?;
        if devices > 0 {
            return Err(StorageError::Conflict("device".into()));
        }
        let model = ActiveModel {
            id: Set(Uuid::new_v4()),
            username: Set(new.username),
            is_service_account: Set(new.is_service_account),
            enterprise: Set(new.enterprise),
            role: Set(new.role),
            is_active: Set(true),
            token_lookup: Set(new.token_lookup),
            token_hash: Set(new.token_hash),
            password_hash: Set(new.password_hash),
            created_at: Set(now),
            updated_at: Set(now),
        };
        let user = match model.insert(&txn).await {
            Ok(user) => user,
            Err(e) => {
                return match StorageError::from(e) {
                    StorageError::Conflict(msg) if msg.contains("token_lookup") => {
                        Err(StorageError::Conflict("token".into()))
                    }
                    StorageError::Conflict(_) => Err(StorageError::Conflict("username".into())),
                    other => Err(other),
                };
            }
        };
        let audit = with_target_id(audit, &user.id.to_string());
        crate::outbox::append(&txn, &audit, now).await?;
        txn.commit().await?;
        Ok(user)
    }

    /// Counts all users.
    pub async fn count_users(&self) -> Result<u64, StorageError> {
        Ok(Users::find().count(self.conn()).await?)
    }

    /// How many active human admins have a password, and how many have none.
    pub async fn count_admin_passwords(&self) -> Result<(u64, u64), StorageError> {
        let admins = || {
            Users::find()
                .filter(Column::Role.eq("admin"))
                .filter(Column::IsActive.eq(true))
                .filter(Column::IsServiceAccount.eq(false))
        };
        let with = admins()
            .filter(Column::PasswordHash.is_not_null())
            .count(self.conn())
            .await?;
        let without = admins()
            .filter(Column::PasswordHash.is_null())
            .count(self.conn())
            .await?;
        Ok((with, without))
    }

    /// A user by id.
    pub async fn user(&self, id: Uuid) -> Result<User, StorageError> {
        Users::find_by_id(id)
            .one(self.conn())
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// A user by username.
    pub async fn user_by_username(&self, username: &str) -> Result<User, StorageError> {
        Users::find()
            .filter(Column::Username.eq(username))
            .one(self.conn())
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// A user by the lookup part of a presented token.
    pub async fn user_by_token_lookup(&self, lookup: &str) -> Result<User, StorageError> {
        Users::find()
            .filter(Column::TokenLookup.eq(lookup))
            .one(self.conn())
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// Up to `limit` active API keys (service accounts) in id order, from just after `after`:
    /// pages of every key, for loading a cache whole.
    pub async fn active_service_accounts_after(
        &self,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<User>, StorageError> {
        let mut cond = Condition::all()
            .add(Column::IsServiceAccount.eq(true))
            .add(Column::IsActive.eq(true));
        if let Some(after) = after {
            cond = cond.add(Column::Id.gt(after));
        }
        Ok(Users::find()
            .filter(cond)
            .order_by_asc(Column::Id)
            .limit(limit)
            .all(self.conn())
            .await?)
    }

    /// One page of users, newest first, and the total that match.
    pub async fn list_users(&self, filter: &UserFilter, page: Page) -> Result<(Vec<User>, u64), StorageError> {
        let mut cond = Condition::all();
        if let Some(e) = &filter.enterprise {
            cond = cond.add(Column::Enterprise.eq(e.as_str()));
        }
        if let Some(v) = filter.is_service_account {
            cond = cond.add(Column::IsServiceAccount.eq(v));
        }
        if let Some(v) = filter.is_active {
            cond = cond.add(Column::IsActive.eq(v));
        }
        if let Some(s) = &filter.search {
            cond = cond.add(Column::Username.contains(s.as_str()));
        }
        let query = Users::find().filter(cond);
        self.page_of(
            query,
            |q| q.order_by_desc(Column::CreatedAt).order_by_asc(Column::Username),
            page,
        )
        .await
    }

    /// Applies a patch. Deactivating revokes the user's active certificates in the same
    /// transaction (reason `reason`); they are returned so the caller can re-sign the CRL.
    pub async fn update_user(
        &self,
        id: Uuid,
        patch: UserPatch,
        revoke_reason: &str,
        audit: &[NewAudit],
        revocations: crate::certificates::RevocationRecords<'_>,
        now: DateTime<Utc>,
    ) -> Result<(User, Vec<Certificate>), StorageError> {
        let txn = self.write_txn().await?;
        let user = Users::find_by_id(id).one(&txn).await?.ok_or(StorageError::NotFound)?;
        let mut model: ActiveModel = user.into();
        if let Some(active) = patch.is_active {
            model.is_active = Set(active);
        }
        if let Some(role) = patch.role {
            model.role = Set(role);
        }
        model.updated_at = Set(now);
        let user = model.update(&txn).await?;
        let mut revoked = Vec::new();
        if patch.is_active == Some(false) {
            let active = Certificates::find()
                .filter(CertCol::ApiKeyId.eq(id))
                .filter(CertCol::RevokedAt.is_null())
                .filter(CertCol::NotAfter.gt(now))
                .all(&txn)
                .await?;
            if !active.is_empty() {
                Certificates::update_many()
                    .col_expr(CertCol::RevokedAt, Expr::value(now))
                    .col_expr(CertCol::RevocationReason, Expr::value(revoke_reason))
                    .filter(CertCol::Id.is_in(active.iter().map(|c| c.id)))
                    .exec(&txn)
                    .await?;
            }
            revoked = active
                .into_iter()
                .map(|mut c| {
                    c.revoked_at = Some(now);
                    c.revocation_reason = Some(revoke_reason.to_owned());
                    c
                })
                .collect();
        }
        let mut records = audit.to_vec();
        records.extend(revocations(&revoked));
        crate::outbox::append(&txn, &records, now).await?;
        txn.commit().await?;
        Ok((user, revoked))
    }

    /// Replaces a user's token; the old one stops matching at once.
    pub async fn set_user_token(
        &self,
        id: Uuid,
        token_lookup: String,
        token_hash: String,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<User, StorageError> {
        let change = |model: &mut ActiveModel| {
            model.token_lookup = Set(token_lookup);
            model.token_hash = Set(token_hash);
            model.updated_at = Set(now);
        };
        self.update_audited(Users::find_by_id(id), change, audit, now).await
    }

    /// Sets (or clears) a user's password hash.
    pub async fn set_user_password(
        &self,
        id: Uuid,
        password_hash: Option<String>,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<User, StorageError> {
        let change = |model: &mut ActiveModel| {
            model.password_hash = Set(password_hash);
            model.updated_at = Set(now);
        };
        self.update_audited(Users::find_by_id(id), change, audit, now).await
    }
}
