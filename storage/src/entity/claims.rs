use sea_orm::entity::prelude::*;

/// A claim: one certificate, carried by a factory image, with which devices of a tenant
/// enroll their own certificates over mTLS (at most `max_uses` times, until `expires_at`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "claims")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub enterprise: String,
    pub tenant: String,
    /// The claim certificate (kind `claim`).
    #[sea_orm(unique)]
    pub certificate_id: Uuid,
    pub max_uses: i64,
    pub uses: i64,
    pub expires_at: DateTimeUtc,
    /// Whether an unknown device id is registered on its first enrollment.
    pub register_unknown: bool,
    /// Validity of the device certificates enrolled with it, in days.
    pub validity_days: i64,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
