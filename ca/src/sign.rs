//! Sign-based device authentication of the EnOS and Alibaba Cloud IoT families.
//!
//! A device signs `content`: the names and values of its connection parameters
//! (`clientId`, `deviceKey` or `deviceName`, `productKey`, and `timestamp` when there is
//! one), sorted by name and concatenated without separators.
//! - **EnOS** (`signmethod=sha256`): password = upper-case hex of SHA-256(`content` +
//!   secret), the secret being the device secret (static, `securemode=2`) or the product
//!   secret (dynamic activation, `securemode=3`).
//! - **Alibaba** (`signmethod=hmacsha1|hmacsha256|hmacmd5`): password = hex of
//!   HMAC(key = device secret, `content`), either case.
//!
//! The same HMAC signs an HTTPS dynamic registration:
//! `deviceName{…}productKey{…}random{…}` keyed with the product secret.

use hmac::{Hmac, Mac};
use ring::{digest, hmac as ring_hmac};
use subtle::ConstantTimeEq;

/// How a sign password is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignMethod {
    /// EnOS: SHA-256 of content + secret, upper-case hex.
    Sha256,
    /// HMAC-SHA1 keyed with the secret.
    HmacSha1,
    /// HMAC-SHA256 keyed with the secret.
    HmacSha256,
    /// HMAC-MD5 keyed with the secret.
    HmacMd5,
}

impl SignMethod {
    /// From a `signmethod` value, ignoring case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "sha256" => Some(Self::Sha256),
            "hmacsha1" => Some(Self::HmacSha1),
            "hmacsha256" => Some(Self::HmacSha256),
            "hmacmd5" => Some(Self::HmacMd5),
            _ => None,
        }
    }

    /// The password (or registration sign) for `content` and `secret`, as the device
    /// computes it.
    pub fn sign(self, secret: &str, content: &str) -> String {
        match self {
            Self::Sha256 => {
                let mut ctx = digest::Context::new(&digest::SHA256);
                ctx.update(content.as_bytes());
                ctx.update(secret.as_bytes());
                hex::encode_upper(ctx.finish())
            }
            Self::HmacSha1 => ring_hex(ring_hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret, content),
            Self::HmacSha256 => ring_hex(ring_hmac::HMAC_SHA256, secret, content),
            Self::HmacMd5 => match Hmac::<md5::Md5>::new_from_slice(secret.as_bytes()) {
                Ok(mut mac) => {
                    mac.update(content.as_bytes());
                    hex::encode(mac.finalize().into_bytes())
                }
                // HMAC takes a key of any length; this arm cannot be reached.
                Err(_) => String::new(),
            },
        }
    }

    /// Whether `presented` is the password for `content` and `secret`: compared in
    /// constant time, either case of hex accepted.
    pub fn verify(self, secret: &str, content: &str, presented: &str) -> bool {
        let expected = self.sign(secret, content).to_ascii_lowercase();
        let presented = presented.to_ascii_lowercase();
        !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
    }
}

fn ring_hex(algorithm: ring_hmac::Algorithm, secret: &str, content: &str) -> String {
    let key = ring_hmac::Key::new(algorithm, secret.as_bytes());
    hex::encode(ring_hmac::sign(&key, content.as_bytes()))
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
        assert_eq!(SignMethod::Sha256.sign("abcdefg", &c), password);
        assert!(SignMethod::Sha256.verify("abcdefg", &c, password));
        assert!(SignMethod::Sha256.verify("abcdefg", &c, &password.to_lowercase()));
        assert!(!SignMethod::Sha256.verify("abcdefh", &c, password));
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
            SignMethod::Sha256.sign("abcdefg", &c),
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
            (SignMethod::HmacSha1, "fafd82a3d602b37fb0fa8b7892f24a477f851a14"),
            (
                SignMethod::HmacSha256,
                "6074a46a91b1ebb2cc4ea42790ad0e80202c9843859fc292e57c4eb19fad9e57",
            ),
            (SignMethod::HmacMd5, "14b198324fe55e1d3c88f2e705e201ee"),
        ] {
            assert_eq!(method.sign("secret", &c), expected, "{method:?}");
            assert!(method.verify("secret", &c, &expected.to_uppercase()), "{method:?}");
            assert!(!method.verify("secret", &c, &expected[1..]), "{method:?}");
        }
    }

    #[test]
    fn methods_parse_in_any_case_and_secrets_are_long() {
        assert_eq!(SignMethod::parse("HmacSHA1"), Some(SignMethod::HmacSha1));
        assert_eq!(SignMethod::parse("sha1"), None);
        let s = generate_secret().unwrap();
        assert_eq!(s.len(), 32);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(s, generate_secret().unwrap());
    }
}
