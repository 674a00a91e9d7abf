use sea_orm::entity::prelude::*;

/// A user: a service account (API key) or a human admin/manager.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub username: String,
    pub is_service_account: bool,
    pub enterprise: String,
    pub role: String,
    pub is_active: bool,
    #[sea_orm(unique)]
    pub token_lookup: String,
    pub token_hash: String,
    pub password_hash: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
