//! PostgreSQL: a batch of plain issuance in one round trip.
//!
//! The pool's path ([`super::write_batch`]) costs a round trip per statement — begin, lock the
//! keys, count, insert, lock and move the audit head, insert the records, read the webhook
//! endpoints, commit — about ten per batch. Here the batch is planned before anything is
//! read, as if its keys held no certificates, and sent as one call of
//! `fleetca_issue_batch` (migration `m20261207_000004_issue_batch_arrays`: its arguments typed
//! arrays, a column each), a statement of its own and so its own transaction: it locks the
//! keys, checks the real counts against what the batch adds, inserts the certificates, moves
//! the audit head from the one this writer holds in memory by compare-and-swap, and inserts
//! the audit records and webhook deliveries. Or it writes nothing: it answers `limit` or
//! `head` before inserting, or raises `FC001` after (every row undone). The answers go out
//! after that statement's commit, as on the pool's path.
//!
//! Batches that renew, enroll with a claim or issue for a device, whose plan needs what only
//! the database knows, and any batch the function turns down, take the pool's path.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use sea_orm::sqlx::postgres::PgConnection;
use sea_orm::sqlx::{self, Connection};
use sea_orm::{EntityTrait, QuerySelect};
use uuid::Uuid;

use super::{BatchFacts, IssueJob, Planner, Stored};
use crate::entity::audit_head::Entity as AuditHead;
use crate::{Certificate, StorageError, Store};

/// How many batches are sent at once: the next one is on its way (planned, chained, sent,
/// its keys locked and counted) while the one before commits.
pub(super) const IN_FLIGHT: usize = 2;

/// What the writer keeps between batches: the audit chain's head as the last batch sent
/// leaves it (`None`: read it again), and a connection per batch in flight, made on the
/// writer's thread (no checkout and no ping per batch; dropped on any error and made again
/// for the next batch).
///
/// The head is handed from one batch to the next when the first is *sent*, not when it has
/// committed: the second chains its records from the first's last hash and its
/// compare-and-swap names that head. The function inserts the second's certificates while
/// the first commits, then waits for the first to end (on an advisory lock the first holds)
/// and either finds the head it expects (the first committed) or raises `FC001` and writes
/// nothing (the first wrote nothing, another appender moved the head, or the first did not
/// end within 20 ms), and then this
/// writer reads the head again and chains again. The chain stays exactly what
/// `fleetca audit verify` checks, whatever fails.
#[derive(Default)]
pub(super) struct Writer {
    head: Mutex<Option<(i64, String)>>,
    /// Held from taking the head to handing it on, so two batches never chain from one head.
    chaining: tokio::sync::Mutex<()>,
    /// The connections and when a batch last used each.
    conns: [tokio::sync::Mutex<Option<(PgConnection, std::time::Instant)>>; IN_FLIGHT],
}

type Held<'a> = tokio::sync::MutexGuard<'a, Option<(PgConnection, std::time::Instant)>>;

/// A connection idle this long is pinged before a batch uses it (the server or a proxy may
/// have closed it meanwhile, a restarted server will have); a busy one is not.
const IDLE_PING: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a ping or a new connection may take (the pool's limits: a server that went away
/// without closing the connection must not hold every issuance for TCP's minutes).
const CONNECT_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long one batch's call may take before its connection is given up (the batch fails, and
/// whether it committed is what the database says).
const CALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    fn take(&self) -> Option<(i64, String)> {
        self.head.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Forgets the head (another path appended to the chain).
    pub(super) fn forget_head(&self) {
        self.set(None);
    }

    fn set(&self, head: Option<(i64, String)>) {
        *self.head.lock().unwrap_or_else(|e| e.into_inner()) = head;
    }

    /// A connection of the writer's that no batch is using (or the first, once free), held
    /// for one batch: pinged first when it has been idle, made again when it is gone or does
    /// not answer.
    async fn connection(&self, store: &Store) -> Result<Held<'_>, StorageError> {
        let free = self.conns.iter().find_map(|c| c.try_lock().ok());
        let mut conn = match free {
            Some(conn) => conn,
            None => self.conns[0].lock().await,
        };
        if let Some((c, used)) = conn.as_mut()
            && used.elapsed() > IDLE_PING
            && !matches!(tokio::time::timeout(CONNECT_LIMIT, c.ping()).await, Ok(Ok(())))
        {
            *conn = None;
        }
        if conn.is_none() {
            let options = store.conn().get_postgres_connection_pool().connect_options();
            let c = match tokio::time::timeout(CONNECT_LIMIT, PgConnection::connect_with(&options)).await {
                Ok(c) => c.map_err(storage_error)?,
                Err(_) => {
                    return Err(StorageError::Unavailable(
                        "no connection to PostgreSQL within 5 s".into(),
                    ));
                }
            };
            *conn = Some((c, std::time::Instant::now()));
        }
        Ok(conn)
    }
}

