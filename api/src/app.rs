//! The one place that wires the contexts: [`Services::build`] builds every service from
//! exactly the dependencies it uses (the unit tests' kit calls it too), and `startup`
//! turns the result into the application state. Nothing imports this module but `startup`,
//! `state` and the tests.

use crate::brokers::families::rabbitmq;
use crate::brokers::{canary, decision, disconnects, feed};
use crate::fleet::{devices, products};
use crate::identity::{hashing, sessions, tokens, users};
use crate::ops::overview;
use crate::outbox::{audit, changes, webhooks};
use crate::pki::{certificates, claims, crl, est, issuer, renewal};
use crate::support::{Error, clock, limits};

/// What a change reaches on this instance: the token and broker caches, the CRL, and the
/// mosquitto plugins following this instance's feed.
struct LocalCaches {
    tokens: std::sync::Arc<tokens::Tokens>,
    feed: std::sync::Arc<feed::Feed>,
    broker: std::sync::Arc<decision::BrokerService>,
    crl: std::sync::Arc<crl::CrlPublisher>,
    issuer: std::sync::Arc<issuer::Issuer>,
    store: fleetca_storage::Store,
    clock: std::sync::Arc<dyn clock::Clock>,
}

impl changes::Subscriber for LocalCaches {
    fn following(&self) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            match self.tokens.warm().await {
                Ok(n) => tracing::debug!(api_keys = n, "API keys loaded for issuance"),
                Err(e) => tracing::warn!(error = %e, "API keys not loaded ahead; each loads when first used"),
            }
        })
    }
    fn user_changed(&self, id: uuid::Uuid) {
        self.tokens.invalidate_user(id);
        self.broker.invalidate_key(id);
        self.feed.drop_tags(vec![feed::user_tag(id)]);
    }
    fn device_changed(&self, tenant: &str, device_id: &str) {
        self.broker.invalidate_device(tenant, device_id);
        self.feed.drop_tags(vec![feed::device_tag(tenant, device_id)]);
    }
    fn product_changed(&self, product_key: &str) {
        self.broker.invalidate_product(product_key);
        self.feed.drop_tags(vec![feed::product_tag(product_key)]);
    }
    fn product_device_changed(&self, product_key: &str, device_key: &str) {
        self.broker.invalidate_sign_device(product_key, device_key);
        self.feed
            .drop_tags(vec![feed::product_device_tag(product_key, device_key)]);
    }
    fn revoked<'a>(
        &'a self,
        certs: &'a [fleetca_storage::Certificate],
    ) -> futures_util::future::BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            for key in certs.iter().filter_map(|c| c.api_key_id) {
                self.broker.invalidate_key(key);
            }
            self.feed
                .drop_tags(certs.iter().map(|c| feed::cert_tag(&c.fingerprint)).collect());
            self.crl.add_revocations(certs.iter()).await
        })
    }
    fn ca_revoked(
        &self,
        id: i32,
    ) -> futures_util::future::BoxFuture<'_, Result<Vec<fleetca_storage::Certificate>, Error>> {
        Box::pin(async move {
            let listed = self.crl.sync_ca_revocations().await;
            if !self.issuer.stop_if_issuing(id) {
                return listed.map(|()| Vec::new());
            }
            // Issued here from the revoked CA before this instance heard of it.
            let reason = self
                .store
                .authorities()
                .await?
                .into_iter()
                .find(|r| r.id == id)
                .and_then(|r| r.revocation_reason)
                .and_then(|r| r.parse().ok())
                .unwrap_or(fleetca_ca::crl::Reason::CaCompromise);
            let leaf = crate::pki::rotation::leaf_reason(reason).name();
            let template = audit::system(
                crate::domain::AuditAction::CertificateRevoke,
                "certificate",
                "",
                None,
                serde_json::json!({"why": format!("signed by CA {id} after it was revoked")}),
            );
            let stray = self
                .store
                .revoke_leaves_of(id, leaf, &audit::revocations(template, leaf), self.clock.now())
                .await?;
            listed.map(|()| stray)
        })
    }
}

