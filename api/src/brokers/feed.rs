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
//! ring's epoch (a random number per process) and the last event it applied; one from another
//! epoch (fleetca restarted) or that fell out of the ring is told to `reset`, and the plugin
//! then forgets everything it cached. A cut counts as done only once a follower of its broker
//! came back with a cursor at or past it ([`Feed::cut`]); until then the disconnect queue
//! retries it, so a cut missed in a reset is put on the feed again. Nothing here is secret:
//! tags are ids and fingerprints.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Notify, watch};

/// How many events a follower may be behind before it must reset.
pub const RING: usize = 4096;
/// How long a follower that has not asked again still counts as following.
const FOLLOWING: Duration = Duration::from_secs(40);

/// Which of a tag's sessions a cut ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// Forget cached decisions with any of these tags.
    Drop { tags: Vec<String> },
    /// End the sessions with any of these tags (and forget their decisions).
    Cut { tags: Vec<String>, scope: Scope },
    /// fleetca wrote the CRL file: the broker re-reads it (the plugin raises SIGHUP in
    /// mosquitto's own process, which fleetca's user could not signal).
    Reload,
}

/// What a follower gets.
#[derive(Debug, Serialize)]
pub struct Batch {
    /// Pass it back as `cursor` to get what follows.
    pub cursor: String,
    /// The follower missed events: forget every cached decision.
    pub reset: bool,
    pub events: Vec<Event>,
}

struct Follower {
    /// When it last asked.
    seen: Instant,
    /// The newest event it has applied (its cursor).
    applied: u64,
}

struct Ring {
    /// The sequence number of the newest event (0: none yet).
    last: u64,
    events: VecDeque<(u64, Event)>,
    /// By broker name.
    followers: HashMap<String, Follower>,
}

/// How many broker names are remembered (stale ones are forgotten first).
const FOLLOWER_NAMES: usize = 1024;

/// The feed of one process.
pub struct Feed {
    epoch: u64,
    ring: Mutex<Ring>,
    newest: watch::Sender<u64>,
    /// Woken when a follower's cursor moves.
    applied: Notify,
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
            applied: Notify::new(),
        }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends an event and wakes the followers; returns its sequence number.
    pub fn push(&self, event: Event) -> u64 {
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
        last
    }

    /// Forget the decisions with these tags.
    pub fn drop_tags(&self, tags: Vec<String>) {
        if !tags.is_empty() {
            self.push(Event::Drop { tags });
        }
    }

    /// Puts a cut on the feed and waits up to `wait` for a follower of `broker` to apply it.
    pub async fn cut(&self, broker: &str, event: Event, wait: Duration) -> Result<(), String> {
        if !self.following(broker) {
            return Err("no fleetca_mosquitto plugin of this broker follows this instance's feed".into());
        }
        let seq = self.push(event);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Made before the check: a wake-up between the two is not lost.
            let moved = self.applied.notified();
            if self.ring().followers.get(broker).is_some_and(|f| f.applied >= seq) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, moved).await.is_err() {
                return Err(format!(
                    "the plugin did not confirm the cut within {} s",
                    wait.as_secs()
                ));
            }
        }
    }

    /// Whether a plugin of `broker` asked within the last 40 s (a poll lasts 25 s at most).
    pub fn following(&self, broker: &str) -> bool {
        self.ring()
            .followers
            .get(broker)
            .is_some_and(|f| f.seen.elapsed() < FOLLOWING)
    }

    /// The events after `cursor`, waiting up to `wait` for one when there is none yet. The
    /// cursor also says which events the follower has applied.
    pub async fn follow(&self, broker: &str, cursor: Option<&str>, wait: Duration) -> Batch {
        let mut newest = self.newest.subscribe();
        let after = cursor.and_then(|c| self.parse_cursor(c));
        self.seen(broker, after);
        let Some(after) = after else {
            let last = *newest.borrow_and_update();
            return Batch {
                cursor: self.cursor(last),
                reset: true,
                events: Vec::new(),
            };
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(batch) = self.after(after) {
                return batch;
            }
            if tokio::time::timeout_at(deadline, newest.changed()).await.is_err() {
                self.seen(broker, None);
                return Batch {
                    cursor: self.cursor(after),
                    reset: false,
                    events: Vec::new(),
                };
            }
        }
    }

    fn seen(&self, broker: &str, applied: Option<u64>) {
        {
            let mut ring = self.ring();
            if ring.followers.len() >= FOLLOWER_NAMES && !ring.followers.contains_key(broker) {
                ring.followers.retain(|_, f| f.seen.elapsed() < FOLLOWING);
            }
            if ring.followers.len() >= FOLLOWER_NAMES && !ring.followers.contains_key(broker) {
                return;
            }
            let f = ring.followers.entry(broker.to_owned()).or_insert(Follower {
                seen: Instant::now(),
                applied: 0,
            });
            f.seen = Instant::now();
            if let Some(a) = applied {
                f.applied = f.applied.max(a);
            }
        }
        if applied.is_some() {
            self.applied.notify_waiters();
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
        assert!(feed.following("m"));
        assert!(!feed.following("other"));
    }

    #[tokio::test]
    async fn a_cut_is_done_once_a_follower_applied_it() {
        let feed = std::sync::Arc::new(Feed::new());
        let cut = || Event::Cut {
            tags: vec!["user:x".into()],
            scope: Scope::All,
        };
        assert!(
            feed.cut("m", cut(), Duration::from_millis(10)).await.is_err(),
            "nobody follows"
        );
        let start = feed.follow("m", None, Duration::ZERO).await;
        assert!(
            feed.cut("m", cut(), Duration::from_millis(50)).await.is_err(),
            "followed, but never applied"
        );
        let f = feed.clone();
        let confirming = tokio::spawn(async move {
            // The unconfirmed cut above, then the one below; the plugin applies each batch,
            // then asks again with its cursor.
            let mut cursor = start.cursor;
            for wait in [5, 5, 0] {
                cursor = f.follow("m", Some(&cursor), Duration::from_secs(wait)).await.cursor;
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        feed.cut("m", cut(), Duration::from_secs(5)).await.unwrap();
        confirming.await.unwrap();
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
