//! What the storage crate's unit tests share: a migrated SQLite database of their own, and
//! the rows they need that are not under test.

use crate::{NewAudit, Store, StoreOptions};

/// A new, migrated SQLite database in a file of its own, and the file's path (to remove).
pub(crate) async fn fresh_store() -> (Store, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("fleetca-storage-{}.db", uuid::Uuid::new_v4().simple()));
    let store = Store::connect(&StoreOptions {
        url: format!("sqlite://{}?mode=rwc", path.display()),
        max_connections: 1,
    })
    .await
    .unwrap();
    store.migrate().await.unwrap();
    (store, path)
}

/// A CA row whose certificate and key are placeholders.
pub(crate) fn new_ca(role: &str, state: &str, parent_id: Option<i32>) -> crate::authority::NewCa {
    crate::authority::NewCa {
        role: role.into(),
        state: state.into(),
        parent_id,
        certificate_pem: "PEM".into(),
        sealed_key: vec![1],
        in_token: None,
        csr_pem: None,
        cross_pem: None,
    }
}

/// A successful system audit record of `action` on `target_kind` `target_id`.
pub(crate) fn system_record(
    action: &str,
    target_kind: &str,
    target_id: String,
    details: serde_json::Value,
) -> NewAudit {
    NewAudit {
        actor_id: None,
        actor: "system".into(),
        role: "system".into(),
        action: action.into(),
        target_kind: target_kind.into(),
        target_id,
        enterprise: None,
        request_id: None,
        client_addr: None,
        outcome: "success".into(),
        details,
        event: None,
        ends_sessions: false,
    }
}
