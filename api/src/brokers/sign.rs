//! The sign-based devices of EnOS and Alibaba Cloud IoT at the broker: their logins
//! (`{device_key}&{product_key}` with a signed password, or a product-secret activation),
//! their product's and their own cached state, and their topics.

use fleetca_ca::sign::{self, SignMethod};
use fleetca_storage::StorageError;
use uuid::Uuid;

use super::acl::{self, Access, Vars};
use super::questions::{AclRequest, ActivationEvent, AuthRequest, Decision, within_skew};
use crate::domain::Scheme;
use crate::support::Error;
use crate::support::cache::Cache;
use crate::support::clock::Clock;
use fleetca_ca::MasterKey;
use fleetca_storage::Store;
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Clone)]
pub(super) struct ProductEntry {
    pub(super) scheme: Option<Scheme>,
    pub(super) dynamic_activation: bool,
    pub(super) skew_seconds: Option<i64>,
    /// `None` when the sealed secret did not open.
    pub(super) secret: Option<String>,
    pub(super) active: bool,
    pub(super) enterprise: String,
}

#[derive(Clone)]
pub(super) struct SignDeviceEntry {
    pub(super) secret: Option<String>,
    pub(super) active: bool,
    pub(super) activated: bool,
}

/// The parts of a sign-based login: username `{device_key}&{product_key}`, client id
/// `{clientId}|k=v,k=v|`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SignLogin<'a> {
    pub(super) device_key: &'a str,
    pub(super) product_key: &'a str,
    pub(super) client_id: &'a str,
    pub(super) securemode: Option<&'a str>,
    pub(super) signmethod: Option<&'a str>,
    pub(super) timestamp: Option<&'a str>,
}

pub(super) fn parse_sign_login<'a>(username: &'a str, clientid: &'a str) -> Option<SignLogin<'a>> {
    let (device_key, product_key) = username.split_once('&')?;
    if device_key.is_empty() || product_key.is_empty() || product_key.contains('&') {
        return None;
    }
    let (client_id, rest) = clientid.split_once('|')?;
    let params = rest.strip_suffix('|')?;
    let mut login = SignLogin {
        device_key,
        product_key,
        client_id,
        securemode: None,
        signmethod: None,
        timestamp: None,
    };
    for pair in params.split(',') {
        let (k, v) = pair.trim().split_once('=')?;
        let slot = match k.trim() {
            "securemode" => &mut login.securemode,
            "signmethod" => &mut login.signmethod,
            "timestamp" => &mut login.timestamp,
            // Other extended parameters (Alibaba's `_v`, `lan`, …) do not take part in the sign.
            _ => continue,
        };
        if slot.replace(v.trim()).is_some() {
            return None;
        }
    }
    Some(login)
}

/// How far an activation login's timestamp may be from fleetca's clock when its product
/// checks no freshness.
pub(super) const ACTIVATION_SKEW_SECONDS: i64 = 3600;

/// Whether a sign login is an EnOS dynamic activation (`securemode=3`).
pub(super) fn is_activation(scheme: Scheme, login: &SignLogin<'_>) -> bool {
    scheme == Scheme::Enos && login.securemode == Some("3")
}

/// The sign-based devices' decisions and their caches (a part of the broker's decisions).
pub struct SignDevices {
    store: Store,
    master: Arc<MasterKey>,
    clock: Arc<dyn Clock>,
    acl: acl::AclConfig,
    products: Cache<String, Arc<ProductEntry>>,
    sign_devices: Cache<String, Arc<SignDeviceEntry>>,
    activations: Option<mpsc::Sender<ActivationEvent>>,
}

impl SignDevices {
    pub fn new(
        store: Store,
        master: Arc<MasterKey>,
        clock: Arc<dyn Clock>,
        acl: acl::AclConfig,
        capacity: usize,
        activations: Option<mpsc::Sender<ActivationEvent>>,
    ) -> Self {
        Self {
            store,
            master,
            clock,
            acl,
            products: Cache::new("broker_products", capacity),
            sign_devices: Cache::new("broker_sign_devices", capacity),
            activations,
        }
    }

    /// Forgets a product's cached state (and so refuses its devices at once when disabled).
    pub fn invalidate_product(&self, product_key: &str) {
        self.products.remove(product_key);
        self.sign_devices
            .retain(|k, _| crate::support::cache::first_of_pair(k) != product_key);
    }

    /// Forgets a sign-based device's cached state.
    pub fn invalidate_sign_device(&self, product_key: &str, device_key: &str) {
        self.sign_devices
            .remove(&crate::support::cache::pair(product_key, device_key));
    }

    fn open_secret(&self, context: &str, sealed: &[u8]) -> Option<String> {
        match self.master.open(context, sealed) {
            Ok(bytes) => String::from_utf8(bytes).ok(),
            Err(e) => {
                tracing::warn!(%context, error = %e, "a sealed secret does not open with this master key; its device is refused");
                None
            }
        }
    }

