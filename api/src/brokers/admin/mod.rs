//! Broker admin adapters: how fleetca ends live sessions at one kind of broker. Each is a
//! [`SessionAdmin`]: RabbitMQ's management HTTP API (find the user's connections, close them
//! with a reason), EMQX 5's REST API (kick the user's clients), and a command for anything
//! else (run without a shell, the target in its environment). A new kind of broker is one
//! file here implementing the trait, and one `kind` in the settings' `[[brokers]]`.
//!
//! The queue, retries and what a change ends are [`crate::brokers::disconnects`]'.

mod command;
mod emqx;
mod plugin;
mod rabbitmq;

use std::fmt;
use std::sync::Arc;

use fleetca_storage::disconnects::Disconnect;
use futures_util::future::BoxFuture;

use crate::brokers::decision::parse_device_username;
use crate::domain::Secret;

pub use command::CommandAdmin;
pub use emqx::EmqxAdmin;
pub use plugin::PluginAdmin;
pub use rabbitmq::RabbitMqAdmin;

/// How one kind of broker ends sessions.
pub trait SessionAdmin: Send + Sync {
    /// Ends `sessions` at this broker for the queued `change`; returns how many connections
    /// it closed. An error is retried later (the text says what failed, without secrets).
    fn end<'a>(
        &'a self,
        sessions: &'a Sessions,
        change: &'a Disconnect,
        client: &'a reqwest::Client,
    ) -> BoxFuture<'a, Result<usize, String>>;
}

/// One broker fleetca tells about sessions to end: its name in the settings and its adapter.
#[derive(Clone)]
pub struct BrokerAdapter {
    name: String,
    admin: Arc<dyn SessionAdmin>,
}

impl fmt::Debug for BrokerAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerAdapter")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl BrokerAdapter {
    pub fn new(name: impl Into<String>, admin: impl SessionAdmin + 'static) -> Self {
        Self {
            name: name.into(),
            admin: Arc::new(admin),
        }
    }

    /// RabbitMQ's management API (`http://host:15672`), as a user with the `monitoring`
    /// (list) and `administrator` or `management` + policy to close connections; only
    /// connections of `vhost` when given.
    pub fn rabbitmq(name: &str, url: String, username: String, password: Secret, vhost: Option<String>) -> Self {
        Self::new(
            name,
            RabbitMqAdmin {
                url,
                username,
                password,
                vhost,
            },
        )
    }

    /// EMQX 5's REST API (`http://host:18083`), with an API key and secret.
    pub fn emqx(name: &str, url: String, api_key: String, api_secret: Secret) -> Self {
        Self::new(
            name,
            EmqxAdmin {
                url,
                api_key,
                api_secret,
            },
        )
    }

    /// fleetca's mosquitto plugin, which follows `feed` and ends the sessions itself.
    pub fn mosquitto_plugin(name: &str, feed: Arc<crate::brokers::feed::Feed>) -> Self {
        Self::new(
            name,
            PluginAdmin {
                broker: name.to_owned(),
                feed,
            },
        )
    }

    /// A program and its arguments, run without a shell; the target is in its environment.
    pub fn command(name: &str, argv: Vec<String>) -> Self {
        Self::new(name, CommandAdmin { argv })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Ends `sessions` here (see [`SessionAdmin::end`]).
    pub async fn end(
        &self,
        sessions: &Sessions,
        change: &Disconnect,
        client: &reqwest::Client,
    ) -> Result<usize, String> {
        self.admin.end(sessions, change, client).await
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
    Certificate {
        common_name: String,
        serial: String,
        /// SHA-256, lowercase hex: the plugin knows each session's certificate by it.
        fingerprint: String,
    },
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
    pub(crate) fn search(&self) -> String {
        match self {
            Sessions::Device { device_id, .. } => device_id.clone(),
            Sessions::Product { product_key } => format!("&{product_key}"),
            other => other.username().unwrap_or_default(),
        }
    }

    pub(crate) fn scope(&self) -> &'static str {
        match self {
            Sessions::Passwords { .. } | Sessions::Device { .. } => "password",
            Sessions::Certificate { .. } => "certificate",
            _ => "all",
        }
    }
}

/// Reads a JSON answer of at most 64 MiB.
pub(crate) async fn json_limited<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T, String> {
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
            fingerprint: "ab".into(),
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
