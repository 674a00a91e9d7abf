//! The brokers routes: each handler parses, authorises through its extractor and calls one
//! service method.

pub mod broker;
pub mod disconnects;
pub mod rabbitmq;
