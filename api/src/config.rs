//! Settings, layered: defaults, then the TOML file (`--config` / `FLEETCA_CONFIG`), then
//! `FLEETCA_*` environment variables, then command-line flags (those two merged by the
//! CLI parser in `cli`, handed over as [`Overrides`]). Unknown keys in the file are an
//! error. Secrets (master key, bootstrap token, broker secret) come only from the
//! environment or files, never from flags, so they do not show in `ps`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::brokers::acl::AclConfig;
use crate::brokers::activation::MqttSettings;
use crate::brokers::decision::BrokerPolicy;
use crate::pki::crl::CrlSettings;
use crate::tls::TlsSettings;

pub use crate::domain::Secret;

/// What the command line and `FLEETCA_*` variables may set (already merged by the CLI
/// parser, flags over variables); everything else comes from the file or the defaults.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub database_max_connections: Option<u32>,
    pub public_url: Option<String>,
    pub log_format: Option<LogFormat>,
    pub crl_file: Option<PathBuf>,
    pub crl_reload_command: Option<String>,
    /// Comma-separated CIDRs.
    pub broker_allow: Option<String>,
    pub mqtt_url: Option<String>,
    pub tls_listen: Option<SocketAddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("{other:?} is not a log format (text or json)")),
        }
    }
}

/// The settings file. Every key is optional; unknown keys are refused.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub database_max_connections: Option<u32>,
    pub public_url: Option<String>,
    pub log_format: Option<LogFormat>,
    pub body_limit_bytes: Option<usize>,
    pub ca_common_name: Option<String>,
    pub ca_organization: Option<String>,
    pub ca_validity_years: Option<u32>,
    /// `p256` (default) or `p384`: the key algorithm of the CAs fleetca makes.
    pub ca_key_algorithm: Option<String>,
    pub admin_enterprise: Option<String>,
    pub crl_file: Option<PathBuf>,
    pub crl_reload_command: Option<String>,
    /// The CRL file's mode, in octal (`"0644"` by default; `"0640"` with `crl_file_group`).
    pub crl_file_mode: Option<String>,
    /// The group of the CRL file (a broker's group that fleetca's user is a member of).
    pub crl_file_group: Option<String>,
    pub crl_validity_hours: Option<u32>,
    pub crl_refresh_hours: Option<u32>,
    pub broker_allow: Option<Vec<String>>,
    pub broker_timestamp_skew_seconds: Option<i64>,
    pub broker_trust_username_for_certificates: Option<bool>,
    pub enterprise_certificate_changes_per_minute: Option<u32>,
    pub registrations_per_minute: Option<u32>,
    pub mqtt_url: Option<String>,
    pub mqtt_ca_file: Option<PathBuf>,
    pub mqtt_cert_file: Option<PathBuf>,
    pub mqtt_key_file: Option<PathBuf>,
    pub mqtt_username: Option<String>,
    pub tls_listen: Option<SocketAddr>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_dns_names: Option<Vec<String>>,
    pub trusted_proxies: Option<Vec<String>>,
    pub metrics_allow: Option<Vec<String>>,
    pub renewal_window_percent: Option<u32>,
    pub renew_after_expiry_days: Option<u32>,
    pub renewal_grace_hours: Option<f64>,
    pub webhook_allow_private: Option<bool>,
    pub webhook_retry_hours: Option<f64>,
    pub webhook_retry_initial_seconds: Option<f64>,
    pub webhook_timeout_seconds: Option<u32>,
    pub expiry_scan_seconds: Option<u32>,
    pub acl: Option<AclConfig>,
    /// Brokers told to end live sessions (`[[brokers]]`, several allowed).
    pub brokers: Option<Vec<BrokerFile>>,
    pub disconnect_retry_hours: Option<f64>,
    /// How often the revocation canary checks each broker with an `mqtt_url`.
    pub canary_interval_seconds: Option<u32>,
    pub rabbitmq_vhost: Option<String>,
    pub rabbitmq_exchange: Option<String>,
    /// A PKCS#11 token for CA keys (`[pkcs11]`).
    pub pkcs11: Option<Pkcs11File>,
}

