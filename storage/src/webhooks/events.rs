//! The webhook events a change announces, stored in the change's transaction (see
//! [`crate::outbox`]): one delivery row per endpoint that wants each.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::StorageError;
use crate::audit::NewAudit;
use crate::entity::webhook_deliveries::{ActiveModel as DeliveryModel, Entity as Deliveries};
use crate::entity::webhooks::{Column, Entity as Webhooks, Model as Webhook};

/// A delivery waiting for (another) attempt.
pub const PENDING: &str = "pending";
/// The receiver answered 2xx.
pub const DELIVERED: &str = "delivered";
/// Given up after the retry period.
pub const FAILED: &str = "failed";

/// An event to announce: its type, the enterprise it concerns (`None`: fleetca's own, for
/// endpoints of every enterprise only) and its data (no secrets).
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event_type: String,
    pub enterprise: Option<String>,
    pub data: Value,
}

impl Webhook {
    /// Whether this endpoint wants `event`.
    pub fn wants(&self, event: &NewEvent) -> bool {
        self.is_active && wanted(&self.events, self.enterprise.as_deref(), event)
    }
}

/// Whether an active endpoint of these comma-separated `events`, for `enterprise` (none:
/// every enterprise's and fleetca's own), wants `event`.
/// Written again in SQL by `fleetca_issue_batch` (migrations m20261207_000002, m20261207_000004:
/// both overloads): change them all.
pub(crate) fn wanted(events: &str, enterprise: Option<&str>, event: &NewEvent) -> bool {
    events.split(',').any(|e| e == event.event_type)
        && match (enterprise, &event.enterprise) {
            (None, _) => true,
            (Some(mine), Some(theirs)) => mine == theirs,
            (Some(_), None) => false,
        }
}

/// The Standard Webhooks body of an event: `{"type", "timestamp", "data"}`.
pub(crate) fn payload(event: &NewEvent, now: DateTime<Utc>) -> String {
    json!({
        "type": event.event_type,
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": event.data,
    })
    .to_string()
}

pub(crate) fn delivery(
    webhook_id: Uuid,
    event_id: &str,
    event: &NewEvent,
    payload: &str,
    now: DateTime<Utc>,
) -> DeliveryModel {
    DeliveryModel {
        webhook_id: Set(webhook_id),
        event_id: Set(event_id.to_owned()),
        event_type: Set(event.event_type.clone()),
        payload: Set(payload.to_owned()),
        status: Set(PENDING.into()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        lease_until: Set(None),
        last_status: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        delivered_at: Set(None),
        ..Default::default()
    }
}

/// A new message id (`webhook-id`).
pub(crate) fn event_id() -> String {
    format!("msg_{}", Uuid::new_v4().simple())
}

/// Stores `events` for every endpoint that wants them, in the caller's transaction.
pub(crate) async fn enqueue<C: ConnectionTrait>(
    txn: &C,
    events: &[NewEvent],
    now: DateTime<Utc>,
) -> Result<usize, StorageError> {
    if events.is_empty() {
        return Ok(0);
    }
    let hooks = Webhooks::find().filter(Column::IsActive.eq(true)).all(txn).await?;
    if hooks.is_empty() {
        return Ok(0);
    }
    let mut rows = Vec::new();
    for event in events {
        let wanted: Vec<&Webhook> = hooks.iter().filter(|h| h.wants(event)).collect();
        if wanted.is_empty() {
            continue;
        }
        let (id, body) = (event_id(), payload(event, now));
        rows.extend(wanted.into_iter().map(|h| delivery(h.id, &id, event, &body, now)));
    }
    let count = rows.len();
    for chunk in rows.chunks(200) {
        Deliveries::insert_many(chunk.to_vec()).exec(txn).await?;
    }
    Ok(count)
}

/// The event an audit record announces, if any: its details with the target, the actor and
/// the record's sequence number.
pub(crate) fn event_of(record: &NewAudit, seq: i64) -> Option<NewEvent> {
    let event_type = record.event.clone()?;
    let mut data = serde_json::Map::new();
    data.insert(
        "target".into(),
        json!({"kind": record.target_kind, "id": record.target_id}),
    );
    data.insert("enterprise".into(), json!(record.enterprise));
    data.insert(
        "actor".into(),
        json!({"id": record.actor_id, "username": record.actor, "role": record.role}),
    );
    data.insert("audit_seq".into(), json!(seq));
    if let Value::Object(details) = &record.details {
        for (k, v) in details {
            data.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Some(NewEvent {
        event_type,
        enterprise: record.enterprise.clone(),
        data: Value::Object(data),
    })
}
