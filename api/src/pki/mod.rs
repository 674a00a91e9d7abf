//! The certificate authority's flows: signing and storing ([`issuer`]), the rules a batch
//! of new certificates is decided by, as a pure function ([`issuance`]), the API's
//! certificates ([`certificates`]), renewal ([`renewal`]), EST enrollment ([`est`]) and its
//! claims ([`claims`]), the CRL ([`crl`]) and the record of what was published, outside the
//! database ([`published`]); the CAs ([`authorities`]) and changing them ([`rotation`]). Routes in [`http`]. Cryptography itself is in the `ca` crate.
//! Start with `issuer.rs`, then `certificates.rs`.

pub mod authorities;
pub mod certificates;
pub mod claims;
pub mod crl;
pub mod est;
pub mod http;
pub mod issuance;
pub mod issuer;
pub mod published;
pub mod renewal;
pub mod rotation;