/// The `[pkcs11]` section: the token CA keys may live in. Its PIN comes from
/// `FLEETCA_PKCS11_PIN` or the file `pin_file` names, never from this file.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11File {
    /// The module, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// A file holding the user PIN (its first line).
    pub pin_file: Option<PathBuf>,
}

/// A `[[brokers]]` entry of the settings file. Secrets come from the environment variable
/// it names, never from the file.
#[derive(Deserialize, Debug)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum BrokerFile {
    Rabbitmq {
        name: Option<String>,
        url: String,
        username: String,
        password_env: String,
        vhost: Option<String>,
        #[serde(flatten)]
        canary: CanaryFile,
    },
    Emqx {
        name: Option<String>,
        url: String,
        api_key: String,
        api_secret_env: String,
        #[serde(flatten)]
        canary: CanaryFile,
    },
    Command {
        name: Option<String>,
        /// The program and its arguments (no shell).
        command: Vec<String>,
        #[serde(flatten)]
        canary: CanaryFile,
    },
    /// mosquitto with fleetca's plugin (`fleetca_mosquitto.so`), which follows the change
    /// feed and ends the sessions itself; its `plugin_opt_broker` names this entry.
    #[serde(rename = "mosquitto-plugin")]
    MosquittoPlugin {
        name: Option<String>,
        #[serde(flatten)]
        canary: CanaryFile,
    },
    /// A broker fleetca only watches with the revocation canary (mosquitto, say): no API
    /// to end sessions, an `mqtt_url` required.
    Mqtt {
        name: Option<String>,
        #[serde(flatten)]
        canary: CanaryFile,
    },
}

/// Where the revocation canary connects to a `[[brokers]]` entry's MQTT listener.
#[derive(Deserialize, Debug, Default)]
pub struct CanaryFile {
    /// `mqtts://host:port`, a listener that requires client certificates.
    pub mqtt_url: Option<String>,
    /// The CA (PEM) of the broker's server certificate; fleetca's own CA by default.
    pub mqtt_ca_file: Option<PathBuf>,
}

/// The brokers' session-ending adapters and the revocation canary's targets.
type Brokers = (
    Vec<crate::brokers::admin::BrokerAdapter>,
    Vec<crate::brokers::canary::CanaryTarget>,
);

fn brokers(list: Vec<BrokerFile>, feed: &std::sync::Arc<crate::brokers::feed::Feed>) -> Result<Brokers, String> {
    use crate::brokers::admin::BrokerAdapter;
    use crate::brokers::canary::CanaryTarget;
    let secret = |var: &str, what: &str| {
        std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Secret::new)
            .ok_or_else(|| format!("brokers: {what} reads its secret from ${var}, which is not set"))
    };
    let url_ok = |url: &str, what: &str| {
        if url.starts_with("http://") || url.starts_with("https://") {
            Ok(url.trim_end_matches('/').to_owned())
        } else {
            Err(format!(
                "brokers: {what}'s url {url:?} must start with http:// or https://"
            ))
        }
    };
    let mut out: Vec<BrokerAdapter> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut targets: Vec<CanaryTarget> = Vec::new();
    for (i, b) in list.into_iter().enumerate() {
        let (name, adapter, canary) = match b {
            BrokerFile::Rabbitmq {
                name,
                url,
                username,
                password_env,
                vhost,
                canary,
            } => {
                let name = name.unwrap_or_else(|| format!("rabbitmq-{}", i + 1));
                let adapter = BrokerAdapter::rabbitmq(
                    &name,
                    url_ok(&url, &name)?,
                    username,
                    secret(&password_env, &name)?,
                    vhost,
                );
                (adapter.name().to_owned(), Some(adapter), canary)
            }
            BrokerFile::Emqx {
                name,
                url,
                api_key,
                api_secret_env,
                canary,
            } => {
                let name = name.unwrap_or_else(|| format!("emqx-{}", i + 1));
                let adapter =
                    BrokerAdapter::emqx(&name, url_ok(&url, &name)?, api_key, secret(&api_secret_env, &name)?);
                (adapter.name().to_owned(), Some(adapter), canary)
            }
            BrokerFile::Command { name, command, canary } => {
                let name = name.unwrap_or_else(|| format!("command-{}", i + 1));
                if command.first().is_none_or(|p| p.is_empty()) {
                    return Err(format!("brokers: {name}'s command must name a program"));
                }
                (name.clone(), Some(BrokerAdapter::command(&name, command)), canary)
            }
            BrokerFile::MosquittoPlugin { name, canary } => {
                let name = name.unwrap_or_else(|| "mosquitto".to_owned());
                let adapter = BrokerAdapter::mosquitto_plugin(&name, feed.clone());
                (name, Some(adapter), canary)
            }
            BrokerFile::Mqtt { name, canary } => {
                let name = name.unwrap_or_else(|| format!("mqtt-{}", i + 1));
                if canary.mqtt_url.is_none() {
                    return Err(format!("brokers: {name} (kind \"mqtt\") needs an mqtt_url"));
                }
                (name, None, canary)
            }
        };
        if name.is_empty() || name.contains(',') || name.len() > 64 {
            return Err("brokers: a name is 1 to 64 characters without commas".into());
        }
        if names.contains(&name) {
            return Err(format!("brokers: the name {name:?} is used twice"));
        }
        if let Some(url) = canary.mqtt_url {
            crate::brokers::canary::parse_url(&url).map_err(|e| format!("brokers: {name}'s {e}"))?;
            targets.push(CanaryTarget {
                broker: name.clone(),
                url,
                ca_file: canary.mqtt_ca_file,
            });
        }
        names.push(name);
        out.extend(adapter);
    }
    Ok((out, targets))
}

