//! Revocation that ends live sessions. Brokers check credentials and CRLs only when a client
//! connects; a revoked certificate, a deactivated key or a disabled device would stay
//! connected until it reconnects. So a change that invalidates a credential also queues a
//! disconnect (in its transaction, see `fleetca_storage::disconnects`), and the [`Worker`] of
//! every instance asks each configured broker to close the affected clients' connections,
//! retrying with backoff until every broker confirmed. The broker then refuses the reconnect
//! as it refuses any other.
//!
//! How one kind of broker ends sessions is its adapter in [`crate::brokers::admin`].

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use fleetca_storage::disconnects::{Disconnect, Outcome};
use fleetca_storage::{StorageError, Store};
use uuid::Uuid;

use crate::brokers::admin::{BrokerAdapter, Sessions};
use crate::domain::AuditAction;
use crate::domain::{Listing, PageRequest, Principal, Role};
use crate::support::Error;
use crate::support::clock::Clock;

/// How disconnects are retried.
#[derive(Clone, Debug)]
pub struct DisconnectPolicy {
    pub brokers: Vec<BrokerAdapter>,
    /// How long a failing disconnect is retried.
    pub retry_period: Duration,
    /// How often the queue is read.
    pub poll: StdDuration,
    /// The change feed fleetca's mosquitto plugins follow (`kind = "mosquitto-plugin"`).
    pub feed: Arc<crate::brokers::feed::Feed>,
}

impl Default for DisconnectPolicy {
    fn default() -> Self {
        Self {
            brokers: Vec::new(),
            retry_period: Duration::hours(24),
            poll: StdDuration::from_millis(200),
            feed: Arc::default(),
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
                s => broker.end(s, d, &self.client).await,
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
                        fingerprint: cert.fingerprint,
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
                if AuditAction::parse(&d.action) == Some(AuditAction::UserRotateToken) {
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
}
