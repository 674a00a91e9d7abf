//! The audit log: who did what to which credential, appended in the same transaction as the
//! change it records (no change without its record, no record of a change that rolled back).
//!
//! Records form a hash chain: `hash = SHA-256(prev_hash ‖ "\n" ‖ content)`, where `content` is
//! the record's canonical JSON (sequence number, time in microseconds, actor, action, target,
//! enterprise, request, client, outcome, details). Appends lock the one-row head
//! (`audit_head`; on SQLite the write transaction is exclusive anyway), so several instances
//! extend one chain. [`Store::verify_audit`] walks it and names the first record that was
//! altered, removed or inserted.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use uuid::Uuid;

use crate::entity::audit_head::{ActiveModel as HeadModel, Entity as AuditHead};
use crate::entity::audit_log::{ActiveModel, Column, Entity as AuditLog, Model as AuditRecord};
use crate::{Page, StorageError, Store, is_postgres};

/// A record to append. `details` must hold no secret.
#[derive(Clone, Debug)]
pub struct NewAudit {
    pub actor_id: Option<Uuid>,
    /// Username, or `system`, or what an unauthenticated caller claimed to be.
    pub actor: String,
    /// `admin`, `manager`, `service`, `system` or `anonymous`.
    pub role: String,
    /// `certificate.revoke`, `device.create`, …
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub enterprise: Option<String>,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    pub details: serde_json::Value,
    /// The webhook event this change announces (`certificate.revoked`, …), if any: stored for
    /// delivery in the same transaction (see `webhooks`).
    pub event: Option<String>,
    /// Whether this change ends live sessions at the brokers (a credential stopped being
    /// valid): queued in the same transaction (see `disconnects`).
    pub ends_sessions: bool,
}

/// Filters of an audit listing.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub enterprise: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// The genesis hash the first record chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Serialize)]
struct Content<'a> {
    seq: i64,
    at: i64,
    actor_id: Option<Uuid>,
    actor: &'a str,
    role: &'a str,
    action: &'a str,
    target_kind: &'a str,
    target_id: &'a str,
    enterprise: Option<&'a str>,
    request_id: Option<&'a str>,
    client_addr: Option<&'a str>,
    outcome: &'a str,
    details: &'a str,
}

fn chain_hash(prev: &str, r: &AuditRecord) -> String {
    let content = Content {
        seq: r.seq,
        at: r.at.timestamp_micros(),
        actor_id: r.actor_id,
        actor: &r.actor,
        role: &r.role,
        action: &r.action,
        target_kind: &r.target_kind,
        target_id: &r.target_id,
        enterprise: r.enterprise.as_deref(),
        request_id: r.request_id.as_deref(),
        client_addr: r.client_addr.as_deref(),
        outcome: &r.outcome,
        details: &r.details,
    };
    let json = serde_json::to_string(&content).unwrap_or_default();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(prev.as_bytes());
    ctx.update(b"\n");
    ctx.update(json.as_bytes());
    hex::encode(ctx.finish())
}

static DISABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns audit records (and the webhook events they announce) off for the rest of the
/// process: only for the benchmark's baseline, which measures what the audit log costs.
pub fn disable_for_benchmark() {
    DISABLED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the benchmark's baseline turned the audit log off.
pub(crate) fn disabled() -> bool {
    DISABLED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Appends `entries` to the chain in the caller's transaction; returns the sequence number
/// of the first (see [`crate::outbox::append`], which stores what they announce with them).
pub(crate) async fn append_records<C: ConnectionTrait>(
    txn: &C,
    entries: &[NewAudit],
    now: DateTime<Utc>,
) -> Result<i64, StorageError> {
    // Microseconds: what both databases keep, so the hash checks after a round trip.
    let at = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
    let mut query = AuditHead::find_by_id(1);
    if is_postgres(txn) {
        query = query.lock_exclusive();
    }
    let head = query
        .one(txn)
        .await?
        .ok_or_else(|| StorageError::Internal("the audit chain has no head".into()))?;
    let (records, seq, prev) = chain_records((head.seq, &head.hash), entries, at);
    let first = head.seq + 1;
    let rows: Vec<ActiveModel> = records.into_iter().map(ActiveModel::from).collect();
    for chunk in rows.chunks(200) {
        AuditLog::insert_many(chunk.to_vec()).exec(txn).await?;
    }
    let mut head: HeadModel = head.into();
    head.seq = Set(seq);
    head.hash = Set(prev);
    head.update(txn).await?;
    Ok(first)
}

/// The records `entries` become after the head `(seq, hash)`, at `at` (microseconds), each
/// chained to the one before; and the new head.
pub(crate) fn chain_records(
    (head_seq, head_hash): (i64, &str),
    entries: &[NewAudit],
    at: DateTime<Utc>,
) -> (Vec<AuditRecord>, i64, String) {
    let at = DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at);
    let (mut seq, mut prev) = (head_seq, head_hash.to_owned());
    let mut records = Vec::with_capacity(entries.len());
    for e in entries {
        seq += 1;
        let mut record = AuditRecord {
            seq,
            at,
            actor_id: e.actor_id,
            actor: e.actor.clone(),
            role: e.role.clone(),
            action: e.action.clone(),
            target_kind: e.target_kind.clone(),
            target_id: e.target_id.clone(),
            enterprise: e.enterprise.clone(),
            request_id: e.request_id.clone(),
            client_addr: e.client_addr.clone(),
            outcome: e.outcome.clone(),
            details: e.details.to_string(),
            prev_hash: prev.clone(),
            hash: String::new(),
        };
        record.hash = chain_hash(&prev, &record);
        prev.clone_from(&record.hash);
        records.push(record);
    }
    (records, seq, prev)
}

/// The records with `target_id` set (for a row whose id the insert makes).
pub(crate) fn with_target_id(records: &[NewAudit], id: &str) -> Vec<NewAudit> {
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if r.target_id.is_empty() {
                r.target_id = id.to_owned();
            }
            r
        })
        .collect()
}

