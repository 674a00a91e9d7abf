use thiserror::Error;

/// What can go wrong in the CA core.
///
/// Variants that describe caller input (`InvalidCsr`, `InvalidName`, and `InvalidKey` when
/// it is about a public key the caller sent) carry a message fit for a client; the others
/// describe internal failures and their text is for logs only.
#[derive(Debug, Error)]
pub enum CaError {
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Sealed data did not open: wrong master key, or the data was altered.
    #[error("sealed data could not be opened with this master key")]
    Unseal,
    /// A master key was not 32 bytes of hex or base64.
    #[error("a master key must be 32 bytes written as 64 hex characters or base64")]
    InvalidMasterKey,
    /// A CSR was malformed, used an unsupported key, or its signature did not verify.
    #[error("{0}")]
    InvalidCsr(String),
    /// A name asked for in a certificate cannot be written there, e.g. a DNS name that is
    /// not ASCII. The message names it: `"x" is not a valid DNS name`.
    #[error("{0}")]
    InvalidName(String),
    /// Key or certificate material could not be used: a public key that is not a valid
    /// P-256 point, or a stored CA key or certificate that does not parse or does not match.
    #[error("invalid key or certificate material: {0}")]
    InvalidKey(String),
    /// A certificate or CRL could not be built or signed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// The CA key's store (a PKCS#11 token) cannot sign now: absent, or it failed. Retry
    /// later; nothing was signed.
    #[error("the CA key is unavailable: {0}")]
    KeyUnavailable(String),
    /// Hashing a secret failed.
    #[error("hashing failed: {0}")]
    Hash(String),
}

impl From<rcgen::Error> for CaError {
    fn from(e: rcgen::Error) -> Self {
        match e {
            // Only a CaKey that failed to sign gives rcgen this (see `crate::signer`), which
            // kept why.
            rcgen::Error::RemoteKeyError => crate::signer::take_failure()
                .unwrap_or_else(|| CaError::KeyUnavailable("the CA key did not sign".into())),
            other => CaError::Signing(other.to_string()),
        }
    }
}
