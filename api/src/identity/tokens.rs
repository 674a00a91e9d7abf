//! Bearer tokens: who is calling. A token is checked against its argon2id hash once; the
//! verdict is then kept in a bounded cache keyed by a keyed hash of the token
//! ([`CacheKeyer`]), never the token itself, and dropped the moment its user is
//! deactivated, edited or rotated (on every instance, through `changes`). The broker
//! presents API-key tokens on every MQTT connect, so this cache is on its hot path.
//!
//! A token not yet cached is verified once however many requests present it at the same
//! moment (a fleet reconnecting after a broker restart, a load balancer's burst): the
//! others wait for that verdict instead of each reading the database and taking an argon2
//! slot, where a burst past [`Hasher::MAX_WAITING`] would have been told to retry.
//!
//! The active API keys are loaded whole once the change feed follows ([`Tokens::warm`]):
//! issuing for a key then never waits on the database for its owner. In the issuance
//! benchmark (20,000 keys) half the requests read their key before. About 300 bytes of record
//! per key, a few MB for a large fleet, bounded by the cache's capacity.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fleetca_ca::secret::{self, CacheKeyer};
use fleetca_storage::{StorageError, Store, User};
use uuid::Uuid;

use crate::domain::Principal;
use crate::identity::hashing::Hasher;
use crate::support::Error;
use crate::support::cache::Cache;

/// Token verification and the cached user records of the issuance hot path.
pub struct Tokens {
    store: Store,
    hasher: Arc<Hasher>,
    keyer: CacheKeyer,
    verified: Cache<[u8; 32], Principal>,
    /// The verifications under way, by cache key: one per token at a time.
    verifying: Flights,
    users: Cache<Uuid, User>,
}

/// One token's verification, shared by everyone who presents it while it runs: its verdict,
/// or `Err` when it failed (its caller gets the error, the others a 503).
struct Flight {
    /// The token cache's generation when it set off: a flight from before an invalidation
    /// is not joined.
    generation: u64,
    verdict: tokio::sync::OnceCell<Result<Option<Principal>, ()>>,
}

type Flights = Mutex<HashMap<[u8; 32], Arc<Flight>>>;

/// A caller's hold on a [`Flight`]. Every clone and drop of a flight happens under the map's
/// lock, so the last holder to leave, however it leaves (a client gone mid-request drops
/// the future), takes its flight out of the map.
struct Boarding<'a> {
    map: &'a Flights,
    key: [u8; 32],
    flight: Option<Arc<Flight>>,
}

impl<'a> Boarding<'a> {
    /// Joins the flight under way for `key`, or sets off a new one when there is none, when
    /// it has landed (a verdict from then is not waited for but read from the cache or made
    /// again) or when it set off before an invalidation.
    fn new(map: &'a Flights, key: [u8; 32], generation: u64) -> Self {
        let mut flights = map.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = || {
            Arc::new(Flight {
                generation,
                verdict: tokio::sync::OnceCell::new(),
            })
        };
        let flight = flights.entry(key).or_insert_with(fresh);
        if flight.verdict.initialized() || flight.generation != generation {
            *flight = fresh();
        }
        let flight = flight.clone();
        Self {
            map,
            key,
            flight: Some(flight),
        }
    }
}

impl Drop for Boarding<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(flight) = self.flight.take() {
            // The map's handle and this one: nobody else is on it.
            let last = map.get(&self.key).is_some_and(|f| Arc::ptr_eq(f, &flight)) && Arc::strong_count(&flight) == 2;
            if last {
                map.remove(&self.key);
            }
        }
    }
}

/// How many API keys [`Tokens::warm`] reads per query.
const WARM_PAGE: u64 = 5_000;

impl Tokens {
    pub fn new(store: Store, hasher: Arc<Hasher>, capacity: usize) -> Result<Self, Error> {
        Ok(Self {
            store,
            hasher,
            keyer: CacheKeyer::new()?,
            verified: Cache::new("tokens", capacity),
            verifying: Mutex::new(HashMap::new()),
            users: Cache::new("users", capacity),
        })
    }

    /// The active user a token belongs to, or `None` for a wrong, unknown or inactive one.
    pub async fn verify(&self, token: &str) -> Result<Option<Principal>, Error> {
        let key = self.keyer.key(&[token.as_bytes()]);
        if let Some(p) = self.verified.get(&key) {
            return Ok(Some(p));
        }
        let boarding = Boarding::new(&self.verifying, key, self.verified.generation());
        let Some(flight) = &boarding.flight else {
            return Err(Error::Unavailable); // there until the boarding is dropped
        };
        let mut failure = None;
        let verdict = flight
            .verdict
            .get_or_init(|| async {
                // A flight that landed just before this one set off may have cached it.
                if let Some(p) = self.verified.get(&key) {
                    return Ok(Some(p));
                }
                self.verify_uncached(token, key).await.map_err(|e| {
                    failure = Some(e);
                })
            })
            .await
            .clone();
        drop(boarding);
        match (verdict, failure) {
            (Ok(verdict), _) => Ok(verdict),
            (Err(()), Some(mine)) => Err(mine),
            (Err(()), None) => Err(Error::Unavailable),
        }
    }

