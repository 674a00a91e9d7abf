//! The brokers: every call a broker makes to fleetca and every call fleetca makes to a broker.
//!
//! - [`decision`]: a login or ACL question decided once for every broker family (API keys,
//!   their certificates, HA1 devices, EnOS and Alibaba sign-based devices), with its caches.
//! - [`acl`]: the topic rules. [`activation`]: fleetca's own MQTT publisher of EnOS
//!   activation messages.
//! - [`families`]: one folder per broker family (go-auth and amqtt, EMQX and RMQTT,
//!   RabbitMQ): its routes, the fields it sends and the answers it wants.
//! - [`disconnects`]: ending live sessions: the queue and its retries; [`admin`]: one adapter
//!   per broker API behind one trait (RabbitMQ, EMQX, a command).
//! - [`canary`]: the proof that each broker refuses revoked certificates.
//! - [`http`]: the fields every family sends, and the disconnect queue's page.
//!
//! Start with `decision.rs`. This context may use `fleet` (device and product credentials),
//! `identity` (API keys' tokens) and `pki` (what a certificate is); nothing below imports it.

pub mod acl;
pub mod activation;
pub mod admin;
pub mod canary;
pub mod decision;
pub mod disconnects;
pub mod families;
pub mod feed;
pub mod http;
pub mod questions;
pub mod sign;
