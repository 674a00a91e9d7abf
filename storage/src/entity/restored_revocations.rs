use sea_orm::entity::prelude::*;

/// A revocation fleetca had published that a restored database did not know (the
/// certificate was issued after the backup); listed on every CRL until `not_after`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "restored_revocations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub serial: String,
    pub revoked_at: DateTimeUtc,
    pub reason: String,
    pub not_after: DateTimeUtc,
    /// The CA whose published CRL listed it.
    pub issuer_id: i32,
    /// The shard of that CA's CRL that listed it (none: the CA's own CRL).
    pub crl_shard: Option<i16>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
