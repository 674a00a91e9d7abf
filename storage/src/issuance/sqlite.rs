//! SQLite's issuance writer: each batch of certificates as one synchronous unit on a thread
//! that owns a connection of its own.
//!
//! Through the async driver every statement is a round trip to the connection's worker
//! thread, 250–300 µs each, and a batch of ~16 certificates took a dozen of them (5.3–5.9 ms
//! for tens of µs of work, the CPU idle meanwhile). Here the batch — the per-key and
//! per-device counts, the certificates' inserts, the audit append and the outbox rows — runs on
//! the thread in one `BEGIN IMMEDIATE … COMMIT`, and each caller is answered once the commit is
//! on disk (below). The same SQLite library serves both
//! connections (rusqlite over the `libsqlite3-sys` sqlx links), and SQLite's write lock
//! orders this connection's transactions with the pool's.
//!
//! The audit chain's head is kept here between batches and moved with a compare-and-swap on
//! the head row: when another appender moved it (this process's other writers, `fleetca
//! admin`), the swap fails and the head is read again, so the chain stays exactly what
//! `fleetca audit verify` checks. The active webhook endpoints are read in the batch's
//! transaction when it announces events: on this connection that is microseconds, not a round
//! trip, and always what is committed.
//!
//! The disk's flush is taken off the writer's path. With SQLite's own fsync at each commit
//! (`synchronous=FULL`) a batch took 2.0 ms on the writer, 1.4 ms of them waiting for the
//! fsync, and the next batch could not start meanwhile. The writer's connection commits with
//! `synchronous=NORMAL` (the frames are in the WAL, in the OS's cache) and goes on to the next
//! batch; a second thread makes the commits durable with one `fdatasync` of the WAL for all
//! made since its last, and only then answers their callers. The WAL is written in order, so
//! one flush covers every earlier commit; SQLite itself syncs the WAL's header when it starts
//! the file again and the WAL before each checkpoint. So a `kill -9` loses nothing committed
//! (the pages are the OS's) and a power loss nothing answered. What other connections read
//! may be ahead of the disk by one flush (~1.5 ms); any later commit of theirs
//! (`synchronous=FULL`) flushes those frames too, so nothing written after it can outlive it.
//!
//! Checkpoints are taken off the writer's path too. SQLite's own, run by the connection whose
//! commit takes the WAL past 1,000 pages, were a fifth of the writer's CPU and two fsyncs
//! (perf). A third thread copies the WAL into the database file with a passive checkpoint,
//! which never blocks the writer, at most every [`CHECKPOINT_EVERY`] while batches come; the
//! writer's own checkpoint stays only as a backstop at [`WRITER_CHECKPOINT_PAGES`], where
//! little is left to copy and the WAL starts again from its beginning. The pool's
//! connections keep SQLite's 1,000 pages: a commit of theirs (a revocation, a renewal's
//! batch) past it checkpoints what the thread has not copied yet, as before, and lets the
//! WAL start again sooner.
//!
//! Batches that renew certificates or enroll with a claim (which read and mark whole rows)
//! take the async path ([`crate::issuance::write_batch`]) from this thread, in order.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params_from_iter};
use sea_orm::{ActiveModelTrait, EntityName, EntityTrait, IdenStatic, Iterable, Value};
use uuid::Uuid;

use crate::audit::NewAudit;
use crate::issuance::{BatchFacts, IssueJob, MAX_BATCH, Planner, Stored};
use crate::{StorageError, Store};

type Reply = tokio::sync::oneshot::Sender<Result<Stored, StorageError>>;

/// The handle of the writer thread (cheap to clone).
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    tx: mpsc::Sender<(IssueJob, Reply)>,
}