/// A file's mode (octal text) and group (a name or a number) from the settings; `what`
/// names the setting in an error.
pub fn file_access(mode: Option<&str>, group: Option<&str>, what: &str) -> Result<crate::pki::crl::FileAccess, String> {
    let group = group
        .map(|g| crate::support::files::group_id(g).map_err(|e| format!("{what}_group: {e}")))
        .transpose()?;
    let mode = match mode {
        None if group.is_some() => 0o640,
        None => 0o644,
        Some(text) => u32::from_str_radix(text.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o666 && m & 0o400 != 0)
            .ok_or_else(|| {
                format!("{what}_mode {text:?}: give an octal mode such as \"0640\" (owner-readable, no execute bits)")
            })?,
    };
    Ok(crate::pki::crl::FileAccess { mode, group })
}

/// A database URL fit for a log line: a password in it (in the user part, or a `password`
/// query parameter) is replaced by `***`.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    // The last `@` ends the user part: a password may hold an unescaped `@`.
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let path = match path.split_once('?') {
        Some((p, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{p}?{}", query.join("&"))
        }
        None => path.to_owned(),
    };
    format!("{scheme}://{authority}{path}")
}

/// The resolved settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub database_max_connections: u32,
    pub public_url: String,
    pub log_format: LogFormat,
    pub body_limit_bytes: usize,
    pub ca_common_name: String,
    pub ca_organization: Option<String>,
    pub ca_validity_years: u32,
    /// The key algorithm of the CAs fleetca makes (the first start's, new intermediates',
    /// a rollover's root).
    pub ca_key_algorithm: fleetca_ca::CaAlgorithm,
    pub admin_enterprise: String,
    pub crl_file: Option<PathBuf>,
    pub crl_reload_command: Option<String>,
    /// Who may read the CRL file: its mode and group.
    pub crl_file_access: crate::pki::crl::FileAccess,
    pub crl_validity_hours: u32,
    pub crl_refresh_hours: u32,
    /// Networks allowed to call the broker endpoints.
    pub broker_allow: Vec<IpNet>,
    /// `FLEETCA_BROKER_SECRET`: when set, broker calls must send it as `X-Broker-Secret`.
    pub broker_secret: Option<Secret>,
    /// `FLEETCA_PROXY_SECRET`: when set, a trusted proxy must also send it as
    /// `X-Proxy-Secret` for its `X-SSL-Client-Cert` to count.
    pub proxy_secret: Option<Secret>,
    /// How far a device's timestamp may be from server time.
    pub broker_timestamp_skew_seconds: i64,
    /// Admit a password-less username as a certificate client without the certificate or
    /// its fingerprint (off by default; see the README's security model).
    pub broker_trust_username_for_certificates: bool,
    /// Certificate creations plus revocations a minute that the managers of one enterprise
    /// may make (admins are not limited); 0 turns the limit off.
    pub enterprise_certificate_changes_per_minute: u32,
    /// HTTPS dynamic registrations a minute per product; 0 turns the limit off.
    pub registrations_per_minute: u32,
    /// fleetca's own MQTT connection, for EnOS activation messages; none by default.
    pub mqtt: Option<MqttSettings>,
    /// The HTTPS listener, beside the plain one; none by default.
    pub tls: Option<TlsSettings>,
    /// Proxies (CIDRs) whose `X-SSL-Client-Cert` header is believed; none by default.
    pub trusted_proxies: Vec<IpNet>,
    /// Networks allowed to read `/metrics` (loopback by default).
    pub metrics_allow: Vec<IpNet>,
    /// When certificates may renew themselves, and the grace of the old ones.
    pub renewal: crate::pki::renewal::RenewalPolicy,
    /// How webhooks are delivered, and how often expiry warnings are looked for.
    pub webhooks: crate::outbox::webhooks::WebhookPolicy,
    /// The brokers told to end live sessions, and how long that is retried.
    pub disconnects: crate::brokers::disconnects::DisconnectPolicy,
    /// RabbitMQ's MQTT virtual host and exchange (`/broker/rabbitmq/*`).
    pub rabbitmq: crate::brokers::families::rabbitmq::RabbitMqSettings,
    /// The brokers the revocation canary checks, and how often.
    pub canary: crate::brokers::canary::CanaryPolicy,
    /// Topic ACL rules.
    pub acl: AclConfig,
    /// The PKCS#11 token CA keys may live in, with its PIN; none by default.
    pub pkcs11: Option<fleetca_ca::token::TokenConfig>,
    /// `FLEETCA_MASTER_KEY`, if set.
    pub master_key: Option<Secret>,
    /// `FLEETCA_BOOTSTRAP_TOKEN`, if set.
    pub bootstrap_token: Option<Secret>,
    /// `FLEETCA_BENCHMARK_BASELINE=1`: no audit log, webhooks or metrics, for the benchmark's
    /// measurement of what they cost. Never for production.
    pub benchmark_baseline: bool,
}

