//! The revocation list: kept in memory, re-signed on every revocation and on a timer, and
//! published to HTTP, to the CRL file and through the broker's reload command.
//!
//! The revoked set is read from the database once at start and then updated incrementally,
//! so a revoke costs one CRL signature, not a re-read of every revoked row. Revocations
//! that arrive while a CRL is being published are folded into the next one (one signature
//! for all of them), and every caller returns only once a CRL listing its certificate has
//! been written and the reload command has run (a reload command that waits for the broker,
//! as the README's does, makes the broker refuse the certificate on its next connection).
//!
//! Before a CRL replaces the file it is parsed back and its signature checked: mosquitto,
//! given a broken CRL file on SIGHUP, keeps running with revocation checking off.
//!
//! A CA that signs certificates has its CRL split into shards (see
//! [`crate::pki::authorities::CRL_SHARDS`]), as Let's Encrypt's CA does: each a complete CRL
//! of its own distribution point, named in its Issuing Distribution Point, listing the
//! revocations of the certificates that name it. A revocation re-signs its shard only; the
//! others' DER and PEM stay as they are. The CA's own CRL lists the certificates issued
//! before shards. The shards share the CA's CRL number, so each one's numbers only grow.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration as StdDuration;

use bytes::Bytes;
use chrono::{DateTime, Duration, Timelike, Utc};
use fleetca_ca::Authority;
use fleetca_ca::crl::{CrlRequest, Reason, RevokedEntry, encode_revoked_entry};
use fleetca_storage::{Certificate, Store};

use crate::domain::EventKind;
use crate::pki::authorities::Authorities;
use crate::support::Error;
use crate::support::clock::Clock;

/// thisUpdate is set this far in the past: a thisUpdate in the future (a broker whose
/// clock is behind) makes mosquitto refuse every client.
const THIS_UPDATE_BACKDATE: Duration = Duration::minutes(5);

/// The CRL currently served.
#[derive(Clone, Debug)]
pub struct PublishedCrl {
    pub der: Bytes,
    pub pem: Bytes,
    pub number: u64,
    pub this_update: DateTime<Utc>,
    pub next_update: DateTime<Utc>,
    pub entries: usize,
}

/// How the last publication to the file and reload command went.
#[derive(Clone, Debug)]
pub struct PublishStatus {
    /// Whether the last file write and reload command succeeded (true when neither is configured).
    pub ok: bool,
    /// When it was attempted.
    pub at: Option<DateTime<Utc>>,
    /// What failed, if anything.
    pub error: Option<String>,
}

struct Entry {
    entry: RevokedEntry,
    not_after: DateTime<Utc>,
}

impl Entry {
    /// An entry from what the database records: the serial as hex, the RFC 5280 reason
    /// name (an unknown one reads as `unspecified`).
    fn new(
        serial_hex: &str,
        revoked_at: DateTime<Utc>,
        reason: Option<&str>,
        not_after: DateTime<Utc>,
    ) -> Option<Self> {
        let reason = reason.and_then(|r| r.parse().ok()).unwrap_or(Reason::Unspecified);
        let entry = RevokedEntry {
            serial: hex::decode(serial_hex).ok()?,
            revoked_at,
            reason,
        };
        Some(Self { entry, not_after })
    }
}

/// The entry of an intermediate its root revoked at `at`, for the root's CRL (none when its
/// certificate does not read).
fn revoked_ca_entry(certificate_pem: &str, at: DateTime<Utc>, reason: Option<&str>) -> Option<Entry> {
    let der = pem::parse(certificate_pem.trim()).ok()?.into_contents();
    let (_, not_after) = fleetca_ca::validity(&der)?;
    let reason = reason
        .and_then(|r| r.parse::<Reason>().ok())
        .map(|r| crate::pki::rotation::leaf_reason(r).name());
    Entry::new(&fleetca_ca::serial_hex(&der)?, at, reason, not_after)
}

/// Where and how CRLs are published.
#[derive(Clone, Debug)]
pub struct CrlSettings {
    /// nextUpdate - thisUpdate.
    pub validity: Duration,
    /// Where to write the CRLs (PEM, every CA's, one after another), if anywhere.
    pub file: Option<PathBuf>,
    /// Run with `sh -c` after each file write (the operator's own setting).
    pub reload_command: Option<String>,
    /// The file's mode and group.
    pub access: FileAccess,
    /// Told after each write of the file (the mosquitto plugins' feed, which has a plugin
    /// reload its broker; set by `config`, so this context imports none of the brokers').
    pub written: Option<Written>,
    /// fleetca's own record of the last CRL of the first CA it published, outside the
    /// database (see [`crate::pki::published`]; the other CAs' records lie beside it); none
    /// in tests that need no restore check.
    pub record: Option<PathBuf>,
}