impl Writer {
    /// Opens the connection and starts the thread; must be called within the runtime (the
    /// thread runs the async path of the batches it does not take itself on it).
    pub(crate) fn start(store: Store, file: &Path, planner: Planner) -> Result<Self, StorageError> {
        let conn = open(file)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| StorageError::Internal(format!("the issuance writer needs the runtime: {e}")))?;
        let (tx, rx) = mpsc::channel();
        let (committed, to_flush) = mpsc::channel();
        let mut wal = file.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let failed = Arc::new(AtomicBool::new(false));
        let flush_failed = failed.clone();
        let checkpointer = open(file)?;
        let (nudge, nudged) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("fleetca-checkpoint".into())
            .spawn(move || checkpoint(&checkpointer, &nudged))
            .map_err(|e| StorageError::Internal(format!("the issuance writer did not start: {e}")))?;

        std::thread::Builder::new()
            .name("fleetca-flush".into())
            .spawn(move || flush(&wal, &to_flush, &nudge, &flush_failed))
            .map_err(|e| StorageError::Internal(format!("the issuance writer did not start: {e}")))?;
        std::thread::Builder::new()
            .name("fleetca-issue".into())
            .spawn(move || run(conn, &rx, &committed, &failed, &store, &planner, &runtime))
            .map_err(|e| StorageError::Internal(format!("the issuance writer did not start: {e}")))?;
        Ok(Self { tx })
    }

    /// Queues `job` and waits for its transaction to commit.
    pub(crate) async fn submit(&self, job: IssueJob) -> Result<Stored, StorageError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx.send((job, reply)).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The writer's connection: the pool's settings (WAL, the busy wait) but for the commit's
/// flush, which [`flush`] does. A statement's undo journal, should one need it, stays in
/// memory: the multi-row insert the batches had before [`insert`]'s single rows outgrew the
/// in-memory part and spilled into a temporary file, created, written and deleted per batch
/// (a quarter of the writer's kernel time, perf).
fn open(file: &Path) -> Result<Connection, StorageError> {
    let conn = Connection::open(file).map_err(sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(sql)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA mmap_size = 268435456; PRAGMA temp_store = MEMORY;",
    )
    .map_err(sql)?;
    conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
        .map_err(sql)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// The WAL's size in pages at which the writer's own commit checkpoints (SQLite's default is
/// 1,000): a backstop, and what starts the WAL again from its beginning once [`checkpoint`]
/// has copied nearly all of it. 40 MiB of WAL.
const WRITER_CHECKPOINT_PAGES: i64 = 10_000;

/// The least time between two of [`checkpoint`]'s passes: each pass syncs the WAL and the
/// database file, so fewer, larger passes (a page written many times is copied once).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// Copies the WAL's committed pages into the database file while batches come: a passive
/// checkpoint (it syncs the WAL first, so the database file never holds what the WAL does not
/// on disk), which neither waits for nor blocks the writer and the readers. Returns when the
/// writer has stopped.
fn checkpoint(conn: &Connection, nudged: &mpsc::Receiver<()>) {
    while nudged.recv().is_ok() {
        std::thread::sleep(CHECKPOINT_EVERY);
        let _ = nudged.try_recv();
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            // The writer's own checkpoint takes over; the next pass tries again.
            tracing::warn!(error = %e, "a checkpoint of the issuance writer's WAL failed");
        }
    }
}

/// A committed batch's answers, held until the commit is on disk.
struct Committed {
    replies: Vec<Reply>,
    results: Vec<Result<Stored, StorageError>>,
}

/// Flushes the WAL once for every commit made since the last flush, then answers them and
/// nudges [`checkpoint`]. The file is opened at the first commit: it exists from then on,
/// since SQLite removes it only when its last connection closes and the writer's stays open.
/// Returns at the first failed flush, having set `failed`.
fn flush(wal: &Path, committed: &mpsc::Receiver<Committed>, nudge: &mpsc::SyncSender<()>, failed: &AtomicBool) {
    let mut file: Option<File> = None;
    while let Ok(first) = committed.recv() {
        let ready: Vec<Committed> = std::iter::once(first).chain(committed.try_iter()).collect();
        let flushed = match &file {
            Some(f) => f.sync_data(),
            None => File::open(wal).and_then(|f| {
                let synced = f.sync_data();
                file = Some(f);
                synced
            }),
        };
        if let Err(e) = &flushed {
            failed.store(true, Ordering::Release);
            tracing::error!(error = %e, wal = %wal.display(), "the disk did not confirm issued certificates; issuance is stopped until fleetca is restarted (check the disk first)");
        }
        for Committed { replies, results } in ready {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(if flushed.is_ok() { result } else { Err(unconfirmed()) });
            }
        }
        if flushed.is_ok() {
            let _ = nudge.try_send(());
        }
        if flushed.is_err() {
            // What the writer committed before it heard: written, never confirmed.
            for Committed { replies, .. } in committed.iter() {
                for reply in replies {
                    let _ = reply.send(Err(unconfirmed()));
                }
            }
            return;
        }
    }
}

