//! Devices: provisioning with an HA1 (computed from a password, given, or generated),
//! listing, enabling/disabling, credential rotation and bulk provisioning.
//!
//! The HA1 is the device's secret: sealed under the master key, never returned after the
//! response that created it, never logged. A manager manages the devices whose tenant is
//! its enterprise; an API key manages none.

use fleetca_ca::device;
use fleetca_storage::devices::{DeviceFilter, DevicePatch, NewDevice};
use fleetca_storage::{Device, StorageError};

use crate::domain::{PageRequest, Role};
use crate::error::ApiError;
use crate::service::auth::Principal;
use crate::state::AppState;

/// A generated password and its HA1, shown once.
pub type Generated = (String, String);

/// How a device's HA1 is set.
#[derive(Debug)]
pub enum Credential {
    /// HA1 = MD5(device_id:realm:password); the password is then forgotten.
    Password(crate::config::Secret),
    /// An HA1 given as 32 hex characters.
    Ha1(crate::config::Secret),
    /// fleetca generates a strong password and returns it once.
    Generate,
}

/// A validated device to provision.
#[derive(Debug)]
pub struct DeviceInput {
    pub tenant: String,
    pub device_id: String,
    pub realm: Option<String>,
    pub description: Option<String>,
    pub credential: Credential,
}

/// A provisioned device, with the generated password and HA1 when fleetca made them.
pub struct Provisioned {
    pub device: Device,
    pub generated: Option<(String, String)>,
}

fn forbidden_for_service(caller: &Principal) -> Result<(), ApiError> {
    if caller.role == Role::Service {
        return Err(ApiError::Forbidden("An API key cannot manage devices.".into()));
    }
    Ok(())
}

/// The sealed HA1 for a device, and the password and HA1 to show when generated.
fn seal(
    state: &AppState,
    tenant: &str,
    device_id: &str,
    realm: &str,
    credential: &Credential,
) -> Result<(Vec<u8>, Option<Generated>), ApiError> {
    let (ha1, generated) = match credential {
        Credential::Password(p) => (device::ha1(device_id, realm, p.expose()), None),
        Credential::Ha1(h) => (h.expose().to_ascii_lowercase(), None),
        Credential::Generate => {
            let password = device::generate_password()?;
            let ha1 = device::ha1(device_id, realm, &password);
            (ha1.clone(), Some((password, ha1)))
        }
    };
    let sealed = state
        .master
        .seal(&device::ha1_seal_context(tenant, device_id), ha1.as_bytes())?;
    Ok((sealed, generated))
}

fn prepare(
    state: &AppState,
    caller: &Principal,
    input: DeviceInput,
) -> Result<(NewDevice, Option<(String, String)>), ApiError> {
    if !caller.manages(&input.tenant) {
        return Err(ApiError::Forbidden(format!(
            "You may only provision devices of your enterprise {:?}.",
            caller.enterprise
        )));
    }
    let realm = input.realm.unwrap_or_else(|| input.tenant.clone());
    let (sealed_ha1, generated) = seal(state, &input.tenant, &input.device_id, &realm, &input.credential)?;
    Ok((
        NewDevice {
            tenant: input.tenant,
            device_id: input.device_id,
            realm,
            sealed_ha1,
            description: input.description,
        },
        generated,
    ))
}

fn conflict() -> ApiError {
    ApiError::Conflict("A device with this device_id already exists in this tenant.".into())
}

/// Provisions one device.
pub async fn create(state: &AppState, caller: &Principal, input: DeviceInput) -> Result<Provisioned, ApiError> {
    forbidden_for_service(caller)?;
    let (new, generated) = prepare(state, caller, input)?;
    let device = state
        .store
        .create_device(new, fleetca_storage::now())
        .await
        .map_err(|e| match e {
            StorageError::Conflict(_) => conflict(),
            other => other.into(),
        })?;
    tracing::info!(tenant = %device.tenant, device_id = %device.device_id, by = %caller.username, "device provisioned");
    Ok(Provisioned { device, generated })
}

/// The result of a bulk provisioning: all rows, or per-row errors and nothing written.
pub enum BulkOutcome {
    Created(Vec<Provisioned>),
    /// Per-row errors as (row, field, message); `conflicts_only` when every problem is a
    /// device that already exists (the request itself was well-formed).
    Rejected {
        rows: Vec<(usize, String, String)>,
        conflicts_only: bool,
    },
}

