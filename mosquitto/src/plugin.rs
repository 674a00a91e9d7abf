//! The plugin's decisions, with no FFI: what a login, an ACL check, a tick and a disconnect
//! do, on plain Rust values. [`crate::ffi`] calls these from mosquitto's callbacks (all on the
//! broker's one thread); the feed thread calls [`Plugin::apply`].

use std::collections::HashMap;
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
}

struct Pending {
    client_id: String,
    message: Message,
    until: Instant,
}

struct State {
    logins: Cache<[u8; 32], Granted>,
    acls: Cache<String, bool>,
    clients: HashMap<ClientRef, Client>,
    kicks: Vec<String>,
    outbox: Vec<Pending>,
    log: Vec<(Level, String)>,
    /// The feed answered its last poll: a cached login may be trusted.
    feed_live: bool,
    /// Bumped whenever decisions are dropped: a decision asked for before is not cached.
    generation: u64,
}

/// How many decisions of each kind are kept.
const CAPACITY: usize = 200_000;
/// How long an activation message waits for its client.
const HOLD: Duration = Duration::from_secs(30);

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
        let generation = {
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
        let pem = certificate.map(pem);
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
        if self.config.cache && state.generation == generation && messages.is_empty() {
            state.logins.insert(key, granted.clone(), granted.tags.clone());
        }
        admit(&mut state, client, client_id, username, &granted, certificate.is_some());
        let until = Instant::now() + HOLD;
        for message in messages {
            state.outbox.push(Pending {
                client_id: client_id.to_owned(),
                message,
                until,
            });
        }
        Login::Allow {
            username: granted.username,
        }
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
        let known = self.state().clients.get(&client).map(|c| c.username.clone());
        let user = match known {
            Some(u) => u,
            None => {
                let Some(der) = certificate() else {
                    return Acl::Defer;
                };
                match self.login(client, client_id, username.unwrap_or_default(), "", Some(&der)) {
                    Login::Allow { username: given } => given.or(username.map(str::to_owned)).unwrap_or_default(),
                    Login::Deny => {
                        self.state().kicks.push(client_id.to_owned());
                        return Acl::Deny;
                    }
                    Login::Defer => return Acl::Defer,
                }
            }
        };
        let key = format!("{access}\0{user}\0{client_id}\0{topic}");
        let generation = {
            let state = self.state();
            if self.config.cache
                && let Some(allowed) = state.acls.get(&key)
            {
                return if allowed { Acl::Allow } else { Acl::Deny };
            }
            state.generation
        };
        let verdict = self.fleetca.acl(&user, client_id, topic, access);
        let allowed = match verdict {
            Verdict::Allow => true,
            Verdict::Deny => false,
            Verdict::Unknown => return Acl::Deny,
        };
        let mut state = self.state();
        if self.config.cache && state.generation == generation {
            let tags = state
                .clients
                .get(&client)
                .map(|c| c.tags.clone())
                .unwrap_or_else(|| Arc::from(Vec::new()));
            state.acls.insert(key, allowed, tags);
        }
        if allowed { Acl::Allow } else { Acl::Deny }
    }

    /// `MOSQ_EVT_DISCONNECT`.
    pub fn disconnected(&self, client: ClientRef) {
        self.state().clients.remove(&client);
    }

    /// `MOSQ_EVT_TICK`: what the broker's thread must do now.
    pub fn tick(&self) -> Work {
        let mut state = self.state();
        let now = Instant::now();
        let mut messages = Vec::new();
        let connected: Vec<String> = if state.outbox.is_empty() {
            Vec::new()
        } else {
            state.clients.values().map(|c| c.client_id.clone()).collect()
        };
        state.outbox.retain(|p| {
            if connected.contains(&p.client_id) {
                messages.push((
                    p.client_id.clone(),
                    p.message.topic.clone(),
                    p.message.payload.clone().into_bytes(),
                ));
                false
            } else {
                p.until > now
            }
        });
        Work {
            kicks: std::mem::take(&mut state.kicks),
            messages,
            log: std::mem::take(&mut state.log),
        }
    }

    /// The feed answered: `reset` (events were missed) forgets every decision.
    pub fn apply(&self, reset: bool, events: &[Event]) {
        let mut state = self.state();
        state.feed_live = true;
        if reset {
            state.logins.clear();
            state.acls.clear();
            state.generation += 1;
        }
        for event in events {
            let (tags, cut) = match event {
                Event::Drop { tags } => (tags, None),
                Event::Cut { tags, scope } => (tags, Some(*scope)),
            };
            state.logins.drop_tags(tags);
            state.acls.drop_tags(tags);
            state.generation += 1;
            if let Some(scope) = cut {
                let ended: Vec<String> = state
                    .clients
                    .values()
                    .filter(|c| c.tags.iter().any(|t| tags.contains(t)))
                    .filter(|c| match scope {
                        Scope::All => true,
                        Scope::Password => !c.certificate,
                        Scope::Certificate => c.certificate,
                    })
                    .map(|c| c.client_id.clone())
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

    /// How many logins and topic decisions are cached.
    pub fn cached(&self) -> (usize, usize) {
        let state = self.state();
        (state.logins.len(), state.acls.len())
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
        p.apply(
            false,
            &[Event::Cut {
                tags: vec!["cert:f".into()],
                scope: Scope::Certificate,
            }],
        );
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
    fn an_activation_message_waits_for_its_client() {
        let p = plugin();
        p.state().outbox.push(Pending {
            client_id: "dev".into(),
            message: Message {
                topic: "t".into(),
                payload: "{}".into(),
            },
            until: Instant::now() + HOLD,
        });
        assert!(p.tick().messages.is_empty());
        admit_one(&p, 7, "dev", &[], false);
        assert_eq!(p.tick().messages, vec![("dev".into(), "t".into(), b"{}".to_vec())]);
        assert!(p.tick().messages.is_empty(), "sent once");
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
