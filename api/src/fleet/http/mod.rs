//! The fleet routes: each handler parses, authorises through its extractor and calls one
//! service method.

pub mod devices;
pub mod products;
