use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    At,
    Enterprise,
    Action,
}

/// On SQLite, the audit log keeps only its table: the indexes on `at`, `enterprise` and
/// `action` go.
///
/// Each of them cost every issuance batch a page of its own in the WAL (the entries of a batch
/// land together at the end of each index), and pages written are what SQLite's writer spends
/// its time on: with them, an audit record was about 1.2 WAL frames per certificate, without
/// them about two-thirds of one (docs/performance.md, round three, seventh pass). They served
/// four of the listing's seven filters (since, until, enterprise, action); the other three
/// (actor, target kind, target id) already scanned. A listing is newest first along `seq`,
/// which is the table's own key (SQLite's rowid), so a page of a filtered listing reads back
/// from the newest record until the page is full, and its total is counted by a scan.
///
/// PostgreSQL keeps them: its index entries are not what its issuance waits on. Both ways
/// tolerate an index an operator dropped or created by hand (the docs say how to create them
/// again). Dropping them takes a moment on a large log, and the file keeps its size until a
/// `VACUUM` (the pages are reused by later writes).
#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == DbBackend::Sqlite {
            for (name, _) in INDEXES {
                m.drop_index(Index::drop().name(name).if_exists().to_owned()).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == DbBackend::Sqlite {
            for (name, col) in INDEXES {
                m.create_index(
                    Index::create()
                        .name(name)
                        .table(AuditLog::Table)
                        .col(col)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// The indexes of `m20261202_000002_audit_log`, and their columns.
const INDEXES: [(&str, AuditLog); 3] = [
    ("idx_audit_at", AuditLog::At),
    ("idx_audit_enterprise", AuditLog::Enterprise),
    ("idx_audit_action", AuditLog::Action),
];
