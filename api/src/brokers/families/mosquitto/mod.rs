//! fleetca's own mosquitto plugin (`fleetca_mosquitto.so`, the `mosquitto/` crate): a login,
//! an ACL question and the change feed it follows. Its answers are the same decisions as
//! every other family's; what it adds is the tags by which the plugin caches them and ends
//! sessions ([`crate::brokers::feed`]), and an EnOS activation login's message, which the
//! plugin hands the client itself.

pub mod http;
