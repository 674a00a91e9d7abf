use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Authority {
    Table,
    Id,
    CertificatePem,
    SealedKey,
    CreatedAt,
}

#[derive(DeriveIden)]
enum CrlState {
    Table,
    Id,
    Number,
    ThisUpdate,
    NextUpdate,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    IsServiceAccount,
    Enterprise,
    Role,
    IsActive,
    TokenLookup,
    TokenHash,
    PasswordHash,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Certificates {
    Table,
    Id,
    Name,
    Kind,
    ApiKeyId,
    Enterprise,
    Serial,
    Fingerprint,
    CertificatePem,
    NotBefore,
    NotAfter,
    CreatedAt,
    RevokedAt,
    RevocationReason,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Authority::Table)
                .col(ColumnDef::new(Authority::Id).integer().not_null().primary_key())
                .col(ColumnDef::new(Authority::CertificatePem).text().not_null())
                .col(ColumnDef::new(Authority::SealedKey).blob().not_null())
                .col(
                    ColumnDef::new(Authority::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(CrlState::Table)
                .col(ColumnDef::new(CrlState::Id).integer().not_null().primary_key())
                .col(ColumnDef::new(CrlState::Number).big_integer().not_null())
                .col(
                    ColumnDef::new(CrlState::ThisUpdate)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(CrlState::NextUpdate)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(ColumnDef::new(Users::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Users::Username).string_len(64).not_null().unique_key())
                .col(ColumnDef::new(Users::IsServiceAccount).boolean().not_null())
                .col(ColumnDef::new(Users::Enterprise).string_len(64).not_null())
                .col(ColumnDef::new(Users::Role).string_len(16).not_null())
                .col(ColumnDef::new(Users::IsActive).boolean().not_null())
                .col(
                    ColumnDef::new(Users::TokenLookup)
                        .string_len(32)
                        .not_null()
                        .unique_key(),
                )
                .col(ColumnDef::new(Users::TokenHash).text().not_null())
                .col(ColumnDef::new(Users::PasswordHash).text().null())
                .col(ColumnDef::new(Users::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(Users::UpdatedAt).timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_users_enterprise")
                .table(Users::Table)
                .col(Users::Enterprise)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Certificates::Table)
                .col(ColumnDef::new(Certificates::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Certificates::Name).string_len(200).not_null())
                .col(ColumnDef::new(Certificates::Kind).string_len(16).not_null())
                .col(ColumnDef::new(Certificates::ApiKeyId).uuid().null())
                .col(ColumnDef::new(Certificates::Enterprise).string_len(64).not_null())
                .col(
                    ColumnDef::new(Certificates::Serial)
                        .string_len(64)
                        .not_null()
                        .unique_key(),
                )
                .col(
                    ColumnDef::new(Certificates::Fingerprint)
                        .string_len(64)
                        .not_null()
                        .unique_key(),
                )
                .col(ColumnDef::new(Certificates::CertificatePem).text().not_null())
                .col(
                    ColumnDef::new(Certificates::NotBefore)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Certificates::NotAfter)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Certificates::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Certificates::RevokedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ColumnDef::new(Certificates::RevocationReason).string_len(32).null())
                .foreign_key(
                    ForeignKey::create()
                        .from(Certificates::Table, Certificates::ApiKeyId)
                        .to(Users::Table, Users::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_certificates_api_key")
                .table(Certificates::Table)
                .col(Certificates::ApiKeyId)
                .col(Certificates::RevokedAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_certificates_revoked")
                .table(Certificates::Table)
                .col(Certificates::RevokedAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            Certificates::Table.into_iden(),
            Users::Table.into_iden(),
            CrlState::Table.into_iden(),
            Authority::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