/// What runs after each write of the CRL file.
#[derive(Clone)]
pub struct Written(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Written")
    }
}

/// Who may read a file fleetca writes for a broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileAccess {
    /// Unix permissions (set on the file itself, whatever the umask).
    pub mode: u32,
    /// The file's group, when not fleetca's own.
    pub group: Option<u32>,
}

impl Default for FileAccess {
    fn default() -> Self {
        Self {
            mode: 0o644,
            group: None,
        }
    }
}

/// Publishes the CRL of every CA fleetca signs CRLs for (see
/// [`crate::pki::authorities::Authorities::crl_signers`]): each CA's revocations on its own
/// CRL, with its own number and distribution point; the file holds all of them. One per
/// process.
pub struct CrlPublisher {
    clock: Arc<dyn Clock>,
    store: Store,
    validity: Duration,
    file: Option<PathBuf>,
    reload_command: Option<String>,
    access: FileAccess,
    written: Option<Written>,
    /// Oldest CA first; the file lists their CRLs in this order.
    issuers: Vec<IssuerCrl>,
    /// The CA that issues new certificates.
    issuing: i32,
    /// Held while the file is written and the reload command runs.
    output: tokio::sync::Mutex<()>,
    /// Held for a publication round (see [`CrlPublisher::add_entries`]); when the last one
    /// began.
    round: tokio::sync::Mutex<Option<std::time::Instant>>,
    status: RwLock<PublishStatus>,
}

/// Which CRL: a CA's id, and its shard (none: the CA's own CRL).
type CrlKey = (i32, Option<i16>);

/// One CRL: a CA's own, or one of its shards.
struct IssuerCrl {
    id: i32,
    /// The shard it is (none: the CA's own CRL).
    shard: Option<i16>,
    ca: Arc<Authority>,
    url: String,
    /// Whether its CRL names its distribution point (see [`fleetca_ca::crl::CrlRequest::scoped`]).
    scoped: bool,
    record: Option<PathBuf>,
    /// Revocations waiting for the next CRL, and the sequence number of the newest.
    pending: Mutex<Vec<Entry>>,
    added: AtomicU64,
    /// Held while a CRL is built and published; guards the revoked set.
    publishing: tokio::sync::Mutex<Published>,
    /// `Published::covered`, readable without the lock (see [`CrlPublisher::behind`]).
    covered: AtomicU64,
    /// Whether its last CRL failed to be signed or recorded (cleared once one is published).
    failed: std::sync::atomic::AtomicBool,
    /// The number of the CRL its own file (`{ca}` in the file's path) last received.
    written: AtomicU64,
    current: RwLock<Option<PublishedCrl>>,
}

impl IssuerCrl {
    /// Whether a revocation waits for its next CRL.
    fn behind(&self) -> bool {
        self.added.load(Ordering::Acquire) > self.covered.load(Ordering::Acquire)
    }

    /// Which CRL it is: its CA's id, and its shard.
    fn key(&self) -> CrlKey {
        (self.id, self.shard)
    }

    /// What replaces `{ca}` in the CRL file's path: the CA's id, then `-` and the shard.
    fn file_name(&self) -> String {
        match self.shard {
            None => self.id.to_string(),
            Some(shard) => format!("{}-{shard}", self.id),
        }
    }

    /// How a log line or an error names it.
    fn describe(&self) -> String {
        match self.shard {
            None => format!("CA {}'s CRL", self.id),
            Some(shard) => format!("CA {}'s CRL shard {shard}", self.id),
        }
    }

    /// Marks revocations up to `covered` as published (the file written).
    fn cover(&self, published: &mut Published, covered: u64) {
        published.covered = covered;
        self.covered.store(covered, Ordering::Release);
        self.failed.store(false, Ordering::Release);
    }
}

struct Published {
    revoked: Vec<Entry>,
    /// The serials in `revoked`, so a revocation heard twice (locally and from another
    /// instance) is listed once.
    serials: HashSet<Vec<u8>>,
    /// The DER of every entry of `revoked`, concatenated and appended to as revocations
    /// arrive, so a new CRL costs a hash of the list rather than encoding it again.
    encoded: Arc<Vec<u8>>,
    /// Revocations up to this sequence number are on the current CRL.
    covered: u64,
    /// What the next CRL is built in (see [`fleetca_ca::crl::CrlBuffers`]).
    buffers: fleetca_ca::crl::CrlBuffers,
}

