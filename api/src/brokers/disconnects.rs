//! Revocation that ends live sessions. Brokers check credentials and CRLs only when a client
//! connects; a revoked certificate, a deactivated key or a disabled device would stay
//! connected until it reconnects. So a change that invalidates a credential also queues a
//! disconnect (in its transaction, see `fleetca_storage::disconnects`), and the [`Worker`] of
//! every instance asks each configured broker to close the affected clients' connections,
//! retrying with backoff until every broker confirmed. The broker then refuses the reconnect
//! as it refuses any other.
//!
//! Adapters: RabbitMQ's management HTTP API (find the user's connections, close them with a
//! reason), EMQX 5's REST API (kick the user's clients), and a command for anything else
//! (run without a shell, the target in its environment).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use fleetca_storage::disconnects::{Disconnect, Outcome};
use fleetca_storage::{StorageError, Store};
use serde::Deserialize;
use uuid::Uuid;

use crate::brokers::decision::parse_device_username;
use crate::domain::{Listing, PageRequest, Principal, Role, Secret};
use crate::support::Error;
use crate::support::clock::Clock;

/// One broker fleetca tells about sessions to end.
#[derive(Clone, Debug)]
pub enum BrokerAdapter {
    /// RabbitMQ's management API (`http://host:15672`), as a user with the `monitoring`
    /// (list) and `administrator` or `management` + policy to close connections.
    RabbitMq {
        name: String,
        url: String,
        username: String,
        password: Secret,
        /// Only connections of this virtual host (default: all).
        vhost: Option<String>,
    },
    /// EMQX 5's REST API (`http://host:18083`), with an API key and secret.
    Emqx {
        name: String,
        url: String,
        api_key: String,
        api_secret: Secret,
    },
    /// A program and its arguments, run without a shell; the target is in its environment.
    Command { name: String, argv: Vec<String> },
}

impl BrokerAdapter {
    pub fn name(&self) -> &str {
        match self {
            BrokerAdapter::RabbitMq { name, .. }
            | BrokerAdapter::Emqx { name, .. }
            | BrokerAdapter::Command { name, .. } => name,
        }
    }
}

/// Whose sessions end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sessions {
    /// Every session of a username (an API key deactivated).
    User { username: String },
    /// Its password sessions only (an API key's token rotated: its certificates still hold).
    Passwords { username: String },
    /// The certificate sessions (TLS) of a certificate's common name.
    Certificate { common_name: String, serial: String },
    /// An HA1 device's password sessions, in any spelling of `device=…&tenant=…`.
    Device { tenant: String, device_id: String },
    /// A sign-based device: username `{device_key}&{product_key}`.
    SignDevice { product_key: String, device_key: String },
    /// Every device of a product: usernames ending `&{product_key}`.
    Product { product_key: String },
    /// Nothing connects with it (a claim or server certificate).
    Nobody,
}

impl Sessions {
    /// Whether a connection of `username` (over TLS or not) is one of these sessions.
    pub fn matches(&self, username: &str, tls: bool) -> bool {
        match self {
            Sessions::User { username: u } => username == u,
            Sessions::Passwords { username: u } => username == u && !tls,
            Sessions::Certificate { common_name, .. } => username == common_name && tls,
            Sessions::Device { tenant, device_id } => {
                !tls && parse_device_username(username).is_some_and(|(d, t)| &d == device_id && &t == tenant)
            }
            Sessions::SignDevice {
                product_key,
                device_key,
            } => username == format!("{device_key}&{product_key}"),
            Sessions::Product { product_key } => username
                .strip_suffix(product_key.as_str())
                .is_some_and(|rest| rest.ends_with('&') && rest.len() > 1),
            Sessions::Nobody => false,
        }
    }

    /// The one username these sessions have, if they have one spelling.
    pub fn username(&self) -> Option<String> {
        match self {
            Sessions::User { username } | Sessions::Passwords { username } => Some(username.clone()),
            Sessions::Certificate { common_name, .. } => Some(common_name.clone()),
            Sessions::Device { tenant, device_id } => Some(format!("device={device_id}&tenant={tenant}")),
            Sessions::SignDevice {
                product_key,
                device_key,
            } => Some(format!("{device_key}&{product_key}")),
            Sessions::Product { .. } | Sessions::Nobody => None,
        }
    }

