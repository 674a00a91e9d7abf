//! Device credentials: the SIP digest HA1 and the MQTT password scheme built on it.
//!
//! HA1 = MD5(`device_id:realm:password`) as lowercase hex (RFC 2617 §3.2.2.2). A device's
//! MQTT password is `signature={hex}&timestamp={unix seconds}` where the signature is
//! HMAC-SHA256 keyed with the 32 hex *characters* of HA1 over the decimal timestamp, as the
//! iotcomms reference implementation computes it.

use md5::{Digest, Md5};
use ring::hmac;

use crate::CaError;

/// HA1 = MD5(`username:realm:password`), lowercase hex.
pub fn ha1(username: &str, realm: &str, password: &str) -> String {
    let mut h = Md5::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    hex::encode(h.finalize())
}

/// A strong random device password: 24 characters of base64url (144 bits).
pub fn generate_password() -> Result<String, CaError> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::random_bytes::<18>()?))
}

/// The associated data a device's HA1 is sealed under, binding it to that device.
pub fn ha1_seal_context(tenant: &str, device_id: &str) -> String {
    format!("fleetca/ha1/v1/{tenant}/{device_id}")
}

/// Opens a device's HA1, sealed under [`ha1_seal_context`]: the one way the broker's
/// decisions and EST read it. A sealed value that does not open, or opens to anything but a
/// well-formed HA1, is [`CaError::Unseal`].
pub fn open_ha1(master: &crate::MasterKey, tenant: &str, device_id: &str, sealed: &[u8]) -> Result<String, CaError> {
    let bytes = master.open(&ha1_seal_context(tenant, device_id), sealed)?;
    match String::from_utf8(bytes) {
        Ok(ha1) if is_ha1(&ha1) => Ok(ha1),
        _ => Err(CaError::Unseal),
    }
}

/// Whether `s` is a well-formed HA1: 32 hex characters.
pub fn is_ha1(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The MQTT password signature a device computes for `timestamp`.
pub fn mqtt_signature(ha1: &str, timestamp: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, ha1.to_ascii_lowercase().as_bytes());
    hex::encode(hmac::sign(&key, timestamp.to_string().as_bytes()))
}

/// Checks a presented hex signature for `timestamp` in constant time.
pub fn verify_mqtt_signature(ha1: &str, timestamp: i64, signature_hex: &str) -> bool {
    MqttKey::new(ha1).verify(timestamp, signature_hex)
}

/// A device's MQTT password key, made once from its HA1: the HMAC key schedule is done here,
/// so a login's check is the HMAC of its timestamp and a comparison, with nothing allocated.
#[derive(Clone)]
pub struct MqttKey(hmac::Key);

impl std::fmt::Debug for MqttKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MqttKey(…)")
    }
}

impl MqttKey {
    /// The key of the device whose HA1 this is (hex, either case).
    pub fn new(ha1: &str) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, ha1.to_ascii_lowercase().as_bytes()))
    }

    /// Checks a presented hex signature (either case) for `timestamp` in constant time.
    pub fn verify(&self, timestamp: i64, signature_hex: &str) -> bool {
        let mut signature = [0u8; 32];
        if hex::decode_to_slice(signature_hex, &mut signature).is_err() {
            return false;
        }
        let mut digits = std::io::Cursor::new([0u8; 20]);
        if std::io::Write::write_fmt(&mut digits, format_args!("{timestamp}")).is_err() {
            return false;
        }
        let written = usize::try_from(digits.position()).unwrap_or(0);
        let text = digits.get_ref().get(..written).unwrap_or_default();
        hmac::verify(&self.0, text, &signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_ha1_opens_only_for_its_device_and_only_as_an_ha1() {
        let master = crate::MasterKey::generate().unwrap();
        let h = ha1("dev-1", "acme", "a device password");
        let sealed = master.seal(&ha1_seal_context("acme", "dev-1"), h.as_bytes()).unwrap();
        assert_eq!(open_ha1(&master, "acme", "dev-1", &sealed).unwrap(), h);
        assert!(matches!(
            open_ha1(&master, "acme", "dev-2", &sealed),
            Err(CaError::Unseal)
        ));
        let other = crate::MasterKey::generate().unwrap();
        assert!(matches!(
            open_ha1(&other, "acme", "dev-1", &sealed),
            Err(CaError::Unseal)
        ));
        let not_ha1 = master.seal(&ha1_seal_context("acme", "dev-1"), b"not an HA1").unwrap();
        assert!(matches!(
            open_ha1(&master, "acme", "dev-1", &not_ha1),
            Err(CaError::Unseal)
        ));
    }

    #[test]
    fn ha1_matches_rfc_2617_example() {
        // RFC 2617 §3.5: Mufasa / testrealm@host.com / Circle Of Life.
        assert_eq!(
            ha1("Mufasa", "testrealm@host.com", "Circle Of Life"),
            "939e7578ed9e3c518a452acee763bce9"
        );
    }

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let a = generate_password().unwrap();
        assert_eq!(a.len(), 24);
        assert_ne!(a, generate_password().unwrap());
    }

    #[test]
    fn mqtt_signature_matches_an_independent_hmac() {
        // printf 1700000000 | openssl dgst -sha256 -hmac 939e7578ed9e3c518a452acee763bce9
        let sig = mqtt_signature("939e7578ed9e3c518a452acee763bce9", 1_700_000_000);
        assert_eq!(sig, "c2a780cfc6b3cbc57c5ca03a6b4c3fdc88ab2f535ed4419407bebab731c313e0");
        assert!(verify_mqtt_signature(
            "939e7578ed9e3c518a452acee763bce9",
            1_700_000_000,
            &sig
        ));
        assert!(!verify_mqtt_signature(
            "939e7578ed9e3c518a452acee763bce9",
            1_700_000_001,
            &sig
        ));
        assert!(!verify_mqtt_signature(
            "939e7578ed9e3c518a452acee763bce9",
            1_700_000_000,
            "zz"
        ));
        // Either case, as hex::decode took it; a shorter signature never matches.
        let key = MqttKey::new("939E7578ED9E3C518A452ACEE763BCE9");
        assert!(key.verify(1_700_000_000, &sig.to_uppercase()));
        assert!(!key.verify(1_700_000_000, &sig[..62]));
        assert!(!key.verify(i64::MIN, &sig));
    }
}
