use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Certificates {
    Table,
    Device,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // The device (`{tenant}/{device_id}`) a device certificate names.
        m.alter_table(
            Table::alter()
                .table(Certificates::Table)
                .add_column(ColumnDef::new(Certificates::Device).string_len(200).null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_certificates_device")
                .table(Certificates::Table)
                .col(Certificates::Device)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("idx_certificates_device").to_owned())
            .await?;
        m.alter_table(
            Table::alter()
                .table(Certificates::Table)
                .drop_column(Certificates::Device)
                .to_owned(),
        )
        .await
    }
}
