//! The plugin's decisions, with no FFI: what a login, an ACL check, a tick and a disconnect
//! do, on plain Rust values. [`crate::ffi`] calls these from mosquitto's callbacks (all on the
//! broker's one thread); the feed thread calls [`Plugin::apply`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::cache::Cache;
use crate::config::Config;
use crate::fleetca::{Event, Fleetca, LoginAnswer, Message, Scope, Verdict};

/// A client of the broker while it is connected: the address of mosquitto's `struct
/// mosquitto`, which does not move while the client lives.
pub type ClientRef = usize;

/// mosquitto's ACL access bits (checked against its header by `build.rs`).
pub mod access {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const SUBSCRIBE: i32 = 4;
    pub const UNSUBSCRIBE: i32 = 8;
}

/// A login's outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum Login {
    /// Admitted; the session takes this username when one is given (a certificate's CN).
    Allow {
        username: Option<String>,
    },
    Deny,
    /// Not a kind of login this plugin answers for.
    Defer,
}

/// An ACL check's outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum Acl {
    Allow,
    Deny,
    Defer,
}

/// How loud a line of the plugin's log is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
}

/// What the broker's thread does at a tick.
#[derive(Debug, Default)]
pub struct Work {
    /// Client ids to disconnect.
    pub kicks: Vec<String>,
    /// (client id, topic, payload) to deliver to that client alone.
    pub messages: Vec<(String, String, Vec<u8>)>,
    pub log: Vec<(Level, String)>,
    /// fleetca wrote its CRL file: mosquitto re-reads it (`SIGHUP` to itself).
    pub reload: bool,
}

#[derive(Clone)]
struct Granted {
    username: Option<String>,
    tags: Arc<[String]>,
}

struct Client {
    client_id: String,
    username: String,
    tags: Arc<[String]>,
    certificate: bool,
    /// Refused at its first topic (a `use_identity_as_username` listener): kicked at the next
    /// tick, every topic denied until then.
    refused: bool,
}

struct Pending {
    /// The client that logged in: the message goes to that very session, never to another
    /// that takes its client id over.
    client: ClientRef,
    message: Message,
    until: Instant,
}

struct State {
    logins: Cache<[u8; 32], Granted>,
    acls: Cache<String, bool>,
    clients: HashMap<ClientRef, Client>,
    kicks: Vec<ClientRef>,
    outbox: Vec<Pending>,
    log: Vec<(Level, String)>,
    /// The feed answered its last poll: a cached login may be trusted.
    feed_live: bool,
    /// Bumped by every change the feed brings.
    generation: u64,
    /// The last changes, by generation: their tags, or `None` for a reset (every tag).
    changes: VecDeque<(u64, Option<Vec<String>>)>,
    /// A CRL reload is wanted.
    reload: bool,
    /// When mosquitto last reloaded for one: at most one reload per [`RELOAD_EVERY`].
    reloaded: Option<Instant>,
    /// When the broker last ticked: without ticks (`per_listener_settings true`) nothing
    /// can be kicked, so the plugin stops following the feed and fleetca sees no follower.
    last_tick: Instant,
}

impl State {
    /// Whether to reload now: one was wanted, and the last was long enough ago (a burst of
    /// revocations makes one reload, after the burst's first, not one per CRL written).
    fn reload_due(&mut self, now: Instant) -> bool {
        if !self.reload || self.reloaded.is_some_and(|t| now.duration_since(t) < RELOAD_EVERY) {
            return false;
        }
        self.reload = false;
        self.reloaded = Some(now);
        true
    }

    fn changed(&mut self, tags: Option<Vec<String>>) {
        self.generation += 1;
        self.changes.push_back((self.generation, tags));
        while self.changes.len() > CHANGES {
            self.changes.pop_front();
        }
    }

