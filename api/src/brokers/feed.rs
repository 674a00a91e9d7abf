//! The change feed fleetca's mosquitto plugin follows (`GET /broker/plugin/feed`): what its
//! caches must forget, and which live sessions it must end.
//!
//! Every decision the plugin caches carries **tags**: `user:{id}` (an API key and its
//! certificates), `cert:{sha256}` (one certificate), `device:{tenant}/{id}` (an HA1 device),
//! `product:{key}` and `product_device:{product}/{device}` (sign-based devices). A change
//! names the tags it touches:
//!
//! - [`Event::Drop`]: forget every cached decision with one of these tags (the change log's
//!   events, on every instance: [`crate::outbox::changes`]).
//! - [`Event::Cut`]: end the live sessions that logged in with one of these tags (the
//!   disconnect queue's `mosquitto-plugin` adapter, [`crate::brokers::admin`]).
//!
//! Events live in a ring of the last [`RING`] in this process. A follower's cursor names the
//! ring's epoch (a random number per process) and the last event it saw; one from another
//! epoch (fleetca restarted) or that fell out of the ring is told to `reset`, and the plugin
//! then forgets everything it cached. Nothing here is secret: tags are ids and fingerprints.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use utoipa::ToSchema;

/// How many events a follower may be behind before it must reset.
pub const RING: usize = 4096;
/// How long a follower that has not asked again still counts as following.
const FOLLOWING: Duration = Duration::from_secs(40);

/// Which of a tag's sessions a cut ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every session.
    All,
    /// Sessions that logged in with a password (an API key's token rotated).
    Password,
    /// Sessions that presented a certificate.
    Certificate,
}

/// One change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// Forget cached decisions with any of these tags.
    Drop { tags: Vec<String> },
    /// End the sessions with any of these tags (and forget their decisions).
    Cut { tags: Vec<String>, scope: Scope },
}

/// What a follower gets.
#[derive(Debug, Serialize, ToSchema)]
pub struct Batch {
    /// Pass it back as `cursor` to get what follows.
    pub cursor: String,
    /// The follower missed events: forget every cached decision.
    pub reset: bool,
    pub events: Vec<Event>,
}

struct Ring {
    /// The sequence number of the newest event (0: none yet).
    last: u64,
    events: VecDeque<(u64, Event)>,
    /// Broker name → when it last asked.
    followers: HashMap<String, Instant>,
}

