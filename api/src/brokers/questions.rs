//! The words of a broker's questions, shared by every kind of client: what a broker sends
//! on connect ([`AuthRequest`]) and before a topic is used ([`AclRequest`]), and the answer
//! ([`Decision`]).

use super::acl::Access;

/// The answer to a broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied; the reason is for the debug log only.
    Deny(&'static str),
    /// fleetca could not decide (database unreachable).
    Unknown,
}

impl Decision {
    /// The answer in the words of the brokers that take JSON (EMQX, fleetca's plugin):
    /// `allow`, `deny` or `ignore`; a denial's reason goes to the debug log.
    pub fn word(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny(reason) => {
                tracing::debug!(reason, "broker request denied");
                "deny"
            }
            Decision::Unknown => "ignore",
        }
    }
}

/// What a broker sends on connect.
#[derive(Debug, Default)]
pub struct AuthRequest {
    pub username: String,
    pub password: String,
    pub clientid: Option<String>,
    pub cert_fingerprint: Option<String>,
    pub cert_pem: Option<String>,
    /// The broker verified a client certificate itself (against fleetca's CA and CRL) and
    /// sends only its CN: a login without a password that only a certificate can make
    /// (RabbitMQ's `ssl_cert_login`, whose password-less logins never reach fleetca otherwise).
    pub certificate_verified_by_broker: bool,
    /// The broker hands an EnOS activation login its secret itself (fleetca's mosquitto
    /// plugin, which asks for it), so fleetca's own MQTT publisher is not needed.
    pub broker_delivers_activation: bool,
}

/// What a broker asks before a publish, a subscribe or a delivery.
#[derive(Debug)]
pub struct AclRequest<'a> {
    pub username: &'a str,
    pub clientid: Option<&'a str>,
    pub topic: &'a str,
    /// Every one of these must be allowed.
    pub access: &'a [Access],
    /// The topic is an AMQP routing key read back (RabbitMQ): `.` separated levels in it
    /// (see `acl::Vars::dots_are_levels`).
    pub amqp: bool,
}

/// What the activation publisher is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivationEvent {
    /// Publish the device secret (retained) on the device's activation topic.
    Deliver {
        product_key: String,
        device_key: String,
        secret: String,
    },
    /// Remove it from the broker: the device has used it.
    Clear { product_key: String, device_key: String },
}

/// Whether `timestamp` is within `skew` seconds of `now`, without overflow.
pub fn within_skew(now: i64, timestamp: i64, skew: i64) -> bool {
    now.checked_sub(timestamp)
        .and_then(i64::checked_abs)
        .is_some_and(|d| d <= skew)
}
