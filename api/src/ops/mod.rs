//! What operators read: counts, the CA's facts, the CRL's state, readiness, the canary's
//! results and the restore repairs ([`overview`]); routes in [`http`].

pub mod http;
pub mod overview;
