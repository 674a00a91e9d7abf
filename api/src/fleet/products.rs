//! Products of sign-based devices (EnOS, Alibaba Cloud IoT) and their devices: product and
//! device secrets, generated or given, sealed under the master key (the server recomputes
//! signatures, so they cannot be one-way hashes) and returned once; activation state; and
//! the HTTPS dynamic registration through which a device of a dynamic product obtains its
//! secret.
//!
//! Scope as elsewhere: a manager manages the products of its enterprise; others' products
//! are "not found".

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use fleetca_ca::MasterKey;
use fleetca_ca::sign::{self, SignMethod};
use fleetca_storage::products::{
    NewProduct, NewProductDevice, ProductDeviceFilter, ProductDevicePatch, ProductFilter, ProductPatch,
};
use fleetca_storage::{Product, ProductDevice, StorageError, Store};

use crate::domain::AuditAction;
use crate::domain::{
    CertificateName, Description, DeviceKey, Enterprise, FieldErrors, Listing, PageRequest, Principal, ProductKey,
    Scheme, Secret,
};
use crate::outbox::audit;
use crate::outbox::changes::Changes;
use crate::support::Error;
use crate::support::clock::Clock;
use crate::support::error::not_found_as;
use crate::support::limits::RateLimiter;
use serde_json::json;

/// A validated new product.
#[derive(Debug)]
pub struct NewProductInput {
    /// Generated when absent.
    pub product_key: Option<ProductKey>,
    pub name: CertificateName,
    /// The caller's when absent.
    pub enterprise: Option<Enterprise>,
    pub scheme: Scheme,
    pub dynamic_activation: bool,
    /// `None`: no timestamp check.
    pub max_clock_skew_seconds: Option<i64>,
    /// The platform's product secret, when a product moves over; generated when absent.
    pub product_secret: Option<Secret>,
}

/// A validated change of a product.
#[derive(Debug, Default)]
pub struct ProductChange {
    pub name: Option<CertificateName>,
    pub is_active: Option<bool>,
    pub dynamic_activation: Option<bool>,
    pub max_clock_skew_seconds: Option<Option<i64>>,
}

/// A validated new device of a product.
#[derive(Debug)]
pub struct NewSignDevice {
    pub device_key: DeviceKey,
    /// Generated when absent; never echoed when given.
    pub device_secret: Option<Secret>,
    pub description: Option<Description>,
}

/// A validated change of a device of a product.
#[derive(Debug, Default)]
pub struct SignDeviceChange {
    pub is_active: Option<bool>,
    pub description: Option<Description>,
}

/// A device of a product just made, with its secret when fleetca generated it.
#[derive(Debug)]
pub struct CreatedSignDevice {
    pub device: ProductDevice,
    pub generated_secret: Option<String>,
}

/// Why an HTTPS dynamic registration was refused; each is a JSON error with its own code.
#[derive(Debug, PartialEq, Eq)]
pub enum RegisterRefusal {
    /// A field is missing or malformed.
    BadRequest(&'static str),
    /// Unknown product or device, a product without dynamic activation, a disabled or
    /// already activated device, or a wrong sign: one answer, so nothing leaks.
    Denied,
    /// Too many registrations for this product; retry later.
    RateLimited,
    /// fleetca cannot decide now.
    Unavailable,
}

/// What a dynamic registration sends.
#[derive(Debug, Default)]
pub struct Registration {
    /// Who is asking: failed registrations are limited per product and address.
    pub peer: Option<std::net::IpAddr>,
    pub product_key: String,
    pub device_name: String,
    pub random: String,
    pub sign_method: String,
    pub sign: String,
}

/// The product flows.
pub struct ProductService {
    store: Store,
    master: Arc<MasterKey>,
    changes: Arc<Changes>,
    clock: Arc<dyn Clock>,
    /// Registrations per product.
    registrations: RateLimiter,
}

impl ProductService {
    pub fn new(
        store: Store,
        master: Arc<MasterKey>,
        changes: Arc<Changes>,
        clock: Arc<dyn Clock>,
        registrations_per_minute: u32,
    ) -> Self {
        Self {
            store,
            master,
            changes,
            clock,
            registrations: RateLimiter::new(registrations_per_minute),
        }
    }

