//! The MQTT broker's questions: may this client connect, and may it use this topic?
//!
//! Three kinds of client:
//! 1. a **device**: username `device={id}&tenant={tenant}`, password
//!    `signature={hex}&timestamp={unix}` (HMAC-SHA256 keyed with the HA1, within the
//!    allowed clock skew), client id equal to the device id;
//! 2. an **API key**: its username and token;
//! 3. a **client certificate**: the broker sends the certificate's CN (the API key's
//!    username), no password, and the certificate (PEM) or its SHA-256 fingerprint, which
//!    must be one of the key's active, unexpired certificates. A username alone is trusted
//!    only when the operator says every listener that sends one requires a certificate
//!    ([`BrokerPolicy::trust_username_for_certificates`]).
//!
//! Answers must be fast in a reconnect storm, so each credential, once loaded, is kept in
//! a bounded in-memory cache (devices with their opened HA1; API keys with their active
//! certificate fingerprints; tokens in [`Tokens`]) and dropped the moment it changes. A
//! denial never says which part was wrong; the reason goes to the debug log. When the
//! database cannot be reached the answer is [`Decision::Unknown`], which the HTTP layer
//! turns into a 5xx (or EMQX's `ignore`), never a denial a broker would cache.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use fleetca_ca::{MasterKey, device};

use crate::pki::authorities::Authorities;
use fleetca_storage::{StorageError, Store};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::questions::within_skew;
pub use super::questions::{AclRequest, ActivationEvent, AuthRequest, Decision};
use super::sign::{SignDevices, SignLogin, parse_sign_login};
use crate::brokers::acl::{self, Access, AclConfig, Vars};
use crate::domain::CertificateKind;
use crate::identity::tokens::Tokens;
use crate::support::Error;
use crate::support::cache::Cache;
use crate::support::clock::Clock;

/// What EMQX (5.8 and later) takes from an allowed authentication: when the credential
/// expires (it then drops the session by itself) and the client's topic rules (it then needs
/// no authorization call per publish and subscribe).
#[derive(Debug, Default)]
pub struct EmqxGrant {
    /// Unix seconds: a certificate's notAfter.
    pub expire_at: Option<i64>,
    /// In EMQX's order: first match wins; the last rule denies everything else. `None`: EMQX
    /// asks `/broker/emqx/authz` (sign-based devices, whose topics depend on their state).
    pub acl: Option<Vec<EmqxRule>>,
}

/// One rule of EMQX's authentication-provided ACL.
#[derive(Debug, Clone)]
pub struct EmqxRule {
    /// `allow` or `deny`.
    pub permission: &'static str,
    /// `publish`, `subscribe` or `all`.
    pub action: &'static str,
    pub topic: String,
}

/// fleetca's rules for one principal as EMQX rules: activation topics denied first (only
/// fleetca publishes there, and device secrets travel there), then the principal's rules,
/// then a deny of everything else.
fn emqx_rules(rules: &[acl::AclRule], vars: &Vars<'_>) -> Vec<EmqxRule> {
    let mut out = vec![EmqxRule {
        permission: "deny",
        action: "all",
        topic: "/ext/session/+/+/thing/activate/info".into(),
    }];
    for (topic, access) in acl::expand_rules(rules, vars) {
        let action = match (access.contains(&Access::Write), access.contains(&Access::Subscribe)) {
            (true, true) => "all",
            (true, false) => "publish",
            (false, true) => "subscribe",
            (false, false) => continue,
        };
        out.push(EmqxRule {
            permission: "allow",
            action,
            topic,
        });
    }
    out.push(EmqxRule {
        permission: "deny",
        action: "all",
        topic: "#".into(),
    });
    out
}

/// The operator's broker settings.
#[derive(Clone, Debug)]
pub struct BrokerPolicy {
    pub acl: AclConfig,
    /// How far a device's timestamp may be from server time, in seconds.
    pub timestamp_skew_seconds: i64,
    /// Admit a password-less username as a certificate client without seeing the
    /// certificate. Safe only when every broker listener that can send such a login
    /// requires a client certificate.
    pub trust_username_for_certificates: bool,
    /// fleetca's own MQTT identity (username, password) that publishes activation
    /// messages; it may publish to activation topics and nothing else, and nobody else may
    /// publish there.
    pub publisher: Option<(String, String)>,
}

#[derive(Clone)]
struct DeviceEntry {
    /// The key of the device's password, made from its HA1 once; `None` when the sealed HA1
    /// did not open (a wrong master key or a damaged row).
    key: Option<device::MqttKey>,
    active: bool,
}

#[derive(Clone)]
struct KeyEntry {
    user_id: Uuid,
    enterprise: String,
    usable: bool,
    /// Fingerprints of the key's unrevoked certificates, with their notAfter.
    certificates: Vec<(String, DateTime<Utc>)>,
}

impl KeyEntry {
    fn has_active(&self, now: DateTime<Utc>) -> bool {
        self.certificates.iter().any(|(_, not_after)| *not_after > now)
    }
    fn holds(&self, fingerprint: &str, now: DateTime<Utc>) -> bool {
        self.certificates
            .iter()
            .any(|(fp, not_after)| fp == fingerprint && *not_after > now)
    }
}

/// Entries each cache holds at most (a reconnect storm of this many clients is served
/// from memory).
const CACHE_CAPACITY: usize = 200_000;

/// Who a broker call is about: read once per call from its username and client id, and
/// named by the metrics as it is.
enum Login<'a> {
    /// An HA1 device (`device=…&tenant=…`, in any order).
    Device {
        device_id: Cow<'a, str>,
        tenant: Cow<'a, str>,
    },
    /// An EnOS or Alibaba sign-based device (`{device_key}&{product_key}`).
    Sign(SignLogin<'a>),
    /// fleetca's own activation publisher.
    Publisher,
    /// An API key: with its token as the password, or with one of its certificates.
    ApiKey { certificate: bool },
}

impl Login<'_> {
    fn metric(&self) -> &'static str {
        match self {
            Login::Device { .. } => "device",
            Login::Sign(_) => "sign_device",
            Login::Publisher => "publisher",
            Login::ApiKey { certificate: false } => "api_key",
            Login::ApiKey { certificate: true } => "certificate",
        }
    }
}

/// The broker's decisions and their caches.
pub struct BrokerService {
    store: Store,
    master: Arc<MasterKey>,
    cas: Arc<Authorities>,
    tokens: Arc<Tokens>,
    clock: Arc<dyn Clock>,
    policy: BrokerPolicy,
    devices: Cache<String, Arc<DeviceEntry>>,
    keys: Cache<String, Arc<KeyEntry>>,
    /// The sign-based devices of EnOS and Alibaba Cloud IoT.
    sign: SignDevices,
}

/// Parses a query string that holds exactly the two named fields, in any order,
/// percent-decoded; anything else (a missing, repeated or extra field) is `None`. A field
/// without escapes is borrowed from `text` (the broker's hot path allocates nothing here).
fn two_fields<'a>(text: &'a str, first: &str, second: &str) -> Option<(Cow<'a, str>, Cow<'a, str>)> {
    let (mut a, mut b) = (None, None);
    for (k, v) in form_urlencoded::parse(text.as_bytes()) {
        let slot = if k == first {
            &mut a
        } else if k == second {
            &mut b
        } else {
            return None;
        };
        if slot.replace(v).is_some() {
            return None;
        }
    }
    Some((a?, b?))
}