    async fn verify_uncached(&self, token: &str, key: [u8; 32]) -> Result<Option<Principal>, Error> {
        let generation = self.verified.generation();
        let user = match self.store.user_by_token_lookup(&secret::token_lookup(token)).await {
            Ok(u) => u,
            Err(StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if !user.is_active {
            return Ok(None);
        }
        if !self
            .hasher
            .verify(token.to_owned(), Some(user.token_hash.clone()))
            .await?
        {
            return Ok(None);
        }
        let principal = Principal::from_user(&user);
        self.verified.insert_if_current(key, principal.clone(), generation);
        Ok(Some(principal))
    }

    /// Loads every active API key into the cache of users, a page at a time, until the cache
    /// is seven eighths full (the rest is room for what is read later, so a miss does not
    /// evict what was loaded); returns how many. Call it once the change feed follows, so a
    /// change made after a page was read reaches the cache; a page an invalidation raced is
    /// left out (its keys load when first asked for).
    pub async fn warm(&self) -> Result<usize, Error> {
        let limit = self.users.capacity() * 7 / 8;
        let mut after = None;
        let mut loaded = 0;
        loop {
            let generation = self.users.generation();
            let page = self.store.active_service_accounts_after(after, WARM_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let more = page.len() as u64 == WARM_PAGE;
            let (added, full) = self
                .users
                .fill_if_current(page.into_iter().map(|u| (u.id, u)), generation, limit);
            loaded += added;
            if full || !more {
                break;
            }
        }
        Ok(loaded)
    }

    /// A user by id, cached until it changes; `None` when there is none.
    pub async fn user(&self, id: Uuid) -> Result<Option<User>, Error> {
        if let Some(u) = self.users.get(&id) {
            return Ok(Some(u));
        }
        let generation = self.users.generation();
        match self.store.user(id).await {
            Ok(user) => {
                self.users.insert_if_current(id, user.clone(), generation);
                Ok(Some(user))
            }
            Err(StorageError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Drops every cached verification of `user_id`'s tokens, and its cached record.
    pub fn invalidate_user(&self, user_id: Uuid) {
        self.users.remove(&user_id);
        self.verified.retain(|_, p| p.id != user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{Kit, admin};
    use crate::identity::users::UserChange;

    /// A fleet reconnecting at once presents one key's token many times before it is cached:
    /// every request is answered, none told to retry for want of an argon2 slot.
    #[tokio::test]
    async fn a_burst_of_one_uncached_token_is_verified_once() {
        let kit = Kit::new().await;
        let (key, token) = kit.api_key("svc-burst", "acme").await;
        let burst = 2 * Hasher::MAX_WAITING;
        let before = kit.tokens.hasher.computed();
        let verdicts = futures_util::future::join_all((0..burst).map(|_| kit.tokens.verify(&token))).await;
        assert_eq!(verdicts.len(), burst);
        for verdict in verdicts {
            assert_eq!(verdict.unwrap().map(|p| p.id), Some(key.id));
        }
        assert_eq!(
            kit.tokens.hasher.computed() - before,
            1,
            "one argon2 verification for the burst"
        );
        assert!(
            kit.tokens.verifying.lock().unwrap().is_empty(),
            "no verification left behind"
        );
    }

    /// The active API keys are loaded whole, up to the cache's capacity, and a key changed
    /// afterwards is read again.
    #[tokio::test]
    async fn warming_loads_the_active_api_keys_and_a_change_still_reaches_the_cache() {
        let kit = Kit::new().await;
        let (first, _) = kit.api_key("svc-warm-1", "acme").await;
        kit.api_key("svc-warm-2", "acme").await;
        let (gone, _) = kit.api_key("svc-warm-3", "acme").await;
        let off = UserChange {
            is_active: Some(false),
            role: None,
        };
        kit.users.change(&admin(), gone.id, off).await.unwrap();
        assert_eq!(
            kit.tokens.warm().await.unwrap(),
            2,
            "the two active keys, not the inactive one"
        );

        let small = Tokens::new(kit.store.clone(), Arc::new(Hasher::new().unwrap()), 8).unwrap();
        for i in 4..=12 {
            kit.api_key(&format!("svc-warm-{i}"), "acme").await;
        }
        assert_eq!(small.warm().await.unwrap(), 7, "seven eighths of what the cache holds");

        let off = UserChange {
            is_active: Some(false),
            role: None,
        };
        kit.users.change(&admin(), first.id, off).await.unwrap();
        let read = kit.tokens.user(first.id).await.unwrap().unwrap();
        assert!(!read.is_active, "the change reached the warmed cache");
    }
}
