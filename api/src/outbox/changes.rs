//! Changes that caches must hear of, on this instance and on every other one sharing the
//! database.
//!
//! Every change that an instance may have cached (a user deactivated or its token rotated,
//! a device disabled or rotated, a certificate revoked) drops the local caches at once and
//! appends an event to the database. Each instance polls for the other instances' events
//! every [`POLL`] and applies them: it drops the same cache entries and, for a revocation,
//! re-signs its own CRL. Polling a small indexed table works the same on SQLite and
//! PostgreSQL and needs no extra connection per instance (LISTEN/NOTIFY would hold one and
//! still need a catch-up query after a reconnect); at 200 ms it keeps every instance within
//! the 1-second bound.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use fleetca_storage::{Certificate, Store};
use futures_util::future::BoxFuture;
use uuid::Uuid;

use crate::support::Error;
use crate::support::clock::Clock;

/// What a change must reach on this instance: the credential caches and the CRL. The
/// contexts that own them implement it (see `app`), so this module imports none of them.
pub trait Subscriber: Send + Sync {
    /// A user's role, status, token or certificates changed.
    fn user_changed(&self, id: Uuid);
    /// An HA1 device changed.
    fn device_changed(&self, tenant: &str, device_id: &str);
    /// A product changed.
    fn product_changed(&self, product_key: &str);
    /// A sign-based device changed.
    fn product_device_changed(&self, product_key: &str, device_key: &str);
    /// Certificates were revoked: drop what was cached of them, and return once a CRL
    /// listing them is published.
    fn revoked<'a>(&'a self, certs: &'a [Certificate]) -> BoxFuture<'a, Result<(), Error>>;
    /// The intermediate CA `id` was revoked: list it on its root's CRL, and when it is the CA
    /// this instance issues from, stop issuing and revoke what it signed since (returned, for
    /// the CRLs and the other instances).
    fn ca_revoked(&self, id: i32) -> BoxFuture<'_, Result<Vec<Certificate>, Error>>;
    /// The feed now follows every change from here on: load the caches that are kept whole.
    fn following(&self) -> BoxFuture<'_, ()>;
}

/// How often an instance looks for other instances' changes.
pub const POLL: Duration = Duration::from_millis(200);
/// How far back (in ids) each poll looks, for ids PostgreSQL committed out of order.
const LOOKBACK: i64 = 256;

/// Announces and applies changes.
pub struct Changes {
    store: Store,
    clock: Arc<dyn Clock>,
    /// Tells this instance's events from other instances'.
    instance_id: Uuid,
    local: Arc<dyn Subscriber>,
}

impl Changes {
    pub fn new(store: Store, clock: Arc<dyn Clock>, local: Arc<dyn Subscriber>) -> Self {
        Self {
            store,
            clock,
            instance_id: Uuid::new_v4(),
            local,
        }
    }

    async fn announce(&self, kind: &str, subject: &str) {
        if let Err(e) = self
            .store
            .record_event(self.instance_id, kind, subject, self.clock.now())
            .await
        {
            // Local caches are already dropped; other instances catch up when their
            // entries are next evicted. Logged so an operator sees it.
            tracing::warn!(error = %e, kind, "could not record a change for other instances");
        }
    }

    /// A user's role, status, token or certificates changed.
    pub async fn user_changed(&self, id: Uuid) {
        self.local.user_changed(id);
        self.announce("user", &id.to_string()).await;
    }

    /// A device's status or credentials changed, or it was created or deleted.
    pub async fn device_changed(&self, tenant: &str, device_id: &str) {
        self.local.device_changed(tenant, device_id);
        self.announce("device", &format!("{tenant}/{device_id}")).await;
    }

    /// A product's status, settings or secret changed, or it was deleted.
    pub async fn product_changed(&self, product_key: &str) {
        self.local.product_changed(product_key);
        self.announce("product", product_key).await;
    }

    /// A sign-based device's status, secret or activation changed, or it was deleted.
    pub async fn product_device_changed(&self, product_key: &str, device_key: &str) {
        self.local.product_device_changed(product_key, device_key);
        self.announce("product_device", &format!("{product_key}/{device_key}"))
            .await;
    }

