use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// A CA key in a PKCS#11 token: the token's label and the key's. Such a CA's sealed key is
/// empty (its key never leaves the token); a CA whose key is sealed has neither. And the
/// last `ca.expiring` warning given of each CA (180, 90 or 30 days ahead), and a new root's
/// cross-certificates with the root before it (RFC 4210 §4.4).
#[derive(DeriveIden)]
enum Authority {
    Table,
    KeyToken,
    KeyLabel,
    ExpiryWarned,
    CrossPem,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        for column in [Authority::KeyToken, Authority::KeyLabel] {
            m.alter_table(
                Table::alter()
                    .table(Authority::Table)
                    .add_column(ColumnDef::new(column).string_len(128).null())
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Authority::Table)
                .add_column(ColumnDef::new(Authority::ExpiryWarned).integer().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Authority::Table)
                .add_column(ColumnDef::new(Authority::CrossPem).text().null())
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Authority::CrossPem,
            Authority::ExpiryWarned,
            Authority::KeyLabel,
            Authority::KeyToken,
        ] {
            m.alter_table(Table::alter().table(Authority::Table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
