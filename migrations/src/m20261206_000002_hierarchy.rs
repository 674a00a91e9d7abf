use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Several CAs: the row of today's CA (id 1) stays the root that issues, as it did; a root
/// made later, an imported one (whose key fleetca never holds: an empty sealed key) and the
/// issuing intermediates are rows beside it.
#[derive(DeriveIden)]
enum Authority {
    Table,
    /// `root` or `intermediate`.
    Role,
    /// `active` (issues certificates), `pending` (a key and a CSR, waiting for its
    /// certificate), `standby` (a root that signs only intermediates and its CRL),
    /// `retiring` (issues no more; its CRL is published until its last certificate expires),
    /// `retired`.
    State,
    /// The CA that signed this one (none for a root).
    ParentId,
    /// The CSR of a pending intermediate, for the operator's root to sign.
    CsrPem,
}

/// Which CA signed a certificate, so its revocation is listed on that CA's CRL.
#[derive(DeriveIden)]
enum Certificates {
    Table,
    IssuerId,
}

#[derive(DeriveIden)]
enum RestoredRevocations {
    Table,
    IssuerId,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        let columns = [
            ColumnDef::new(Authority::Role)
                .string_len(16)
                .not_null()
                .default("root")
                .to_owned(),
            ColumnDef::new(Authority::State)
                .string_len(16)
                .not_null()
                .default("active")
                .to_owned(),
            ColumnDef::new(Authority::ParentId).integer().null().to_owned(),
            ColumnDef::new(Authority::CsrPem).text().null().to_owned(),
        ];
        for mut column in columns {
            m.alter_table(
                Table::alter()
                    .table(Authority::Table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Certificates::Table)
                .add_column(ColumnDef::new(Certificates::IssuerId).integer().not_null().default(1))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(RestoredRevocations::Table)
                .add_column(
                    ColumnDef::new(RestoredRevocations::IssuerId)
                        .integer()
                        .not_null()
                        .default(1),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(RestoredRevocations::Table)
                .drop_column(RestoredRevocations::IssuerId)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Certificates::Table)
                .drop_column(Certificates::IssuerId)
                .to_owned(),
        )
        .await?;
        for column in [
            Authority::CsrPem,
            Authority::ParentId,
            Authority::State,
            Authority::Role,
        ] {
            m.alter_table(Table::alter().table(Authority::Table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
