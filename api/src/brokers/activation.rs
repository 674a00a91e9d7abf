//! fleetca's own MQTT connection, which hands a dynamically activated EnOS device its
//! secret: on the device's activation topic, retained so it arrives however soon the device
//! subscribes, and removed again (an empty retained message) as soon as the device has
//! connected with the secret, or after [`KEEP_FOR`], whichever comes first.
//!
//! fleetca authenticates this connection itself (a password derived from the master key,
//! the same on every instance), and lets it publish on activation topics and nowhere else.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, QoS, TlsConfiguration, Transport};
use serde_json::json;
use tokio::sync::mpsc;

use crate::brokers::acl::activation_topics;
use crate::brokers::decision::ActivationEvent;

/// How long an undelivered secret may stay on the broker.
pub const KEEP_FOR: Duration = Duration::from_secs(60);

/// Where and as whom fleetca connects.
#[derive(Clone, Debug)]
pub struct MqttSettings {
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub url: String,
    /// The CA certificate (PEM) that signed the broker's certificate, for `mqtts://`.
    pub ca_file: Option<std::path::PathBuf>,
    /// A client certificate and key (PEM), when the broker requires one.
    pub cert_file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
    /// The MQTT username of fleetca's publisher.
    pub username: String,
}

impl MqttSettings {
    /// The default publisher username.
    pub const DEFAULT_USERNAME: &'static str = "fleetca-activation";

    fn options(&self, password: &str) -> Result<MqttOptions, String> {
        let (tls, rest) = if let Some(rest) = self.url.strip_prefix("mqtts://") {
            (true, rest)
        } else if let Some(rest) = self.url.strip_prefix("mqtt://") {
            (false, rest)
        } else {
            return Err(format!("mqtt_url {:?} must start with mqtt:// or mqtts://", self.url));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("mqtt_url {:?}: bad port", self.url))?,
            ),
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("mqtt_url {:?} has no host", self.url));
        }
        let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !tls && !loopback {
            tracing::warn!(url = %self.url, "activation messages carry device secrets: use mqtts:// to a broker that is not on this host");
        }
        let client_id = format!(
            "fleetca-activation-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let mut options = MqttOptions::new(client_id, host, port);
        options
            .set_credentials(self.username.clone(), password)
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true);
        if tls {
            let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
            let ca = match &self.ca_file {
                Some(p) => read(p)?,
                None => return Err("mqtts:// needs mqtt_ca_file (the CA of the broker's certificate)".into()),
            };
            let client_auth = match (&self.cert_file, &self.key_file) {
                (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
                (None, None) => None,
                _ => return Err("give both mqtt_cert_file and mqtt_key_file, or neither".into()),
            };
            options.set_transport(Transport::Tls(TlsConfiguration::Simple {
                ca,
                alpn: None,
                client_auth,
            }));
        }
        Ok(options)
    }
}

/// The activation message, as EnOS sends it.
pub(crate) fn message(product_key: &str, device_key: &str, secret: &str) -> Vec<u8> {
    json!({
        "id": uuid::Uuid::new_v4().simple().to_string(),
        "version": "1.0",
        "method": "thing.activate.info",
        "params": {
            "assetId": device_key,
            "productKey": product_key,
            "deviceKey": device_key,
            "deviceSecret": secret,
        }
    })
    .to_string()
    .into_bytes()
}

/// Connects (and keeps reconnecting) to the broker and returns the queue the broker
/// service sends activation events to.
pub fn spawn(settings: &MqttSettings, password: &str) -> Result<mpsc::Sender<ActivationEvent>, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = settings.options(password)?;
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let client = Arc::new(client);
    let url = settings.url.clone();
    tokio::spawn(async move {
        let mut connected = false;
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    connected = true;
                    tracing::info!(%url, "activation publisher connected to the broker");
                }
                Ok(_) => {}
                Err(e) => {
                    if connected {
                        tracing::warn!(%url, error = %e, "activation publisher lost the broker; reconnecting");
                    } else {
                        tracing::debug!(%url, error = %e, "activation publisher cannot reach the broker yet");
                    }
                    connected = false;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    let (tx, mut rx) = mpsc::channel::<ActivationEvent>(1024);
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            match event {
                ActivationEvent::Deliver {
                    product_key,
                    device_key,
                    secret,
                } => {
                    let payload = message(&product_key, &device_key, &secret);
                    let topics = activation_topics(&product_key, &device_key);
                    let mut queued = true;
                    for topic in &topics {
                        if let Err(e) = client
                            .publish(topic.clone(), QoS::AtLeastOnce, true, payload.clone())
                            .await
                        {
                            tracing::warn!(error = %e, "could not queue an activation message");
                            queued = false;
                        }
                    }
                    if !queued {
                        continue;
                    }
                    tracing::info!(%product_key, %device_key, "activation message published");
                    let client = client.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(KEEP_FOR).await;
                        for topic in topics {
                            let _ = client.publish(topic, QoS::AtLeastOnce, true, Vec::new()).await;
                        }
                    });
                }
                ActivationEvent::Clear {
                    product_key,
                    device_key,
                } => {
                    for topic in activation_topics(&product_key, &device_key) {
                        let _ = client.publish(topic, QoS::AtLeastOnce, true, Vec::new()).await;
                    }
                }
            }
        }
    });
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_host_and_port() {
        let s = |url: &str| MqttSettings {
            url: url.into(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            username: MqttSettings::DEFAULT_USERNAME.into(),
        };
        assert!(s("mqtt://127.0.0.1:1883").options("p").is_ok());
        assert_eq!(s("mqtt://broker").options("p").unwrap().broker_address().1, 1883);
        assert!(s("http://broker").options("p").is_err());
        assert!(s("mqtts://broker").options("p").is_err(), "no CA file");
        assert!(s("mqtt://:1883").options("p").is_err());
    }

    #[test]
    fn the_message_is_enos_shaped() {
        let m: serde_json::Value = serde_json::from_slice(&message("pk", "dk", "s3cret")).unwrap();
        assert_eq!(m["method"], "thing.activate.info");
        assert_eq!(m["params"]["deviceSecret"], "s3cret");
        assert_eq!(m["params"]["productKey"], "pk");
    }
}
