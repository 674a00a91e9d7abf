use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Seq,
    At,
    ActorId,
    Actor,
    Role,
    Action,
    TargetKind,
    TargetId,
    Enterprise,
    RequestId,
    ClientAddr,
    Outcome,
    Details,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum AuditHead {
    Table,
    Id,
    Seq,
    Hash,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Append-only, hash-chained: each record holds the SHA-256 of the previous record's
        // hash and its own content. `audit_head` is the chain's one-row head, locked by every
        // append so that several instances extend one chain instead of forking it.
        m.create_table(
            Table::create()
                .table(AuditLog::Table)
                .col(ColumnDef::new(AuditLog::Seq).big_integer().not_null().primary_key())
                .col(ColumnDef::new(AuditLog::At).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(AuditLog::ActorId).uuid().null())
                .col(ColumnDef::new(AuditLog::Actor).string_len(64).not_null())
                .col(ColumnDef::new(AuditLog::Role).string_len(16).not_null())
                .col(ColumnDef::new(AuditLog::Action).string_len(64).not_null())
                .col(ColumnDef::new(AuditLog::TargetKind).string_len(32).not_null())
                .col(ColumnDef::new(AuditLog::TargetId).string_len(200).not_null())
                .col(ColumnDef::new(AuditLog::Enterprise).string_len(64).null())
                .col(ColumnDef::new(AuditLog::RequestId).string_len(64).null())
                .col(ColumnDef::new(AuditLog::ClientAddr).string_len(64).null())
                .col(ColumnDef::new(AuditLog::Outcome).string_len(16).not_null())
                .col(ColumnDef::new(AuditLog::Details).text().not_null())
                .col(ColumnDef::new(AuditLog::PrevHash).string_len(64).not_null())
                .col(ColumnDef::new(AuditLog::Hash).string_len(64).not_null())
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("idx_audit_at", AuditLog::At),
            ("idx_audit_enterprise", AuditLog::Enterprise),
            ("idx_audit_action", AuditLog::Action),
        ] {
            m.create_index(Index::create().name(name).table(AuditLog::Table).col(col).to_owned())
                .await?;
        }
        m.create_table(
            Table::create()
                .table(AuditHead::Table)
                .col(ColumnDef::new(AuditHead::Id).integer().not_null().primary_key())
                .col(ColumnDef::new(AuditHead::Seq).big_integer().not_null())
                .col(ColumnDef::new(AuditHead::Hash).string_len(64).not_null())
                .to_owned(),
        )
        .await?;
        m.exec_stmt(
            Query::insert()
                .into_table(AuditHead::Table)
                .columns([AuditHead::Id, AuditHead::Seq, AuditHead::Hash])
                .values_panic([1.into(), 0i64.into(), "0".repeat(64).into()])
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AuditHead::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(AuditLog::Table).to_owned()).await
    }
}
