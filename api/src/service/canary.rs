//! The revocation canary: proof, every `canary_interval_seconds`, that each broker refuses
//! a revoked certificate and accepts a valid one.
//!
//! "Revoked certificates still connect" is a recurring broker failure: a CRL file that is
//! not reloaded, a `crlfile` line lost in a configuration change, a listener that checks no
//! CRL at all. Nothing in the broker says so. So fleetca issues itself two client
//! certificates, revokes one of them (it reaches the CRL and the brokers like any other
//! revocation), and connects to every broker that has an MQTT address with both: the valid
//! one must get a CONNACK, the revoked one must be refused (a TLS alert, a closed
//! connection or a refusing CONNACK). Results go to metrics, the overview and, when a
//! broker accepts the revoked certificate, the `broker.revocation_not_enforced` webhook.
//!
//! The canaries' keys live in this process's memory only; a restart issues a new pair.
//! They are short-lived ([`VALIDITY`]) so the revoked ones leave the CRL soon, and they
//! are admitted by no ACL (their CN starts with [`CN_PREFIX`], a prefix no user may take).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use fleetca_ca::{Authority, ClientProfile, generate_p256};
use fleetca_storage::Store;
use fleetca_storage::certificates::{IssueQueue, NewCertificate};
use rumqttc::{ConnectReturnCode, Event, MqttOptions, Packet, TlsConfiguration, Transport};

use super::Error;
use super::clock::Clock;
use super::crl::CrlPublisher;
use super::issuer::{issued_metric, kind};

/// The common names of canary certificates start with this (and no user's may).
pub const CN_PREFIX: &str = "fleetca-canary-";
/// How long a canary certificate is valid.
const VALIDITY: Duration = Duration::days(3);
/// A new pair is issued when the valid one has less than this left.
const RENEW_BEFORE: Duration = Duration::days(1);
/// How long one connection attempt may take, TLS and CONNACK included.
const ATTEMPT_TIMEOUT: StdDuration = StdDuration::from_secs(10);

/// A broker the canary connects to.
#[derive(Clone, Debug)]
pub struct CanaryTarget {
    /// The `[[brokers]]` entry's name.
    pub broker: String,
    /// `mqtts://host:port`.
    pub url: String,
    /// The CA (PEM) of the broker's server certificate; fleetca's own CA when not given.
    pub ca_file: Option<PathBuf>,
}

/// Which brokers, how often.
#[derive(Clone, Debug)]
pub struct CanaryPolicy {
    pub targets: Vec<CanaryTarget>,
    pub interval: StdDuration,
}

impl Default for CanaryPolicy {
    fn default() -> Self {
        Self {
            targets: Vec::new(),
            interval: StdDuration::from_secs(60),
        }
    }
}

/// The last check of one broker.
#[derive(Clone, Debug)]
pub struct CanaryStatus {
    /// The `[[brokers]]` entry.
    pub broker: String,
    /// The revoked canary was refused and the valid one accepted; none before the first check.
    pub enforced: Option<bool>,
    /// The valid canary got a CONNACK.
    pub valid_accepted: Option<bool>,
    /// The revoked canary was refused.
    pub revoked_refused: Option<bool>,
    /// When the last check ended.
    pub checked_at: Option<DateTime<Utc>>,
    /// How long the valid canary took to get its CONNACK, in milliseconds.
    pub latency_ms: Option<u64>,
    /// What went wrong, in words (no secrets: addresses and TLS or MQTT errors).
    pub detail: Option<String>,
}

impl CanaryStatus {
    fn unchecked(broker: &str) -> Self {
        Self {
            broker: broker.to_owned(),
            enforced: None,
            valid_accepted: None,
            revoked_refused: None,
            checked_at: None,
            latency_ms: None,
            detail: None,
        }
    }
}

/// The canaries' latest results, shared with the overview.
#[derive(Debug, Default)]
pub struct CanaryBoard(RwLock<Vec<CanaryStatus>>);

