//! The seam between a CA and its private key. A CA signs its certificates and CRLs through
//! [`CaKey`]; where the key lives is the key's business:
//!
//! - [`MemoryKey`]: a key in memory, sealed at rest under the master key (what every CA of
//!   fleetca has had so far);
//! - a key held in a PKCS#11 token implements the same trait and never leaves the token.
//!
//! [`crate::Authority::with_key`] makes a CA of any of them; nothing in a certificate or a
//! CRL depends on which.

use rcgen::{KeyPair, SignatureAlgorithm};

use crate::{CaError, MasterKey};

/// The context a CA key is sealed under.
pub(crate) const CA_KEY_CONTEXT: &str = "fleetca/ca-key/v1";

/// A CA's private key.
pub trait CaKey: Send + Sync {
    /// The public key's raw bytes: the value of the SubjectPublicKeyInfo's BIT STRING (for
    /// an EC key the uncompressed point).
    fn public_key_raw(&self) -> &[u8];
    /// The signature algorithm the key signs with.
    fn algorithm(&self) -> &'static SignatureAlgorithm;
    /// Signs `message` (the DER of a TBSCertificate or a TBSCertList), returning the
    /// signature as it goes into the signed structure.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError>;
    /// The key sealed under `master`, for the database; `None` for a key that never leaves
    /// its store.
    fn sealed(&self, master: &MasterKey) -> Option<Result<Vec<u8>, CaError>>;
    /// Whether the key can sign now (a token's may be absent); an in-memory key always can.
    fn available(&self) -> Result<(), CaError> {
        Ok(())
    }
    /// The token and the label it holds the key under, for a key in a PKCS#11 token.
    fn token_label(&self) -> Option<(&str, &str)> {
        None
    }
}

/// A key chosen at run time (sealed or in a token) is a key.
impl CaKey for Box<dyn CaKey> {
    fn public_key_raw(&self) -> &[u8] {
        (**self).public_key_raw()
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        (**self).algorithm()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        (**self).sign(message)
    }
    fn sealed(&self, master: &MasterKey) -> Option<Result<Vec<u8>, CaError>> {
        (**self).sealed(master)
    }
    fn available(&self) -> Result<(), CaError> {
        (**self).available()
    }
    fn token_label(&self) -> Option<(&str, &str)> {
        (**self).token_label()
    }
}

/// A key in memory, sealed at rest under the master key.
pub struct MemoryKey(KeyPair);

/// The key algorithm of a CA fleetca makes: ECDSA on P-256 (the default) or P-384, signing
/// with SHA-256 or SHA-384, or RSA of 3,072 or 4,096 bits, signing with PKCS #1 v1.5 and
/// SHA-256 (sha256WithRSAEncryption, what RSA CAs of the public web and of the IoT
/// platforms sign with).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CaAlgorithm {
    /// ECDSA on P-256 with SHA-256.
    #[default]
    P256,
    /// ECDSA on P-384 with SHA-384.
    P384,
    /// RSA of 3,072 bits, sha256WithRSAEncryption.
    Rsa3072,
    /// RSA of 4,096 bits, sha256WithRSAEncryption.
    Rsa4096,
}

impl CaAlgorithm {
    /// Every algorithm, in the words of a refusal.
    pub const NAMES: &'static str = "p256, p384, rsa3072 or rsa4096";

    /// The settings' name: `p256`, `p384`, `rsa3072` or `rsa4096`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "p256" | "P-256" => Some(Self::P256),
            "p384" | "P-384" => Some(Self::P384),
            "rsa3072" | "RSA-3072" => Some(Self::Rsa3072),
            "rsa4096" | "RSA-4096" => Some(Self::Rsa4096),
            _ => None,
        }
    }

    pub(crate) fn signature(self) -> &'static SignatureAlgorithm {
        match self {
            Self::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Self::Rsa3072 | Self::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
        }
    }

    /// The algorithm of a CA key, when it is one of these: its signature algorithm, and for
    /// RSA the modulus's size (read from the public key, PKCS #1 `RSAPublicKey`).
    pub(crate) fn of(key: &dyn CaKey) -> Option<Self> {
        let algorithm = key.algorithm();
        if *algorithm == rcgen::PKCS_ECDSA_P256_SHA256 {
            Some(Self::P256)
        } else if *algorithm == rcgen::PKCS_ECDSA_P384_SHA384 {
            Some(Self::P384)
        } else if *algorithm == rcgen::PKCS_RSA_SHA256 {
            use rsa::pkcs1::DecodeRsaPublicKey;
            use rsa::traits::PublicKeyParts;
            let public = rsa::PublicKey::from_pkcs1_der(key.public_key_raw()).ok()?;
            match public.n().bit_width() {
                3072 => Some(Self::Rsa3072),
                4096 => Some(Self::Rsa4096),
                _ => None,
            }
        } else {
            None
        }
    }

    /// A new private key of this algorithm, PKCS #8 (for RSA, made by the `rsa` crate: ring
    /// signs with RSA keys but cannot make them).
    fn generate(self) -> Result<KeyPair, CaError> {
        let bits = match self {
            Self::P256 | Self::P384 => return Ok(KeyPair::generate_for(self.signature())?),
            Self::Rsa3072 => 3072,
            Self::Rsa4096 => 4096,
        };
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::PrivateKey::new(&mut getrandom::SysRng, bits).map_err(|_| CaError::Random)?;
        let pkcs8 = key.to_pkcs8_der().map_err(|e| CaError::InvalidKey(e.to_string()))?;
        KeyPair::try_from(pkcs8.as_bytes()).map_err(|e| CaError::InvalidKey(e.to_string()))
    }
}

