//! Storing issued certificates: the group-commit writer of the hot write path.
//!
//! [`IssueQueue`] writes by group commit ([`crate::group_commit`]): the certificates that
//! arrive while a commit is running go into the next transaction together, and an answer
//! still means the row is durable. Each batch is three steps in one transaction:
//!
//! 1. [`read_facts`]: what the rules need — the API keys' and devices' counted certificates,
//!    whether the devices are enabled, the certificates being renewed and their renewals, the
//!    claims being used — with those rows locked on PostgreSQL (in key order: no deadlocks),
//!    so the rules hold under concurrency and across instances. SQLite's write lock already
//!    serialises the transactions.
//! 2. The caller's [`Planner`] decides every job from those facts alone (fleetca's rules are
//!    in `pki::issuance`, a pure function), and says what to write.
//! 3. [`write_plan`]: the multi-row insert, the audit records, the renewals' marks, the
//!    revocations of superseded certificates and the claims' uses.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::audit::NewAudit;
use crate::certificates::{NewCertificate, SUPERSEDED};
use crate::entity::certificates::{ActiveModel, Column, Entity as Certificates};
use crate::group_commit::GroupCommit;
use crate::{Certificate, Claim, StorageError, Store, is_postgres};

mod postgres;
mod sqlite;

/// One certificate to store, with what its rules need.
#[derive(Clone, Debug)]
pub struct IssueJob {
    pub cert: NewCertificate,
    /// Appended when the certificate is stored; the plan fills in its target and details.
    pub audit: Option<NewAudit>,
    /// At most this many counted certificates for its API key and its device, counting
    /// this one (`None`: no limit, and the device need not be enabled).
    pub max_active: Option<u64>,
    pub now: DateTime<Utc>,
}

/// A certificate just stored, and what its renewal revoked now: the earlier renewal it
/// replaces, and the certificate the renewed one had renewed, if still in its grace.
#[derive(Clone, Debug)]
pub struct Stored {
    pub certificate: Certificate,
    pub discarded: Vec<Certificate>,
}

/// What a batch's rules read, in the batch's transaction.
#[derive(Clone, Debug)]
pub struct BatchFacts {
    /// The instant the counts were taken at (the batch's earliest job's).
    pub now: DateTime<Utc>,
    /// Counted certificates (not revoked, not expired, not in a renewal's grace) per API key
    /// of a limited job.
    pub key_active: HashMap<Uuid, u64>,
    /// The same per device (`{tenant}/{device_id}`) of a limited job.
    pub device_active: HashMap<String, u64>,
    /// Whether each device of a limited job is enabled; absent: it does not exist.
    pub device_enabled: HashMap<String, bool>,
    /// The certificates being renewed, and the renewals they already have.
    pub renewed: HashMap<Uuid, Certificate>,
    /// Per certificate being renewed: the unrevoked certificates that it renewed (their
    /// grace may still run).
    pub predecessors: HashMap<Uuid, Vec<Certificate>>,
    /// The claims the jobs enroll with.
    pub claims: HashMap<Uuid, Claim>,
}

impl BatchFacts {
    /// Nothing read yet, at `now`.
    pub fn at(now: DateTime<Utc>) -> Self {
        Self {
            now,
            key_active: HashMap::new(),
            device_active: HashMap::new(),
            device_enabled: HashMap::new(),
            renewed: HashMap::new(),
            predecessors: HashMap::new(),
            claims: HashMap::new(),
        }
    }
}

/// A renewal's mark on the certificate it renews: superseded at `at`, renewed by `by`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Supersession {
    pub old: Uuid,
    pub at: DateTime<Utc>,
    pub by: Uuid,
    /// `est` or `api`.
    pub via: &'static str,
}

/// What a batch writes, as its plan decided: all of it in one transaction, or nothing.
#[derive(Debug, Default)]
pub struct BatchPlan {
    /// Each job's answer, in order.
    pub results: Vec<Result<Stored, StorageError>>,
    /// The rows to insert (the accepted jobs' certificates).
    pub rows: Vec<Certificate>,
    pub records: Vec<NewAudit>,
    pub supersessions: Vec<Supersession>,
    /// Certificates revoked as superseded now.
    pub discards: Vec<Uuid>,
    /// Uses taken per claim.
    pub claim_uses: HashMap<Uuid, i64>,
}

/// Decides a batch from its facts (see `pki::issuance`).
pub type Planner = Arc<dyn Fn(BatchFacts, &[IssueJob]) -> BatchPlan + Send + Sync>;

/// The handle to the group-commit writer; cheap to clone.
#[derive(Clone, Debug)]
pub struct IssueQueue {
    writer: Writer,
}

