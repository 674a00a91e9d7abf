//! The harness for fleetca's end-to-end tests: the real `fleetca` binary, started on a free
//! port and a fresh data directory, driven over HTTP with `curl`, its output checked with
//! `openssl` and a real `mosquitto`.
//!
//! Every external program is looked up with [`tool`], which fails the test with the
//! package to install when it is missing: an end-to-end test that silently skips proves
//! nothing. Every process a test starts is owned by a guard that stops it on drop, also
//! when the test panics, and on a panic prints the process's log and keeps the scratch
//! directory for inspection.
#![forbid(unsafe_code)]

pub mod http;
pub mod process;
pub mod scratch;
pub mod server;

pub use http::Response;
pub use process::{Daemon, Output, run, run_with_input, sh, tool};
pub use scratch::{Scratch, free_port};
pub use server::{Fleetca, IssuedCertificate, binary, distribution_point, offline, openssl, openssl_in, write_file};
