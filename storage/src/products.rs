//! Products of sign-based devices and their devices, with sealed secrets.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select, Set};
use uuid::Uuid;

use crate::audit::NewAudit;
use crate::entity::product_devices::{ActiveModel as DeviceModel, Column as D, Entity as ProductDevices};
use crate::entity::products::{ActiveModel, Column as P, Entity as Products};
use crate::rows::{commit_audited, delete_found, insert_chunked};
use crate::{Page, Product, ProductDevice, StorageError, Store};

/// A product to insert; the secret arrives sealed.
#[derive(Clone, Debug)]
pub struct NewProduct {
    pub product_key: String,
    pub name: String,
    pub enterprise: String,
    pub scheme: String,
    pub dynamic_activation: bool,
    pub max_clock_skew_seconds: Option<i64>,
    pub sealed_secret: Vec<u8>,
}

/// Filters of a product listing.
#[derive(Clone, Debug, Default)]
pub struct ProductFilter {
    pub enterprise: Option<String>,
    pub scheme: Option<String>,
    /// product_key or name contains this.
    pub search: Option<String>,
}

/// Changes to a product; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub is_active: Option<bool>,
    pub dynamic_activation: Option<bool>,
    /// `Some(None)` turns the timestamp check off.
    pub max_clock_skew_seconds: Option<Option<i64>>,
    pub sealed_secret: Option<Vec<u8>>,
}

/// A device of a product to insert; the secret arrives sealed.
#[derive(Clone, Debug)]
pub struct NewProductDevice {
    pub product_key: String,
    pub device_key: String,
    pub sealed_secret: Vec<u8>,
    pub description: Option<String>,
    /// The device already holds its secret (it was given, not generated): it counts as
    /// activated from the start.
    pub activated: bool,
}

/// Filters of a listing of a product's devices.
#[derive(Clone, Debug, Default)]
pub struct ProductDeviceFilter {
    pub is_active: Option<bool>,
    /// device_key contains this.
    pub search: Option<String>,
}

/// Changes to a device of a product.
#[derive(Clone, Debug, Default)]
pub struct ProductDevicePatch {
    pub is_active: Option<bool>,
    pub description: Option<Option<String>>,
    pub sealed_secret: Option<Vec<u8>>,
    /// `Some(None)` resets the activation.
    pub activated_at: Option<Option<DateTime<Utc>>>,
}

const CHUNK: usize = 1000;

