//! The brokers' shared HTTP pieces: the fields every family sends ([`fields`]) and the
//! disconnect queue's page. Each family's own routes are in `brokers::families::<family>::http`.

pub mod disconnects;
pub mod fields;