    /// Whether a change since generation `since` touched any of `tags` (or cannot be told).
    fn touched_since(&self, since: u64, tags: &[String]) -> bool {
        if self.generation == since {
            return false;
        }
        if self.changes.front().is_none_or(|(g, _)| *g > since + 1) {
            return true;
        }
        self.changes
            .iter()
            .filter(|(g, _)| *g > since)
            .any(|(_, changed)| changed.as_ref().is_none_or(|c| c.iter().any(|t| tags.contains(t))))
    }
}

/// How many decisions of each kind are kept.
const CAPACITY: usize = 200_000;
/// How many recent changes are remembered, to tell whether one touched an answer in flight.
const CHANGES: usize = 4096;
/// How long an activation message waits for its client.
const HOLD: Duration = Duration::from_secs(30);
/// How often a decision is asked again when changes to its tags keep arriving meanwhile.
const ASKS: usize = 3;
/// The least time between two CRL reloads.
const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// Without a tick for this long, the broker cannot act on the feed.
pub const NO_TICKS: Duration = Duration::from_secs(3);

/// The plugin.
pub struct Plugin {
    pub config: Config,
    pub fleetca: Fleetca,
    /// Keys the login cache: no password is kept, only a keyed hash with a random key.
    key: [u8; 32],
    state: Mutex<State>,
}

