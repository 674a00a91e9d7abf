//! What every request shares.

use std::sync::Arc;

use fleetca_ca::{Authority, MasterKey};
use fleetca_storage::Store;
use fleetca_storage::certificates::IssueQueue;

use crate::config::Config;
use crate::service::auth::AuthService;
use crate::service::broker::BrokerService;
use crate::service::crl::CrlPublisher;
use crate::service::sessions::Sessions;

/// Shared state, behind `web::Data`.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub ca: Arc<Authority>,
    pub master: Arc<MasterKey>,
    pub auth: AuthService,
    pub crl: Arc<CrlPublisher>,
    pub issue_queue: IssueQueue,
    pub broker: BrokerService,
    pub sessions: Sessions,
    /// Tells this instance's events from other instances'.
    pub instance_id: uuid::Uuid,
}
