//! `fleetca_mosquitto.so`: fleetca's plugin for mosquitto 2.0 (plugin API version 5), the
//! maintained successor to mosquitto-go-auth for fleets that fleetca serves.
//!
//! - **Logins and ACL checks** are fleetca's decisions (`/broker/plugin/login`, `/acl`: the
//!   same rules as `/broker/auth` and `/broker/acl`), cached here ([`cache`]) with the tags
//!   fleetca names, so a warm broker asks fleetca nothing. A decision waits at most
//!   `timeout_ms`; when fleetca cannot be reached new logins are refused and open sessions stay.
//! - **The change feed** ([`feed`], a thread of its own) tells which cached decisions to
//!   forget and which sessions to end; the sessions are kicked on the broker's own thread at
//!   its next tick.
//! - **Certificate clients**: the certificate the client presented goes to fleetca with the
//!   login, so one fleetca revoked is refused at once, before the CRL file is reloaded.
//! - **Activation**: an EnOS activation login's `thing.activate.info` is published to that
//!   client alone, whether it subscribed or not.
//!
//! [`ffi`] is the only module with `unsafe`: mosquitto's callbacks and functions.

pub mod cache;
pub mod config;
pub mod feed;
pub mod fleetca;
pub mod plugin;

#[cfg(not(test))]
#[allow(unsafe_code)]
mod ffi;
