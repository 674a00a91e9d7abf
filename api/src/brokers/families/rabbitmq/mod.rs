//! RabbitMQ's MQTT plugin delegates to `rabbitmq_auth_backend_http` with four questions:
//! may this user log in (`user_path`), use this virtual host (`vhost_path`), use this
//! exchange or queue (`resource_path`), publish or subscribe to this topic (`topic_path`).
//! The answers are the same decisions the other broker families get from [`BrokerService`];
//! the topic arrives as an AMQP routing key and is translated back to the MQTT topic first.

pub mod http;

use std::sync::Arc;

use crate::brokers::acl::Access;
use crate::brokers::decision::{AclRequest, AuthRequest, BrokerService, Decision};

/// Which virtual host and exchange the MQTT plugin uses (`mqtt.vhost`, `mqtt.exchange`).
#[derive(Clone, Debug)]
pub struct RabbitMqSettings {
    pub vhost: String,
    pub exchange: String,
}

impl Default for RabbitMqSettings {
    fn default() -> Self {
        Self {
            vhost: "/".into(),
            exchange: "amq.topic".into(),
        }
    }
}

/// What the HTTP backend sends (each path its own subset).
#[derive(Debug, Default)]
pub struct RabbitRequest {
    pub username: String,
    /// Absent for a login without a password (a certificate login, `ssl_cert_login`).
    pub password: Option<String>,
    pub vhost: Option<String>,
    /// `exchange`, `queue` or `topic`.
    pub resource: Option<String>,
    pub name: Option<String>,
    /// `configure`, `write` or `read`.
    pub permission: Option<String>,
    pub routing_key: Option<String>,
    /// The MQTT client id (`client_id`, or `variable_map.client_id` on topic checks).
    pub client_id: Option<String>,
}

/// The MQTT topic (or filter) an AMQP routing key stands for: `.` separates levels, `*` is
/// `+`, `#` is `#`. (A `.` inside an MQTT topic level cannot be told apart: RabbitMQ turns it
/// into a level separator, so the rules see the extra level.)
pub fn topic_of(routing_key: &str) -> String {
    routing_key
        .split('.')
        .map(|level| if level == "*" { "+" } else { level })
        .collect::<Vec<_>>()
        .join("/")
}

/// The RabbitMQ HTTP backend's decisions.
pub struct RabbitMq {
    broker: Arc<BrokerService>,
    settings: RabbitMqSettings,
}

impl RabbitMq {
    pub fn new(broker: Arc<BrokerService>, settings: RabbitMqSettings) -> Self {
        Self { broker, settings }
    }

    /// `user_path`: a password login is checked like any other broker's. A login without
    /// one is a certificate login (RabbitMQ sends the certificate's CN and nothing else),
    /// admitted only under `broker_trust_username_for_certificates`, as for the brokers that
    /// send no certificate.
    pub async fn user(&self, r: &RabbitRequest) -> Decision {
        let request = AuthRequest {
            certificate_verified_by_broker: r.password.is_none(),
            username: r.username.clone(),
            password: r.password.clone().unwrap_or_default(),
            clientid: r.client_id.clone(),
            cert_fingerprint: None,
            cert_pem: None,
            broker_delivers_activation: false,
        };
        self.broker.authenticate(&request).await
    }

    /// `vhost_path`: the MQTT plugin's virtual host only.
    pub fn vhost(&self, r: &RabbitRequest) -> Decision {
        match r.vhost.as_deref() {
            Some(v) if v == self.settings.vhost => Decision::Allow,
            _ => Decision::Deny("not the MQTT plugin's virtual host"),
        }
    }

