//! Secrets at rest: AES-256-GCM under the master key.
//!
//! The sealed form is `nonce (12 bytes) || ciphertext || tag (16 bytes)`. The associated
//! data binds a sealed value to what it is (the CA key, one device's HA1), so a value copied
//! to another row does not open there.

use std::fmt;

use base64::Engine;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::{CaError, random_bytes};

/// The 256-bit key that seals the CA key and device HA1s. Its `Debug` output hides it.
pub struct MasterKey {
    key: LessSafeKey,
    bytes: [u8; 32],
}

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> Result<Self, CaError> {
        Self::from_bytes(random_bytes::<32>()?)
    }

    /// Parses 64 hex characters or the base64 (standard or URL-safe) of 32 bytes.
    /// Surrounding white space is ignored, so a key file may end with a newline.
    pub fn parse(text: &str) -> Result<Self, CaError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| CaError::InvalidMasterKey)?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
                .map_err(|_| CaError::InvalidMasterKey)?
        };
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| CaError::InvalidMasterKey)?;
        Self::from_bytes(bytes)
    }

    fn from_bytes(bytes: [u8; 32]) -> Result<Self, CaError> {
        // 32 bytes is always a valid AES-256 key length, so this does not fail in practice.
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| CaError::InvalidMasterKey)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            bytes,
        })
    }

    /// The key as 64 lowercase hex characters, for writing the key file on first start.
    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    /// A secret derived from the master key for one purpose (HMAC-SHA256 of `context`),
    /// as 64 hex characters: the same on every instance that shares the key, and telling
    /// nothing of the key itself.
    pub fn derive(&self, context: &str) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.bytes);
        hex::encode(ring::hmac::sign(&key, context.as_bytes()))
    }

    /// Encrypts `plaintext`, bound to `context`.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, CaError> {
        let nonce_bytes = random_bytes::<NONCE_LEN>()?;
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
        out.extend_from_slice(&nonce_bytes);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context.as_bytes()),
                &mut body,
            )
            .map_err(|_| CaError::Signing("seal".into()))?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decrypts what [`MasterKey::seal`] made with the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, CaError> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(CaError::Unseal);
        }
        let (nonce, body) = sealed.split_at_checked(NONCE_LEN).ok_or(CaError::Unseal)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CaError::Unseal)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut body)
            .map_err(|_| CaError::Unseal)?;
        Ok(plain.to_vec())
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_opens_only_with_the_same_key_and_context() {
        let key = MasterKey::generate().unwrap();
        let sealed = key.seal("ca-key", b"secret").unwrap();
        assert_eq!(key.open("ca-key", &sealed).unwrap(), b"secret");
        assert!(matches!(key.open("ha1:x", &sealed), Err(CaError::Unseal)));
        let other = MasterKey::generate().unwrap();
        assert!(matches!(other.open("ca-key", &sealed), Err(CaError::Unseal)));
    }

    #[test]
    fn master_key_parses_hex_and_base64_and_rejects_short_keys() {
        let key = MasterKey::generate().unwrap();
        let hex_form = key.to_hex();
        let sealed = key.seal("c", b"v").unwrap();
        assert_eq!(
            MasterKey::parse(&format!("{hex_form}\n"))
                .unwrap()
                .open("c", &sealed)
                .unwrap(),
            b"v"
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(&hex_form).unwrap());
        assert_eq!(MasterKey::parse(&b64).unwrap().open("c", &sealed).unwrap(), b"v");
        assert!(MasterKey::parse("too-short").is_err());
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
        let again = MasterKey::parse(&key.to_hex()).unwrap();
        assert_eq!(key.derive("a"), again.derive("a"));
        assert_ne!(key.derive("a"), key.derive("b"));
        assert!(!key.derive("a").contains(&key.to_hex()));
    }
}
