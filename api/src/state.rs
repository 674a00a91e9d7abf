//! What every request shares: the settings and the services, each built once at start-up
//! (see `startup::prepare`). This type only groups them; no service sees it.

use std::sync::Arc;

use crate::brokers::decision::BrokerService;
use crate::config::Config;
use crate::fleet::devices::DeviceService;
use crate::fleet::products::ProductService;
use crate::identity::sessions::SessionService;
use crate::identity::tokens::Tokens;
use crate::identity::users::UserService;
use crate::ops::overview::OverviewService;
use crate::outbox::changes::Changes;
use crate::pki::certificates::CertificateService;

/// Shared state, behind `web::Data`.
pub struct AppState {
    pub config: Config,
    pub tokens: Arc<Tokens>,
    pub sessions: SessionService,
    pub users: UserService,
    pub certificates: CertificateService,
    pub devices: DeviceService,
    pub products: ProductService,
    pub est: crate::pki::est::EstService,
    pub claims: crate::pki::claims::ClaimService,
    pub audit: crate::outbox::audit::AuditService,
    pub webhooks: crate::outbox::webhooks::WebhookService,
    pub disconnects: crate::brokers::disconnects::DisconnectService,
    pub rabbitmq: crate::brokers::rabbitmq::RabbitMq,
    /// Started by `startup::serve`.
    pub disconnect_worker: Option<crate::brokers::disconnects::Worker>,
    /// Started by `startup::serve`.
    pub canary_worker: Option<crate::brokers::canary::CanaryWorker>,
    pub renewal: Arc<crate::pki::renewal::RenewalService>,
    pub broker: Arc<BrokerService>,
    pub overview: OverviewService,
    pub changes: Arc<Changes>,
    /// The HTTPS listener's configuration, taken by `startup::serve`.
    pub tls: Option<rustls::ServerConfig>,
}
