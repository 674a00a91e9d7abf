//! What a change writes beside itself, in its own transaction, for others to act on: the
//! hash-chained audit log ([`audit`]), webhook events and their delivery ([`webhooks`]), and the
//! change events that other instances' caches and CRLs follow ([`changes`]). Routes in [`http`].
//! It imports no context: what a change must reach on this instance is handed to [`changes`]
//! at wiring time.

pub mod audit;
pub mod changes;
pub mod http;
pub mod webhooks;