    fn seal_product_secret(&self, product_key: &str, secret: &str) -> Result<Vec<u8>, Error> {
        Ok(self
            .master
            .seal(&sign::product_secret_context(product_key), secret.as_bytes())?)
    }

    fn seal_device_secret(&self, product_key: &str, device_key: &str, secret: &str) -> Result<Vec<u8>, Error> {
        Ok(self
            .master
            .seal(&sign::device_secret_context(product_key, device_key), secret.as_bytes())?)
    }

    /// A product the caller manages.
    pub async fn get(&self, caller: &Principal, product_key: &str) -> Result<Product, Error> {
        match self.store.product(product_key).await {
            Ok(p) if caller.manages(&p.enterprise) => Ok(p),
            Ok(_) | Err(StorageError::NotFound) => Err(Error::NotFound("product")),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a product; returns it with the secret fleetca generated, shown this once
    /// (`None` when the input gave one: it is never echoed).
    pub async fn create(&self, caller: &Principal, input: NewProductInput) -> Result<(Product, Option<String>), Error> {
        let enterprise = input
            .enterprise
            .map(Enterprise::into_inner)
            .unwrap_or_else(|| caller.enterprise.clone());
        if !caller.manages(&enterprise) {
            return Err(Error::Forbidden(format!(
                "You may only create products in your enterprise {:?}.",
                caller.enterprise
            )));
        }
        let product_key = match input.product_key {
            Some(k) => k.into_inner(),
            None => sign::generate_secret()?.chars().take(16).collect(),
        };
        let (secret, generated) = match input.product_secret {
            Some(given) => (given.expose().to_owned(), None),
            None => {
                let s = sign::generate_secret()?;
                (s.clone(), Some(s))
            }
        };
        let new = NewProduct {
            sealed_secret: self.seal_product_secret(&product_key, &secret)?,
            product_key,
            name: input.name.into_inner(),
            enterprise,
            scheme: input.scheme.as_str().to_owned(),
            dynamic_activation: input.dynamic_activation,
            max_clock_skew_seconds: input.max_clock_skew_seconds,
        };
        let record = audit::by(
            caller,
            AuditAction::ProductCreate,
            "product",
            &new.product_key,
            Some(&new.enterprise),
            json!({
                "scheme": new.scheme,
                "dynamic_activation": new.dynamic_activation,
                "generated_secret": generated.is_some(),
            }),
        );
        let product = self
            .store
            .create_product(new, &[record], self.clock.now())
            .await
            .map_err(|e| match e {
                StorageError::Conflict(_) => {
                    Error::Conflict("A product with this product_key already exists; choose another.".into())
                }
                other => other.into(),
            })?;
        tracing::info!(product_key = %product.product_key, by = %caller.username, "product created");
        Ok((product, generated))
    }

    /// One page of the products the caller manages.
    pub async fn list(
        &self,
        caller: &Principal,
        mut filter: ProductFilter,
        page: PageRequest,
    ) -> Result<Listing<Product>, Error> {
        if !caller.pin_enterprise(&mut filter.enterprise) {
            return Ok(Listing::empty());
        }
        Ok(self.store.list_products(&filter, page.storage()).await?.into())
    }

    /// Changes a product; disabling it refuses its devices at once.
    pub async fn change(&self, caller: &Principal, product_key: &str, change: ProductChange) -> Result<Product, Error> {
        let current = self.get(caller, product_key).await?;
        let patch = ProductPatch {
            name: change.name.map(CertificateName::into_inner),
            is_active: change.is_active,
            dynamic_activation: change.dynamic_activation,
            max_clock_skew_seconds: change.max_clock_skew_seconds,
            sealed_secret: None,
        };
        let mut record = audit::by(
            caller,
            AuditAction::ProductUpdate,
            "product",
            product_key,
            Some(&current.enterprise),
            json!({"is_active": patch.is_active, "dynamic_activation": patch.dynamic_activation}),
        );
        record.ends_sessions = patch.is_active == Some(false) && current.is_active;
        let product = self
            .store
            .update_product(product_key, patch, &[record], self.clock.now())
            .await
            .map_err(not_found_as("product"))?;
        self.changes.product_changed(product_key).await;
        Ok(product)
    }

    /// Deletes a product and its devices.
    pub async fn delete(&self, caller: &Principal, product_key: &str) -> Result<(), Error> {
        let current = self.get(caller, product_key).await?;
        let record = audit::by(
            caller,
            AuditAction::ProductDelete,
            "product",
            product_key,
            Some(&current.enterprise),
            json!({}),
        );
        self.store
            .delete_product(product_key, &[record], self.clock.now())
            .await
            .map_err(not_found_as("product"))?;
        self.changes.product_changed(product_key).await;
        tracing::info!(%product_key, by = %caller.username, "product deleted");
        Ok(())
    }

    /// Replaces a product's secret; returns the new one, shown this once.
    pub async fn rotate_secret(&self, caller: &Principal, product_key: &str) -> Result<(Product, String), Error> {
        let current = self.get(caller, product_key).await?;
        let secret = sign::generate_secret()?;
        let patch = ProductPatch {
            sealed_secret: Some(self.seal_product_secret(product_key, &secret)?),
            ..Default::default()
        };
        let record = audit::by(
            caller,
            AuditAction::ProductRotateSecret,
            "product",
            product_key,
            Some(&current.enterprise),
            json!({}),
        );
        let product = self
            .store
            .update_product(product_key, patch, &[record], self.clock.now())
            .await
            .map_err(not_found_as("product"))?;
        self.changes.product_changed(product_key).await;
        tracing::info!(%product_key, by = %caller.username, "product secret rotated");
        Ok((product, secret))
    }

    fn prepare_device(
        &self,
        product_key: &str,
        input: NewSignDevice,
    ) -> Result<(NewProductDevice, Option<String>), Error> {
        let device_key = input.device_key.into_inner();
        let (secret, generated) = match input.device_secret {
            Some(s) => (s.expose().to_owned(), None),
            None => {
                let s = sign::generate_secret()?;
                (s.clone(), Some(s))
            }
        };
        Ok((
            NewProductDevice {
                sealed_secret: self.seal_device_secret(product_key, &device_key, &secret)?,
                product_key: product_key.to_owned(),
                device_key,
                description: input.description.map(Description::into_inner),
                // A device given its secret already holds it: nothing left to activate.
                activated: generated.is_none(),
            },
            generated,
        ))
    }

    /// Registers a device of a product.
    pub async fn create_device(
        &self,
        caller: &Principal,
        product_key: &str,
        input: NewSignDevice,
    ) -> Result<CreatedSignDevice, Error> {
        let product = self.get(caller, product_key).await?;
        let (new, generated_secret) = self.prepare_device(product_key, input)?;
        let record = audit::by(
            caller,
            AuditAction::ProductDeviceCreate,
            "product_device",
            &format!("{product_key}/{}", new.device_key),
            Some(&product.enterprise),
            json!({"generated_secret": generated_secret.is_some()}),
        );
        let device = self
            .store
            .create_product_device(new, &[record], self.clock.now())
            .await
            .map_err(|e| match e {
                StorageError::Conflict(_) => {
                    Error::Conflict("A device with this device_key already exists in this product.".into())
                }
                other => other.into(),
            })?;
        tracing::info!(%product_key, device_key = %device.device_key, by = %caller.username, "sign device registered");
        Ok(CreatedSignDevice {
            device,
            generated_secret,
        })
    }

    /// Registers many devices of a product, all or nothing, with errors by row.
    pub async fn bulk_devices(
        &self,
        caller: &Principal,
        product_key: &str,
        rows: Vec<NewSignDevice>,
    ) -> Result<Vec<CreatedSignDevice>, Error> {
        let product = self.get(caller, product_key).await?;
        let mut invalid = FieldErrors::new();
        let mut seen = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            if let Some(first) = seen.insert(row.device_key.as_str().to_owned(), i) {
                invalid
                    .entry(format!("{i}.device_key"))
                    .or_default()
                    .push(format!("duplicates row {first} of this request"));
            }
        }
        if !invalid.is_empty() {
            return Err(Error::Invalid(invalid));
        }
        let keys: Vec<String> = rows.iter().map(|r| r.device_key.as_str().to_owned()).collect();
        let existing: HashSet<String> = self
            .store
            .existing_product_devices(product_key, &keys)
            .await?
            .into_iter()
            .collect();
        let mut conflicts = FieldErrors::new();
        for (i, key) in keys.iter().enumerate() {
            if existing.contains(key) {
                conflicts
                    .entry(format!("{i}.device_key"))
                    .or_default()
                    .push("a device with this device_key already exists in this product".into());
            }
        }
        if !conflicts.is_empty() {
            return Err(Error::ConflictRows(
                "Some devices already exist; nothing was written. See `errors` for the rows.".into(),
                conflicts,
            ));
        }
        let now = self.clock.now();
        let mut new = Vec::with_capacity(rows.len());
        let mut generated = Vec::with_capacity(rows.len());
        for row in rows {
            let (d, g) = self.prepare_device(product_key, row)?;
            new.push(d);
            generated.push(g);
        }
        let shown: Vec<ProductDevice> = new
            .iter()
            .map(|d| ProductDevice {
                id: uuid::Uuid::nil(),
                product_key: d.product_key.clone(),
                device_key: d.device_key.clone(),
                sealed_secret: Vec::new(),
                description: d.description.clone(),
                is_active: true,
                activated_at: d.activated.then_some(now),
                created_at: now,
                updated_at: now,
            })
            .collect();
        let records: Vec<_> = new
            .iter()
            .map(|d| {
                audit::by(
                    caller,
                    AuditAction::ProductDeviceCreate,
                    "product_device",
                    &format!("{}/{}", d.product_key, d.device_key),
                    Some(&product.enterprise),
                    json!({"bulk": true}),
                )
            })
            .collect();
        self.store
            .create_product_devices(new, &records, now)
            .await
            .map_err(|e| match e {
                StorageError::Conflict(_) => Error::Conflict(
                    "A device in this request was created by someone else meanwhile; nothing was written. Retry."
                        .into(),
                ),
                other => other.into(),
            })?;
        tracing::info!(%product_key, count = shown.len(), by = %caller.username, "sign devices registered in bulk");
        Ok(shown
            .into_iter()
            .zip(generated)
            .map(|(device, generated_secret)| CreatedSignDevice {
                device,
                generated_secret,
            })
            .collect())
    }

    /// A device of a product the caller manages.
    pub async fn get_device(
        &self,
        caller: &Principal,
        product_key: &str,
        device_key: &str,
    ) -> Result<ProductDevice, Error> {
        self.get(caller, product_key).await?;
        self.store
            .product_device(product_key, device_key)
            .await
            .map_err(not_found_as("device"))
    }

    /// One page of a product's devices.
    pub async fn list_devices(
        &self,
        caller: &Principal,
        product_key: &str,
        filter: ProductDeviceFilter,
        page: PageRequest,
    ) -> Result<Listing<ProductDevice>, Error> {
        self.get(caller, product_key).await?;
        Ok(self
            .store
            .list_product_devices(product_key, &filter, page.storage())
            .await?
            .into())
    }

    /// An audit record of `caller` changing a device of a product.
    async fn device_record(
        &self,
        caller: &Principal,
        action: AuditAction,
        product_key: &str,
        device_key: &str,
    ) -> Result<fleetca_storage::NewAudit, Error> {
        let product = self.get(caller, product_key).await?;
        Ok(audit::by(
            caller,
            action,
            "product_device",
            &format!("{product_key}/{device_key}"),
            Some(&product.enterprise),
            json!({}),
        ))
    }

    async fn patch_device(
        &self,
        product_key: &str,
        device_key: &str,
        patch: ProductDevicePatch,
        record: fleetca_storage::NewAudit,
    ) -> Result<ProductDevice, Error> {
        let device = self
            .store
            .update_product_device(product_key, device_key, patch, &[record], self.clock.now())
            .await
            .map_err(not_found_as("device"))?;
        self.changes.product_device_changed(product_key, device_key).await;
        Ok(device)
    }

    /// Enables or disables a device, or changes its description.
    pub async fn change_device(
        &self,
        caller: &Principal,
        product_key: &str,
        device_key: &str,
        change: SignDeviceChange,
    ) -> Result<ProductDevice, Error> {
        self.get_device(caller, product_key, device_key).await?;
        let patch = ProductDevicePatch {
            is_active: change.is_active,
            description: change.description.map(|d| Some(d.into_inner())),
            ..Default::default()
        };
        let action = match change.is_active {
            Some(false) => AuditAction::ProductDeviceDisable,
            Some(true) => AuditAction::ProductDeviceEnable,
            None => AuditAction::ProductDeviceUpdate,
        };
        let record = self.device_record(caller, action, product_key, device_key).await?;
        self.patch_device(product_key, device_key, patch, record).await
    }

    /// Replaces a device's secret with a new one, shown this once.
    pub async fn rotate_device_secret(
        &self,
        caller: &Principal,
        product_key: &str,
        device_key: &str,
    ) -> Result<(ProductDevice, String), Error> {
        self.get_device(caller, product_key, device_key).await?;
        let secret = sign::generate_secret()?;
        let patch = ProductDevicePatch {
            sealed_secret: Some(self.seal_device_secret(product_key, device_key, &secret)?),
            ..Default::default()
        };
        let record = self
            .device_record(caller, AuditAction::ProductDeviceRotateSecret, product_key, device_key)
            .await?;
        let device = self.patch_device(product_key, device_key, patch, record).await?;
        tracing::info!(%product_key, %device_key, by = %caller.username, "sign device secret rotated");
        Ok((device, secret))
    }

    /// Lets a device activate again (it has lost its secret, say).
    pub async fn reset_activation(
        &self,
        caller: &Principal,
        product_key: &str,
        device_key: &str,
    ) -> Result<ProductDevice, Error> {
        self.get_device(caller, product_key, device_key).await?;
        let patch = ProductDevicePatch {
            activated_at: Some(None),
            ..Default::default()
        };
        let record = self
            .device_record(
                caller,
                AuditAction::ProductDeviceResetActivation,
                product_key,
                device_key,
            )
            .await?;
        let device = self.patch_device(product_key, device_key, patch, record).await?;
        tracing::info!(%product_key, %device_key, by = %caller.username, "sign device activation reset");
        Ok(device)
    }

    /// Deletes a device of a product.
    pub async fn delete_device(&self, caller: &Principal, product_key: &str, device_key: &str) -> Result<(), Error> {
        self.get_device(caller, product_key, device_key).await?;
        let record = self
            .device_record(caller, AuditAction::ProductDeviceDelete, product_key, device_key)
            .await?;
        self.store
            .delete_product_device(product_key, device_key, &[record], self.clock.now())
            .await
            .map_err(not_found_as("device"))?;
        self.changes.product_device_changed(product_key, device_key).await;
        Ok(())
    }

    /// HTTPS dynamic registration: a registered, active, not yet activated device of an
    /// active product with dynamic activation proves it holds the product secret and gets
    /// its device secret. The device then counts as activated.
    pub async fn register(&self, r: &Registration) -> Result<(String, String, String), RegisterRefusal> {
        for (value, what) in [
            (&r.product_key, "productKey"),
            (&r.device_name, "deviceName"),
            (&r.random, "random"),
            (&r.sign_method, "signMethod"),
            (&r.sign, "sign"),
        ] {
            if value.is_empty() || value.len() > 256 || value.chars().any(char::is_control) {
                return Err(RegisterRefusal::BadRequest(what));
            }
        }
        let Some(method) = SignMethod::aliyun(&r.sign_method) else {
            return Err(RegisterRefusal::BadRequest("signMethod"));
        };
        if ProductKey::parse(&r.product_key).is_err() || DeviceKey::parse(&r.device_name).is_err() {
            return Err(RegisterRefusal::Denied);
        }
        // Only failures count, per product and address: product keys are public, so a
        // limit anyone can spend would let anyone block a product's registrations.
        let limit_key = format!(
            "{}|{}",
            r.product_key,
            r.peer.map(|p| p.to_string()).unwrap_or_default()
        );
        self.registrations
            .check(&limit_key)
            .map_err(|_| RegisterRefusal::RateLimited)?;
        let outcome = self.try_register(r, method).await;
        if outcome == Err(RegisterRefusal::Denied) {
            let _ = self.registrations.take(&limit_key);
        }
        outcome
    }

    async fn try_register(
        &self,
        r: &Registration,
        method: SignMethod,
    ) -> Result<(String, String, String), RegisterRefusal> {
        let unavailable = |e: StorageError| match e {
            StorageError::NotFound => RegisterRefusal::Denied,
            other => {
                tracing::warn!(error = %other, "dynamic registration could not read the database");
                RegisterRefusal::Unavailable
            }
        };
        let product = self.store.product(&r.product_key).await.map_err(unavailable)?;
        let device = self
            .store
            .product_device(&r.product_key, &r.device_name)
            .await
            .map_err(unavailable)?;
        let open = |context: String, sealed: &[u8]| {
            self.master
                .open(&context, sealed)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
        };
        let product_secret = open(
            sign::product_secret_context(&product.product_key),
            &product.sealed_secret,
        );
        let device_secret = open(
            sign::device_secret_context(&device.product_key, &device.device_key),
            &device.sealed_secret,
        );
        let (Some(product_secret), Some(device_secret)) = (product_secret, device_secret) else {
            return Err(RegisterRefusal::Denied);
        };
        let content = sign::content(&[
            ("deviceName", &r.device_name),
            ("productKey", &r.product_key),
            ("random", &r.random),
        ]);
        let signed = method.verify(&product_secret, &content, &r.sign);
        if !(signed
            && product.is_active
            && product.dynamic_activation
            && device.is_active
            && device.activated_at.is_none())
        {
            return Err(RegisterRefusal::Denied);
        }
        match self
            .store
            .mark_product_device_activated(
                &r.product_key,
                &r.device_name,
                &[activation_record(
                    &r.product_key,
                    &r.device_name,
                    &product.enterprise,
                    "https",
                )],
                self.clock.now(),
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(RegisterRefusal::Denied),
            Err(e) => return Err(unavailable(e)),
        }
        self.changes
            .product_device_changed(&r.product_key, &r.device_name)
            .await;
        tracing::info!(product_key = %r.product_key, device_key = %r.device_name, "sign device registered itself over HTTPS");
        Ok((product.product_key, device.device_key, device_secret))
    }
}

/// The audit record of a sign-based device activating itself (its secret handed out).
pub fn activation_record(
    product_key: &str,
    device_key: &str,
    enterprise: &str,
    via: &str,
) -> fleetca_storage::NewAudit {
    let mut record = audit::system(
        AuditAction::ProductDeviceActivate,
        "product_device",
        &format!("{product_key}/{device_key}"),
        Some(enterprise),
        json!({"via": via}),
    );
    record.actor = format!("{product_key}/{device_key}").chars().take(64).collect();
    record.role = "device".into();
    record
}
