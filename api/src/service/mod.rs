//! The domain layer: each flow (authorize → sign with `ca` → store → publish the CRL) lives
//! here, once. A service is a struct built once from exactly the dependencies it uses, with
//! methods on `&self`; it takes validated input types from [`crate::domain`] and returns
//! [`Error`], in domain words. Nothing here knows about HTTP, actix, utoipa or
//! the application state: handlers parse, authorise and call one method.
//!
//! Dependencies between services point one way: `users`, `certificates` and `devices` use
//! `changes`, which uses `tokens`, `broker` and `crl`; `tokens` and `sessions` use `hashing`.

pub mod acl;
pub mod activation;
pub mod audit;
pub mod broker;
pub mod cache;
pub mod canary;
pub mod certificates;
pub mod changes;
pub mod claims;
pub mod clock;
pub mod crl;
pub mod devices;
pub mod disconnects;
pub mod error;
pub mod est;
pub mod files;
pub mod hashing;
pub mod issuer;
pub mod limits;
pub mod overview;
pub mod products;
pub mod published;
pub mod rabbitmq;
pub mod renewal;
pub mod sessions;
pub mod tokens;
pub mod users;
pub mod webhooks;

pub use error::Error;

/// An HTTP client builder for fleetca's outgoing calls (webhooks, brokers): rustls with the
/// ring provider, no proxy from the environment, no redirects.
pub fn http_client() -> reqwest::ClientBuilder {
    // reqwest takes the process's default provider; fleetca uses ring everywhere.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
}

/// An error and its chain of causes in one line (`what: cause: cause`), for logs and for
/// what an outgoing call's log shows (a delivery's `last_error`, a disconnect's).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// An outgoing HTTP call's failure in words: what went wrong, then its causes.
pub fn describe_request_error(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(cause) => format!("{what}: {}", error_chain(cause)),
        None => what.to_owned(),
    }
}

/// Runs CPU-heavy work (argon2, key generation) on the blocking pool.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("blocking task failed: {e}")))
}

/// What the services are built from.
pub struct Dependencies {
    pub store: fleetca_storage::Store,
    pub master: std::sync::Arc<fleetca_ca::MasterKey>,
    pub ca: std::sync::Arc<fleetca_ca::Authority>,
    pub clock: std::sync::Arc<dyn clock::Clock>,
    pub hasher: std::sync::Arc<hashing::Hasher>,
    pub broker: broker::BrokerPolicy,
    pub crl: crl::CrlSettings,
    /// The enterprise server certificates are filed under (the admins').
    pub server_enterprise: String,
    /// Certificate creations and revocations a minute per enterprise, by managers (0: no limit).
    pub certificate_changes_per_minute: u32,
    /// HTTPS dynamic registrations a minute per product (0: no limit).
    pub registrations_per_minute: u32,
    /// Where activation messages go, when fleetca publishes them over MQTT.
    pub activations: Option<tokio::sync::mpsc::Sender<broker::ActivationEvent>>,
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
}

