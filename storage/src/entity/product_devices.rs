use sea_orm::entity::prelude::*;

/// A sign-based device of a product, with its secret sealed under the master key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "product_devices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub product_key: String,
    pub device_key: String,
    pub sealed_secret: Vec<u8>,
    pub description: Option<String>,
    pub is_active: bool,
    /// When the device first connected with its device secret; until an admin or manager
    /// resets it, it cannot activate again.
    pub activated_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
