use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Certificates {
    Table,
    SupersedeAt,
    RenewedBy,
    RenewedVia,
}

#[derive(DeriveIden)]
enum Claims {
    Table,
    Id,
    Name,
    Enterprise,
    Tenant,
    CertificateId,
    MaxUses,
    Uses,
    ExpiresAt,
    RegisterUnknown,
    ValidityDays,
    CreatedBy,
    CreatedAt,
    RevokedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // A renewed certificate: revoked as superseded at `supersede_at` (the grace in which
        // a device that lost the answer may renew again), by the certificate `renewed_by`.
        m.alter_table(
            Table::alter()
                .table(Certificates::Table)
                .add_column(
                    ColumnDef::new(Certificates::SupersedeAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Certificates::Table)
                .add_column(ColumnDef::new(Certificates::RenewedBy).uuid().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Certificates::Table)
                .add_column(ColumnDef::new(Certificates::RenewedVia).string_len(16).null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_certificates_supersede_at")
                .table(Certificates::Table)
                .col(Certificates::SupersedeAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Claims::Table)
                .col(ColumnDef::new(Claims::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Claims::Name).string_len(200).not_null())
                .col(ColumnDef::new(Claims::Enterprise).string_len(64).not_null())
                .col(ColumnDef::new(Claims::Tenant).string_len(64).not_null())
                .col(ColumnDef::new(Claims::CertificateId).uuid().not_null().unique_key())
                .col(ColumnDef::new(Claims::MaxUses).big_integer().not_null())
                .col(ColumnDef::new(Claims::Uses).big_integer().not_null())
                .col(ColumnDef::new(Claims::ExpiresAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(Claims::RegisterUnknown).boolean().not_null())
                .col(ColumnDef::new(Claims::ValidityDays).big_integer().not_null())
                .col(ColumnDef::new(Claims::CreatedBy).string_len(64).not_null())
                .col(ColumnDef::new(Claims::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(Claims::RevokedAt).timestamp_with_time_zone().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_claims_enterprise")
                .table(Claims::Table)
                .col(Claims::Enterprise)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Claims::Table).to_owned()).await?;
        m.drop_index(Index::drop().name("idx_certificates_supersede_at").to_owned())
            .await?;
        for column in [
            Certificates::RenewedVia,
            Certificates::RenewedBy,
            Certificates::SupersedeAt,
        ] {
            m.alter_table(Table::alter().table(Certificates::Table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