/// Every service, each built from exactly the dependencies it uses. This is the one place
/// that wires them; `startup` and the unit tests both call it.
pub struct Services {
    pub issuer: std::sync::Arc<issuer::Issuer>,
    pub tokens: std::sync::Arc<tokens::Tokens>,
    pub broker: std::sync::Arc<broker::BrokerService>,
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
            ca,
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
        } = deps;
        let acl = broker.acl.clone();
        let crl_url = crl.url.clone();
        let crl = crl::CrlPublisher::start(ca.clone(), store.clone(), clock.clone(), crl).await?;
        let tokens = Arc::new(tokens::Tokens::new(store.clone(), hasher.clone(), 100_000)?);
        let hasher_for_overview = hasher.clone();
        let broker = Arc::new(broker::BrokerService::new(
            store.clone(),
            master.clone(),
            ca.clone(),
            tokens.clone(),
            clock.clone(),
            broker,
            activations,
        ));
        let changes = Arc::new(changes::Changes::new(
            store.clone(),
            clock.clone(),
            tokens.clone(),
            broker.clone(),
            crl.clone(),
        ));
        let issue_queue = store.issue_queue();
        let canary_worker = canary::CanaryWorker::new(
            canary::CanaryDeps {
                ca: ca.clone(),
                queue: issue_queue.clone(),
                store: store.clone(),
                crl: crl.clone(),
                changes: changes.clone(),
                clock: clock.clone(),
                crl_url: crl_url.clone(),
                enterprise: server_enterprise.clone(),
            },
            canary,
        );
        let issuer = Arc::new(issuer::Issuer::new(
            ca.clone(),
            issue_queue,
            clock.clone(),
            crl_url,
            server_enterprise,
        ));
        Ok(Self {
            sessions: sessions::SessionService::new(store.clone(), hasher.clone(), clock.clone()),
            users: users::UserService::new(store.clone(), hasher, changes.clone(), clock.clone()),
            certificates: certificates::CertificateService::new(
                store.clone(),
                issuer.clone(),
                tokens.clone(),
                changes.clone(),
                clock.clone(),
                limits::RateLimiter::new(certificate_changes_per_minute),
            ),
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
            disconnect_worker: Some(
                disconnects::Worker::new(store.clone(), clock.clone(), disconnects)
                    .map_err(|e| Error::Internal(format!("the disconnect worker: {e}")))?,
            ),
            renewal: Arc::new(renewal::RenewalService::new(
                store.clone(),
                issuer.clone(),
                tokens.clone(),
                changes.clone(),
                clock.clone(),
                renewal,
            )),
            overview: overview::OverviewService::new(
                store,
                ca,
                crl.clone(),
                clock,
                acl,
                hasher_for_overview,
                canary_worker.board(),
            ),
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

    use super::acl::AclConfig;
    use super::broker::{BrokerPolicy, BrokerService};
    use super::certificates::CertificateService;
    use super::clock::{Clock, FixedClock};
    use super::crl::{CrlPublisher, CrlSettings};
    use super::devices::DeviceService;
    use super::hashing::Hasher;
    use super::sessions::SessionService;
    use super::tokens::Tokens;
    use super::users::UserService;
    use super::{Dependencies, Services};
    use crate::domain::{Principal, Role};

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
        pub products: super::products::ProductService,
        pub est: super::est::EstService,
        pub claims: super::claims::ClaimService,
        pub renewal: Arc<super::renewal::RenewalService>,
        pub audit: super::audit::AuditService,
        pub webhooks: super::webhooks::WebhookService,
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
        pub async fn with_activations() -> (Self, tokio::sync::mpsc::Receiver<super::broker::ActivationEvent>) {
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            (Self::with_parts(|_| {}, Some(tx)).await, rx)
        }

        async fn with_parts(
            tweak: impl FnOnce(&mut BrokerPolicy),
            activations: Option<tokio::sync::mpsc::Sender<super::broker::ActivationEvent>>,
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
                ca: ca.clone(),
                clock: clock.clone(),
                hasher: Arc::new(Hasher::new().unwrap()),
                broker: policy,
                crl: CrlSettings {
                    url: "http://fleetca.test/crl.der".into(),
                    validity: chrono::Duration::days(7),
                    file: None,
                    reload_command: None,
                    record: None,
                },
                server_enterprise: "default".into(),
                certificate_changes_per_minute: 600,
                registrations_per_minute: 60,
                activations,
                renewal: super::renewal::RenewalPolicy::default(),
                webhooks: super::webhooks::WebhookPolicy {
                    allow_private: true,
                    ..Default::default()
                },
                disconnects: Default::default(),
                rabbitmq: Default::default(),
                canary: Default::default(),
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
            let input = super::users::CreateUser {
                username: crate::domain::Username::parse(username).unwrap(),
                is_service_account: true,
                enterprise: Some(crate::domain::Enterprise::parse(enterprise).unwrap()),
                role: None,
                password: None,
            };
            self.users.create(&admin(), input).await.unwrap()
        }

        /// A client certificate for an API key, with a key fleetca made.
        pub async fn certificate(&self, key: &fleetca_storage::User) -> super::certificates::Created {
            let input = super::certificates::CreateCertificate {
                name: crate::domain::CertificateName::parse("unit").unwrap(),
                api_key_id: key.id,
                validity: crate::domain::ValidityHours::parse(None).unwrap(),
                csr: None,
            };
            self.certificates.create(&admin(), input).await.unwrap()
        }
    }
}