fn device_model(d: NewProductDevice, now: DateTime<Utc>) -> DeviceModel {
    DeviceModel {
        id: Set(Uuid::new_v4()),
        product_key: Set(d.product_key),
        device_key: Set(d.device_key),
        sealed_secret: Set(d.sealed_secret),
        description: Set(d.description),
        is_active: Set(true),
        activated_at: Set(d.activated.then_some(now)),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

impl Store {
    /// Inserts a product. A taken product_key is [`StorageError::Conflict`].
    pub async fn create_product(
        &self,
        new: NewProduct,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<Product, StorageError> {
        let model = ActiveModel {
            id: Set(Uuid::new_v4()),
            product_key: Set(new.product_key),
            name: Set(new.name),
            enterprise: Set(new.enterprise),
            scheme: Set(new.scheme),
            dynamic_activation: Set(new.dynamic_activation),
            max_clock_skew_seconds: Set(new.max_clock_skew_seconds),
            sealed_secret: Set(new.sealed_secret),
            is_active: Set(true),
            created_at: Set(now),
            updated_at: Set(now),
        };
        self.insert_audited(model, audit, now).await
    }

    /// A product by its key.
    pub async fn product(&self, product_key: &str) -> Result<Product, StorageError> {
        Products::find()
            .filter(P::ProductKey.eq(product_key))
            .one(self.conn())
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// One page of products and the total that match.
    pub async fn list_products(&self, filter: &ProductFilter, page: Page) -> Result<(Vec<Product>, u64), StorageError> {
        let mut cond = Condition::all();
        if let Some(e) = &filter.enterprise {
            cond = cond.add(P::Enterprise.eq(e.as_str()));
        }
        if let Some(s) = &filter.scheme {
            cond = cond.add(P::Scheme.eq(s.as_str()));
        }
        if let Some(s) = &filter.search {
            cond = cond.add(
                Condition::any()
                    .add(P::ProductKey.contains(s.as_str()))
                    .add(P::Name.contains(s.as_str())),
            );
        }
        let by_key = |q: Select<Products>| q.order_by_asc(P::ProductKey);
        self.page_of(Products::find().filter(cond), by_key, page).await
    }

    /// Applies a patch to a product.
    pub async fn update_product(
        &self,
        product_key: &str,
        patch: ProductPatch,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<Product, StorageError> {
        let find = Products::find().filter(P::ProductKey.eq(product_key));
        let change = |model: &mut ActiveModel| {
            if let Some(n) = patch.name {
                model.name = Set(n);
            }
            if let Some(a) = patch.is_active {
                model.is_active = Set(a);
            }
            if let Some(d) = patch.dynamic_activation {
                model.dynamic_activation = Set(d);
            }
            if let Some(s) = patch.max_clock_skew_seconds {
                model.max_clock_skew_seconds = Set(s);
            }
            if let Some(s) = patch.sealed_secret {
                model.sealed_secret = Set(s);
            }
            model.updated_at = Set(now);
        };
        self.update_audited(find, change, audit, now).await
    }

    /// Deletes a product and all its devices, in one transaction.
    pub async fn delete_product(
        &self,
        product_key: &str,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let txn = self.write_txn().await?;
        ProductDevices::delete_many()
            .filter(D::ProductKey.eq(product_key))
            .exec(&txn)
            .await?;
        delete_found::<Products>(&txn, Condition::all().add(P::ProductKey.eq(product_key))).await?;
        commit_audited(txn, audit, now).await
    }

    /// Inserts a device of a product. A taken device_key is [`StorageError::Conflict`].
    pub async fn create_product_device(
        &self,
        new: NewProductDevice,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<ProductDevice, StorageError> {
        self.insert_audited(device_model(new, now), audit, now).await
    }

    /// The subset of `device_keys` that already exist in the product.
    pub async fn existing_product_devices(
        &self,
        product_key: &str,
        device_keys: &[String],
    ) -> Result<Vec<String>, StorageError> {
        let mut found = Vec::new();
        for chunk in device_keys.chunks(500) {
            let rows: Vec<String> = ProductDevices::find()
                .select_only()
                .column(D::DeviceKey)
                .filter(D::ProductKey.eq(product_key))
                .filter(D::DeviceKey.is_in(chunk.iter().map(String::as_str)))
                .into_tuple()
                .all(self.conn())
                .await?;
            found.extend(rows);
        }
        Ok(found)
    }

    /// Inserts many devices of products in one transaction: all of them, or none.
    pub async fn create_product_devices(
        &self,
        new: Vec<NewProductDevice>,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        let count = new.len() as u64;
        let txn = self.write_txn().await?;
        insert_chunked(&txn, new.into_iter().map(|d| device_model(d, now)), CHUNK).await?;
        commit_audited(txn, audit, now).await?;
        Ok(count)
    }

    /// A device of a product.
    pub async fn product_device(&self, product_key: &str, device_key: &str) -> Result<ProductDevice, StorageError> {
        ProductDevices::find()
            .filter(device_of(product_key, device_key))
            .one(self.conn())
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// One page of a product's devices and the total that match.
    pub async fn list_product_devices(
        &self,
        product_key: &str,
        filter: &ProductDeviceFilter,
        page: Page,
    ) -> Result<(Vec<ProductDevice>, u64), StorageError> {
        let mut cond = Condition::all().add(D::ProductKey.eq(product_key));
        if let Some(a) = filter.is_active {
            cond = cond.add(D::IsActive.eq(a));
        }
        if let Some(s) = &filter.search {
            cond = cond.add(D::DeviceKey.contains(s.as_str()));
        }
        let by_key = |q: Select<ProductDevices>| q.order_by_asc(D::DeviceKey);
        self.page_of(ProductDevices::find().filter(cond), by_key, page).await
    }

    /// Applies a patch to a device of a product.
    pub async fn update_product_device(
        &self,
        product_key: &str,
        device_key: &str,
        patch: ProductDevicePatch,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<ProductDevice, StorageError> {
        let find = ProductDevices::find().filter(device_of(product_key, device_key));
        let change = |model: &mut DeviceModel| {
            if let Some(a) = patch.is_active {
                model.is_active = Set(a);
            }
            if let Some(d) = patch.description {
                model.description = Set(d);
            }
            if let Some(s) = patch.sealed_secret {
                model.sealed_secret = Set(s);
            }
            if let Some(a) = patch.activated_at {
                model.activated_at = Set(a);
            }
            model.updated_at = Set(now);
        };
        self.update_audited(find, change, audit, now).await
    }

    /// Records a device's first connection with its device secret; `false` when it was
    /// already recorded (or the device is gone).
    pub async fn mark_product_device_activated(
        &self,
        product_key: &str,
        device_key: &str,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        let txn = self.write_txn().await?;
        let res = ProductDevices::update_many()
            .col_expr(D::ActivatedAt, sea_orm::sea_query::Expr::value(now))
            .filter(device_of(product_key, device_key))
            .filter(D::ActivatedAt.is_null())
            .exec(&txn)
            .await?;
        if res.rows_affected == 0 {
            return Ok(false);
        }
        commit_audited(txn, audit, now).await?;
        Ok(true)
    }

    /// Deletes a device of a product.
    pub async fn delete_product_device(
        &self,
        product_key: &str,
        device_key: &str,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        self.delete_audited::<ProductDevices>(device_of(product_key, device_key), audit, now)
            .await
    }
}

/// The device `device_key` of the product `product_key`.
fn device_of(product_key: &str, device_key: &str) -> Condition {
    Condition::all()
        .add(D::ProductKey.eq(product_key))
        .add(D::DeviceKey.eq(device_key))
}