    /// Certificates were revoked in the database: returns once a CRL listing them is
    /// published, and tells the caches here and on other instances.
    pub async fn revoked(&self, certs: &[Certificate]) -> Result<(), Error> {
        if certs.is_empty() {
            return Ok(());
        }
        // Other instances are told even when this one's publication failed: their CRLs must
        // list the revocation whatever happened here (the local one is retried).
        let published = self.local.revoked(certs).await;
        for cert in certs {
            let reason = cert.revocation_reason.clone().unwrap_or_else(|| "unspecified".into());
            metrics::counter!("fleetca_certificates_revoked_total", "reason" => reason).increment(1);
        }
        // One write for the lot (a bulk revocation may name 10,000).
        let subjects: Vec<String> = certs.iter().map(|c| c.id.to_string()).collect();
        if let Err(e) = self
            .store
            .record_events(self.instance_id, "revoked", &subjects, self.clock.now())
            .await
        {
            tracing::warn!(error = %e, kind = "revoked", "could not record a change for other instances");
        }
        published
    }

    /// An intermediate CA was revoked (on this instance): its root's CRL lists it here and on
    /// every other instance.
    pub async fn ca_revoked(&self, id: i32) -> Result<(), Error> {
        let here = self.local.ca_revoked(id).await;
        self.announce("ca_revoked", &id.to_string()).await;
        let stray = here?;
        self.revoked(&stray).await
    }

    async fn apply(&self, kind: &str, subject: &str) {
        match kind {
            "user" => {
                if let Ok(id) = Uuid::parse_str(subject) {
                    self.local.user_changed(id);
                }
            }
            "device" => {
                if let Some((tenant, device_id)) = subject.split_once('/') {
                    self.local.device_changed(tenant, device_id);
                }
            }
            "product" => self.local.product_changed(subject),
            "product_device" => {
                if let Some((product_key, device_key)) = subject.split_once('/') {
                    self.local.product_device_changed(product_key, device_key);
                }
            }
            "revoked" => self.apply_revoked(&[subject.to_owned()]).await,
            "ca_revoked" => {
                let Ok(id) = subject.parse::<i32>() else { return };
                match self.local.ca_revoked(id).await {
                    Ok(stray) => {
                        if let Err(e) = self.revoked(&stray).await {
                            tracing::error!(error = %e, ca = id, "could not publish the revocation of what a revoked CA signed here");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, ca = id, "could not list another instance's CA revocation"),
                }
            }
            _ => {}
        }
    }

    /// Other instances revoked these certificates: drop cached decisions and publish one CRL
    /// that lists them all.
    async fn apply_revoked(&self, subjects: &[String]) {
        let ids: Vec<Uuid> = subjects.iter().filter_map(|s| Uuid::parse_str(s).ok()).collect();
        let certs = match self.store.certificates_by_ids(&ids).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not load revoked certificates");
                return;
            }
        };
        let revoked: Vec<_> = certs.into_iter().filter(|c| c.revoked_at.is_some()).collect();
        if !revoked.is_empty()
            && let Err(e) = self.local.revoked(&revoked).await
        {
            tracing::error!(error = %e, "could not re-sign the CRL for another instance's revocation");
        }
    }

    /// Polls for other instances' changes until the process stops.
    pub fn spawn(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let floor = loop {
                match me.store.last_event_id().await {
                    Ok(id) => break id,
                    Err(e) => {
                        tracing::warn!(error = %e, "waiting to read the change log");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            };
            let local = me.local.clone();
            tokio::spawn(async move { local.following().await });
            let mut seen: BTreeSet<i64> = BTreeSet::new();
            let mut high = floor;
            let mut ticks: u64 = 0;
            let mut interval = tokio::time::interval(POLL);
            loop {
                interval.tick().await;
                ticks += 1;
                let from = (high - LOOKBACK).max(floor);
                let events = match me.store.events_after(from, 10_000).await {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::debug!(error = %e, "change log poll failed");
                        continue;
                    }
                };
                // Revocations are applied together: one CRL for a poll's worth of them.
                let mut revoked = Vec::new();
                for event in events {
                    if !seen.insert(event.id) {
                        continue;
                    }
                    high = high.max(event.id);
                    if event.origin == me.instance_id {
                        continue;
                    }
                    if event.kind == "revoked" {
                        revoked.push(event.subject);
                    } else {
                        me.apply(&event.kind, &event.subject).await;
                    }
                }
                if !revoked.is_empty() {
                    me.apply_revoked(&revoked).await;
                }
                // Forget ids that can no longer come back into the window.
                seen = seen.split_off(&(high - LOOKBACK));
                if ticks.is_multiple_of(3000) {
                    let _ = me.store.prune_events(me.clock.now() - chrono::Duration::hours(1)).await;
                }
            }
        });
    }
}
