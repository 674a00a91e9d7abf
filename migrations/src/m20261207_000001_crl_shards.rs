use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Sharded CRLs: the shard of its CA's CRL a certificate names as its distribution point
/// (NULL: the CA's own CRL, as every certificate issued before shards did), and the shard a
/// revocation restored from a published record was listed on.
#[derive(DeriveIden)]
enum Certificates {
    Table,
    CrlShard,
}

#[derive(DeriveIden)]
enum RestoredRevocations {
    Table,
    CrlShard,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Certificates::Table)
                .add_column(ColumnDef::new(Certificates::CrlShard).small_integer().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(RestoredRevocations::Table)
                .add_column(ColumnDef::new(RestoredRevocations::CrlShard).small_integer().null())
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(RestoredRevocations::Table)
                .drop_column(RestoredRevocations::CrlShard)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Certificates::Table)
                .drop_column(Certificates::CrlShard)
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
