//! API tokens and human passwords.
//!
//! Both are stored only as argon2id PHC strings, but with different costs, because they
//! resist guessing for different reasons:
//!
//! * A **token** is 256 bits from the CSPRNG. Nobody can guess it, hashed slowly or not; the
//!   hash only has to keep a stolen database from yielding usable tokens. So tokens use
//!   argon2id with a small memory cost ([`TOKEN_COST`]) that verifies in well under a
//!   millisecond, which lets a broker's reconnect storm of thousands of cold token checks
//!   finish in seconds.
//! * A **password** is chosen by a human and may be guessable, so it gets argon2id with the
//!   OWASP-recommended cost ([`PASSWORD_COST`], 19 MiB, t=2), tens of milliseconds each.
//!
//! A token reads `fca_<lookup>_<secret>`: `lookup` is 12 random hex characters, stored in
//! the clear and indexed, so a token is found with one indexed read instead of a scan.

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use ring::hmac;

use crate::{CaError, random_bytes};

/// A new webhook signing secret: `whsec_` and 32 random bytes in base64, the form the
/// Standard Webhooks libraries take.
pub fn webhook_secret() -> Result<String, CaError> {
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>()?)
    ))
}

/// The Standard Webhooks signature of a message: `v1,` and the base64 HMAC-SHA256 of
/// `{msg_id}.{timestamp}.{payload}` under `secret` (a `whsec_…` secret from [`webhook_secret`]),
/// the `webhook-signature` header's value.
pub fn sign_webhook(secret: &str, msg_id: &str, timestamp: i64, payload: &[u8]) -> Result<String, CaError> {
    standardwebhooks::Webhook::new(secret)
        .and_then(|w| w.sign(msg_id, timestamp, payload))
        .map_err(|e| CaError::Signing(format!("webhook signature: {e}")))
}

/// argon2id cost for random tokens: (memory KiB, iterations, lanes).
pub const TOKEN_COST: (u32, u32, u32) = (256, 1, 1);
/// argon2id cost for human passwords: OWASP's first recommendation.
pub const PASSWORD_COST: (u32, u32, u32) = (19 * 1024, 2, 1);

const TOKEN_PREFIX: &str = "fca_";

/// A freshly generated API token: `plaintext` is shown once; `lookup` and `hash` are stored.
pub struct NewToken {
    /// The whole token, to hand to the user once.
    pub plaintext: String,
    /// The non-secret lookup part, stored in the clear.
    pub lookup: String,
    /// The argon2id PHC string of the whole token.
    pub hash: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("lookup", &self.lookup)
            .finish_non_exhaustive()
    }
}

