//! P-256 keys for subjects: generated here (server-side keys) or taken from a CSR.

use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::LineEnding;

use crate::{CaError, random_bytes};

/// A subject's P-256 public key, as the uncompressed SEC1 point that X.509 carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    point: Vec<u8>,
}

impl PublicKey {
    /// Validates a SEC1-encoded P-256 point (compressed or not) and keeps it uncompressed.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, CaError> {
        let key = p256::PublicKey::from_sec1_bytes(bytes)
            .map_err(|_| CaError::InvalidKey("not a valid P-256 public key".into()))?;
        Ok(Self::from_p256(&key))
    }

    fn from_p256(key: &p256::PublicKey) -> Self {
        Self {
            point: key.to_encoded_point(false).as_bytes().to_vec(),
        }
    }
}

impl rcgen::PublicKeyData for PublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// A key generated for a subject. `private_key_pem` is handed to the caller once; nothing
/// in fleetca stores it. Its `Debug` output hides it.
pub struct GeneratedKey {
    /// The private key as an SEC1 `EC PRIVATE KEY` PEM.
    pub private_key_pem: String,
    /// Its public half, to certify.
    pub public_key: PublicKey,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

/// Generates a P-256 key pair from the system CSPRNG.
pub fn generate_p256() -> Result<GeneratedKey, CaError> {
    // A random 32-byte string is a valid scalar unless it is zero or >= the group order,
    // which happens with probability about 2^-32; draw again in that case.
    let secret = loop {
        let bytes = random_bytes::<32>()?;
        if let Ok(secret) = p256::SecretKey::from_bytes(&bytes.into()) {
            break secret;
        }
    };
    let pem = secret
        .to_sec1_pem(LineEnding::LF)
        .map_err(|e| CaError::InvalidKey(e.to_string()))?;
    Ok(GeneratedKey {
        private_key_pem: pem.to_string(),
        public_key: PublicKey::from_p256(&secret.public_key()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_is_an_ec_private_key_pem_whose_public_half_matches() {
        let k = generate_p256().unwrap();
        assert!(k.private_key_pem.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        let parsed: p256::SecretKey = p256::SecretKey::from_sec1_pem(&k.private_key_pem).unwrap();
        assert_eq!(PublicKey::from_p256(&parsed.public_key()), k.public_key);
        assert!(!format!("{k:?}").contains("PRIVATE"));
    }
}
