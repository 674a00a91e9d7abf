//! Devices and their sealed HA1 digests.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use uuid::Uuid;

use crate::audit::NewAudit;
use crate::entity::devices::{ActiveModel, Column, Entity as Devices};
use crate::rows::{commit_audited, insert_chunked};
use crate::{Device, Page, StorageError, Store};

/// A device to insert; the HA1 arrives sealed.
#[derive(Clone, Debug)]
pub struct NewDevice {
    pub tenant: String,
    pub device_id: String,
    pub realm: String,
    pub sealed_ha1: Vec<u8>,
    pub description: Option<String>,
}

/// Filters of a device listing.
#[derive(Clone, Debug, Default)]
pub struct DeviceFilter {
    pub tenant: Option<String>,
    pub is_active: Option<bool>,
    /// device_id contains this.
    pub search: Option<String>,
}

/// Changes to a device; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct DevicePatch {
    pub is_active: Option<bool>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    /// New realm and sealed HA1 (credential rotation).
    pub credentials: Option<(String, Vec<u8>)>,
}

/// Rows inserted per statement in a bulk insert (9 parameters each, well under SQLite's limit).
const CHUNK: usize = 1000;

fn active_model(d: NewDevice, now: DateTime<Utc>) -> ActiveModel {
    ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant: Set(d.tenant),
        device_id: Set(d.device_id),
        realm: Set(d.realm),
        sealed_ha1: Set(d.sealed_ha1),
        description: Set(d.description),
        is_active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

impl Store {
    /// Inserts a device. A taken (tenant, device_id) is [`StorageError::Conflict`].
    pub async fn create_device(
        &self,
        new: NewDevice,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<Device, StorageError> {
        self.insert_audited(active_model(new, now), audit, now).await
    }

    /// The subset of `keys` (tenant, device_id) that already exist.
    pub async fn existing_devices(&self, keys: &[(String, String)]) -> Result<Vec<(String, String)>, StorageError> {
        let mut found = Vec::new();
        for chunk in keys.chunks(400) {
            let cond = chunk.iter().fold(Condition::any(), |cond, (tenant, device_id)| {
                cond.add(named(tenant, device_id))
            });
            let rows: Vec<(String, String)> = Devices::find()
                .select_only()
                .column(Column::Tenant)
                .column(Column::DeviceId)
                .filter(cond)
                .into_tuple()
                .all(self.conn())
                .await?;
            found.extend(rows);
        }
        Ok(found)
    }

    /// Inserts many devices in one transaction: all of them, or none.
    pub async fn create_devices(
        &self,
        new: Vec<NewDevice>,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        let count = new.len() as u64;
        let txn = self.write_txn().await?;
        insert_chunked(&txn, new.into_iter().map(|d| active_model(d, now)), CHUNK).await?;
        commit_audited(txn, audit, now).await?;
        Ok(count)
    }

    /// A device by tenant and id.
    pub async fn device(&self, tenant: &str, device_id: &str) -> Result<Device, StorageError> {
        Devices::find()
            .filter(named(tenant, device_id))
            .one(self.conn())
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// One page of devices and the total that match.
    pub async fn list_devices(&self, filter: &DeviceFilter, page: Page) -> Result<(Vec<Device>, u64), StorageError> {
        let mut cond = Condition::all();
        if let Some(t) = &filter.tenant {
            cond = cond.add(Column::Tenant.eq(t.as_str()));
        }
        if let Some(a) = filter.is_active {
            cond = cond.add(Column::IsActive.eq(a));
        }
        if let Some(s) = &filter.search {
            cond = cond.add(Column::DeviceId.contains(s.as_str()));
        }
        let by_name = |q: sea_orm::Select<Devices>| q.order_by_asc(Column::Tenant).order_by_asc(Column::DeviceId);
        self.page_of(Devices::find().filter(cond), by_name, page).await
    }

    /// Applies a patch.
    pub async fn update_device(
        &self,
        tenant: &str,
        device_id: &str,
        patch: DevicePatch,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<Device, StorageError> {
        let find = Devices::find().filter(named(tenant, device_id));
        let change = |model: &mut ActiveModel| {
            if let Some(a) = patch.is_active {
                model.is_active = Set(a);
            }
            if let Some(d) = patch.description {
                model.description = Set(d);
            }
            if let Some((realm, sealed)) = patch.credentials {
                model.realm = Set(realm);
                model.sealed_ha1 = Set(sealed);
            }
            model.updated_at = Set(now);
        };
        self.update_audited(find, change, audit, now).await
    }

    /// Deletes a device.
    pub async fn delete_device(
        &self,
        tenant: &str,
        device_id: &str,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        self.delete_audited::<Devices>(named(tenant, device_id), audit, now)
            .await
    }
}

/// The device `device_id` of `tenant`.
fn named(tenant: &str, device_id: &str) -> Condition {
    Condition::all()
        .add(Column::Tenant.eq(tenant))
        .add(Column::DeviceId.eq(device_id))
}
