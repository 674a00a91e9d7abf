//! What every request shares: the settings and the services, each built once at start-up
//! (see `startup::prepare`). This type only groups them; no service sees it.

use crate::app::Services;
use crate::config::Config;

/// Shared state, behind `web::Data`: the settings and every service. Handlers reach a
/// service through it as `state.users`, `state.certificates`, … (it dereferences to
/// [`Services`], so a new service is added in `app.rs` alone).
pub struct AppState {
    pub config: Config,
    pub services: Services,
    /// The HTTPS listener's configuration, taken by `startup::serve`.
    pub tls: Option<rustls::ServerConfig>,
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.services
    }
}

impl std::ops::DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut Services {
        &mut self.services
    }
}
