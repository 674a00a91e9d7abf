//! Per-enterprise rate limits: a token bucket per key that refills at a steady rate. Used
//! so one tenant cannot grow the CRL without bound or make every broker reload its CRL
//! every few milliseconds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::Error;

/// A token bucket per key: `per_minute` changes a minute, in bursts of up to that many.
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Most keys tracked at once; idle full buckets are forgotten first.
const MAX_KEYS: usize = 100_000;

impl RateLimiter {
    /// `per_minute = 0` turns the limit off.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`, or says how many seconds until one is there.
    pub fn take(&self, key: &str) -> Result<(), Error> {
        self.bucket(key, true)
    }

    /// Whether `key` has a token left, without taking it.
    pub fn check(&self, key: &str) -> Result<(), Error> {
        self.bucket(key, false)
    }

    fn bucket(&self, key: &str, take: bool) -> Result<(), Error> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_KEYS {
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * per_second < capacity);
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_second).min(capacity);
        *at = now;
        if *tokens >= 1.0 {
            if take {
                *tokens -= 1.0;
            }
            return Ok(());
        }
        let wait = ((1.0 - *tokens) / per_second).ceil().max(1.0);
        // Bounded by 60 s (one token takes at most a minute to come back).
        let retry_after_secs = if wait.is_finite() { wait.min(60.0) as u64 } else { 60 };
        Err(Error::RateLimited { retry_after_secs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_beyond_the_limit_is_told_when_to_retry() {
        let limiter = RateLimiter::new(3);
        for _ in 0..3 {
            limiter.take("acme").unwrap();
        }
        match limiter.take("acme") {
            Err(Error::RateLimited { retry_after_secs }) => assert!((1..=20).contains(&retry_after_secs)),
            other => panic!("{other:?}"),
        }
        assert!(limiter.take("globex").is_ok(), "each enterprise has its own bucket");
        assert!(RateLimiter::new(0).take("acme").is_ok(), "0 turns it off");
    }
}