impl Config {
    /// Resolves flags and environment (already merged by clap) over the file over defaults.
    pub fn resolve(args: &Overrides) -> Result<Self, String> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let env_secret = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty()).map(Secret::new);
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = args
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| sqlite_url(&data_dir));
        let public_url = args
            .public_url
            .clone()
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(format!("public URL {public_url:?} must start with http:// or https://"));
        }
        let broker_allow = match &args.broker_allow {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            None => file
                .broker_allow
                .clone()
                .unwrap_or_else(|| vec!["127.0.0.0/8".into(), "::1/128".into()]),
        };
        let broker_allow = cidrs("broker_allow", &broker_allow)?;
        let trusted_proxies = cidrs("trusted_proxies", &file.trusted_proxies.clone().unwrap_or_default())?;
        let metrics_allow = cidrs(
            "metrics_allow",
            &file
                .metrics_allow
                .clone()
                .unwrap_or_else(|| vec!["127.0.0.0/8".into(), "::1/128".into()]),
        )?;
        let grace_hours = file.renewal_grace_hours.unwrap_or(24.0);
        if !(0.0..=8760.0).contains(&grace_hours) {
            return Err("renewal_grace_hours must be from 0 to 8760".into());
        }
        let window_percent = file.renewal_window_percent.unwrap_or(33);
        if !(1..=100).contains(&window_percent) {
            return Err("renewal_window_percent must be from 1 to 100".into());
        }
        let renewal = crate::pki::renewal::RenewalPolicy {
            window_percent,
            after_expiry: file
                .renew_after_expiry_days
                .map(|d| chrono::Duration::days(i64::from(d.min(3650)))),
            grace: chrono::Duration::milliseconds((grace_hours * 3_600_000.0) as i64),
        };
        let retry_hours = file.webhook_retry_hours.unwrap_or(24.0);
        if !(0.0..=168.0).contains(&retry_hours) {
            return Err("webhook_retry_hours must be from 0 to 168".into());
        }
        let initial = file.webhook_retry_initial_seconds.unwrap_or(5.0);
        if !(0.01..=3600.0).contains(&initial) {
            return Err("webhook_retry_initial_seconds must be from 0.01 to 3600".into());
        }
        let webhooks = crate::outbox::webhooks::WebhookPolicy {
            allow_private: file.webhook_allow_private.unwrap_or(false),
            retry_period: chrono::Duration::milliseconds((retry_hours * 3_600_000.0) as i64),
            initial_backoff: chrono::Duration::milliseconds((initial * 1000.0) as i64),
            timeout: std::time::Duration::from_secs(u64::from(
                file.webhook_timeout_seconds.unwrap_or(10).clamp(1, 120),
            )),
            expiry_scan: std::time::Duration::from_secs(u64::from(
                file.expiry_scan_seconds.unwrap_or(3600).clamp(1, 86_400),
            )),
        };
        let disconnect_hours = file.disconnect_retry_hours.unwrap_or(24.0);
        if !(0.0..=168.0).contains(&disconnect_hours) {
            return Err("disconnect_retry_hours must be from 0 to 168".into());
        }
        let feed = std::sync::Arc::new(crate::brokers::feed::Feed::new());
        let (adapters, canary_targets) = brokers(file.brokers.unwrap_or_default(), &feed)?;
        let canary_interval = file.canary_interval_seconds.unwrap_or(60);
        if !(1..=86_400).contains(&canary_interval) {
            return Err("canary_interval_seconds must be from 1 to 86400".into());
        }
        let canary = crate::brokers::canary::CanaryPolicy {
            targets: canary_targets,
            interval: std::time::Duration::from_secs(u64::from(canary_interval)),
        };
        let disconnects = crate::brokers::disconnects::DisconnectPolicy {
            brokers: adapters,
            retry_period: chrono::Duration::milliseconds((disconnect_hours * 3_600_000.0) as i64),
            feed,
            ..Default::default()
        };
        let defaults = crate::brokers::families::rabbitmq::RabbitMqSettings::default();
        let rabbitmq = crate::brokers::families::rabbitmq::RabbitMqSettings {
            vhost: file.rabbitmq_vhost.unwrap_or(defaults.vhost),
            exchange: file.rabbitmq_exchange.unwrap_or(defaults.exchange),
        };
        let config = Config {
            canary,
            rabbitmq,
            webhooks,
            disconnects,
            broker_allow,
            broker_secret: env_secret("FLEETCA_BROKER_SECRET"),
            proxy_secret: env_secret("FLEETCA_PROXY_SECRET"),
            broker_timestamp_skew_seconds: file.broker_timestamp_skew_seconds.unwrap_or(300).max(0),
            broker_trust_username_for_certificates: file.broker_trust_username_for_certificates.unwrap_or(false),
            enterprise_certificate_changes_per_minute: file.enterprise_certificate_changes_per_minute.unwrap_or(600),
            registrations_per_minute: file.registrations_per_minute.unwrap_or(60),
            tls: args.tls_listen.or(file.tls_listen).map(|listen| TlsSettings {
                listen,
                cert_file: file.tls_cert_file,
                key_file: file.tls_key_file,
                dns_names: file.tls_dns_names.unwrap_or_default(),
            }),
            mqtt: args.mqtt_url.clone().or(file.mqtt_url).map(|url| MqttSettings {
                url,
                ca_file: file.mqtt_ca_file,
                cert_file: file.mqtt_cert_file,
                key_file: file.mqtt_key_file,
                username: file
                    .mqtt_username
                    .unwrap_or_else(|| MqttSettings::DEFAULT_USERNAME.into()),
            }),
            acl: file.acl.unwrap_or_default(),
            trusted_proxies,
            metrics_allow,
            renewal,
            listen,
            database_url,
            database_max_connections: args
                .database_max_connections
                .or(file.database_max_connections)
                .unwrap_or(8)
                .max(1),
            public_url,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            body_limit_bytes: file.body_limit_bytes.unwrap_or(64 * 1024),
            ca_common_name: file.ca_common_name.unwrap_or_else(|| "fleetca root CA".into()),
            ca_organization: file.ca_organization,
            ca_validity_years: file.ca_validity_years.unwrap_or(20),
            ca_key_algorithm: match file.ca_key_algorithm.as_deref() {
                None => fleetca_ca::CaAlgorithm::P256,
                Some(name) => fleetca_ca::CaAlgorithm::parse(name)
                    .ok_or_else(|| format!("ca_key_algorithm {name:?}: give {}", fleetca_ca::CaAlgorithm::NAMES))?,
            },
            admin_enterprise: file.admin_enterprise.unwrap_or_else(|| "default".into()),
            crl_file: args.crl_file.clone().or(file.crl_file),
            crl_reload_command: args.crl_reload_command.clone().or(file.crl_reload_command),
            crl_file_access: file_access(
                file.crl_file_mode.as_deref(),
                file.crl_file_group.as_deref(),
                "crl_file",
            )?,
            crl_validity_hours: file.crl_validity_hours.unwrap_or(7 * 24),
            crl_refresh_hours: file.crl_refresh_hours.unwrap_or(24),
            pkcs11: file
                .pkcs11
                .map(|p| token_config(p, env_secret("FLEETCA_PKCS11_PIN")))
                .transpose()?,
            master_key: env_secret("FLEETCA_MASTER_KEY"),
            bootstrap_token: env_secret("FLEETCA_BOOTSTRAP_TOKEN"),
            benchmark_baseline: std::env::var("FLEETCA_BENCHMARK_BASELINE").is_ok_and(|v| v == "1"),
            data_dir,
        };
        if let Some(mqtt) = &config.mqtt
            && mqtt.username.contains(['&', '=', '%'])
        {
            // It would read as a device's login (`device=…&tenant=…`, `{device}&{product}`).
            return Err(format!(
                "mqtt_username {:?} may not contain '&', '=' or '%'",
                mqtt.username
            ));
        }
        if let Some(mqtt) = &config.mqtt
            && !mqtt.username.starts_with(crate::domain::Username::RESERVED_PREFIX)
        {
            return Err(format!(
                "mqtt_username {:?} must start with {:?}, a prefix no user may take",
                mqtt.username,
                crate::domain::Username::RESERVED_PREFIX
            ));
        }
        if config.crl_refresh_hours == 0 || config.crl_refresh_hours >= config.crl_validity_hours {
            return Err("crl_refresh_hours must be at least 1 and less than crl_validity_hours".into());
        }
        Ok(config)
    }

    /// The host part of `public_url` (a name or an address).
    pub fn public_host(&self) -> String {
        let rest = self
            .public_url
            .split_once("://")
            .map_or(self.public_url.as_str(), |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or(rest);
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        host.to_owned()
    }

    /// How the broker endpoints decide.
    pub fn broker_policy(&self) -> BrokerPolicy {
        BrokerPolicy {
            acl: self.acl.clone(),
            timestamp_skew_seconds: self.broker_timestamp_skew_seconds,
            trust_username_for_certificates: self.broker_trust_username_for_certificates,
            publisher: None,
        }
    }

    /// Where and how CRLs are published.
    pub fn crl_settings(&self) -> CrlSettings {
        CrlSettings {
            validity: chrono::Duration::hours(i64::from(self.crl_validity_hours)),
            file: self.crl_file.clone(),
            reload_command: self.crl_reload_command.clone(),
            access: self.crl_file_access,
            written: Some({
                let feed = self.disconnects.feed.clone();
                crate::pki::crl::Written(std::sync::Arc::new(move || {
                    feed.push(crate::brokers::feed::Event::Reload);
                }))
            }),
            record: Some(self.data_dir.join(crate::pki::published::RECORD_FILE)),
        }
    }
}

