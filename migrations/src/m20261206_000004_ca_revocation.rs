use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// An intermediate revoked by its root: when, and why (RFC 5280's reason name). Its root's
/// CRL lists it from then on. And one key per token label: two CAs never name the same key
/// of the same token.
#[derive(DeriveIden)]
enum Authority {
    Table,
    RevokedAt,
    RevocationReason,
    KeyToken,
    KeyLabel,
}

const TOKEN_KEY_INDEX: &str = "authority_token_key_unique";

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        m.alter_table(
            Table::alter()
                .table(Authority::Table)
                .add_column(ColumnDef::new(Authority::RevokedAt).timestamp_with_time_zone().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Authority::Table)
                .add_column(ColumnDef::new(Authority::RevocationReason).string_len(32).null())
                .to_owned(),
        )
        .await?;
        // NULLs are distinct in a unique index (SQLite and PostgreSQL): CAs whose key is
        // sealed in the database have no token and no label.
        m.create_index(
            Index::create()
                .name(TOKEN_KEY_INDEX)
                .table(Authority::Table)
                .col(Authority::KeyToken)
                .col(Authority::KeyLabel)
                .unique()
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name(TOKEN_KEY_INDEX).table(Authority::Table).to_owned())
            .await?;
        for column in [Authority::RevocationReason, Authority::RevokedAt] {
            m.alter_table(Table::alter().table(Authority::Table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
