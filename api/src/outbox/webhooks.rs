//! Webhooks: endpoints that receive fleetca's events, signed as the Standard Webhooks
//! specification says (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`),
//! so receivers verify them with its libraries.
//!
//! Events are stored with the change they announce (see `fleetca_storage::webhooks`); the
//! [`Sender`] of every instance leases due deliveries, posts them, and retries a failure with
//! exponential backoff for the retry period (24 hours by default). It also announces
//! `certificate.expiring` 30, 7 and 1 days before a certificate's expiry.
//!
//! No SSRF: a receiver's URL may not name, or resolve to, a loopback, private, link-local or
//! otherwise internal address unless `webhook_allow_private` is set; the check runs when the
//! endpoint is saved and again on every connection (a resolver that drops internal addresses,
//! so a name that later resolves elsewhere is refused too). Redirects are not followed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use fleetca_ca::MasterKey;
use fleetca_storage::webhooks::{Attempt, Delivery, NewEvent, Webhook, WebhookPatch};
use fleetca_storage::{StorageError, Store};
use futures_util::StreamExt;
use serde_json::json;
use uuid::Uuid;

use crate::domain::{AuditAction, EventKind, Listing, PageRequest, Principal, Role};
use crate::outbox::audit;
use crate::support::Error;
use crate::support::clock::Clock;

/// Endpoints per enterprise (and for every enterprise): every audited change reads them
/// and writes a row for each that wants its event.
pub const MAX_ENDPOINTS: u64 = 20;

/// What the log and the audit log show of a receiver's URL: its origin and a hash of the
/// whole (a URL may carry a token in its path or query, as chat services' do).
fn url_summary(url: &str) -> serde_json::Value {
    json!({"url_origin": url_origin(url), "url_sha256": fleetca_ca::fingerprint(url.as_bytes())})
}

fn url_origin(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// How webhooks are delivered.
#[derive(Clone, Debug)]
pub struct WebhookPolicy {
    /// Allow receivers on loopback, private and link-local addresses.
    pub allow_private: bool,
    /// How long a failing delivery is retried.
    pub retry_period: Duration,
    /// The first retry's delay; each next one doubles, up to an hour.
    pub initial_backoff: Duration,
    /// How long a receiver may take to answer.
    pub timeout: StdDuration,
    /// How often certificates are checked for expiry warnings.
    pub expiry_scan: StdDuration,
}

impl Default for WebhookPolicy {
    fn default() -> Self {
        Self {
            allow_private: false,
            retry_period: Duration::hours(24),
            initial_backoff: Duration::seconds(5),
            timeout: StdDuration::from_secs(10),
            expiry_scan: StdDuration::from_secs(3600),
        }
    }
}

/// A validated endpoint to create.
#[derive(Debug)]
pub struct CreateWebhook {
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    /// `None`: every enterprise (admins only; a manager's is its own enterprise's).
    pub enterprise: Option<String>,
}

/// A validated change.
#[derive(Debug, Default)]
pub struct WebhookChange {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<Vec<String>>,
    pub is_active: Option<bool>,
}

/// Checks the events named: known, no duplicates, at least one. Returns them comma-joined.
pub fn check_events(events: &[String]) -> Result<String, String> {
    let all = || EventKind::ALL.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ");
    if events.is_empty() {
        return Err(format!("name at least one of {}", all()));
    }
    let mut seen: Vec<&str> = Vec::new();
    for e in events {
        if EventKind::parse(e).is_none() {
            return Err(format!("{e:?} is not an event; choose from {}", all()));
        }
        if !seen.contains(&e.as_str()) {
            seen.push(e);
        }
    }
    Ok(seen.join(","))
}

/// Whether a receiver at `ip` would be inside the operator's network (or nowhere).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() || v6.is_unspecified() {
                return true;
            }
            // IPv4-mapped (::ffff:a.b.c.d) and the deprecated IPv4-compatible (::a.b.c.d).
            if let Some(v4) = v6.to_ipv4() {
                return is_internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let first = s[0];
            // 6to4 (2002:a.b.c.d::/48) reaches the embedded IPv4 address.
            if first == 0x2002 {
                let v4 = std::net::Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
                return is_internal(IpAddr::V4(v4));
            }
            v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
                || (first & 0xffc0) == 0xfec0 // site local (deprecated)
                || (first == 0x2001 && s[1] == 0x0db8) // documentation
                || (first == 0x64 && s[1] == 0xff9b) // NAT64 (64:ff9b::/96 and 64:ff9b:1::/48)
        }
    }
}

