use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
    Url,
    Description,
    Events,
    Enterprise,
    SecretSealed,
    IsActive,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    WebhookId,
    EventId,
    EventType,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    LeaseUntil,
    LastStatus,
    LastError,
    CreatedAt,
    DeliveredAt,
}

#[derive(DeriveIden)]
enum Certificates {
    Table,
    ExpiryWarned,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Webhooks::Table)
                .col(ColumnDef::new(Webhooks::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Webhooks::Url).string_len(2048).not_null())
                .col(ColumnDef::new(Webhooks::Description).string_len(200).not_null())
                // A comma-separated list of event types.
                .col(ColumnDef::new(Webhooks::Events).string_len(1024).not_null())
                // None: every enterprise's events and fleetca's own (an admin's endpoint).
                .col(ColumnDef::new(Webhooks::Enterprise).string_len(64).null())
                .col(ColumnDef::new(Webhooks::SecretSealed).binary().not_null())
                .col(ColumnDef::new(Webhooks::IsActive).boolean().not_null())
                .col(ColumnDef::new(Webhooks::CreatedBy).string_len(64).not_null())
                .col(
                    ColumnDef::new(Webhooks::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Webhooks::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        // The outbox: one row per event and endpoint, written in the transaction of the
        // change; the senders of every instance lease due rows, so each is sent by one.
        m.create_table(
            Table::create()
                .table(WebhookDeliveries::Table)
                .col(
                    ColumnDef::new(WebhookDeliveries::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new(WebhookDeliveries::WebhookId).uuid().not_null())
                .col(ColumnDef::new(WebhookDeliveries::EventId).string_len(64).not_null())
                .col(ColumnDef::new(WebhookDeliveries::EventType).string_len(64).not_null())
                .col(ColumnDef::new(WebhookDeliveries::Payload).text().not_null())
                .col(ColumnDef::new(WebhookDeliveries::Status).string_len(16).not_null())
                .col(ColumnDef::new(WebhookDeliveries::Attempts).integer().not_null())
                .col(
                    ColumnDef::new(WebhookDeliveries::NextAttemptAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(WebhookDeliveries::LeaseUntil)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ColumnDef::new(WebhookDeliveries::LastStatus).integer().null())
                .col(ColumnDef::new(WebhookDeliveries::LastError).string_len(500).null())
                .col(
                    ColumnDef::new(WebhookDeliveries::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(WebhookDeliveries::DeliveredAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(WebhookDeliveries::Table, WebhookDeliveries::WebhookId)
                        .to(Webhooks::Table, Webhooks::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_deliveries_due")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::Status)
                .col(WebhookDeliveries::NextAttemptAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_deliveries_webhook")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::WebhookId)
                .col(WebhookDeliveries::Id)
                .to_owned(),
        )
        .await?;
        // The tightest expiry warning (30, 7 or 1 days) already announced for a certificate.
        m.alter_table(
            Table::alter()
                .table(Certificates::Table)
                .add_column(ColumnDef::new(Certificates::ExpiryWarned).integer().null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Certificates::Table)
                .drop_column(Certificates::ExpiryWarned)
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Webhooks::Table).to_owned()).await
    }
}