    /// A substring of every matching username, to narrow a broker's search.
    fn search(&self) -> String {
        match self {
            Sessions::Device { device_id, .. } => device_id.clone(),
            Sessions::Product { product_key } => format!("&{product_key}"),
            other => other.username().unwrap_or_default(),
        }
    }

    fn scope(&self) -> &'static str {
        match self {
            Sessions::Passwords { .. } | Sessions::Device { .. } => "password",
            Sessions::Certificate { .. } => "certificate",
            _ => "all",
        }
    }
}

/// How disconnects are retried.
#[derive(Clone, Debug)]
pub struct DisconnectPolicy {
    pub brokers: Vec<BrokerAdapter>,
    /// How long a failing disconnect is retried.
    pub retry_period: Duration,
    /// How often the queue is read.
    pub poll: StdDuration,
}

impl Default for DisconnectPolicy {
    fn default() -> Self {
        Self {
            brokers: Vec::new(),
            retry_period: Duration::hours(24),
            poll: StdDuration::from_millis(200),
        }
    }
}

/// Reading the queue (the API and the UI).
pub struct DisconnectService {
    store: Store,
    brokers: Vec<String>,
}

impl DisconnectService {
    pub fn new(store: Store, policy: &DisconnectPolicy) -> Self {
        Self {
            store,
            brokers: policy.brokers.iter().map(|b| b.name().to_owned()).collect(),
        }
    }

    /// The names of the configured brokers.
    pub fn brokers(&self) -> &[String] {
        &self.brokers
    }

    /// One page of the disconnects the caller may see (a manager: its enterprise's).
    pub async fn list(
        &self,
        caller: &Principal,
        status: Option<&str>,
        page: PageRequest,
    ) -> Result<Listing<Disconnect>, Error> {
        let enterprise = match caller.role {
            Role::Admin => None,
            Role::Manager => Some(caller.enterprise.as_str()),
            Role::Service => return Ok(Listing::empty()),
        };
        Ok(self
            .store
            .list_disconnects(enterprise, status, page.storage())
            .await?
            .into())
    }
}

/// A connection a broker reported.
#[derive(Clone, Debug)]
struct Connection {
    /// What the broker closes it by (RabbitMQ's connection name, EMQX's client id).
    handle: String,
    username: String,
    /// `None` when the broker did not say.
    tls: Option<bool>,
    /// RabbitMQ's virtual host (empty elsewhere).
    vhost: String,
}

/// Ends sessions at the brokers; one per instance.
pub struct Worker {
    store: Store,
    clock: Arc<dyn Clock>,
    policy: DisconnectPolicy,
    client: reqwest::Client,
}

impl Worker {
    pub fn new(store: Store, clock: Arc<dyn Clock>, policy: DisconnectPolicy) -> Result<Self, String> {
        // Brokers are the operator's own, usually on an internal network: no address guard
        // here (unlike webhooks), but no redirects either.
        let client = crate::support::http_client()
            .timeout(StdDuration::from_secs(10))
            .user_agent(concat!("fleetca/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            store,
            clock,
            policy,
            client,
        })
    }