/// Checks a receiver URL: http or https, a host, no credentials in it, at most 2048
/// characters, and (unless `allow_private`) no internal address, literal or resolved.
pub async fn check_url(url: &str, allow_private: bool) -> Result<String, String> {
    if url.len() > 2048 {
        return Err("must be at most 2048 characters".into());
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("is not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must start with https:// (or http://)".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials; receivers check the signature instead".into());
    }
    if parsed.fragment().is_some() {
        return Err("must not have a #fragment".into());
    }
    let Some(host) = parsed.host() else {
        return Err("must name a host".into());
    };
    if parsed.as_str().len() > 2048 {
        return Err("must be at most 2048 characters once percent-encoded".into());
    }
    if allow_private {
        return Ok(parsed.to_string());
    }
    let refused = || {
        "names an internal address (loopback, private, link-local, …); receivers must be public, unless the operator sets webhook_allow_private".to_owned()
    };
    match host {
        url::Host::Ipv4(ip) if is_internal(IpAddr::V4(ip)) => return Err(refused()),
        url::Host::Ipv6(ip) if is_internal(IpAddr::V6(ip)) => return Err(refused()),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                return Err(refused());
            }
            let port = parsed.port_or_known_default().unwrap_or(443);
            // A name that does not resolve now may later; the sender checks every connection.
            let lookup = tokio::net::lookup_host((name.as_str(), port));
            if let Ok(Ok(addrs)) = tokio::time::timeout(StdDuration::from_secs(2), lookup).await {
                let addrs: Vec<SocketAddr> = addrs.collect();
                if !addrs.is_empty() && addrs.iter().all(|a| is_internal(a.ip())) {
                    return Err(refused());
                }
            }
        }
        _ => {}
    }
    Ok(parsed.to_string())
}

/// A new signing secret (`whsec_…`).
fn new_secret() -> Result<String, Error> {
    fleetca_ca::secret::webhook_secret().map_err(|e| Error::Internal(e.to_string()))
}

fn secret_context(id: Uuid) -> String {
    format!("webhook-secret:{id}")
}

/// The webhook flows of the management API.
pub struct WebhookService {
    store: Store,
    master: Arc<MasterKey>,
    clock: Arc<dyn Clock>,
    policy: WebhookPolicy,
    wake: Arc<tokio::sync::Notify>,
}