/// A device username: `device={id}&tenant={tenant}` → (device id, tenant).
pub fn parse_device_username(username: &str) -> Option<(Cow<'_, str>, Cow<'_, str>)> {
    if !username.contains("device=") {
        return None;
    }
    two_fields(username, "device", "tenant")
}

/// A device password: `signature={hex}&timestamp={unix seconds}`, the timestamp in its
/// canonical decimal form only (no sign, no leading zeros), so one signature has one
/// spelling.
fn parse_device_password(password: &str) -> Option<(Cow<'_, str>, i64)> {
    let (signature, timestamp) = two_fields(password, "signature", "timestamp")?;
    let canonical = !timestamp.is_empty()
        && timestamp.bytes().all(|b| b.is_ascii_digit())
        && (timestamp == "0" || !timestamp.starts_with('0'));
    if !canonical {
        return None;
    }
    Some((signature, timestamp.parse().ok()?))
}

/// A field a broker sent that no credential can contain.
/// Counts a broker decision and its latency.
fn record_decision(check: &'static str, client: &'static str, decision: &Decision, started: std::time::Instant) {
    let result = match decision {
        Decision::Allow => "allow",
        Decision::Deny(_) => "deny",
        Decision::Unknown => "error",
    };
    let (counter, histogram) = decision_handles(check, client, result);
    counter.increment(1);
    histogram.record(started.elapsed().as_secs_f64());
}

