//! PostgreSQL: a batch of plain issuance in one round trip.
//!
//! The pool's path ([`super::write_batch`]) costs a round trip per statement — begin, lock the
//! keys, count, insert, lock and move the audit head, insert the records, read the webhook
//! endpoints, commit — about ten per batch. Here the batch is planned before anything is
//! read, as if its keys held no certificates, and sent as one call of
//! `fleetca_issue_batch` (migration `m20261207_000002_issue_batch`), a statement of its own
//! and so its own transaction: it locks the keys, checks the real counts against what the
//! batch adds, moves the audit head from the one this writer holds in memory by
//! compare-and-swap, and inserts everything, or writes nothing and says why. The answers go
//! out after that statement's commit, as on the pool's path.
//!
//! Batches that renew, enroll with a claim or issue for a device, whose plan needs what only
//! the database knows, and any batch the function turns down, take the pool's path.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::EntityTrait;
use sea_orm::sqlx::postgres::PgConnection;
use sea_orm::sqlx::{self, Connection};
use serde_json::{Value, json};
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
/// compare-and-swap names that head, so PostgreSQL makes it wait on the first's lock of the
/// head row and then either finds the head it expects (the first committed) or answers
/// `head` (the first wrote nothing, or another appender moved the head), and then this
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

/// How often a batch is sent again after another appender moved the head.
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
        // knows (its key would be locked by the insert, after the head: another order than
        // the pool path's).
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
    let limits = Value::Array(
        limits
            .iter()
            .map(|(id, (need, max))| json!({"id": id, "need": need, "max": max}))
            .collect(),
    );
    let certs = Value::Array(plan.rows.iter().map(certificate).collect());
    let audited = !plan.records.is_empty() && !crate::audit::disabled();
    for _ in 0..HEAD_RETRIES {
        let chaining = head.chaining.lock().await;
        let (seq, hash) = match head.take() {
            Some(h) => h,
            None if !audited => (0, String::new()),
            None => {
                let row = AuditHead::find_by_id(1)
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
        let events: Vec<Value> = plan
            .records
            .iter()
            .zip(seq + 1..)
            .filter(|_| audited)
            .filter_map(|(r, n)| crate::webhooks::events::event_of(r, n).map(|e| (n, e)))
            .map(|(n, e)| {
                json!({
                    "n": n,
                    "event_id": crate::webhooks::events::event_id(),
                    "event_type": e.event_type,
                    "enterprise": e.enterprise,
                    "payload": crate::webhooks::events::payload(&e, now),
                })
            })
            .collect();
        let audit = Value::Array(records.iter().map(audit_record).collect());
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
        let call = sqlx::query_scalar::<_, String>(
            "SELECT fleetca_issue_batch($1::jsonb, $2, $3::jsonb, $4::jsonb, $5, $6, $7, $8, $9::jsonb)",
        )
        .bind(limits.to_string())
        .bind(now)
        .bind(certs.to_string())
        .bind(audit.to_string())
        .bind(seq)
        .bind(hash.clone())
        .bind(audited.then_some(new_seq))
        .bind(audited.then(|| new_hash.clone()))
        .bind(Value::Array(events).to_string())
        .fetch_one(&mut *c);
        let call = tokio::time::timeout(CALL_LIMIT, call)
            .await
            .unwrap_or_else(|_| Err(sqlx::Error::Io(std::io::Error::other("no answer within 30 s"))));
        let outcome = match call {
            Ok(outcome) => outcome,
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

fn at(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A certificate as `jsonb_populate_recordset(NULL::certificates, …)` reads it.
fn certificate(c: &Certificate) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "kind": c.kind,
        "api_key_id": c.api_key_id,
        "enterprise": c.enterprise,
        "serial": c.serial,
        "fingerprint": c.fingerprint,
        "certificate_pem": c.certificate_pem,
        "not_before": at(&c.not_before),
        "not_after": at(&c.not_after),
        "created_at": at(&c.created_at),
        "revoked_at": c.revoked_at.as_ref().map(at),
        "revocation_reason": c.revocation_reason,
        "device": c.device,
        "supersede_at": c.supersede_at.as_ref().map(at),
        "renewed_by": c.renewed_by,
        "renewed_via": c.renewed_via,
        "expiry_warned": c.expiry_warned,
        "issuer_id": c.issuer_id,
        "crl_shard": c.crl_shard,
    })
}

/// An audit record as `jsonb_populate_recordset(NULL::audit_log, …)` reads it.
fn audit_record(r: &crate::entity::audit_log::Model) -> Value {
    json!({
        "seq": r.seq,
        "at": at(&r.at),
        "actor_id": r.actor_id,
        "actor": r.actor,
        "role": r.role,
        "action": r.action,
        "target_kind": r.target_kind,
        "target_id": r.target_id,
        "enterprise": r.enterprise,
        "request_id": r.request_id,
        "client_addr": r.client_addr,
        "outcome": r.outcome,
        "details": r.details,
        "prev_hash": r.prev_hash,
        "hash": r.hash,
    })
}

#[cfg(test)]
mod tests {
    use sea_orm::{Iden, Iterable};

    use super::*;

    fn keys(v: &Value) -> Vec<String> {
        let mut keys: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        keys.sort();
        keys
    }

    fn columns<C: Iterable + Iden>() -> Vec<String> {
        let mut names: Vec<String> = C::iter().map(|c| c.to_string()).collect();
        names.sort();
        names
    }

    /// Every column of the entities goes to the function, by the name it has: a column
    /// added to an entity and not here would be written as NULL (or its default).
    #[test]
    fn the_rows_sent_name_every_column_of_their_tables() {
        let now = crate::now();
        let cert = Certificate {
            id: Uuid::new_v4(),
            name: "n".into(),
            kind: "client".into(),
            api_key_id: None,
            enterprise: "e".into(),
            serial: "01".into(),
            fingerprint: "ff".into(),
            certificate_pem: String::new(),
            not_before: now,
            not_after: now,
            created_at: now,
            revoked_at: None,
            revocation_reason: None,
            device: None,
            supersede_at: None,
            renewed_by: None,
            renewed_via: None,
            expiry_warned: None,
            issuer_id: 1,
            crl_shard: Some(3),
        };
        assert_eq!(
            keys(&certificate(&cert)),
            columns::<crate::entity::certificates::Column>()
        );
        let (records, _, _) = crate::audit::chain_records(
            (0, ""),
            &[crate::audit::NewAudit {
                actor_id: None,
                actor: "a".into(),
                role: "admin".into(),
                action: "certificate.create".into(),
                target_kind: "certificate".into(),
                target_id: "t".into(),
                enterprise: None,
                request_id: None,
                client_addr: None,
                outcome: "success".into(),
                details: json!({}),
                event: None,
                ends_sessions: false,
            }],
            now,
        );
        let record = records.first().expect("one record");
        assert_eq!(
            keys(&audit_record(record)),
            columns::<crate::entity::audit_log::Column>()
        );
    }
}
