//! The MQTT broker's questions: may this client connect, and may it use this topic?
//!
//! Three kinds of client:
//! 1. a **device**: username `device={id}&tenant={tenant}`, password
//!    `signature={hex}&timestamp={unix}` (HMAC-SHA256 keyed with the HA1, within the
//!    allowed clock skew), client id equal to the device id;
//! 2. an **API key**: its username and token;
//! 3. a **client certificate**: the broker sends the certificate's CN (the API key's
//!    username) and no password, plus the certificate's fingerprint or PEM when it can.
//!
//! Answers must be fast in a reconnect storm, so each credential, once loaded, is kept in
//! a bounded in-memory cache (devices with their opened HA1; API keys with their active
//! certificate fingerprints; tokens in [`super::auth::AuthService`]) and dropped the moment
//! it changes. A denial never says which part was wrong; the reason goes to the debug log.
//! When the database cannot be reached the answer is [`Decision::Unknown`], which the HTTP
//! layer turns into a 5xx (or EMQX's `ignore`), never a denial a broker would cache.

use chrono::Utc;
use fleetca_ca::device;
use fleetca_storage::StorageError;
use uuid::Uuid;

use crate::service::acl::{self, Access, Vars};
use crate::service::cache::Cache;
use crate::state::AppState;

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

#[derive(Clone)]
struct DeviceEntry {
    ha1: String,
    active: bool,
}

#[derive(Clone)]
struct KeyEntry {
    user_id: Uuid,
    enterprise: String,
    usable: bool,
    fingerprints: Vec<String>,
}

/// The broker's decisions and their caches.
pub struct BrokerService {
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

/// A device password: `signature={hex}&timestamp={unix seconds}`.
fn parse_device_password(password: &str) -> Option<(String, i64)> {
    let (signature, timestamp) = two_fields(password, "signature", "timestamp")?;
    Some((signature, timestamp.parse().ok()?))
}

impl BrokerService {
    pub fn new(capacity: usize) -> Self {
        Self {
            devices: Cache::new(capacity),
            keys: Cache::new(capacity),
        }
    }

    /// Forgets a device's cached credentials.
    pub fn invalidate_device(&self, tenant: &str, device_id: &str) {
        self.devices.retain(|(t, d), _| !(t == tenant && d == device_id));
    }

    /// Forgets an API key's cached state (on deactivation, role change, certificate
    /// issue or revocation).
    pub fn invalidate_key(&self, user_id: Uuid) {
        self.keys.retain(|_, e| e.user_id != user_id);
    }

