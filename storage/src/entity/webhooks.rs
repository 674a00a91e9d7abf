use sea_orm::entity::prelude::*;

/// A webhook endpoint: where events go, which ones, for which enterprise.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// Comma-separated event types.
    pub events: String,
    /// `None`: every enterprise's events and fleetca's own.
    pub enterprise: Option<String>,
    /// The signing secret, sealed with the master key.
    pub secret_sealed: Vec<u8>,
    pub is_active: bool,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
