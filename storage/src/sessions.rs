//! Browser sessions of human users.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::entity::sessions::{ActiveModel, Column, Entity as Sessions, Model as Session};
use crate::entity::users::Entity as Users;
use crate::{StorageError, Store, User};

impl Store {
    /// Stores a session (by the digest of its cookie value).
    pub async fn create_session(
        &self,
        id_digest: String,
        user_id: Uuid,
        csrf_token: String,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        ActiveModel {
            id: Set(id_digest),
            user_id: Set(user_id),
            csrf_token: Set(csrf_token),
            created_at: Set(now),
            expires_at: Set(expires_at),
        }
        .insert(self.conn())
        .await?;
        // Housekeeping: expired sessions go.
        Sessions::delete_many()
            .filter(Column::ExpiresAt.lte(now))
            .exec(self.conn())
            .await?;
        Ok(())
    }

    /// An unexpired session and its user.
    pub async fn session(&self, id_digest: &str, now: DateTime<Utc>) -> Result<(Session, User), StorageError> {
        let session = Sessions::find_by_id(id_digest)
            .one(self.conn())
            .await?
            .ok_or(StorageError::NotFound)?;
        if session.expires_at <= now {
            return Err(StorageError::NotFound);
        }
        let user = Users::find_by_id(session.user_id)
            .one(self.conn())
            .await?
            .ok_or(StorageError::NotFound)?;
        Ok((session, user))
    }

    /// Ends a session.
    pub async fn delete_session(&self, id_digest: &str) -> Result<(), StorageError> {
        Sessions::delete_by_id(id_digest).exec(self.conn()).await?;
        Ok(())
    }

    /// Ends every session of a user but `keep` (a password change or reset, a
    /// deactivation).
    pub async fn delete_user_sessions(&self, user_id: Uuid, keep: Option<&str>) -> Result<(), StorageError> {
        let mut q = Sessions::delete_many().filter(Column::UserId.eq(user_id));
        if let Some(k) = keep {
            q = q.filter(Column::Id.ne(k));
        }
        q.exec(self.conn()).await?;
        Ok(())
    }
}