    /// Starts the loop (nothing to do without brokers: changes then queue nothing).
    pub fn spawn(self) {
        if self.policy.brokers.is_empty() {
            return;
        }
        fleetca_storage::disconnects::enable();
        let me = Arc::new(self);
        tokio::spawn(async move {
            let mut last_prune = tokio::time::Instant::now();
            loop {
                match me.run_due().await {
                    Ok(0) => tokio::time::sleep(me.policy.poll).await,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "the disconnect queue could not be read; will retry");
                        tokio::time::sleep(StdDuration::from_secs(5)).await;
                    }
                }
                if last_prune.elapsed() > StdDuration::from_secs(3600) {
                    last_prune = tokio::time::Instant::now();
                    let before = me.clock.now() - Duration::days(30);
                    if let Err(e) = me.store.prune_disconnects(before).await {
                        tracing::warn!(error = %e, "old disconnects not pruned");
                    }
                }
            }
        });
    }

    /// Leases and works the due disconnects; returns how many.
    pub async fn run_due(&self) -> Result<usize, Error> {
        let leased = self
            .store
            .lease_disconnects(self.clock.now(), Duration::seconds(60), 32)
            .await?;
        let n = leased.len();
        for d in leased {
            let outcome = self.work(&d).await;
            if let Err(e) = self.store.finish_disconnect(d.id, outcome, self.clock.now()).await {
                tracing::warn!(error = %e, disconnect = d.id, "a disconnect's result was not recorded; it will run again");
            }
        }
        Ok(n)
    }

    async fn work(&self, d: &Disconnect) -> Outcome {
        let mut done: Vec<String> = d
            .done_brokers
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let sessions = match self.resolve(d).await {
            Ok(s) => s,
            Err(e) => return self.retry(d, done, format!("could not resolve the target: {e}")),
        };
        let mut errors = Vec::new();
        for broker in &self.policy.brokers {
            if done.iter().any(|n| n == broker.name()) {
                continue;
            }
            let started = std::time::Instant::now();
            let result = match &sessions {
                Sessions::Nobody => Ok(0),
                s => self.disconnect(broker, s, d).await,
            };
            let label = if result.is_ok() { "ok" } else { "error" };
            metrics::counter!("fleetca_disconnects_total", "broker" => broker.name().to_owned(), "result" => label)
                .increment(1);
            match result {
                Ok(closed) => {
                    let delay = (self.clock.now() - d.created_at).num_milliseconds().max(0) as f64 / 1000.0;
                    metrics::histogram!("fleetca_disconnect_delay_seconds").record(delay);
                    tracing::info!(
                        broker = broker.name(),
                        action = %d.action,
                        target = %d.target_id,
                        closed,
                        ms = started.elapsed().as_millis() as u64,
                        "live sessions ended"
                    );
                    done.push(broker.name().to_owned());
                }
                Err(e) => errors.push(format!("{}: {e}", broker.name())),
            }
        }
        if errors.is_empty() {
            Outcome::Done { brokers: done }
        } else {
            self.retry(d, done, errors.join("; "))
        }
    }

    fn retry(&self, d: &Disconnect, brokers: Vec<String>, error: String) -> Outcome {
        let now = self.clock.now();
        let exp = u32::try_from(d.attempts.clamp(0, 16)).unwrap_or(16);
        let delay = Duration::milliseconds((500i64 << exp).min(300_000));
        if now + delay > d.created_at + self.policy.retry_period {
            tracing::error!(disconnect = d.id, %error, "live sessions could not be ended; given up");
            return Outcome::GiveUp { brokers, error };
        }
        tracing::warn!(disconnect = d.id, %error, "live sessions not ended yet; will retry");
        Outcome::Retry {
            brokers,
            error,
            next_at: now + delay,
        }
    }

    /// Whose sessions a queued disconnect ends.
    async fn resolve(&self, d: &Disconnect) -> Result<Sessions, StorageError> {
        let pair = || d.target_id.split_once('/').map(|(a, b)| (a.to_owned(), b.to_owned()));
        Ok(match d.target_kind.as_str() {
            "certificate" => {
                let Ok(id) = Uuid::parse_str(&d.target_id) else {
                    return Ok(Sessions::Nobody);
                };
                let cert = match self.store.certificate(id).await {
                    Ok(c) => c,
                    Err(StorageError::NotFound) => return Ok(Sessions::Nobody),
                    Err(e) => return Err(e),
                };
                match (cert.kind.as_str(), fleetca_ca::common_name(&cert.certificate_pem)) {
                    ("client" | "device", Some(cn)) => Sessions::Certificate {
                        common_name: cn,
                        serial: cert.serial,
                    },
                    _ => Sessions::Nobody,
                }
            }
            "user" => {
                let Ok(id) = Uuid::parse_str(&d.target_id) else {
                    return Ok(Sessions::Nobody);
                };
                let user = match self.store.user(id).await {
                    Ok(u) => u,
                    Err(StorageError::NotFound) => return Ok(Sessions::Nobody),
                    Err(e) => return Err(e),
                };
                if d.action == "user.rotate_token" {
                    Sessions::Passwords {
                        username: user.username,
                    }
                } else {
                    Sessions::User {
                        username: user.username,
                    }
                }
            }
            "device" => match pair() {
                Some((tenant, device_id)) => Sessions::Device { tenant, device_id },
                None => Sessions::Nobody,
            },
            "product_device" => match pair() {
                Some((product_key, device_key)) => Sessions::SignDevice {
                    product_key,
                    device_key,
                },
                None => Sessions::Nobody,
            },
            "product" => Sessions::Product {
                product_key: d.target_id.clone(),
            },
            _ => Sessions::Nobody,
        })
    }

    /// Closes the matching connections at one broker; returns how many it closed.
    async fn disconnect(&self, broker: &BrokerAdapter, sessions: &Sessions, d: &Disconnect) -> Result<usize, String> {
        let reason = format!("fleetca: {}", d.action);
        match broker {
            BrokerAdapter::RabbitMq {
                url,
                username,
                password,
                vhost,
                ..
            } => {
                self.rabbitmq_disconnect(url, username, password, vhost.as_deref(), sessions, &reason)
                    .await
            }
            BrokerAdapter::Emqx {
                url,
                api_key,
                api_secret,
                ..
            } => {
                let base = url.trim_end_matches('/');
                let search = sessions.search();
                let exact = sessions
                    .username()
                    .filter(|_| !matches!(sessions, Sessions::Device { .. }));
                let mut closed = 0;
                let mut page = 1u32;
                loop {
                    let page_text = page.to_string();
                    let filter = match &exact {
                        Some(u) => ("username", u.as_str()),
                        None => ("like_username", search.as_str()),
                    };
                    let query = serde_urlencoded::to_string([filter, ("limit", "100"), ("page", &page_text)])
                        .map_err(|e| e.to_string())?;
                    let response = self
                        .client
                        .get(format!("{base}/api/v5/clients?{query}"))
                        .basic_auth(api_key, Some(api_secret.expose()))
                        .send()
                        .await
                        .map_err(|e| crate::support::describe_request_error(&e))?;
                    if !response.status().is_success() {
                        return Err(format!("listing clients answered {}", response.status()));
                    }
                    let body: EmqxClients = json_limited(response).await?;
                    for c in &body.data {
                        // EMQX does not say whether a client came over TLS: a certificate's
                        // sessions are all of its common name's.
                        if !sessions.matches(&c.username, matches!(sessions, Sessions::Certificate { .. })) {
                            continue;
                        }
                        let id = percent_encoding::utf8_percent_encode(&c.clientid, percent_encoding::NON_ALPHANUMERIC);
                        let response = self
                            .client
                            .delete(format!("{base}/api/v5/clients/{id}"))
                            .basic_auth(api_key, Some(api_secret.expose()))
                            .send()
                            .await
                            .map_err(|e| crate::support::describe_request_error(&e))?;
                        match response.status().as_u16() {
                            200..=299 => closed += 1,
                            404 => {}
                            status => return Err(format!("kicking a client answered {status}")),
                        }
                    }
                    if !body.meta.hasnext.unwrap_or(false) || page >= 1000 {
                        break;
                    }
                    page += 1;
                }
                Ok(closed)
            }
            BrokerAdapter::Command { argv, .. } => {
                let Some((program, args)) = argv.split_first() else {
                    return Err("the command is empty".into());
                };
                let mut cmd = tokio::process::Command::new(program);
                cmd.args(args)
                    .env("FLEETCA_REASON", &d.action)
                    .env("FLEETCA_TARGET_KIND", &d.target_kind)
                    .env("FLEETCA_TARGET_ID", &d.target_id)
                    .env("FLEETCA_SCOPE", sessions.scope())
                    .env("FLEETCA_USERNAME", sessions.username().unwrap_or_default())
                    .env("FLEETCA_CLIENT_ID", "")
                    .env(
                        "FLEETCA_SERIAL",
                        match sessions {
                            Sessions::Certificate { serial, .. } => serial.as_str(),
                            _ => "",
                        },
                    )
                    .env(
                        "FLEETCA_USERNAME_SUFFIX",
                        match sessions {
                            Sessions::Product { product_key } => format!("&{product_key}"),
                            _ => String::new(),
                        },
                    )
                    .stdin(std::process::Stdio::null())
                    .kill_on_drop(true);
                let run = tokio::time::timeout(StdDuration::from_secs(30), cmd.output()).await;
                match run {
                    Ok(Ok(out)) if out.status.success() => Ok(1),
                    Ok(Ok(out)) => Err(format!(
                        "the disconnect command exited with {}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                            .trim()
                            .chars()
                            .take(300)
                            .collect::<String>()
                    )),
                    Ok(Err(e)) => Err(format!("the disconnect command could not start: {e}")),
                    Err(_) => Err("the disconnect command timed out after 30 s".into()),
                }
            }
        }
    }

    /// Closes the matching RabbitMQ connections. A user's own listing and deletion work from
    /// RabbitMQ's connection tracking, which knows a connection at once; a connection's details
    /// (TLS or not) and its deletion by name come from the statistics database, which learns
    /// of it only seconds later. So: where every session of a username goes, or where the
    /// details are not there yet, all of the username's connections are closed at once (a
    /// password session of a certificate's name then reconnects, its password still good);
    /// otherwise the matching ones, by name.
    async fn rabbitmq_disconnect(
        &self,
        url: &str,
        username: &str,
        password: &Secret,
        vhost: Option<&str>,
        sessions: &Sessions,
        reason: &str,
    ) -> Result<usize, String> {
        let base = url.trim_end_matches('/');
        let mut listed = Vec::new();
        if let Some(user) = sessions.username() {
            listed.extend(self.rabbitmq_connections(url, username, password, Some(&user)).await?);
        }
        if matches!(sessions, Sessions::Device { .. } | Sessions::Product { .. }) {
            // Other spellings of a device's username, a product's devices: the full listing.
            for c in self.rabbitmq_connections(url, username, password, None).await? {
                if !listed.iter().any(|l: &Connection| l.handle == c.handle) {
                    listed.push(c);
                }
            }
        }
        let listed: Vec<Connection> = listed
            .into_iter()
            .filter(|c| vhost.is_none_or(|v| c.vhost.is_empty() || c.vhost == v))
            .collect();
        let discriminate = matches!(sessions, Sessions::Certificate { .. } | Sessions::Passwords { .. });
        let mut by_name = Vec::new();
        let mut whole_users: Vec<String> = Vec::new();
        for mut c in listed {
            if discriminate && c.tls.is_none() {
                c.tls = self.rabbitmq_is_tls(url, username, password, &c.handle).await;
            }
            let hit = match c.tls {
                Some(tls) => sessions.matches(&c.username, tls),
                None => sessions.matches(&c.username, true) || sessions.matches(&c.username, false),
            };
            if !hit {
                continue;
            }
            if (discriminate && c.tls.is_some()) || matches!(sessions, Sessions::Product { .. }) {
                by_name.push(c);
            } else if !whole_users.contains(&c.username) {
                whole_users.push(c.username);
            }
        }
        let mut closed = 0;
        for c in &by_name {
            let name = percent_encoding::utf8_percent_encode(&c.handle, percent_encoding::NON_ALPHANUMERIC);
            let status = self
                .rabbitmq_delete(&format!("{base}/api/connections/{name}"), username, password, reason)
                .await?;
            match status {
                200..=299 => closed += 1,
                // Not in the statistics yet: by its user, then.
                404 if !whole_users.contains(&c.username) => whole_users.push(c.username.clone()),
                404 => {}
                status => return Err(format!("closing a connection answered {status}")),
            }
        }
        for user in &whole_users {
            let user = percent_encoding::utf8_percent_encode(user, percent_encoding::NON_ALPHANUMERIC);
            let status = self
                .rabbitmq_delete(
                    &format!("{base}/api/connections/username/{user}"),
                    username,
                    password,
                    reason,
                )
                .await?;
            match status {
                200..=299 => closed += 1,
                404 => {}
                status => return Err(format!("closing a user's connections answered {status}")),
            }
        }
        Ok(closed)
    }

    async fn rabbitmq_delete(&self, url: &str, username: &str, password: &Secret, reason: &str) -> Result<u16, String> {
        let response = self
            .client
            .delete(url)
            .basic_auth(username, Some(password.expose()))
            .header("X-Reason", reason)
            .send()
            .await
            .map_err(|e| crate::support::describe_request_error(&e))?;
        Ok(response.status().as_u16())
    }

    /// Whether a RabbitMQ connection came over TLS, if the broker can say.
    async fn rabbitmq_is_tls(&self, url: &str, username: &str, password: &Secret, name: &str) -> Option<bool> {
        let name = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
        let response = self
            .client
            .get(format!("{}/api/connections/{name}", url.trim_end_matches('/')))
            .basic_auth(username, Some(password.expose()))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let detail: RabbitConnection = json_limited(response).await.ok()?;
        detail.ssl
    }

    /// The broker's connections (of one user, when `of_user` is given).
    async fn rabbitmq_connections(
        &self,
        url: &str,
        username: &str,
        password: &Secret,
        of_user: Option<&str>,
    ) -> Result<Vec<Connection>, String> {
        let base = url.trim_end_matches('/');
        let path = match of_user {
            Some(u) => format!(
                "{base}/api/connections/username/{}",
                percent_encoding::utf8_percent_encode(u, percent_encoding::NON_ALPHANUMERIC)
            ),
            None => format!("{base}/api/connections"),
        };
        let response = self
            .client
            .get(format!("{path}?columns=name,user,ssl,vhost"))
            .basic_auth(username, Some(password.expose()))
            .send()
            .await
            .map_err(|e| crate::support::describe_request_error(&e))?;
        if !response.status().is_success() {
            return Err(format!("listing connections answered {}", response.status()));
        }
        let list: Vec<RabbitConnection> = json_limited(response).await?;
        Ok(list
            .into_iter()
            .map(|c| Connection {
                handle: c.name,
                username: c.user.unwrap_or_default(),
                tls: c.ssl,
                vhost: c.vhost.unwrap_or_default(),
            })
            .collect())
    }
}