/// A decision's (check, client, result) and its counter and latency histogram.
type DecisionLabels = (&'static str, &'static str, &'static str);
type DecisionHandles = (metrics::Counter, metrics::Histogram);

thread_local! {
    /// Decision metrics' handles, a few dozen at most: looked up once per thread instead of
    /// on every decision (see `http::metrics`).
    static DECISION_HANDLES: std::cell::RefCell<std::collections::HashMap<DecisionLabels, DecisionHandles>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

fn decision_handles(check: &'static str, client: &'static str, result: &'static str) -> DecisionHandles {
    let make = || {
        (
            metrics::counter!("fleetca_broker_decisions_total", "check" => check, "client" => client, "result" => result),
            metrics::histogram!("fleetca_broker_decision_duration_seconds", "check" => check, "client" => client),
        )
    };
    DECISION_HANDLES.with(|cell| match cell.try_borrow_mut() {
        Ok(mut cache) => cache.entry((check, client, result)).or_insert_with(make).clone(),
        Err(_) => make(),
    })
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

impl BrokerService {
    pub fn new(
        store: Store,
        master: Arc<MasterKey>,
        cas: Arc<Authorities>,
        tokens: Arc<Tokens>,
        clock: Arc<dyn Clock>,
        policy: BrokerPolicy,
        activations: Option<mpsc::Sender<ActivationEvent>>,
    ) -> Self {
        let capacity = CACHE_CAPACITY;
        let sign = SignDevices::new(
            store.clone(),
            master.clone(),
            clock.clone(),
            policy.acl.clone(),
            capacity,
            activations,
        );
        Self {
            store,
            master,
            cas,
            tokens,
            clock,
            policy,
            devices: Cache::new("broker_devices", capacity),
            keys: Cache::new("broker_keys", capacity),
            sign,
        }
    }

    /// Forgets a product's cached state (and so refuses its devices at once when disabled).
    pub fn invalidate_product(&self, product_key: &str) {
        self.sign.invalidate_product(product_key);
    }

    /// Forgets a sign-based device's cached state.
    pub fn invalidate_sign_device(&self, product_key: &str, device_key: &str) {
        self.sign.invalidate_sign_device(product_key, device_key);
    }

    /// Forgets a device's cached credentials.
    pub fn invalidate_device(&self, tenant: &str, device_id: &str) {
        self.devices.remove(&crate::support::cache::pair(tenant, device_id));
    }

    /// Forgets an API key's cached state (on deactivation, role change, certificate
    /// issue or revocation).
    pub fn invalidate_key(&self, user_id: Uuid) {
        self.keys.retain(|_, e| e.user_id != user_id);
    }

    async fn device(&self, tenant: &str, device_id: &str) -> Result<Option<Arc<DeviceEntry>>, StorageError> {
        if let Some(e) = self.devices.get_pair(tenant, device_id) {
            return Ok(Some(e));
        }
        let key = crate::support::cache::pair(tenant, device_id);
        let generation = self.devices.generation();
        let d = match self.store.device(tenant, device_id).await {
            Ok(d) => d,
            Err(StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let password_key = match device::open_ha1(&self.master, &d.tenant, &d.device_id, &d.sealed_ha1) {
            Ok(ha1) => Some(device::MqttKey::new(&ha1)),
            Err(e) => {
                tracing::warn!(%tenant, %device_id, error = %e, "a device's sealed HA1 does not open with this master key or is not an HA1; the device is refused");
                None
            }
        };
        let entry = Arc::new(DeviceEntry {
            key: password_key,
            active: d.is_active,
        });
        self.devices.insert_if_current(key, entry.clone(), generation);
        Ok(Some(entry))
    }

    async fn key(&self, username: &str) -> Result<Option<Arc<KeyEntry>>, StorageError> {
        if let Some(e) = self.keys.get(username) {
            return Ok(Some(e));
        }
        self.load_key(username).await
    }

    /// Reads an API key and its active certificates from the database and caches them.
    async fn load_key(&self, username: &str) -> Result<Option<Arc<KeyEntry>>, StorageError> {
        let generation = self.keys.generation();
        let user = match self.store.user_by_username(username).await {
            Ok(u) => u,
            Err(StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let certificates = self.store.active_fingerprints(user.id, self.clock.now()).await?;
        let entry = Arc::new(KeyEntry {
            user_id: user.id,
            enterprise: user.enterprise,
            usable: user.is_active && user.is_service_account,
            certificates,
        });
        self.keys
            .insert_if_current(username.to_owned(), entry.clone(), generation);
        Ok(Some(entry))
    }

    /// Who a broker call is about, read once from its username and client id.
    fn login<'a>(&self, username: &'a str, clientid: Option<&'a str>, password_given: bool) -> Login<'a> {
        // The publisher's name cannot read as a device's login (the settings refuse '&', '='
        // and '%' in it), so the order of the first three decides nothing.
        if self.policy.publisher.as_ref().is_some_and(|(name, _)| name == username) {
            Login::Publisher
        } else if let Some((device_id, tenant)) = parse_device_username(username) {
            Login::Device { device_id, tenant }
        } else if let Some(sign) = clientid.and_then(|c| parse_sign_login(username, c)) {
            Login::Sign(sign)
        } else {
            Login::ApiKey {
                certificate: !password_given,
            }
        }
    }

    /// The tags of an allowed login, by which fleetca's mosquitto plugin forgets its cached
    /// decisions and ends its sessions ([`crate::brokers::feed`]).
    pub async fn plugin_tags(&self, req: &AuthRequest) -> Result<Vec<String>, Error> {
        use crate::brokers::feed;
        Ok(
            match self.login(&req.username, req.clientid.as_deref(), !req.password.is_empty()) {
                Login::Publisher => Vec::new(),
                Login::Device { device_id, tenant } => vec![feed::device_tag(&tenant, &device_id)],
                Login::Sign(sign) => vec![
                    feed::product_tag(sign.product_key),
                    feed::product_device_tag(sign.product_key, sign.device_key),
                ],
                Login::ApiKey { certificate } => {
                    let Some(key) = self.key(&req.username).await? else {
                        return Ok(Vec::new());
                    };
                    let mut tags = vec![feed::user_tag(key.user_id)];
                    let presented = match (&req.cert_fingerprint, &req.cert_pem) {
                        (Some(fp), _) if certificate && !fp.is_empty() => Some(fp.clone()),
                        (_, Some(pem)) if certificate && !pem.is_empty() => self.cas.check_issued(pem),
                        _ => None,
                    };
                    tags.extend(presented.map(|fp| feed::cert_tag(&fp)));
                    tags
                }
            },
        )
    }

    /// Whether an allowed login may be refused later by the clock alone: an HA1 device's
    /// (its password is a signed timestamp), or a sign-based device's whose product checks a
    /// skew. A broker must not cache such a decision.
    pub async fn login_checks_clock(&self, req: &AuthRequest) -> Result<bool, Error> {
        Ok(
            match self.login(&req.username, req.clientid.as_deref(), !req.password.is_empty()) {
                Login::Device { .. } => true,
                Login::Sign(sign) => self.sign.checks_clock(&sign).await?,
                Login::Publisher | Login::ApiKey { .. } => false,
            },
        )
    }

    /// For an allowed EnOS activation login that the broker delivers itself: the product
    /// key, device key and device secret.
    pub async fn activation_secret(&self, req: &AuthRequest) -> Result<Option<(String, String, String)>, Error> {
        let Some(login) = req.clientid.as_deref().and_then(|c| parse_sign_login(&req.username, c)) else {
            return Ok(None);
        };
        Ok(self
            .sign
            .activation_secret(&login)
            .await?
            .map(|secret| (login.product_key.to_owned(), login.device_key.to_owned(), secret)))
    }

    /// May this client connect?
    pub async fn authenticate(&self, req: &AuthRequest) -> Decision {
        let started = std::time::Instant::now();
        let login = self.login(&req.username, req.clientid.as_deref(), !req.password.is_empty());
        let decision = match self.try_authenticate(req, &login).await {
            Ok(d) => d,
            Err(Error::Unavailable) => Decision::Unknown,
            Err(e) => {
                tracing::error!(error = %e, "broker auth failed");
                Decision::Unknown
            }
        };
        record_decision("auth", login.metric(), &decision, started);
        decision
    }

    /// What EMQX learns with an allowed authentication of `req` (see [`EmqxGrant`]).
    pub async fn emqx_grant(&self, req: &AuthRequest) -> EmqxGrant {
        match self.try_emqx_grant(req).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "EMQX grant not computed; EMQX asks for each topic instead");
                EmqxGrant::default()
            }
        }
    }

    async fn try_emqx_grant(&self, req: &AuthRequest) -> Result<EmqxGrant, Error> {
        let clientid = req.clientid.as_deref();
        if let Some((device_id, tenant)) = parse_device_username(&req.username) {
            let vars = Vars {
                tenant: Some(&tenant),
                device_id: Some(&device_id),
                clientid,
                ..Default::default()
            };
            return Ok(EmqxGrant {
                expire_at: None,
                acl: Some(emqx_rules(&self.policy.acl.device, &vars)),
            });
        }
        let is_publisher = self.policy.publisher.as_ref().is_some_and(|(n, _)| *n == req.username);
        if is_publisher || clientid.and_then(|c| parse_sign_login(&req.username, c)).is_some() {
            return Ok(EmqxGrant::default());
        }
        let Some(key) = self.key(&req.username).await? else {
            return Ok(EmqxGrant::default());
        };
        let expire_at = if req.password.is_empty() {
            let presented = match (&req.cert_fingerprint, &req.cert_pem) {
                (Some(fp), _) if !fp.is_empty() => Some(fp.replace(':', "").to_ascii_lowercase()),
                (_, Some(pem)) if !pem.is_empty() => self.cas.check_issued(pem),
                _ => None,
            };
            presented.and_then(|fp| {
                key.certificates
                    .iter()
                    .find(|(f, _)| *f == fp)
                    .map(|(_, not_after)| not_after.timestamp())
            })
        } else {
            None
        };
        let vars = Vars {
            enterprise: Some(&key.enterprise),
            username: Some(&req.username),
            clientid,
            ..Default::default()
        };
        Ok(EmqxGrant {
            expire_at,
            acl: Some(emqx_rules(&self.policy.acl.api_key, &vars)),
        })
    }

    async fn try_authenticate(&self, req: &AuthRequest, login: &Login<'_>) -> Result<Decision, Error> {
        if has_control(&req.username) || has_control(&req.password) || req.clientid.as_deref().is_some_and(has_control)
        {
            return Ok(Decision::Deny("control characters in a credential"));
        }
        match login {
            Login::Device { device_id, tenant } => self.authenticate_device(req, device_id, tenant).await,
            Login::Sign(sign) => self.sign.authenticate(req, sign).await,
            Login::Publisher => {
                let password = self
                    .policy
                    .publisher
                    .as_ref()
                    .map(|(_, p)| p.as_bytes())
                    .unwrap_or_default();
                let ok = fleetca_ca::secret::constant_time_eq(req.password.as_bytes(), password);
                Ok(if ok {
                    Decision::Allow
                } else {
                    Decision::Deny("bad publisher password")
                })
            }
            Login::ApiKey { certificate: false } => Ok(match self.tokens.verify(&req.password).await? {
                Some(p) if p.is_service_account && p.username == req.username => Decision::Allow,
                Some(_) => Decision::Deny("token belongs to another user or to a human"),
                None => Decision::Deny("bad token"),
            }),
            Login::ApiKey { certificate: true } => self.authenticate_certificate(req).await,
        }
    }

    async fn authenticate_device(&self, req: &AuthRequest, device_id: &str, tenant: &str) -> Result<Decision, Error> {
        let Some((signature, timestamp)) = parse_device_password(&req.password) else {
            return Ok(Decision::Deny("device password is not signature=...&timestamp=..."));
        };
        let now = self.clock.now().timestamp();
        if !within_skew(now, timestamp, self.policy.timestamp_skew_seconds) {
            return Ok(Decision::Deny("device timestamp outside the allowed skew"));
        }
        if req.clientid.as_deref() != Some(device_id) {
            return Ok(Decision::Deny("client id differs from the device id"));
        }
        let Some(entry) = self.device(tenant, device_id).await? else {
            return Ok(Decision::Deny("unknown device"));
        };
        if !entry.active {
            return Ok(Decision::Deny("device disabled"));
        }
        let Some(key) = &entry.key else {
            return Ok(Decision::Deny("device HA1 does not open"));
        };
        if !key.verify(timestamp, &signature) {
            return Ok(Decision::Deny("bad device signature"));
        }
        Ok(Decision::Allow)
    }

    /// A client certificate: the username is its CN.
    async fn authenticate_certificate(&self, req: &AuthRequest) -> Result<Decision, Error> {
        let presented = match (&req.cert_fingerprint, &req.cert_pem) {
            (Some(fp), _) if !fp.is_empty() => Some(fp.replace(':', "").to_ascii_lowercase()),
            (_, Some(pem)) if !pem.is_empty() => match self.cas.check_issued(pem) {
                Some(fingerprint) => Some(fingerprint),
                None => return Ok(Decision::Deny("certificate not issued by this CA")),
            },
            _ => None,
        };
        if presented.is_none() && !self.policy.trust_username_for_certificates && !req.certificate_verified_by_broker {
            return Ok(Decision::Deny(
                "no password and no certificate (username-only certificate login is off)",
            ));
        }
        let now = self.clock.now();
        if req.username.starts_with(crate::brokers::canary::CN_PREFIX) {
            return self.authenticate_canary(&req.username, presented.as_deref(), now).await;
        }
        let decide = |key: &KeyEntry| {
            if !key.usable {
                return Decision::Deny("API key inactive");
            }
            match &presented {
                Some(fp) if key.holds(fp, now) => Decision::Allow,
                Some(_) => Decision::Deny("certificate revoked, expired or not this key's"),
                None if key.has_active(now) => Decision::Allow,
                None => Decision::Deny("API key has no active certificate"),
            }
        };
        let Some(key) = self.key(&req.username).await? else {
            return Ok(Decision::Deny("unknown API key"));
        };
        // Issuing a certificate does not touch the cache (it is the hot path, on any
        // instance), so before denying for a missing certificate, read the key afresh.
        Ok(match decide(&key) {
            Decision::Deny(_) if key.usable => match self.load_key(&req.username).await? {
                Some(fresh) => decide(&fresh),
                None => Decision::Deny("unknown API key"),
            },
            d => d,
        })
    }

    /// fleetca's revocation canary (see `canary`): admitted with its valid certificate when the
    /// broker shows one (PEM or fingerprint), by name when the broker checked the certificate
    /// itself; given no topic by any ACL.
    async fn authenticate_canary(
        &self,
        username: &str,
        presented: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Decision, Error> {
        let Some(fingerprint) = presented else {
            // The broker checked the certificate itself and sends only its CN (RabbitMQ):
            // the valid and the revoked canary share it, so the broker's CRL check decides.
            let known = self
                .store
                .has_active_named(CertificateKind::Canary.as_str(), username, now)
                .await?;
            return Ok(if known {
                Decision::Allow
            } else {
                Decision::Deny("no active revocation canary has this name")
            });
        };
        let cert = match self.store.certificate_by_fingerprint(fingerprint).await {
            Ok(c) => c,
            Err(StorageError::NotFound) => return Ok(Decision::Deny("certificate not issued by this CA")),
            Err(e) => return Err(e.into()),
        };
        Ok(
            if CertificateKind::Canary.is(&cert.kind)
                && cert.name == username
                && cert.revoked_at.is_none()
                && cert.not_after > now
            {
                Decision::Allow
            } else {
                Decision::Deny("certificate revoked, expired or not this canary's")
            },
        )
    }

    /// May this client use this topic?
    pub async fn authorize(&self, req: &AclRequest<'_>) -> Decision {
        let started = std::time::Instant::now();
        // An API key's topics are the same whether it signed in with its token or a certificate.
        let login = self.login(req.username, req.clientid, true);
        let decision = match self.try_authorize(req, &login).await {
            Ok(d) => d,
            Err(Error::Unavailable) => Decision::Unknown,
            Err(e) => {
                tracing::error!(error = %e, "broker ACL failed");
                Decision::Unknown
            }
        };
        record_decision("acl", login.metric(), &decision, started);
        decision
    }

    async fn try_authorize(&self, req: &AclRequest<'_>, login: &Login<'_>) -> Result<Decision, Error> {
        if has_control(req.username) || req.clientid.is_some_and(has_control) {
            return Ok(Decision::Deny("control characters in a credential"));
        }
        let rules = &self.policy.acl;
        let clientid = req.clientid;
        let publishes = req.access.contains(&Access::Write);
        if let Login::Publisher = login {
            // fleetca's own publisher: activation topics only, writing only.
            let ok = req.access == [Access::Write]
                && acl::valid_filter(req.topic)
                && !req.topic.contains(['+', '#'])
                && acl::within(req.topic, "/ext/session/+/+/thing/activate/info");
            return Ok(if ok {
                Decision::Allow
            } else {
                Decision::Deny("publisher outside activation topics")
            });
        }
        if publishes && acl::touches_activation_topics(req.topic) {
            return Ok(Decision::Deny("only fleetca publishes on activation topics"));
        }
        if let Login::Sign(sign) = login {
            return self.sign.authorize(req, sign).await;
        }
        if acl::touches_activation_topics(req.topic) {
            // Device secrets travel there: no rule of an API key or HA1 device reaches them.
            return Ok(Decision::Deny("activation topics are for their own devices only"));
        }
        let ok = if let Login::Device { device_id, tenant } = login {
            if clientid.is_some_and(|c| c != device_id) {
                return Ok(Decision::Deny("client id differs from the device id"));
            }
            match self.device(tenant, device_id).await? {
                Some(e) if e.active && e.key.is_some() => {}
                _ => return Ok(Decision::Deny("unknown or disabled device")),
            }
            let vars = Vars {
                tenant: Some(tenant),
                device_id: Some(device_id),
                clientid,
                dots_are_levels: req.amqp,
                ..Default::default()
            };
            req.access
                .iter()
                .all(|a| acl::allowed(&rules.device, &vars, req.topic, *a))
        } else {
            let key = match self.key(req.username).await? {
                Some(k) if k.usable => k,
                _ => return Ok(Decision::Deny("unknown or inactive API key")),
            };
            let vars = Vars {
                enterprise: Some(&key.enterprise),
                username: Some(req.username),
                clientid,
                dots_are_levels: req.amqp,
                ..Default::default()
            };
            req.access
                .iter()
                .all(|a| acl::allowed(&rules.api_key, &vars, req.topic, *a))
        };
        Ok(if ok {
            Decision::Allow
        } else {
            Decision::Deny("topic not allowed")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_usernames_parse_in_any_order_and_percent_decoded() {
        assert_eq!(
            parse_device_username("device=d1&tenant=acme"),
            Some(("d1".into(), "acme".into()))
        );
        assert_eq!(
            parse_device_username("tenant=acme&device=d1"),
            Some(("d1".into(), "acme".into()))
        );
        assert_eq!(
            parse_device_username("device=d%3A1&tenant=acme"),
            Some(("d:1".into(), "acme".into()))
        );
        assert_eq!(parse_device_username("device=d1"), None);
        assert_eq!(parse_device_username("device=d1&tenant=a&extra=1"), None);
        assert_eq!(parse_device_username("device=d1&device=d2&tenant=a"), None);
        assert_eq!(parse_device_username("svc-mqtt"), None);
        // Without escapes, nothing is copied (every device login takes this path).
        let (device, tenant) = parse_device_username("device=d1&tenant=acme").unwrap();
        assert!(matches!((device, tenant), (Cow::Borrowed("d1"), Cow::Borrowed("acme"))));
    }

    #[test]
    fn device_passwords_parse_only_in_canonical_form() {
        assert_eq!(
            parse_device_password("signature=ab&timestamp=12"),
            Some(("ab".into(), 12))
        );
        assert_eq!(
            parse_device_password("timestamp=12&signature=ab"),
            Some(("ab".into(), 12))
        );
        for bad in [
            "signature=ab&timestamp=x",
            "token",
            "signature=ab&timestamp=012",
            "signature=ab&timestamp=-5",
            "signature=ab&timestamp=+5",
            "signature=ab&timestamp=",
            "signature=ab&timestamp=99999999999999999999",
        ] {
            assert_eq!(parse_device_password(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_skew_check_cannot_overflow() {
        assert!(within_skew(1_000, 1_299, 300));
        assert!(!within_skew(1_000, 1_301, 300));
        assert!(!within_skew(1_000, i64::MIN, 300));
        assert!(!within_skew(i64::MIN, 1, 300));
        assert!(!within_skew(1_000, 1_000i64.wrapping_add(i64::MIN), 300));
    }

    use crate::app::testing::{Kit, admin};
    use crate::domain::{DeviceId, Tenant};
    use crate::fleet::devices::DeviceCredential;
    use crate::fleet::devices::{DeviceChange, DeviceInput};
    use crate::identity::users::UserChange;

    const HA1: &str = "939e7578ed9e3c518a452acee763bce9";

    async fn kit_with_device() -> Kit {
        let kit = Kit::new().await;
        let input = DeviceInput {
            tenant: Tenant::parse("acme").unwrap(),
            device_id: DeviceId::parse("dev-1").unwrap(),
            realm: None,
            description: None,
            credential: DeviceCredential::Ha1(crate::domain::Secret::new(HA1)),
        };
        kit.devices.create(&admin(), input).await.unwrap();
        kit
    }

    fn device_login(ts: i64, signature: &str, clientid: &str) -> AuthRequest {
        AuthRequest {
            certificate_verified_by_broker: false,
            username: "device=dev-1&tenant=acme".into(),
            password: format!("signature={signature}&timestamp={ts}"),
            clientid: Some(clientid.into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_device_is_admitted_by_an_hmac_of_the_time_and_refused_on_each_wrong_part() {
        let kit = kit_with_device().await;
        let now = kit.clock.now().timestamp();
        let good = |ts: i64| device_login(ts, &device::mqtt_signature(HA1, ts), "dev-1");
        assert_eq!(kit.broker.authenticate(&good(now)).await, Decision::Allow);
        assert_eq!(kit.broker.authenticate(&good(now - 300)).await, Decision::Allow);
        let denied = |d: Decision| matches!(d, Decision::Deny(_));
        assert!(denied(kit.broker.authenticate(&good(now - 301)).await), "skew");
        assert!(
            denied(
                kit.broker
                    .authenticate(&device_login(now, &device::mqtt_signature(HA1, now), "dev-2"))
                    .await
            ),
            "client id"
        );
        assert!(
            denied(
                kit.broker
                    .authenticate(&device_login(now, &"0".repeat(64), "dev-1"))
                    .await
            ),
            "signature"
        );
        let mut unknown = good(now);
        unknown.username = "device=dev-9&tenant=acme".into();
        unknown.clientid = Some("dev-9".into());
        assert!(denied(kit.broker.authenticate(&unknown).await), "unknown device");
        let mut nul = good(now);
        nul.username = "device=dev-1\0&tenant=acme".into();
        assert!(denied(kit.broker.authenticate(&nul).await), "control characters");
        // An overflowing timestamp, correctly signed, is refused.
        let wild = now.wrapping_add(i64::MIN);
        assert!(denied(kit.broker.authenticate(&good(wild)).await), "overflow");
        // Disabled: refused at once (the cache is dropped).
        let change = DeviceChange {
            is_active: Some(false),
            description: None,
        };
        kit.devices.change(&admin(), "acme", "dev-1", change).await.unwrap();
        assert!(denied(kit.broker.authenticate(&good(now)).await), "disabled");
        let acl = AclRequest {
            amqp: false,
            username: "device=dev-1&tenant=acme",
            clientid: Some("dev-1"),
            topic: "devices/acme/dev-1/telemetry",
            access: &[Access::Write],
        };
        assert!(
            denied(kit.broker.authorize(&acl).await),
            "a disabled device publishes nothing"
        );
    }

    #[tokio::test]
    async fn a_sealed_ha1_that_does_not_open_is_a_plain_denial() {
        let kit = Kit::new().await;
        let new = fleetca_storage::devices::NewDevice {
            tenant: "acme".into(),
            device_id: "dev-x".into(),
            realm: "acme".into(),
            sealed_ha1: vec![1, 2, 3],
            description: None,
        };
        kit.store.create_device(new, &[], kit.clock.now()).await.unwrap();
        let now = kit.clock.now().timestamp();
        let req = AuthRequest {
            certificate_verified_by_broker: false,
            username: "device=dev-x&tenant=acme".into(),
            password: format!("signature={}&timestamp={now}", device::mqtt_signature(HA1, now)),
            clientid: Some("dev-x".into()),
            ..Default::default()
        };
        assert!(matches!(kit.broker.authenticate(&req).await, Decision::Deny(_)));
    }

    #[tokio::test]
    async fn device_topics_stay_inside_the_device() {
        let kit = kit_with_device().await;
        let ask = |topic: &'static str, access: &'static [Access]| AclRequest {
            amqp: false,
            username: "device=dev-1&tenant=acme",
            clientid: Some("dev-1"),
            topic,
            access,
        };
        assert_eq!(
            kit.broker
                .authorize(&ask("devices/acme/dev-1/telemetry", &[Access::Write]))
                .await,
            Decision::Allow
        );
        assert!(matches!(
            kit.broker
                .authorize(&ask("devices/acme/dev-2/telemetry", &[Access::Write]))
                .await,
            Decision::Deny(_)
        ));
        assert!(matches!(
            kit.broker.authorize(&ask("devices/acme/#", &[Access::Subscribe])).await,
            Decision::Deny(_)
        ));
    }

    #[tokio::test]
    async fn an_api_key_is_admitted_by_its_token_until_deactivated() {
        let kit = Kit::new().await;
        let (key, token) = kit.api_key("svc-a", "acme").await;
        let login = |username: &str, password: &str| AuthRequest {
            certificate_verified_by_broker: false,
            username: username.into(),
            password: password.into(),
            clientid: Some("c".into()),
            ..Default::default()
        };
        assert_eq!(kit.broker.authenticate(&login("svc-a", &token)).await, Decision::Allow);
        assert!(matches!(
            kit.broker.authenticate(&login("svc-a", "fca_wrong")).await,
            Decision::Deny(_)
        ));
        let (_, other) = kit.api_key("svc-b", "acme").await;
        assert!(matches!(
            kit.broker.authenticate(&login("svc-a", &other)).await,
            Decision::Deny(_)
        ));
        let acl = AclRequest {
            amqp: false,
            username: "svc-a",
            clientid: Some("c"),
            topic: "v4/groups/acme.master/#",
            access: &[Access::Subscribe],
        };
        assert_eq!(kit.broker.authorize(&acl).await, Decision::Allow);
        let change = UserChange {
            is_active: Some(false),
            role: None,
        };
        kit.users.change(&admin(), key.id, change).await.unwrap();
        assert!(matches!(
            kit.broker.authenticate(&login("svc-a", &token)).await,
            Decision::Deny(_)
        ));
        assert!(matches!(kit.broker.authorize(&acl).await, Decision::Deny(_)));
    }

    #[tokio::test]
    async fn a_certificate_client_must_show_an_active_unexpired_certificate_of_its_key() {
        let kit = Kit::new().await;
        let (key, _) = kit.api_key("svc-c", "acme").await;
        let created = kit.certificate(&key).await;
        let cert = &created.record.certificate;
        let with = |fingerprint: Option<&str>, pem: Option<&str>| AuthRequest {
            certificate_verified_by_broker: false,
            username: "svc-c".into(),
            cert_fingerprint: fingerprint.map(str::to_owned),
            cert_pem: pem.map(str::to_owned),
            ..Default::default()
        };
        assert_eq!(
            kit.broker.authenticate(&with(Some(&cert.fingerprint), None)).await,
            Decision::Allow
        );
        assert_eq!(
            kit.broker.authenticate(&with(None, Some(&cert.certificate_pem))).await,
            Decision::Allow
        );
        assert!(
            matches!(kit.broker.authenticate(&with(None, None)).await, Decision::Deny(_)),
            "a username alone is refused by default"
        );
        assert!(matches!(
            kit.broker.authenticate(&with(Some(&"00".repeat(32)), None)).await,
            Decision::Deny(_)
        ));
        // Expired while cached: refused on the next decision.
        kit.clock.set(cert.not_after + chrono::Duration::seconds(1));
        assert!(matches!(
            kit.broker.authenticate(&with(Some(&cert.fingerprint), None)).await,
            Decision::Deny(_)
        ));
    }

    #[tokio::test]
    async fn a_revoked_certificate_is_refused_at_once() {
        let kit = Kit::with_policy(|p| p.trust_username_for_certificates = true).await;
        let (key, _) = kit.api_key("svc-d", "acme").await;
        let created = kit.certificate(&key).await;
        let cert = created.record.certificate;
        let by_name = AuthRequest {
            certificate_verified_by_broker: false,
            username: "svc-d".into(),
            ..Default::default()
        };
        assert_eq!(kit.broker.authenticate(&by_name).await, Decision::Allow);
        kit.certificates
            .revoke(&admin(), cert.id, fleetca_ca::crl::Reason::KeyCompromise)
            .await
            .unwrap();
        assert!(matches!(kit.broker.authenticate(&by_name).await, Decision::Deny(_)));
        let by_fp = AuthRequest {
            certificate_verified_by_broker: false,
            username: "svc-d".into(),
            cert_fingerprint: Some(cert.fingerprint.clone()),
            ..Default::default()
        };
        assert!(matches!(kit.broker.authenticate(&by_fp).await, Decision::Deny(_)));
    }

    #[tokio::test]
    async fn the_revocation_canary_is_admitted_only_while_valid_and_reaches_no_topic() {
        let kit = Kit::new().await;
        let now = kit.clock.now();
        let canary = |n: u8| fleetca_storage::certificates::NewCertificate {
            name: format!("fleetca-canary-0000000{n}"),
            kind: CertificateKind::Canary.as_str().into(),
            api_key_id: None,
            enterprise: "default".into(),
            serial: format!("0{n}"),
            fingerprint: format!("{n}").repeat(64),
            certificate_pem: String::new(),
            not_before: now,
            not_after: now + chrono::Duration::days(3),
            device: None,
            renews: None,
            issuer_id: 1,
            crl_shard: None,
            claim: None,
        };
        let queue = kit.store.issue_queue(crate::pki::issuance::planner());
        let job = |cert| fleetca_storage::issuance::IssueJob {
            cert,
            max_active: None,
            audit: None,
            now,
        };
        let one = queue.insert(job(canary(1))).await.unwrap().certificate;
        let two = queue.insert(job(canary(2))).await.unwrap().certificate;
        let login = |username: &str, fingerprint: Option<&str>| AuthRequest {
            certificate_verified_by_broker: true,
            username: username.into(),
            cert_fingerprint: fingerprint.map(str::to_owned),
            ..Default::default()
        };
        assert_eq!(
            kit.broker.authenticate(&login(&one.name, Some(&one.fingerprint))).await,
            Decision::Allow
        );
        // A broker that checked the certificate itself sends the name alone (RabbitMQ).
        assert_eq!(kit.broker.authenticate(&login(&one.name, None)).await, Decision::Allow);
        let unverified = AuthRequest {
            certificate_verified_by_broker: false,
            ..login(&one.name, None)
        };
        for (what, req) in [
            ("no certificate, not verified by the broker", unverified),
            ("a name no canary has", login("fleetca-canary-ffffffffffff", None)),
            ("another canary's certificate", login(&one.name, Some(&two.fingerprint))),
            ("an unknown certificate", login(&one.name, Some(&"9".repeat(64)))),
        ] {
            assert!(
                matches!(kit.broker.authenticate(&req).await, Decision::Deny(_)),
                "{what}"
            );
        }
        // An API key's certificate does not pass as a canary either.
        let (key, _) = kit.api_key("svc-c", "acme").await;
        let created = kit.certificate(&key).await;
        let theirs = login(&one.name, Some(&created.record.certificate.fingerprint));
        assert!(matches!(kit.broker.authenticate(&theirs).await, Decision::Deny(_)));
        // Revoked: refused.
        kit.store
            .revoke_certificate(two.id, "cessationOfOperation", &[], now)
            .await
            .unwrap();
        for req in [login(&two.name, Some(&two.fingerprint)), login(&two.name, None)] {
            assert!(matches!(kit.broker.authenticate(&req).await, Decision::Deny(_)));
        }
        // Admitted, it may use no topic.
        for (access, topic) in [(Access::Subscribe, "#"), (Access::Write, "v4/groups/default.master/x")] {
            let acl = AclRequest {
                username: &one.name,
                clientid: Some("c"),
                topic,
                access: &[access],
                amqp: false,
            };
            assert!(matches!(kit.broker.authorize(&acl).await, Decision::Deny(_)), "{topic}");
        }
    }

    mod sign_devices {
        use fleetca_ca::sign::{self, SignMethod, content};

        use super::*;
        use crate::domain::{CertificateName, DeviceKey, ProductKey, Scheme, Secret};
        use crate::fleet::products::{NewProductInput, NewSignDevice, ProductChange, SignDeviceChange};

        const PK: &str = "pk0000000001";

        async fn product(kit: &Kit, scheme: Scheme, dynamic: bool) -> String {
            let input = NewProductInput {
                product_key: Some(ProductKey::parse(PK).unwrap()),
                name: CertificateName::parse("meters").unwrap(),
                enterprise: None,
                scheme,
                dynamic_activation: dynamic,
                max_clock_skew_seconds: Some(300),
                product_secret: None,
            };
            kit.products.create(&admin(), input).await.unwrap().1.unwrap()
        }

        async fn device(kit: &Kit, key: &str, secret: Option<&str>) -> String {
            let input = NewSignDevice {
                device_key: DeviceKey::parse(key).unwrap(),
                device_secret: secret.map(Secret::new),
                description: None,
            };
            let created = kit.products.create_device(&admin(), PK, input).await.unwrap();
            created.generated_secret.unwrap_or_else(|| secret.unwrap().to_owned())
        }

        fn login(kit: &Kit, device_key: &str, method: &str, securemode: &str, secret: &str) -> AuthRequest {
            let ts = kit.clock.now().timestamp_millis().to_string();
            let (name, sign_method) = if method == "sha256" {
                ("deviceKey", SignMethod::enos(method))
            } else {
                ("deviceName", SignMethod::aliyun(method))
            };
            let c = content(&[
                ("clientId", "cid-1"),
                (name, device_key),
                ("productKey", PK),
                ("timestamp", &ts),
            ]);
            AuthRequest {
                certificate_verified_by_broker: false,
                username: format!("{device_key}&{PK}"),
                password: sign_method.unwrap().sign(secret, &c),
                clientid: Some(format!(
                    "cid-1|securemode={securemode},signmethod={method},timestamp={ts}|"
                )),
                ..Default::default()
            }
        }

        fn denied(d: Decision) -> bool {
            matches!(d, Decision::Deny(_))
        }

        #[tokio::test]
        async fn an_enos_device_signs_with_its_secret_and_is_refused_after_disable_or_rotation() {
            let kit = Kit::new().await;
            product(&kit, Scheme::Enos, false).await;
            let secret = device(&kit, "meter-1", Some("abcdefgh-0123456789")).await;
            assert_eq!(
                kit.broker
                    .authenticate(&login(&kit, "meter-1", "sha256", "2", &secret))
                    .await,
                Decision::Allow
            );
            assert!(denied(
                kit.broker
                    .authenticate(&login(&kit, "meter-1", "sha256", "2", "wrong-secret"))
                    .await
            ));
            assert!(
                denied(
                    kit.broker
                        .authenticate(&login(&kit, "meter-1", "hmacsha1", "2", &secret))
                        .await
                ),
                "another scheme's method"
            );
            let mut late = login(&kit, "meter-1", "sha256", "2", &secret);
            kit.clock.set(kit.clock.now() + chrono::Duration::seconds(301));
            assert!(
                denied(kit.broker.authenticate(&late).await),
                "outside the product's skew"
            );
            kit.clock.set(kit.clock.now() - chrono::Duration::seconds(301));
            late.password = late.password.to_lowercase();
            assert_eq!(kit.broker.authenticate(&late).await, Decision::Allow, "either case");
            let acl = |topic: &'static str| AclRequest {
                amqp: false,
                username: "meter-1&pk0000000001",
                clientid: late.clientid.as_deref(),
                topic,
                access: &[Access::Write],
            };
            assert_eq!(
                kit.broker
                    .authorize(&acl("/sys/pk0000000001/meter-1/thing/event/post"))
                    .await,
                Decision::Allow
            );
            assert!(denied(
                kit.broker
                    .authorize(&acl("/sys/pk0000000001/meter-2/thing/event/post"))
                    .await
            ));
            assert!(denied(
                kit.broker
                    .authorize(&acl("/ext/session/pk0000000001/meter-1/thing/activate/info"))
                    .await
            ));
            let (_, rotated) = kit
                .products
                .rotate_device_secret(&admin(), PK, "meter-1")
                .await
                .unwrap();
            assert!(denied(
                kit.broker
                    .authenticate(&login(&kit, "meter-1", "sha256", "2", &secret))
                    .await
            ));
            assert_eq!(
                kit.broker
                    .authenticate(&login(&kit, "meter-1", "sha256", "2", &rotated))
                    .await,
                Decision::Allow
            );
            kit.products
                .change_device(
                    &admin(),
                    PK,
                    "meter-1",
                    SignDeviceChange {
                        is_active: Some(false),
                        description: None,
                    },
                )
                .await
                .unwrap();
            assert!(denied(
                kit.broker
                    .authenticate(&login(&kit, "meter-1", "sha256", "2", &rotated))
                    .await
            ));
        }

        #[tokio::test]
        async fn alibaba_devices_sign_with_each_hmac_and_a_disabled_product_refuses_them_all() {
            let kit = Kit::new().await;
            product(&kit, Scheme::Aliyun, false).await;
            let secret = device(&kit, "lamp-1", None).await;
            for method in ["hmacsha1", "hmacsha256", "hmacmd5"] {
                assert_eq!(
                    kit.broker
                        .authenticate(&login(&kit, "lamp-1", method, "3", &secret))
                        .await,
                    Decision::Allow,
                    "{method}"
                );
            }
            // No timestamp: refused while the product checks the clock (a captured password
            // would replay forever); allowed for Alibaba once it does not, and left out of
            // the content.
            let c = content(&[("clientId", "c2"), ("deviceName", "lamp-1"), ("productKey", PK)]);
            let untimed = AuthRequest {
                certificate_verified_by_broker: false,
                username: format!("lamp-1&{PK}"),
                password: SignMethod::Hmac(sign::Hash::Sha256).sign(&secret, &c),
                clientid: Some("c2|securemode=2,signmethod=hmacsha256|".into()),
                ..Default::default()
            };
            assert!(denied(kit.broker.authenticate(&untimed).await));
            let no_clock = ProductChange {
                max_clock_skew_seconds: Some(None),
                ..Default::default()
            };
            kit.products.change(&admin(), PK, no_clock).await.unwrap();
            assert_eq!(kit.broker.authenticate(&untimed).await, Decision::Allow);
            for broken in ["c2", "c2|securemode=2,signmethod=hmacsha256", "c2|signmethod=nope|"] {
                let mut r = login(&kit, "lamp-1", "hmacsha1", "2", &secret);
                r.clientid = Some(broken.into());
                assert!(denied(kit.broker.authenticate(&r).await), "{broken}");
            }
            let mut unknown = login(&kit, "lamp-1", "hmacsha1", "2", &secret);
            unknown.username = "lamp-1&pkUNKNOWN0001".into();
            assert!(denied(kit.broker.authenticate(&unknown).await));
            kit.products
                .change(
                    &admin(),
                    PK,
                    ProductChange {
                        is_active: Some(false),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert!(denied(
                kit.broker
                    .authenticate(&login(&kit, "lamp-1", "hmacsha1", "2", &secret))
                    .await
            ));
        }

        /// A login exactly as an official SDK sends it.
        fn sdk_login(device_key: &str, client_id: &str, params: &str, password: &str) -> AuthRequest {
            AuthRequest {
                certificate_verified_by_broker: false,
                username: format!("{device_key}&{PK}"),
                password: password.into(),
                clientid: Some(format!("{client_id}|{params}|")),
                ..Default::default()
            }
        }

        // The passwords below were computed with Python's hashlib and hmac, the way the SDKs
        // compute them, for the clock set here.
        #[tokio::test]
        async fn the_official_sdks_logins_are_accepted_and_reconnect_hours_later() {
            let kit = Kit::new().await;
            kit.clock
                .set(DateTime::from_timestamp_millis(1_796_531_716_016).unwrap());
            // A product made without max_clock_skew_seconds checks no freshness, as the
            // platforms do: the SDKs send their boot-time password on every reconnect.
            let input = NewProductInput {
                product_key: Some(ProductKey::parse(PK).unwrap()),
                name: CertificateName::parse("meters").unwrap(),
                enterprise: None,
                scheme: Scheme::Enos,
                dynamic_activation: false,
                max_clock_skew_seconds: None,
                product_secret: None,
            };
            kit.products.create(&admin(), input).await.unwrap();
            device(&kit, "dev01abcde", Some("Gq8vRk2LmT5xWz7NcY4pHb6JdF3sAe9U")).await;
            // enos-mqtt-sdk-python 0.1.1: `str(time.time() * 1000)`, fraction included, and a
            // plain SHA-256 of content + secret in lower-case hex under the name hmacsha256.
            let params = |method: &str| format!("securemode=2,signmethod={method},timestamp=1796531716016.586");
            let sha256 = "3db67db82e548d47d252caff6a19b69780b05d80b5b31fc3d62e34554bbf3667";
            let sdk = sdk_login("dev01abcde", "dev01abcde", &params("hmacsha256"), sha256);
            assert_eq!(kit.broker.authenticate(&sdk).await, Decision::Allow);
            kit.clock.set(kit.clock.now() + chrono::Duration::hours(6));
            assert_eq!(
                kit.broker.authenticate(&sdk).await,
                Decision::Allow,
                "a reconnect hours later"
            );
            let md5 = "f56a7d1aa292a4013e646827927509da";
            assert_eq!(
                kit.broker
                    .authenticate(&sdk_login("dev01abcde", "dev01abcde", &params("hmacmd5"), md5))
                    .await,
                Decision::Allow
            );
            assert!(
                denied(
                    kit.broker
                        .authenticate(&sdk_login("dev01abcde", "dev01abcde", &params("hmacmd5"), sha256))
                        .await
                ),
                "the hash the method names"
            );
            // A product that asks for a skew reads the same text by value.
            let skewed = ProductChange {
                max_clock_skew_seconds: Some(Some(300)),
                ..Default::default()
            };
            kit.products.change(&admin(), PK, skewed).await.unwrap();
            assert!(denied(kit.broker.authenticate(&sdk).await), "six hours old");
            kit.clock.set(kit.clock.now() - chrono::Duration::hours(6));
            assert_eq!(kit.broker.authenticate(&sdk).await, Decision::Allow, "fresh again");
        }

        #[tokio::test]
        async fn the_alibaba_sdks_seconds_and_extended_parameters_are_accepted() {
            let kit = Kit::new().await;
            kit.clock.set(DateTime::from_timestamp(1_796_531_841, 0).unwrap());
            product(&kit, Scheme::Aliyun, false).await;
            device(&kit, "lamp-0001", Some("Alibaba-device-secret-0001")).await;
            // aliyun-iot-linkkit 1.2.13: `str(int(time.time()))`, ext/_ss/lan/_v, the client
            // id `{productKey}&{deviceName}`, HMAC-SHA1.
            let sdk = sdk_login(
                "lamp-0001",
                &format!("{PK}&lamp-0001"),
                "securemode=3,signmethod=hmacsha1,ext=1,_ss=1,lan=Python,_v=1.2.13,timestamp=1796531841",
                "ab2d3ed6d9073be8a49d937de27351c9bd9b47a7",
            );
            assert_eq!(
                kit.broker.authenticate(&sdk).await,
                Decision::Allow,
                "seconds, within 300 s"
            );
            kit.clock.set(kit.clock.now() + chrono::Duration::seconds(301));
            assert!(
                denied(kit.broker.authenticate(&sdk).await),
                "seconds are seconds, not milliseconds"
            );
        }

        #[tokio::test]
        async fn an_activation_login_is_held_to_an_hour_when_its_product_checks_no_freshness() {
            let (kit, _events) = Kit::with_activations().await;
            let input = NewProductInput {
                product_key: Some(ProductKey::parse(PK).unwrap()),
                name: CertificateName::parse("meters").unwrap(),
                enterprise: None,
                scheme: Scheme::Enos,
                dynamic_activation: true,
                max_clock_skew_seconds: None,
                product_secret: None,
            };
            let product_secret = kit.products.create(&admin(), input).await.unwrap().1.unwrap();
            device(&kit, "meter-7", None).await;
            let activation = login(&kit, "meter-7", "sha256", "3", &product_secret);
            kit.clock.set(kit.clock.now() + chrono::Duration::minutes(61));
            assert!(
                denied(kit.broker.authenticate(&activation).await),
                "a captured activation login replayed an hour later"
            );
            kit.clock.set(kit.clock.now() - chrono::Duration::minutes(61));
            assert_eq!(kit.broker.authenticate(&activation).await, Decision::Allow);
        }

        #[tokio::test]
        async fn an_enos_device_activates_once_with_the_product_secret() {
            let (kit, mut events) = Kit::with_activations().await;
            let product_secret = product(&kit, Scheme::Enos, true).await;
            let device_secret = device(&kit, "meter-9", None).await;
            let activation = login(&kit, "meter-9", "sha256", "3", &product_secret);
            assert_eq!(kit.broker.authenticate(&activation).await, Decision::Allow);
            assert_eq!(
                events.try_recv().unwrap(),
                ActivationEvent::Deliver {
                    product_key: PK.into(),
                    device_key: "meter-9".into(),
                    secret: device_secret.clone(),
                }
            );
            // The activation connection only receives its secret.
            let acl = |topic: &'static str, access: &'static [Access]| AclRequest {
                amqp: false,
                username: "meter-9&pk0000000001",
                clientid: activation.clientid.as_deref(),
                topic,
                access,
            };
            let topic = "/ext/session/pk0000000001/meter-9/thing/activate/info";
            assert_eq!(
                kit.broker.authorize(&acl(topic, &[Access::Subscribe])).await,
                Decision::Allow
            );
            assert!(denied(
                kit.broker
                    .authorize(&acl("/sys/pk0000000001/meter-9/x", &[Access::Write]))
                    .await
            ));
            assert!(denied(
                kit.broker
                    .authorize(&acl(
                        "/ext/session/pk0000000001/meter-8/thing/activate/info",
                        &[Access::Subscribe]
                    ))
                    .await
            ));
            // The topic EMQX's auto_subscribe builds from `${username}` for SDKs that never
            // subscribe: its own, read only; another device's, no.
            let by_username = "/ext/session/meter-9&pk0000000001/activation/thing/activate/info";
            assert_eq!(
                kit.broker.authorize(&acl(by_username, &[Access::Subscribe])).await,
                Decision::Allow
            );
            assert!(denied(kit.broker.authorize(&acl(by_username, &[Access::Write])).await));
            assert!(denied(
                kit.broker
                    .authorize(&acl(
                        "/ext/session/meter-8&pk0000000001/activation/thing/activate/info",
                        &[Access::Subscribe]
                    ))
                    .await
            ));
            // The device connects with its secret: activated, the message cleared, no second activation.
            assert_eq!(
                kit.broker
                    .authenticate(&login(&kit, "meter-9", "sha256", "2", &device_secret))
                    .await,
                Decision::Allow
            );
            assert!(matches!(events.try_recv().unwrap(), ActivationEvent::Clear { .. }));
            assert!(
                denied(kit.broker.authenticate(&activation).await),
                "a second activation"
            );
            kit.products.reset_activation(&admin(), PK, "meter-9").await.unwrap();
            assert_eq!(
                kit.broker.authenticate(&activation).await,
                Decision::Allow,
                "after a reset"
            );
            // Only fleetca's publisher may publish there.
            let publisher = AclRequest {
                amqp: false,
                username: "fleetca-activation",
                clientid: Some("fleetca-activation-x"),
                topic,
                access: &[Access::Write],
            };
            assert_eq!(kit.broker.authorize(&publisher).await, Decision::Allow);
            let elsewhere = AclRequest {
                amqp: false,
                topic: "/sys/pk0000000001/meter-9/x",
                ..publisher
            };
            assert!(denied(kit.broker.authorize(&elsewhere).await));
            let login_as_publisher = AuthRequest {
                certificate_verified_by_broker: false,
                username: "fleetca-activation".into(),
                password: "publisher-password".into(),
                ..Default::default()
            };
            assert_eq!(kit.broker.authenticate(&login_as_publisher).await, Decision::Allow);
        }

        #[tokio::test]
        async fn no_api_key_or_ha1_device_reaches_an_activation_topic() {
            let kit = Kit::with_policy(|p| {
                p.acl.api_key = vec![acl::AclRule {
                    pattern: "#".into(),
                    access: vec![Access::Read, Access::Subscribe],
                }]
            })
            .await;
            kit.api_key("svc-wide", "acme").await;
            let ask = |topic: &'static str| AclRequest {
                amqp: false,
                username: "svc-wide",
                clientid: Some("c"),
                topic,
                access: &[Access::Subscribe],
            };
            assert_eq!(kit.broker.authorize(&ask("anything/else")).await, Decision::Allow);
            for topic in ["/ext/session/pk0000000001/d/thing/activate/info", "/ext/session/#", "#"] {
                assert!(denied(kit.broker.authorize(&ask(topic)).await), "{topic}");
            }
        }

        #[tokio::test]
        async fn a_static_enos_product_refuses_activation() {
            let kit = Kit::new().await;
            let product_secret = product(&kit, Scheme::Enos, false).await;
            device(&kit, "meter-2", None).await;
            assert!(denied(
                kit.broker
                    .authenticate(&login(&kit, "meter-2", "sha256", "3", &product_secret))
                    .await
            ));
        }
    }
}
