//! What the overview and CA pages, and the readiness probe, report: counts in the caller's
//! scope, the CA's facts, the CRL's state and whether the service can do its work.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use fleetca_ca::Authority;
use fleetca_ca::crl::Reason;
use fleetca_storage::Store;
use fleetca_storage::stats::Scope;

use crate::brokers::acl::AclConfig;
use crate::brokers::canary::{CanaryBoard, CanaryStatus};
use crate::domain::AuditAction;
use crate::domain::{Principal, Role};
use crate::pki::crl::{CrlPublisher, PublishStatus, PublishedCrl};
use crate::support::Error;
use crate::support::clock::Clock;

/// Counts in a caller's scope.
pub struct Stats {
    pub counts: fleetca_storage::stats::Stats,
    /// Active certificates by the month (`YYYY-MM`) they expire.
    pub expiries_by_month: BTreeMap<String, u64>,
}

/// The CA certificate's facts.
pub struct CaFacts {
    pub subject: String,
    pub fingerprint: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub certificate_pem: String,
    /// Every CA, oldest first.
    pub authorities: Vec<CaSummary>,
}

/// One CA as the overview shows it.
pub struct CaSummary {
    pub id: i32,
    pub role: crate::domain::CaRole,
    pub state: crate::domain::CaState,
    /// Its subject (none while it waits for its certificate).
    pub subject: Option<String>,
    pub not_after: Option<DateTime<Utc>>,
    /// Whether fleetca holds its key.
    pub holds_key: bool,
    /// `token` when a PKCS#11 token holds its key, `database` when it is sealed there.
    pub key_store: Option<&'static str>,
    /// Certificates it signed that have not expired (revoked ones included).
    pub live_certificates: u64,
    /// Whether this instance runs with it as stored (false: it was added, imported or
    /// activated since this instance started; a restart brings it in).
    pub loaded: bool,
    /// When its root revoked it, and why (kept once it retires).
    pub revoked: Option<(DateTime<Utc>, String)>,
}

/// Whether this instance can serve.
pub struct Readiness {
    pub database: bool,
    /// The issuing CA's key can sign (always, for a sealed key; a token's answers).
    pub ca_key: bool,
    pub crl: Option<PublishedCrl>,
    pub publish: PublishStatus,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.database && self.ca_key && self.publish.ok
    }
}

/// Settings the admin UI shows rather than copies (so it never drifts from the server).
pub struct Settings {
    pub revocation_reasons: Vec<&'static str>,
    pub acl: AclConfig,
}

/// The overview queries (built by the wiring in `app.rs`, from what it reads).
pub struct OverviewService {
    pub store: Store,
    /// The first CA (the root clients trust).
    pub ca: Arc<Authority>,
    pub cas: Arc<crate::pki::authorities::Authorities>,
    pub crl: Arc<CrlPublisher>,
    pub clock: Arc<dyn Clock>,
    pub acl: AclConfig,
    pub hasher: Arc<crate::identity::hashing::Hasher>,
    pub canaries: Arc<CanaryBoard>,
}

/// Gauges read when metrics are scraped.
#[derive(Debug)]
pub struct Gauges {
    pub crl: Option<PublishedCrl>,
    pub crl_age_seconds: i64,
    pub publish_ok: bool,
    pub expiring_7d: u64,
    pub expiring_30d: u64,
    pub hashes_in_flight: usize,
    pub hashes_waiting: usize,
    pub pool_open: u32,
    pub pool_idle: usize,
    /// Webhook deliveries waiting for an attempt, and those given up.
    pub webhooks_pending: u64,
    pub webhooks_failed: u64,
    /// Disconnects waiting for a broker's confirmation, and those given up.
    pub disconnects_pending: u64,
    pub disconnects_failed: u64,
}

impl OverviewService {
    /// The revocation canary's latest check of each broker it watches.
    pub fn canaries(&self) -> Vec<CanaryStatus> {
        self.canaries.statuses()
    }