fn argon2(cost: (u32, u32, u32)) -> Result<Argon2<'static>, CaError> {
    let params = Params::new(cost.0, cost.1, cost.2, None).map_err(|e| CaError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Working memory for argon2, kept by its owner and used again for every hash.
///
/// A password hash needs 19 MiB. Allocated afresh for each, on whichever thread runs it,
/// those buffers ended up kept by the allocator in many threads' arenas after a flood of
/// sign-ins (RSS 35 → 893 MB, never given back); one buffer per hashing slot, reused,
/// keeps it at the slots' count × 19 MiB.
#[derive(Default)]
pub struct HashMemory(Vec<argon2::Block>);

impl HashMemory {
    /// No memory yet; it grows to the largest cost it is used for, once.
    pub fn new() -> Self {
        Self::default()
    }

    fn blocks(&mut self, params: &Params) -> &mut [argon2::Block] {
        let n = params.block_count();
        if self.0.len() < n {
            self.0.resize(n, argon2::Block::default());
        }
        self.0.get_mut(..n).unwrap_or_default()
    }
}

fn hash_with(cost: (u32, u32, u32), secret: &[u8]) -> Result<String, CaError> {
    hash_in(&mut HashMemory::new(), cost, secret)
}

fn hash_in(memory: &mut HashMemory, cost: (u32, u32, u32), secret: &[u8]) -> Result<String, CaError> {
    let bad = |e: &dyn std::fmt::Display| CaError::Hash(e.to_string());
    let salt_bytes = random_bytes::<16>()?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| bad(&e))?;
    let argon = argon2(cost)?;
    let params = argon.params().clone();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon
        .hash_password_into_with_memory(secret, &salt_bytes, &mut out, memory.blocks(&params))
        .map_err(|e| bad(&e))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: argon2::password_hash::ParamsString::try_from(&params).map_err(|e| bad(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(argon2::password_hash::Output::new(&out).map_err(|e| bad(&e))?),
    };
    Ok(hash.to_string())
}

/// Checks `secret` against a stored PHC string in constant time; the cost is read from the
/// string, so hashes made with older costs keep verifying. A malformed hash never matches.
pub fn verify_hash(secret: &[u8], phc: &str) -> bool {
    verify_hash_in(&mut HashMemory::new(), secret, phc)
}

/// [`verify_hash`] with the caller's working memory.
pub fn verify_hash_in(memory: &mut HashMemory, secret: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
        None => Version::default(),
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    if argon
        .hash_password_into_with_memory(secret, salt, &mut out, memory.blocks(&params))
        .is_err()
    {
        return false;
    }
    constant_time_eq(&out, expected.as_bytes())
}

/// Generates a new API token.
pub fn generate_token() -> Result<NewToken, CaError> {
    generate_token_in(&mut HashMemory::new())
}

/// Makes a token record from a token the operator chose (the bootstrap token). Its lookup
/// is derived from a SHA-256 of the token, since it has no lookup part of its own.
pub fn token_from_plaintext(plaintext: &str) -> Result<NewToken, CaError> {
    Ok(NewToken {
        plaintext: plaintext.to_owned(),
        lookup: token_lookup(plaintext),
        hash: hash_with(TOKEN_COST, plaintext.as_bytes())?,
    })
}

/// The lookup id of a presented token: its `lookup` part when it has our form, else a
/// digest-derived id (which matches what [`token_from_plaintext`] stored).
pub fn token_lookup(token: &str) -> String {
    if let Some(rest) = token.strip_prefix(TOKEN_PREFIX)
        && let Some((lookup, secret)) = rest.split_once('_')
        && lookup.len() == 12
        && lookup.bytes().all(|b| b.is_ascii_hexdigit())
        && !secret.is_empty()
    {
        return lookup.to_ascii_lowercase();
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut id = format!("x{}", hex::encode(digest));
    id.truncate(16);
    id
}

/// A new browser session: (cookie value, its SHA-256 digest to store, a CSRF token).
pub fn new_session() -> Result<(String, String, String), CaError> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let cookie = b64(&random_bytes::<32>()?);
    let csrf = b64(&random_bytes::<32>()?);
    Ok((session_digest(&cookie), cookie, csrf)).map(|(digest, cookie, csrf)| (cookie, digest, csrf))
}

/// The stored form of a session cookie: SHA-256, lowercase hex.
pub fn session_digest(cookie: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, cookie.as_bytes()))
}

/// Compares two secrets in constant time (for their common length; lengths are not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Hashes a human password with [`PASSWORD_COST`].
pub fn hash_password(password: &str) -> Result<String, CaError> {
    hash_with(PASSWORD_COST, password.as_bytes())
}

/// [`hash_password`] with the caller's working memory.
pub fn hash_password_in(memory: &mut HashMemory, password: &str) -> Result<String, CaError> {
    hash_in(memory, PASSWORD_COST, password.as_bytes())
}

/// [`generate_token`] with the caller's working memory.
pub fn generate_token_in(memory: &mut HashMemory) -> Result<NewToken, CaError> {
    let lookup = hex::encode(random_bytes::<6>()?);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let plaintext = format!("{TOKEN_PREFIX}{lookup}_{secret}");
    let hash = hash_in(memory, TOKEN_COST, plaintext.as_bytes())?;
    Ok(NewToken {
        plaintext,
        lookup,
        hash,
    })
}

/// A valid password hash of a random secret, for checking an unknown user's password so
/// the response time does not tell whether the user exists.
pub fn dummy_password_hash() -> Result<String, CaError> {
    dummy_password_hash_in(&mut HashMemory::new())
}

