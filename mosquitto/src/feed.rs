//! The change feed's thread: long polls of `/broker/plugin/feed`, applied to the plugin's
//! caches and sessions ([`Plugin::apply`]). When fleetca cannot be reached it tries again
//! every second and then every five, and says so once in the broker's log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::plugin::{Level, Plugin};

/// Follows the feed until `stop` is set (checked between polls).
pub fn run(plugin: Arc<Plugin>, stop: Arc<AtomicBool>) {
    let mut cursor: Option<String> = None;
    let mut failures: u32 = 0;
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        match plugin.fleetca.follow(cursor.as_deref()) {
            Ok(batch) => {
                plugin.apply(batch.reset, &batch.events);
                cursor = Some(batch.cursor);
                if failures > 0 || first {
                    plugin.log(Level::Info, "fleetca_mosquitto: following fleetca's changes".into());
                }
                first = false;
                failures = 0;
            }
            Err(e) => {
                plugin.feed_lost();
                if failures == 0 {
                    plugin.log(
                        Level::Warning,
                        format!("fleetca_mosquitto: fleetca's change feed cannot be read ({e}); logins are asked of fleetca, not the cache, until it can"),
                    );
                }
                failures = failures.saturating_add(1);
                std::thread::sleep(Duration::from_secs(u64::from(failures.min(5))));
            }
        }
    }
}
