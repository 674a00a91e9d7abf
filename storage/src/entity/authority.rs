use sea_orm::entity::prelude::*;

/// The CA: one row (id 1), its certificate and its key sealed under the master key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "authority")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    pub certificate_pem: String,
    pub sealed_key: Vec<u8>,
    pub created_at: DateTimeUtc,
    /// `root` or `intermediate`.
    pub role: String,
    /// `active`, `pending`, `standby`, `retiring`, `retired` or `revoked` (see the
    /// migrations).
    pub state: String,
    /// The CA that signed this one.
    pub parent_id: Option<i32>,
    /// A pending intermediate's CSR.
    pub csr_pem: Option<String>,
    /// The label of the PKCS#11 token that holds its key (its sealed key is then empty).
    pub key_token: Option<String>,
    /// The key's label in that token.
    pub key_label: Option<String>,
    /// The last `ca.expiring` warning given: 180, 90 or 30 (days ahead).
    pub expiry_warned: Option<i32>,
    /// A new root's cross-certificates with the root before it (PEM: new with old, old
    /// with new).
    pub cross_pem: Option<String>,
    /// When its root revoked it (an intermediate), and why (RFC 5280's reason name).
    pub revoked_at: Option<DateTimeUtc>,
    pub revocation_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