impl CanaryBoard {
    /// Every configured broker's latest check, in the settings' order.
    pub fn statuses(&self) -> Vec<CanaryStatus> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, status: CanaryStatus) {
        let mut all = self.0.write().unwrap_or_else(|e| e.into_inner());
        match all.iter_mut().find(|s| s.broker == status.broker) {
            Some(slot) => *slot = status,
            None => all.push(status),
        }
    }
}

/// A canary certificate and its key, in memory only.
struct Credential {
    cert_pem: String,
    key_pem: String,
}

struct Pair {
    valid: Credential,
    revoked: Credential,
    not_after: DateTime<Utc>,
}

/// Issues the canaries and checks the brokers. One per process, started by `startup::serve`.
pub struct CanaryWorker {
    ca: Arc<Authority>,
    queue: IssueQueue,
    store: Store,
    crl: Arc<CrlPublisher>,
    clock: Arc<dyn Clock>,
    crl_url: String,
    enterprise: String,
    policy: CanaryPolicy,
    board: Arc<CanaryBoard>,
}

/// What one connection attempt ended with.
#[derive(Debug)]
enum Attempt {
    Accepted(StdDuration),
    Refused(String),
}

impl CanaryWorker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ca: Arc<Authority>,
        queue: IssueQueue,
        store: Store,
        crl: Arc<CrlPublisher>,
        clock: Arc<dyn Clock>,
        crl_url: String,
        enterprise: String,
        policy: CanaryPolicy,
    ) -> Self {
        let board = Arc::new(CanaryBoard::default());
        for t in &policy.targets {
            board.set(CanaryStatus::unchecked(&t.broker));
        }
        Self {
            ca,
            queue,
            store,
            crl,
            clock,
            crl_url,
            enterprise,
            policy,
            board,
        }
    }

    /// The results the overview shows.
    pub fn board(&self) -> Arc<CanaryBoard> {
        self.board.clone()
    }

    /// Checks every broker now and then every interval, until the process stops. Does
    /// nothing when no broker has an MQTT address.
    pub fn spawn(self) {
        if self.policy.targets.is_empty() {
            return;
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        tokio::spawn(async move {
            let mut pair: Option<Pair> = None;
            let mut failing = std::collections::HashSet::new();
            loop {
                if pair
                    .as_ref()
                    .is_none_or(|p| p.not_after - self.clock.now() < RENEW_BEFORE)
                {
                    match self.issue_pair().await {
                        Ok(p) => pair = Some(p),
                        Err(e) => tracing::error!(error = %e, "the revocation canary's certificates were not issued"),
                    }
                }
                if let Some(p) = &pair {
                    for target in &self.policy.targets {
                        let status = self.check(target, p).await;
                        self.report(target, &status, &mut failing).await;
                        self.board.set(status);
                    }
                }
                tokio::time::sleep(self.policy.interval).await;
            }
        });
    }

    /// Issues a valid and a revoked canary; returns once a CRL listing the revoked one has
    /// been published (and the reload command run).
    async fn issue_pair(&self) -> Result<Pair, Error> {
        let now = self.clock.now();
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..12];
        let (valid, _, not_after) = self.issue(&format!("{CN_PREFIX}{tag}"), now).await?;
        let (revoked, revoked_id, _) = self.issue(&format!("{CN_PREFIX}{tag}-revoked"), now).await?;
        let record = super::audit::system(
            "canary.revoke",
            "certificate",
            &revoked_id.to_string(),
            Some(&self.enterprise),
            serde_json::json!({"reason": REASON}),
        );
        let (cert, _) = self
            .store
            .revoke_certificate(revoked_id, REASON, &[record], self.clock.now())
            .await?;
        self.crl.add_revocations(std::iter::once(&cert)).await?;
        tracing::info!(serial = %cert.serial, "revocation canary issued and revoked");
        Ok(Pair {
            valid,
            revoked,
            not_after,
        })
    }

    /// Signs and stores one canary certificate (never its key), named by its CN.
    async fn issue(&self, cn: &str, now: DateTime<Utc>) -> Result<(Credential, uuid::Uuid, DateTime<Utc>), Error> {
        let key = generate_p256()?;
        let profile = ClientProfile {
            common_name: cn,
            organization: &self.enterprise,
            validity: VALIDITY,
            crl_url: &self.crl_url,
        };
        let issued = self.ca.issue_client(&profile, &key.public_key, now)?;
        let cert_pem = issued.pem.clone();
        let not_after = issued.not_after;
        let new = NewCertificate {
            name: cn.to_owned(),
            kind: kind::CANARY.to_owned(),
            api_key_id: None,
            enterprise: self.enterprise.clone(),
            serial: issued.serial_hex,
            fingerprint: issued.fingerprint,
            certificate_pem: issued.pem,
            not_before: issued.not_before,
            not_after,
            device: None,
            renews: None,
            claim: None,
        };
        let stored = self.queue.insert(new, None, None, now).await?;
        issued_metric(kind::CANARY);
        Ok((
            Credential {
                cert_pem,
                key_pem: key.private_key_pem,
            },
            stored.certificate.id,
            not_after,
        ))
    }

    async fn check(&self, target: &CanaryTarget, pair: &Pair) -> CanaryStatus {
        let ca = match &target.ca_file {
            Some(path) => match tokio::fs::read(path).await {
                Ok(pem) => pem,
                Err(e) => {
                    return CanaryStatus {
                        enforced: Some(false),
                        checked_at: Some(self.clock.now()),
                        detail: Some(format!("mqtt_ca_file {}: {e}", path.display())),
                        ..CanaryStatus::unchecked(&target.broker)
                    };
                }
            },
            None => self.ca.certificate_pem().as_bytes().to_vec(),
        };
        let valid = attempt(&target.url, &ca, &pair.valid).await;
        let revoked = attempt(&target.url, &ca, &pair.revoked).await;
        let (valid_accepted, latency_ms, valid_error) = match &valid {
            Attempt::Accepted(took) => (true, Some(took.as_millis() as u64), None),
            Attempt::Refused(why) => (false, None, Some(why.clone())),
        };
        let revoked_refused = matches!(revoked, Attempt::Refused(_));
        let detail = match (valid_error, revoked_refused) {
            (_, false) => {
                Some("the broker accepted the revoked canary certificate: it does not check fleetca's CRL".to_owned())
            }
            (Some(why), true) => Some(format!("the valid canary certificate was refused: {why}")),
            (None, true) => None,
        };
        CanaryStatus {
            broker: target.broker.clone(),
            enforced: Some(valid_accepted && revoked_refused),
            valid_accepted: Some(valid_accepted),
            revoked_refused: Some(revoked_refused),
            checked_at: Some(self.clock.now()),
            latency_ms,
            detail,
        }
    }

    /// Metrics, the log, and the webhook on the first failure after a pass.
    async fn report(
        &self,
        target: &CanaryTarget,
        status: &CanaryStatus,
        failing: &mut std::collections::HashSet<String>,
    ) {
        let broker = target.broker.clone();
        let enforced = status.enforced == Some(true);
        metrics::gauge!("fleetca_broker_revocation_enforced", "broker" => broker.clone())
            .set(f64::from(u8::from(enforced)));
        metrics::gauge!("fleetca_broker_canary_valid_accepted", "broker" => broker.clone())
            .set(f64::from(u8::from(status.valid_accepted == Some(true))));
        if let Some(at) = status.checked_at {
            metrics::gauge!("fleetca_broker_canary_last_check_timestamp_seconds", "broker" => broker.clone())
                .set(at.timestamp() as f64);
        }
        if let Some(ms) = status.latency_ms {
            metrics::gauge!("fleetca_broker_canary_latency_seconds", "broker" => broker.clone())
                .set(ms as f64 / 1000.0);
        }
        if enforced {
            if failing.remove(&broker) {
                tracing::info!(%broker, "revocation canary: the broker refuses revoked certificates again");
            }
            return;
        }
        let detail = status.detail.clone().unwrap_or_default();
        tracing::warn!(%broker, url = %target.url, %detail, "revocation canary failed");
        if status.revoked_refused == Some(false) && failing.insert(broker.clone()) {
            let event = fleetca_storage::webhooks::NewEvent {
                event_type: EVENT.into(),
                enterprise: None,
                data: serde_json::json!({
                    "broker": broker,
                    "url": target.url,
                    "detail": detail,
                    "checked_at": status.checked_at,
                }),
            };
            if let Err(e) = self.store.enqueue_events(&[event], self.clock.now()).await {
                tracing::warn!(error = %e, "{EVENT} not announced");
            }
        }
    }
}