impl WebhookService {
    pub fn new(store: Store, master: Arc<MasterKey>, clock: Arc<dyn Clock>, policy: WebhookPolicy) -> Self {
        Self {
            store,
            master,
            clock,
            policy,
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// The sender for these endpoints (one per instance); it also warns of the expiry of
    /// `cas`.
    pub fn sender(&self, cas: Vec<fleetca_storage::authority::CaExpiry>) -> Sender {
        Sender {
            store: self.store.clone(),
            master: self.master.clone(),
            clock: self.clock.clone(),
            policy: self.policy.clone(),
            wake: self.wake.clone(),
            cas,
        }
    }

    fn may_manage(&self, caller: &Principal, webhook: &Webhook) -> bool {
        match &webhook.enterprise {
            None => caller.role == Role::Admin,
            Some(e) => caller.manages(e),
        }
    }

    fn check_scope(caller: &Principal, enterprise: Option<&str>, events: &str) -> Result<(), Error> {
        match enterprise {
            None if caller.role != Role::Admin => Err(Error::Forbidden(format!(
                "Only an admin may subscribe to every enterprise's events; name your enterprise {:?}.",
                caller.enterprise
            ))),
            Some(e) if !caller.manages(e) => Err(Error::Forbidden(format!(
                "You may only subscribe to your enterprise {:?}.",
                caller.enterprise
            ))),
            Some(_) if events.split(',').filter_map(EventKind::parse).any(EventKind::is_system) => Err(Error::invalid(
                "events",
                "crl.publication_failed and broker.revocation_not_enforced concern every enterprise: only an endpoint without an enterprise (an admin's) receives them",
            )),
            _ => Ok(()),
        }
    }

    /// Creates an endpoint; returns it with its signing secret, shown this once.
    pub async fn create(&self, caller: &Principal, mut input: CreateWebhook) -> Result<(Webhook, String), Error> {
        // A manager's endpoint is its enterprise's, named or not.
        if caller.role == Role::Manager && input.enterprise.is_none() {
            input.enterprise = Some(caller.enterprise.clone());
        }
        let events = check_events(&input.events).map_err(|e| Error::invalid("events", e))?;
        Self::check_scope(caller, input.enterprise.as_deref(), &events)?;
        let url = check_url(&input.url, self.policy.allow_private)
            .await
            .map_err(|e| Error::invalid("url", e))?;
        if self.store.count_webhooks(input.enterprise.as_deref()).await? >= MAX_ENDPOINTS {
            return Err(Error::Conflict(format!(
                "An enterprise has at most {MAX_ENDPOINTS} webhook endpoints (and so do the admins' for every enterprise); delete one first."
            )));
        }
        let id = Uuid::new_v4();
        let secret = new_secret()?;
        let sealed = self
            .master
            .seal(&secret_context(id), secret.as_bytes())
            .map_err(|e| Error::Internal(e.to_string()))?;
        let now = self.clock.now();
        let webhook = Webhook {
            id,
            url,
            description: input.description,
            events,
            enterprise: input.enterprise,
            secret_sealed: sealed,
            is_active: true,
            created_by: caller.username.clone(),
            created_at: now,
            updated_at: now,
        };
        let record = audit::by(
            caller,
            AuditAction::WebhookCreate,
            "webhook",
            &id.to_string(),
            webhook.enterprise.as_deref(),
            json!({"url": url_summary(&webhook.url), "events": webhook.events}),
        );
        let created = self.store.create_webhook(webhook, &[record], now).await?;
        tracing::info!(webhook_id = %id, receiver = %url_origin(&created.url), by = %caller.username, "webhook created");
        Ok((created, secret))
    }

    /// One page of the endpoints the caller may see (a manager: its enterprise's).
    pub async fn list(&self, caller: &Principal, page: PageRequest) -> Result<Listing<Webhook>, Error> {
        let enterprise = match caller.role {
            Role::Admin => None,
            Role::Manager => Some(caller.enterprise.as_str()),
            Role::Service => return Ok(Listing::empty()),
        };
        Ok(self.store.list_webhooks(enterprise, page.storage()).await?.into())
    }

    /// One endpoint the caller may see.
    pub async fn get(&self, caller: &Principal, id: Uuid) -> Result<Webhook, Error> {
        match self.store.webhook(id).await {
            Ok(w) if self.may_manage(caller, &w) => Ok(w),
            Ok(_) | Err(StorageError::NotFound) => Err(Error::NotFound("webhook")),
            Err(e) => Err(e.into()),
        }
    }

    /// Changes an endpoint.
    pub async fn change(&self, caller: &Principal, id: Uuid, change: WebhookChange) -> Result<Webhook, Error> {
        let current = self.get(caller, id).await?;
        let events = match &change.events {
            Some(list) => {
                let events = check_events(list).map_err(|e| Error::invalid("events", e))?;
                Self::check_scope(caller, current.enterprise.as_deref(), &events)?;
                Some(events)
            }
            None => None,
        };
        let url = match &change.url {
            Some(u) => Some(
                check_url(u, self.policy.allow_private)
                    .await
                    .map_err(|e| Error::invalid("url", e))?,
            ),
            None => None,
        };
        let record = audit::by(
            caller,
            AuditAction::WebhookUpdate,
            "webhook",
            &id.to_string(),
            current.enterprise.as_deref(),
            json!({"url": url.as_deref().map(url_summary), "events": events, "is_active": change.is_active, "description": change.description}),
        );
        let patch = WebhookPatch {
            url,
            description: change.description,
            events,
            is_active: change.is_active,
            secret_sealed: None,
        };
        Ok(self
            .store
            .update_webhook(id, patch, &[record], self.clock.now())
            .await?)
    }

    /// Replaces the signing secret; returns the new one, shown this once.
    pub async fn rotate_secret(&self, caller: &Principal, id: Uuid) -> Result<(Webhook, String), Error> {
        let current = self.get(caller, id).await?;
        let secret = new_secret()?;
        let sealed = self
            .master
            .seal(&secret_context(id), secret.as_bytes())
            .map_err(|e| Error::Internal(e.to_string()))?;
        let record = audit::by(
            caller,
            AuditAction::WebhookRotateSecret,
            "webhook",
            &id.to_string(),
            current.enterprise.as_deref(),
            json!({}),
        );
        let patch = WebhookPatch {
            secret_sealed: Some(sealed),
            ..Default::default()
        };
        let updated = self
            .store
            .update_webhook(id, patch, &[record], self.clock.now())
            .await?;
        Ok((updated, secret))
    }

    /// Deletes an endpoint and its delivery log.
    pub async fn delete(&self, caller: &Principal, id: Uuid) -> Result<(), Error> {
        let current = self.get(caller, id).await?;
        let record = audit::by(
            caller,
            AuditAction::WebhookDelete,
            "webhook",
            &id.to_string(),
            current.enterprise.as_deref(),
            json!({"url": url_summary(&current.url)}),
        );
        self.store
            .delete_webhook(id, &[record], self.clock.now())
            .await
            .map_err(|e| match e {
                StorageError::NotFound => Error::NotFound("webhook"),
                other => other.into(),
            })
    }

    /// Queues a `webhook.test` event for this endpoint alone and wakes the sender.
    pub async fn send_test(&self, caller: &Principal, id: Uuid) -> Result<Delivery, Error> {
        let current = self.get(caller, id).await?;
        let now = self.clock.now();
        let event = NewEvent {
            event_type: "webhook.test".into(),
            enterprise: current.enterprise.clone(),
            data: json!({"webhook_id": id, "requested_by": caller.username, "message": "A test event from fleetca."}),
        };
        let record = audit::by(
            caller,
            AuditAction::WebhookTest,
            "webhook",
            &id.to_string(),
            current.enterprise.as_deref(),
            json!({}),
        );
        let delivery = self.store.enqueue_test(id, &event, &[record], now).await?;
        self.wake.notify_one();
        Ok(delivery)
    }

    /// One page of an endpoint's deliveries, newest first.
    pub async fn deliveries(
        &self,
        caller: &Principal,
        id: Uuid,
        status: Option<&str>,
        page: PageRequest,
    ) -> Result<Listing<Delivery>, Error> {
        self.get(caller, id).await?;
        Ok(self.store.list_deliveries(id, status, page.storage()).await?.into())
    }

    /// Sends a delivery again now.
    pub async fn redeliver(&self, caller: &Principal, id: Uuid, delivery: i64) -> Result<Delivery, Error> {
        let current = self.get(caller, id).await?;
        let record = audit::by(
            caller,
            AuditAction::WebhookRedeliver,
            "webhook",
            &id.to_string(),
            current.enterprise.as_deref(),
            json!({"delivery": delivery}),
        );
        let row = match self.store.redeliver(id, delivery, &[record], self.clock.now()).await {
            Ok(row) => row,
            Err(StorageError::NotFound) => return Err(Error::NotFound("delivery")),
            Err(e) => return Err(e.into()),
        };
        self.wake.notify_one();
        Ok(row)
    }
}

/// Why a post failed: what the delivery log shows (never the secret or the body).
struct Failure {
    status: Option<i32>,
    error: String,
}

/// Delivers due events; one per instance.
pub struct Sender {
    store: Store,
    master: Arc<MasterKey>,
    clock: Arc<dyn Clock>,
    policy: WebhookPolicy,
    wake: Arc<tokio::sync::Notify>,
    /// The CAs whose expiry is announced (`ca.expiring`).
    cas: Vec<fleetca_storage::authority::CaExpiry>,
}

/// Deliveries posted at once by one instance.
const CONCURRENCY: usize = 8;

impl Sender {
    /// An HTTP client that follows no redirects and, unless private receivers are allowed,
    /// connects to public addresses only.
    fn client(&self) -> Result<reqwest::Client, String> {
        // No proxy from the environment either (HTTP_PROXY, …): a proxy would resolve the
        // receiver's name itself, past the resolver that keeps deliveries out of internal
        // networks.
        let mut builder = crate::support::http_client()
            .timeout(self.policy.timeout)
            .connect_timeout(self.policy.timeout)
            .user_agent(concat!("fleetca-webhooks/", env!("CARGO_PKG_VERSION")));
        if !self.policy.allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        builder.build().map_err(|e| e.to_string())
    }

    /// How long a leased delivery is held before another sender may take it (a sender that
    /// died mid-attempt): longer than any attempt can take.
    fn lease(&self) -> Duration {
        Duration::from_std(self.policy.timeout * 2).unwrap_or(Duration::seconds(60)) + Duration::seconds(5)
    }

    /// Starts the delivery loop and the expiry scan.
    pub fn spawn(self) {
        let me = Arc::new(self);
        let client = match me.client() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "webhook sender could not start");
                return;
            }
        };
        let scanner = me.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(scanner.policy.expiry_scan);
            loop {
                interval.tick().await;
                if let Err(e) = scanner.scan_expiring().await {
                    tracing::warn!(error = %e, "expiry scan failed; will retry");
                }
            }
        });
        tokio::spawn(async move {
            let mut last_prune = tokio::time::Instant::now();
            loop {
                match me.run_due(&client).await {
                    Ok(0) => {
                        let _ = tokio::time::timeout(StdDuration::from_secs(1), me.wake.notified()).await;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook deliveries could not be read; will retry");
                        tokio::time::sleep(StdDuration::from_secs(5)).await;
                    }
                }
                if last_prune.elapsed() > StdDuration::from_secs(3600) {
                    last_prune = tokio::time::Instant::now();
                    let before = me.clock.now() - Duration::days(30);
                    if let Err(e) = me.store.prune_deliveries(before).await {
                        tracing::warn!(error = %e, "old webhook deliveries not pruned");
                    }
                }
            }
        });
    }

    /// Announces `certificate.expiring` and `ca.expiring` where due.
    pub async fn scan_expiring(&self) -> Result<usize, Error> {
        let cas = self.store.warn_ca_expiring(&self.cas, self.clock.now()).await?;
        if cas > 0 {
            tracing::warn!(
                cas,
                "a CA nears its expiry: announced ca.expiring (see fleetca ca list)"
            );
        }
        let mut total = cas;
        loop {
            let n = self.store.warn_expiring(self.clock.now(), 500).await?;
            total += n;
            if n < 500 {
                break;
            }
        }
        if total > 0 {
            tracing::info!(certificates = total, "expiry warnings announced");
            self.wake.notify_one();
        }
        Ok(total)
    }

    /// Leases and posts the due deliveries; returns how many were attempted.
    pub async fn run_due(&self, client: &reqwest::Client) -> Result<usize, Error> {
        let leased = self
            .store
            .lease_deliveries(self.clock.now(), self.lease(), CONCURRENCY as u64)
            .await?;
        let n = leased.len();
        futures_util::stream::iter(leased)
            .for_each_concurrent(CONCURRENCY, |(delivery, hook)| async move {
                let attempt = self.attempt(client, &delivery, &hook).await;
                metrics::counter!("fleetca_webhook_deliveries_total", "result" => match &attempt {
                    Attempt::Delivered { .. } => "delivered",
                    Attempt::Retry { .. } => "retry",
                    Attempt::GiveUp { .. } => "failed",
                })
                .increment(1);
                match self
                    .store
                    .finish_delivery(delivery.id, delivery.lease_until, attempt, self.clock.now())
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(delivery = delivery.id, "webhook delivery outlived its lease; its result was not recorded"),
                    Err(e) => tracing::warn!(error = %e, delivery = delivery.id, "webhook delivery result not recorded; it will be sent again"),
                }
            })
            .await;
        Ok(n)
    }

    async fn attempt(&self, client: &reqwest::Client, delivery: &Delivery, hook: &Webhook) -> Attempt {
        let failure = match self.post(client, delivery, hook).await {
            Ok(status) => {
                tracing::debug!(delivery = delivery.id, webhook_id = %hook.id, status, "webhook delivered");
                return Attempt::Delivered { status };
            }
            Err(f) => f,
        };
        let now = self.clock.now();
        let tries = delivery.attempts.saturating_add(1);
        let next_at = now + backoff(self.policy.initial_backoff, tries);
        if next_at > delivery.created_at + self.policy.retry_period {
            tracing::warn!(delivery = delivery.id, webhook_id = %hook.id, attempts = tries, error = %failure.error, "webhook delivery given up");
            return Attempt::GiveUp {
                status: failure.status,
                error: failure.error,
            };
        }
        tracing::info!(delivery = delivery.id, webhook_id = %hook.id, attempts = tries, error = %failure.error, next = %next_at, "webhook delivery failed; will retry");
        Attempt::Retry {
            status: failure.status,
            error: failure.error,
            next_at,
        }
    }

    /// Signs and posts one delivery; `Ok(status)` on a 2xx answer.
    async fn post(&self, client: &reqwest::Client, delivery: &Delivery, hook: &Webhook) -> Result<i32, Failure> {
        let fail = |status: Option<i32>, error: String| Failure { status, error };
        let secret = self
            .master
            .open(&secret_context(hook.id), &hook.secret_sealed)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| fail(None, "the signing secret does not open with this master key".into()))?;
        let timestamp = self.clock.now().timestamp();
        let signature =
            fleetca_ca::secret::sign_webhook(&secret, &delivery.event_id, timestamp, delivery.payload.as_bytes())
                .map_err(|e| fail(None, e.to_string()))?;
        if !self.policy.allow_private {
            // An IP literal skips the resolver: check it here.
            if let Ok(url) = reqwest::Url::parse(&hook.url)
                && let Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) = url.host()
                && check_url(&hook.url, false).await.is_err()
            {
                return Err(fail(None, "the receiver's address is internal".into()));
            }
        }
        let response = client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.payload.clone())
            .send()
            .await
            .map_err(|e| fail(None, crate::support::describe_request_error(&e)))?;
        let status = i32::from(response.status().as_u16());
        if response.status().is_success() {
            Ok(status)
        } else {
            Err(fail(
                Some(status),
                format!("the receiver answered {}", response.status()),
            ))
        }
    }
}

