//! Cached decisions, each with the tags fleetca named for it; a change on the feed drops the
//! ones with its tags. Bounded: a full cache starts again empty (a warm fleet fills it again
//! in one round of reconnects), and an entry is trusted for its own time to live, at most
//! [`TTL`].

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a decision is trusted, whatever the feed says.
pub const TTL: Duration = Duration::from_secs(600);

struct Entry<V> {
    value: V,
    tags: Arc<[String]>,
    until: Instant,
}

/// A bounded map of decisions.
pub struct Cache<K, V> {
    map: HashMap<K, Entry<V>>,
    capacity: usize,
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            capacity,
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.map
            .get(key)
            .filter(|e| Instant::now() < e.until)
            .map(|e| e.value.clone())
    }

    /// Keeps `value` for `ttl` (at most [`TTL`]).
    pub fn insert(&mut self, key: K, value: V, tags: Arc<[String]>, ttl: Duration) {
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            self.map.clear();
        }
        self.map.insert(
            key,
            Entry {
                value,
                tags,
                until: Instant::now() + ttl.min(TTL),
            },
        );
    }

    /// Drops every decision with one of `tags`.
    pub fn drop_tags(&mut self, tags: &[String]) {
        self.map.retain(|_, e| !e.tags.iter().any(|t| tags.contains(t)));
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_drops_its_decisions_and_a_full_cache_starts_again() {
        let tags = |t: &[&str]| -> Arc<[String]> { t.iter().map(|s| s.to_string()).collect() };
        let mut c = Cache::new(3);
        c.insert(1, true, tags(&["user:a"]), TTL);
        c.insert(2, true, tags(&["user:b", "cert:f"]), TTL);
        c.drop_tags(&["cert:f".to_owned()]);
        assert_eq!(c.get(&1), Some(true));
        assert_eq!(c.get(&2), None);
        c.insert(2, false, tags(&[]), TTL);
        c.insert(3, false, tags(&[]), TTL);
        c.insert(4, false, tags(&[]), TTL);
        assert_eq!(c.len(), 1, "full: started again");
        assert_eq!(c.get(&4), Some(false));
        c.insert(5, true, tags(&[]), Duration::ZERO);
        assert_eq!(c.get(&5), None, "its own time to live");
    }
}