impl MemoryKey {
    /// A new ECDSA P-256 key.
    pub fn generate_p256() -> Result<Self, CaError> {
        Self::generate(CaAlgorithm::P256)
    }

    /// A new key of `algorithm`.
    pub fn generate(algorithm: CaAlgorithm) -> Result<Self, CaError> {
        algorithm.generate().map(Self)
    }

    /// The key sealed under `master` (what [`CaKey::sealed`] returns for it).
    pub fn seal(&self, master: &MasterKey) -> Result<Vec<u8>, CaError> {
        master.seal(CA_KEY_CONTEXT, self.0.serialized_der())
    }

    /// Opens a key sealed by [`CaKey::sealed`]. Fails with [`CaError::Unseal`] when
    /// `master` is not the key it was sealed under.
    pub fn unseal(sealed: &[u8], master: &MasterKey) -> Result<Self, CaError> {
        let pkcs8 = master.open(CA_KEY_CONTEXT, sealed)?;
        KeyPair::try_from(pkcs8.as_slice())
            .map(Self)
            .map_err(|e| CaError::InvalidKey(e.to_string()))
    }
}

impl CaKey for MemoryKey {
    fn public_key_raw(&self) -> &[u8] {
        self.0.public_key_raw()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.0.algorithm()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        Ok(rcgen::SigningKey::sign(&self.0, message)?)
    }

    fn sealed(&self, master: &MasterKey) -> Option<Result<Vec<u8>, CaError>> {
        Some(self.seal(master))
    }
}

/// A [`CaKey`] as rcgen signs with it.
pub(crate) struct Signer(pub(crate) Box<dyn CaKey>);

impl rcgen::PublicKeyData for Signer {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key_raw()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.0.algorithm()
    }
}

impl rcgen::SigningKey for Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(message).map_err(|e| {
            remember(e);
            rcgen::Error::RemoteKeyError
        })
    }
}

std::thread_local! {
    /// Why the last [`CaKey::sign`] called through rcgen on this thread failed: rcgen can
    /// only say "remote key error", and the conversion of that error (on the same thread,
    /// right after) takes the reason back from here.
    static LAST_FAILURE: std::cell::RefCell<Option<CaError>> = const { std::cell::RefCell::new(None) };
}

/// Keeps why a key failed to sign, for [`take_failure`].
pub(crate) fn remember(e: CaError) {
    LAST_FAILURE.with(|f| *f.borrow_mut() = Some(e));
}

/// Why the last signature through rcgen on this thread failed, if one did.
pub(crate) fn take_failure() -> Option<CaError> {
    LAST_FAILURE.with(|f| f.borrow_mut().take())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::{Duration, Utc};

    use super::*;
    use crate::crl::CrlRequest;
    use crate::{Authority, CaSubject, ClientProfile, generate_p256};

    /// A key kept elsewhere: it signs through the trait and cannot be sealed.
    struct Elsewhere(MemoryKey, Arc<AtomicUsize>);

    impl CaKey for Elsewhere {
        fn public_key_raw(&self) -> &[u8] {
            self.0.public_key_raw()
        }
        fn algorithm(&self) -> &'static SignatureAlgorithm {
            self.0.algorithm()
        }
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.sign(message)
        }
        fn sealed(&self, _: &MasterKey) -> Option<Result<Vec<u8>, CaError>> {
            None
        }
    }

    #[test]
    fn a_ca_signs_certificates_and_crls_through_its_key_wherever_it_lives() {
        let now = Utc::now();
        let master = MasterKey::generate().unwrap();
        let subject = CaSubject {
            common_name: "fleetca test CA".into(),
            organization: None,
        };
        let made = Authority::create(&subject, now, Duration::days(3650)).unwrap();
        let key = MemoryKey::unseal(&made.seal_key(&master).unwrap(), &master).unwrap();
        let signatures = Arc::new(AtomicUsize::new(0));
        let ca = Authority::with_key(made.certificate_pem(), Elsewhere(key, signatures.clone())).unwrap();

        let profile = ClientProfile {
            common_name: "svc",
            organization: "nnn.acme",
            validity: Duration::days(30),
            crl_url: "http://x/crl.der",
        };
        let issued = ca
            .issue_client(&profile, &generate_p256().unwrap().public_key, now)
            .unwrap();
        assert!(made.check_issued(&issued.pem).is_some(), "the same CA's certificate");
        let request = CrlRequest {
            number: 1,
            this_update: now,
            next_update: now + Duration::hours(1),
            url: "http://x/crl.der",
            scoped: true,
        };
        let crl = ca.sign_crl(&request, []).unwrap();
        made.verify_crl_signature(&crl.der).unwrap();
        assert_eq!(signatures.load(Ordering::SeqCst), 2, "both were signed by the key");
        assert!(
            matches!(ca.seal_key(&master), Err(CaError::InvalidKey(_))),
            "a key that stays in its store has nothing to seal"
        );
        let other = MemoryKey::generate_p256().unwrap();
        assert!(
            matches!(
                Authority::with_key(made.certificate_pem(), other),
                Err(CaError::InvalidKey(_))
            ),
            "a key that is not the certificate's is refused"
        );
    }
}
