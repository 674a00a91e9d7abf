//! CA keys in a PKCS#11 token: an HSM, or SoftHSM2 in the tests.
//!
//! A key is made inside the token (sensitive, never extractable) or found there by its
//! label; fleetca keeps only its label and public key. Certificates and CRLs are signed by
//! the token: the certificate's (or CRL's) to-be-signed bytes are hashed here with SHA-256
//! and the digest signed with `CKM_ECDSA`, which every token has (SoftHSM 2.6 has no
//! `CKM_ECDSA_SHA256`); the token's raw `r‖s` becomes the DER `Ecdsa-Sig-Value` that X.509
//! carries (RFC 3279 §2.2.3).
//!
//! One [`Token`] per process: `C_Initialize` is process-wide, and a recovery re-initializes
//! the library. Its main session finds and makes keys and answers operators, behind one lock
//! (waited for at most [`LOCK_WAIT`]). A session runs one operation at a time (PKCS#11
//! §5.6), and one session signing for every issuance was what limited it once the database
//! no longer did (SoftHSM takes ~270 µs per P-256 signature: 3,650 issuances/s at most), so
//! [`SIGNING_SESSIONS`] more sessions of the same login sign in parallel, without the lock;
//! the main session signs when they are all busy. A recovery first waits for the signatures
//! in flight and closes those sessions. Every signature the token makes is verified against
//! the CA's public key before it is used, so a key swapped under the label never signs for
//! the CA.
//!
//! When the token stops answering (removed, its store gone), signing fails with
//! [`CaError::KeyUnavailable`] at once, and a thread of its own reconnects — backing off from
//! one second to thirty between attempts — while callers keep getting that error without
//! waiting: it drops the session, re-initializes the library (SoftHSM rescans its tokens
//! only then), logs in again, and the next signature is checked as every one is. A refused
//! PIN is never retried, and a PIN with one try left is not tried: tokens lock a PIN after a
//! few wrong tries.
//!
//! The crate's only foreign code is the module itself, reached through `cryptoki`: nothing
//! here is `unsafe`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use rcgen::SignatureAlgorithm;

use crate::signer::CaKey;
use crate::{CaError, MasterKey};

/// The DER of the OID prime256v1, as `CKA_EC_PARAMS` names the curve.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