/// The SQLSTATEs after which a batch is sent again: `FC001`, which `fleetca_issue_batch`
/// raises when it cannot move the audit chain's head (undoing what it inserted before), and
/// a deadlock or lock timeout the server broke (a server-wide `deadlock_timeout` or
/// `lock_timeout` set low).
const RETRIED: [&str; 3] = ["FC001", "40P01", "55P03"];

/// How many times a batch is sent, in all, before it takes the pool's path: again after
/// another appender moved the head, the batch before it wrote nothing or did not end in time,
/// or the database broke a lock wait.
const HEAD_RETRIES: usize = 3;

/// Writes `jobs` in one round trip, or answers `None` when they need the pool's path.
pub(super) async fn write_batch(
    store: &Store,
    planner: &Planner,
    jobs: &[IssueJob],
    head: &Writer,
) -> Result<Option<Vec<Result<Stored, StorageError>>>, StorageError> {
    let plain = |j: &IssueJob| j.cert.device.is_none() && j.cert.renews.is_none() && j.cert.claim.is_none();
    if !jobs.iter().all(plain) {
        return Ok(None);
    }
    // What each limited key's jobs add, and the lowest limit they name.
    let mut limits: BTreeMap<Uuid, (u64, u64)> = BTreeMap::new();
    for job in jobs {
        // A job of a key and no limit, or of a limit and no key, is not one the function
        // knows (its key would be locked only by the insert's foreign key check, not with the
        // others in id order, as the pool path locks them).
        let (Some(max), Some(key)) = (job.max_active, job.cert.api_key_id) else {
            if job.max_active.is_some() || job.cert.api_key_id.is_some() {
                return Ok(None);
            }
            continue;
        };
        let entry = limits.entry(key).or_insert((0, max));
        entry.0 += 1;
        entry.1 = entry.1.min(max);
    }
    let now = jobs.iter().map(|j| j.now).min().unwrap_or_else(crate::now);
    let mut facts = BatchFacts::at(now);
    facts.key_active = limits.keys().map(|k| (*k, 0)).collect();
    let mut plan = planner(facts, jobs);
    let clean = plan.results.iter().all(Result::is_ok)
        && plan.supersessions.is_empty()
        && plan.discards.is_empty()
        && plan.claim_uses.is_empty()
        && !plan.records.iter().any(|r| r.ends_sessions);
    if !clean {
        return Ok(None);
    }
    let mut keys = KeyColumns::default();
    for (id, (need, max)) in &limits {
        keys.id.push(*id);
        keys.need.push(i64::try_from(*need).unwrap_or(i64::MAX));
        keys.max.push(i64::try_from(*max).unwrap_or(i64::MAX));
    }
    let mut certs = CertColumns::default();
    for row in &plan.rows {
        certs.push(row);
    }
    let audited = !plan.records.is_empty() && !crate::audit::disabled();
    for _ in 0..HEAD_RETRIES {
        let chaining = head.chaining.lock().await;
        let (seq, hash) = match head.take() {
            Some(h) => h,
            None if !audited => (0, String::new()),
            None => {
                // Shared-locked: a swap not yet committed (the batch before, still
                // committing) is waited for, not chained from again.
                let row = AuditHead::find_by_id(1)
                    .lock_shared()
                    .one(store.conn())
                    .await?
                    .ok_or_else(|| StorageError::Internal("the audit chain has no head".into()))?;
                (row.seq, row.hash)
            }
        };
        let (records, new_seq, new_hash) = if audited {
            crate::audit::chain_records((seq, &hash), &plan.records, now)
        } else {
            (Vec::new(), seq, hash.clone())
        };
        let mut events = EventColumns::default();
        let wanted = plan
            .records
            .iter()
            .zip(seq + 1..)
            .filter(|_| audited)
            .filter_map(|(r, n)| crate::webhooks::events::event_of(r, n).map(|e| (n, e)));
        for (n, e) in wanted {
            events.n.push(n);
            events.event_id.push(crate::webhooks::events::event_id());
            events.payload.push(crate::webhooks::events::payload(&e, now));
            events.event_type.push(e.event_type);
            events.enterprise.push(e.enterprise);
        }
        let mut audit = AuditColumns::default();
        for record in &records {
            audit.push(record);
        }
        // Handed on now: the next batch chains from this one's last record.
        head.set(audited.then(|| (new_seq, new_hash.clone())));
        drop(chaining);
        let mut conn = match head.connection(store).await {
            Ok(conn) => conn,
            Err(e) => {
                head.set(None);
                return Err(e);
            }
        };
        let Some((c, used)) = conn.as_mut() else {
            head.set(None);
            return Err(StorageError::Internal("the issuance writer has no connection".into()));
        };
        *used = std::time::Instant::now();
        let call = sqlx::query_scalar::<_, String>(CALL)
            .bind(&keys.id)
            .bind(&keys.need)
            .bind(&keys.max)
            .bind(now)
            .bind(&certs.id)
            .bind(&certs.name)
            .bind(&certs.kind)
            .bind(&certs.api_key_id)
            .bind(&certs.enterprise)
            .bind(&certs.serial)
            .bind(&certs.fingerprint)
            .bind(&certs.certificate_pem)
            .bind(&certs.not_before)
            .bind(&certs.not_after)
            .bind(&certs.created_at)
            .bind(&certs.revoked_at)
            .bind(&certs.revocation_reason)
            .bind(&certs.device)
            .bind(&certs.supersede_at)
            .bind(&certs.renewed_by)
            .bind(&certs.renewed_via)
            .bind(&certs.expiry_warned)
            .bind(&certs.issuer_id)
            .bind(&certs.crl_shard)
            .bind(&audit.seq)
            .bind(&audit.at)
            .bind(&audit.actor_id)
            .bind(&audit.actor)
            .bind(&audit.role)
            .bind(&audit.action)
            .bind(&audit.target_kind)
            .bind(&audit.target_id)
            .bind(&audit.enterprise)
            .bind(&audit.request_id)
            .bind(&audit.client_addr)
            .bind(&audit.outcome)
            .bind(&audit.details)
            .bind(&audit.prev_hash)
            .bind(&audit.hash)
            .bind(seq)
            .bind(hash.as_str())
            .bind(audited.then_some(new_seq))
            .bind(audited.then_some(new_hash.as_str()))
            .bind(&events.n)
            .bind(&events.event_id)
            .bind(&events.event_type)
            .bind(&events.enterprise)
            .bind(&events.payload)
            .fetch_one(&mut *c);
        let call = tokio::time::timeout(CALL_LIMIT, call)
            .await
            .unwrap_or_else(|_| Err(sqlx::Error::Io(std::io::Error::other("no answer within 30 s"))));
        let outcome = match call {
            Ok(outcome) => outcome,
            // The head moved, the batch before did not end in time, or the database broke a
            // lock wait: the statement was undone, and the connection is sound.
            Err(sqlx::Error::Database(d)) if RETRIED.contains(&d.code().as_deref().unwrap_or_default()) => {
                "head".to_owned()
            }
            Err(e) => {
                // A connection that failed once is not trusted again.
                *conn = None;
                head.set(None);
                return Err(storage_error(e));
            }
        };
        drop(conn);
        tracing::debug!(%outcome, jobs = jobs.len(), "issuance batch sent in one call");
        match outcome.as_str() {
            // The head was handed on when the batch was sent.
            "ok" => return Ok(Some(std::mem::take(&mut plan.results))),
            // Another appender moved the head (or the batch this one chained from wrote
            // nothing): read it and chain again.
            "head" => head.set(None),
            // A key would pass its limit: the pool's path decides each job from the counts
            // (and the head handed on was never written: read it again).
            _ => {
                head.set(None);
                return Ok(None);
            }
        }
    }
    Ok(None)
}

