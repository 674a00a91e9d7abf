//! fleetca's own mosquitto plugin (`fleetca_mosquitto.so`): the plugin follows the change
//! feed ([`crate::brokers::feed`]) and kicks the sessions itself, on the broker's thread. So
//! ending sessions here is putting a cut on the feed; it counts as done once a plugin of this
//! broker applied it (its next poll says so). Otherwise it is retried, and another
//! instance's worker, whose feed the plugin follows, may take it.

use std::sync::Arc;

use fleetca_storage::disconnects::Disconnect;
use futures_util::future::BoxFuture;

use crate::brokers::admin::{SessionAdmin, Sessions};
use crate::brokers::feed::{self, Event, Feed, Scope};

/// How long a cut waits for the plugin to apply it (it polls again at once after a batch).
const CONFIRM: std::time::Duration = std::time::Duration::from_secs(5);

/// A `[[brokers]]` entry of `kind = "mosquitto-plugin"`.
pub struct PluginAdmin {
    pub broker: String,
    pub feed: Arc<Feed>,
}

impl SessionAdmin for PluginAdmin {
    fn end<'a>(
        &'a self,
        sessions: &'a Sessions,
        d: &'a Disconnect,
        _client: &'a reqwest::Client,
    ) -> BoxFuture<'a, Result<usize, String>> {
        Box::pin(async move {
            let Some((tags, scope)) = cut(sessions, d) else {
                return Ok(0);
            };
            self.feed.cut(&self.broker, Event::Cut { tags, scope }, CONFIRM).await?;
            Ok(1)
        })
    }
}

/// The tags and scope of the sessions a disconnect ends.
fn cut(sessions: &Sessions, d: &Disconnect) -> Option<(Vec<String>, Scope)> {
    Some(match sessions {
        Sessions::User { .. } => (vec![user(d)?], Scope::All),
        Sessions::Passwords { .. } => (vec![user(d)?], Scope::Password),
        Sessions::Certificate { fingerprint, .. } => (vec![feed::cert_tag(fingerprint)], Scope::Certificate),
        Sessions::Device { tenant, device_id } => (vec![feed::device_tag(tenant, device_id)], Scope::All),
        Sessions::SignDevice {
            product_key,
            device_key,
        } => (vec![feed::product_device_tag(product_key, device_key)], Scope::All),
        Sessions::Product { product_key } => (vec![feed::product_tag(product_key)], Scope::All),
        Sessions::Nobody => return None,
    })
}

/// A user disconnect's target is the user's id.
fn user(d: &Disconnect) -> Option<String> {
    uuid::Uuid::parse_str(&d.target_id).ok().map(feed::user_tag)
}
