use sea_orm::entity::prelude::*;

/// A product of sign-based devices (EnOS or Alibaba), with its secret sealed under the
/// master key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "products")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub product_key: String,
    pub name: String,
    pub enterprise: String,
    /// `enos` or `aliyun`.
    pub scheme: String,
    pub dynamic_activation: bool,
    /// `None`: the timestamp is not checked.
    pub max_clock_skew_seconds: Option<i64>,
    pub sealed_secret: Vec<u8>,
    pub is_active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