/// What a failed call means to the caller (as [`StorageError`]'s `From<DbErr>` says it for
/// the pool's connections).
fn storage_error(e: sqlx::Error) -> StorageError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StorageError::Conflict(d.message().to_owned()),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StorageError::Unavailable(e.to_string()),
        _ => StorageError::Internal(e.to_string()),
    }
}

/// The function's call: its arguments in the order `m20261207_000004_issue_batch_arrays`
/// declares them (the keys' limits, the time, the certificates' columns, the audit records'
/// columns, the head's swap, the events' columns).
const CALL: &str = "SELECT fleetca_issue_batch($1, $2, $3, $4, \
    $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, \
    $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38, $39, \
    $40, $41, $42, $43, \
    $44, $45, $46, $47, $48)";

/// The limited keys of a batch: what its jobs add to each and the lowest limit they name.
#[derive(Default)]
struct KeyColumns {
    id: Vec<Uuid>,
    need: Vec<i64>,
    max: Vec<i64>,
}

/// A batch's certificates, a vector per column of `certificates`, bound as PostgreSQL arrays.
#[derive(Default)]
struct CertColumns<'a> {
    id: Vec<Uuid>,
    name: Vec<&'a str>,
    kind: Vec<&'a str>,
    api_key_id: Vec<Option<Uuid>>,
    enterprise: Vec<&'a str>,
    serial: Vec<&'a str>,
    fingerprint: Vec<&'a str>,
    certificate_pem: Vec<&'a str>,
    not_before: Vec<DateTime<Utc>>,
    not_after: Vec<DateTime<Utc>>,
    created_at: Vec<DateTime<Utc>>,
    revoked_at: Vec<Option<DateTime<Utc>>>,
    revocation_reason: Vec<Option<&'a str>>,
    device: Vec<Option<&'a str>>,
    supersede_at: Vec<Option<DateTime<Utc>>>,
    renewed_by: Vec<Option<Uuid>>,
    renewed_via: Vec<Option<&'a str>>,
    expiry_warned: Vec<Option<i32>>,
    issuer_id: Vec<i32>,
    crl_shard: Vec<Option<i16>>,
}

