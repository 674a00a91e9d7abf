//! The change feed's thread: polls of `/broker/plugin/feed` (each waits up to
//! [`crate::fleetca::FEED_WAIT`] for a change), applied to the plugin's caches and sessions
//! ([`Plugin::apply`]). Each poll names the last cursor it applied, which tells fleetca the
//! cuts up to there reached this broker. When fleetca cannot be reached it tries again every
//! second and then every five, and says so once in the broker's log. Without the broker's
//! ticks (which carry out the kicks) it does not follow at all, so fleetca sees no follower
//! and keeps retrying its cuts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::plugin::{Level, Plugin};

/// Sleeps `d`, or less when `stop` is set.
fn pause(stop: &AtomicBool, d: Duration) {
    let step = Duration::from_millis(100);
    let mut left = d;
    while !left.is_zero() && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(step.min(left));
        left = left.saturating_sub(step);
    }
}

/// Follows the feed until `stop` is set.
pub fn run(plugin: Arc<Plugin>, stop: Arc<AtomicBool>) {
    let mut cursor: Option<String> = None;
    let mut failures: u32 = 0;
    let mut first = true;
    let mut warned_ticks = false;
    while !stop.load(Ordering::Relaxed) {
        if !plugin.ticking() {
            plugin.feed_lost();
            if !warned_ticks {
                warned_ticks = true;
                // Written if ticks come back; the README says why they may not.
                plugin.log(
                    Level::Warning,
                    "fleetca_mosquitto: the broker did not tick for 3 s (per_listener_settings true?); the change feed was not followed meanwhile".into(),
                );
            }
            pause(&stop, Duration::from_millis(500));
            continue;
        }
        warned_ticks = false;
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
                pause(&stop, Duration::from_secs(u64::from(failures.min(5))));
            }
        }
    }
}
