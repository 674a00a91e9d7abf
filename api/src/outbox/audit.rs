//! Audit records in domain words: who (a [`Principal`], or `system` for scheduled work, or
//! an unauthenticated caller's claim), did what (`certificate.revoke`, …) to which target,
//! with details that hold no secret. Storage appends them in the transaction of the change
//! (see `fleetca_storage::audit`); the audit log's reading flows live here too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleetca_storage::audit::{AuditFilter, ChainBreak};
use fleetca_storage::{AuditRecord, Certificate, NewAudit, Store};
use serde_json::Value;

use crate::domain::{AuditAction, Listing, PageRequest, Principal, RequestContext, Role};
use crate::support::Error;

/// A successful change's record, by `actor` (the caller's fields filled in by the callers
/// below); what it announces and whether it ends sessions follow from the action.
fn success(
    actor: &str,
    role: &str,
    action: AuditAction,
    target: (&str, &str),
    enterprise: Option<&str>,
    details: Value,
) -> NewAudit {
    NewAudit {
        actor_id: None,
        actor: actor.chars().take(64).collect(),
        role: role.to_owned(),
        action: action.as_str().to_owned(),
        target_kind: target.0.to_owned(),
        target_id: target.1.to_owned(),
        enterprise: enterprise.map(str::to_owned),
        request_id: None,
        client_addr: None,
        outcome: "success".into(),
        event: action.announces().map(|e| e.as_str().to_owned()),
        ends_sessions: action.ends_sessions(),
        details,
    }
}

/// A record of `caller` doing `action` to a target.
pub fn by(
    caller: &Principal,
    action: AuditAction,
    target_kind: &str,
    target_id: &str,
    enterprise: Option<&str>,
    details: Value,
) -> NewAudit {
    NewAudit {
        actor_id: Some(caller.id),
        actor: caller.username.clone(),
        request_id: caller.context.request_id.clone(),
        client_addr: caller.context.client_addr.clone(),
        ..success(
            "",
            caller.role.as_str(),
            action,
            (target_kind, target_id),
            enterprise,
            details,
        )
    }
}

/// A record of a device acting with its own credential (EST enrollment, renewal).
pub fn by_device(tenant: &str, device_id: &str, action: AuditAction, details: Value) -> NewAudit {
    let actor = format!("{tenant}/{device_id}");
    success(&actor, "device", action, ("certificate", ""), Some(tenant), details)
}

/// A record of fleetca's own scheduled work.
pub fn system(
    action: AuditAction,
    target_kind: &str,
    target_id: &str,
    enterprise: Option<&str>,
    details: Value,
) -> NewAudit {
    success(
        "system",
        "system",
        action,
        (target_kind, target_id),
        enterprise,
        details,
    )
}

/// The records of certificates revoked together, by the actor and request of `template`:
/// one `certificate.revoke` (announcing `certificate.revoked`) per certificate.
pub fn revocations(template: NewAudit, reason: &str) -> impl Fn(&[Certificate]) -> Vec<NewAudit> + Send + Sync {
    let reason = reason.to_owned();
    move |revoked| {
        revoked
            .iter()
            .map(|c| {
                let action = AuditAction::CertificateRevoke;
                NewAudit {
                    action: action.as_str().into(),
                    event: action.announces().map(|e| e.as_str().into()),
                    ends_sessions: action.ends_sessions(),
                    target_kind: "certificate".into(),
                    target_id: c.id.to_string(),
                    enterprise: Some(c.enterprise.clone()),
                    details: serde_json::json!({
                        "serial": c.serial,
                        "reason": reason,
                        "kind": c.kind,
                        "api_key_id": c.api_key_id,
                        "device": c.device,
                    }),
                    ..template.clone()
                }
            })
            .collect()
    }
}

/// [`revocations`] by `caller`, of certificates of `enterprise` (all of the caller's scope
/// when `None`).
pub fn revoked_by(
    caller: &Principal,
    enterprise: Option<&str>,
    reason: &str,
) -> impl Fn(&[Certificate]) -> Vec<NewAudit> + Send + Sync {
    let template = by(
        caller,
        AuditAction::CertificateRevoke,
        "certificate",
        "",
        enterprise,
        Value::Null,
    );
    revocations(template, reason)
}

