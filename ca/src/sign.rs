//! Sign-based device authentication of the EnOS and Alibaba Cloud IoT families.
//!
//! A device signs `content`: the names and values of its connection parameters
//! (`clientId`, `deviceKey` or `deviceName`, `productKey`, and `timestamp` when there is
//! one), sorted by name and concatenated without separators.
//! - **EnOS** documents `signmethod=sha256`: password = upper-case hex of
//!   SHA-256(`content` + secret). Its official SDKs send `signmethod=hmacsha256` (their default),
//!   `hmacsha1` or `hmacmd5` and compute the same *plain* digest of `content` + secret with
//!   that hash, whatever the name says (SHA-256 and MD5 in lower-case hex, SHA-1 in
//!   upper-case). The secret is the device secret (static, `securemode=2`) or the product
//!   secret (dynamic activation, `securemode=3`).
//! - **Alibaba** (`signmethod=hmacsha1|hmacsha256|hmacmd5`): password = hex of
//!   HMAC(key = device secret, `content`).
//!
//! Either case of hex is accepted everywhere. The same HMAC signs an HTTPS dynamic
//! registration: `deviceName{…}productKey{…}random{…}` keyed with the product secret.

use hmac::{Hmac, Mac};
use md5::Digest as _;
use ring::{digest, hmac as ring_hmac};
use subtle::ConstantTimeEq;

/// A hash function a sign method uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    /// SHA-1 (legacy, but what the SDKs offer).
    Sha1,
    /// SHA-256.
    Sha256,
    /// MD5 (legacy, but what the SDKs offer).
    Md5,
}

/// How a sign password is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignMethod {
    /// EnOS: the hash of `content` + secret (the documented `sha256` and its SDKs'
    /// `hmacsha256`, `hmacsha1` and `hmacmd5`).
    Digest(Hash),
    /// Alibaba: HMAC of `content` keyed with the secret.
    Hmac(Hash),
}

impl SignMethod {
    /// What EnOS documents: `signmethod=sha256`.
    pub const ENOS_DOCUMENTED: Self = Self::Digest(Hash::Sha256);

    /// An EnOS `signmethod`, ignoring case: `sha256` as documented, and the names its
    /// official SDKs send for the same plain digests.
    pub fn enos(name: &str) -> Option<Self> {
        let hash = match name.to_ascii_lowercase().as_str() {
            "sha256" | "hmacsha256" => Hash::Sha256,
            "hmacsha1" => Hash::Sha1,
            "hmacmd5" => Hash::Md5,
            _ => return None,
        };
        Some(Self::Digest(hash))
    }

    /// An Alibaba `signmethod` (or a registration's `signMethod`), ignoring case.
    pub fn aliyun(name: &str) -> Option<Self> {
        let hash = match name.to_ascii_lowercase().as_str() {
            "hmacsha1" => Hash::Sha1,
            "hmacsha256" => Hash::Sha256,
            "hmacmd5" => Hash::Md5,
            _ => return None,
        };
        Some(Self::Hmac(hash))
    }

    /// The password (or registration sign) for `content` and `secret`, as the device
    /// computes it: EnOS's documented SHA-256 and its SDK's SHA-1 in upper-case hex, the
    /// rest in lower-case.
    pub fn sign(self, secret: &str, content: &str) -> String {
        let mut out = [0u8; 32];
        let len = self.digest(secret, content, &mut out);
        let bytes = out.get(..len).unwrap_or_default();
        match self {
            Self::Digest(Hash::Sha256 | Hash::Sha1) => hex::encode_upper(bytes),
            _ => hex::encode(bytes),
        }
    }

    /// Whether `presented` is the password for `content` and `secret`: compared in
    /// constant time, either case of hex accepted, nothing allocated.
    pub fn verify(self, secret: &str, content: &str, presented: &str) -> bool {
        let mut expected = [0u8; 32];
        let len = self.digest(secret, content, &mut expected);
        let mut given = [0u8; 32];
        let (Some(expected), Some(given)) = (expected.get(..len), given.get_mut(..len)) else {
            return false;
        };
        len > 0 && hex::decode_to_slice(presented, given).is_ok() && bool::from(expected.ct_eq(given))
    }