#[derive(Clone, Debug)]
enum Writer {
    /// PostgreSQL (and a SQLite database in memory): a task, each batch through the pool.
    Pool(GroupCommit<IssueJob, Stored>),
    /// A SQLite file: each batch one synchronous unit on a thread of its own.
    Sqlite(sqlite::Writer),
}

/// Most certificates one transaction takes.
pub(crate) const MAX_BATCH: usize = 256;

impl Store {
    /// Starts the group-commit writer for issuance, whose batches `planner` decides: on a
    /// SQLite file, on a thread with a connection of its own ([`sqlite`]).
    /// Call it within the runtime.
    pub fn issue_queue(&self, planner: Planner) -> IssueQueue {
        if let Some(file) = &self.sqlite_file {
            match sqlite::Writer::start(self.clone(), file, planner.clone()) {
                Ok(writer) => {
                    return IssueQueue {
                        writer: Writer::Sqlite(writer),
                    };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the SQLite issuance writer did not start; issuing through the pool")
                }
            }
        }
        // On PostgreSQL plain batches go in one round trip ([`postgres`]); the audit head
        // they chain from is kept between batches.
        let head = Arc::new(postgres::Writer::default());
        let one_trip = is_postgres(self.conn());
        let write = move |store: Store, jobs: Vec<IssueJob>| {
            let (planner, head) = (planner.clone(), head.clone());
            async move {
                if one_trip {
                    if let Some(results) = postgres::write_batch(&store, &planner, &jobs, &head).await? {
                        return Ok(results);
                    }
                    // The pool's path moves the head without telling this writer.
                    head.forget_head();
                }
                write_batch(&store, &planner, &jobs).await
            }
        };
        if one_trip {
            match GroupCommit::start_on_thread(self.clone(), "issue", MAX_BATCH, postgres::IN_FLIGHT, write.clone()) {
                Ok(writer) => {
                    return IssueQueue {
                        writer: Writer::Pool(writer),
                    };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the issuance writer's thread did not start; issuing on the runtime")
                }
            }
        }
        IssueQueue {
            writer: Writer::Pool(GroupCommit::start(self.clone(), "certificate", MAX_BATCH, write)),
        }
    }
}

impl IssueQueue {
    /// Stores a certificate durably, or answers why its rules refused it.
    pub async fn insert(&self, job: IssueJob) -> Result<Stored, StorageError> {
        match &self.writer {
            Writer::Pool(writer) => writer.submit(job).await,
            Writer::Sqlite(writer) => writer.submit(job).await,
        }
    }
}

/// One batch through the pool: facts, plan and rows in one transaction.
pub(crate) async fn write_batch(
    store: &Store,
    planner: &Planner,
    jobs: &[IssueJob],
) -> Result<Vec<Result<Stored, StorageError>>, StorageError> {
    let txn = store.write_txn().await?;
    let now = jobs.iter().map(|j| j.now).min().unwrap_or_else(crate::now);
    let facts = read_facts(&txn, jobs, now).await?;
    let mut plan = planner(facts, jobs);
    let results = std::mem::take(&mut plan.results);
    write_plan(&txn, plan, now).await?;
    txn.commit().await?;
    Ok(results)
}

/// Sorted and without repeats.
fn unique<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

