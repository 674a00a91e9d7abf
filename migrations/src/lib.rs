//! fleetca's schema, as sea-orm migrations. Run by the server at start-up; every backend
//! (SQLite, PostgreSQL) gets the same tables. The indexes differ where a backend's writes
//! pay for them differently (`m20261207_000005_audit_indexes`), and PostgreSQL alone has the
//! issuance batch's function.
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

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_initial;
mod m20261122_000002_devices;
mod m20261122_000003_sessions;
mod m20261122_000004_events;
mod m20261201_000001_products;
mod m20261201_000002_device_certificates;
mod m20261202_000001_renewal_and_claims;
mod m20261202_000002_audit_log;
mod m20261203_000001_webhooks;
mod m20261204_000001_disconnects;
mod m20261205_000001_partial_indexes;
mod m20261206_000001_restore_repairs;
mod m20261206_000002_hierarchy;
mod m20261206_000003_token_keys;
mod m20261206_000004_ca_revocation;
mod m20261207_000001_crl_shards;
mod m20261207_000002_issue_batch;
mod m20261207_000003_issue_batch_waits;
mod m20261207_000004_issue_batch_arrays;
mod m20261207_000005_audit_indexes;

/// Runs `sql` on PostgreSQL only (the issuance batch function: SQLite has no functions).
async fn on_postgres(m: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};
    if m.get_database_backend() == DbBackend::Postgres {
        m.get_connection().execute_unprepared(sql).await?;
    }
    Ok(())
}

/// All migrations, oldest first.
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_initial::Migration),
            Box::new(m20261122_000002_devices::Migration),
            Box::new(m20261122_000003_sessions::Migration),
            Box::new(m20261122_000004_events::Migration),
            Box::new(m20261201_000001_products::Migration),
            Box::new(m20261201_000002_device_certificates::Migration),
            Box::new(m20261202_000001_renewal_and_claims::Migration),
            Box::new(m20261202_000002_audit_log::Migration),
            Box::new(m20261203_000001_webhooks::Migration),
            Box::new(m20261204_000001_disconnects::Migration),
            Box::new(m20261205_000001_partial_indexes::Migration),
            Box::new(m20261206_000001_restore_repairs::Migration),
            Box::new(m20261206_000002_hierarchy::Migration),
            Box::new(m20261206_000003_token_keys::Migration),
            Box::new(m20261206_000004_ca_revocation::Migration),
            Box::new(m20261207_000001_crl_shards::Migration),
            Box::new(m20261207_000002_issue_batch::Migration),
            Box::new(m20261207_000003_issue_batch_waits::Migration),
            Box::new(m20261207_000004_issue_batch_arrays::Migration),
            Box::new(m20261207_000005_audit_indexes::Migration),
        ]
    }
}
