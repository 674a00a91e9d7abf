//! Who is calling: Bearer tokens checked against their argon2id hash, with a bounded
//! in-memory cache so a token verified once is not hashed again on every request (the
//! broker presents API-key tokens on every MQTT connect).
//!
//! The cache is keyed by a keyed hash of the token ([`CacheKeyer`]), never the token, and
//! entries for a user are dropped the moment that user is deactivated, edited or rotated.
//! A generation counter stops a verification that read the user before such a change from
//! caching the stale result after it.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use fleetca_ca::secret::{self, CacheKeyer};
use fleetca_storage::{StorageError, Store, User};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::domain::Role;
use crate::error::ApiError;
use crate::service::blocking;
use crate::service::cache::Cache;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub id: Uuid,
    pub username: String,
    pub enterprise: String,
    pub role: Role,
    pub is_service_account: bool,
}

impl Principal {
    pub fn from_user(u: &User) -> Self {
        Self {
            id: u.id,
            username: u.username.clone(),
            enterprise: u.enterprise.clone(),
            role: Role::parse(&u.role).unwrap_or(Role::Service),
            is_service_account: u.is_service_account,
        }
    }

    /// For a manager, pins a listing's enterprise (or tenant) filter to its own enterprise.
    /// Returns `false` when the filter asked for another one: the listing is then empty.
    pub fn pin_enterprise(&self, filter: &mut Option<String>) -> bool {
        if self.role != Role::Manager {
            return true;
        }
        if filter.as_ref().is_some_and(|e| *e != self.enterprise) {
            return false;
        }
        *filter = Some(self.enterprise.clone());
        true
    }

    /// Whether objects of `enterprise` are inside this caller's scope.
    pub fn manages(&self, enterprise: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Manager => self.enterprise == enterprise,
            Role::Service => false,
        }
    }
}

/// Token verification with its cache.
pub struct AuthService {
    keyer: CacheKeyer,
    cache: RwLock<HashMap<[u8; 32], Principal>>,
    capacity: usize,
    generation: AtomicU64,
    /// Bounds concurrent argon2 work so a flood of bad tokens cannot starve the server.
    hash_slots: Semaphore,
    /// Users by id, for the issuance hot path (the API key a certificate is for).
    users: Cache<Uuid, User>,
}

impl AuthService {
    pub fn new(capacity: usize) -> Result<Self, fleetca_ca::CaError> {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Ok(Self {
            keyer: CacheKeyer::new()?,
            cache: RwLock::new(HashMap::new()),
            capacity,
            generation: AtomicU64::new(0),
            hash_slots: Semaphore::new(cores),
            users: Cache::new(capacity),
        })
    }

    /// The active user a token belongs to, or `None` for a wrong, unknown or inactive one.
    pub async fn verify_token(&self, store: &Store, token: &str) -> Result<Option<Principal>, ApiError> {
        let key = self.keyer.key(&[token.as_bytes()]);
        if let Some(p) = self.cache.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(Some(p.clone()));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let user = match store.user_by_token_lookup(&secret::token_lookup(token)).await {
            Ok(u) => u,
            Err(StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if !user.is_active {
            return Ok(None);
        }
        let _permit = self.hash_slots.acquire().await.map_err(|_| ApiError::Unavailable)?;
        let presented = token.to_owned();
        let hash = user.token_hash.clone();
        if !blocking(move || secret::verify_hash(presented.as_bytes(), &hash)).await? {
            return Ok(None);
        }
        let principal = Principal::from_user(&user);
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::Acquire) == generation {
            if cache.len() >= self.capacity {
                // Bounded: drop an arbitrary eighth rather than grow.
                let drop: Vec<_> = cache.keys().take(self.capacity / 8 + 1).copied().collect();
                for k in drop {
                    cache.remove(&k);
                }
            }
            cache.insert(key, principal.clone());
        }
        Ok(Some(principal))
    }

    /// A user by id, cached until it changes.
    pub async fn user(&self, store: &Store, id: Uuid) -> Result<User, StorageError> {
        if let Some(u) = self.users.get(&id) {
            return Ok(u);
        }
        let generation = self.users.generation();
        let user = store.user(id).await?;
        self.users.insert_if_current(id, user.clone(), generation);
        Ok(user)
    }

    /// Drops every cached verification of `user_id`'s tokens, and its cached record.
    pub fn invalidate_user(&self, user_id: Uuid) {
        self.users.remove(&user_id);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, p| p.id != user_id);
    }

    /// Hashes a password off the executor.
    pub async fn hash_password(&self, password: String) -> Result<String, ApiError> {
        let _permit = self.hash_slots.acquire().await.map_err(|_| ApiError::Unavailable)?;
        Ok(blocking(move || secret::hash_password(&password)).await??)
    }
}