    /// Writes the raw digest or MAC into `out` and returns its length (16, 20 or 32).
    fn digest(self, secret: &str, content: &str, out: &mut [u8; 32]) -> usize {
        let mut put = |bytes: &[u8]| {
            out.iter_mut().zip(bytes).for_each(|(o, b)| *o = *b);
            bytes.len().min(out.len())
        };
        match self {
            Self::Digest(hash @ (Hash::Sha256 | Hash::Sha1)) => {
                let algorithm = match hash {
                    Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
                    _ => &digest::SHA256,
                };
                let mut ctx = digest::Context::new(algorithm);
                ctx.update(content.as_bytes());
                ctx.update(secret.as_bytes());
                put(ctx.finish().as_ref())
            }
            Self::Digest(Hash::Md5) => {
                let mut ctx = md5::Md5::new();
                ctx.update(content.as_bytes());
                ctx.update(secret.as_bytes());
                put(&ctx.finalize())
            }
            Self::Hmac(Hash::Sha1) => put(ring_mac(ring_hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret, content).as_ref()),
            Self::Hmac(Hash::Sha256) => put(ring_mac(ring_hmac::HMAC_SHA256, secret, content).as_ref()),
            Self::Hmac(Hash::Md5) => match Hmac::<md5::Md5>::new_from_slice(secret.as_bytes()) {
                Ok(mut mac) => {
                    mac.update(content.as_bytes());
                    put(&mac.finalize().into_bytes())
                }
                // HMAC takes a key of any length; this arm cannot be reached.
                Err(_) => 0,
            },
        }
    }
}

fn ring_mac(algorithm: ring_hmac::Algorithm, secret: &str, content: &str) -> ring_hmac::Tag {
    let key = ring_hmac::Key::new(algorithm, secret.as_bytes());
    ring_hmac::sign(&key, content.as_bytes())
}

/// A sign timestamp as a device sends it: Unix time in seconds (10 digits, what Alibaba's
/// SDK sends) or milliseconds (13 digits, what EnOS documents), either with a decimal
/// fraction (EnOS's SDK sends `str(time.time() * 1000)`). Returns milliseconds, or `None`
/// for anything else. The text as sent is what is signed; this is only its value.
pub fn timestamp_millis(text: &str) -> Option<i64> {
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f) || f.len() > 9) {
        return None;
    }
    let value: i64 = whole.parse().ok()?;
    match whole.len() {
        10 => value.checked_mul(1000),
        13 => Some(value),
        _ => None,
    }
}

/// `content`: the parameters sorted by name, names and values concatenated.
pub fn content(params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<&(&str, &str)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    sorted.iter().flat_map(|(k, v)| [*k, *v]).collect()
}

/// A new product or device secret: 32 characters of `[A-Za-z0-9]` (190 bits).
pub fn generate_secret() -> Result<String, crate::CaError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let bytes = crate::random_bytes::<32>()?;
    // 256 is a multiple of 62 within 4 %: the bias is negligible for a 190-bit secret,
    // and rejection sampling here would spend more randomness for no practical gain.
    Ok(bytes
        .iter()
        .filter_map(|b| ALPHABET.get(usize::from(*b) % ALPHABET.len()))
        .map(|b| char::from(*b))
        .collect())
}

/// The associated data a product secret is sealed under.
pub fn product_secret_context(product_key: &str) -> String {
    format!("fleetca/product-secret/v1/{product_key}")
}

