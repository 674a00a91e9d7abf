//! The outbox routes: each handler parses, authorises through its extractor and calls one
//! service method.

pub mod audit;
pub mod webhooks;
