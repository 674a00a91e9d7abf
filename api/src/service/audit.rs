//! Audit records in domain words: who (a [`Principal`], or `system` for scheduled work, or
//! an unauthenticated caller's claim), did what (`certificate.revoke`, …) to which target,
//! with details that hold no secret. Storage appends them in the transaction of the change
//! (see `fleetca_storage::audit`); the audit log's reading flows live here too.

use std::sync::Arc;

use fleetca_storage::audit::{AuditFilter, ChainBreak};
use fleetca_storage::{AuditRecord, NewAudit, Store};
use serde_json::Value;

use super::Error;
use crate::domain::{Listing, PageRequest, Principal, RequestContext, Role};

/// The webhook event a change announces (see `webhooks`). An API key's deactivation is
/// announced by the user service, which knows the user is a key.
pub fn announced(action: &str) -> Option<String> {
    let event = match action {
        "certificate.create" | "certificate.enroll" => "certificate.issued",
        "certificate.renew" => "certificate.renewed",
        "certificate.revoke" => "certificate.revoked",
        "device.disable" | "product_device.disable" => "device.disabled",
        "device.delete" | "product_device.delete" => "device.deleted",
        _ => return None,
    };
    Some(event.to_owned())
}

/// Whether a change ends the live MQTT sessions of its target (see `disconnects`). A product
/// disabled is marked by the product service, which knows the change disables it.
pub fn ends_sessions(action: &str) -> bool {
    matches!(
        action,
        "certificate.revoke"
            | "user.deactivate"
            | "user.rotate_token"
            | "device.disable"
            | "device.delete"
            | "device.rotate"
            | "product_device.disable"
            | "product_device.delete"
            | "product_device.rotate_secret"
            | "product.delete"
            | "product.rotate_secret"
    )
}

/// A record of `caller` doing `action` to a target.
pub fn by(
    caller: &Principal,
    action: &str,
    target_kind: &str,
    target_id: &str,
    enterprise: Option<&str>,
    details: Value,
) -> NewAudit {
    NewAudit {
        actor_id: Some(caller.id),
        actor: caller.username.clone(),
        role: caller.role.as_str().to_owned(),
        action: action.to_owned(),
        target_kind: target_kind.to_owned(),
        target_id: target_id.to_owned(),
        enterprise: enterprise.map(str::to_owned),
        request_id: caller.context.request_id.clone(),
        client_addr: caller.context.client_addr.clone(),
        outcome: "success".into(),
        event: announced(action),
        ends_sessions: ends_sessions(action),
        details,
    }
}

/// A record of a device acting with its own credential (EST enrollment, renewal).
pub fn by_device(tenant: &str, device_id: &str, action: &str, details: Value) -> NewAudit {
    NewAudit {
        actor_id: None,
        actor: format!("{tenant}/{device_id}").chars().take(64).collect(),
        role: "device".into(),
        action: action.to_owned(),
        target_kind: "certificate".into(),
        target_id: String::new(),
        enterprise: Some(tenant.to_owned()),
        request_id: None,
        client_addr: None,
        outcome: "success".into(),
        event: announced(action),
        ends_sessions: ends_sessions(action),
        details,
    }
}

/// A record of fleetca's own scheduled work.
pub fn system(action: &str, target_kind: &str, target_id: &str, enterprise: Option<&str>, details: Value) -> NewAudit {
    NewAudit {
        actor_id: None,
        actor: "system".into(),
        role: "system".into(),
        action: action.to_owned(),
        target_kind: target_kind.to_owned(),
        target_id: target_id.to_owned(),
        enterprise: enterprise.map(str::to_owned),
        request_id: None,
        client_addr: None,
        outcome: "success".into(),
        event: announced(action),
        ends_sessions: ends_sessions(action),
        details,
    }
}

/// A record of a refused sign-in or token (`actor` is what the caller claimed, if anything).
pub fn failure(actor: &str, action: &str, context: &RequestContext) -> NewAudit {
    NewAudit {
        actor_id: None,
        actor: actor.chars().take(64).collect(),
        role: "anonymous".into(),
        action: action.to_owned(),
        target_kind: "session".into(),
        target_id: String::new(),
        enterprise: None,
        request_id: context.request_id.clone(),
        client_addr: context.client_addr.clone(),
        outcome: "failure".into(),
        details: Value::Object(Default::default()),
        event: None,
        ends_sessions: false,
    }
}

/// Reading the audit log.
pub struct AuditService {
    store: Store,
    clock: Arc<dyn super::clock::Clock>,
}

impl AuditService {
    pub fn new(store: Store, clock: Arc<dyn super::clock::Clock>) -> Self {
        Self { store, clock }
    }

    /// Pins the filter to what the caller may read: admins all, managers their enterprise,
    /// API keys nothing.
    fn scope(caller: &Principal, filter: &mut AuditFilter) -> Result<bool, Error> {
        match caller.role {
            Role::Admin => Ok(true),
            Role::Manager => Ok(caller.pin_enterprise(&mut filter.enterprise)),
            Role::Service => Err(Error::Forbidden("API keys may not read the audit log.".into())),
        }
    }

    /// One page, newest first.
    pub async fn list(
        &self,
        caller: &Principal,
        mut filter: AuditFilter,
        page: PageRequest,
    ) -> Result<Listing<AuditRecord>, Error> {
        if !Self::scope(caller, &mut filter)? {
            return Ok(Listing::empty());
        }
        Ok(self.store.list_audit(&filter, page.storage()).await?.into())
    }

    /// The next `limit` records after `after`, oldest first (exports).
    pub async fn after(
        &self,
        caller: &Principal,
        mut filter: AuditFilter,
        after: i64,
        limit: u64,
    ) -> Result<Vec<AuditRecord>, Error> {
        if !Self::scope(caller, &mut filter)? {
            return Ok(Vec::new());
        }
        Ok(self.store.audit_after(&filter, after, limit).await?)
    }

    /// Records a refused sign-in or token on its own.
    pub async fn failed(&self, record: NewAudit) {
        if let Err(e) = self.store.append_audit(&[record], self.clock.now()).await {
            tracing::warn!(error = %e, "could not record a failed sign-in in the audit log");
        }
    }

    /// Walks the chain (`fleetca audit verify`).
    pub async fn verify(&self) -> Result<Result<i64, ChainBreak>, Error> {
        Ok(self.store.verify_audit().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing::{Kit, admin, manager};

    #[tokio::test]
    async fn readers_see_their_scope_and_the_chain_checks_out() {
        let kit = Kit::new().await;
        kit.api_key("svc-a", "acme").await;
        kit.api_key("svc-g", "globex").await;
        let page = PageRequest::parse(None, None).unwrap();
        let all = kit.audit.list(&admin(), AuditFilter::default(), page).await.unwrap();
        assert_eq!(all.count, 2);
        let acme = kit
            .audit
            .list(&manager("acme"), AuditFilter::default(), page)
            .await
            .unwrap();
        assert_eq!(acme.count, 1);
        assert_eq!(acme.items[0].enterprise.as_deref(), Some("acme"));
        let (key, _) = kit.api_key("svc-reader", "acme").await;
        assert!(matches!(
            kit.audit
                .list(&Principal::from_user(&key), AuditFilter::default(), page)
                .await,
            Err(Error::Forbidden(_))
        ));
        assert_eq!(kit.audit.verify().await.unwrap(), Ok(3));
    }
}