/// Reads what the batch's rules need, locking the rows they depend on (PostgreSQL).
pub async fn read_facts(
    txn: &DatabaseTransaction,
    jobs: &[IssueJob],
    now: DateTime<Utc>,
) -> Result<BatchFacts, StorageError> {
    let mut facts = BatchFacts::at(now);
    // Written again in SQL by `fleetca_issue_batch` (migrations m20261207_000002, m20261207_000004:
    // both overloads): change them all.
    let counted = || {
        Condition::all()
            .add(Column::RevokedAt.is_null())
            .add(Column::NotAfter.gt(now))
            .add(Column::SupersedeAt.is_null())
    };
    let limited = || jobs.iter().filter(|j| j.max_active.is_some());
    let keys = unique(limited().filter_map(|j| j.cert.api_key_id).collect());
    if !keys.is_empty() {
        use crate::entity::users::{Column as UserCol, Entity as Users};
        if is_postgres(txn) {
            // Serialize issuance per API key across instances.
            Users::find()
                .filter(UserCol::Id.is_in(keys.clone()))
                .order_by_asc(UserCol::Id)
                .lock_exclusive()
                .all(txn)
                .await?;
        }
        let counts: Vec<(Option<Uuid>, i64)> = Certificates::find()
            .select_only()
            .column(Column::ApiKeyId)
            .column_as(Column::Id.count(), "n")
            .filter(Column::ApiKeyId.is_in(keys))
            .filter(counted())
            .group_by(Column::ApiKeyId)
            .into_tuple()
            .all(txn)
            .await?;
        facts.key_active = counts.into_iter().filter_map(|(k, n)| Some((k?, n as u64))).collect();
    }
    let devices = unique(limited().filter_map(|j| j.cert.device.clone()).collect());
    if !devices.is_empty() {
        // The devices must exist and be enabled when their certificate commits: their rows
        // are read (and locked, in order) here, so a concurrent disable or delete either
        // comes first and refuses this, or waits and then revokes what this wrote.
        use crate::entity::devices::{Column as DeviceCol, Entity as Devices};
        let cond = devices
            .iter()
            .filter_map(|d| d.split_once('/'))
            .fold(Condition::any(), |cond, (tenant, id)| {
                cond.add(DeviceCol::Tenant.eq(tenant).and(DeviceCol::DeviceId.eq(id)))
            });
        let mut query = Devices::find()
            .filter(cond)
            .order_by_asc(DeviceCol::Tenant)
            .order_by_asc(DeviceCol::DeviceId);
        if is_postgres(txn) {
            query = query.lock_exclusive();
        }
        for row in query.all(txn).await? {
            facts
                .device_enabled
                .insert(format!("{}/{}", row.tenant, row.device_id), row.is_active);
        }
        let counts: Vec<(Option<String>, i64)> = Certificates::find()
            .select_only()
            .column(Column::Device)
            .column_as(Column::Id.count(), "n")
            .filter(Column::Device.is_in(devices))
            .filter(counted())
            .group_by(Column::Device)
            .into_tuple()
            .all(txn)
            .await?;
        facts.device_active = counts.into_iter().filter_map(|(d, n)| Some((d?, n as u64))).collect();
    }
    let old_ids = unique(jobs.iter().filter_map(|j| j.cert.renews.map(|r| r.old)).collect());
    if !old_ids.is_empty() {
        // Two renewals of one certificate on two instances: the second waits for the
        // first's commit and then sees its renewal.
        let olds = crate::certificates::certificates_for_update(txn, &old_ids).await?;
        let rows = Certificates::find()
            .filter(Column::RenewedBy.is_in(old_ids))
            .filter(Column::RevokedAt.is_null())
            .all(txn)
            .await?;
        for row in rows {
            if let Some(by) = row.renewed_by {
                facts.predecessors.entry(by).or_default().push(row);
            }
        }
        let earlier: Vec<Uuid> = olds.iter().filter_map(|c| c.renewed_by).collect();
        facts.renewed.extend(olds.into_iter().map(|c| (c.id, c)));
        if !earlier.is_empty() {
            let rows = Certificates::find().filter(Column::Id.is_in(earlier)).all(txn).await?;
            facts.renewed.extend(rows.into_iter().map(|c| (c.id, c)));
        }
    }
    let claim_ids = unique(jobs.iter().filter_map(|j| j.cert.claim).collect());
    if !claim_ids.is_empty() {
        use crate::entity::claims::{Column as ClaimCol, Entity as Claims};
        let mut query = Claims::find()
            .filter(ClaimCol::Id.is_in(claim_ids))
            .order_by_asc(ClaimCol::Id);
        if is_postgres(txn) {
            query = query.lock_exclusive();
        }
        facts.claims = query.all(txn).await?.into_iter().map(|c| (c.id, c)).collect();
    }
    Ok(facts)
}

/// Writes what the plan decided.
pub async fn write_plan(txn: &DatabaseTransaction, plan: BatchPlan, now: DateTime<Utc>) -> Result<(), StorageError> {
    let rows: Vec<ActiveModel> = plan.rows.into_iter().map(ActiveModel::from).collect();
    crate::rows::insert_chunked(txn, rows, 500).await?;
    crate::outbox::append(txn, &plan.records, now).await?;
    for s in plan.supersessions {
        Certificates::update_many()
            .col_expr(Column::SupersedeAt, Expr::value(s.at))
            .col_expr(Column::RenewedBy, Expr::value(s.by))
            .col_expr(Column::RenewedVia, Expr::value(s.via))
            .filter(Column::Id.eq(s.old))
            .exec(txn)
            .await?;
    }
    if !plan.discards.is_empty() {
        Certificates::update_many()
            .col_expr(Column::RevokedAt, Expr::value(now))
            .col_expr(Column::RevocationReason, Expr::value(SUPERSEDED))
            .filter(Column::Id.is_in(plan.discards))
            .filter(Column::RevokedAt.is_null())
            .exec(txn)
            .await?;
    }
    for (claim, uses) in plan.claim_uses {
        use crate::entity::claims::{Column as ClaimCol, Entity as Claims};
        Claims::update_many()
            .col_expr(ClaimCol::Uses, Expr::col(ClaimCol::Uses).add(uses))
            .filter(ClaimCol::Id.eq(claim))
            .exec(txn)
            .await?;
    }
    Ok(())
}
