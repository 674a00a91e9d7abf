//! What every context uses and nothing of ours beneath `domain`: the service [`Error`] (in
//! domain words, never HTTP), the clock, caches, rate and failure limits, atomic file writes,
//! the outgoing HTTP client and the blocking pool. It must never import a context.

pub mod cache;
pub mod clock;
pub mod error;
pub mod files;
pub mod limits;

pub use error::Error;

/// An HTTP client builder for fleetca's outgoing calls (webhooks, brokers): rustls with the
/// ring provider, no proxy from the environment, no redirects.
pub fn http_client() -> reqwest::ClientBuilder {
    // reqwest takes the process's default provider; fleetca uses ring everywhere.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // An idle pooled connection is dropped after 2 s: servers close theirs after a few
    // seconds (actix and Node after 5), and a request sent on one the server is closing
    // fails for nothing — a webhook delivery then counts a failed attempt.
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(std::time::Duration::from_secs(2))
}

/// An error and its chain of causes in one line (`what: cause: cause`), for logs and for
/// what an outgoing call's log shows (a delivery's `last_error`, a disconnect's).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// An outgoing HTTP call's failure in words: what went wrong, then its causes.
pub fn describe_request_error(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(cause) => format!("{what}: {}", error_chain(cause)),
        None => what.to_owned(),
    }
}

/// Runs CPU-heavy work (argon2, key generation) on the blocking pool.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("blocking task failed: {e}")))
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
