//! End-to-end tests: the real `fleetca` binary (build it first with
//! `cargo build --bin fleetca`; scripts/test does), driven with `curl` and checked with
//! `openssl` and a real `mosquitto`. One binary; each test starts its own server on a free
//! port and a fresh data directory, so they run in parallel.

mod audit;
mod backup;
mod canary;
mod certificates;
mod cli;
mod crash;
mod est;
mod floods;
mod hierarchy;
mod hsm;
mod metrics;
mod mosquitto;
mod restart;
mod rollover;
mod rotation;
mod tls;
mod walkthrough;
mod webhooks;