impl<'a> CertColumns<'a> {
    fn push(&mut self, c: &'a Certificate) {
        // Every field by name and no `..`: a column added to the entity stops this from
        // compiling until it is sent too (and the function is given it by a migration).
        let Certificate {
            id,
            name,
            kind,
            api_key_id,
            enterprise,
            serial,
            fingerprint,
            certificate_pem,
            not_before,
            not_after,
            created_at,
            revoked_at,
            revocation_reason,
            device,
            supersede_at,
            renewed_by,
            renewed_via,
            expiry_warned,
            issuer_id,
            crl_shard,
        } = c;
        self.id.push(*id);
        self.name.push(name);
        self.kind.push(kind);
        self.api_key_id.push(*api_key_id);
        self.enterprise.push(enterprise);
        self.serial.push(serial);
        self.fingerprint.push(fingerprint);
        self.certificate_pem.push(certificate_pem);
        self.not_before.push(*not_before);
        self.not_after.push(*not_after);
        self.created_at.push(*created_at);
        self.revoked_at.push(*revoked_at);
        self.revocation_reason.push(revocation_reason.as_deref());
        self.device.push(device.as_deref());
        self.supersede_at.push(*supersede_at);
        self.renewed_by.push(*renewed_by);
        self.renewed_via.push(renewed_via.as_deref());
        self.expiry_warned.push(*expiry_warned);
        self.issuer_id.push(*issuer_id);
        self.crl_shard.push(*crl_shard);
    }
}

/// A batch's audit records, a vector per column of `audit_log`.
#[derive(Default)]
struct AuditColumns<'a> {
    seq: Vec<i64>,
    at: Vec<DateTime<Utc>>,
    actor_id: Vec<Option<Uuid>>,
    actor: Vec<&'a str>,
    role: Vec<&'a str>,
    action: Vec<&'a str>,
    target_kind: Vec<&'a str>,
    target_id: Vec<&'a str>,
    enterprise: Vec<Option<&'a str>>,
    request_id: Vec<Option<&'a str>>,
    client_addr: Vec<Option<&'a str>>,
    outcome: Vec<&'a str>,
    details: Vec<&'a str>,
    prev_hash: Vec<&'a str>,
    hash: Vec<&'a str>,
}

impl<'a> AuditColumns<'a> {
    fn push(&mut self, r: &'a crate::entity::audit_log::Model) {
        // Every field by name, as for the certificates.
        let crate::entity::audit_log::Model {
            seq,
            at,
            actor_id,
            actor,
            role,
            action,
            target_kind,
            target_id,
            enterprise,
            request_id,
            client_addr,
            outcome,
            details,
            prev_hash,
            hash,
        } = r;
        self.seq.push(*seq);
        self.at.push(*at);
        self.actor_id.push(*actor_id);
        self.actor.push(actor);
        self.role.push(role);
        self.action.push(action);
        self.target_kind.push(target_kind);
        self.target_id.push(target_id);
        self.enterprise.push(enterprise.as_deref());
        self.request_id.push(request_id.as_deref());
        self.client_addr.push(client_addr.as_deref());
        self.outcome.push(outcome);
        self.details.push(details);
        self.prev_hash.push(prev_hash);
        self.hash.push(hash);
    }
}

/// The webhook events a batch's records raise, each with its record's sequence number.
#[derive(Default)]
struct EventColumns {
    n: Vec<i64>,
    event_id: Vec<String>,
    event_type: Vec<String>,
    enterprise: Vec<Option<String>>,
    payload: Vec<String>,
}
