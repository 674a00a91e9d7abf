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
//! Both carry one CN: a broker that asks fleetca by name alone, having checked the
//! certificate itself (RabbitMQ), is told yes for either, so only its own CRL check can
//! refuse the revoked one. Each instance runs its own canary with its own pair.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use fleetca_storage::Store;
use rumqttc::{ConnectReturnCode, Event, MqttOptions, Packet, TlsConfiguration, Transport};

use crate::domain::AuditAction;
use crate::domain::EventKind;
use crate::outbox::changes::Changes;
use crate::pki::crl::CrlPublisher;
use crate::pki::issuer::Issuer;
use crate::support::Error;
use crate::support::clock::Clock;

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

/// The valid and the revoked canary. Both carry the same CN, so a broker that asks fleetca
/// by name alone (RabbitMQ) admits either, and only its own CRL check can refuse the revoked one.
struct Pair {
    valid: Credential,
    revoked: Credential,
    not_after: DateTime<Utc>,
    /// When the CRL listing the revoked canary was published.
    published: Instant,
    /// When the revoked canary was revoked, and whether a CRL publication (file and reload
    /// command) has succeeded since: until then a broker that accepts it may simply not have
    /// been given a CRL that lists it.
    revoked_at: DateTime<Utc>,
    confirmed: bool,
}

/// Issues the canaries and checks the brokers. One per process, started by `startup::serve`.
pub struct CanaryWorker {
    issuer: Arc<Issuer>,
    store: Store,
    crl: Arc<CrlPublisher>,
    changes: Arc<Changes>,
    clock: Arc<dyn Clock>,
    policy: CanaryPolicy,
    board: Arc<CanaryBoard>,
}

/// What one connection attempt ended with.
#[derive(Debug)]
enum Attempt {
    /// A successful CONNACK, after this long.
    Accepted(StdDuration),
    /// Refused for its certificate or credentials: a TLS alert or certificate error, or a
    /// CONNACK "not authorized" / "bad user name or password".
    Refused(String),
    /// Ended without a verdict on the certificate: unreachable, timed out, closed, …
    Failed(String),
}

/// The wiring a worker needs.
pub struct CanaryDeps {
    pub issuer: Arc<Issuer>,
    pub store: Store,
    pub crl: Arc<CrlPublisher>,
    pub changes: Arc<Changes>,
    pub clock: Arc<dyn Clock>,
}

impl CanaryWorker {
    pub fn new(deps: CanaryDeps, policy: CanaryPolicy) -> Self {
        let board = Arc::new(CanaryBoard::default());
        for t in &policy.targets {
            board.set(CanaryStatus::unchecked(&t.broker));
        }
        let CanaryDeps {
            issuer,
            store,
            crl,
            changes,
            clock,
        } = deps;
        Self {
            issuer,
            store,
            crl,
            changes,
            clock,
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
        // Not proven until the first check says so; "checked now" so that a canary that never
        // manages a check still trips the staleness alert.
        for t in &self.policy.targets {
            let broker = t.broker.clone();
            metrics::gauge!("fleetca_broker_revocation_enforced", "broker" => broker.clone()).set(0.0);
            metrics::gauge!("fleetca_broker_canary_valid_accepted", "broker" => broker.clone()).set(0.0);
            metrics::gauge!("fleetca_broker_canary_interval_seconds", "broker" => broker.clone())
                .set(self.policy.interval.as_secs_f64());
            metrics::gauge!("fleetca_broker_canary_last_check_timestamp_seconds", "broker" => broker)
                .set(self.clock.now().timestamp() as f64);
        }
        tokio::spawn(async move {
            let mut pair: Option<Pair> = None;
            let mut failing = std::collections::HashSet::new();
            let mut retry_at = Instant::now();
            let mut backoff = self.policy.interval;
            let mut ticks = tokio::time::interval(self.policy.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let due = pair
                    .as_ref()
                    .is_none_or(|p| p.not_after - self.clock.now() < RENEW_BEFORE);
                if due && Instant::now() >= retry_at {
                    match self.issue_pair().await {
                        Ok(p) => {
                            pair = Some(p);
                            backoff = self.policy.interval;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, retry_in_seconds = backoff.as_secs(), "the revocation canary's certificates were not issued");
                            retry_at = Instant::now() + backoff;
                            backoff = (backoff * 2).min(StdDuration::from_secs(3600));
                            if pair.is_none() {
                                for t in &self.policy.targets {
                                    self.board.set(CanaryStatus {
                                        enforced: Some(false),
                                        checked_at: Some(self.clock.now()),
                                        detail: Some(format!("the canary certificates could not be issued: {e}")),
                                        ..CanaryStatus::unchecked(&t.broker)
                                    });
                                }
                            }
                        }
                    }
                }
                let Some(p) = &mut pair else { continue };
                if !p.confirmed {
                    let publication = self.crl.status();
                    p.confirmed = publication.ok && publication.at.is_some_and(|at| at >= p.revoked_at);
                }
                let p = &*p;
                let checks = self.policy.targets.iter().map(|t| self.check(t, p));
                let results = futures_util::future::join_all(checks).await;
                for (target, status) in self.policy.targets.iter().zip(results) {
                    self.report(target, &status, p.confirmed, &mut failing).await;
                    self.board.set(status);
                }
            }
        });
    }

