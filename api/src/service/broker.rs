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

use std::sync::Arc;

use chrono::{DateTime, Utc};
use fleetca_ca::{Authority, MasterKey, device};
use fleetca_storage::{StorageError, Store};
use uuid::Uuid;

use super::Error;
use super::acl::{self, Access, AclConfig, Vars};
use super::cache::Cache;
use super::clock::Clock;
use super::tokens::Tokens;

/// The answer to a broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied; the reason is for the debug log only.
    Deny(&'static str),
    /// fleetca could not decide (database unreachable).
    Unknown,
}

/// What a broker sends on connect.
#[derive(Debug, Default)]
pub struct AuthRequest {
    pub username: String,
    pub password: String,
    pub clientid: Option<String>,
    pub cert_fingerprint: Option<String>,
    pub cert_pem: Option<String>,
}

/// What a broker asks before a publish, a subscribe or a delivery.
#[derive(Debug)]
pub struct AclRequest<'a> {
    pub username: &'a str,
    pub clientid: Option<&'a str>,
    pub topic: &'a str,
    /// Every one of these must be allowed.
    pub access: &'a [Access],
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
}

#[derive(Clone)]
struct DeviceEntry {
    /// `None` when the sealed HA1 did not open (a wrong master key or a damaged row).
    ha1: Option<String>,
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

/// The broker's decisions and their caches.
pub struct BrokerService {
    store: Store,
    master: Arc<MasterKey>,
    ca: Arc<Authority>,
    tokens: Arc<Tokens>,
    clock: Arc<dyn Clock>,
    policy: BrokerPolicy,
    devices: Cache<(String, String), DeviceEntry>,
    keys: Cache<String, KeyEntry>,
}

/// Parses a query string that holds exactly the two named fields, in any order,
/// percent-decoded; anything else (a missing, repeated or extra field) is `None`.
fn two_fields(text: &str, first: &str, second: &str) -> Option<(String, String)> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text).ok()?;
    let (mut a, mut b) = (None, None);
    for (k, v) in pairs {
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
pub fn parse_device_username(username: &str) -> Option<(String, String)> {
    if !username.contains("device=") {
        return None;
    }
    two_fields(username, "device", "tenant")
}

/// A device password: `signature={hex}&timestamp={unix seconds}`, the timestamp in its
/// canonical decimal form only (no sign, no leading zeros), so one signature has one
/// spelling.
fn parse_device_password(password: &str) -> Option<(String, i64)> {
    let (signature, timestamp) = two_fields(password, "signature", "timestamp")?;
    let canonical = !timestamp.is_empty()
        && timestamp.bytes().all(|b| b.is_ascii_digit())
        && (timestamp == "0" || !timestamp.starts_with('0'));
    if !canonical {
        return None;
    }
    Some((signature, timestamp.parse().ok()?))
}

/// Whether `timestamp` is within `skew` seconds of `now`, without overflow.
fn within_skew(now: i64, timestamp: i64, skew: i64) -> bool {
    now.checked_sub(timestamp)
        .and_then(i64::checked_abs)
        .is_some_and(|d| d <= skew)
}

/// A field a broker sent that no credential can contain.
fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

impl BrokerService {
    pub fn new(
        store: Store,
        master: Arc<MasterKey>,
        ca: Arc<Authority>,
        tokens: Arc<Tokens>,
        clock: Arc<dyn Clock>,
        policy: BrokerPolicy,
        capacity: usize,
    ) -> Self {
        Self {
            store,
            master,
            ca,
            tokens,
            clock,
            policy,
            devices: Cache::new(capacity),
            keys: Cache::new(capacity),
        }
    }

    /// Forgets a device's cached credentials.
    pub fn invalidate_device(&self, tenant: &str, device_id: &str) {
        self.devices.remove(&(tenant.to_owned(), device_id.to_owned()));
    }

    /// Forgets an API key's cached state (on deactivation, role change, certificate
    /// issue or revocation).
    pub fn invalidate_key(&self, user_id: Uuid) {
        self.keys.retain(|_, e| e.user_id != user_id);
    }

    async fn device(&self, tenant: &str, device_id: &str) -> Result<Option<DeviceEntry>, StorageError> {
        let key = (tenant.to_owned(), device_id.to_owned());
        if let Some(e) = self.devices.get(&key) {
            return Ok(Some(e));
        }
        let generation = self.devices.generation();
        let d = match self.store.device(tenant, device_id).await {
            Ok(d) => d,
            Err(StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let ha1 = match self
            .master
            .open(&device::ha1_seal_context(&d.tenant, &d.device_id), &d.sealed_ha1)
        {
            Ok(ha1) => Some(String::from_utf8_lossy(&ha1).into_owned()),
            Err(e) => {
                tracing::warn!(%tenant, %device_id, error = %e, "a device's sealed HA1 does not open with this master key; the device is refused");
                None
            }
        };
        let entry = DeviceEntry {
            ha1,
            active: d.is_active,
        };
        self.devices.insert_if_current(key, entry.clone(), generation);
        Ok(Some(entry))
    }

    async fn key(&self, username: &str) -> Result<Option<KeyEntry>, StorageError> {
        if let Some(e) = self.keys.get(&username.to_owned()) {
            return Ok(Some(e));
        }
        self.load_key(username).await
    }

    /// Reads an API key and its active certificates from the database and caches them.
    async fn load_key(&self, username: &str) -> Result<Option<KeyEntry>, StorageError> {
        let generation = self.keys.generation();
        let user = match self.store.user_by_username(username).await {
            Ok(u) => u,
            Err(StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let certificates = self.store.active_fingerprints(user.id, self.clock.now()).await?;
        let entry = KeyEntry {
            user_id: user.id,
            enterprise: user.enterprise,
            usable: user.is_active && user.is_service_account,
            certificates,
        };
        self.keys
            .insert_if_current(username.to_owned(), entry.clone(), generation);
        Ok(Some(entry))
    }

    /// May this client connect?
    pub async fn authenticate(&self, req: &AuthRequest) -> Decision {
        match self.try_authenticate(req).await {
            Ok(d) => d,
            Err(Error::Unavailable) => Decision::Unknown,
            Err(e) => {
                tracing::error!(error = %e, "broker auth failed");
                Decision::Unknown
            }
        }
    }

    async fn try_authenticate(&self, req: &AuthRequest) -> Result<Decision, Error> {
        if has_control(&req.username) || has_control(&req.password) || req.clientid.as_deref().is_some_and(has_control)
        {
            return Ok(Decision::Deny("control characters in a credential"));
        }
        if let Some((device_id, tenant)) = parse_device_username(&req.username) {
            return self.authenticate_device(req, &device_id, &tenant).await;
        }
        if !req.password.is_empty() {
            return Ok(match self.tokens.verify(&req.password).await? {
                Some(p) if p.is_service_account && p.username == req.username => Decision::Allow,
                Some(_) => Decision::Deny("token belongs to another user or to a human"),
                None => Decision::Deny("bad token"),
            });
        }
        self.authenticate_certificate(req).await
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
        let Some(ha1) = &entry.ha1 else {
            return Ok(Decision::Deny("device HA1 does not open"));
        };
        if !device::verify_mqtt_signature(ha1, timestamp, &signature) {
            return Ok(Decision::Deny("bad device signature"));
        }
        Ok(Decision::Allow)
    }

    /// A client certificate: the username is its CN.
    async fn authenticate_certificate(&self, req: &AuthRequest) -> Result<Decision, Error> {
        let presented = match (&req.cert_fingerprint, &req.cert_pem) {
            (Some(fp), _) if !fp.is_empty() => Some(fp.replace(':', "").to_ascii_lowercase()),
            (_, Some(pem)) if !pem.is_empty() => match self.ca.check_issued(pem) {
                Some(facts) => Some(facts.fingerprint),
                None => return Ok(Decision::Deny("certificate not issued by this CA")),
            },
            _ => None,
        };
        if presented.is_none() && !self.policy.trust_username_for_certificates {
            return Ok(Decision::Deny(
                "no password and no certificate (username-only certificate login is off)",
            ));
        }
        let now = self.clock.now();
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

    /// May this client use this topic?
    pub async fn authorize(&self, req: &AclRequest<'_>) -> Decision {
        match self.try_authorize(req).await {
            Ok(d) => d,
            Err(Error::Unavailable) => Decision::Unknown,
            Err(e) => {
                tracing::error!(error = %e, "broker ACL failed");
                Decision::Unknown
            }
        }
    }

    async fn try_authorize(&self, req: &AclRequest<'_>) -> Result<Decision, Error> {
        if has_control(req.username) || req.clientid.is_some_and(has_control) {
            return Ok(Decision::Deny("control characters in a credential"));
        }
        let rules = &self.policy.acl;
        let clientid = req.clientid;
        let ok = if let Some((device_id, tenant)) = parse_device_username(req.username) {
            if clientid.is_some_and(|c| c != device_id) {
                return Ok(Decision::Deny("client id differs from the device id"));
            }
            match self.device(&tenant, &device_id).await? {
                Some(e) if e.active && e.ha1.is_some() => {}
                _ => return Ok(Decision::Deny("unknown or disabled device")),
            }
            let vars = Vars {
                tenant: Some(&tenant),
                device_id: Some(&device_id),
                clientid,
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

    use crate::domain::{DeviceCredential, DeviceId, Tenant};
    use crate::service::devices::{DeviceChange, DeviceInput};
    use crate::service::testing::{Kit, admin};
    use crate::service::users::UserChange;

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
        kit.store.create_device(new, kit.clock.now()).await.unwrap();
        let now = kit.clock.now().timestamp();
        let req = AuthRequest {
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
            username: "svc-d".into(),
            cert_fingerprint: Some(cert.fingerprint.clone()),
            ..Default::default()
        };
        assert!(matches!(kit.broker.authenticate(&by_fp).await, Decision::Deny(_)));
    }
}
