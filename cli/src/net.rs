//! Outgoing HTTP, the same for the client commands and the server's own calls (webhooks,
//! brokers' admin APIs): one client builder, and a failure described in words.

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