/// Where the chain breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBreak {
    /// The first record that does not check out (or the sequence number missing there).
    pub seq: i64,
    pub why: String,
}

impl Store {
    /// One page of records, newest first, and the total that match.
    pub async fn list_audit(&self, filter: &AuditFilter, page: Page) -> Result<(Vec<AuditRecord>, u64), StorageError> {
        let query = AuditLog::find().filter(condition(filter));
        self.page_of(query, |q| q.order_by_desc(Column::Seq), page).await
    }

    /// Up to `limit` records after `after` (by sequence), oldest first: for exports of any
    /// size, a page at a time.
    pub async fn audit_after(
        &self,
        filter: &AuditFilter,
        after: i64,
        limit: u64,
    ) -> Result<Vec<AuditRecord>, StorageError> {
        Ok(AuditLog::find()
            .filter(condition(filter))
            .filter(Column::Seq.gt(after))
            .order_by_asc(Column::Seq)
            .limit(limit)
            .all(self.conn())
            .await?)
    }

    /// Walks the whole chain. `Ok(n)`: n records, all intact. `Err`: the first break.
    pub async fn verify_audit(&self) -> Result<Result<i64, ChainBreak>, StorageError> {
        // The chain is 1, 2, 3, …: a row numbered below 1 was put there by hand, outside it.
        let outside = AuditLog::find()
            .filter(Column::Seq.lt(1))
            .order_by_asc(Column::Seq)
            .all(self.conn())
            .await?;
        if let Some(first) = outside.first() {
            return Ok(Err(ChainBreak {
                seq: first.seq,
                why: format!(
                    "{} record(s) numbered below 1 stand outside the chain (inserted by hand), the first {}",
                    outside.len(),
                    first.seq
                ),
            }));
        }
        let mut expected_seq = 1i64;
        let mut prev = GENESIS.to_owned();
        loop {
            let rows = AuditLog::find()
                .filter(Column::Seq.gte(expected_seq))
                .order_by_asc(Column::Seq)
                .limit(1000)
                .all(self.conn())
                .await?;
            if rows.is_empty() {
                break;
            }
            for r in rows {
                let broken = |why: &str| {
                    Ok(Err(ChainBreak {
                        seq: expected_seq,
                        why: why.to_owned(),
                    }))
                };
                if r.seq != expected_seq {
                    return broken(&format!("record {expected_seq} is missing (the next is {})", r.seq));
                }
                if r.prev_hash != prev {
                    return broken(
                        "its prev_hash is not the previous record's hash (a record before it was removed, inserted or rewritten)",
                    );
                }
                if chain_hash(&prev, &r) != r.hash {
                    return broken("its content does not match its hash (the record was altered)");
                }
                prev = r.hash;
                expected_seq += 1;
            }
        }
        let head = AuditHead::find_by_id(1).one(self.conn()).await?;
        let last = expected_seq - 1;
        match head {
            Some(h) if h.seq == last && h.hash == prev => Ok(Ok(last)),
            Some(h) if h.seq == last => Ok(Err(ChainBreak {
                seq: last,
                why: format!(
                    "the head's hash is not record {last}'s (the head, or the last record and its hash, were rewritten)"
                ),
            })),
            Some(h) if h.seq > last => Ok(Err(ChainBreak {
                seq: expected_seq,
                why: format!(
                    "the chain ends at record {last} but its head says {} (records at the end were removed)",
                    h.seq
                ),
            })),
            Some(h) => Ok(Err(ChainBreak {
                seq: h.seq + 1,
                why: format!(
                    "the chain goes on to record {last} but its head says {} (records were added past the head)",
                    h.seq
                ),
            })),
            None => Ok(Err(ChainBreak {
                seq: 0,
                why: "the audit head is missing".into(),
            })),
        }
    }
}

fn condition(f: &AuditFilter) -> Condition {
    // Only records of the chain: a row numbered below 1 was inserted outside it.
    let mut cond = Condition::all().add(Column::Seq.gte(1));
    if let Some(v) = &f.actor {
        cond = cond.add(Column::Actor.eq(v.as_str()));
    }
    if let Some(v) = &f.action {
        cond = cond.add(Column::Action.eq(v.as_str()));
    }
    if let Some(v) = &f.target_kind {
        cond = cond.add(Column::TargetKind.eq(v.as_str()));
    }
    if let Some(v) = &f.target_id {
        cond = cond.add(Column::TargetId.eq(v.as_str()));
    }
    if let Some(v) = &f.enterprise {
        cond = cond.add(Column::Enterprise.eq(v.as_str()));
    }
    if let Some(v) = f.since {
        cond = cond.add(Column::At.gte(v));
    }
    if let Some(v) = f.until {
        cond = cond.add(Column::At.lt(v));
    }
    cond
}
