//! fleetca: the certificate authority and credential service behind MQTT device fleets.
//!
//! Read in this order: `domain` (the words and validated input types), `service` (the
//! flows, one struct per service, built from exactly what it uses), `http` (routes,
//! extractors that authorise, handlers that parse and call one service method), `error`
//! (the one place errors become responses), then `startup` (how it is all wired) and
//! `config`/`cli` (settings and the command line).
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod logging;
pub mod service;
pub mod startup;
pub mod state;
