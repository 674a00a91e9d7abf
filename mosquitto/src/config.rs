//! The plugin's settings: `plugin_opt_*` lines of `mosquitto.conf`.
//!
//! ```text
//! plugin /usr/lib/fleetca/fleetca_mosquitto.so
//! plugin_opt_url http://127.0.0.1:8080
//! plugin_opt_secret_file /etc/mosquitto/fleetca-broker-secret
//! plugin_opt_broker mosquitto
//! plugin_opt_logins password,certificate
//! plugin_opt_timeout_ms 1500
//! plugin_opt_cache true
//! plugin_opt_reload_on_crl false
//! ```

use std::time::Duration;

/// What kind of login the plugin answers for; any other it leaves to the broker's other
/// authentication (`MOSQ_ERR_PLUGIN_DEFER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Logins {
    /// Clients that send a username and password and present no certificate.
    pub password: bool,
    /// Clients that present a certificate.
    pub certificate: bool,
}

/// The plugin's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// fleetca's base URL, `http://host:port`.
    pub url: String,
    /// The broker secret (`FLEETCA_BROKER_SECRET`), read from `secret_file`.
    pub secret: Option<String>,
    /// This broker's name: its `[[brokers]]` entry (`kind = "mosquitto-plugin"`) in fleetca.
    pub broker: String,
    pub logins: Logins,
    /// How long the broker's thread may wait for one decision.
    pub timeout: Duration,
    /// Cache decisions (off: every login and ACL check asks fleetca, as go-auth does).
    pub cache: bool,
    /// Re-read the CRL file (mosquitto's own SIGHUP) when fleetca says it wrote it: for a
    /// broker that reads fleetca's CRL file on its own host (off by default).
    pub reload: bool,
}

impl Config {
    /// Reads `plugin_opt_*` pairs (without the prefix). An error names the option to fix.
    pub fn parse<'a>(options: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, String> {
        let mut url = None;
        let mut secret = None;
        let mut broker = "mosquitto".to_owned();
        let mut logins = Logins {
            password: true,
            certificate: true,
        };
        let mut timeout = Duration::from_millis(1500);
        let mut cache = true;
        let mut reload = false;
        for (key, value) in options {
            let value = value.trim();
            match key {
                "url" => {
                    let Some(rest) = value.strip_prefix("http://") else {
                        return Err(format!(
                            "plugin_opt_url {value:?} must start with http:// (fleetca on the broker's own network)"
                        ));
                    };
                    if rest.trim_end_matches('/').is_empty() {
                        return Err("plugin_opt_url has no host".into());
                    }
                    if rest.split('/').next().is_some_and(|authority| authority.contains('@')) {
                        return Err(
                            "plugin_opt_url must not carry credentials: put the broker secret in plugin_opt_secret_file"
                                .into(),
                        );
                    }
                    url = Some(value.trim_end_matches('/').to_owned());
                }
                "secret_file" => {
                    let text =
                        std::fs::read_to_string(value).map_err(|e| format!("plugin_opt_secret_file {value}: {e}"))?;
                    let line = text.lines().next().unwrap_or_default().trim().to_owned();
                    if line.is_empty() {
                        return Err(format!("plugin_opt_secret_file {value} is empty"));
                    }
                    secret = Some(line);
                }
                "broker" => {
                    if value.is_empty() || value.len() > 64 || value.contains(',') {
                        return Err("plugin_opt_broker is 1 to 64 characters without commas".into());
                    }
                    broker = value.to_owned();
                }
                "logins" => {
                    logins = Logins {
                        password: false,
                        certificate: false,
                    };
                    for kind in value.split(',').map(str::trim) {
                        match kind {
                            "password" => logins.password = true,
                            "certificate" => logins.certificate = true,
                            other => {
                                return Err(format!("plugin_opt_logins: {other:?} is not password or certificate"));
                            }
                        }
                    }
                }
                "timeout_ms" => {
                    let ms: u64 = value
                        .parse()
                        .ok()
                        .filter(|ms| (50..=10_000).contains(ms))
                        .ok_or("plugin_opt_timeout_ms must be from 50 to 10000")?;
                    timeout = Duration::from_millis(ms);
                }
                "cache" => cache = flag("cache", value)?,
                "reload_on_crl" => reload = flag("reload_on_crl", value)?,
                other => return Err(format!("plugin_opt_{other} is not a setting of fleetca_mosquitto")),
            }
        }
        Ok(Self {
            url: url.ok_or("plugin_opt_url is required (fleetca's address, http://host:port)")?,
            secret,
            broker,
            logins,
            timeout,
            cache,
            reload,
        })
    }
}

fn flag(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "on" => Ok(true),
        "false" | "off" => Ok(false),
        _ => Err(format!("plugin_opt_{name} must be true or false")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn options_are_read_and_mistakes_named() {
        let c = Config::parse([("url", "http://127.0.0.1:8080/"), ("logins", "certificate")]).unwrap();
        assert_eq!(c.url, "http://127.0.0.1:8080");
        assert!(c.logins.certificate && !c.logins.password);
        assert!(c.cache);
        assert_eq!(c.broker, "mosquitto");
        for (opts, says) in [
            (vec![], "plugin_opt_url is required"),
            (vec![("url", "https://x")], "must start with http://"),
            (vec![("url", "http://u:p@x")], "must not carry credentials"),
            (
                vec![("url", "http://x"), ("logins", "psk")],
                "not password or certificate",
            ),
            (vec![("url", "http://x"), ("timeout_ms", "0")], "timeout_ms"),
            (vec![("url", "http://x"), ("colour", "red")], "plugin_opt_colour"),
            (
                vec![("url", "http://x"), ("secret_file", "/nonexistent")],
                "/nonexistent",
            ),
        ] {
            let e = Config::parse(opts).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