    async fn device(
        &self,
        state: &AppState,
        tenant: &str,
        device_id: &str,
    ) -> Result<Option<DeviceEntry>, StorageError> {
        let key = (tenant.to_owned(), device_id.to_owned());
        if let Some(e) = self.devices.get(&key) {
            return Ok(Some(e));
        }
        let generation = self.devices.generation();
        let d = match state.store.device(tenant, device_id).await {
            Ok(d) => d,
            Err(StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let ha1 = state
            .master
            .open(&device::ha1_seal_context(&d.tenant, &d.device_id), &d.sealed_ha1)
            .map_err(|e| StorageError::Internal(format!("device HA1 does not open: {e}")))?;
        let entry = DeviceEntry {
            ha1: String::from_utf8_lossy(&ha1).into_owned(),
            active: d.is_active,
        };
        self.devices.insert_if_current(key, entry.clone(), generation);
        Ok(Some(entry))
    }

    async fn key(&self, state: &AppState, username: &str) -> Result<Option<KeyEntry>, StorageError> {
        if let Some(e) = self.keys.get(&username.to_owned()) {
            return Ok(Some(e));
        }
        self.load_key(state, username).await
    }

    /// Reads an API key and its active certificates from the database and caches them.
    async fn load_key(&self, state: &AppState, username: &str) -> Result<Option<KeyEntry>, StorageError> {
        let generation = self.keys.generation();
        let user = match state.store.user_by_username(username).await {
            Ok(u) => u,
            Err(StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let fingerprints = state.store.active_fingerprints(user.id, fleetca_storage::now()).await?;
        let entry = KeyEntry {
            user_id: user.id,
            enterprise: user.enterprise,
            usable: user.is_active && user.is_service_account,
            fingerprints,
        };
        self.keys
            .insert_if_current(username.to_owned(), entry.clone(), generation);
        Ok(Some(entry))
    }

    /// May this client connect?
    pub async fn authenticate(&self, state: &AppState, req: &AuthRequest) -> Decision {
        match self.try_authenticate(state, req).await {
            Ok(d) => d,
            Err(StorageError::Unavailable(_)) => Decision::Unknown,
            Err(e) => {
                tracing::error!(error = %e, "broker auth failed");
                Decision::Unknown
            }
        }
    }

    async fn try_authenticate(&self, state: &AppState, req: &AuthRequest) -> Result<Decision, StorageError> {
        if let Some((device_id, tenant)) = parse_device_username(&req.username) {
            let Some((signature, timestamp)) = parse_device_password(&req.password) else {
                return Ok(Decision::Deny("device password is not signature=...&timestamp=..."));
            };
            if (Utc::now().timestamp() - timestamp).abs() > state.config.broker_timestamp_skew_seconds {
                return Ok(Decision::Deny("device timestamp outside the allowed skew"));
            }
            if req.clientid.as_deref() != Some(device_id.as_str()) {
                return Ok(Decision::Deny("client id differs from the device id"));
            }
            let Some(entry) = self.device(state, &tenant, &device_id).await? else {
                return Ok(Decision::Deny("unknown device"));
            };
            if !entry.active {
                return Ok(Decision::Deny("device disabled"));
            }
            if !device::verify_mqtt_signature(&entry.ha1, timestamp, &signature) {
                return Ok(Decision::Deny("bad device signature"));
            }
            return Ok(Decision::Allow);
        }
        if !req.password.is_empty() {
            let principal = match state.auth.verify_token(&state.store, &req.password).await {
                Ok(p) => p,
                Err(crate::error::ApiError::Unavailable) => {
                    return Err(StorageError::Unavailable("token lookup".into()));
                }
                Err(e) => return Err(StorageError::Internal(e.to_string())),
            };
            return Ok(match principal {
                Some(p) if p.is_service_account && p.username == req.username => Decision::Allow,
                Some(_) => Decision::Deny("token belongs to another user or to a human"),
                None => Decision::Deny("bad token"),
            });
        }
        // A client certificate: the username is its CN.
        let presented = match (&req.cert_fingerprint, &req.cert_pem) {
            (Some(fp), _) => Some(fp.replace(':', "").to_ascii_lowercase()),
            (None, Some(pem)) => match state.ca.check_issued(pem) {
                Some(facts) => Some(facts.fingerprint),
                None => return Ok(Decision::Deny("certificate not issued by this CA")),
            },
            (None, None) => None,
        };
        let decide = |key: &KeyEntry| {
            if !key.usable {
                return Decision::Deny("API key inactive");
            }
            match &presented {
                Some(fp) if key.fingerprints.contains(fp) => Decision::Allow,
                Some(_) => Decision::Deny("certificate revoked, expired or not this key's"),
                None if !key.fingerprints.is_empty() => Decision::Allow,
                None => Decision::Deny("API key has no active certificate"),
            }
        };
        let Some(key) = self.key(state, &req.username).await? else {
            return Ok(Decision::Deny("unknown API key"));
        };
        // Issuing a certificate does not touch the cache (it is the hot path, on any
        // instance), so before denying for a missing certificate, read the key afresh.
        Ok(match decide(&key) {
            Decision::Deny(_) if key.usable => match self.load_key(state, &req.username).await? {
                Some(fresh) => decide(&fresh),
                None => Decision::Deny("unknown API key"),
            },
            d => d,
        })
    }

    /// May this client use this topic?
    pub async fn authorize(
        &self,
        state: &AppState,
        username: &str,
        clientid: Option<&str>,
        topic: &str,
        access: &[Access],
    ) -> Decision {
        match self.try_authorize(state, username, clientid, topic, access).await {
            Ok(d) => d,
            Err(StorageError::Unavailable(_)) => Decision::Unknown,
            Err(e) => {
                tracing::error!(error = %e, "broker ACL failed");
                Decision::Unknown
            }
        }
    }

    async fn try_authorize(
        &self,
        state: &AppState,
        username: &str,
        clientid: Option<&str>,
        topic: &str,
        access: &[Access],
    ) -> Result<Decision, StorageError> {
        let rules = &state.config.acl;
        let ok = if let Some((device_id, tenant)) = parse_device_username(username) {
            if clientid.is_some_and(|c| c != device_id) {
                return Ok(Decision::Deny("client id differs from the device id"));
            }
            match self.device(state, &tenant, &device_id).await? {
                Some(e) if e.active => {}
                _ => return Ok(Decision::Deny("unknown or disabled device")),
            }
            let vars = Vars {
                tenant: Some(&tenant),
                device_id: Some(&device_id),
                clientid,
                ..Default::default()
            };
            access.iter().all(|a| acl::allowed(&rules.device, &vars, topic, *a))
        } else {
            let key = match self.key(state, username).await? {
                Some(k) if k.usable => k,
                _ => return Ok(Decision::Deny("unknown or inactive API key")),
            };
            let vars = Vars {
                enterprise: Some(&key.enterprise),
                username: Some(username),
                clientid,
                ..Default::default()
            };
            access.iter().all(|a| acl::allowed(&rules.api_key, &vars, topic, *a))
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
    fn device_passwords_parse() {
        assert_eq!(
            parse_device_password("signature=ab&timestamp=12"),
            Some(("ab".into(), 12))
        );
        assert_eq!(
            parse_device_password("timestamp=12&signature=ab"),
            Some(("ab".into(), 12))
        );
        assert_eq!(parse_device_password("signature=ab&timestamp=x"), None);
        assert_eq!(parse_device_password("token"), None);
    }
}
