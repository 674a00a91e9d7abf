//! A small bounded cache for credentials and records that are read on hot paths.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// A bounded map whose inserts are skipped when an invalidation raced the load. Lookups
/// are counted as `fleetca_cache_lookups_total{cache, result}`.
pub struct Cache<K, V> {
    map: RwLock<HashMap<K, V>>,
    capacity: usize,
    generation: AtomicU64,
    hits: metrics::Counter,
    misses: metrics::Counter,
}

impl<K: Eq + Hash + Clone, V: Clone> Cache<K, V> {
    /// A cache named `name` in the metrics.
    pub fn new(name: &'static str, capacity: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            capacity,
            generation: AtomicU64::new(0),
            hits: metrics::counter!("fleetca_cache_lookups_total", "cache" => name, "result" => "hit"),
            misses: metrics::counter!("fleetca_cache_lookups_total", "cache" => name, "result" => "miss"),
        }
    }

    /// The entry of `k` (any borrowed form of the key: a `&str` for a `String` key), cloned
    /// (make `V` an `Arc` where that would copy much).
    pub fn get<Q>(&self, k: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let found = self.map.read().unwrap_or_else(|e| e.into_inner()).get(k).cloned();
        if found.is_some() {
            self.hits.increment(1);
        } else {
            self.misses.increment(1);
        }
        found
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn insert_if_current(&self, k: K, v: V, generation: u64) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= self.capacity {
            let drop: Vec<K> = map.keys().take(self.capacity / 8 + 1).cloned().collect();
            for key in drop {
                map.remove(&key);
            }
        }
        map.insert(k, v);
    }

    /// Adds records read whole (a page of a table) that are not cached yet, while the cache
    /// is under `limit` entries, unless an invalidation raced the read; returns how many
    /// were added, and whether the cache has reached `limit`.
    pub fn fill_if_current(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
        generation: u64,
        limit: usize,
    ) -> (usize, bool) {
        let limit = limit.min(self.capacity);
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let mut added = 0;
        if self.generation.load(Ordering::Acquire) == generation {
            for (k, v) in entries {
                if map.len() >= limit {
                    break;
                }
                if let std::collections::hash_map::Entry::Vacant(slot) = map.entry(k) {
                    slot.insert(v);
                    added += 1;
                }
            }
        }
        (added, map.len() >= limit)
    }

    /// How many entries it holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Drops one entry.
    pub fn remove<Q>(&self, k: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.map.write().unwrap_or_else(|e| e.into_inner()).remove(k);
    }

    pub fn retain(&self, keep: impl FnMut(&K, &mut V) -> bool) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.map.write().unwrap_or_else(|e| e.into_inner()).retain(keep);
    }
}

/// The key of a pair (a tenant and a device, a product and a device) in a `String`-keyed
/// cache: the two joined by a NUL, which neither may contain.
pub fn pair(a: &str, b: &str) -> String {
    let mut key = String::with_capacity(a.len() + b.len() + 1);
    key.push_str(a);
    key.push('\0');
    key.push_str(b);
    key
}

/// The first part of a [`pair`] key.
pub fn first_of_pair(key: &str) -> &str {
    key.split('\0').next().unwrap_or(key)
}

impl<V: Clone> Cache<String, V> {
    /// The entry of the pair `(a, b)`: the key is built in a buffer of the thread's, so a
    /// lookup allocates nothing.
    pub fn get_pair(&self, a: &str, b: &str) -> Option<V> {
        if a.contains('\0') || b.contains('\0') {
            return None; // no stored pair has one (see [`pair`]): a miss, the store says no
        }
        thread_local! {
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        KEY.with(|key| {
            let mut key = key.borrow_mut();
            key.clear();
            key.push_str(a);
            key.push('\0');
            key.push_str(b);
            self.get(key.as_str())
        })
    }
}