    /// Issues a valid and a revoked canary; returns once a CRL listing the revoked one has
    /// been signed and its publication tried (see [`CrlPublisher::status`] for how that went),
    /// and the other instances told.
    async fn issue_pair(&self) -> Result<Pair, Error> {
        let now = self.clock.now();
        let cn = format!("{CN_PREFIX}{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let (valid, valid_cert) = self.issue(&cn).await?;
        let (revoked, revoked_cert) = self.issue(&cn).await?;
        let revoked_id = revoked_cert.id;
        let record = crate::outbox::audit::system(
            AuditAction::CanaryRevoke,
            "certificate",
            &revoked_id.to_string(),
            Some(&revoked_cert.enterprise),
            serde_json::json!({"reason": REASON, "common_name": cn}),
        );
        let (cert, _) = self
            .store
            .revoke_certificate(revoked_id, REASON, &[record], self.clock.now())
            .await?;
        // Like every revocation: on this instance's CRL, and on the other instances' too.
        self.changes.revoked(std::slice::from_ref(&cert)).await?;
        tracing::info!(serial = %cert.serial, common_name = %cn, "revocation canary issued and revoked");
        Ok(Pair {
            valid,
            revoked,
            not_after: valid_cert.not_after,
            published: Instant::now(),
            revoked_at: cert.revoked_at.unwrap_or(now),
            confirmed: false,
        })
    }

    /// One canary certificate and its key (kept here, in memory only).
    async fn issue(&self, cn: &str) -> Result<(Credential, fleetca_storage::Certificate), Error> {
        let (cert, key_pem) = self.issuer.issue_canary(cn, VALIDITY).await?;
        // Presented with its intermediates, as any client of fleetca's presents its own.
        let credential = Credential {
            cert_pem: format!("{}{}", cert.certificate_pem, self.issuer.chain_pem()),
            key_pem,
        };
        Ok((credential, cert))
    }

    async fn check(&self, target: &CanaryTarget, pair: &Pair) -> CanaryStatus {
        let failed = |detail: String| CanaryStatus {
            enforced: Some(false),
            checked_at: Some(self.clock.now()),
            detail: Some(detail),
            ..CanaryStatus::unchecked(&target.broker)
        };
        let ca = match &target.ca_file {
            Some(path) => match tokio::fs::read(path).await {
                Ok(pem) => pem,
                Err(e) => return failed(format!("mqtt_ca_file {}: {e}", path.display())),
            },
            None => self.issuer.ca_certificate_pem().as_bytes().to_vec(),
        };
        let valid = attempt(&target.url, &ca, &pair.valid).await;
        let revoked = attempt(&target.url, &ca, &pair.revoked).await;
        let mut status = CanaryStatus {
            checked_at: Some(self.clock.now()),
            ..CanaryStatus::unchecked(&target.broker)
        };
        let valid_problem = match valid {
            Attempt::Accepted(took) => {
                status.valid_accepted = Some(true);
                status.latency_ms = Some(took.as_millis() as u64);
                None
            }
            Attempt::Refused(why) => {
                status.valid_accepted = Some(false);
                Some(format!(
                    "the valid canary certificate was refused ({why}): does the broker trust fleetca's CA?"
                ))
            }
            Attempt::Failed(why) => {
                status.valid_accepted = Some(false);
                Some(format!("the valid canary certificate got no answer: {why}"))
            }
        };
        let mut pending = false;
        let revoked_problem = match revoked {
            Attempt::Refused(_) => {
                status.revoked_refused = Some(true);
                None
            }
            Attempt::Accepted(_) => {
                status.revoked_refused = Some(false);
                Some(if !pair.confirmed {
                    format!(
                        "the broker accepted the revoked canary certificate, but no CRL listing it has been published yet ({})",
                        self.crl.status().error.unwrap_or_else(|| "publication pending".into())
                    )
                } else if pair.published.elapsed() < self.policy.interval {
                    // A broker that loads the CRL a little later is given one interval.
                    pending = true;
                    "pending: the new revoked canary was published less than an interval ago".to_owned()
                } else {
                    "the broker accepted the revoked canary certificate: it does not check fleetca's CRL".to_owned()
                })
            }
            Attempt::Failed(why) => Some(format!("the revoked canary certificate got no verdict: {why}")),
        };
        if pending {
            status.detail = revoked_problem;
            return status;
        }
        status.enforced = Some(valid_problem.is_none() && revoked_problem.is_none());
        status.detail = match (revoked_problem, valid_problem) {
            (Some(r), Some(v)) => Some(format!("{r}; {v}")),
            (r, v) => r.or(v),
        };
        status
    }

    /// Metrics, the log, and the webhook on the first "accepted the revoked canary" after a
    /// pass (once a CRL listing it is known to have been published).
    async fn report(
        &self,
        target: &CanaryTarget,
        status: &CanaryStatus,
        confirmed: bool,
        failing: &mut std::collections::HashSet<String>,
    ) {
        let broker = target.broker.clone();
        if let Some(at) = status.checked_at {
            metrics::gauge!("fleetca_broker_canary_last_check_timestamp_seconds", "broker" => broker.clone())
                .set(at.timestamp() as f64);
        }
        metrics::gauge!("fleetca_broker_canary_valid_accepted", "broker" => broker.clone())
            .set(f64::from(u8::from(status.valid_accepted == Some(true))));
        metrics::gauge!("fleetca_broker_canary_latency_seconds", "broker" => broker.clone())
            .set(status.latency_ms.map_or(f64::NAN, |ms| ms as f64 / 1000.0));
        let Some(enforced) = status.enforced else {
            tracing::info!(%broker, detail = status.detail.as_deref().unwrap_or(""), "revocation canary: waiting for the brokers to load the CRL");
            return;
        };
        metrics::gauge!("fleetca_broker_revocation_enforced", "broker" => broker.clone())
            .set(f64::from(u8::from(enforced)));
        if enforced {
            if failing.remove(&broker) {
                tracing::info!(%broker, "revocation canary: the broker refuses revoked certificates again");
            }
            return;
        }
        let detail = status.detail.clone().unwrap_or_default();
        tracing::warn!(%broker, url = %target.url, %detail, "revocation canary failed");
        let revoked_accepted = status.revoked_refused == Some(false) && confirmed;
        if revoked_accepted && failing.insert(broker.clone()) {
            let event = fleetca_storage::webhooks::NewEvent {
                event_type: EVENT.as_str().into(),
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
pub const EVENT: EventKind = EventKind::BrokerRevocationNotEnforced;

/// The RFC 5280 reason the revoked canary is revoked with.
const REASON: &str = "cessationOfOperation";

/// The host and port of an `mqtts://host:port` URL (8883 when it names none).
pub fn parse_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("mqtts://")
        .ok_or_else(|| format!("mqtt_url {url:?} must start with mqtts:// (the canary proves certificate checks)"))?
        .trim_end_matches('/');
    if rest.contains(['@', '/', '?', '#']) {
        return Err(format!(
            "mqtt_url {url:?} must be mqtts://host:port, without credentials or a path"
        ));
    }
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

/// One MQTT connection with `credential`, ended after its CONNACK (see [`Attempt`]).
async fn attempt(url: &str, ca: &[u8], credential: &Credential) -> Attempt {
    let (host, port) = match parse_url(url) {
        Ok(hp) => hp,
        Err(e) => return Attempt::Failed(e),
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
                    return match ack.code {
                        ConnectReturnCode::Success => Attempt::Accepted(started.elapsed()),
                        code @ (ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword) => {
                            Attempt::Refused(format!("CONNACK {code:?}"))
                        }
                        code => Attempt::Failed(format!("CONNACK {code:?}")),
                    };
                }
                Ok(_) => {}
                Err(e) => return classify(&crate::support::error_chain(&e)),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Attempt::Failed(format!("no CONNACK within {} s", ATTEMPT_TIMEOUT.as_secs())));
    if matches!(outcome, Attempt::Accepted(_)) {
        // A clean DISCONNECT, so the broker logs no error for the canary.
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(StdDuration::from_secs(1), eventloop.poll()).await;
    }
    outcome
}

/// A connection error that is the broker's verdict on the certificate (a TLS alert, which is
/// how a broker refuses a client certificate) versus one that says nothing about it.
fn classify(error: &str) -> Attempt {
    let lower = error.to_ascii_lowercase();
    if lower.contains("alert") || lower.contains("certificate") {
        Attempt::Refused(error.to_owned())
    } else {
        Attempt::Failed(error.to_owned())
    }
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
        assert!(
            parse_url("mqtts://user:secret@host:8883").is_err(),
            "credentials would end up in logs"
        );
        assert!(parse_url("mqtts://host:8883/path").is_err());
    }

    #[test]
    fn only_a_tls_alert_or_certificate_error_counts_as_the_broker_refusing() {
        for refused in [
            "TLS: received fatal alert: CertificateRevoked",
            "I/O: invalid peer certificate: UnknownIssuer",
        ] {
            assert!(matches!(classify(refused), Attempt::Refused(_)), "{refused}");
        }
        for failed in [
            "I/O: Connection refused (os error 111)",
            "Connection closed by peer abruptly",
            "I/O: failed to lookup address information",
        ] {
            assert!(matches!(classify(failed), Attempt::Failed(_)), "{failed}");
        }
    }

    #[test]
    fn no_user_may_take_the_canary_prefix() {
        assert!(CN_PREFIX.starts_with(crate::domain::Username::RESERVED_PREFIX));
    }
}
