//! HTTP Digest authentication (RFC 7616) checked against a stored HA1, so that a device
//! provisioned with an HA1 proves its password without sending it. fleetca stores the MD5
//! HA1 only (it is what SIP and the MQTT HMAC scheme use), so the algorithm is `MD5` with
//! `qop=auth`; a SHA-256 HA1 would need the password, which fleetca never keeps.
//!
//! Nonces are stateless and unforgeable: `base64url(time ‖ random ‖ HMAC(key, time ‖
//! random))`, so any instance sharing the master key can check one; single use is the
//! caller's to enforce (see `api`'s nonce register).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use md5::{Digest, Md5};
use ring::hmac;
use subtle::ConstantTimeEq;

fn md5_hex(parts: &[&str]) -> String {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// What a client sent in `Authorization: Digest …` that the response is computed over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DigestCredentials {
    /// The device id.
    pub username: String,
    /// Its realm (the tenant).
    pub realm: String,
    /// The server's nonce.
    pub nonce: String,
    /// The request URI the client signed.
    pub uri: String,
    /// The client's response (hex).
    pub response: String,
    /// `MD5` when given.
    pub algorithm: Option<String>,
    /// `auth`.
    pub qop: Option<String>,
    /// The nonce count (hex).
    pub nc: Option<String>,
    /// The client's nonce.
    pub cnonce: Option<String>,
    /// Echoed opaque value.
    pub opaque: Option<String>,
}

impl DigestCredentials {
    /// Parses the parameters after `Digest ` (quoted or token values, any order). `None`
    /// when a required one is missing or the syntax is broken.
    pub fn parse(params: &str) -> Option<Self> {
        let mut out = DigestCredentials::default();
        let mut rest = params.trim();
        while !rest.is_empty() {
            let (name, after) = rest.split_once('=')?;
            let name = name.trim().to_ascii_lowercase();
            let after = after.trim_start();
            let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => value.push(chars.next()?.1),
                        '"' => {
                            end = Some(i + 1);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, quoted.get(end?..)?)
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after.get(..end)?.trim().to_owned(), after.get(end..)?)
            };
            match name.as_str() {
                "username" => out.username = value,
                "realm" => out.realm = value,
                "nonce" => out.nonce = value,
                "uri" => out.uri = value,
                "response" => out.response = value,
                "algorithm" => out.algorithm = Some(value),
                "qop" => out.qop = Some(value),
                "nc" => out.nc = Some(value),
                "cnonce" => out.cnonce = Some(value),
                "opaque" => out.opaque = Some(value),
                _ => {}
            }
            rest = tail.trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
        }
        if out.username.is_empty() || out.nonce.is_empty() || out.uri.is_empty() || out.response.is_empty() {
            return None;
        }
        Some(out)
    }

    /// Whether the response matches `ha1` (MD5, `qop=auth`) for `method`, in constant time.
    /// Only `MD5` (or no algorithm) with `qop=auth` and its `nc` and `cnonce` is accepted.
    pub fn verify(&self, ha1: &str, method: &str) -> bool {
        if !matches!(self.algorithm.as_deref(), None | Some("MD5") | Some("md5")) {
            return false;
        }
        let (Some("auth"), Some(nc), Some(cnonce)) = (self.qop.as_deref(), &self.nc, &self.cnonce) else {
            return false;
        };
        let ha2 = md5_hex(&[method, &self.uri]);
        let expected = md5_hex(&[&ha1.to_ascii_lowercase(), &self.nonce, nc, cnonce, "auth", &ha2]);
        bool::from(expected.as_bytes().ct_eq(self.response.to_ascii_lowercase().as_bytes()))
    }
}

/// Mints and checks nonces with a key shared by every instance.
pub struct NonceKey(hmac::Key);

/// What a nonce turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Nonce {
    /// Ours and younger than the limit; minted at this Unix time.
    Fresh(i64),
    /// Ours but too old: the client should retry with a new one (`stale=true`).
    Stale,
    /// Not ours.
    Invalid,
}

impl NonceKey {
    /// A key from bytes (derived from the master key by the caller).
    pub fn new(key: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// A new nonce minted at `now` (Unix seconds).
    pub fn mint(&self, now: i64) -> Result<String, crate::CaError> {
        let mut body = Vec::with_capacity(8 + 16 + 16);
        body.extend_from_slice(&now.to_be_bytes());
        body.extend_from_slice(&crate::random_bytes::<16>()?);
        let tag = hmac::sign(&self.0, &body);
        body.extend_from_slice(tag.as_ref().get(..16).unwrap_or_default());
        Ok(URL_SAFE_NO_PAD.encode(body))
    }

    /// Checks a nonce: ours, and minted at most `max_age` seconds before `now`.
    pub fn check(&self, nonce: &str, now: i64, max_age: i64) -> Nonce {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else {
            return Nonce::Invalid;
        };
        let (Some(body), Some(tag), Some(time)) = (raw.get(..24), raw.get(24..), raw.get(..8)) else {
            return Nonce::Invalid;
        };
        let expected = hmac::sign(&self.0, body);
        if tag.len() != 16 || !bool::from(expected.as_ref().get(..16).unwrap_or_default().ct_eq(tag)) {
            return Nonce::Invalid;
        }
        let minted = i64::from_be_bytes(time.try_into().unwrap_or([0; 8]));
        if minted > now + 5 || now - minted > max_age {
            Nonce::Stale
        } else {
            Nonce::Fresh(minted)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2617_example_verifies() {
        // RFC 2617 §3.5 (MD5, qop=auth): Mufasa / testrealm@host.com / Circle Of Life.
        let header = r#"username="Mufasa", realm="testrealm@host.com",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth,
            nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1",
            opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let creds = DigestCredentials::parse(header).unwrap();
        assert_eq!(creds.username, "Mufasa");
        assert_eq!(creds.nc.as_deref(), Some("00000001"));
        let ha1 = crate::device::ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        assert!(creds.verify(&ha1, "GET"));
        assert!(!creds.verify(&ha1, "POST"));
        assert!(!creds.verify(&crate::device::ha1("Mufasa", "testrealm@host.com", "wrong"), "GET"));
        let mut no_qop = creds.clone();
        no_qop.qop = None;
        assert!(!no_qop.verify(&ha1, "GET"));
        let mut sha = creds;
        sha.algorithm = Some("SHA-256".into());
        assert!(!sha.verify(&ha1, "GET"));
    }

    #[test]
    fn broken_headers_do_not_parse() {
        for bad in ["", "username", r#"username="a"#, r#"username="a", nonce="n""#, "a=b"] {
            assert!(DigestCredentials::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn nonces_are_ours_fresh_or_stale() {
        let key = NonceKey::new(b"k");
        let nonce = key.mint(1000).unwrap();
        assert_eq!(key.check(&nonce, 1010, 300), Nonce::Fresh(1000));
        assert_eq!(key.check(&nonce, 1400, 300), Nonce::Stale);
        assert_eq!(NonceKey::new(b"other").check(&nonce, 1010, 300), Nonce::Invalid);
        assert_eq!(key.check("garbage!", 1010, 300), Nonce::Invalid);
        let mut tampered = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        tampered[0] ^= 1;
        assert_eq!(key.check(&URL_SAFE_NO_PAD.encode(tampered), 1010, 300), Nonce::Invalid);
    }
}