fn cidrs(setting: &str, list: &[String]) -> Result<Vec<IpNet>, String> {
    list.iter()
        .map(|c| {
            c.parse::<IpNet>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{setting}: {c:?} is not a CIDR such as 10.0.0.0/8 or an IP address"))
        })
        .collect()
}

fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("fleetca.db").display())
}

/// The token of `[pkcs11]`, with its PIN from `FLEETCA_PKCS11_PIN` or `pin_file`.
fn token_config(file: Pkcs11File, env_pin: Option<Secret>) -> Result<fleetca_ca::token::TokenConfig, String> {
    let pin = match (env_pin, &file.pin_file) {
        (Some(pin), _) => pin.expose().to_owned(),
        (None, Some(path)) => read_private(path, "pkcs11.pin_file")?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        (None, None) => {
            return Err(
                "[pkcs11] needs the token's user PIN: set FLEETCA_PKCS11_PIN, or pin_file to a file that holds it"
                    .into(),
            );
        }
    };
    if pin.is_empty() {
        return Err("the PKCS#11 PIN is empty (FLEETCA_PKCS11_PIN or pkcs11.pin_file)".into());
    }
    if file.token.trim().is_empty() || file.token.chars().count() > 32 {
        return Err("pkcs11.token must be the token's label: 1 to 32 characters".into());
    }
    Ok(fleetca_ca::token::TokenConfig {
        module: file.module,
        token: file.token,
        pin,
    })
}

