//! What a service call can fail with, in the domain's words. No HTTP status here:
//! the HTTP layer's `error` module alone decides what each variant means to a client. Storage and crypto
//! failures are folded in without their text: database messages never reach a client.

use fleetca_storage::StorageError;

use crate::domain::FieldErrors;

/// A service failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing of this kind exists, or not in the caller's scope (`what` names the kind).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change clashes with what exists; the message says what to do.
    #[error("{0}")]
    Conflict(String),
    /// Like [`Error::Conflict`], for many rows at once (keyed `{row}.{field}`).
    #[error("{0}")]
    ConflictRows(String, FieldErrors),
    /// The caller may not do this; the message says why.
    #[error("{0}")]
    Forbidden(String),
    /// Input that breaks a rule, by field.
    #[error("invalid input")]
    Invalid(FieldErrors),
    /// No valid credentials.
    #[error("authentication required")]
    Unauthenticated,
    /// Credentials that answered a challenge which has since expired (a Digest nonce):
    /// authenticate again.
    #[error("stale credentials")]
    Stale,
    /// A sign-in with a wrong username or password.
    #[error("wrong username or password")]
    BadCredentials,
    /// Too many attempts or changes; retry after this many seconds.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// A dependency (the database) is unreachable; nothing was changed.
    #[error("unavailable")]
    Unavailable,
    /// The CA's key cannot sign now (its PKCS#11 token does not answer); nothing was
    /// changed.
    #[error("CA key unavailable")]
    KeyUnavailable,
    /// The CA this instance issues from was revoked since it started; nothing was changed.
    #[error("issuing CA revoked")]
    IssuerRevoked,
    /// Anything else; the text is for the log only.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// A problem with one field.
    pub fn invalid(field: &str, why: impl Into<String>) -> Self {
        let mut errors = FieldErrors::new();
        errors.insert(field.to_owned(), vec![why.into()]);
        Error::Invalid(errors)
    }
}

impl From<FieldErrors> for Error {
    fn from(errors: FieldErrors) -> Self {
        Error::Invalid(errors)
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => Error::NotFound("object"),
            StorageError::Conflict(cause) => {
                // The constraint's text is the database's; the log keeps it.
                tracing::debug!(%cause, "unique constraint refused a write");
                Error::Conflict("An object with this identity already exists; choose another.".into())
            }
            StorageError::LimitReached => Error::Conflict("A limit was reached; nothing was changed.".into()),
            StorageError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                Error::Unavailable
            }
            StorageError::Internal(cause) => Error::Internal(cause),
        }
    }
}

impl From<fleetca_ca::CaError> for Error {
    fn from(e: fleetca_ca::CaError) -> Self {
        match e {
            fleetca_ca::CaError::KeyUnavailable(why) => {
                tracing::warn!(%why, "the CA key is unavailable");
                Error::KeyUnavailable
            }
            other => Error::Internal(other.to_string()),
        }
    }
}

/// Maps "not found" from storage to "not found" of a named kind; other errors as usual.
pub fn not_found_as(what: &'static str) -> impl FnOnce(StorageError) -> Error {
    move |e| match e {
        StorageError::NotFound => Error::NotFound(what),
        other => other.into(),
    }
}
