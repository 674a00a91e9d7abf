//! Bearer tokens: who is calling. A token is checked against its argon2id hash once; the
//! verdict is then kept in a bounded cache keyed by a keyed hash of the token
//! ([`CacheKeyer`]), never the token itself, and dropped the moment its user is
//! deactivated, edited or rotated (on every instance, through `changes`). The broker
//! presents API-key tokens on every MQTT connect, so this cache is on its hot path.

use std::sync::Arc;

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
    users: Cache<Uuid, User>,
}

impl Tokens {
    pub fn new(store: Store, hasher: Arc<Hasher>, capacity: usize) -> Result<Self, Error> {
        Ok(Self {
            store,
            hasher,
            keyer: CacheKeyer::new()?,
            verified: Cache::new("tokens", capacity),
            users: Cache::new("users", capacity),
        })
    }

    /// The active user a token belongs to, or `None` for a wrong, unknown or inactive one.
    pub async fn verify(&self, token: &str) -> Result<Option<Principal>, Error> {
        let key = self.keyer.key(&[token.as_bytes()]);
        if let Some(p) = self.verified.get(&key) {
            return Ok(Some(p));
        }
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