/// The associated data a sign-based device's secret is sealed under.
pub fn device_secret_context(product_key: &str, device_key: &str) -> String {
    format!("fleetca/device-secret/v1/{product_key}/{device_key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values computed independently with Python's hashlib/hmac.
    #[test]
    fn the_enos_static_example_of_the_reference() {
        let c = content(&[
            ("productKey", "654321"),
            ("clientId", "123456"),
            ("timestamp", "1548753362502"),
            ("deviceKey", "test"),
        ]);
        assert_eq!(c, "clientId123456deviceKeytestproductKey654321timestamp1548753362502");
        let password = "B99032D49C706F7B27B22AB5CD2DD3C56A31E1BCBBC83BA0A2A6BB3272FBB166";
        assert_eq!(SignMethod::ENOS_DOCUMENTED.sign("abcdefg", &c), password);
        assert!(SignMethod::ENOS_DOCUMENTED.verify("abcdefg", &c, password));
        assert!(SignMethod::ENOS_DOCUMENTED.verify("abcdefg", &c, &password.to_lowercase()));
        assert!(!SignMethod::ENOS_DOCUMENTED.verify("abcdefh", &c, password));
    }

    #[test]
    fn the_enos_dynamic_example_of_the_reference() {
        let c = content(&[
            ("clientId", "123"),
            ("deviceKey", "test"),
            ("productKey", "123"),
            ("timestamp", "1524448722000"),
        ]);
        assert_eq!(
            SignMethod::ENOS_DOCUMENTED.sign("abcdefg", &c),
            "A4F9AD91051E3CA89440E0157029DD358C3A2C556D3C543B9FD5A38484785AC9"
        );
    }

    #[test]
    fn the_alibaba_example_of_the_reference_with_each_method() {
        let c = content(&[
            ("clientId", "12345"),
            ("deviceName", "device"),
            ("productKey", "pk"),
            ("timestamp", "789"),
        ]);
        assert_eq!(c, "clientId12345deviceNamedeviceproductKeypktimestamp789");
        for (method, expected) in [
            (SignMethod::Hmac(Hash::Sha1), "fafd82a3d602b37fb0fa8b7892f24a477f851a14"),
            (
                SignMethod::Hmac(Hash::Sha256),
                "6074a46a91b1ebb2cc4ea42790ad0e80202c9843859fc292e57c4eb19fad9e57",
            ),
            (SignMethod::Hmac(Hash::Md5), "14b198324fe55e1d3c88f2e705e201ee"),
        ] {
            assert_eq!(method.sign("secret", &c), expected, "{method:?}");
            assert!(method.verify("secret", &c, &expected.to_uppercase()), "{method:?}");
            assert!(!method.verify("secret", &c, &expected[1..]), "{method:?}");
        }
    }

    #[test]
    fn methods_parse_in_any_case_and_secrets_are_long() {
        assert_eq!(SignMethod::aliyun("HmacSHA1"), Some(SignMethod::Hmac(Hash::Sha1)));
        assert_eq!(SignMethod::aliyun("sha256"), None);
        assert_eq!(SignMethod::enos("SHA256"), Some(SignMethod::Digest(Hash::Sha256)));
        assert_eq!(SignMethod::enos("hmacsha256"), Some(SignMethod::Digest(Hash::Sha256)));
        assert_eq!(SignMethod::enos("sha1"), None);
        let s = generate_secret().unwrap();
        assert_eq!(s.len(), 32);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(s, generate_secret().unwrap());
    }

    // What EnOS's official Python SDK (enos-mqtt-sdk-python 0.1.1) sends, computed here with
    // Python's hashlib as its SignUtil does: content = clientId…deviceKey…productKey…
    // timestamp… (its timestamp is `str(time.time() * 1000)`), then the hash of content +
    // secret: SHA-256 lower-case, SHA-1 upper-case, MD5 lower-case hex.
    #[test]
    fn the_enos_sdk_signs_plain_digests_under_hmac_names() {
        let c = content(&[
            ("clientId", "dev01abcde"),
            ("deviceKey", "dev01abcde"),
            ("productKey", "EhoS3s9r"),
            ("timestamp", "1796531716016.586"),
        ]);
        assert_eq!(
            c,
            "clientIddev01abcdedeviceKeydev01abcdeproductKeyEhoS3s9rtimestamp1796531716016.586"
        );
        let secret = "Gq8vRk2LmT5xWz7NcY4pHb6JdF3sAe9U";
        for (name, expected) in [
            (
                "hmacsha256",
                "5059a1bfdab765329f33147ae0e6c2c9e7451ed0e928f830b33d48ea63bace38",
            ),
            ("hmacsha1", "288703F54C333F43413CCBDC5E8F9405C76FEE70"),
            ("hmacmd5", "e35a4620b564e94dca11b8eb6826bed8"),
        ] {
            let method = SignMethod::enos(name).unwrap();
            assert!(method.verify(secret, &c, expected), "{name}");
            assert!(method.verify(secret, &c, &expected.to_ascii_lowercase()), "{name}");
            assert!(method.verify(secret, &c, &expected.to_ascii_uppercase()), "{name}");
            assert!(!method.verify("another-secret-entirely", &c, expected), "{name}");
            // Not an HMAC, whatever the name says.
            let hmac = SignMethod::aliyun(name).unwrap();
            assert!(!hmac.verify(secret, &c, expected), "{name}");
        }
    }

    // What Alibaba's official Python SDK (aliyun-iot-linkkit 1.2.13) sends: a timestamp in
    // seconds, and extended parameters in the client id that take no part in the sign;
    // the clientId signed is `{productKey}&{deviceName}`. Computed with Python's hmac.
    #[test]
    fn the_alibaba_sdk_signs_seconds_with_hmac_sha1() {
        let c = content(&[
            ("clientId", "a1B2c3D4e5F&lamp-0001"),
            ("deviceName", "lamp-0001"),
            ("productKey", "a1B2c3D4e5F"),
            ("timestamp", "1796531841"),
        ]);
        let expected = "8e6c2c45de6145ffbb6f244b2e5298ae39745cfc";
        assert!(
            SignMethod::aliyun("hmacsha1")
                .unwrap()
                .verify("Alibaba-device-secret-0001", &c, expected)
        );
    }

    #[test]
    fn timestamps_are_seconds_or_milliseconds_with_or_without_a_fraction() {
        assert_eq!(timestamp_millis("1796531841"), Some(1_796_531_841_000));
        assert_eq!(timestamp_millis("1796531716016"), Some(1_796_531_716_016));
        assert_eq!(timestamp_millis("1796531716016.586"), Some(1_796_531_716_016));
        assert_eq!(timestamp_millis("1796531841.25"), Some(1_796_531_841_000));
        for bad in [
            "",
            "17965318",
            "179653184100",
            "17965317160160",
            "1796531841.",
            ".5",
            "-796531841",
            "1796531841.x",
            "1e12",
            " 1796531841",
        ] {
            assert_eq!(timestamp_millis(bad), None, "{bad:?}");
        }
    }
}