#[derive(Deserialize)]
struct RabbitConnection {
    name: String,
    user: Option<String>,
    ssl: Option<bool>,
    vhost: Option<String>,
}

#[derive(Deserialize)]
struct EmqxClients {
    #[serde(default)]
    data: Vec<EmqxClient>,
    #[serde(default)]
    meta: EmqxMeta,
}

#[derive(Deserialize)]
struct EmqxClient {
    clientid: String,
    #[serde(default)]
    username: String,
}

#[derive(Deserialize, Default)]
struct EmqxMeta {
    hasnext: Option<bool>,
}

/// Reads a JSON answer of at most 64 MiB.
async fn json_limited<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T, String> {
    const LIMIT: u64 = 64 << 20;
    if response.content_length().is_some_and(|n| n > LIMIT) {
        return Err("the broker's answer is larger than 64 MiB".into());
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| crate::support::describe_request_error(&e))?;
    if bytes.len() as u64 > LIMIT {
        return Err("the broker's answer is larger than 64 MiB".into());
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("the broker's answer is not what was expected: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_match_their_usernames_only() {
        let device = Sessions::Device {
            tenant: "acme".into(),
            device_id: "dev-1".into(),
        };
        assert!(device.matches("device=dev-1&tenant=acme", false));
        assert!(device.matches("tenant=acme&device=dev-1", false));
        assert!(!device.matches("device=dev-1&tenant=globex", false));
        assert!(!device.matches("device=dev-10&tenant=acme", false));
        assert!(
            !device.matches("dev-1", true),
            "its certificate sessions end with the certificate"
        );
        let product = Sessions::Product {
            product_key: "prod01".into(),
        };
        assert!(product.matches("dk1&prod01", false));
        assert!(!product.matches("dk1&xprod01", false));
        assert!(!product.matches("&prod01", false));
        let cert = Sessions::Certificate {
            common_name: "svc-a".into(),
            serial: "01".into(),
        };
        assert!(cert.matches("svc-a", true));
        assert!(!cert.matches("svc-a", false), "the key's password sessions stay");
        let rotated = Sessions::Passwords {
            username: "svc-a".into(),
        };
        assert!(rotated.matches("svc-a", false) && !rotated.matches("svc-a", true));
        assert!(
            Sessions::User {
                username: "svc-a".into()
            }
            .matches("svc-a", true)
        );
        assert!(!Sessions::Nobody.matches("", false));
    }
}
