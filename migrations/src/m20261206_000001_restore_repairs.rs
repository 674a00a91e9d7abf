use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Revocations a restored database did not know: fleetca had published them (its record of
/// the last CRL outside the database says so), but the certificate was issued after the
/// backup was taken. They stay on every CRL until the certificate can no longer be valid.
#[derive(DeriveIden)]
enum RestoredRevocations {
    Table,
    Serial,
    RevokedAt,
    Reason,
    NotAfter,
}

/// What fleetca repaired at start after a database older than its published CRL, kept until
/// an admin acknowledges it.
#[derive(DeriveIden)]
enum Repairs {
    Table,
    Id,
    At,
    Details,
    AcknowledgedAt,
    AcknowledgedBy,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(RestoredRevocations::Table)
                .col(
                    ColumnDef::new(RestoredRevocations::Serial)
                        .string_len(64)
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(RestoredRevocations::RevokedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new(RestoredRevocations::Reason).string_len(32).not_null())
                .col(
                    ColumnDef::new(RestoredRevocations::NotAfter)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Repairs::Table)
                .col(ColumnDef::new(Repairs::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Repairs::At).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(Repairs::Details).text().not_null())
                .col(
                    ColumnDef::new(Repairs::AcknowledgedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ColumnDef::new(Repairs::AcknowledgedBy).string_len(64).null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Repairs::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(RestoredRevocations::Table).to_owned())
            .await
    }
}
