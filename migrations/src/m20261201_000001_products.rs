use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
    ProductKey,
    Name,
    Enterprise,
    Scheme,
    DynamicActivation,
    MaxClockSkewSeconds,
    SealedSecret,
    IsActive,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ProductDevices {
    Table,
    Id,
    ProductKey,
    DeviceKey,
    SealedSecret,
    Description,
    IsActive,
    ActivatedAt,
    CreatedAt,
    UpdatedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Products::Table)
                .col(ColumnDef::new(Products::Id).uuid().not_null().primary_key())
                .col(
                    ColumnDef::new(Products::ProductKey)
                        .string_len(32)
                        .not_null()
                        .unique_key(),
                )
                .col(ColumnDef::new(Products::Name).string_len(200).not_null())
                .col(ColumnDef::new(Products::Enterprise).string_len(64).not_null())
                .col(ColumnDef::new(Products::Scheme).string_len(16).not_null())
                .col(ColumnDef::new(Products::DynamicActivation).boolean().not_null())
                .col(ColumnDef::new(Products::MaxClockSkewSeconds).big_integer().null())
                .col(ColumnDef::new(Products::SealedSecret).blob().not_null())
                .col(ColumnDef::new(Products::IsActive).boolean().not_null())
                .col(
                    ColumnDef::new(Products::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Products::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_products_enterprise")
                .table(Products::Table)
                .col(Products::Enterprise)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ProductDevices::Table)
                .col(ColumnDef::new(ProductDevices::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(ProductDevices::ProductKey).string_len(32).not_null())
                .col(ColumnDef::new(ProductDevices::DeviceKey).string_len(64).not_null())
                .col(ColumnDef::new(ProductDevices::SealedSecret).blob().not_null())
                .col(ColumnDef::new(ProductDevices::Description).text().null())
                .col(ColumnDef::new(ProductDevices::IsActive).boolean().not_null())
                .col(
                    ColumnDef::new(ProductDevices::ActivatedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(
                    ColumnDef::new(ProductDevices::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ProductDevices::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_product_devices_key")
                .table(ProductDevices::Table)
                .col(ProductDevices::ProductKey)
                .col(ProductDevices::DeviceKey)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ProductDevices::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Products::Table).to_owned()).await
    }
}
