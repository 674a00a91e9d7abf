//! The orchestration layer: each flow (authorize → sign with `ca` → store → publish the
//! CRL) lives here, once. Nothing in this module knows about HTTP requests or responses;
//! handlers parse input, call one function here and serialize what it returns.

pub mod acl;
pub mod auth;
pub mod broker;
pub mod cache;
pub mod certificates;
pub mod crl;
pub mod devices;
pub mod sessions;
pub mod sync;
pub mod users;

use crate::error::ApiError;

/// Runs CPU-heavy work (argon2) on the blocking pool.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("blocking task failed: {e}")))
}