    /// What the metrics read at scrape time: the CRL, certificates expiring within 7 and 30
    /// days, password hashes in flight and waiting, database connections.
    pub async fn gauges(&self) -> Result<Gauges, Error> {
        let now = self.clock.now();
        let crl = self.crl.current();
        let (hashes_in_flight, hashes_waiting) = self.hasher.load();
        let (pool_open, pool_idle) = self.store.pool_connections();
        Ok(Gauges {
            crl_age_seconds: crl.as_ref().map_or(0, |c| (now - c.this_update).num_seconds()),
            crl,
            publish_ok: self.crl.status().ok,
            expiring_7d: self.store.count_expiring(now, chrono::Duration::days(7)).await?,
            expiring_30d: self.store.count_expiring(now, chrono::Duration::days(30)).await?,
            hashes_in_flight,
            hashes_waiting,
            pool_open,
            pool_idle,
            webhooks_pending: self.store.count_deliveries(fleetca_storage::webhooks::PENDING).await?,
            webhooks_failed: self.store.count_deliveries(fleetca_storage::webhooks::FAILED).await?,
            disconnects_pending: self
                .store
                .count_disconnects(fleetca_storage::disconnects::PENDING)
                .await?,
            disconnects_failed: self
                .store
                .count_disconnects(fleetca_storage::disconnects::FAILED)
                .await?,
        })
    }

    /// Counts in the caller's scope.
    pub async fn stats(&self, caller: &Principal) -> Result<Stats, Error> {
        let scope = match caller.role {
            Role::Admin => Scope::All,
            Role::Manager => Scope::Enterprise(caller.enterprise.clone()),
            Role::Service => Scope::ApiKey(caller.id),
        };
        let counts = self.store.stats(&scope, self.clock.now()).await?;
        let mut expiries_by_month = BTreeMap::new();
        for t in &counts.active_expiries {
            *expiries_by_month.entry(t.format("%Y-%m").to_string()).or_default() += 1;
        }
        Ok(Stats {
            counts,
            expiries_by_month,
        })
    }

    /// The facts of the first CA (the root clients trust; with one CA, that CA) and a line
    /// for every CA.
    pub async fn ca(&self) -> Result<CaFacts, Error> {
        let live = self.store.live_certificates(self.clock.now()).await?;
        // The CAs as stored: one added since this instance started shows too (marked not
        // loaded), so the admin can import its certificate or activate it.
        let rows = self.store.authorities().await?;
        let authorities = rows
            .into_iter()
            .filter_map(|row| {
                let role = crate::domain::CaRole::parse(&row.role)?;
                let state = crate::domain::CaState::parse(&row.state)?;
                let (subject, not_after) = crate::pki::authorities::certificate_facts(&row.certificate_pem).unzip();
                let key_store = if row.key_label.is_some() {
                    Some("token")
                } else if row.sealed_key.is_empty() {
                    None
                } else {
                    Some("database")
                };
                let loaded = self
                    .cas
                    .all()
                    .iter()
                    .any(|c| c.id == row.id && c.state == state && c.certificate_pem == row.certificate_pem);
                Some(CaSummary {
                    id: row.id,
                    role,
                    state,
                    subject,
                    not_after,
                    holds_key: key_store.is_some(),
                    key_store,
                    live_certificates: live.iter().find(|(id, _)| *id == row.id).map_or(0, |(_, n)| *n),
                    loaded,
                    revoked: row
                        .revoked_at
                        .map(|at| (at, row.revocation_reason.clone().unwrap_or_default())),
                })
            })
            .collect();
        Ok(CaFacts {
            subject: self.ca.subject().to_owned(),
            fingerprint: self.ca.fingerprint(),
            not_before: self.ca.not_before(),
            not_after: self.ca.not_after(),
            certificate_pem: self.ca.certificate_pem().to_owned(),
            authorities,
        })
    }

    /// The issuing CA's CRL and how the last publication went.
    pub fn crl(&self) -> (Option<PublishedCrl>, PublishStatus) {
        (self.crl.current(), self.crl.status())
    }

    /// CA `id`'s current CRL.
    pub fn crl_of(&self, id: i32) -> Option<PublishedCrl> {
        self.crl.current_of(id)
    }

