use sea_orm::{DbErr, SqlErr};
use thiserror::Error;

/// What a repository call can fail with. No HTTP here: `api` decides what each means to
/// a client.
#[derive(Clone, Debug, Error)]
pub enum StorageError {
    /// No such row (or none the caller may see).
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write; names what was duplicated when known.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A per-owner limit refused the write.
    #[error("limit reached")]
    LimitReached,
    /// The database could not be reached; the request may succeed later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else; the text is for logs only.
    #[error("database error: {0}")]
    Internal(String),
}

impl From<DbErr> for StorageError {
    fn from(e: DbErr) -> Self {
        if let Some(SqlErr::UniqueConstraintViolation(msg)) = e.sql_err() {
            return StorageError::Conflict(msg);
        }
        match e {
            // An update of a row that a concurrent delete removed.
            DbErr::RecordNotFound(_) | DbErr::RecordNotUpdated => StorageError::NotFound,
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => StorageError::Unavailable(e.to_string()),
            other => {
                let text = other.to_string();
                // sqlx reports a dropped server connection as an I/O or protocol error.
                if text.contains("Connection refused")
                    || text.contains("connection closed")
                    || text.contains("broken pipe")
                    || text.contains("PoolTimedOut")
                    || text.contains("pool timed out")
                {
                    StorageError::Unavailable(text)
                } else {
                    StorageError::Internal(text)
                }
            }
        }
    }
}
