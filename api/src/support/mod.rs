//! What every context uses and nothing of ours beneath `domain`: the service [`Error`] (in
//! domain words, never HTTP), the clock, caches, rate and failure limits, atomic file writes,
//! the outgoing HTTP client and the blocking pool. It must never import a context.

pub mod cache;
pub mod clock;
pub mod error;
pub mod limits;

pub use error::Error;

pub use fleetca_cli::files;
pub use fleetca_cli::net::{describe_request_error, error_chain, http_client};

/// Runs CPU-heavy work (argon2, key generation) on the blocking pool.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("blocking task failed: {e}")))
}

/// The environment variables that hold fleetca's secrets: never passed to a command it runs
/// (the CRL reload command, a broker's disconnect command).
pub const SECRET_VARIABLES: [&str; 5] = [
    "FLEETCA_MASTER_KEY",
    "FLEETCA_PKCS11_PIN",
    "FLEETCA_BOOTSTRAP_TOKEN",
    "FLEETCA_BROKER_SECRET",
    "FLEETCA_PROXY_SECRET",
];

/// A command that runs without fleetca's secrets in its environment.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    for name in SECRET_VARIABLES {
        cmd.env_remove(name);
    }
    cmd
}

impl crate::domain::PageRequest {
    /// The page as storage reads it.
    pub fn storage(self) -> fleetca_storage::Page {
        fleetca_storage::Page {
            offset: self.offset(),
            limit: self.page_size,
        }
    }
}
