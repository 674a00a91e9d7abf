//! Counts for the overview page.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::entity::certificates::{Column as C, Entity as Certificates};
use crate::entity::devices::{Column as D, Entity as Devices};
use crate::entity::users::{Column as U, Entity as Users};
use crate::{StorageError, Store};

/// What the overview counts in: everything, one enterprise, or one API key.
#[derive(Clone, Debug)]
pub enum Scope {
    All,
    Enterprise(String),
    ApiKey(Uuid),
}

/// The overview's numbers.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub api_keys: u64,
    pub devices: u64,
    pub active: u64,
    pub revoked: u64,
    pub expiring_30d: u64,
    /// notAfter of every active certificate, for the expiry chart.
    pub active_expiries: Vec<DateTime<Utc>>,
}

impl Store {
    /// Counts API keys, devices and client certificates in a scope.
    pub async fn stats(&self, scope: &Scope, now: DateTime<Utc>) -> Result<Stats, StorageError> {
        let (user_cond, cert_cond, device_cond) = match scope {
            Scope::All => (Condition::all(), Condition::all(), Some(Condition::all())),
            Scope::Enterprise(e) => (
                Condition::all().add(U::Enterprise.eq(e.as_str())),
                Condition::all().add(C::Enterprise.eq(e.as_str())),
                Some(Condition::all().add(D::Tenant.eq(e.as_str()))),
            ),
            Scope::ApiKey(id) => (
                Condition::all().add(U::Id.eq(*id)),
                Condition::all().add(C::ApiKeyId.eq(*id)),
                None,
            ),
        };
        let cert_cond = cert_cond.add(C::Kind.eq("client"));
        let api_keys = Users::find()
            .filter(user_cond)
            .filter(U::IsServiceAccount.eq(true))
            .count(self.conn())
            .await?;
        let devices = match device_cond {
            Some(c) => Devices::find().filter(c).count(self.conn()).await?,
            None => 0,
        };
        let revoked = Certificates::find()
            .filter(cert_cond.clone())
            .filter(C::RevokedAt.is_not_null())
            .count(self.conn())
            .await?;
        let active_expiries: Vec<DateTime<Utc>> = Certificates::find()
            .select_only()
            .column(C::NotAfter)
            .filter(cert_cond)
            .filter(C::RevokedAt.is_null())
            .filter(C::NotAfter.gt(now))
            .into_tuple()
            .all(self.conn())
            .await?;
        let soon = now + Duration::days(30);
        Ok(Stats {
            api_keys,
            devices,
            active: active_expiries.len() as u64,
            revoked,
            expiring_30d: active_expiries.iter().filter(|t| **t <= soon).count() as u64,
            active_expiries,
        })
    }
}