/// What the services are built from.
pub struct Dependencies {
    pub store: fleetca_storage::Store,
    pub master: std::sync::Arc<fleetca_ca::MasterKey>,
    pub cas: std::sync::Arc<crate::pki::authorities::Authorities>,
    pub clock: std::sync::Arc<dyn clock::Clock>,
    pub hasher: std::sync::Arc<hashing::Hasher>,
    pub broker: decision::BrokerPolicy,
    pub crl: crl::CrlSettings,
    /// The enterprise server certificates are filed under (the admins').
    pub server_enterprise: String,
    /// Certificate creations and revocations a minute per enterprise, by managers (0: no limit).
    pub certificate_changes_per_minute: u32,
    /// HTTPS dynamic registrations a minute per product (0: no limit).
    pub registrations_per_minute: u32,
    /// Where activation messages go, when fleetca publishes them over MQTT.
    pub activations: Option<tokio::sync::mpsc::Sender<decision::ActivationEvent>>,
    /// When certificates may renew themselves, and the grace of the old ones.
    pub renewal: renewal::RenewalPolicy,
    /// How webhooks are delivered.
    pub webhooks: webhooks::WebhookPolicy,
    /// The brokers told to end live sessions.
    pub disconnects: disconnects::DisconnectPolicy,
    /// RabbitMQ's MQTT virtual host and exchange.
    pub rabbitmq: rabbitmq::RabbitMqSettings,
    /// The brokers the revocation canary checks, and how often.
    pub canary: canary::CanaryPolicy,
    /// The PKCS#11 token CA keys may live in.
    pub token: Option<std::sync::Arc<fleetca_ca::token::Token>>,
    /// The algorithm of CA keys fleetca makes.
    pub ca_key_algorithm: fleetca_ca::CaAlgorithm,
    /// Where fleetca is reached (names the CRLs of the CAs it adds).
    pub public_url: String,
}

/// Every service, each built from exactly the dependencies it uses. This is the one place
/// that wires them; `startup` and the unit tests both call it.
pub struct Services {
    pub issuer: std::sync::Arc<issuer::Issuer>,
    pub tokens: std::sync::Arc<tokens::Tokens>,
    pub broker: std::sync::Arc<decision::BrokerService>,
    pub crl: std::sync::Arc<crl::CrlPublisher>,
    pub changes: std::sync::Arc<changes::Changes>,
    pub users: users::UserService,
    pub certificates: certificates::CertificateService,
    pub devices: devices::DeviceService,
    pub products: products::ProductService,
    pub sessions: sessions::SessionService,
    pub overview: overview::OverviewService,
    pub est: est::EstService,
    pub claims: claims::ClaimService,
    pub renewal: std::sync::Arc<renewal::RenewalService>,
    pub audit: audit::AuditService,
    pub webhooks: webhooks::WebhookService,
    pub disconnects: disconnects::DisconnectService,
    pub rabbitmq: rabbitmq::RabbitMq,
    /// Adding, importing and activating CAs.
    pub authorities: crate::pki::rotation::CaAdmin,
    /// The change feed fleetca's mosquitto plugins follow.
    pub feed: std::sync::Arc<feed::Feed>,
    /// Started by `startup::serve`.
    pub disconnect_worker: Option<disconnects::Worker>,
    /// Started by `startup::serve`.
    pub canary_worker: Option<canary::CanaryWorker>,
}