/// The delay before attempt `tries + 1`: the initial delay doubled per failure, up to an
/// hour, with up to a fifth added at random so that many receivers' retries spread out.
fn backoff(initial: Duration, tries: i32) -> Duration {
    let exp = u32::try_from(tries.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    let base = initial
        .num_milliseconds()
        .max(1)
        .saturating_mul(1i64 << exp)
        .min(3_600_000);
    let jitter = i64::from(Uuid::new_v4().as_bytes().first().copied().unwrap_or(0)) * base / (255 * 5);
    Duration::milliseconds(base + jitter)
}

/// A resolver that drops internal addresses (no SSRF through a name that resolves, or later
/// re-resolves, into the operator's network).
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_internal(a.ip()))
                .collect();
            if addrs.is_empty() {
                let e = std::io::Error::other(format!(
                    "{host} resolves to no public address (set webhook_allow_private for internal receivers)"
                ));
                return Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{Kit, admin, manager};

    #[tokio::test]
    async fn a_revocation_and_its_event_are_stored_together() {
        let kit = Kit::new().await;
        let create = |enterprise: Option<&str>| CreateWebhook {
            url: "http://127.0.0.1:9/hook".into(),
            description: String::new(),
            events: vec!["certificate.revoked".into()],
            enterprise: enterprise.map(str::to_owned),
        };
        let (all, secret) = kit.webhooks.create(&admin(), create(None)).await.unwrap();
        assert!(secret.starts_with("whsec_"));
        let (globex, _) = kit.webhooks.create(&admin(), create(Some("globex"))).await.unwrap();
        // A manager's endpoint is its own enterprise's (as the API has always made it), never
        // every enterprise's nor another's.
        let (own, _) = kit.webhooks.create(&manager("acme"), create(None)).await.unwrap();
        assert_eq!(own.enterprise.as_deref(), Some("acme"));
        kit.webhooks.delete(&manager("acme"), own.id).await.unwrap();
        assert!(matches!(
            kit.webhooks.create(&manager("acme"), create(Some("globex"))).await,
            Err(Error::Forbidden(_))
        ));
        let (key, _) = kit.api_key("svc-outbox", "acme").await;
        let cert = kit.certificate(&key).await;
        let page = crate::domain::PageRequest::parse(None, None).unwrap();
        let root = admin();
        let pending = |id| kit.webhooks.deliveries(&root, id, None, page);
        assert_eq!(pending(all.id).await.unwrap().count, 0, "issuance is not subscribed");
        kit.certificates
            .revoke(
                &admin(),
                cert.record.certificate.id,
                fleetca_ca::crl::Reason::KeyCompromise,
            )
            .await
            .unwrap();
        let queued = pending(all.id).await.unwrap();
        assert_eq!(queued.count, 1);
        let delivery = &queued.items[0];
        assert_eq!(delivery.event_type, "certificate.revoked");
        assert_eq!(delivery.status, "pending");
        let body: serde_json::Value = serde_json::from_str(&delivery.payload).unwrap();
        assert_eq!(body["data"]["target"]["id"], cert.record.certificate.id.to_string());
        assert_eq!(body["data"]["reason"], "keyCompromise");
        // Another enterprise's endpoint gets nothing of acme's.
        assert_eq!(pending(globex.id).await.unwrap().count, 0);
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "2002:7f00:1::1",
            "64:ff9b:1::a00:1",
            "fec0::1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn receiver_urls_are_checked() {
        assert!(check_url("https://hooks.example.com/in", false).await.is_ok());
        for bad in [
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "http://127.0.0.1:9000/",
            "http://[::1]/",
            "http://localhost:8080/",
            "http://169.254.169.254/latest/meta-data/",
            "not a url",
        ] {
            assert!(check_url(bad, false).await.is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:9000/hook", true).await.is_ok());
    }

    #[test]
    fn events_are_checked() {
        assert_eq!(
            check_events(&["certificate.issued".into(), "certificate.issued".into()]).unwrap(),
            "certificate.issued"
        );
        assert!(check_events(&[]).is_err());
        assert!(check_events(&["certificate.stolen".into()]).is_err());
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let first = backoff(Duration::seconds(5), 1);
        assert!(first >= Duration::seconds(5) && first <= Duration::seconds(6));
        let fourth = backoff(Duration::seconds(5), 4);
        assert!(fourth >= Duration::seconds(40) && fourth <= Duration::seconds(48));
        assert!(backoff(Duration::seconds(5), 30) <= Duration::minutes(72));
    }
}
