use sea_orm::entity::prelude::*;

/// An issued certificate (client or server). Never holds a private key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "certificates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub api_key_id: Option<Uuid>,
    pub enterprise: String,
    #[sea_orm(unique)]
    pub serial: String,
    #[sea_orm(unique)]
    pub fingerprint: String,
    pub certificate_pem: String,
    pub not_before: DateTimeUtc,
    pub not_after: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    pub revocation_reason: Option<String>,
    /// The device (`{tenant}/{device_id}`) of a device certificate.
    pub device: Option<String>,
    /// A renewed certificate is revoked as `superseded` at this time (the renewal grace);
    /// meanwhile it still works but counts against no limit.
    pub supersede_at: Option<DateTimeUtc>,
    /// The certificate that renewed this one.
    pub renewed_by: Option<Uuid>,
    /// How it was renewed: `est` (by itself) or `api` (by a manager; then it may not renew
    /// itself again during its grace).
    pub renewed_via: Option<String>,
    /// The tightest expiry warning (30, 7 or 1 days before `not_after`) already announced.
    pub expiry_warned: Option<i32>,
    /// The CA that signed it (its revocation is listed on that CA's CRL).
    pub issuer_id: i32,
    /// The shard of its CA's CRL it names as its distribution point (none: the CA's own
    /// CRL, as every certificate issued before shards did).
    pub crl_shard: Option<i16>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
