//! The pki routes: each handler parses, authorises through its extractor and calls one
//! service method.

pub mod authorities;
pub mod certificates;
pub mod claims;
pub mod est;