    /// Shard `shard` of CA `id`'s current CRL.
    pub fn crl_shard(&self, id: i32, shard: i16) -> Option<PublishedCrl> {
        self.crl.current_shard(id, shard)
    }

    /// Every CA's current CRL, PEM (see [`CrlPublisher::all_pem`]).
    pub fn all_crls_pem(&self) -> Option<(bytes::Bytes, chrono::DateTime<chrono::Utc>, String)> {
        self.crl.all_pem()
    }

    /// Whether the database answers and the last CRL publication succeeded.
    pub async fn readiness(&self) -> Readiness {
        // A key sealed in the database always signs; a token's is asked (cheaply, at most
        // once a second, never waiting for a busy token) off the async threads.
        let issuer = self.cas.issuer();
        let ca_key = issuer.key_in_token().is_none() || {
            let probe = tokio::task::spawn_blocking(move || issuer.key_available());
            matches!(
                tokio::time::timeout(std::time::Duration::from_secs(3), probe).await,
                Ok(Ok(Ok(())))
            )
        };
        Readiness {
            database: self.store.ping().await,
            ca_key,
            crl: self.crl.current(),
            publish: self.crl.status(),
        }
    }

    /// Repairs made after a restore that no admin has acknowledged yet.
    pub async fn open_repairs(&self) -> Result<Vec<fleetca_storage::repairs::Repair>, Error> {
        Ok(self.store.open_repairs().await?)
    }

    /// An admin acknowledges a repair: `/readyz` stops showing it.
    pub async fn acknowledge_repair(
        &self,
        caller: &Principal,
        id: uuid::Uuid,
    ) -> Result<fleetca_storage::repairs::Repair, Error> {
        let record = crate::outbox::audit::by(
            caller,
            AuditAction::CrlRepairAcknowledge,
            "repair",
            &id.to_string(),
            None,
            serde_json::json!({}),
        );
        self.store
            .acknowledge_repair(id, &caller.username, &[record], self.clock.now())
            .await
            .map_err(crate::support::error::not_found_as("repair"))
    }

    /// The server's settings the UI needs.
    pub fn settings(&self) -> Settings {
        Settings {
            revocation_reasons: Reason::ALL.iter().map(|r| r.name()).collect(),
            acl: self.acl.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::app::testing::{Kit, admin, manager};

    use super::*;

    #[tokio::test]
    async fn counts_stay_in_the_callers_scope() {
        let kit = Kit::new().await;
        let (a, _) = kit.api_key("svc-acme", "acme").await;
        let (g, _) = kit.api_key("svc-globex", "globex").await;
        kit.certificate(&a).await;
        kit.certificate(&g).await;
        kit.certificate(&g).await;
        let overview = OverviewService {
            store: kit.store.clone(),
            ca: kit.ca.clone(),
            cas: Arc::new(crate::pki::authorities::Authorities::single(
                kit.ca.clone(),
                "http://fleetca.test",
            )),
            crl: kit.crl.clone(),
            clock: kit.clock.clone(),
            acl: AclConfig::default(),
            hasher: Arc::new(crate::identity::hashing::Hasher::new().unwrap()),
            canaries: Arc::default(),
        };
        assert_eq!(overview.stats(&admin()).await.unwrap().counts.active, 3);
        let gauges = overview.gauges().await.unwrap();
        assert_eq!((gauges.expiring_7d, gauges.expiring_30d), (0, 0));
        // The issuing CA's own CRL and its shards share its numbers: one each.
        let crls = 1 + u64::from(crate::pki::authorities::CRL_SHARDS);
        assert_eq!(gauges.crl.map(|c| c.number), Some(crls));
        kit.clock.set(kit.clock.now() + chrono::Duration::days(340));
        assert_eq!(overview.gauges().await.unwrap().expiring_30d, 3);
        let acme = overview.stats(&manager("acme")).await.unwrap();
        assert_eq!((acme.counts.active, acme.counts.api_keys), (1, 1));
        assert_eq!(acme.expiries_by_month.values().sum::<u64>(), 1);
        assert!(overview.readiness().await.ready());
        assert!(overview.settings().revocation_reasons.contains(&"keyCompromise"));
    }
}