/// The answer when the writer thread is gone (it stopped after a failed flush, or panicked).
fn gone() -> StorageError {
    StorageError::Unavailable("the certificate writer stopped; restart fleetca".into())
}

/// The answer to a certificate committed but not known to be on disk.
fn unconfirmed() -> StorageError {
    StorageError::Unavailable(
        "the certificate was written but the disk did not confirm it, so it may be lost; the operator must check the server's disk and restart fleetca".into(),
    )
}

/// Why a writer that stopped refuses.
const STOPPED: &str = "certificate issuance stopped after the disk failed to confirm a write; the operator must check the disk and restart fleetca";

fn run(
    mut conn: Connection,
    rx: &mpsc::Receiver<(IssueJob, Reply)>,
    committed: &mpsc::Sender<Committed>,
    failed: &AtomicBool,
    store: &Store,
    planner: &Planner,
    runtime: &tokio::runtime::Handle,
) {
    // The audit chain's head as this writer last left it (none: read it).
    let mut head: Option<(i64, String)> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (jobs, replies): (Vec<IssueJob>, Vec<Reply>) = batch.into_iter().unzip();
        if failed.load(Ordering::Acquire) {
            for reply in replies {
                let _ = reply.send(Err(StorageError::Unavailable(STOPPED.into())));
            }
            return; // what is queued is dropped: its callers are told the writer stopped
        }
        let simple = jobs.iter().all(|j| j.cert.renews.is_none() && j.cert.claim.is_none());
        let written = if simple {
            write_batch(&mut conn, planner, &jobs, &mut head)
        } else {
            head = None; // the async path moves it
            runtime.block_on(crate::issuance::write_batch(store, planner, &jobs))
        };
        match written {
            // Answered once the flush has its commit on disk.
            Ok(results) if simple => {
                if let Err(mpsc::SendError(lost)) = committed.send(Committed { replies, results }) {
                    for reply in lost.replies {
                        let _ = reply.send(Err(unconfirmed()));
                    }
                    return;
                }
            }
            // A pooled connection's commit flushes itself (`synchronous=FULL`), but after a
            // failed flush a flush can succeed over the hole the failed one left.
            Ok(results) => {
                let confirmed = !failed.load(Ordering::Acquire);
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(if confirmed { result } else { Err(unconfirmed()) });
                }
            }
            Err(e) => {
                head = None;
                tracing::warn!(error = %e, rows = jobs.len(), "certificate batch failed");
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// One batch: the facts, the plan, its rows, in one transaction.
fn write_batch(
    conn: &mut Connection,
    planner: &Planner,
    jobs: &[IssueJob],
    head: &mut Option<(i64, String)>,
) -> Result<Vec<Result<Stored, StorageError>>, StorageError> {
    let now = jobs.iter().map(|j| j.now).min().unwrap_or_else(crate::now);
    let txn = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    let facts = read_facts(&txn, jobs, now)?;
    let mut plan = planner(facts, jobs);
    if !(plan.supersessions.is_empty() && plan.discards.is_empty() && plan.claim_uses.is_empty()) {
        return Err(StorageError::Internal(
            "a batch without renewals or claims planned one".into(),
        ));
    }
    let results = std::mem::take(&mut plan.results);
    let rows: Vec<crate::entity::certificates::ActiveModel> = plan.rows.into_iter().map(Into::into).collect();
    insert(&txn, &rows)?;
    if !plan.records.is_empty() && !crate::audit::disabled() {
        let first = append_audit(&txn, &plan.records, now, head)?;
        // The endpoints first, and the events (their payloads built) only when one is active.
        let endpoints = if plan.records.iter().any(|r| r.event.is_some()) {
            active_endpoints(&txn)?
        } else {
            Vec::new()
        };
        let events: Vec<_> = plan
            .records
            .iter()
            .zip(first..)
            .filter(|_| !endpoints.is_empty())
            .filter_map(|(e, seq)| crate::webhooks::events::event_of(e, seq))
            .collect();
        let mut deliveries = Vec::new();
        for event in &events {
            let wanted: Vec<&Endpoint> = endpoints
                .iter()
                .filter(|h| crate::webhooks::events::wanted(&h.events, h.enterprise.as_deref(), event))
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let id = crate::webhooks::events::event_id();
            let body = crate::webhooks::events::payload(event, now);
            deliveries.extend(
                wanted
                    .into_iter()
                    .map(|h| crate::webhooks::events::delivery(h.id, &id, event, &body, now)),
            );
        }
        insert(&txn, &deliveries)?;
        insert(&txn, &crate::disconnects::rows(&plan.records, now))?;
    }
    txn.commit().map_err(sql)?;
    Ok(results)
}

/// An active webhook endpoint, as far as storing its deliveries goes.
struct Endpoint {
    id: Uuid,
    events: String,
    enterprise: Option<String>,
}

fn active_endpoints(txn: &rusqlite::Transaction<'_>) -> Result<Vec<Endpoint>, StorageError> {
    let mut statement = txn
        .prepare_cached("SELECT id, events, enterprise FROM webhooks WHERE is_active = 1")
        .map_err(sql)?;
    let mut rows = statement.query([]).map_err(sql)?;
    let mut endpoints = Vec::new();
    while let Some(row) = rows.next().map_err(sql)? {
        endpoints.push(Endpoint {
            id: read_uuid(row.get_ref(0).map_err(sql)?)?,
            events: row.get(1).map_err(sql)?,
            enterprise: row.get(2).map_err(sql)?,
        });
    }
    Ok(endpoints)
}

/// The counts the rules need (SQLite's write lock, taken by `BEGIN IMMEDIATE`, keeps them
/// true until the commit).
fn read_facts(
    txn: &rusqlite::Transaction<'_>,
    jobs: &[IssueJob],
    now: DateTime<Utc>,
) -> Result<BatchFacts, StorageError> {
    let mut facts = BatchFacts::at(now);
    let counted = "revoked_at IS NULL AND not_after > ? AND supersede_at IS NULL";
    let limited = || jobs.iter().filter(|j| j.max_active.is_some());
    let mut keys: Vec<Uuid> = limited().filter_map(|j| j.cert.api_key_id).collect();
    keys.sort_unstable();
    keys.dedup();
    if !keys.is_empty() {
        let sql_text = format!(
            "SELECT api_key_id, COUNT(id) FROM certificates WHERE api_key_id IN ({}) AND {counted} GROUP BY api_key_id",
            placeholders(keys.len())
        );
        let params = keys.iter().map(|k| uuid_value(*k)).chain([time_value(now)]);
        let mut statement = txn.prepare_cached(&sql_text).map_err(sql)?;
        let mut rows = statement.query(params_from_iter(params)).map_err(sql)?;
        while let Some(row) = rows.next().map_err(sql)? {
            let key = read_uuid(row.get_ref(0).map_err(sql)?)?;
            let n: i64 = row.get(1).map_err(sql)?;
            facts.key_active.insert(key, u64::try_from(n).unwrap_or(0));
        }
    }
    let mut devices: Vec<&str> = limited().filter_map(|j| j.cert.device.as_deref()).collect();
    devices.sort_unstable();
    devices.dedup();
    if !devices.is_empty() {
        let pairs: Vec<(&str, &str)> = devices.iter().filter_map(|d| d.split_once('/')).collect();
        if pairs.is_empty() {
            return Ok(facts); // no device names a tenant: none exists, none counts
        }
        let sql_text = format!(
            "SELECT tenant, device_id, is_active FROM devices WHERE {}",
            vec!["(tenant = ? AND device_id = ?)"; pairs.len()].join(" OR ")
        );
        let params = pairs
            .iter()
            .flat_map(|(t, d)| [SqlValue::Text((*t).to_owned()), SqlValue::Text((*d).to_owned())]);
        let mut statement = txn.prepare_cached(&sql_text).map_err(sql)?;
        let mut rows = statement.query(params_from_iter(params)).map_err(sql)?;
        while let Some(row) = rows.next().map_err(sql)? {
            let (tenant, id, active): (String, String, bool) = (
                row.get(0).map_err(sql)?,
                row.get(1).map_err(sql)?,
                row.get(2).map_err(sql)?,
            );
            facts.device_enabled.insert(format!("{tenant}/{id}"), active);
        }
        let sql_text = format!(
            "SELECT device, COUNT(id) FROM certificates WHERE device IN ({}) AND {counted} GROUP BY device",
            placeholders(devices.len())
        );
        let params = devices
            .iter()
            .map(|d| SqlValue::Text((*d).to_owned()))
            .chain([time_value(now)]);
        let mut statement = txn.prepare_cached(&sql_text).map_err(sql)?;
        let mut rows = statement.query(params_from_iter(params)).map_err(sql)?;
        while let Some(row) = rows.next().map_err(sql)? {
            let (device, n): (String, i64) = (row.get(0).map_err(sql)?, row.get(1).map_err(sql)?);
            facts.device_active.insert(device, u64::try_from(n).unwrap_or(0));
        }
    }
    Ok(facts)
}

/// Appends `entries` to the audit chain after the head this writer keeps, moving the head
/// row with a compare-and-swap; when another appender moved it, reads it and chains again.
/// Returns the first record's sequence number.
fn append_audit(
    txn: &rusqlite::Transaction<'_>,
    entries: &[NewAudit],
    now: DateTime<Utc>,
    head: &mut Option<(i64, String)>,
) -> Result<i64, StorageError> {
    const SWAP: &str = "UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1 AND seq = ?3 AND hash = ?4";
    let (seq, hash) = match head.take() {
        Some(kept) => kept,
        None => read_head(txn)?,
    };
    let (mut records, mut last, mut last_hash) = crate::audit::chain_records((seq, &hash), entries, now);
    let mut first = seq + 1;
    let swapped = txn
        .prepare_cached(SWAP)
        .and_then(|mut s| s.execute(rusqlite::params![last, last_hash, seq, hash]))
        .map_err(sql)?;
    if swapped == 0 {
        // Another appender moved the head since this writer's last batch.
        let (seq, hash) = read_head(txn)?;
        (records, last, last_hash) = crate::audit::chain_records((seq, &hash), entries, now);
        first = seq + 1;
        let swapped = txn
            .prepare_cached(SWAP)
            .and_then(|mut s| s.execute(rusqlite::params![last, last_hash, seq, hash]))
            .map_err(sql)?;
        if swapped != 1 {
            return Err(StorageError::Internal(
                "the audit chain's head moved during a write transaction".into(),
            ));
        }
    }
    let rows: Vec<crate::entity::audit_log::ActiveModel> = records.into_iter().map(Into::into).collect();
    insert(txn, &rows)?;
    *head = Some((last, last_hash));
    Ok(first)
}

fn read_head(txn: &rusqlite::Transaction<'_>) -> Result<(i64, String), StorageError> {
    txn.prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(sql)?
        .ok_or_else(|| StorageError::Internal("the audit chain has no head".into()))
}

/// Inserts sea-orm rows: the columns the first row sets, each value bound as the async
/// driver binds it (so both connections read what the other wrote).
fn insert<A: ActiveModelTrait>(txn: &rusqlite::Transaction<'_>, rows: &[A]) -> Result<(), StorageError> {
    type Column<A> = <<A as ActiveModelTrait>::Entity as EntityTrait>::Column;
    let Some(first) = rows.first() else { return Ok(()) };
    let columns: Vec<Column<A>> = Column::<A>::iter().filter(|c| !first.is_not_set(*c)).collect();
    let names = columns
        .iter()
        .map(|c| format!("\"{}\"", c.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let table = A::Entity::default().table_name().to_owned();
    // One row per statement, the statement prepared once: a statement that writes several
    // rows keeps an undo journal of its own (to take back just itself should a later row
    // fail), which one that writes a single row does not need; and one text serves every
    // batch size.
    let sql_text = format!(
        "INSERT INTO \"{table}\" ({names}) VALUES ({})",
        placeholders(columns.len())
    );
    let mut statement = txn.prepare_cached(&sql_text).map_err(sql)?;
    let mut values = Vec::with_capacity(columns.len());
    for r in rows {
        // Asked, not read: `get` would copy every value of both rows to answer it.
        if Column::<A>::iter().any(|c| r.is_not_set(c) != first.is_not_set(c)) {
            return Err(StorageError::Internal(format!(
                "rows for {table} set different columns; insert them apart"
            )));
        }
        values.clear();
        for c in &columns {
            values.push(bind(r.get(*c).into_value())?);
        }
        statement.execute(params_from_iter(values.drain(..))).map_err(sql)?;
    }
    Ok(())
}

/// A value as sqlx binds it for SQLite: UUIDs as 16-byte blobs, times as RFC 3339 text.
fn bind(value: Option<Value>) -> Result<SqlValue, StorageError> {
    let integer = |v: Option<i64>| v.map_or(SqlValue::Null, SqlValue::Integer);
    Ok(match value {
        None => SqlValue::Null,
        Some(Value::Bool(v)) => integer(v.map(i64::from)),
        Some(Value::TinyInt(v)) => integer(v.map(i64::from)),
        Some(Value::SmallInt(v)) => integer(v.map(i64::from)),
        Some(Value::Int(v)) => integer(v.map(i64::from)),
        Some(Value::BigInt(v)) => integer(v),
        Some(Value::String(v)) => v.map_or(SqlValue::Null, SqlValue::Text),
        Some(Value::Bytes(v)) => v.map_or(SqlValue::Null, SqlValue::Blob),
        Some(Value::Json(v)) => v.map_or(SqlValue::Null, |j| SqlValue::Text(j.to_string())),
        Some(Value::ChronoDateTimeUtc(v)) => v.map_or(SqlValue::Null, time_value),
        Some(Value::Uuid(v)) => v.map_or(SqlValue::Null, uuid_value),
        Some(other) => {
            return Err(StorageError::Internal(format!(
                "the SQLite writer cannot bind {other:?}"
            )));
        }
    })
}

fn time_value(t: DateTime<Utc>) -> SqlValue {
    SqlValue::Text(t.to_rfc3339_opts(SecondsFormat::AutoSi, false))
}

fn uuid_value(u: Uuid) -> SqlValue {
    SqlValue::Blob(u.as_bytes().to_vec())
}

/// A UUID as sqlx reads it: a 16-byte blob, or its text.
fn read_uuid(value: rusqlite::types::ValueRef<'_>) -> Result<Uuid, StorageError> {
    let parsed = match value {
        rusqlite::types::ValueRef::Blob(b) => Uuid::from_slice(b).ok(),
        rusqlite::types::ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(|t| Uuid::parse_str(t).ok()),
        _ => None,
    };
    parsed.ok_or_else(|| StorageError::Internal("a stored UUID does not read".into()))
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

fn sql(e: rusqlite::Error) -> StorageError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StorageError::Unavailable(format!("the database is busy: {e}"))
        }
        other => StorageError::Internal(format!("SQLite: {other}")),
    }
}