    /// `resource_path`: the MQTT exchange (read to subscribe, write to publish) and the
    /// client's own subscription queues `mqtt-subscription-{client id}qos{0,1}` (declare,
    /// bind, consume); nothing else (no other queue, no exchange declarations).
    pub fn resource(&self, r: &RabbitRequest) -> Decision {
        if self.vhost(r) != Decision::Allow {
            return Decision::Deny("not the MQTT plugin's virtual host");
        }
        let (Some(resource), Some(name), Some(permission)) =
            (r.resource.as_deref(), r.name.as_deref(), r.permission.as_deref())
        else {
            return Decision::Deny("missing resource, name or permission");
        };
        match (resource, permission) {
            ("exchange", "read" | "write") if name == self.settings.exchange => Decision::Allow,
            ("exchange", _) => Decision::Deny("only reading and writing the MQTT exchange"),
            ("queue", "configure" | "read" | "write") => {
                let owner = name
                    .strip_prefix("mqtt-subscription-")
                    .and_then(|rest| rest.strip_suffix("qos0").or_else(|| rest.strip_suffix("qos1")));
                match (owner, r.client_id.as_deref()) {
                    (Some(queue_of), Some(client)) if queue_of == client => Decision::Allow,
                    (Some(_), None) => Decision::Allow,
                    (Some(_), Some(_)) => Decision::Deny("another client's subscription queue"),
                    (None, _) => Decision::Deny("not an MQTT subscription queue"),
                }
            }
            _ => Decision::Deny("unknown resource or permission"),
        }
    }

    /// `topic_path`: the routing key as an MQTT topic, through the same ACL as every broker:
    /// `write` is a publish, `read` a subscription with that filter.
    pub async fn topic(&self, r: &RabbitRequest) -> Decision {
        if self.vhost(r) != Decision::Allow {
            return Decision::Deny("not the MQTT plugin's virtual host");
        }
        if r.name.as_deref() != Some(self.settings.exchange.as_str()) {
            return Decision::Deny("not the MQTT exchange");
        }
        let Some(key) = r.routing_key.as_deref() else {
            return Decision::Deny("missing routing key");
        };
        let access: &[Access] = match r.permission.as_deref() {
            Some("write") => &[Access::Write],
            Some("read") => &[Access::Subscribe],
            _ => return Decision::Deny("unknown topic permission"),
        };
        let topic = topic_of(key);
        let request = AclRequest {
            amqp: true,
            username: &r.username,
            clientid: r.client_id.as_deref(),
            topic: &topic,
            access,
        };
        self.broker.authorize(&request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::Kit;

    #[test]
    fn routing_keys_read_as_mqtt_topics() {
        assert_eq!(topic_of("devices.acme.dev-1.telemetry"), "devices/acme/dev-1/telemetry");
        assert_eq!(topic_of("devices.acme.*.status"), "devices/acme/+/status");
        assert_eq!(topic_of("devices.acme.#"), "devices/acme/#");
        assert_eq!(
            topic_of(".ext.session.p.d.thing.activate.info"),
            "/ext/session/p/d/thing/activate/info"
        );
    }

    #[tokio::test]
    async fn only_the_mqtt_exchange_and_the_clients_own_queues() {
        let kit = Kit::new().await;
        let rabbit = RabbitMq::new(kit.broker.clone(), RabbitMqSettings::default());
        let ask = |resource: &str, name: &str, permission: &str, client: Option<&str>| RabbitRequest {
            username: "svc-a".into(),
            vhost: Some("/".into()),
            resource: Some(resource.into()),
            name: Some(name.into()),
            permission: Some(permission.into()),
            client_id: client.map(str::to_owned),
            ..Default::default()
        };
        assert_eq!(
            rabbit.resource(&ask("exchange", "amq.topic", "write", None)),
            Decision::Allow
        );
        assert_ne!(
            rabbit.resource(&ask("exchange", "amq.topic", "configure", None)),
            Decision::Allow
        );
        assert_ne!(
            rabbit.resource(&ask("exchange", "amq.direct", "write", None)),
            Decision::Allow
        );
        let queue = "mqtt-subscription-c1qos1";
        assert_eq!(
            rabbit.resource(&ask("queue", queue, "configure", Some("c1"))),
            Decision::Allow
        );
        assert_ne!(
            rabbit.resource(&ask("queue", queue, "read", Some("c2"))),
            Decision::Allow
        );
        assert_ne!(
            rabbit.resource(&ask("queue", "orders", "read", Some("c1"))),
            Decision::Allow
        );
        let mut other_vhost = ask("exchange", "amq.topic", "write", None);
        other_vhost.vhost = Some("prod".into());
        assert_ne!(rabbit.resource(&other_vhost), Decision::Allow);
    }
}
