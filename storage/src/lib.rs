//! fleetca's persistence: sea-orm entities and the repositories the service calls.
//!
//! Handlers and services never import `sea_orm`; they call the functions here and get
//! plain models and a [`StorageError`] whose `NotFound`, `Conflict` and `Unavailable`
//! variants they can act on. Every write that must be all-or-nothing runs in one
//! transaction here. Backend differences (SQLite pragmas, row locks that only PostgreSQL
//! has) stay in this crate.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable
    )
)]

pub mod audit;
pub mod authority;
pub mod certificates;
pub mod claims;
pub mod devices;
pub mod disconnects;
pub mod entity;
mod error;
pub mod events;
mod group_commit;
pub mod issuance;
mod lease;
mod outbox;
pub mod products;
pub mod repairs;
pub mod revocations;
mod rows;
pub mod sessions;
pub mod stats;
pub mod users;
pub mod webhooks;

use std::time::Duration;

use fleetca_migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

#[cfg(test)]
mod testing;

pub use error::StorageError;

pub use audit::NewAudit;
pub use entity::audit_log::Model as AuditRecord;
pub use entity::certificates::Model as Certificate;
pub use entity::claims::Model as Claim;
pub use entity::devices::Model as Device;
pub use entity::product_devices::Model as ProductDevice;
pub use entity::products::Model as Product;
pub use entity::users::Model as User;

/// A page of a listing.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return at most.
    pub limit: u64,
}

/// Connection settings.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// `sqlite://path?mode=rwc` or `postgres://...`.
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
}

/// The database: a connection pool plus the backend it talks to.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    /// The SQLite database's file (none on PostgreSQL), which the issuance writer opens a
    /// connection of its own to (see [`crate::issuance`]).
    sqlite_file: Option<std::sync::Arc<std::path::PathBuf>>,
}

impl Store {
    /// Connects (creating a SQLite file if missing). Call [`Store::migrate`] before use.
    ///
    /// SQLite runs in WAL mode with `synchronous=FULL`, so a pooled connection's committed
    /// transaction is on disk when the commit returns (the issuance writer flushes its own
    /// commits apart: `issuance::sqlite`).
    pub async fn connect(options: &StoreOptions) -> Result<Self, StorageError> {
        let mut opts = ConnectOptions::new(options.url.clone());
        opts.max_connections(options.max_connections)
            .min_connections(1)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                o.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
                    // Read pages through a memory map: every commit by another pooled
                    // connection empties a connection's page cache, and reading those pages
                    // again with pread() was 15 % of issuance's CPU time (perf).
                    .pragma("mmap_size", "268435456")
                    // Batched writes have one statement text per batch size (a multi-row
                    // INSERT, an IN list); 100 cached statements were too few for them all,
                    // and parsing again was 7 % of issuance's CPU time.
                    .statement_cache_capacity(512)
            });
        if options.url.starts_with("sqlite:") {
            // A ping on every checkout was one more round trip to SQLite's worker thread per
            // transaction, and a local file's connection cannot have been dropped by a
            // server, proxy or firewall (PostgreSQL's keep their ping).
            opts.test_before_acquire(false);
        }
        let db = Database::connect(opts).await.map_err(StorageError::from)?;
        Ok(Self {
            db,
            sqlite_file: sqlite_file(&options.url).map(std::sync::Arc::new),
        })
    }

    /// Runs pending migrations (safe from several instances at once on PostgreSQL, whose
    /// DDL is transactional, and on SQLite, where they take the write lock).
    pub async fn migrate(&self) -> Result<(), StorageError> {
        Migrator::up(&self.db, None).await.map_err(StorageError::from)
    }

    /// How many migrations this build would apply to the database (without applying any).
    pub async fn pending_migrations(&self) -> Result<usize, StorageError> {
        Ok(Migrator::get_pending_migrations(&self.db)
            .await
            .map_err(StorageError::from)?
            .len())
    }

    /// A consistent copy of a SQLite database at `path`, taken while others write
    /// (`VACUUM INTO`: one read transaction, the copy compacted).
    pub async fn backup_sqlite(&self, path: &std::path::Path) -> Result<(), StorageError> {
        use sea_orm::ConnectionTrait;
        let target = path
            .to_str()
            .ok_or_else(|| StorageError::Internal("the backup path is not UTF-8".into()))?;
        self.db
            .execute_raw(sea_orm::Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "VACUUM INTO ?",
                [target.into()],
            ))
            .await?;
        Ok(())
    }

    /// Closes every connection (before the file is moved).
    pub async fn close(self) {
        let _ = self.db.close().await;
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        self.db.ping().await.is_ok()
    }

    /// Connections of the pool: (open, idle).
    pub fn pool_connections(&self) -> (u32, usize) {
        match self.db.get_database_backend() {
            DbBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => {
                let pool = self.db.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
        }
    }

    pub(crate) fn conn(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Begins a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so it takes the write
    /// lock at once instead of failing with SQLITE_BUSY when a read turns into a write.
    pub(crate) async fn write_txn(&self) -> Result<DatabaseTransaction, StorageError> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        Ok(self.db.begin_with_options(options).await?)
    }
}

/// The file of a `sqlite:` URL (none for another database, or one in memory).
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.trim_start_matches("//").split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// The file the issuance writer opens besides the pool: none for a URL whose path sqlx would
/// decode, or that asks for memory (the writer must open the very file the pool opened).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let plain = !url.contains('%') && !url.contains("mode=memory");
    sqlite_path(url).filter(|_| plain)
}

/// Creates an empty PostgreSQL database `name` on the server of `server_url` (for test
/// suites and the benchmark, which want a fresh database each).
pub async fn create_postgres_database(server_url: &str, name: &str) -> Result<(), StorageError> {
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StorageError::Internal("database names here are [A-Za-z0-9_]".into()));
    }
    let db = Database::connect(server_url).await?;
    db.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await?;
    db.close().await?;
    Ok(())
}

/// Now, truncated to microseconds: what both SQLite and PostgreSQL store, so a value read
/// back equals the value written.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    let t = chrono::Utc::now();
    let micros = t.timestamp_subsec_micros();
    chrono::DateTime::from_timestamp(t.timestamp(), micros * 1000).unwrap_or(t)
}

/// The backend of any connection or transaction.
pub(crate) fn is_postgres(c: &impl ConnectionTrait) -> bool {
    c.get_database_backend() == DbBackend::Postgres
}