/// The feed of one process.
pub struct Feed {
    epoch: u64,
    ring: Mutex<Ring>,
    newest: watch::Sender<u64>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl Default for Feed {
    fn default() -> Self {
        Self::new()
    }
}

impl Feed {
    pub fn new() -> Self {
        Self {
            // Random (a v4 UUID's bits): a restarted fleetca's cursors are not the old one's.
            epoch: uuid::Uuid::new_v4().as_u64_pair().0 >> 1,
            ring: Mutex::new(Ring {
                last: 0,
                events: VecDeque::new(),
                followers: HashMap::new(),
            }),
            newest: watch::channel(0).0,
        }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends an event and wakes the followers.
    pub fn push(&self, event: Event) {
        let last = {
            let mut ring = self.ring();
            ring.last += 1;
            let seq = ring.last;
            ring.events.push_back((seq, event));
            while ring.events.len() > RING {
                ring.events.pop_front();
            }
            seq
        };
        self.newest.send_replace(last);
    }

    /// Forget the decisions with these tags.
    pub fn drop_tags(&self, tags: Vec<String>) {
        if !tags.is_empty() {
            self.push(Event::Drop { tags });
        }
    }

    /// How many plugins of `broker` asked within the last 40 s (the poll lasts 25 s).
    pub fn followers(&self, broker: &str) -> usize {
        let ring = self.ring();
        ring.followers
            .get(broker)
            .filter(|t| t.elapsed() < FOLLOWING)
            .map_or(0, |_| 1)
    }

    /// The events after `cursor`, waiting up to `wait` for one when there is none yet.
    pub async fn follow(&self, broker: &str, cursor: Option<&str>, wait: Duration) -> Batch {
        let mut newest = self.newest.subscribe();
        let after = cursor.and_then(|c| self.parse_cursor(c));
        let Some(after) = after else {
            let last = *newest.borrow_and_update();
            self.seen(broker);
            return Batch {
                cursor: self.cursor(last),
                reset: true,
                events: Vec::new(),
            };
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(batch) = self.after(after) {
                self.seen(broker);
                return batch;
            }
            self.seen(broker);
            if tokio::time::timeout_at(deadline, newest.changed()).await.is_err() {
                return Batch {
                    cursor: self.cursor(after),
                    reset: false,
                    events: Vec::new(),
                };
            }
        }
    }

    fn seen(&self, broker: &str) {
        let mut ring = self.ring();
        if let Some(t) = ring.followers.get_mut(broker) {
            *t = Instant::now();
        } else if ring.followers.len() < 1024 {
            ring.followers.insert(broker.to_owned(), Instant::now());
        }
    }

    /// The batch after `after`, or `None` when nothing is new.
    fn after(&self, after: u64) -> Option<Batch> {
        let ring = self.ring();
        if after == ring.last {
            return None;
        }
        let oldest = ring.events.front().map_or(ring.last + 1, |(seq, _)| *seq);
        if after > ring.last || after + 1 < oldest {
            return Some(Batch {
                cursor: self.cursor(ring.last),
                reset: true,
                events: Vec::new(),
            });
        }
        let events = ring
            .events
            .iter()
            .filter(|(seq, _)| *seq > after)
            .map(|(_, e)| e.clone())
            .collect();
        Some(Batch {
            cursor: self.cursor(ring.last),
            reset: false,
            events,
        })
    }

    fn cursor(&self, seq: u64) -> String {
        format!("{}.{}", self.epoch, seq)
    }

    /// The sequence number of a cursor of this process, or `None` (another epoch, or not a
    /// cursor).
    fn parse_cursor(&self, cursor: &str) -> Option<u64> {
        let (epoch, seq) = cursor.split_once('.')?;
        (epoch.parse::<u64>().ok()? == self.epoch)
            .then(|| seq.parse().ok())
            .flatten()
    }
}

/// The tags of an API key (and its certificates' logins).
pub fn user_tag(id: uuid::Uuid) -> String {
    format!("user:{id}")
}

/// The tag of one certificate (its SHA-256 fingerprint, lowercase hex).
pub fn cert_tag(fingerprint: &str) -> String {
    format!("cert:{}", fingerprint.replace(':', "").to_ascii_lowercase())
}

/// The tag of an HA1 device.
pub fn device_tag(tenant: &str, device_id: &str) -> String {
    format!("device:{tenant}/{device_id}")
}

/// The tag of every device of a product.
pub fn product_tag(product_key: &str) -> String {
    format!("product:{product_key}")
}

/// The tag of one sign-based device.
pub fn product_device_tag(product_key: &str, device_key: &str) -> String {
    format!("product_device:{product_key}/{device_key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drop(tag: &str) -> Event {
        Event::Drop { tags: vec![tag.into()] }
    }

    #[tokio::test]
    async fn a_follower_gets_what_followed_its_cursor_and_resets_when_it_fell_behind() {
        let feed = Feed::new();
        let first = feed.follow("m", None, Duration::ZERO).await;
        assert!(first.reset, "a new follower starts by forgetting");
        feed.push(drop("user:a"));
        feed.push(drop("user:b"));
        let next = feed.follow("m", Some(&first.cursor), Duration::ZERO).await;
        assert!(!next.reset);
        assert_eq!(next.events, vec![drop("user:a"), drop("user:b")]);
        let idle = feed.follow("m", Some(&next.cursor), Duration::from_millis(10)).await;
        assert!(idle.events.is_empty() && !idle.reset);
        assert_eq!(idle.cursor, next.cursor);
        for _ in 0..RING + 1 {
            feed.push(drop("user:c"));
        }
        assert!(feed.follow("m", Some(&next.cursor), Duration::ZERO).await.reset);
        let other = Feed::new();
        assert!(
            other.follow("m", Some(&next.cursor), Duration::ZERO).await.reset,
            "another process's cursor"
        );
        assert!(feed.follow("m", Some("garbage"), Duration::ZERO).await.reset);
        assert_eq!(feed.followers("m"), 1);
        assert_eq!(feed.followers("other"), 0);
    }

    #[tokio::test]
    async fn a_waiting_follower_wakes_on_a_push() {
        let feed = std::sync::Arc::new(Feed::new());
        let start = feed.follow("m", None, Duration::ZERO).await;
        let f = feed.clone();
        let waiter = tokio::spawn(async move { f.follow("m", Some(&start.cursor), Duration::from_secs(10)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        feed.push(Event::Cut {
            tags: vec!["user:x".into()],
            scope: Scope::All,
        });
        let got = tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.events.len(), 1);
    }
}