    async fn product(&self, product_key: &str) -> Result<Option<Arc<ProductEntry>>, StorageError> {
        if let Some(e) = self.products.get(product_key) {
            return Ok(Some(e));
        }
        let key = product_key.to_owned();
        let generation = self.products.generation();
        let p = match self.store.product(product_key).await {
            Ok(p) => p,
            Err(StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let entry = Arc::new(ProductEntry {
            scheme: Scheme::parse(&p.scheme),
            dynamic_activation: p.dynamic_activation,
            skew_seconds: p.max_clock_skew_seconds,
            secret: self.open_secret(&sign::product_secret_context(&p.product_key), &p.sealed_secret),
            active: p.is_active,
            enterprise: p.enterprise,
        });
        self.products.insert_if_current(key, entry.clone(), generation);
        Ok(Some(entry))
    }

    async fn sign_device(
        &self,
        product_key: &str,
        device_key: &str,
    ) -> Result<Option<Arc<SignDeviceEntry>>, StorageError> {
        if let Some(e) = self.sign_devices.get_pair(product_key, device_key) {
            return Ok(Some(e));
        }
        let key = crate::support::cache::pair(product_key, device_key);
        let generation = self.sign_devices.generation();
        let d = match self.store.product_device(product_key, device_key).await {
            Ok(d) => d,
            Err(StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let entry = Arc::new(SignDeviceEntry {
            secret: self.open_secret(
                &sign::device_secret_context(&d.product_key, &d.device_key),
                &d.sealed_secret,
            ),
            active: d.is_active,
            activated: d.activated_at.is_some(),
        });
        self.sign_devices.insert_if_current(key, entry.clone(), generation);
        Ok(Some(entry))
    }

    /// A sign-based device (EnOS or Alibaba) connecting.
    pub(super) async fn authenticate(&self, req: &AuthRequest, login: &SignLogin<'_>) -> Result<Decision, Error> {
        let Some(product) = self.product(login.product_key).await? else {
            return Ok(Decision::Deny("unknown product"));
        };
        let (Some(scheme), Some(product_secret)) = (product.scheme, product.secret.as_deref()) else {
            return Ok(Decision::Deny("product secret does not open"));
        };
        if !product.active {
            return Ok(Decision::Deny("product disabled"));
        }
        // What the platforms document and what their official SDKs send: EnOS's `sha256`
        // and its SDK's `hmac*` names for plain digests; Alibaba's HMACs.
        let method = match scheme {
            Scheme::Enos if matches!(login.securemode, Some("2" | "3")) => login.signmethod.and_then(SignMethod::enos),
            Scheme::Enos => None,
            Scheme::Aliyun => login.signmethod.and_then(SignMethod::aliyun),
        };
        let Some(method) = method else {
            return Ok(Decision::Deny(
                "sign method or secure mode this product's scheme does not use",
            ));
        };
        // The timestamp is signed as the text that was sent; its value (seconds or
        // milliseconds, with or without a fraction) is checked only against a product's
        // skew. The platforms check no freshness, and their SDKs send the boot-time
        // password on every reconnect, so the check is off unless a product asks for it.
        // An activation login hands out the device secret: a captured one must not work
        // forever, so it is held to the product's skew or, without one, to an hour (the SDK
        // activates as it boots, with a fresh timestamp).
        let skew = match product.skew_seconds {
            None if is_activation(scheme, login) => Some(ACTIVATION_SKEW_SECONDS),
            other => other,
        };
        let timestamp = match (login.timestamp, skew) {
            (Some(t), Some(skew)) => {
                let Some(ms) = sign::timestamp_millis(t) else {
                    return Ok(Decision::Deny("timestamp is not Unix seconds or milliseconds"));
                };
                if !within_skew(self.clock.now().timestamp_millis(), ms, skew.saturating_mul(1000)) {
                    return Ok(Decision::Deny("timestamp outside the product's skew"));
                }
                Some(t)
            }
            (Some(t), None) => Some(t),
            (None, _) if scheme == Scheme::Enos => return Ok(Decision::Deny("EnOS needs a timestamp")),
            // A product that checks the clock must see one, or a captured password would
            // replay forever.
            (None, Some(_)) => return Ok(Decision::Deny("this product needs a timestamp")),
            (None, None) => None,
        };
        let Some(device) = self.sign_device(login.product_key, login.device_key).await? else {
            return Ok(Decision::Deny("unknown device"));
        };
        if !device.active {
            return Ok(Decision::Deny("device disabled"));
        }
        let device_name = match scheme {
            Scheme::Enos => "deviceKey",
            Scheme::Aliyun => "deviceName",
        };
        let mut params = vec![
            ("clientId", login.client_id),
            (device_name, login.device_key),
            ("productKey", login.product_key),
        ];
        if let Some(t) = timestamp {
            params.push(("timestamp", t));
        }
        let content = sign::content(&params);
        if is_activation(scheme, login) {
            if self.activations.is_none() && !req.broker_delivers_activation {
                // Nothing could hand the device its secret: refuse rather than keep it waiting.
                return Ok(Decision::Deny(
                    "MQTT activation is off (no mqtt_url); register over HTTPS",
                ));
            }
            if !product.dynamic_activation || device.activated {
                return Ok(Decision::Deny("dynamic activation off, or the device is activated"));
            }
            if !method.verify(product_secret, &content, &req.password) {
                return Ok(Decision::Deny("bad activation sign"));
            }
            if req.broker_delivers_activation {
                // The broker asks for the secret ([`Self::activation_secret`]) and hands it over.
            } else if let (Some(tx), Some(secret)) = (&self.activations, &device.secret) {
                let event = ActivationEvent::Deliver {
                    product_key: login.product_key.to_owned(),
                    device_key: login.device_key.to_owned(),
                    secret: secret.clone(),
                };
                if tx.try_send(event).is_err() {
                    tracing::warn!("the activation publisher is busy or gone; the device will retry");
                }
            }
            return Ok(Decision::Allow);
        }
        let Some(device_secret) = device.secret.as_deref() else {
            return Ok(Decision::Deny("device secret does not open"));
        };
        if !method.verify(device_secret, &content, &req.password) {
            return Ok(Decision::Deny("bad sign"));
        }
        if product.dynamic_activation && !device.activated {
            // The device holds its secret now: it may not activate again until reset, and
            // the activation message has served its purpose. (Static products have no
            // activation to guard, so their reconnect storms write nothing.)
            let now = self.clock.now();
            self.store
                .mark_product_device_activated(
                    login.product_key,
                    login.device_key,
                    &[crate::fleet::products::activation_record(
                        login.product_key,
                        login.device_key,
                        &product.enterprise,
                        "mqtt",
                    )],
                    now,
                )
                .await?;
            self.invalidate_sign_device(login.product_key, login.device_key);
            // Every instance must hear of it, or one that cached the device before would
            // let it activate again (and hand its secret to anyone with the product secret).
            let subject = format!("{}/{}", login.product_key, login.device_key);
            if let Err(e) = self
                .store
                .record_event(Uuid::nil(), "product_device", &subject, now)
                .await
            {
                tracing::warn!(error = %e, "could not record an activation for other instances");
            }
            if let Some(tx) = &self.activations {
                let _ = tx.try_send(ActivationEvent::Clear {
                    product_key: login.product_key.to_owned(),
                    device_key: login.device_key.to_owned(),
                });
            }
        }
        Ok(Decision::Allow)
    }

    /// Whether the product checks a login's timestamp against the clock (a skew is set), so
    /// that a login allowed now may be refused later.
    pub(super) async fn checks_clock(&self, login: &SignLogin<'_>) -> Result<bool, Error> {
        Ok(self
            .product(login.product_key)
            .await?
            .is_none_or(|p| p.skew_seconds.is_some() || p.scheme.is_some_and(|s| is_activation(s, login))))
    }

    /// The device secret an allowed EnOS activation login is handed, for a broker that
    /// delivers it itself; `None` for any other login, or an activated device.
    pub(super) async fn activation_secret(&self, login: &SignLogin<'_>) -> Result<Option<String>, Error> {
        let Some(product) = self.product(login.product_key).await? else {
            return Ok(None);
        };
        if !product.scheme.is_some_and(|s| is_activation(s, login)) || !product.dynamic_activation {
            return Ok(None);
        }
        let Some(device) = self.sign_device(login.product_key, login.device_key).await? else {
            return Ok(None);
        };
        Ok(device.secret.clone().filter(|_| device.active && !device.activated))
    }

    pub(super) async fn authorize(&self, req: &AclRequest<'_>, login: &SignLogin<'_>) -> Result<Decision, Error> {
        let (Some(product), Some(device)) = (
            self.product(login.product_key).await?,
            self.sign_device(login.product_key, login.device_key).await?,
        ) else {
            return Ok(Decision::Deny("unknown product or device"));
        };
        let Some(scheme) = product.scheme.filter(|_| product.active && device.active) else {
            return Ok(Decision::Deny("product or device disabled"));
        };
        if is_activation(scheme, login) {
            // An activation connection may do nothing but receive its device secret, on
            // either of its own activation topics.
            let ok = acl::activation_topics(login.product_key, login.device_key).contains(&req.topic.to_owned())
                && req.access.iter().all(|a| matches!(a, Access::Read | Access::Subscribe));
            return Ok(if ok {
                Decision::Allow
            } else {
                Decision::Deny("activation connections only receive their secret")
            });
        }
        let rules = match scheme {
            Scheme::Enos => &self.acl.enos_device,
            Scheme::Aliyun => &self.acl.aliyun_device,
        };
        let vars = Vars {
            product_key: Some(login.product_key),
            device_key: Some(login.device_key),
            clientid: req.clientid,
            username: Some(req.username),
            dots_are_levels: req.amqp,
            ..Default::default()
        };
        let ok = req.access.iter().all(|a| acl::allowed(rules, &vars, req.topic, *a));
        Ok(if ok {
            Decision::Allow
        } else {
            Decision::Deny("topic not allowed")
        })
    }
}
