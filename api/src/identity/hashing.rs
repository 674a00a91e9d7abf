//! Every argon2 computation in the process goes through one [`Hasher`]: at most one hash per
//! core runs at a time, and at most [`Hasher::MAX_WAITING`] more wait for a slot. A human
//! password hash takes 19 MiB, so this bounds both the CPU and the memory that a flood of
//! sign-ins or bad tokens can take; past the queue a caller is told to come back shortly
//! instead of piling up. Each slot's working memory is kept and used again ([`HashMemory`]):
//! allocated per hash, on whichever blocking thread ran it, the allocator kept those 19 MiB
//! in many threads' arenas after a flood and never gave them back.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use fleetca_ca::secret::{self, HashMemory, NewToken};
use tokio::sync::Semaphore;

use crate::support::Error;

use crate::support::blocking;

/// The process's argon2 gate.
pub struct Hasher {
    cores: usize,
    slots: Semaphore,
    waiting: AtomicUsize,
    /// Hashes computed since the start.
    computed: AtomicUsize,
    /// The slots' working memory: as many as slots, each taken by the hash that runs.
    memory: Mutex<Vec<HashMemory>>,
    /// A hash of a random password, checked for unknown users so timing says nothing.
    dummy: String,
}

/// Counts a caller among the waiting until it is dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Hasher {
    /// Hashes waiting for a slot, at most; more are refused with "retry in a second".
    pub const MAX_WAITING: usize = 64;

    pub fn new() -> Result<Self, Error> {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let mut first = HashMemory::new();
        let dummy = secret::dummy_password_hash_in(&mut first)?;
        let mut memory: Vec<HashMemory> = (1..cores).map(|_| HashMemory::new()).collect();
        memory.push(first);
        Ok(Self {
            cores,
            slots: Semaphore::new(cores),
            waiting: AtomicUsize::new(0),
            computed: AtomicUsize::new(0),
            memory: Mutex::new(memory),
            dummy,
        })
    }

    /// Hashes in flight and waiting, for metrics and tests.
    pub fn load(&self) -> (usize, usize) {
        (
            self.cores.saturating_sub(self.slots.available_permits()),
            self.waiting.load(Ordering::Acquire),
        )
    }

    /// Hashes computed since the start, for tests.
    pub fn computed(&self) -> usize {
        self.computed.load(Ordering::Acquire)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut HashMemory) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
        let waiting = Waiting(&self.waiting);
        if queued >= Self::MAX_WAITING {
            return Err(Error::RateLimited { retry_after_secs: 1 });
        }
        let _permit = self.slots.acquire().await.map_err(|_| Error::Unavailable)?;
        drop(waiting);
        // A slot is held, so a buffer is free (one per slot); should a cancelled hash have
        // taken one along, a new one takes its place.
        let mut memory = self
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        let (out, memory) = blocking(move || {
            let out = work(&mut memory);
            (out, memory)
        })
        .await?;
        self.memory.lock().unwrap_or_else(|e| e.into_inner()).push(memory);
        self.computed.fetch_add(1, Ordering::AcqRel);
        Ok(out)
    }

    /// The argon2id hash of a human password.
    pub async fn hash_password(&self, password: String) -> Result<String, Error> {
        Ok(self
            .run(move |memory| secret::hash_password_in(memory, &password))
            .await??)
    }

    /// Whether `secret` matches `hash`; with no hash, checks the dummy hash (and answers no).
    pub async fn verify(&self, secret: String, hash: Option<String>) -> Result<bool, Error> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.clone());
        let ok = self
            .run(move |memory| secret::verify_hash_in(memory, secret.as_bytes(), &hash))
            .await?;
        Ok(ok && known)
    }

    /// A new API token with its hash.
    pub async fn new_token(&self) -> Result<NewToken, Error> {
        Ok(self.run(secret::generate_token_in).await??)
    }

    /// The hash of a token the operator chose (the bootstrap token).
    pub async fn token_from(&self, plaintext: String) -> Result<NewToken, Error> {
        Ok(self.run(move |_| secret::token_from_plaintext(&plaintext)).await??)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_flood_of_hashes_is_bounded_and_the_rest_told_to_retry() {
        let hasher = Arc::new(Hasher::new().unwrap());
        let mut tasks = Vec::new();
        for _ in 0..(Hasher::MAX_WAITING + 40) {
            let h = hasher.clone();
            tasks.push(tokio::spawn(async move { h.verify("x".into(), None).await }));
        }
        let mut refused = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(ok) => assert!(!ok, "the dummy hash never matches"),
                Err(Error::RateLimited { .. }) => refused += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(refused > 0, "some were refused rather than queued");
        assert_eq!(hasher.load(), (0, 0));
    }
}
