//! fleetca: the certificate authority and credential service behind MQTT device fleets.
//!
//! `config` resolves settings, `startup` prepares state and serves, `http` is the HTTP
//! layer, `service` the flows it calls, `error` the one place errors become responses.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod extract;
pub mod http;
pub mod logging;
pub mod service;
pub mod startup;
pub mod state;
