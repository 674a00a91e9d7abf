//! What every request shares: the settings and the services, each built once at start-up
//! (see `startup::prepare`). This type only groups them; no service sees it.

use std::sync::Arc;

use crate::config::Config;
use crate::service::broker::BrokerService;
use crate::service::certificates::CertificateService;
use crate::service::changes::Changes;
use crate::service::devices::DeviceService;
use crate::service::overview::OverviewService;
use crate::service::products::ProductService;
use crate::service::sessions::SessionService;
use crate::service::tokens::Tokens;
use crate::service::users::UserService;

/// Shared state, behind `web::Data`.
pub struct AppState {
    pub config: Config,
    pub tokens: Arc<Tokens>,
    pub sessions: SessionService,
    pub users: UserService,
    pub certificates: CertificateService,
    pub devices: DeviceService,
    pub products: ProductService,
    pub est: crate::service::est::EstService,
    pub claims: crate::service::claims::ClaimService,
    pub audit: crate::service::audit::AuditService,
    pub webhooks: crate::service::webhooks::WebhookService,
    pub disconnects: crate::service::disconnects::DisconnectService,
    pub rabbitmq: crate::service::rabbitmq::RabbitMq,
    /// Started by `startup::serve`.
    pub disconnect_worker: Option<crate::service::disconnects::Worker>,
    /// Started by `startup::serve`.
    pub canary_worker: Option<crate::service::canary::CanaryWorker>,
    pub renewal: Arc<crate::service::renewal::RenewalService>,
    pub broker: Arc<BrokerService>,
    pub overview: OverviewService,
    pub changes: Arc<Changes>,
    /// The HTTPS listener's configuration, taken by `startup::serve`.
    pub tls: Option<rustls::ServerConfig>,
}
