//! Subjects' keys: P-256 keys generated here (server-side keys), or any key a device brings
//! in a CSR that fleetca certifies: ECDSA P-256 and P-384, Ed25519, RSA of 2,048 to 8,192 bits
//! (what device stacks, TPMs and secure elements make, and what AWS IoT and Azure accept).

use p256::elliptic_curve::sec1::ToEncodedPoint;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::public_key::PublicKey as Parsed;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::CaError;

/// The kinds of subject key fleetca certifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 (prime256v1).
    P256,
    /// ECDSA on P-384 (secp384r1).
    P384,
    /// Ed25519.
    Ed25519,
    /// RSA.
    Rsa {
        /// The modulus's size (2,048 to 8,192).
        bits: usize,
    },
}

/// What a CSR's key must be, in the words of its refusal.
pub const ACCEPTED_KEYS: &str = "ECDSA P-256 or P-384, Ed25519, or RSA of 2048 to 8192 bits";

/// What a CA key must be, in the words of its refusal.
pub(crate) const CA_KEYS: &str = "a CA key must be ECDSA on P-256 or P-384, or RSA of 3072 or 4096 bits";

/// A subject's public key, as X.509 carries it: the value of the SubjectPublicKeyInfo's BIT
/// STRING (an uncompressed point, Ed25519's 32 bytes, or PKCS#1 `RSAPublicKey`) and its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    bits: Vec<u8>,
}

impl PublicKey {
    /// Validates a SEC1-encoded P-256 point (compressed or not) and keeps it uncompressed.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, CaError> {
        let key = p256::PublicKey::from_sec1_bytes(bytes)
            .map_err(|_| CaError::InvalidKey("not a valid P-256 public key".into()))?;
        Ok(Self::from_p256(&key))
    }

    /// The public half of a CA key (P-256, P-384 or RSA), to certify it.
    pub fn of_ca_key(key: &dyn crate::CaKey) -> Result<Self, CaError> {
        let raw = key.public_key_raw();
        let algorithm = match crate::CaAlgorithm::of(key) {
            Some(crate::CaAlgorithm::P256) => return Self::from_sec1(raw),
            Some(crate::CaAlgorithm::P384) if raw.len() == 97 && raw.first() == Some(&0x04) => KeyAlgorithm::P384,
            Some(crate::CaAlgorithm::Rsa3072) => KeyAlgorithm::Rsa { bits: 3072 },
            Some(crate::CaAlgorithm::Rsa4096) => KeyAlgorithm::Rsa { bits: 4096 },
            _ => return Err(CaError::InvalidKey(CA_KEYS.into())),
        };
        Ok(Self {
            algorithm,
            bits: raw.to_vec(),
        })
    }

    fn from_p256(key: &p256::PublicKey) -> Self {
        Self {
            algorithm: KeyAlgorithm::P256,
            bits: key.to_encoded_point(false).as_bytes().to_vec(),
        }
    }

    /// A key of a SubjectPublicKeyInfo, when it is one fleetca certifies ([`ACCEPTED_KEYS`]).
    /// The key itself is checked as far as its form goes (a P-256 point on its curve, the
    /// lengths of the others, RSA's size); that its owner holds it is the CSR signature's
    /// to prove.
    pub fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self, CaError> {
        let refuse = || CaError::InvalidCsr(format!("the CSR's key must be {ACCEPTED_KEYS}"));
        let data = spki.subject_public_key.data.as_ref();
        let oid = &spki.algorithm.algorithm;
        let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
        let (algorithm, bits) = if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY && curve.as_ref() == Some(&OID_EC_P256) {
            return Self::from_sec1(data);
        } else if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY && curve.as_ref() == Some(&OID_NIST_EC_P384) {
            if data.len() != 97 || data.first() != Some(&0x04) {
                return Err(CaError::InvalidCsr(
                    "the CSR's P-384 key is not an uncompressed point".into(),
                ));
            }
            (KeyAlgorithm::P384, data.to_vec())
        } else if *oid == OID_SIG_ED25519 {
            if data.len() != 32 {
                return Err(CaError::InvalidCsr("the CSR's Ed25519 key is not 32 bytes".into()));
            }
            (KeyAlgorithm::Ed25519, data.to_vec())
        } else if *oid == OID_PKCS1_RSAENCRYPTION {
            let Ok(Parsed::RSA(rsa)) = spki.parsed() else {
                return Err(CaError::InvalidCsr("the CSR's RSA key does not parse".into()));
            };
            let bits = rsa.key_size();
            if !(2048..=8192).contains(&bits) {
                return Err(CaError::InvalidCsr(format!(
                    "the CSR's RSA key has {bits} bits; fleetca certifies 2048 to 8192"
                )));
            }
            (KeyAlgorithm::Rsa { bits }, data.to_vec())
        } else {
            return Err(refuse());
        };
        Ok(Self { algorithm, bits })
    }

    /// What kind of key it is.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }
}

