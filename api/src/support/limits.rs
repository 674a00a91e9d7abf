//! Per-enterprise rate limits: a token bucket per key that refills at a steady rate. Used
//! so one tenant cannot grow the CRL without bound or make every broker reload its CRL
//! every few milliseconds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::Error;

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

/// The address a lockout applies to: an IPv4 address, or the /64 of an IPv6 one (a host
/// can pick any address of its /64).
pub fn network(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Failed attempts per key (`user:{name}`, `device:{tenant}/{id}`, `ip:{addr}`) within a
/// window: after `max` failures for any of a request's keys, further attempts are refused
/// until the window passes. An attempt is counted *before* its secret is checked, so
/// concurrent attempts cannot race past the limit; a successful one takes its count back.
pub struct FailureLimiter {
    max: u32,
    window: Duration,
    map: Mutex<HashMap<String, (u32, Instant)>>,
}

/// Most keys a [`FailureLimiter`] tracks at once.
const MAX_TRACKED: usize = 100_000;

impl FailureLimiter {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            map: Mutex::default(),
        }
    }

    /// Counts one attempt for every key, unless one of them is locked out: then returns
    /// the seconds until it may try again and counts nothing.
    pub fn begin(&self, keys: &[String]) -> Result<(), u64> {
        let (max, window) = (self.max, self.window);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED {
            map.retain(|_, (_, since)| since.elapsed() < window);
        }
        let mut locked = None;
        for k in keys {
            if let Some((n, since)) = map.get(k) {
                if since.elapsed() >= window {
                    map.remove(k);
                } else if *n >= max {
                    let secs = window.saturating_sub(since.elapsed()).as_secs().max(1);
                    locked = Some(locked.map_or(secs, |l: u64| l.max(secs)));
                }
            }
        }
        if let Some(secs) = locked {
            return Err(secs);
        }
        if map.len() >= MAX_TRACKED {
            // Full of live entries: forget those that are not locked out (a flood of fresh
            // names or addresses must not lock everyone out), keep the lockouts.
            map.retain(|_, (n, _)| *n >= max);
        }
        for k in keys {
            map.entry(k.clone()).or_insert((0, Instant::now())).0 += 1;
        }
        Ok(())
    }

    /// Takes back one attempt of each key: a request that proved nothing either way.
    pub fn undo(&self, keys: &[String]) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            if let Some((n, _)) = map.get_mut(k) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Takes back the attempt of a request that succeeded.
    pub fn succeeded(&self, keys: &[String]) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            map.remove(k);
        }
    }

    /// The keys tracked and the bytes their names take (for tests).
    #[cfg(test)]
    pub fn size(&self) -> (usize, usize) {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        (map.len(), map.keys().map(String::len).sum())
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