/// A file that holds a secret: refused when every user may read it.
fn read_private(path: &Path, what: &str) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o004 != 0 {
        return Err(format!(
            "{what} {} may be read by every user (mode {:o}): chmod o-r it",
            path.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

fn read_file(path: &Path) -> Result<FileSettings, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read settings file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("settings file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let dir = std::env::temp_dir().join(format!("fleetca-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("fleetca.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\npublic_url = \"https://ca.example\"\n",
        )
        .unwrap();
        let args = Overrides {
            config: Some(file.clone()),
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..Default::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.public_url, "https://ca.example");
        assert_eq!(
            crate::pki::authorities::crl_url(&c.public_url, 1),
            "https://ca.example/crl.der"
        );
        assert!(c.database_url.starts_with("sqlite://./data/fleetca.db"));
        std::fs::write(&file, "listn = 1\n").unwrap();
        let err = Config::resolve(&Overrides {
            config: Some(file),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn the_activation_publisher_must_use_a_reserved_name() {
        let dir = std::env::temp_dir().join(format!("fleetca-cfg-mqtt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("fleetca.toml");
        std::fs::write(
            &file,
            "mqtt_url = \"mqtt://127.0.0.1:1883\"\nmqtt_username = \"svc-x\"\n",
        )
        .unwrap();
        let err = Config::resolve(&Overrides {
            config: Some(file.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.contains("fleetca-"), "{err}");
        std::fs::write(&file, "mqtt_url = \"mqtt://127.0.0.1:1883\"\n").unwrap();
        let ok = Config::resolve(&Overrides {
            config: Some(file),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(ok.mqtt.unwrap().username, "fleetca-activation");
    }

    fn resolve_toml(name: &str, toml: &str) -> Result<Config, String> {
        let dir = std::env::temp_dir().join(format!("fleetca-cfg-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("fleetca.toml");
        std::fs::write(&file, toml).unwrap();
        Config::resolve(&Overrides {
            config: Some(file),
            ..Default::default()
        })
    }

    #[test]
    fn the_debian_packages_settings_file_names_only_real_settings() {
        // Every commented-out `key = value` line and table header of /etc/fleetca/fleetca.toml,
        // uncommented, must be a setting this build reads (unknown keys are an error).
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../debian/fleetca.toml")).unwrap();
        let uncommented: String = text
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| {
                let l = l.trim_start();
                l.starts_with('[') || l.split_once(" = ").is_some_and(|(k, _)| !k.contains(' '))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed: Result<FileSettings, _> = toml::from_str(&uncommented);
        assert!(parsed.is_ok(), "{:?}\n{uncommented}", parsed.err());
        assert!(uncommented.lines().count() > 50, "every setting is there");
    }

    #[test]
    fn the_crl_files_mode_and_group_are_read_and_mistakes_named() {
        let a = file_access(None, None, "crl_file").unwrap();
        assert_eq!((a.mode, a.group), (0o644, None));
        let a = file_access(None, Some("root"), "crl_file").unwrap();
        assert_eq!(
            (a.mode, a.group),
            (0o640, Some(0)),
            "group-readable once a group is named"
        );
        assert_eq!(file_access(Some("0600"), None, "crl_file").unwrap().mode, 0o600);
        assert!(
            file_access(Some("0755"), None, "crl_file")
                .unwrap_err()
                .contains("crl_file_mode")
        );
        assert!(file_access(Some("rw"), None, "crl_file").unwrap_err().contains("octal"));
        assert!(
            file_access(None, Some("no-such-group-here"), "crl_file")
                .unwrap_err()
                .contains("crl_file_group")
        );
    }

    #[test]
    fn a_database_password_never_reaches_the_log() {
        assert_eq!(
            redacted_url("postgres://fleetca:s3cret@db:5432/fleetca"),
            "postgres://fleetca:***@db:5432/fleetca"
        );
        assert_eq!(
            redacted_url("sqlite:///var/lib/fleetca/fleetca.db?mode=rwc"),
            "sqlite:///var/lib/fleetca/fleetca.db?mode=rwc"
        );
        assert_eq!(redacted_url("postgres://db/fleetca"), "postgres://db/fleetca");
        assert_eq!(redacted_url("postgres://u:p@ss@db/x"), "postgres://u:***@db/x");
        assert_eq!(
            redacted_url("postgres://db/x?user=u&password=secret&sslmode=require"),
            "postgres://db/x?user=u&password=***&sslmode=require"
        );
    }

    #[test]
    fn a_mosquitto_plugin_broker_ends_sessions_through_the_feed_and_may_be_watched_too() {
        let c = resolve_toml(
            "plugin",
            "[[brokers]]\nkind = \"mosquitto-plugin\"\nname = \"edge-1\"\nmqtt_url = \"mqtts://10.0.0.5:8884\"\n\
             [[brokers]]\nkind = \"mosquitto-plugin\"\n",
        )
        .unwrap();
        let names: Vec<&str> = c.disconnects.brokers.iter().map(|b| b.name()).collect();
        assert_eq!(names, ["edge-1", "mosquitto"], "the plugin's own default name");
        assert_eq!(c.canary.targets.len(), 1);
        let twice = "[[brokers]]\nkind = \"mosquitto-plugin\"\n[[brokers]]\nkind = \"mosquitto-plugin\"\n";
        assert!(resolve_toml("plugin-twice", twice).unwrap_err().contains("used twice"));
    }

    #[test]
    fn brokers_with_an_mqtts_address_are_watched_by_the_canary() {
        let c = resolve_toml(
            "canary",
            "canary_interval_seconds = 5\n\
             [[brokers]]\nkind = \"mqtt\"\nname = \"mosq\"\nmqtt_url = \"mqtts://10.0.0.5:8884\"\nmqtt_ca_file = \"/etc/mosquitto/ca.crt\"\n\
             [[brokers]]\nkind = \"command\"\nname = \"kick\"\ncommand = [\"/bin/true\"]\n",
        )
        .unwrap();
        assert_eq!(c.canary.interval, std::time::Duration::from_secs(5));
        let t = &c.canary.targets;
        assert_eq!(t.len(), 1, "only the entry with an mqtt_url is watched");
        assert_eq!(
            (t[0].broker.as_str(), t[0].url.as_str()),
            ("mosq", "mqtts://10.0.0.5:8884")
        );
        assert_eq!(t[0].ca_file.as_deref(), Some(Path::new("/etc/mosquitto/ca.crt")));
        let names: Vec<&str> = c.disconnects.brokers.iter().map(|b| b.name()).collect();
        assert_eq!(names, ["kick"], "a watched-only broker ends no sessions");
        assert_eq!(
            resolve_toml("canary-default", "").unwrap().canary.interval.as_secs(),
            60
        );

        for (bad, says) in [
            ("[[brokers]]\nkind = \"mqtt\"\nname = \"m\"\n", "needs an mqtt_url"),
            (
                "[[brokers]]\nkind = \"mqtt\"\nmqtt_url = \"mqtt://h:1883\"\n",
                "mqtts://",
            ),
            (
                "[[brokers]]\nkind = \"command\"\ncommand = [\"x\"]\nmqtt_urll = \"mqtts://h\"\n",
                "unknown field",
            ),
            ("canary_interval_seconds = 0\n", "canary_interval_seconds"),
            (
                "[[brokers]]\nkind = \"mqtt\"\nname = \"a\"\nmqtt_url = \"mqtts://h\"\n[[brokers]]\nkind = \"command\"\nname = \"a\"\ncommand = [\"x\"]\n",
                "used twice",
            ),
        ] {
            let err = resolve_toml("canary-bad", bad).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(<redacted>)");
    }
}
