use sea_orm::entity::prelude::*;

/// Live sessions to end at the brokers after a change that invalidated a credential.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "disconnects")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The change (`certificate.revoke`, `user.deactivate`, …).
    pub action: String,
    /// What lost its validity: `certificate`, `user`, `device`, `product_device`, `product`.
    pub target_kind: String,
    pub target_id: String,
    pub enterprise: Option<String>,
    /// `pending`, `done` or `failed` (gave up).
    pub status: String,
    pub attempts: i32,
    /// Comma-separated names of the brokers that confirmed.
    pub done_brokers: String,
    pub next_attempt_at: DateTimeUtc,
    pub lease_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub done_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