/// How long a caller waits for the token's lock before giving up (another caller holds it
/// while the token is slow to answer).
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Sessions besides the main one that sign in parallel (the machines fleetca runs on have a
/// few cores; SoftHSM signs on the calling thread).
const SIGNING_SESSIONS: usize = 2;

/// The longest pause between two attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long a successful check of the key stands for readiness.
const CHECK_FOR: Duration = Duration::from_secs(1);

/// Where a token is and how to log in to it.
#[derive(Clone)]
pub struct TokenConfig {
    /// The PKCS#11 module (a shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The user PIN (read from the environment or a file by the caller; never a flag).
    pub pin: String,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("module", &self.module)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// A key pair in the token, as `fleetca ca token` lists it.
#[derive(Clone, Debug)]
pub struct TokenKey {
    /// `CKA_LABEL`.
    pub label: String,
    /// `CKA_ID`, hex.
    pub id: String,
    /// `EC P-256`, or the key type the token reports.
    pub kind: String,
    /// The key can leave the token (`CKA_EXTRACTABLE`); fleetca's keys cannot.
    pub extractable: bool,
    /// It never could (`CKA_NEVER_EXTRACTABLE`).
    pub never_extractable: bool,
    /// The public key's uncompressed point, for a P-256 key.
    pub public_key: Option<Vec<u8>>,
}

/// A logged-in session and the keys found in it, by label.
struct Live {
    session: Session,
    keys: HashMap<String, (ObjectHandle, Vec<u8>)>,
    /// Sessions of the same login that sign in parallel, until [`Token::install`] moves them
    /// to the [`Signers`].
    extra: Vec<Session>,
}

/// The signing sessions and the key handles they sign with (a token object's handle is the
/// same in every session of the application, PKCS#11 §2.4; a wrong one fails, and the main
/// session signs).
#[derive(Default)]
struct Signers {
    idle: Mutex<Vec<Session>>,
    keys: HashMap<String, (ObjectHandle, Vec<u8>)>,
}

#[derive(Default)]
struct State {
    live: Option<Live>,
    /// A reconnection is running on its own thread.
    reconnecting: bool,
    /// Failed reconnections in a row, for the back-off.
    failures: u32,
    /// When the next reconnection may start.
    next_attempt: Option<Instant>,
    /// Why a login was refused: not retried.
    refused: Option<String>,
    /// Why the token last failed.
    last_error: Option<String>,
    /// When the key last answered a check.
    checked_at: Option<Instant>,
}

/// A PKCS#11 token, open and logged in.
pub struct Token {
    config: TokenConfig,
    context: Pkcs11,
    state: Mutex<State>,
    /// Whether the token answered last time (read by a readiness probe that finds the lock
    /// held).
    healthy: std::sync::atomic::AtomicBool,
    /// Held shared while a signing session signs, exclusively to replace or close them (the
    /// lock order: `state`, then `signers`; a signer holding `signers` never takes `state`).
    signers: std::sync::RwLock<Signers>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Loads the module, finds the token by its label and logs in. The error names the
    /// module and the slots it has when the token is not among them.
    pub fn open(config: TokenConfig) -> Result<Arc<Self>, CaError> {
        let context = Pkcs11::new(&config.module).map_err(|e| {
            CaError::KeyUnavailable(format!(
                "the PKCS#11 module {} could not be loaded: {e}",
                config.module.display()
            ))
        })?;
        initialize(&context).map_err(|e| unavailable(&config, "initialize", &e))?;
        let live = connect(&context, &config)?;
        let token = Arc::new(Self {
            config,
            context,
            state: Mutex::new(State::default()),
            healthy: std::sync::atomic::AtomicBool::new(true),
            signers: std::sync::RwLock::new(Signers::default()),
        });
        {
            let mut state = token.lock()?;
            token.install(&mut state, live);
        }
        Ok(token)
    }

    /// Makes `live` the session, its extra sessions the signing ones.
    fn install(&self, state: &mut MutexGuard<'_, State>, mut live: Live) {
        let extra = std::mem::take(&mut live.extra);
        let mut signers = self.signers.write().unwrap_or_else(|e| e.into_inner());
        *signers.idle.get_mut().unwrap_or_else(|e| e.into_inner()) = extra;
        signers.keys.clone_from(&live.keys);
        state.live = Some(live);
    }

    /// Closes the signing sessions once the signatures in flight are made: before the
    /// library is finalized, after which their handle numbers could name new sessions.
    fn close_signers(&self) {
        let mut signers = self.signers.write().unwrap_or_else(|e| e.into_inner());
        signers.idle.get_mut().unwrap_or_else(|e| e.into_inner()).clear();
        signers.keys.clear();
    }

    /// Lets the signing sessions sign with the key labelled `label` (found by the main one).
    fn share_key(&self, label: &str, key: &(ObjectHandle, Vec<u8>)) {
        let known = self
            .signers
            .read()
            .map(|s| s.keys.get(label) == Some(key))
            .unwrap_or(true);
        if !known && let Ok(mut signers) = self.signers.write() {
            signers.keys.insert(label.to_owned(), key.clone());
        }
    }

    /// Signs in an idle signing session, without the main lock. None when none is idle, the
    /// key is not known to them yet or the session failed (it is closed; the main session
    /// then signs, and a failure there starts the recovery).
    fn sign_in_parallel(&self, label: &str, public: &[u8], digest: &[u8]) -> Option<Vec<u8>> {
        // Never waits: while a recovery closes the sessions, the main session's lock (which
        // gives up after LOCK_WAIT) decides.
        let signers = self.signers.try_read().ok()?;
        let (handle, point) = signers.keys.get(label)?;
        if point != public {
            return None;
        }
        let session = signers.idle.lock().ok()?.pop()?;
        match session.sign(&Mechanism::Ecdsa, *handle, digest) {
            Ok(signed) => {
                if let Ok(mut idle) = signers.idle.lock() {
                    idle.push(session);
                }
                Some(signed)
            }
            // Closed; the main session signs, and a failure there is the token's (reported,
            // and the recovery opens the signing sessions again).
            Err(_) => None,
        }
    }

    /// The module and token, for messages.
    pub fn describe(&self) -> String {
        format!(
            "token {:?} of the PKCS#11 module {}",
            self.config.token,
            self.config.module.display()
        )
    }

    /// The token's label.
    pub fn label(&self) -> &str {
        &self.config.token
    }

    /// The P-256 key pair labelled `label`; made in the token when it has none and `create`
    /// (the private key sensitive and never extractable, usable only to sign). Returns the
    /// key and whether it was made now. Refused when several key pairs share the label, or
    /// the one there is not a P-256 key.
    pub fn key(self: &Arc<Self>, label: &str, create: bool) -> Result<(TokenKeyHandle, bool), CaError> {
        let mut state = self.lock()?;
        let live = self.live(&mut state)?;
        let found = find_pair(&live.session, label).map_err(|e| unavailable(&self.config, "find the key", &e))?;
        let (private, public, made) = match (found.0.as_slice(), found.1.as_slice()) {
            ([private], [public]) => (*private, *public, false),
            ([], []) if create => {
                let (public, private) =
                    generate(&live.session, label).map_err(|e| unavailable(&self.config, "generate the key", &e))?;
                (private, public, true)
            }
            ([], []) => {
                return Err(CaError::InvalidKey(format!(
                    "{} holds no key pair labelled {label:?}",
                    self.describe()
                )));
            }
            (privates, publics) => {
                return Err(CaError::InvalidKey(format!(
                    "{} holds {} private and {} public EC keys labelled {label:?}: one of each is needed; give another label",
                    self.describe(),
                    privates.len(),
                    publics.len()
                )));
            }
        };
        let point = ec_point(&live.session, public)
            .map_err(|e| unavailable(&self.config, "read the public key", &e))?
            .ok_or_else(|| CaError::InvalidKey(format!("the key labelled {label:?} is not a P-256 key")))?;
        live.keys.insert(label.to_owned(), (private, point.clone()));
        self.share_key(label, &(private, point.clone()));
        Ok((
            TokenKeyHandle {
                token: self.clone(),
                label: label.to_owned(),
                public: point,
            },
            made,
        ))
    }

    /// Every key pair in the token (its private half), with what fleetca needs to know of it.
    pub fn keys(&self) -> Result<Vec<TokenKey>, CaError> {
        let mut state = self.lock()?;
        let live = self.live(&mut state)?;
        let fail = |e: P11Error| unavailable(&self.config, "list the keys", &e);
        let privates = live
            .session
            .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
            .map_err(fail)?;
        let mut out = Vec::with_capacity(privates.len());
        for handle in privates {
            let attributes = live
                .session
                .get_attributes(
                    handle,
                    &[
                        AttributeType::Label,
                        AttributeType::Id,
                        AttributeType::KeyType,
                        AttributeType::Extractable,
                        AttributeType::NeverExtractable,
                    ],
                )
                .map_err(fail)?;
            let mut key = TokenKey {
                label: String::new(),
                id: String::new(),
                kind: String::new(),
                extractable: false,
                never_extractable: false,
                public_key: None,
            };
            for attribute in attributes {
                match attribute {
                    Attribute::Label(v) => key.label = String::from_utf8_lossy(&v).into_owned(),
                    Attribute::Id(v) => key.id = hex::encode(v),
                    Attribute::KeyType(t) => key.kind = if t == KeyType::EC { "EC".into() } else { t.to_string() },
                    Attribute::Extractable(b) => key.extractable = b,
                    Attribute::NeverExtractable(b) => key.never_extractable = b,
                    _ => {}
                }
            }
            if key.kind == "EC"
                && let (_, publics) = find_pair(&live.session, &key.label).map_err(fail)?
                && let [public] = publics.as_slice()
            {
                let public = *public;
                key.public_key = ec_point(&live.session, public).map_err(fail)?;
                if key.public_key.is_some() {
                    key.kind = "EC P-256".into();
                }
            }
            out.push(key);
        }
        out.sort_by(|a, b| a.label.cmp(&b.label));
        Ok(out)
    }

    /// Signs `digest` (SHA-256) with the key labelled `label`, which must still have the
    /// public key `public`; the signature as the token gives it (`r‖s`). While the token is
    /// away this fails at once, and a reconnection runs on its own thread.
    fn sign_digest(self: &Arc<Self>, label: &str, public: &[u8], digest: &[u8]) -> Result<Vec<u8>, CaError> {
        if let Some(signature) = self.sign_in_parallel(label, public, digest) {
            return Ok(signature);
        }
        let mut state = self.lock_for(LOCK_WAIT)?;
        let Some(live) = state.live.as_mut() else {
            return Err(self.away(&mut state));
        };
        match sign_in(live, label, public, digest) {
            Ok(signature) => {
                if let Some(key) = live.keys.get(label) {
                    self.share_key(label, key);
                }
                Ok(signature)
            }
            Err(failure) => Err(self.failed(&mut state, label, failure)),
        }
    }

    /// Whether the key labelled `label` answers now: the private key's `CKA_SIGN` read (no
    /// signature made), at most once a [`CHECK_FOR`]; the last answer when the token is busy.
    fn check(self: &Arc<Self>, label: &str, public: &[u8]) -> Result<(), CaError> {
        use std::sync::atomic::Ordering;
        let mut state = match self.state.try_lock() {
            Ok(state) => state,
            Err(std::sync::TryLockError::WouldBlock) => {
                return if self.healthy.load(Ordering::Relaxed) {
                    Ok(())
                } else {
                    Err(CaError::KeyUnavailable(format!("{} is unavailable", self.describe())))
                };
            }
            Err(std::sync::TryLockError::Poisoned(_)) => {
                return Err(CaError::KeyUnavailable("the token's lock was poisoned".into()));
            }
        };
        if state.checked_at.is_some_and(|at| at.elapsed() < CHECK_FOR) && state.live.is_some() {
            return Ok(());
        }
        let Some(live) = state.live.as_mut() else {
            return Err(self.away(&mut state));
        };
        match probe(live, label, public) {
            Ok(()) => {
                state.checked_at = Some(Instant::now());
                self.healthy.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(failure) => Err(self.failed(&mut state, label, failure)),
        }
    }

    /// The error for a call made while the token is away; starts a reconnection when one is
    /// due.
    fn away(self: &Arc<Self>, state: &mut MutexGuard<'_, State>) -> CaError {
        self.schedule(state);
        let why = state
            .refused
            .clone()
            .or_else(|| state.last_error.clone())
            .unwrap_or_else(|| "reconnecting".into());
        CaError::KeyUnavailable(format!("{} is unavailable: {why}", self.describe()))
    }

    /// Records a failure: a token error drops the session (a reconnection follows); a key
    /// that is no longer the CA's keeps the session and forgets the key's handle.
    fn failed(self: &Arc<Self>, state: &mut MutexGuard<'_, State>, label: &str, failure: Failure) -> CaError {
        self.healthy.store(false, std::sync::atomic::Ordering::Relaxed);
        state.checked_at = None;
        let error = match failure {
            Failure::Replaced => {
                if let Some(live) = state.live.as_mut() {
                    live.keys.remove(label);
                }
                if let Ok(mut signers) = self.signers.write() {
                    signers.keys.remove(label);
                }
                CaError::KeyUnavailable(format!(
                    "{} no longer holds the CA's key under the label {label:?} (another key has the label, or none)",
                    self.describe()
                ))
            }
            Failure::Token(what, e) => {
                state.live = None;
                self.close_signers();
                self.schedule(state);
                unavailable(&self.config, what, &e)
            }
        };
        state.last_error = Some(error.to_string());
        error
    }

    /// Starts a reconnection on its own thread unless one runs, the last failed too recently
    /// (back-off), or the PIN was refused.
    fn schedule(self: &Arc<Self>, state: &mut MutexGuard<'_, State>) {
        let due = state.next_attempt.is_none_or(|at| Instant::now() >= at);
        if state.reconnecting || state.refused.is_some() || !due {
            return;
        }
        state.reconnecting = true;
        let token = self.clone();
        let started = std::thread::Builder::new()
            .name("pkcs11-reconnect".into())
            .spawn(move || token.reconnect());
        if started.is_err() {
            state.reconnecting = false;
        }
    }

    /// Re-initializes the library and logs in again (on the reconnection's thread; nobody
    /// signs meanwhile: the session is gone).
    fn reconnect(&self) {
        // The old session was dropped with the failure, before the library is re-initialized:
        // closed after, its handle number could belong to a new session.
        self.close_signers();
        let _ = self.context.clone().finalize();
        let reconnected = initialize(&self.context)
            .map_err(|e| unavailable(&self.config, "initialize", &e))
            .and_then(|()| connect(&self.context, &self.config));
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.reconnecting = false;
        match reconnected {
            Ok(live) => {
                self.install(&mut state, live);
                state.failures = 0;
                state.next_attempt = None;
                state.last_error = None;
                self.healthy.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => {
                if let CaError::InvalidKey(why) = &e {
                    state.refused = Some(why.clone());
                }
                state.failures = state.failures.saturating_add(1);
                let pause = Duration::from_secs(1u64 << state.failures.min(5)).min(MAX_BACKOFF);
                state.next_attempt = Some(Instant::now() + pause);
                state.last_error = Some(e.to_string());
            }
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, CaError> {
        self.lock_for(LOCK_WAIT)
    }

    /// The lock, waited for at most `wait`.
    fn lock_for(&self, wait: Duration) -> Result<MutexGuard<'_, State>, CaError> {
        let deadline = Instant::now() + wait;
        loop {
            match self.state.try_lock() {
                Ok(state) => return Ok(state),
                Err(std::sync::TryLockError::Poisoned(_)) => {
                    return Err(CaError::KeyUnavailable("the token's lock was poisoned".into()));
                }
                Err(std::sync::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(std::sync::TryLockError::WouldBlock) => {
                    return Err(CaError::KeyUnavailable(format!(
                        "{} did not answer within {wait:?}",
                        self.describe()
                    )));
                }
            }
        }
    }

    /// The live session for an operator's command (finding or making a key, listing them):
    /// reconnects on this thread when the session is gone and no reconnection runs.
    fn live<'a>(&self, state: &'a mut MutexGuard<'_, State>) -> Result<&'a mut Live, CaError> {
        if let Some(why) = &state.refused {
            return Err(CaError::KeyUnavailable(why.clone()));
        }
        if state.live.is_none() {
            if state.reconnecting {
                return Err(CaError::KeyUnavailable(format!(
                    "{} is unavailable; reconnecting",
                    self.describe()
                )));
            }
            self.close_signers();
            let _ = self.context.clone().finalize();
            let live = initialize(&self.context)
                .map_err(|e| unavailable(&self.config, "initialize", &e))
                .and_then(|()| connect(&self.context, &self.config))?;
            self.install(state, live);
        }
        state
            .live
            .as_mut()
            .ok_or_else(|| CaError::KeyUnavailable("no session".into()))
    }
}

/// A CA key held in a [`Token`].
pub struct TokenKeyHandle {
    token: Arc<Token>,
    label: String,
    public: Vec<u8>,
}

impl CaKey for TokenKeyHandle {
    fn public_key_raw(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        let digest = ring::digest::digest(&ring::digest::SHA256, message);
        let raw = Token::sign_digest(&self.token, &self.label, &self.public, digest.as_ref())?;
        // The signature must verify under the CA's public key: a key swapped under the label,
        // or a token that answers wrongly, never signs for the CA.
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &self.public)
            .verify(message, &raw)
            .map_err(|_| {
                CaError::KeyUnavailable(format!(
                    "{} signed with another key than the CA's under the label {:?}",
                    self.token.describe(),
                    self.label
                ))
            })?;
        let signature = p256::ecdsa::Signature::from_slice(&raw)
            .map_err(|_| CaError::Signing("the token's signature is not a P-256 r‖s pair".into()))?;
        Ok(signature.to_der().as_bytes().to_vec())
    }

    fn sealed(&self, _: &MasterKey) -> Option<Result<Vec<u8>, CaError>> {
        None
    }

    fn available(&self) -> Result<(), CaError> {
        Token::check(&self.token, &self.label, &self.public)
    }

    fn token_label(&self) -> Option<(&str, &str)> {
        Some((self.token.label(), &self.label))
    }
}

fn initialize(context: &Pkcs11) -> Result<(), P11Error> {
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
        other => other,
    }
}

fn unavailable(config: &TokenConfig, what: &str, e: &P11Error) -> CaError {
    CaError::KeyUnavailable(format!(
        "token {:?} of the PKCS#11 module {} failed to {what}: {e}",
        config.token,
        config.module.display()
    ))
}

/// Why a signature was not made.
enum Failure {
    /// The token failed at this step: the session is dropped, and the next use reconnects.
    Token(&'static str, P11Error),
    /// The label names no key now, or another one.
    Replaced,
}

/// Signs in the live session, finding the key again after a recovery (and signing only if
/// it is the same key).
fn sign_in(live: &mut Live, label: &str, public: &[u8], digest: &[u8]) -> Result<Vec<u8>, Failure> {
    let handle = match live.keys.get(label) {
        Some((handle, point)) if point == public => *handle,
        Some(_) => return Err(Failure::Replaced),
        None => refind(live, label, public)?,
    };
    live.session
        .sign(&Mechanism::Ecdsa, handle, digest)
        .map_err(|e| Failure::Token("sign", e))
}

/// Finds the key labelled `label` again (after a recovery), if it is still the CA's.
fn refind(live: &mut Live, label: &str, public: &[u8]) -> Result<ObjectHandle, Failure> {
    let (privates, publics) = find_pair(&live.session, label).map_err(|e| Failure::Token("find the key", e))?;
    let ([private], [pubkey]) = (privates.as_slice(), publics.as_slice()) else {
        return Err(Failure::Replaced);
    };
    let point = ec_point(&live.session, *pubkey).map_err(|e| Failure::Token("read the key", e))?;
    if point.as_deref() != Some(public) {
        return Err(Failure::Replaced);
    }
    live.keys.insert(label.to_owned(), (*private, public.to_vec()));
    Ok(*private)
}

/// Reads the private key's `CKA_SIGN`: fails when the token or the key is gone.
fn probe(live: &mut Live, label: &str, public: &[u8]) -> Result<(), Failure> {
    let handle = match live.keys.get(label) {
        Some((handle, point)) if point == public => *handle,
        Some(_) => return Err(Failure::Replaced),
        None => refind(live, label, public)?,
    };
    match live.session.get_attributes(handle, &[AttributeType::Sign]) {
        Ok(attributes) if attributes.contains(&Attribute::Sign(true)) => Ok(()),
        Ok(_) => Err(Failure::Replaced),
        Err(e) => Err(Failure::Token("read the key", e)),
    }
}

/// Finds the slot by the token's label, opens a session and logs in. A refused PIN is
/// [`CaError::InvalidKey`] (settings to fix, never retried); the rest are unavailability.
fn connect(context: &Pkcs11, config: &TokenConfig) -> Result<Live, CaError> {
    let slot = slot(context, config)?;
    let session = context
        .open_rw_session(slot)
        .map_err(|e| unavailable(config, &format!("open a session in slot {}", slot.id()), &e))?;
    // A PIN that is locked, or has one try left, is not tried: a wrong one would lock it.
    if let Ok(info) = context.get_token_info(slot)
        && (info.user_pin_locked() || info.user_pin_final_try())
    {
        return Err(CaError::InvalidKey(format!(
            "token {:?} (slot {}) of the PKCS#11 module {}: its user PIN is {}; not tried (reset it with the token's SO PIN)",
            config.token,
            slot.id(),
            config.module.display(),
            if info.user_pin_locked() {
                "locked"
            } else {
                "on its final try"
            }
        )));
    }
    let pin = AuthPin::new(config.pin.clone().into_boxed_str());
    match session.login(UserType::User, Some(&pin)) {
        Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(
            e @ P11Error::Pkcs11(
                RvError::PinIncorrect
                | RvError::PinInvalid
                | RvError::PinLenRange
                | RvError::PinLocked
                | RvError::PinExpired
                | RvError::UserPinNotInitialized,
                _,
            ),
        ) => {
            return Err(CaError::InvalidKey(format!(
                "token {:?} (slot {}) of the PKCS#11 module {} refused the PIN: {e}; fix the PIN (it is not tried again)",
                config.token,
                slot.id(),
                config.module.display()
            )));
        }
        Err(e) => return Err(unavailable(config, &format!("log in to slot {}", slot.id()), &e)),
    }
    // Sessions of the same login that sign in parallel (fewer when the token refuses more).
    let extra = (0..SIGNING_SESSIONS)
        .map_while(|_| context.open_ro_session(slot).ok())
        .collect();
    Ok(Live {
        session,
        keys: HashMap::new(),
        extra,
    })
}

fn slot(context: &Pkcs11, config: &TokenConfig) -> Result<Slot, CaError> {
    let slots = context
        .get_slots_with_token()
        .map_err(|e| unavailable(config, "list its slots", &e))?;
    let mut seen = Vec::new();
    for slot in slots {
        let label = context
            .get_token_info(slot)
            .map(|i| i.label().to_owned())
            .unwrap_or_default();
        if label == config.token {
            return Ok(slot);
        }
        seen.push(format!("{} {label:?}", slot.id()));
    }
    Err(CaError::KeyUnavailable(format!(
        "the PKCS#11 module {} has no token labelled {:?} (slots with a token: {})",
        config.module.display(),
        config.token,
        if seen.is_empty() {
            "none".into()
        } else {
            seen.join(", ")
        }
    )))
}

/// The private and public EC keys labelled `label`.
fn find_pair(session: &Session, label: &str) -> Result<(Vec<ObjectHandle>, Vec<ObjectHandle>), P11Error> {
    let find = |class| {
        session.find_objects(&[
            Attribute::Class(class),
            Attribute::KeyType(KeyType::EC),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
    };
    Ok((find(ObjectClass::PRIVATE_KEY)?, find(ObjectClass::PUBLIC_KEY)?))
}

/// Makes a P-256 key pair in the token: the private key sensitive, never extractable, and
/// usable only to sign.
fn generate(session: &Session, label: &str) -> Result<(ObjectHandle, ObjectHandle), P11Error> {
    let mut id = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id).map_err(|_| P11Error::NotSupported)?;
    let name = label.as_bytes().to_vec();
    let public = [
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::KeyType(KeyType::EC),
        Attribute::Verify(true),
        Attribute::EcParams(P256_PARAMS.to_vec()),
        Attribute::Label(name.clone()),
        Attribute::Id(id.to_vec()),
    ];
    let private = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Derive(false),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::KeyType(KeyType::EC),
        Attribute::Label(name),
        Attribute::Id(id.to_vec()),
    ];
    session.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
}

/// The uncompressed P-256 point of a public key: `CKA_EC_POINT` is a DER OCTET STRING
/// around it (PKCS#11 2.40), or the bare point on some tokens. `None` for another curve.
fn ec_point(session: &Session, public: ObjectHandle) -> Result<Option<Vec<u8>>, P11Error> {
    let attributes = session.get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])?;
    let mut params = None;
    let mut point = None;
    for attribute in attributes {
        match attribute {
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            _ => {}
        }
    }
    if params.as_deref() != Some(&P256_PARAMS[..]) {
        return Ok(None);
    }
    Ok(point.and_then(|p| match p.as_slice() {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 && rest.first() == Some(&0x04) => Some(rest.to_vec()),
        [0x04, ..] if p.len() == 65 => Some(p),
        _ => None,
    }))
}