impl Plugin {
    pub fn new(config: Config) -> Result<Self, String> {
        let mut key = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key))
            .map_err(|e| format!("/dev/urandom: {e}"))?;
        Ok(Self {
            fleetca: Fleetca::new(&config),
            config,
            key,
            state: Mutex::new(State {
                logins: Cache::new(CAPACITY),
                acls: Cache::new(CAPACITY),
                clients: HashMap::new(),
                kicks: Vec::new(),
                outbox: Vec::new(),
                log: Vec::new(),
                feed_live: false,
                generation: 0,
                changes: VecDeque::new(),
                reload: false,
                reloaded: None,
                last_tick: Instant::now(),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a line for the broker's log (written at the next tick, on its thread).
    pub fn log(&self, level: Level, line: String) {
        let mut state = self.state();
        if state.log.len() < 1000 {
            state.log.push((level, line));
        }
    }

    fn login_key(&self, username: &str, password: &str, client_id: &str, fingerprint: Option<&[u8]>) -> [u8; 32] {
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.key) else {
            return [0; 32];
        };
        for part in [
            username.as_bytes(),
            password.as_bytes(),
            client_id.as_bytes(),
            fingerprint.unwrap_or(b"-"),
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// `MOSQ_EVT_BASIC_AUTH`: a client connects with a username and password (either may be
    /// missing) and perhaps a certificate (DER).
    pub fn login(
        &self,
        client: ClientRef,
        client_id: &str,
        username: &str,
        password: &str,
        certificate: Option<&[u8]>,
    ) -> Login {
        let logins = self.config.logins;
        if (certificate.is_some() && !logins.certificate) || (certificate.is_none() && !logins.password) {
            return Login::Defer;
        }
        let fingerprint: Option<[u8; 32]> = certificate.map(|der| Sha256::digest(der).into());
        let key = self.login_key(username, password, client_id, fingerprint.as_ref().map(|f| &f[..]));
        let pem = certificate.map(pem);
        for _ in 0..ASKS {
            let asked_at = {
                let mut state = self.state();
                if self.config.cache
                    && state.feed_live
                    && let Some(granted) = state.logins.get(&key)
                {
                    admit(&mut state, client, client_id, username, &granted, certificate.is_some());
                    return Login::Allow {
                        username: granted.username,
                    };
                }
                state.generation
            };
            let answer = match self.fleetca.login(username, password, client_id, pem.as_deref()) {
                Ok(a) => a,
                Err(e) => {
                    self.log(
                        Level::Warning,
                        format!("fleetca_mosquitto: login of client {client_id:?} refused: {e}"),
                    );
                    return Login::Deny;
                }
            };
            let LoginAnswer {
                result,
                username: given,
                tags,
                messages,
                max_age,
            } = answer;
            match result.as_str() {
                "allow" => {}
                "deny" => return Login::Deny,
                _ => {
                    self.log(
                        Level::Warning,
                        format!("fleetca_mosquitto: fleetca could not decide client {client_id:?}'s login; refused"),
                    );
                    return Login::Deny;
                }
            }
            let granted = Granted {
                username: given,
                tags: tags.into(),
            };
            let mut state = self.state();
            if state.touched_since(asked_at, &granted.tags) {
                // A change to this client's credentials arrived while fleetca answered: the
                // answer may predate it (and its cut has already been applied). Ask again.
                continue;
            }
            if self.config.cache && max_age > 0 && messages.is_empty() {
                state
                    .logins
                    .insert(key, granted.clone(), granted.tags.clone(), Duration::from_secs(max_age));
            }
            admit(&mut state, client, client_id, username, &granted, certificate.is_some());
            let until = Instant::now() + HOLD;
            for message in messages {
                state.outbox.push(Pending { client, message, until });
            }
            return Login::Allow {
                username: granted.username,
            };
        }
        Login::Deny
    }

    /// `MOSQ_EVT_ACL_CHECK`. A client the plugin has not seen log in came through a
    /// `use_identity_as_username` listener (mosquitto asks no login there): its certificate
    /// (`certificate()`, DER) is checked with fleetca first, and a refused one is kicked.
    pub fn acl(
        &self,
        client: ClientRef,
        client_id: &str,
        username: Option<&str>,
        topic: &str,
        access: i32,
        certificate: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Acl {
        if access == access::UNSUBSCRIBE {
            return Acl::Allow;
        }
        let known = self
            .state()
            .clients
            .get(&client)
            .map(|c| (c.username.clone(), c.tags.clone(), c.refused));
        let (user, tags) = match known {
            Some((_, _, true)) => return Acl::Deny,
            Some((user, tags, false)) => (user, tags),
            None => {
                let Some(der) = certificate() else {
                    return Acl::Defer;
                };
                match self.login(client, client_id, username.unwrap_or_default(), "", Some(&der)) {
                    Login::Allow { .. } => {
                        let state = self.state();
                        let Some(c) = state.clients.get(&client) else {
                            return Acl::Deny;
                        };
                        (c.username.clone(), c.tags.clone())
                    }
                    Login::Deny => {
                        let mut state = self.state();
                        state.clients.insert(
                            client,
                            Client {
                                client_id: client_id.to_owned(),
                                username: String::new(),
                                tags: Arc::from(Vec::new()),
                                certificate: true,
                                refused: true,
                            },
                        );
                        state.kicks.push(client);
                        return Acl::Deny;
                    }
                    Login::Defer => return Acl::Defer,
                }
            }
        };
        let key = format!("{access}\0{user}\0{client_id}\0{topic}");
        for _ in 0..ASKS {
            let asked_at = {
                let state = self.state();
                if self.config.cache
                    && let Some(allowed) = state.acls.get(&key)
                {
                    return if allowed { Acl::Allow } else { Acl::Deny };
                }
                state.generation
            };
            let allowed = match self.fleetca.acl(&user, client_id, topic, access) {
                Verdict::Allow => true,
                Verdict::Deny => false,
                Verdict::Unknown => return Acl::Deny,
            };
            let mut state = self.state();
            if state.touched_since(asked_at, &tags) {
                continue;
            }
            if self.config.cache {
                state.acls.insert(key, allowed, tags, crate::cache::TTL);
            }
            return if allowed { Acl::Allow } else { Acl::Deny };
        }
        Acl::Deny
    }

    /// `MOSQ_EVT_DISCONNECT`: the client and anything still waiting for it are gone.
    pub fn disconnected(&self, client: ClientRef) {
        let mut state = self.state();
        state.clients.remove(&client);
        state.outbox.retain(|p| p.client != client);
    }

    /// `MOSQ_EVT_TICK`: what the broker's thread must do now. Only clients still connected
    /// are kicked, each once, by the id they have now.
    pub fn tick(&self) -> Work {
        let mut state = self.state();
        let now = Instant::now();
        state.last_tick = now;
        let mut kicks = std::mem::take(&mut state.kicks);
        kicks.sort_unstable();
        kicks.dedup();
        let kicks: Vec<String> = kicks
            .iter()
            .filter_map(|c| state.clients.get(c).map(|c| c.client_id.clone()))
            .collect();
        let mut messages = Vec::new();
        let outbox = std::mem::take(&mut state.outbox);
        for p in outbox {
            match state.clients.get(&p.client) {
                Some(c) if !c.refused => {
                    messages.push((c.client_id.clone(), p.message.topic, p.message.payload.into_bytes()))
                }
                _ if p.until > now => state.outbox.push(p),
                _ => {}
            }
        }
        Work {
            kicks,
            messages,
            log: std::mem::take(&mut state.log),
            reload: self.config.reload && state.reload_due(now),
        }
    }

    /// Whether the broker ticked lately (the feed is followed only then).
    pub fn ticking(&self) -> bool {
        self.state().last_tick.elapsed() < NO_TICKS
    }

    /// The feed answered: `reset` (events were missed) forgets every decision.
    pub fn apply(&self, reset: bool, events: &[Event]) {
        let mut state = self.state();
        state.feed_live = true;
        if reset {
            state.logins.clear();
            state.acls.clear();
            state.changed(None);
            // fleetca (re)started, and wrote its CRL file before this plugin followed it.
            state.reload = true;
        }
        for event in events {
            let (tags, cut) = match event {
                Event::Drop { tags } => (tags, None),
                Event::Cut { tags, scope } => (tags, Some(*scope)),
                Event::Reload => {
                    state.reload = true;
                    continue;
                }
            };
            state.logins.drop_tags(tags);
            state.acls.drop_tags(tags);
            state.changed(Some(tags.clone()));
            if let Some(scope) = cut {
                let ended: Vec<ClientRef> = state
                    .clients
                    .iter()
                    .filter(|(_, c)| c.tags.iter().any(|t| tags.contains(t)))
                    .filter(|(_, c)| match scope {
                        Scope::All => true,
                        Scope::Password => !c.certificate,
                        Scope::Certificate => c.certificate,
                    })
                    .map(|(r, _)| *r)
                    .collect();
                state.kicks.extend(ended);
            }
        }
    }

    /// The feed could not be read: cached logins are not trusted until it answers again
    /// (open sessions keep their cached topic decisions).
    pub fn feed_lost(&self) {
        self.state().feed_live = false;
    }
}

fn admit(state: &mut State, client: ClientRef, client_id: &str, username: &str, granted: &Granted, certificate: bool) {
    state.clients.insert(
        client,
        Client {
            client_id: client_id.to_owned(),
            username: granted.username.clone().unwrap_or_else(|| username.to_owned()),
            tags: granted.tags.clone(),
            certificate,
            refused: false,
        },
    );
}

/// A certificate (DER) as PEM.
fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn plugin() -> Plugin {
        // Nothing listens on port 9 of this host: every question to fleetca fails at once.
        Plugin::new(Config::parse([("url", "http://127.0.0.1:9")]).unwrap()).unwrap()
    }

    fn admit_one(p: &Plugin, client: ClientRef, id: &str, tags: &[&str], certificate: bool) {
        let granted = Granted {
            username: None,
            tags: tags.iter().map(|s| s.to_string()).collect(),
        };
        admit(&mut p.state(), client, id, "u", &granted, certificate);
    }

    #[test]
    fn fleetca_unreachable_refuses_a_login() {
        let p = plugin();
        assert_eq!(p.login(1, "c", "u", "p", None), Login::Deny);
        let work = p.tick();
        assert!(work.log.iter().any(|(_, l)| l.contains("refused")), "{:?}", work.log);
    }

    #[test]
    fn a_cut_kicks_the_sessions_of_its_tags_and_scope() {
        let p = plugin();
        admit_one(&p, 1, "pw", &["user:a"], false);
        admit_one(&p, 2, "cert", &["user:a", "cert:f"], true);
        admit_one(&p, 3, "other", &["user:b"], false);
        p.apply(
            false,
            &[Event::Cut {
                tags: vec!["user:a".into()],
                scope: Scope::Password,
            }],
        );
        assert_eq!(p.tick().kicks, vec!["pw".to_owned()]);
        // Cut twice in one tick (the key and the certificate): kicked once.
        for tag in ["user:a", "cert:f"] {
            p.apply(
                false,
                &[Event::Cut {
                    tags: vec![tag.into()],
                    scope: Scope::Certificate,
                }],
            );
        }
        assert_eq!(p.tick().kicks, vec!["cert".to_owned()]);
        p.disconnected(3);
        p.apply(
            false,
            &[Event::Cut {
                tags: vec!["user:b".into()],
                scope: Scope::All,
            }],
        );
        assert!(p.tick().kicks.is_empty(), "gone already");
    }

    #[test]
    fn an_activation_message_goes_to_the_session_that_logged_in_and_no_other() {
        let p = plugin();
        let message = || Message {
            topic: "t".into(),
            payload: "{}".into(),
        };
        admit_one(&p, 7, "dev", &[], false);
        p.state().outbox.push(Pending {
            client: 7,
            message: message(),
            until: Instant::now() + HOLD,
        });
        assert_eq!(p.tick().messages, vec![("dev".into(), "t".into(), b"{}".to_vec())]);
        assert!(p.tick().messages.is_empty(), "sent once");
        p.state().outbox.push(Pending {
            client: 7,
            message: message(),
            until: Instant::now() + HOLD,
        });
        p.disconnected(7);
        admit_one(&p, 8, "dev", &[], false);
        assert!(
            p.tick().messages.is_empty(),
            "another session with the same client id gets nothing"
        );
    }

    #[test]
    fn crl_reloads_are_asked_for_and_spaced() {
        let mut config = Config::parse([("url", "http://127.0.0.1:9"), ("reload_on_crl", "true")]).unwrap();
        let p = Plugin::new(config.clone()).unwrap();
        p.apply(false, &[Event::Reload]);
        assert!(p.tick().reload);
        p.apply(false, &[Event::Reload]);
        assert!(!p.tick().reload, "within two seconds of the last");
        p.state().reloaded = Some(Instant::now() - RELOAD_EVERY);
        assert!(p.tick().reload, "the one held back");
        config.reload = false;
        let off = Plugin::new(config).unwrap();
        off.apply(true, &[]);
        assert!(!off.tick().reload, "off unless asked for");
    }

    #[test]
    fn a_change_while_an_answer_was_in_flight_is_told_by_its_tags() {
        let p = plugin();
        let before = p.state().generation;
        p.apply(
            false,
            &[Event::Drop {
                tags: vec!["user:a".into()],
            }],
        );
        let state = p.state();
        assert!(state.touched_since(before, &["user:a".to_owned()]));
        assert!(!state.touched_since(before, &["user:b".to_owned()]));
        assert!(!state.touched_since(state.generation, &["user:a".to_owned()]));
    }

    #[test]
    fn unsubscribing_is_always_allowed_and_an_unknown_client_without_a_certificate_is_deferred() {
        let p = plugin();
        assert_eq!(p.acl(1, "c", Some("u"), "t", access::UNSUBSCRIBE, || None), Acl::Allow);
        assert_eq!(p.acl(1, "c", Some("u"), "t", access::WRITE, || None), Acl::Defer);
        admit_one(&p, 1, "c", &[], false);
        assert_eq!(
            p.acl(1, "c", Some("u"), "t", access::WRITE, || None),
            Acl::Deny,
            "fleetca unreachable"
        );
    }

    #[test]
    fn pem_wraps_at_64() {
        let text = pem(&[0u8; 100]);
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(text.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
    }
}