impl rcgen::PublicKeyData for PublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.bits
    }

    /// The key's algorithm as rcgen writes it into the SubjectPublicKeyInfo (the signature
    /// half of the name is not used for a subject's key).
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self.algorithm {
            KeyAlgorithm::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
            KeyAlgorithm::Rsa { .. } => &rcgen::PKCS_RSA_SHA256,
        }
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

/// The layout of the PKCS#8 document ring makes for a P-256 key: a fixed prefix, the
/// 32-byte private scalar, a fixed middle, the 65-byte uncompressed public point.
const RING_PKCS8_PREFIX: [u8; 36] = [
    0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
    0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d, 0x30, 0x6b, 0x02, 0x01, 0x01, 0x04, 0x20,
];
const RING_PKCS8_MIDDLE: [u8; 5] = [0xa1, 0x44, 0x03, 0x42, 0x00];

/// Splits ring's PKCS#8 document into (private scalar, uncompressed public point), or
/// `None` when it does not have the layout above.
fn split_ring_pkcs8(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (prefix, rest) = der.split_at_checked(RING_PKCS8_PREFIX.len())?;
    let (scalar, rest) = rest.split_at_checked(32)?;
    let (middle, point) = rest.split_at_checked(RING_PKCS8_MIDDLE.len())?;
    let layout_ok =
        prefix == RING_PKCS8_PREFIX && middle == RING_PKCS8_MIDDLE && point.len() == 65 && point.first() == Some(&0x04);
    layout_ok.then_some((scalar, point))
}

/// Generates a P-256 key pair from the system CSPRNG.
///
/// ring makes the key (its constant-time P-256 is about four times faster than the pure-Rust
/// `p256` arithmetic, and keygen is on the issuance hot path); the private key is then
/// written as the SEC1 `EC PRIVATE KEY` that OpenSSL, mosquitto and paho read, with the
/// curve named so the file stands on its own.
pub fn generate_p256() -> Result<GeneratedKey, CaError> {
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
    let rng = ring::rand::SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).map_err(|_| CaError::Random)?;
    let (scalar, point) = split_ring_pkcs8(doc.as_ref())
        .ok_or_else(|| CaError::InvalidKey("unexpected PKCS#8 layout from the key generator".into()))?;
    // ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING, [0] prime256v1, [1] publicKey }
    let mut sec1 = Vec::with_capacity(121);
    sec1.extend_from_slice(&[0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20]);
    sec1.extend_from_slice(scalar);
    sec1.extend_from_slice(&[0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]);
    sec1.extend_from_slice(&[0xa1, 0x44, 0x03, 0x42, 0x00]);
    sec1.extend_from_slice(point);
    let pem = pem::encode_config(
        &pem::Pem::new("EC PRIVATE KEY", sec1),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    Ok(GeneratedKey {
        private_key_pem: pem,
        public_key: PublicKey {
            algorithm: KeyAlgorithm::P256,
            bits: point.to_vec(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_is_an_ec_private_key_pem_whose_public_half_matches() {
        let k = generate_p256().unwrap();
        assert!(k.private_key_pem.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        // p256 parses it independently and derives the same public key.
        let parsed: p256::SecretKey = p256::SecretKey::from_sec1_pem(&k.private_key_pem).unwrap();
        assert_eq!(PublicKey::from_p256(&parsed.public_key()), k.public_key);
        assert_ne!(generate_p256().unwrap().private_key_pem, k.private_key_pem);
        assert!(!format!("{k:?}").contains("PRIVATE"));
    }
}