impl Services {
    /// Builds every service and publishes a first CRL.
    pub async fn build(deps: Dependencies) -> Result<Self, Error> {
        use std::sync::Arc;
        let Dependencies {
            store,
            master,
            cas,
            clock,
            hasher,
            broker,
            crl,
            server_enterprise,
            certificate_changes_per_minute,
            registrations_per_minute,
            activations,
            renewal,
            webhooks,
            disconnects,
            rabbitmq,
            canary,
            token,
            ca_key_algorithm,
            public_url,
        } = deps;
        let acl = broker.acl.clone();
        let crl = crl::CrlPublisher::start(&cas, store.clone(), clock.clone(), crl).await?;
        let tokens = Arc::new(tokens::Tokens::new(store.clone(), hasher.clone(), 100_000)?);
        let hasher_for_overview = hasher.clone();
        let broker = Arc::new(decision::BrokerService::new(
            store.clone(),
            master.clone(),
            cas.clone(),
            tokens.clone(),
            clock.clone(),
            broker,
            activations,
        ));
        let issuer = Arc::new(issuer::Issuer::new(
            cas.clone(),
            store.issue_queue(crate::pki::issuance::planner()),
            clock.clone(),
            server_enterprise,
        ));
        let local = Arc::new(LocalCaches {
            tokens: tokens.clone(),
            feed: disconnects.feed.clone(),
            broker: broker.clone(),
            crl: crl.clone(),
            issuer: issuer.clone(),
            store: store.clone(),
            clock: clock.clone(),
        });
        let changes = Arc::new(changes::Changes::new(store.clone(), clock.clone(), local));
        let canary_worker = canary::CanaryWorker::new(
            canary::CanaryDeps {
                issuer: issuer.clone(),
                store: store.clone(),
                crl: crl.clone(),
                changes: changes.clone(),
                clock: clock.clone(),
            },
            canary,
        );
        Ok(Self {
            sessions: sessions::SessionService::new(store.clone(), hasher.clone(), clock.clone()),
            users: users::UserService::new(store.clone(), hasher, changes.clone(), clock.clone()),
            certificates: certificates::CertificateService {
                revocations: store.revoke_queue(),
                store: store.clone(),
                issuer: issuer.clone(),
                tokens: tokens.clone(),
                changes: changes.clone(),
                clock: clock.clone(),
                limiter: limits::RateLimiter::new(certificate_changes_per_minute),
            },
            devices: devices::DeviceService::new(store.clone(), master.clone(), changes.clone(), clock.clone()),
            products: products::ProductService::new(
                store.clone(),
                master.clone(),
                changes.clone(),
                clock.clone(),
                registrations_per_minute,
            ),
            est: est::EstService::new(
                store.clone(),
                master.clone(),
                tokens.clone(),
                issuer.clone(),
                changes.clone(),
                clock.clone(),
            ),
            claims: claims::ClaimService::new(store.clone(), issuer.clone(), changes.clone(), clock.clone()),
            audit: audit::AuditService::new(store.clone(), clock.clone()),
            webhooks: webhooks::WebhookService::new(store.clone(), master.clone(), clock.clone(), webhooks),
            disconnects: disconnects::DisconnectService::new(store.clone(), &disconnects),
            rabbitmq: rabbitmq::RabbitMq::new(broker.clone(), rabbitmq),
            feed: disconnects.feed.clone(),
            disconnect_worker: Some(
                disconnects::Worker::new(store.clone(), clock.clone(), disconnects)
                    .map_err(|e| Error::Internal(format!("the disconnect worker: {e}")))?,
            ),
            renewal: Arc::new(renewal::RenewalService {
                store: store.clone(),
                issuer: issuer.clone(),
                tokens: tokens.clone(),
                changes: changes.clone(),
                clock: clock.clone(),
                policy: renewal,
            }),
            authorities: crate::pki::rotation::CaAdmin {
                store: store.clone(),
                keys: crate::pki::authorities::Keys {
                    master: master.clone(),
                    token,
                    algorithm: ca_key_algorithm,
                },
                public_url,
                clock: clock.clone(),
                loaded: cas.clone(),
                changes: changes.clone(),
            },
            overview: overview::OverviewService {
                store,
                ca: cas.first(),
                cas: cas.clone(),
                crl: crl.clone(),
                clock,
                acl,
                hasher: hasher_for_overview,
                canaries: canary_worker.board(),
            },
            canary_worker: Some(canary_worker),
            issuer,
            tokens,
            broker,
            crl,
            changes,
        })
    }
}

