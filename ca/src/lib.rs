//! fleetca's cryptography, and nothing else.
//!
//! This crate owns every key, signature, digest and hash that fleetca makes or checks:
//! the certificate authority ([`Authority`]), client and server certificate issuance,
//! CRLs ([`crl`]), CSR parsing ([`csr`]), sealing secrets at rest under the master key
//! ([`MasterKey`]), API tokens and human passwords ([`secret`]), and the device HA1 and
//! HMAC scheme ([`device`]).
//!
//! It must never do I/O, read the clock (callers pass `now`), or know about HTTP or the
//! database: values in, DER/PEM out. That keeps it testable with known answers and lets
//! every caller decide where slow work runs.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable
    )
)]
#![deny(missing_docs)]

mod authority;
pub mod crl;
pub mod csr;
pub mod device;
pub mod digest;
mod error;
pub mod est;
mod hierarchy;
mod keys;
mod seal;
pub mod secret;
pub mod sign;
mod signer;
pub mod token;

pub use authority::{
    Authority, CaSubject, ClaimProfile, ClientProfile, DeviceProfile, IssuedCertificate, ServerProfile,
};
pub use error::CaError;
pub use hierarchy::{IntermediateProfile, chain_for, intermediate_csr, issued_by, same_subject};
pub use keys::{ACCEPTED_KEYS, GeneratedKey, KeyAlgorithm, PublicKey, generate_p256};
pub use seal::MasterKey;
pub use signer::{CaAlgorithm, CaKey, MemoryKey};

/// SHA-256 of `der`, as lowercase hex without separators (the certificate fingerprint
/// that `openssl x509 -fingerprint -sha256` prints, less its colons).
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, der))
}

/// notBefore and notAfter of a DER certificate, if it parses.
pub fn validity(der: &[u8]) -> Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let v = cert.validity();
    Some((
        chrono::DateTime::from_timestamp(v.not_before.timestamp(), 0)?,
        chrono::DateTime::from_timestamp(v.not_after.timestamp(), 0)?,
    ))
}

/// The serial number of a DER certificate as lowercase hex (its INTEGER's content octets),
/// if it parses.
pub fn serial_hex(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(hex::encode(cert.raw_serial()))
}

/// The subject's common name of a PEM certificate (what a broker takes as the username of a
/// certificate login), if it parses and has one.
pub fn common_name(cert_pem: &str) -> Option<String> {
    let der = pem::parse(cert_pem.trim()).ok()?.into_contents();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_owned();
    Some(cn)
}

/// Fills a buffer from the operating system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], CaError> {
    use ring::rand::SecureRandom;
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| CaError::Random)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprint_is_lowercase_sha256_hex() {
        // SHA-256("abc") from FIPS 180-2, appendix B.1.
        assert_eq!(
            super::fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
