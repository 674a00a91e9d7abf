//! Devices: provisioning with an HA1 (computed from a password, given, or generated),
//! listing, enabling/disabling, credential rotation and bulk provisioning.
//!
//! The HA1 is the device's secret: sealed under the master key, never returned after the
//! response that created it, never logged. A manager manages the devices whose tenant is
//! its enterprise; an API key manages none (the handlers' extractors keep API keys out).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use fleetca_ca::crl::Reason;
use fleetca_ca::{MasterKey, device};
use fleetca_storage::certificates::CertificateFilter;
use fleetca_storage::devices::{DeviceFilter, DevicePatch, NewDevice};
use fleetca_storage::{Certificate, Device, StorageError, Store};
use uuid::Uuid;

use crate::domain::AuditAction;
use crate::domain::{
    Description, DeviceId, FieldErrors, Listing, PageRequest, Principal, Problems, Realm, Secret, Tenant,
};
use crate::outbox::audit;
use crate::outbox::changes::Changes;
use crate::pki::certificates::{Record, Status};
use crate::support::Error;
use crate::support::clock::Clock;
use crate::support::error::not_found_as;
use serde_json::json;

/// How a device's HA1 is set.
#[derive(Debug)]
pub enum DeviceCredential {
    /// HA1 = MD5(device_id:realm:password); the password (8–256 characters) is then forgotten.
    Password(Secret),
    /// An HA1 given as 32 hex characters.
    Ha1(Secret),
    /// fleetca generates a strong password and returns it once.
    Generate,
}

impl DeviceCredential {
    /// From the optional `password` and `ha1` fields of a request; errors are keyed by field.
    pub fn parse(password: Option<String>, ha1: Option<String>, problems: &mut Problems) -> Self {
        match (password, ha1) {
            (Some(_), Some(_)) => {
                problems.add("password", "give either password or ha1, not both");
                Self::Generate
            }
            (Some(p), None) => {
                if !(8..=256).contains(&p.chars().count()) {
                    problems.add("password", "must be 8 to 256 characters");
                }
                Self::Password(Secret::new(p))
            }
            (None, Some(h)) => {
                if !fleetca_ca::device::is_ha1(&h) {
                    problems.add("ha1", "must be 32 hex characters (an MD5 digest)");
                }
                Self::Ha1(Secret::new(h))
            }
            (None, None) => Self::Generate,
        }
    }
}

/// A generated password and its HA1, shown once.
#[derive(Debug)]
pub struct Generated {
    pub password: String,
    pub ha1: String,
}

/// A validated device to provision.
#[derive(Debug)]
pub struct DeviceInput {
    pub tenant: Tenant,
    pub device_id: DeviceId,
    pub realm: Option<Realm>,
    pub description: Option<Description>,
    pub credential: DeviceCredential,
}

/// A validated change of a device.
#[derive(Debug, Default)]
pub struct DeviceChange {
    pub is_active: Option<bool>,
    pub description: Option<Description>,
}

/// A provisioned device, with the generated password and HA1 when fleetca made them.
#[derive(Debug)]
pub struct Provisioned {
    pub device: Device,
    pub generated: Option<Generated>,
}

/// The device flows.
pub struct DeviceService {
    store: Store,
    master: Arc<MasterKey>,
    changes: Arc<Changes>,
    clock: Arc<dyn Clock>,
}

fn out_of_scope(caller: &Principal) -> String {
    format!(
        "you may only provision devices of your enterprise {:?}",
        caller.enterprise
    )
}

