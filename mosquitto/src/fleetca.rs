//! Asking fleetca: one blocking HTTP/1.1 client with keep-alive for decisions (each bounded
//! by `timeout_ms`) and one for the change feed's long polls.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::config::Config;

/// fleetca's answer to a login.
#[derive(Debug, Deserialize)]
pub struct LoginAnswer {
    pub result: String,
    /// The username the session takes (a certificate's common name).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Messages to hand this client at once (an EnOS activation).
    #[serde(default)]
    pub messages: Vec<Message>,
    /// How long the decision may be cached, in seconds (0: not at all; a password that
    /// carries a timestamp must not outlive fleetca's clock check).
    #[serde(default = "default_max_age")]
    pub max_age: u64,
}

fn default_max_age() -> u64 {
    600
}

/// One message for one client.
#[derive(Debug, Deserialize, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: String,
}

#[derive(Debug, Deserialize)]
struct AclAnswer {
    result: String,
}

/// One answer of the change feed.
#[derive(Debug, Deserialize)]
pub struct Batch {
    pub cursor: String,
    pub reset: bool,
    pub events: Vec<Event>,
}

/// A change (see fleetca's `brokers::feed`).
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Drop {
        tags: Vec<String>,
    },
    Cut {
        tags: Vec<String>,
        scope: Scope,
    },
    /// fleetca wrote its CRL file: the broker should read it again.
    Reload,
}

/// Which sessions of a tag a cut ends.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    All,
    Password,
    Certificate,
}

/// An ACL question's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    /// fleetca could not decide, or could not be reached.
    Unknown,
}

/// How long one poll of the feed waits for a change. Short, so that the plugin's cleanup can
/// wait for the feed's thread (mosquitto unloads the plugin after it); a change still arrives
/// at once, since a waiting poll returns as soon as there is one.
pub const FEED_WAIT: Duration = Duration::from_secs(2);

/// After a request fails to reach fleetca, later ones fail at once for this long, so a
/// storm of logins does not stall the broker's thread for `timeout_ms` each.
const BACK_OFF: Duration = Duration::from_millis(500);

/// The HTTP side.
pub struct Fleetca {
    url: String,
    secret: Option<String>,
    broker: String,
    decisions: ureq::Agent,
    feed: ureq::Agent,
    unreachable_until: Mutex<Option<Instant>>,
}

impl Fleetca {
    pub fn new(config: &Config) -> Self {
        let agent = |timeout: Duration| -> ureq::Agent {
            ureq::Agent::config_builder()
                .timeout_global(Some(timeout))
                .http_status_as_error(false)
                .user_agent(concat!("fleetca-mosquitto/", env!("CARGO_PKG_VERSION")))
                .build()
                .into()
        };
        Self {
            url: config.url.clone(),
            secret: config.secret.clone(),
            broker: config.broker.clone(),
            decisions: agent(config.timeout),
            feed: agent(FEED_WAIT + Duration::from_secs(5)),
            unreachable_until: Mutex::new(None),
        }
    }

    fn backing_off(&self) -> bool {
        let guard = self
            .unreachable_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.is_some_and(|t| Instant::now() < t)
    }

    fn reached(&self, ok: bool) {
        let mut guard = self
            .unreachable_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = if ok { None } else { Some(Instant::now() + BACK_OFF) };
    }

    fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, String> {
        if self.backing_off() {
            return Err("fleetca was unreachable moments ago".into());
        }
        let mut request = self
            .decisions
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json");
        if let Some(secret) = &self.secret {
            request = request.header("x-broker-secret", secret);
        }
        let result = request.send(body.to_string());
        self.reached(result.is_ok());
        json(result, 1 << 20)
    }

    /// Asks fleetca about a login.
    pub fn login(
        &self,
        username: &str,
        password: &str,
        client_id: &str,
        certificate_pem: Option<&str>,
    ) -> Result<LoginAnswer, String> {
        let mut body = json!({"username": username, "password": password, "clientid": client_id});
        if let (Some(pem), Some(map)) = (certificate_pem, body.as_object_mut()) {
            map.insert("cert_pem".into(), Value::String(pem.to_owned()));
        }
        self.post("/broker/plugin/login", &body)
    }

    /// Asks fleetca about a topic: `access` 1 read, 2 write, 4 subscribe.
    pub fn acl(&self, username: &str, client_id: &str, topic: &str, access: i32) -> Verdict {
        let body = json!({"username": username, "clientid": client_id, "topic": topic, "acc": access.to_string()});
        match self.post::<AclAnswer>("/broker/plugin/acl", &body) {
            Ok(a) if a.result == "allow" => Verdict::Allow,
            Ok(a) if a.result == "deny" => Verdict::Deny,
            Ok(_) | Err(_) => Verdict::Unknown,
        }
    }

    /// One long poll of the change feed after `cursor`.
    pub fn follow(&self, cursor: Option<&str>) -> Result<Batch, String> {
        let mut request = self
            .feed
            .get(format!("{}/broker/plugin/feed", self.url))
            .query("broker", &self.broker)
            .query("wait", FEED_WAIT.as_secs().to_string());
        if let Some(c) = cursor {
            request = request.query("cursor", c);
        }
        if let Some(secret) = &self.secret {
            request = request.header("x-broker-secret", secret);
        }
        json(request.call(), 64 << 20)
    }
}

/// A successful answer's JSON body of at most `limit` bytes.
fn json<T: DeserializeOwned>(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    limit: u64,
) -> Result<T, String> {
    let mut response = result.map_err(|e| format!("fleetca: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("fleetca answered {}", response.status()));
    }
    let text = response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_string()
        .map_err(|e| format!("fleetca: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("fleetca's answer: {e}"))
}