/// Provisions many devices, all or nothing. Rows are already validated one by one; this
/// checks scope, duplicates within the request and against the database.
pub async fn bulk(state: &AppState, caller: &Principal, rows: Vec<DeviceInput>) -> Result<BulkOutcome, ApiError> {
    forbidden_for_service(caller)?;
    let mut errors = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        if !caller.manages(&row.tenant) {
            errors.push((
                i,
                "tenant".to_owned(),
                format!(
                    "you may only provision devices of your enterprise {:?}",
                    caller.enterprise
                ),
            ));
        }
        if let Some(first) = seen.insert((row.tenant.clone(), row.device_id.clone()), i) {
            errors.push((
                i,
                "device_id".to_owned(),
                format!("duplicates row {first} of this request"),
            ));
        }
    }
    let keys: Vec<(String, String)> = rows.iter().map(|r| (r.tenant.clone(), r.device_id.clone())).collect();
    let existing: std::collections::HashSet<(String, String)> =
        state.store.existing_devices(&keys).await?.into_iter().collect();
    let conflicts_only = errors.is_empty();
    for (i, key) in keys.iter().enumerate() {
        if existing.contains(key) {
            errors.push((
                i,
                "device_id".to_owned(),
                "a device with this device_id already exists in this tenant".to_owned(),
            ));
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.0);
        return Ok(BulkOutcome::Rejected {
            rows: errors,
            conflicts_only,
        });
    }
    let mut new = Vec::with_capacity(rows.len());
    let mut generated = Vec::with_capacity(rows.len());
    for row in rows {
        let (d, g) = prepare(state, caller, row)?;
        new.push(d);
        generated.push(g);
    }
    let now = fleetca_storage::now();
    let shown: Vec<Device> = new
        .iter()
        .map(|d| Device {
            id: uuid::Uuid::nil(),
            tenant: d.tenant.clone(),
            device_id: d.device_id.clone(),
            realm: d.realm.clone(),
            sealed_ha1: Vec::new(),
            description: d.description.clone(),
            is_active: true,
            created_at: now,
            updated_at: now,
        })
        .collect();
    state.store.create_devices(new, now).await.map_err(|e| match e {
        StorageError::Conflict(_) => ApiError::Conflict(
            "A device in this request was created by someone else meanwhile; nothing was written. Retry.".into(),
        ),
        other => other.into(),
    })?;
    // New devices cannot be in any cache (unknown devices are not cached), so there is
    // nothing to invalidate here.
    tracing::info!(count = shown.len(), by = %caller.username, "devices provisioned in bulk");
    Ok(BulkOutcome::Created(
        shown
            .into_iter()
            .zip(generated)
            .map(|(device, generated)| Provisioned { device, generated })
            .collect(),
    ))
}

/// Loads a device the caller manages.
pub async fn get(state: &AppState, caller: &Principal, tenant: &str, device_id: &str) -> Result<Device, ApiError> {
    forbidden_for_service(caller)?;
    if !caller.manages(tenant) {
        return Err(ApiError::NotFound("device"));
    }
    state.store.device(tenant, device_id).await.map_err(|e| match e {
        StorageError::NotFound => ApiError::NotFound("device"),
        other => other.into(),
    })
}

/// One page of the devices the caller manages.
pub async fn list(
    state: &AppState,
    caller: &Principal,
    mut filter: DeviceFilter,
    page: PageRequest,
) -> Result<(Vec<Device>, u64), ApiError> {
    forbidden_for_service(caller)?;
    if !caller.pin_enterprise(&mut filter.tenant) {
        return Ok((Vec::new(), 0));
    }
    Ok(state.store.list_devices(&filter, page.storage()).await?)
}

/// Enables/disables a device or changes its description.
pub async fn patch(
    state: &AppState,
    caller: &Principal,
    tenant: &str,
    device_id: &str,
    patch: DevicePatch,
) -> Result<Device, ApiError> {
    get(state, caller, tenant, device_id).await?;
    let device = state
        .store
        .update_device(tenant, device_id, patch, fleetca_storage::now())
        .await?;
    state.device_changed(tenant, device_id).await;
    Ok(device)
}

/// Replaces a device's HA1; the old credentials stop working at once.
pub async fn rotate(
    state: &AppState,
    caller: &Principal,
    tenant: &str,
    device_id: &str,
    realm: Option<String>,
    credential: Credential,
) -> Result<Provisioned, ApiError> {
    let current = get(state, caller, tenant, device_id).await?;
    let realm = realm.unwrap_or(current.realm);
    let (sealed, generated) = seal(state, tenant, device_id, &realm, &credential)?;
    let patch = DevicePatch {
        credentials: Some((realm, sealed)),
        ..Default::default()
    };
    let device = state
        .store
        .update_device(tenant, device_id, patch, fleetca_storage::now())
        .await?;
    state.device_changed(tenant, device_id).await;
    tracing::info!(%tenant, %device_id, by = %caller.username, "device credentials rotated");
    Ok(Provisioned { device, generated })
}

/// Deletes a device.
pub async fn delete(state: &AppState, caller: &Principal, tenant: &str, device_id: &str) -> Result<(), ApiError> {
    get(state, caller, tenant, device_id).await?;
    state.store.delete_device(tenant, device_id).await?;
    state.device_changed(tenant, device_id).await;
    tracing::info!(%tenant, %device_id, by = %caller.username, "device deleted");
    Ok(())
}
