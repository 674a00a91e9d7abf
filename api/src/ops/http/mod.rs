//! The ops routes: each handler parses, authorises through its extractor and calls one
//! service method.

pub mod overview;
pub mod public;
