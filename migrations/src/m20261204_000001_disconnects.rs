use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Disconnects {
    Table,
    Id,
    Action,
    TargetKind,
    TargetId,
    Enterprise,
    Status,
    Attempts,
    DoneBrokers,
    NextAttemptAt,
    LeaseUntil,
    LastError,
    CreatedAt,
    DoneAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Live sessions to end at the brokers: one row per change that invalidates a
        // credential, written in the change's transaction; the workers of every instance
        // lease due rows and record which brokers confirmed.
        m.create_table(
            Table::create()
                .table(Disconnects::Table)
                .col(
                    ColumnDef::new(Disconnects::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new(Disconnects::Action).string_len(64).not_null())
                .col(ColumnDef::new(Disconnects::TargetKind).string_len(32).not_null())
                .col(ColumnDef::new(Disconnects::TargetId).string_len(200).not_null())
                .col(ColumnDef::new(Disconnects::Enterprise).string_len(64).null())
                .col(ColumnDef::new(Disconnects::Status).string_len(16).not_null())
                .col(ColumnDef::new(Disconnects::Attempts).integer().not_null())
                .col(ColumnDef::new(Disconnects::DoneBrokers).string_len(1024).not_null())
                .col(
                    ColumnDef::new(Disconnects::NextAttemptAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Disconnects::LeaseUntil)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ColumnDef::new(Disconnects::LastError).string_len(500).null())
                .col(
                    ColumnDef::new(Disconnects::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new(Disconnects::DoneAt).timestamp_with_time_zone().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_disconnects_due")
                .table(Disconnects::Table)
                .col(Disconnects::Status)
                .col(Disconnects::NextAttemptAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Disconnects::Table).to_owned()).await
    }
}