/// A record of a refused sign-in or token (`actor` is what the caller claimed, if anything).
pub fn failure(actor: &str, action: AuditAction, context: &RequestContext) -> NewAudit {
    NewAudit {
        actor_id: None,
        actor: actor.chars().take(64).collect(),
        role: "anonymous".into(),
        action: action.as_str().to_owned(),
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

/// Failed authentications recorded one by one per [`FAILURE_WINDOW`], at most; the rest of
/// the window's are counted into one `auth.failures_suppressed` record at its end. Anyone can
/// send a bad token or password, and an audit append is a write transaction: unbounded, a
/// flood would grow the table without limit and queue every legitimate change behind it.
pub const FAILURES_PER_WINDOW: u32 = 20;
/// See [`FAILURES_PER_WINDOW`].
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
struct FailureBudget {
    /// When the current window began; `None` before the first failure.
    since: Option<Instant>,
    written: u32,
    /// Failures not written one by one in the current window, by action.
    suppressed: BTreeMap<String, u64>,
    /// A task will write the window's summary at its end.
    flush_scheduled: bool,
}

/// Reading the audit log.
pub struct AuditService {
    store: Store,
    clock: Arc<dyn crate::support::clock::Clock>,
    failures: Arc<Mutex<FailureBudget>>,
}

impl AuditService {
    pub fn new(store: Store, clock: Arc<dyn crate::support::clock::Clock>) -> Self {
        Self {
            store,
            clock,
            failures: Arc::default(),
        }
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
        metrics::counter!("fleetca_auth_failures_total", "action" => record.action.clone()).increment(1);
        let (write, schedule) = {
            let mut budget = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if budget.since.is_none_or(|s| s.elapsed() >= FAILURE_WINDOW) && !budget.flush_scheduled {
                *budget = FailureBudget {
                    since: Some(Instant::now()),
                    ..Default::default()
                };
            }
            if budget.written < FAILURES_PER_WINDOW {
                budget.written += 1;
                (true, None)
            } else {
                *budget.suppressed.entry(record.action.clone()).or_default() += 1;
                let first = !budget.flush_scheduled;
                budget.flush_scheduled = true;
                let left = FAILURE_WINDOW.saturating_sub(budget.since.map_or(Duration::ZERO, |s| s.elapsed()));
                (false, first.then_some(left))
            }
        };
        if let Some(left) = schedule {
            let (store, clock, failures) = (self.store.clone(), self.clock.clone(), self.failures.clone());
            tokio::spawn(async move {
                tokio::time::sleep(left).await;
                let suppressed = {
                    let mut budget = failures.lock().unwrap_or_else(|e| e.into_inner());
                    let counts = std::mem::take(&mut budget.suppressed);
                    *budget = FailureBudget::default();
                    counts
                };
                let record = NewAudit {
                    actor_id: None,
                    actor: "anonymous".into(),
                    role: "anonymous".into(),
                    action: AuditAction::AuthFailuresSuppressed.as_str().into(),
                    target_kind: "session".into(),
                    target_id: String::new(),
                    enterprise: None,
                    request_id: None,
                    client_addr: None,
                    outcome: "failure".into(),
                    details: serde_json::json!({
                        "window_seconds": FAILURE_WINDOW.as_secs(),
                        "recorded_one_by_one": FAILURES_PER_WINDOW,
                        "not_recorded_one_by_one": suppressed,
                    }),
                    event: None,
                    ends_sessions: false,
                };
                if let Err(e) = store.append_audit(&[record], clock.now()).await {
                    tracing::warn!(error = %e, "could not record the suppressed failures in the audit log");
                }
            });
        }
        if write && let Err(e) = self.store.append_audit(&[record], self.clock.now()).await {
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
    use crate::app::testing::{Kit, admin, manager};

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
