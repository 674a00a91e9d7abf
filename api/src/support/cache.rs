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

    pub fn get(&self, k: &K) -> Option<V> {
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

    /// Drops one entry.
    pub fn remove(&self, k: &K) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.map.write().unwrap_or_else(|e| e.into_inner()).remove(k);
    }

    pub fn retain(&self, keep: impl FnMut(&K, &mut V) -> bool) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.map.write().unwrap_or_else(|e| e.into_inner()).retain(keep);
    }
}