impl Published {
    fn new(mut revoked: Vec<Entry>) -> Self {
        // A serial read twice (a revoked intermediate also restored from the published
        // record) is listed once.
        let mut serials = HashSet::with_capacity(revoked.len());
        revoked.retain(|e| serials.insert(e.entry.serial.clone()));
        Self {
            serials,
            encoded: Arc::new(revoked.iter().flat_map(|e| encode_revoked_entry(&e.entry)).collect()),
            revoked,
            covered: 0,
            buffers: fleetca_ca::crl::CrlBuffers::default(),
        }
    }
}

/// Least time between the starts of two publications to the file and reload command. Revocations that
/// arrive meanwhile wait and share the next one, so under a burst the broker reloads at most
/// ten times a second however many revocations there are, in however many CRLs (each still
/// returns only once a CRL listing it is written and reloaded); a lone revocation is
/// published at once.
const MIN_PUBLISH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

impl CrlPublisher {
    /// Loads every unexpired revocation and publishes a first CRL of each CA.
    pub async fn start(
        authorities: &Authorities,
        store: Store,
        clock: Arc<dyn Clock>,
        settings: CrlSettings,
    ) -> Result<Arc<Self>, Error> {
        let CrlSettings {
            validity,
            file,
            reload_command,
            access,
            written,
            record,
        } = settings;
        // Each CA's own CRL, then its shards.
        let signers: Vec<(CrlKey, Arc<Authority>, String, bool)> = authorities
            .crl_signers()
            .filter_map(|c| Some((c, c.authority.clone()?)))
            .flat_map(|(c, ca)| {
                let shards = c.crl_shards().iter().enumerate().filter_map({
                    let ca = ca.clone();
                    move |(shard, url)| Some(((c.id, Some(i16::try_from(shard).ok()?)), ca.clone(), url.clone(), true))
                });
                std::iter::once(((c.id, None), ca.clone(), c.crl_url.clone(), c.scoped_crl())).chain(shards)
            })
            .collect();
        if let Some(first) = &record {
            // Each CA's records together: its CRLs share its number, so one repair applies
            // every record above the database's.
            for ((id, shard), ca, _, _) in &signers {
                if shard.is_some() {
                    continue; // with its CA's own
                }
                let paths: Vec<(Option<i16>, PathBuf)> = signers
                    .iter()
                    .filter(|((i, _), ..)| i == id)
                    .map(|((_, s), ..)| (*s, crate::pki::published::record_of(first, *id, *s)))
                    .collect();
                crate::pki::published::reconcile(*id, ca, &store, &clock, &paths).await?;
            }
        }
        let now = clock.now();
        let mut revoked: HashMap<CrlKey, Vec<Entry>> = HashMap::new();
        let published: HashSet<CrlKey> = signers.iter().map(|(key, ..)| *key).collect();
        for r in store
            .revocations(now)
            .await?
            .into_iter()
            .chain(store.restored_revocations(now).await?)
        {
            if let Some(e) = Entry::new(&r.serial, r.revoked_at, Some(&r.reason), r.not_after) {
                // A shard this instance does not publish (there are fewer now): the CA's own CRL.
                let key = Some((r.issuer_id, r.shard))
                    .filter(|k| published.contains(k))
                    .unwrap_or_else(|| {
                        if r.shard.is_some() {
                            tracing::warn!(ca = r.issuer_id, shard = ?r.shard, serial = %r.serial, "a revocation names a CRL shard this instance does not publish; listed on its CA's own CRL");
                        }
                        (r.issuer_id, None)
                    });
                revoked.entry(key).or_default().push(e);
            }
        }
        // Intermediates their root revoked, on the root's CRL.
        for ca in authorities.all() {
            let entry = ca
                .revoked
                .as_ref()
                .and_then(|(at, reason)| revoked_ca_entry(&ca.certificate_pem, *at, Some(reason)));
            if let (Some(parent), Some(entry)) = (ca.parent_id, entry) {
                revoked.entry((parent, None)).or_default().push(entry);
            }
        }
        let issuers = signers
            .into_iter()
            .map(|((id, shard), ca, url, scoped)| IssuerCrl {
                id,
                shard,
                ca,
                url,
                scoped,
                record: record
                    .as_deref()
                    .map(|first| crate::pki::published::record_of(first, id, shard)),
                pending: Mutex::new(Vec::new()),
                added: AtomicU64::new(0),
                publishing: tokio::sync::Mutex::new(Published::new(revoked.remove(&(id, shard)).unwrap_or_default())),
                covered: AtomicU64::new(0),
                failed: std::sync::atomic::AtomicBool::new(false),
                written: AtomicU64::new(0),
                current: RwLock::new(None),
            })
            .collect();
        let publisher = Arc::new(Self {
            clock,
            store,
            validity,
            file,
            reload_command,
            access,
            written,
            issuers,
            issuing: authorities.issuing().id,
            output: tokio::sync::Mutex::new(()),
            round: tokio::sync::Mutex::new(None),
            status: RwLock::new(PublishStatus {
                ok: true,
                at: None,
                error: None,
            }),
        });
        publisher.publish_now().await?;
        Ok(publisher)
    }