/// The webhook a broker that accepts the revoked canary sends.
pub const EVENT: &str = "broker.revocation_not_enforced";

/// The RFC 5280 reason the revoked canary is revoked with.
const REASON: &str = "cessationOfOperation";

/// The host and port of an `mqtts://host:port` URL (8883 when it names none).
pub fn parse_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("mqtts://")
        .ok_or_else(|| format!("mqtt_url {url:?} must start with mqtts:// (the canary proves certificate checks)"))?
        .trim_end_matches('/');
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, port)) => (host, Some(port.strip_prefix(':').unwrap_or("?"))),
            None => return Err(format!("mqtt_url {url:?}: unclosed [")),
        },
        None => match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        },
    };
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| format!("mqtt_url {url:?}: bad port"))?,
        None => 8883,
    };
    if host.is_empty() {
        return Err(format!("mqtt_url {url:?} has no host"));
    }
    Ok((host.to_owned(), port))
}

/// One MQTT connection with `credential`: accepted at a successful CONNACK, refused at
/// anything else (a TLS alert, a closed connection, a refusing CONNACK, a timeout).
async fn attempt(url: &str, ca: &[u8], credential: &Credential) -> Attempt {
    let (host, port) = match parse_url(url) {
        Ok(hp) => hp,
        Err(e) => return Attempt::Refused(e),
    };
    let client_id = format!("{CN_PREFIX}{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut options = MqttOptions::new(client_id, host, port);
    options
        .set_keep_alive(StdDuration::from_secs(10))
        .set_clean_session(true)
        .set_transport(Transport::Tls(TlsConfiguration::Simple {
            ca: ca.to_vec(),
            alpn: None,
            client_auth: Some((
                credential.cert_pem.as_bytes().to_vec(),
                credential.key_pem.as_bytes().to_vec(),
            )),
        }));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 4);
    let started = Instant::now();
    let outcome = tokio::time::timeout(ATTEMPT_TIMEOUT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    return if ack.code == ConnectReturnCode::Success {
                        Attempt::Accepted(started.elapsed())
                    } else {
                        Attempt::Refused(format!("CONNACK {:?}", ack.code))
                    };
                }
                Ok(_) => {}
                Err(e) => return Attempt::Refused(super::error_chain(&e)),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Attempt::Refused(format!("no CONNACK within {} s", ATTEMPT_TIMEOUT.as_secs())));
    if matches!(outcome, Attempt::Accepted(_)) {
        // A clean DISCONNECT, so the broker logs no error for the canary.
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(StdDuration::from_secs(1), eventloop.poll()).await;
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_urls_are_mqtts_with_a_host_and_port() {
        assert_eq!(
            parse_url("mqtts://broker.example:8884").unwrap(),
            ("broker.example".into(), 8884)
        );
        assert_eq!(
            parse_url("mqtts://broker.example").unwrap(),
            ("broker.example".into(), 8883)
        );
        assert_eq!(parse_url("mqtts://[::1]:9000/").unwrap(), ("::1".into(), 9000));
        assert!(
            parse_url("mqtt://broker.example:1883").is_err(),
            "plain MQTT proves nothing about certificates"
        );
        assert!(parse_url("mqtts://:8883").is_err());
        assert!(parse_url("mqtts://host:port").is_err());
    }

    #[test]
    fn no_user_may_take_the_canary_prefix() {
        assert!(CN_PREFIX.starts_with(crate::domain::Username::RESERVED_PREFIX));
    }
}