/// [`dummy_password_hash`] with the caller's working memory.
pub fn dummy_password_hash_in(memory: &mut HashMemory) -> Result<String, CaError> {
    hash_password_in(memory, &hex::encode(random_bytes::<16>()?))
}

/// A keyed hash for in-memory cache keys, so a cache never holds a presented secret and
/// its keys are useless outside this process.
pub struct CacheKeyer(hmac::Key);

impl CacheKeyer {
    /// A keyer with a fresh random key.
    pub fn new() -> Result<Self, CaError> {
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, &random_bytes::<32>()?)))
    }

    /// The keyed hash of `parts`, each length-prefixed so `("ab","c")` and `("a","bc")` differ.
    pub fn key(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.0);
        for part in parts {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_made_in_reused_memory_are_the_crates_own_format() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let mut memory = HashMemory::new();
        let ours = hash_password_in(&mut memory, "correct horse").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        let theirs = argon2(PASSWORD_COST)
            .unwrap()
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        // The same memory, used again for another cost and another hash.
        let token = generate_token_in(&mut memory).unwrap();
        assert!(verify_hash_in(&mut memory, token.plaintext.as_bytes(), &token.hash));
        assert!(verify_hash_in(&mut memory, b"battery staple", &theirs));
        assert!(!verify_hash_in(&mut memory, b"battery stapler", &theirs));
    }

    #[test]
    fn webhook_signatures_verify_with_the_standard_library() {
        let secret = webhook_secret().unwrap();
        assert!(secret.starts_with("whsec_"));
        let body = br#"{"type":"webhook.test"}"#;
        let now = chrono::Utc::now().timestamp();
        let signature = sign_webhook(&secret, "msg_1", now, body).unwrap();
        assert!(signature.starts_with("v1,"));
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", "msg_1".parse().unwrap());
        headers.insert("webhook-timestamp", now.to_string().parse().unwrap());
        headers.insert("webhook-signature", signature.parse().unwrap());
        let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
        assert!(verifier.verify(body, &headers).is_ok());
        assert!(matches!(
            verifier.verify(br#"{"type":"forged"}"#, &headers),
            Err(standardwebhooks::WebhookError::InvalidSignature)
        ));
        assert!(sign_webhook("not a secret", "msg_1", 1, body).is_err());
    }

    #[test]
    fn a_generated_token_verifies_and_a_changed_one_does_not() {
        let t = generate_token().unwrap();
        assert!(t.plaintext.starts_with("fca_"));
        assert_eq!(token_lookup(&t.plaintext), t.lookup);
        assert!(verify_hash(t.plaintext.as_bytes(), &t.hash));
        let mut wrong = t.plaintext.clone();
        wrong.push('x');
        assert!(!verify_hash(wrong.as_bytes(), &t.hash));
        assert!(t.hash.starts_with("$argon2id$"));
        assert!(!format!("{t:?}").contains(&t.plaintext));
    }

    #[test]
    fn an_operator_chosen_token_gets_a_stable_lookup() {
        let t = token_from_plaintext("bootstrap-token-with-at-least-32-characters").unwrap();
        assert_eq!(token_lookup("bootstrap-token-with-at-least-32-characters"), t.lookup);
        assert_eq!(t.lookup.len(), 16);
        assert!(verify_hash(t.plaintext.as_bytes(), &t.hash));
    }

    #[test]
    fn passwords_use_the_strong_cost_and_garbage_hashes_never_match() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.contains("m=19456,t=2,p=1"));
        assert!(verify_hash(b"correct horse", &h));
        assert!(!verify_hash(b"wrong", &h));
        assert!(!verify_hash(b"x", "not a hash"));
    }

    #[test]
    fn cache_keys_separate_their_parts() {
        let k = CacheKeyer::new().unwrap();
        assert_ne!(k.key(&[b"ab", b"c"]), k.key(&[b"a", b"bc"]));
        assert_eq!(k.key(&[b"ab", b"c"]), k.key(&[b"ab", b"c"]));
    }
}