    /// The CRLs of the CA that issues new certificates taken together, its own and its
    /// shards': the highest number, the oldest thisUpdate, the earliest nextUpdate and every
    /// entry; the DER and PEM are its own CRL's.
    pub fn current(&self) -> Option<PublishedCrl> {
        let mut all = self
            .issuers
            .iter()
            .filter(|i| i.id == self.issuing)
            .map(|i| i.current.read().unwrap_or_else(|e| e.into_inner()).clone());
        let mut summary = all.next()??;
        for crl in all {
            let crl = crl?;
            summary.number = summary.number.max(crl.number);
            summary.this_update = summary.this_update.min(crl.this_update);
            summary.next_update = summary.next_update.min(crl.next_update);
            summary.entries += crl.entries;
        }
        Some(summary)
    }

    /// The CRL of CA `id` (its own, not a shard's), if fleetca publishes one.
    pub fn current_of(&self, id: i32) -> Option<PublishedCrl> {
        self.crl(id, None)
    }

    /// Shard `shard` of CA `id`'s CRL, if fleetca publishes it.
    pub fn current_shard(&self, id: i32, shard: i16) -> Option<PublishedCrl> {
        self.crl(id, Some(shard))
    }

    fn crl(&self, id: i32, shard: Option<i16>) -> Option<PublishedCrl> {
        let issuer = self.issuers.iter().find(|i| i.id == id && i.shard == shard)?;
        issuer.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The CRL that lists a revocation of a certificate of CA `id` naming `shard`: that shard,
    /// or the CA's own CRL when the certificate names none (or a shard no longer published).
    fn crl_for(&self, id: i32, shard: Option<i16>) -> Option<&IssuerCrl> {
        self.issuers
            .iter()
            .find(|i| i.id == id && i.shard == shard)
            .or_else(|| {
                tracing::warn!(
                    ca = id,
                    ?shard,
                    "a revocation names a CRL shard this instance does not publish; listed on its CA's own CRL"
                );
                self.issuers.iter().find(|i| i.id == id && i.shard.is_none())
            })
    }

    /// Every CA's current CRL, PEM, one after another (what the CRL file holds), with the
    /// newest thisUpdate and a tag that changes whenever one of them does.
    pub fn all_pem(&self) -> Option<(Bytes, DateTime<Utc>, String)> {
        let mut pem = Vec::new();
        let mut newest: Option<DateTime<Utc>> = None;
        let mut tag = String::from("crls");
        for issuer in &self.issuers {
            let current = issuer.current.read().unwrap_or_else(|e| e.into_inner());
            let crl = current.as_ref()?;
            pem.extend_from_slice(&crl.pem);
            newest = newest.max(Some(crl.this_update));
            tag.push_str(&format!("-{}.{}", issuer.file_name(), crl.number));
        }
        Some((Bytes::from(pem), newest?, tag))
    }

    /// How the last file write and reload went.
    pub fn status(&self) -> PublishStatus {
        self.status.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Adds revoked certificates and returns once CRLs listing them are published (each on
    /// the CRL it names: a shard of the CA that signed it, or that CA's own).
    pub async fn add_revocations(&self, certs: impl Iterator<Item = &Certificate>) -> Result<(), Error> {
        let entries = certs.filter_map(|c| {
            let entry = c
                .revoked_at
                .and_then(|at| Entry::new(&c.serial, at, c.revocation_reason.as_deref(), c.not_after))?;
            Some(((c.issuer_id, c.crl_shard), entry))
        });
        self.add_entries(entries).await
    }

    /// Lists on their roots' CRLs the intermediates revoked since this instance started (by
    /// it, another instance or `fleetca ca revoke`), read from the database, and returns once
    /// those CRLs are published. An intermediate listed already is not listed twice.
    pub async fn sync_ca_revocations(&self) -> Result<(), Error> {
        let rows = self.store.authorities().await?;
        let entries: Vec<(CrlKey, Entry)> = rows
            .iter()
            .filter_map(|r| {
                let entry = revoked_ca_entry(&r.certificate_pem, r.revoked_at?, r.revocation_reason.as_deref())?;
                Some(((r.parent_id?, None), entry))
            })
            .filter(|((parent, _), entry)| !self.lists(*parent, &entry.entry.serial))
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        self.add_entries(entries.into_iter()).await
    }

    /// Whether CA `issuer`'s CRL lists `serial` already, or will (pending).
    fn lists(&self, issuer: i32, serial: &[u8]) -> bool {
        let Some(i) = self.issuers.iter().find(|i| i.id == issuer && i.shard.is_none()) else {
            return true; // a CA this instance does not publish: nothing to add
        };
        // Listed on a CRL in the file; one only waiting (or whose signature failed) is added
        // again, so the caller waits for the round that publishes it (duplicates are
        // listed once).
        // (`behind` read under the lock: while it is held, a serial in `serials` was either
        // covered by its round or still has its CRL behind.)
        i.publishing
            .try_lock()
            .is_ok_and(|p| p.serials.contains(serial) && !i.behind())
    }

    /// Adds entries, each for the CRL of the CA (and shard) it comes with, and returns once
    /// CRLs listing them are published.
    async fn add_entries(&self, entries: impl Iterator<Item = (CrlKey, Entry)>) -> Result<(), Error> {
        let mut by_issuer: Vec<(&IssuerCrl, Vec<Entry>)> = Vec::new();
        for ((issuer_id, shard), entry) in entries {
            let Some(issuer) = self.crl_for(issuer_id, shard) else {
                // A CA this process does not publish for: one added since it started (every
                // instance restarts after `fleetca ca` changes), or one retired.
                tracing::warn!(ca = issuer_id, serial = %hex::encode(&entry.entry.serial), "a revocation of a CA whose CRL this instance does not publish; restart it to publish that CA's CRL");
                continue;
            };
            match by_issuer.iter_mut().find(|(i, _)| std::ptr::eq(*i, issuer)) {
                Some((_, entries)) => entries.push(entry),
                None => by_issuer.push((issuer, vec![entry])),
            }
        }
        // Every CA's revocations wait first, so one CA's failure loses none of another's (and
        // `behind` sees them all for the retry); then each CA publishes, the first error kept.
        let waiting: Vec<(&IssuerCrl, u64)> = by_issuer
            .into_iter()
            .map(|(issuer, entries)| {
                let mut pending = issuer.pending.lock().unwrap_or_else(|e| e.into_inner());
                pending.extend(entries);
                (issuer, issuer.added.fetch_add(1, Ordering::AcqRel) + 1)
            })
            .collect();
        // One round at a time publishes every CRL that has revocations waiting: it signs
        // each, writes the file once and runs the reload command once. Callers that arrive
        // during a round wait for the next, which takes all of theirs.
        let mut round = self.round.lock().await;
        let mut first_error = None;
        if waiting
            .iter()
            .any(|(i, mine)| i.covered.load(Ordering::Acquire) < *mine)
        {
            self.pace(&mut round).await;
            let mut signed = Vec::new();
            for issuer in self.issuers.iter().filter(|i| i.behind()) {
                let mut published = issuer.publishing.lock().await;
                match self.sign(issuer, &mut published).await {
                    Ok(covered) => signed.push((issuer, published, covered)),
                    Err(e) => {
                        issuer.failed.store(true, Ordering::Release);
                        tracing::error!(ca = issuer.id, shard = ?issuer.shard, error = %e, "a CRL was not published; retrying");
                        self.fail(format!("{} was not signed", issuer.describe())).await;
                        first_error.get_or_insert(e);
                    }
                }
            }
            let covering: Vec<CrlKey> = signed.iter().map(|(i, _, _)| i.key()).collect();
            if !covering.is_empty() {
                self.write_out(&covering).await;
            }
            for (issuer, mut published, covered) in signed {
                issuer.cover(&mut published, covered);
            }
            tracing::info!(crls = covering.len(), "CRLs published");
        }
        drop(round);
        match waiting
            .iter()
            .find(|(i, mine)| i.covered.load(Ordering::Acquire) < *mine)
        {
            None => Ok(()),
            Some((issuer, _)) => {
                Err(first_error.unwrap_or_else(|| Error::Internal(format!("{} was not published", issuer.describe()))))
            }
        }
    }

    /// Waits until [`MIN_PUBLISH_INTERVAL`] has passed since the last round began (when
    /// there is a file or a reload command to pace), and marks this one's start.
    async fn pace(&self, last: &mut Option<std::time::Instant>) {
        if self.file.is_some() || self.reload_command.is_some() {
            if let Some(wait) = last.and_then(|at| MIN_PUBLISH_INTERVAL.checked_sub(at.elapsed())) {
                tokio::time::sleep(wait).await;
            }
            *last = Some(std::time::Instant::now());
        }
    }

    /// Records a failed publication (when no more precise failure is recorded already), so
    /// `/readyz` says so and the refresh retries.
    async fn fail(&self, what: String) {
        if self.status().ok {
            self.set_status(Err(what), 0).await;
        }
    }

    /// Re-signs and publishes every CA's CRL now, then writes the file once (the timer calls
    /// this): a broker never loads a file that lacks one of them.
    pub async fn publish_now(&self) -> Result<(), Error> {
        // Every lock is held until the file is written: a revocation a CRL covers returns only
        // once that CRL is in the file (locks are taken in the CRLs' order, as in a round).
        // One CRL that fails to sign keeps none of the others from their refresh: they are
        // written and covered, and the first error is returned (the status stays failing, the
        // timer retries). A file is never written while a CRL has none yet (a failure at
        // start): the broker keeps the file it has.
        let mut round = self.round.lock().await;
        *round = Some(std::time::Instant::now());
        let mut held = Vec::with_capacity(self.issuers.len());
        let mut first_error = None;
        for issuer in &self.issuers {
            let mut published = issuer.publishing.lock().await;
            match self.sign(issuer, &mut published).await {
                Ok(covered) => held.push((issuer, published, covered)),
                Err(e) => {
                    issuer.failed.store(true, Ordering::Release);
                    tracing::error!(ca = issuer.id, shard = ?issuer.shard, error = %e, "a CRL was not signed; retrying");
                    self.fail(format!("{} was not signed", issuer.describe())).await;
                    first_error.get_or_insert(e);
                }
            }
        }
        let covering: Vec<CrlKey> = held.iter().map(|(i, _, _)| i.key()).collect();
        let complete = self
            .issuers
            .iter()
            .all(|i| i.current.read().unwrap_or_else(|e| e.into_inner()).is_some());
        if !complete {
            return Err(first_error.unwrap_or_else(|| Error::Internal("a CRL was not signed".into())));
        }
        if !covering.is_empty() {
            self.write_out(&covering).await;
        }
        for (issuer, mut published, covered) in held {
            issuer.cover(&mut published, covered);
        }
        tracing::info!(crls = covering.len(), "CRLs signed and published");
        first_error.map_or(Ok(()), Err)
    }

    /// Whether a revocation is waiting for a CRL that lists it.
    fn behind(&self) -> bool {
        self.issuers.iter().any(IssuerCrl::behind)
    }

    /// Whether a CRL other than those in `covering` failed to sign its last CRL (its
    /// revocations wait for the retry).
    fn failing_besides(&self, covering: &[CrlKey]) -> bool {
        self.issuers
            .iter()
            .any(|i| !covering.contains(&i.key()) && i.failed.load(Ordering::Acquire))
    }

    /// Signs `issuer`'s next CRL, with what is pending, records it and makes it the
    /// current one; returns the sequence number of the newest revocation it lists (the
    /// caller marks it covered once the file is written). A CRL whose record cannot be
    /// written is not published at all.
    async fn sign(&self, issuer: &IssuerCrl, published: &mut Published) -> Result<u64, Error> {
        let covered = {
            let mut pending = issuer.pending.lock().unwrap_or_else(|e| e.into_inner());
            let encoded = Arc::make_mut(&mut published.encoded);
            for e in pending.drain(..) {
                if published.serials.insert(e.entry.serial.clone()) {
                    encoded.extend(encode_revoked_entry(&e.entry));
                    published.revoked.push(e);
                }
            }
            issuer.added.load(Ordering::Acquire)
        };
        let now = self.clock.now();
        let now = now.with_nanosecond(0).unwrap_or(now);
        // Entries may leave the CRL once their certificate has expired (RFC 5280 §3.3).
        if published.revoked.iter().any(|e| e.not_after < now) {
            let serials = &mut published.serials;
            published.revoked.retain(|e| {
                let keep = e.not_after >= now;
                if !keep {
                    serials.remove(&e.entry.serial);
                }
                keep
            });
            published.encoded = Arc::new(
                published
                    .revoked
                    .iter()
                    .flat_map(|e| encode_revoked_entry(&e.entry))
                    .collect(),
            );
        }
        let this_update = now - THIS_UPDATE_BACKDATE;
        let next_update = now + self.validity;
        let number = self.store.next_crl_number(issuer.id, this_update, next_update).await?;
        let ca = issuer.ca.clone();
        let encoded = published.encoded.clone();
        let entries = published.revoked.len();
        let url = issuer.url.clone();
        let scoped = issuer.scoped;
        let mut buffers = std::mem::take(&mut published.buffers);
        let mut buffers = crate::support::blocking(move || {
            let request = CrlRequest {
                number,
                this_update,
                next_update,
                url: &url,
                scoped,
            };
            ca.sign_crl_into(&request, &encoded, &mut buffers)?;
            ca.verify_crl_signature(&buffers.der)?;
            Ok::<_, fleetca_ca::CaError>(buffers)
        })
        .await??;
        // The record first: a caller told "revoked" must find the revocation there after any
        // restore of the database. Without it the CRL is neither served nor written.
        // Shared, not copied: the record and the DER answers read one buffer.
        let der = Bytes::from(std::mem::take(&mut buffers.der));
        let pem = Bytes::from(std::mem::take(&mut buffers.pem));
        published.buffers = buffers;
        if let Some(path) = &issuer.record {
            let (path, der) = (path.clone(), der.clone());
            match crate::support::blocking(move || crate::pki::published::write_record(&path, &der)).await? {
                Ok(retired) => free_later(retired),
                Err(e) => {
                    tracing::error!(error = %e, "the published CRL record was not written");
                    self.set_status(Err(e.clone()), number).await;
                    // The revocation is stored; its CRL follows when the retry records it.
                    return Err(Error::Internal(e));
                }
            }
        }
        let replaced = issuer
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .replace(PublishedCrl {
                der,
                pem,
                number,
                this_update,
                next_update,
                entries,
            });
        // The next CRL is built in the memory of the one it replaced, unless something still
        // holds it (an answer being sent): then it is freed when that is done.
        if let Some(old) = replaced {
            if let Ok(der) = old.der.try_into_mut() {
                published.buffers.der = der.into();
            }
            if let Ok(pem) = old.pem.try_into_mut() {
                published.buffers.pem = pem.into();
            }
        }
        tracing::debug!(ca = issuer.id, shard = ?issuer.shard, crl_number = number, entries, "CRL signed");
        Ok(covered)
    }

    /// Writes every current CRL to the file and runs the reload command.
    /// With `{ca}` in the file's path, each CRL goes to a file of its own (the path with
    /// `{ca}` replaced by the CA's id, and for a shard `-` and its number): what a broker that
    /// takes one CRL per file (RabbitMQ's hash directory) needs.
    async fn write_out(&self, covering: &[CrlKey]) {
        let _writing = self.output.lock().await;
        let per_ca = self
            .file
            .as_ref()
            .and_then(|f| f.to_str())
            .filter(|f| f.contains("{ca}"));
        // Each file's CRLs, as they are kept (no copy of several MiB per publication).
        let mut files: Vec<(PathBuf, Vec<Bytes>)> = Vec::new();
        // The CRLs given files of their own now, with the number each file receives.
        let mut own: Vec<(&IssuerCrl, u64)> = Vec::new();
        let mut number = 0;
        for issuer in &self.issuers {
            if let Some(crl) = issuer.current.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
                match (per_ca, files.last_mut()) {
                    // A file of its own is written when its CRL changed, or when its file
                    // does not hold its current CRL yet (a write that failed).
                    (Some(_), _)
                        if !covering.contains(&issuer.key())
                            && issuer.written.load(Ordering::Acquire) == crl.number => {}
                    (Some(pattern), _) => {
                        files.push((
                            PathBuf::from(pattern.replace("{ca}", &issuer.file_name())),
                            vec![crl.pem.clone()],
                        ));
                        own.push((issuer, crl.number));
                    }
                    (None, Some((_, all))) => all.push(crl.pem.clone()),
                    (None, None) => {
                        if let Some(path) = &self.file {
                            files.push((path.clone(), vec![crl.pem.clone()]));
                        }
                    }
                }
                if issuer.id == self.issuing {
                    number = number.max(crl.number);
                }
            }
        }
        let mut status = self.write_and_reload(files).await;
        if status.is_ok() {
            for (issuer, number) in own {
                issuer.written.store(number, Ordering::Release);
            }
        }
        if status.is_ok() && self.failing_besides(covering) {
            // A CA's revocations still wait for a CRL (its signature or record failed): not
            // healthy until they are published.
            status = Err("a CA's revocations are not on its CRL yet; retrying".into());
        }
        let ok = status.is_ok();
        self.set_status(status, number).await;
        tracing::debug!(published = ok, "CRL file written");
    }

    /// Records how a publication went, announcing the first failure of a run of them.
    async fn set_status(&self, status: Result<(), String>, number: u64) {
        let was_ok = std::mem::replace(
            &mut *self.status.write().unwrap_or_else(|e| e.into_inner()),
            PublishStatus {
                ok: status.is_ok(),
                at: Some(self.clock.now()),
                error: status.clone().err(),
            },
        )
        .ok;
        if let Err(error) = status
            && was_ok
        {
            self.announce_failure(number, &error).await;
        }
    }

    /// Announces `crl.publication_failed` (once per run of failures: the first after a success).
    async fn announce_failure(&self, number: u64, error: &str) {
        let event = fleetca_storage::webhooks::NewEvent {
            event_type: EventKind::CrlPublicationFailed.as_str().into(),
            enterprise: None,
            data: serde_json::json!({
                "crl_number": number,
                "error": error.chars().take(300).collect::<String>(),
                "file": self.file.as_ref().map(|f| f.display().to_string()),
            }),
        };
        if let Err(e) = self.store.enqueue_events(&[event], self.clock.now()).await {
            tracing::warn!(error = %e, "crl.publication_failed not announced");
        }
    }

    /// Writes the CRL files atomically (a new file that takes the old one's name; not synced,
    /// see [`crate::support::files::replace_unsynced`]: every start writes them again) and runs
    /// the reload command. The old files are freed later ([`free_later`]).
    async fn write_and_reload(&self, files: Vec<(PathBuf, Vec<Bytes>)>) -> Result<(), String> {
        if self.file.is_none() {
            return Ok(());
        }
        let access = self.access;
        let written = tokio::task::spawn_blocking(move || {
            files
                .iter()
                .map(|(path, parts)| {
                    let parts: Vec<&[u8]> = parts.iter().map(|p| p.as_ref()).collect();
                    crate::support::files::replace_unsynced(path, &parts, access.mode, access.group)
                        .map_err(|e| format!("writing the CRL file {} failed: {e}", path.display()))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
        .map(free_later);
        if let Err(e) = written {
            tracing::error!(error = %e, "CRL file not written");
            return Err(e);
        }
        if let Some(written) = &self.written {
            // A broker with fleetca's plugin (plugin_opt_reload_on_crl) reloads itself at its
            // next tick; not waited for: the plugin refuses a revoked certificate at login
            // whether or not the broker has reloaded.
            (written.0)();
        }
        let Some(cmd) = &self.reload_command else {
            return Ok(());
        };
        let run = crate::support::command("sh")
            .arg("-c")
            .arg(cmd)
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(StdDuration::from_secs(30), run).await {
            Ok(Ok(out)) if out.status.success() => Ok(()),
            Ok(Ok(out)) => {
                let e = format!(
                    "CRL reload command exited with {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                tracing::error!(error = %e, "CRL reload failed");
                Err(e)
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "CRL reload command could not start");
                Err(format!("CRL reload command could not start: {e}"))
            }
            Err(_) => {
                tracing::error!("CRL reload command timed out");
                Err("CRL reload command timed out after 30 s".into())
            }
        }
    }

    /// Re-signs the CRL every `period` until the process stops, so brokers never hold an
    /// expired one; while the last publication failed (say the broker was not up yet for
    /// the reload command), retries every [`RETRY`].
    pub fn spawn_refresh(self: &Arc<Self>, period: StdDuration) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut last = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(RETRY).await;
                let Some(p) = me.upgrade() else { break };
                if p.status().ok && last.elapsed() < period && !p.behind() {
                    continue;
                }
                last = tokio::time::Instant::now();
                if let Err(e) = p.publish_now().await {
                    tracing::error!(error = %e, "CRL refresh failed; retrying");
                }
            }
        });
    }
}

/// Frees the files a publication replaced [`FREE_AFTER`] later, on a blocking thread, not
/// awaited: by then the revocations the publication covers have been answered. Freeing the
/// brokers' CRL file of 6.6 MB (100,000 revocations) took 4–5 ms on a disk mounted with
/// `discard`, as long as the rest of the publication; done at once, its discard queued ahead
/// of the revocation's last commit and that commit's flush waited for it.
fn free_later(retired: impl Send + 'static) {
    tokio::spawn(async move {
        tokio::time::sleep(FREE_AFTER).await;
        drop(tokio::task::spawn_blocking(move || drop(retired)));
    });
}

/// How long after a publication the files it replaced are freed: longer than a revocation
/// takes from its CRL's publication to its answer (the change record's commit, about 1 ms).
/// Each old file keeps a name of its own meanwhile, so publications closer together than this
/// do not meet; one that stops the process first leaves names its next start removes.
const FREE_AFTER: StdDuration = StdDuration::from_millis(20);

/// How soon a failed CRL publication is retried.
const RETRY: StdDuration = StdDuration::from_secs(10);
