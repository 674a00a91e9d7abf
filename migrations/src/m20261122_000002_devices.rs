use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Devices {
    Table,
    Id,
    Tenant,
    DeviceId,
    Realm,
    SealedHa1,
    Description,
    IsActive,
    CreatedAt,
    UpdatedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Devices::Table)
                .col(ColumnDef::new(Devices::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Devices::Tenant).string_len(64).not_null())
                .col(ColumnDef::new(Devices::DeviceId).string_len(128).not_null())
                .col(ColumnDef::new(Devices::Realm).string_len(128).not_null())
                .col(ColumnDef::new(Devices::SealedHa1).blob().not_null())
                .col(ColumnDef::new(Devices::Description).text().null())
                .col(ColumnDef::new(Devices::IsActive).boolean().not_null())
                .col(ColumnDef::new(Devices::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(Devices::UpdatedAt).timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_devices_tenant_device")
                .table(Devices::Table)
                .col(Devices::Tenant)
                .col(Devices::DeviceId)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Devices::Table).to_owned()).await
    }
}
