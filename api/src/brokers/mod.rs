//! The brokers: every call a broker makes to fleetca and every call fleetca makes to a broker.
//!
//! - [`decision`]: a login or ACL question decided once for every broker family (API keys,
//!   their certificates, HA1 devices, EnOS and Alibaba sign-based devices), with its caches.
//! - [`acl`]: the topic rules. [`activation`]: fleetca's own MQTT publisher of EnOS
//!   activation messages. [`rabbitmq`]: RabbitMQ's four questions in the same terms.
//! - [`disconnects`]: ending live sessions (RabbitMQ's and EMQX's admin APIs, or a command).
//! - [`canary`]: the proof that each broker refuses revoked certificates.
//! - [`http`]: the families' routes (go-auth, amqtt, EMQX, RMQTT, RabbitMQ) and the
//!   disconnect queue's page.
//!
//! Start with `decision.rs`. This context may use `fleet` (device and product credentials),
//! `identity` (API keys' tokens) and `pki` (what a certificate is); nothing below imports it.

pub mod acl;
pub mod activation;
pub mod canary;
pub mod decision;
pub mod disconnects;
pub mod http;
pub mod questions;
pub mod rabbitmq;
pub mod sign;
