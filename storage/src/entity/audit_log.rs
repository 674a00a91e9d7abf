use sea_orm::entity::prelude::*;

/// One audit record, chained to the previous one by `prev_hash`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub at: DateTimeUtc,
    pub actor_id: Option<Uuid>,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub enterprise: Option<String>,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    pub outcome: String,
    /// JSON, never a secret.
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
