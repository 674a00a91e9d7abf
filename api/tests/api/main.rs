//! API tests: one binary, each test on a fresh server and database.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unreachable
)]

mod audit;
mod authorities;
mod broker;
mod certificates;
mod devices;
mod disconnects;
mod enrollment;
mod errors;
mod hardening;
mod helpers;
mod metrics;
mod openapi;
mod products;
mod sessions;
mod users;
mod webhooks;
