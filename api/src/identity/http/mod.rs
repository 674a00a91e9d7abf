//! The identity routes: each handler parses, authorises through its extractor and calls one
//! service method.

pub mod auth;
pub mod users;
