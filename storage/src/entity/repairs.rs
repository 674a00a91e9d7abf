use sea_orm::entity::prelude::*;

/// What fleetca repaired at start after finding its database behind its published CRL.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "repairs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub at: DateTimeUtc,
    /// JSON: the numbers and counts.
    pub details: String,
    pub acknowledged_at: Option<DateTimeUtc>,
    pub acknowledged_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
