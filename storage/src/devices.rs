//! Devices and their sealed HA1 digests.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use crate::audit::NewAudit;
use crate::entity::devices::{ActiveModel, Column, Entity as Devices};
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
        let txn = self.write_txn().await?;
        let device = active_model(new, now).insert(&txn).await?;
        crate::outbox::append(&txn, audit, now).await?;
        txn.commit().await?;
        Ok(device)
    }

    /// The subset of `keys` (tenant, device_id) that already exist.
    pub async fn existing_devices(&self, keys: &[(String, String)]) -> Result<Vec<(String, String)>, StorageError> {
        let mut found = Vec::new();
        for chunk in keys.chunks(400) {
            let mut cond = Condition::any();
            for (tenant, device_id) in chunk {
                cond = cond.add(
                    Condition::all()
                        .add(Column::Tenant.eq(tenant.as_str()))
                        .add(Column::DeviceId.eq(device_id.as_str())),
                );
            }
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
        let mut rows = new.into_iter().map(|d| active_model(d, now)).peekable();
        while rows.peek().is_some() {
            let chunk: Vec<ActiveModel> = rows.by_ref().take(CHUNK).collect();
            Devices::insert_many(chunk).exec(&txn).await?;
        }
        crate::outbox::append(&txn, audit, now).await?;
        txn.commit().await?;
        Ok(count)
    }

    /// A device by tenant and id.
    pub async fn device(&self, tenant: &str, device_id: &str) -> Result<Device, StorageError> {
        Devices::find()
            .filter(Column::Tenant.eq(tenant))
            .filter(Column::DeviceId.eq(device_id))
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
        let query = Devices::find().filter(cond);
        let total = query.clone().count(self.conn()).await?;
        let rows = query
            .order_by_asc(Column::Tenant)
            .order_by_asc(Column::DeviceId)
            .offset(page.offset)
            .limit(page.limit)
            .all(self.conn())
            .await?;
        Ok((rows, total))
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
        let txn = self.write_txn().await?;
        let device = Devices::find()
            .filter(Column::Tenant.eq(tenant))
            .filter(Column::DeviceId.eq(device_id))
            .one(&txn)
            .await?
            .ok_or(StorageError::NotFound)?;
        let mut model: ActiveModel = device.into();
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
        let device = model.update(&txn).await?;
        crate::outbox::append(&txn, audit, now).await?;
        txn.commit().await?;
        Ok(device)
    }

    /// Deletes a device.
    pub async fn delete_device(
        &self,
        tenant: &str,
        device_id: &str,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let txn = self.write_txn().await?;
        let res = Devices::delete_many()
            .filter(Column::Tenant.eq(tenant))
            .filter(Column::DeviceId.eq(device_id))
            .exec(&txn)
            .await?;
        if res.rows_affected == 0 {
            return Err(StorageError::NotFound);
        }
        crate::outbox::append(&txn, audit, now).await?;
        txn.commit().await?;
        Ok(())
    }
}