impl DeviceService {
    pub fn new(store: Store, master: Arc<MasterKey>, changes: Arc<Changes>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            master,
            changes,
            clock,
        }
    }

    /// The sealed HA1 for a device, and the password and HA1 to show when generated.
    fn seal(
        &self,
        tenant: &str,
        device_id: &str,
        realm: &str,
        credential: &DeviceCredential,
    ) -> Result<(Vec<u8>, Option<Generated>), Error> {
        let (ha1, generated) = match credential {
            DeviceCredential::Password(p) => (device::ha1(device_id, realm, p.expose()), None),
            DeviceCredential::Ha1(h) => (h.expose().to_ascii_lowercase(), None),
            DeviceCredential::Generate => {
                let password = device::generate_password()?;
                let ha1 = device::ha1(device_id, realm, &password);
                (ha1.clone(), Some(Generated { password, ha1 }))
            }
        };
        let sealed = self
            .master
            .seal(&device::ha1_seal_context(tenant, device_id), ha1.as_bytes())?;
        Ok((sealed, generated))
    }

    fn prepare(&self, input: DeviceInput) -> Result<(NewDevice, Option<Generated>), Error> {
        let tenant = input.tenant.into_inner();
        let device_id = input.device_id.into_inner();
        let realm = input.realm.map_or_else(|| tenant.clone(), Realm::into_inner);
        let (sealed_ha1, generated) = self.seal(&tenant, &device_id, &realm, &input.credential)?;
        Ok((
            NewDevice {
                tenant,
                device_id,
                realm,
                sealed_ha1,
                description: input.description.map(Description::into_inner),
            },
            generated,
        ))
    }

    /// Provisions one device.
    pub async fn create(&self, caller: &Principal, input: DeviceInput) -> Result<Provisioned, Error> {
        if !caller.manages(input.tenant.as_str()) {
            return Err(Error::Forbidden(format!(
                "You may only provision devices of your enterprise {:?}.",
                caller.enterprise
            )));
        }
        let (new, generated) = self.prepare(input)?;
        let record = audit::by(
            caller,
            AuditAction::DeviceCreate,
            "device",
            &format!("{}/{}", new.tenant, new.device_id),
            Some(&new.tenant),
            json!({"realm": new.realm, "generated_password": generated.is_some()}),
        );
        let device = self
            .store
            .create_device(new, &[record], self.clock.now())
            .await
            .map_err(|e| match e {
                StorageError::Conflict(_) => {
                    Error::Conflict("A device with this device_id already exists in this tenant.".into())
                }
                other => other.into(),
            })?;
        tracing::info!(tenant = %device.tenant, device_id = %device.device_id, by = %caller.username, "device provisioned");
        Ok(Provisioned { device, generated })
    }

    /// Provisions many devices, all or nothing. Rows outside the caller's scope are refused
    /// as such, without a word on whether they exist; duplicates within the request and
    /// rows that exist already are refused by row.
    pub async fn bulk(&self, caller: &Principal, rows: Vec<DeviceInput>) -> Result<Vec<Provisioned>, Error> {
        let mut invalid = FieldErrors::new();
        let mut seen = HashMap::new();
        let mut in_scope = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let key = (row.tenant.as_str().to_owned(), row.device_id.as_str().to_owned());
            if !caller.manages(&key.0) {
                invalid
                    .entry(format!("{i}.tenant"))
                    .or_default()
                    .push(out_of_scope(caller));
                continue;
            }
            if let Some(first) = seen.insert(key.clone(), i) {
                invalid
                    .entry(format!("{i}.device_id"))
                    .or_default()
                    .push(format!("duplicates row {first} of this request"));
            }
            in_scope.push((i, key));
        }
        let keys: Vec<(String, String)> = in_scope.iter().map(|(_, k)| k.clone()).collect();
        let existing: HashSet<(String, String)> = self.store.existing_devices(&keys).await?.into_iter().collect();
        let mut conflicts = FieldErrors::new();
        for (i, key) in &in_scope {
            if existing.contains(key) {
                conflicts
                    .entry(format!("{i}.device_id"))
                    .or_default()
                    .push("a device with this device_id already exists in this tenant".into());
            }
        }
        if !invalid.is_empty() {
            for (k, v) in conflicts {
                invalid.entry(k).or_default().extend(v);
            }
            return Err(Error::Invalid(invalid));
        }
        if !conflicts.is_empty() {
            return Err(Error::ConflictRows(
                "Some devices already exist; nothing was written. See `errors` for the rows.".into(),
                conflicts,
            ));
        }
        let mut new = Vec::with_capacity(rows.len());
        let mut generated = Vec::with_capacity(rows.len());
        for row in rows {
            let (d, g) = self.prepare(row)?;
            new.push(d);
            generated.push(g);
        }
        let now = self.clock.now();
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
        let records: Vec<_> = new
            .iter()
            .map(|d| {
                audit::by(
                    caller,
                    AuditAction::DeviceCreate,
                    "device",
                    &format!("{}/{}", d.tenant, d.device_id),
                    Some(&d.tenant),
                    json!({"bulk": true, "realm": d.realm}),
                )
            })
            .collect();
        self.store
            .create_devices(new, &records, now)
            .await
            .map_err(|e| match e {
                StorageError::Conflict(_) => Error::Conflict(
                    "A device in this request was created by someone else meanwhile; nothing was written. Retry."
                        .into(),
                ),
                other => other.into(),
            })?;
        // New devices cannot be in any cache (unknown devices are not cached), so there is
        // nothing to invalidate here.
        tracing::info!(count = shown.len(), by = %caller.username, "devices provisioned in bulk");
        Ok(shown
            .into_iter()
            .zip(generated)
            .map(|(device, generated)| Provisioned { device, generated })
            .collect())
    }

    /// A device the caller manages.
    pub async fn get(&self, caller: &Principal, tenant: &str, device_id: &str) -> Result<Device, Error> {
        if !caller.manages(tenant) {
            return Err(Error::NotFound("device"));
        }
        self.store
            .device(tenant, device_id)
            .await
            .map_err(not_found_as("device"))
    }

    /// One page of the devices the caller manages.
    pub async fn list(
        &self,
        caller: &Principal,
        mut filter: DeviceFilter,
        page: PageRequest,
    ) -> Result<Listing<Device>, Error> {
        if !caller.pin_enterprise(&mut filter.tenant) {
            return Ok(Listing::empty());
        }
        Ok(self.store.list_devices(&filter, page.storage()).await?.into())
    }

    /// Enables or disables a device or changes its description.
    pub async fn change(
        &self,
        caller: &Principal,
        tenant: &str,
        device_id: &str,
        change: DeviceChange,
    ) -> Result<Device, Error> {
        self.get(caller, tenant, device_id).await?;
        let patch = DevicePatch {
            is_active: change.is_active,
            description: change.description.map(|d| Some(d.into_inner())),
            credentials: None,
        };
        let action = match change.is_active {
            Some(false) => AuditAction::DeviceDisable,
            Some(true) => AuditAction::DeviceEnable,
            None => AuditAction::DeviceUpdate,
        };
        let record = audit::by(
            caller,
            action,
            "device",
            &format!("{tenant}/{device_id}"),
            Some(tenant),
            json!({"is_active": change.is_active, "description_changed": patch.description.is_some()}),
        );
        let device = self
            .store
            .update_device(tenant, device_id, patch, &[record], self.clock.now())
            .await
            .map_err(not_found_as("device"))?;
        self.changes.device_changed(tenant, device_id).await;
        if change.is_active == Some(false) {
            self.revoke_all(caller, tenant, device_id, Reason::PrivilegeWithdrawn)
                .await?;
        }
        Ok(device)
    }

    /// Revokes every certificate of a device (it was disabled or deleted) and returns once
    /// the CRL lists them.
    async fn revoke_all(&self, caller: &Principal, tenant: &str, device_id: &str, reason: Reason) -> Result<(), Error> {
        let ids = self
            .store
            .device_certificate_ids(&format!("{tenant}/{device_id}"))
            .await?;
        let revoked = self
            .store
            .revoke_certificates(
                &ids,
                reason.name(),
                &audit::revoked_by(caller, Some(tenant), reason.name()),
                self.clock.now(),
            )
            .await?;
        if !revoked.is_empty() {
            self.changes.revoked(&revoked).await?;
            tracing::info!(%tenant, %device_id, count = revoked.len(), %reason, "device certificates revoked");
        }
        Ok(())
    }

    /// One page of a device's certificates (enrolled over EST), newest first.
    pub async fn certificates(
        &self,
        caller: &Principal,
        tenant: &str,
        device_id: &str,
        page: PageRequest,
    ) -> Result<Listing<Record>, Error> {
        self.get(caller, tenant, device_id).await?;
        let filter = CertificateFilter {
            device: Some(format!("{tenant}/{device_id}")),
            ..Default::default()
        };
        let now = self.clock.now();
        let listing: Listing<Certificate> = self.store.list_certificates(&filter, page.storage(), now).await?.into();
        Ok(listing.map(|c| Record {
            status: Status::of(&c, now),
            certificate: c,
        }))
    }

    /// Revokes one certificate of a device; returns once the CRL lists it. Revoking a
    /// revoked certificate returns it unchanged.
    pub async fn revoke_certificate(
        &self,
        caller: &Principal,
        tenant: &str,
        device_id: &str,
        id: Uuid,
        reason: Reason,
    ) -> Result<Record, Error> {
        self.get(caller, tenant, device_id).await?;
        let device = format!("{tenant}/{device_id}");
        match self.store.certificate(id).await {
            Ok(c) if c.device.as_deref() == Some(device.as_str()) => {}
            Ok(_) | Err(StorageError::NotFound) => return Err(Error::NotFound("certificate")),
            Err(e) => return Err(e.into()),
        }
        let record = audit::by(
            caller,
            AuditAction::CertificateRevoke,
            "certificate",
            &id.to_string(),
            Some(tenant),
            json!({"device": device, "reason": reason.name()}),
        );
        let (cert, changed) = self
            .store
            .revoke_certificate(id, reason.name(), &[record], self.clock.now())
            .await?;
        if changed {
            self.changes.revoked(std::slice::from_ref(&cert)).await?;
            tracing::info!(certificate_id = %cert.id, %tenant, %device_id, %reason, by = %caller.username, "device certificate revoked");
        }
        Ok(Record {
            status: Status::of(&cert, self.clock.now()),
            certificate: cert,
        })
    }

    /// Replaces a device's HA1; the old credentials stop working at once.
    pub async fn rotate(
        &self,
        caller: &Principal,
        tenant: &str,
        device_id: &str,
        realm: Option<Realm>,
        credential: DeviceCredential,
    ) -> Result<Provisioned, Error> {
        let current = self.get(caller, tenant, device_id).await?;
        let realm = realm.map_or(current.realm, Realm::into_inner);
        let (sealed, generated) = self.seal(tenant, device_id, &realm, &credential)?;
        let patch = DevicePatch {
            credentials: Some((realm, sealed)),
            ..Default::default()
        };
        let record = audit::by(
            caller,
            AuditAction::DeviceRotate,
            "device",
            &format!("{tenant}/{device_id}"),
            Some(tenant),
            json!({"generated_password": generated.is_some()}),
        );
        let device = self
            .store
            .update_device(tenant, device_id, patch, &[record], self.clock.now())
            .await
            .map_err(not_found_as("device"))?;
        self.changes.device_changed(tenant, device_id).await;
        tracing::info!(%tenant, %device_id, by = %caller.username, "device credentials rotated");
        Ok(Provisioned { device, generated })
    }

    /// Deletes a device.
    pub async fn delete(&self, caller: &Principal, tenant: &str, device_id: &str) -> Result<(), Error> {
        self.get(caller, tenant, device_id).await?;
        let record = audit::by(
            caller,
            AuditAction::DeviceDelete,
            "device",
            &format!("{tenant}/{device_id}"),
            Some(tenant),
            json!({}),
        );
        self.store
            .delete_device(tenant, device_id, &[record], self.clock.now())
            .await
            .map_err(not_found_as("device"))?;
        self.changes.device_changed(tenant, device_id).await;
        self.revoke_all(caller, tenant, device_id, Reason::CessationOfOperation)
            .await?;
        tracing::info!(%tenant, %device_id, by = %caller.username, "device deleted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{Kit, admin, manager};

    fn row(tenant: &str, id: &str) -> DeviceInput {
        DeviceInput {
            tenant: Tenant::parse(tenant).unwrap(),
            device_id: DeviceId::parse(id).unwrap(),
            realm: None,
            description: None,
            credential: DeviceCredential::Generate,
        }
    }

    #[tokio::test]
    async fn bulk_rows_outside_the_scope_say_nothing_of_whether_they_exist() {
        let kit = Kit::new().await;
        kit.devices.create(&admin(), row("globex", "g-1")).await.unwrap();
        let err = kit
            .devices
            .bulk(
                &manager("acme"),
                vec![row("acme", "a-1"), row("globex", "g-1"), row("globex", "g-2")],
            )
            .await
            .unwrap_err();
        let Error::Invalid(errors) = err else { panic!("{err:?}") };
        assert_eq!(
            errors["1.tenant"], errors["2.tenant"],
            "existing and missing rows read the same"
        );
        assert!(!errors.contains_key("1.device_id"));
        assert!(
            kit.devices.get(&admin(), "acme", "a-1").await.is_err(),
            "nothing written"
        );
    }

    #[tokio::test]
    async fn bulk_is_all_or_nothing_with_conflicts_by_row() {
        let kit = Kit::new().await;
        kit.devices.create(&admin(), row("acme", "a-2")).await.unwrap();
        let err = kit
            .devices
            .bulk(&admin(), vec![row("acme", "a-3"), row("acme", "a-2")])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::ConflictRows(_, rows) if rows.contains_key("1.device_id")),
            "{err:?}"
        );
        assert!(kit.devices.get(&admin(), "acme", "a-3").await.is_err());
        let created = kit
            .devices
            .bulk(&admin(), vec![row("acme", "a-3"), row("acme", "a-4")])
            .await
            .unwrap();
        assert!(
            created
                .iter()
                .all(|p| p.generated.as_ref().is_some_and(|g| g.password.len() >= 16))
        );
    }

    #[tokio::test]
    async fn a_manager_sees_only_its_tenants_devices() {
        let kit = Kit::new().await;
        kit.devices.create(&admin(), row("globex", "g-3")).await.unwrap();
        assert!(matches!(
            kit.devices.get(&manager("acme"), "globex", "g-3").await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            kit.devices.create(&manager("acme"), row("globex", "g-4")).await,
            Err(Error::Forbidden(_))
        ));
    }
}