/// Services built from their dependencies alone, on a fresh SQLite database in a temporary
/// directory, for the unit tests of each service. No HTTP, no `AppState`.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use fleetca_ca::{Authority, CaSubject, MasterKey};
    use fleetca_storage::{Store, StoreOptions};
    use uuid::Uuid;

    use crate::app::Dependencies;
    use crate::app::Services;
    use crate::brokers::acl::AclConfig;
    use crate::brokers::decision::{BrokerPolicy, BrokerService};
    use crate::domain::{Principal, Role};
    use crate::fleet::devices::DeviceService;
    use crate::identity::hashing::Hasher;
    use crate::identity::sessions::SessionService;
    use crate::identity::tokens::Tokens;
    use crate::identity::users::UserService;
    use crate::pki::certificates::CertificateService;
    use crate::pki::crl::{CrlPublisher, CrlSettings};
    use crate::support::clock::{Clock, FixedClock};

    pub async fn store() -> Store {
        let dir = std::env::temp_dir().join(format!("fleetca-unit-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::connect(&StoreOptions {
            url: format!("sqlite://{}?mode=rwc", dir.join("t.db").display()),
            max_connections: 4,
        })
        .await
        .unwrap();
        store.migrate().await.unwrap();
        store
    }

    pub fn admin() -> Principal {
        Principal {
            id: Uuid::new_v4(),
            username: "root".into(),
            enterprise: "default".into(),
            role: Role::Admin,
            is_service_account: false,
            context: Default::default(),
        }
    }

    /// A DER PKCS#10 CSR for a new P-256 key, with subject CN `cn`.
    pub fn csr(cn: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.serialize_request(&key).unwrap().der().to_vec()
    }

    pub fn manager(enterprise: &str) -> Principal {
        Principal {
            id: Uuid::new_v4(),
            username: format!("mgr-{enterprise}"),
            enterprise: enterprise.into(),
            role: Role::Manager,
            is_service_account: false,
            context: Default::default(),
        }
    }

    /// Every service, wired as `startup` wires them.
    pub struct Kit {
        pub store: Store,
        pub clock: Arc<FixedClock>,
        pub ca: Arc<Authority>,
        pub tokens: Arc<Tokens>,
        pub broker: Arc<BrokerService>,
        pub crl: Arc<CrlPublisher>,
        pub users: UserService,
        pub certificates: CertificateService,
        pub devices: DeviceService,
        pub products: crate::fleet::products::ProductService,
        pub est: crate::pki::est::EstService,
        pub claims: crate::pki::claims::ClaimService,
        pub renewal: Arc<crate::pki::renewal::RenewalService>,
        pub audit: crate::outbox::audit::AuditService,
        pub webhooks: crate::outbox::webhooks::WebhookService,
        pub sessions: SessionService,
    }

    impl Kit {
        pub async fn new() -> Self {
            Self::with_policy(|_| {}).await
        }

        pub async fn with_policy(tweak: impl FnOnce(&mut BrokerPolicy)) -> Self {
            Self::with_parts(tweak, None).await
        }

        /// With the queue activation events go to.
        pub async fn with_activations() -> (
            Self,
            tokio::sync::mpsc::Receiver<crate::brokers::decision::ActivationEvent>,
        ) {
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            (Self::with_parts(|_| {}, Some(tx)).await, rx)
        }

        async fn with_parts(
            tweak: impl FnOnce(&mut BrokerPolicy),
            activations: Option<tokio::sync::mpsc::Sender<crate::brokers::decision::ActivationEvent>>,
        ) -> Self {
            let store = store().await;
            let clock = Arc::new(FixedClock::new(fleetca_storage::now()));
            let master = Arc::new(MasterKey::parse(&"11".repeat(32)).unwrap());
            let subject = CaSubject {
                common_name: "unit test CA".into(),
                organization: None,
            };
            let ca = Arc::new(Authority::create(&subject, clock.now(), chrono::Duration::days(3650)).unwrap());
            let stored = fleetca_storage::authority::StoredAuthority {
                certificate_pem: ca.certificate_pem().to_owned(),
                sealed_key: ca.seal_key(&master).unwrap(),
            };
            store.insert_authority(stored, clock.now()).await.unwrap();
            let mut policy = BrokerPolicy {
                acl: AclConfig::default(),
                timestamp_skew_seconds: 300,
                trust_username_for_certificates: false,
                publisher: Some(("fleetca-activation".into(), "publisher-password".into())),
            };
            tweak(&mut policy);
            let services = Services::build(Dependencies {
                store: store.clone(),
                master,
                cas: Arc::new(crate::pki::authorities::Authorities::single(
                    ca.clone(),
                    "http://fleetca.test",
                )),
                clock: clock.clone(),
                hasher: Arc::new(Hasher::new().unwrap()),
                broker: policy,
                crl: CrlSettings {
                    validity: chrono::Duration::days(7),
                    file: None,
                    reload_command: None,
                    access: Default::default(),
                    written: None,
                    record: None,
                },
                server_enterprise: "default".into(),
                certificate_changes_per_minute: 600,
                registrations_per_minute: 60,
                activations,
                renewal: crate::pki::renewal::RenewalPolicy::default(),
                webhooks: crate::outbox::webhooks::WebhookPolicy {
                    allow_private: true,
                    ..Default::default()
                },
                disconnects: Default::default(),
                rabbitmq: Default::default(),
                canary: Default::default(),
                token: None,
                ca_key_algorithm: Default::default(),
                public_url: "http://fleetca.test".into(),
            })
            .await
            .unwrap();
            Self {
                store,
                clock,
                ca,
                tokens: services.tokens,
                broker: services.broker,
                crl: services.crl,
                users: services.users,
                certificates: services.certificates,
                devices: services.devices,
                products: services.products,
                est: services.est,
                claims: services.claims,
                renewal: services.renewal,
                audit: services.audit,
                webhooks: services.webhooks,
                sessions: services.sessions,
            }
        }

        /// An API key in `enterprise`, with its token.
        pub async fn api_key(&self, username: &str, enterprise: &str) -> (fleetca_storage::User, String) {
            let input = crate::identity::users::CreateUser {
                username: crate::domain::Username::parse(username).unwrap(),
                is_service_account: true,
                enterprise: Some(crate::domain::Enterprise::parse(enterprise).unwrap()),
                role: None,
                password: None,
            };
            self.users.create(&admin(), input).await.unwrap()
        }

        /// A client certificate for an API key, with a key fleetca made.
        pub async fn certificate(&self, key: &fleetca_storage::User) -> crate::pki::certificates::Created {
            let input = crate::pki::certificates::CreateCertificate {
                name: crate::domain::CertificateName::parse("unit").unwrap(),
                api_key_id: key.id,
                validity: crate::domain::ValidityHours::parse(None).unwrap(),
                csr: None,
            };
            self.certificates.create(&admin(), input).await.unwrap()
        }
    }
}
