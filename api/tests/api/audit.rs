//! The audit log on both databases: what changes write, who may read it, the export, and
//! the hash chain catching a record altered, removed or appended behind fleetca's back.

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem};

const AUDIT: &str = "/api/v4/manage/audit/";

fn actions(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect()
}

async fn exec(app: &TestApp, sql: &str) {
    let db = sea_orm::Database::connect(app.database_url.as_str()).await.unwrap();
    db.execute_unprepared(sql).await.unwrap();
    db.close().await.unwrap();
}

async fn verify(app: &TestApp) -> Result<i64, fleetca_storage::audit::ChainBreak> {
    let store = fleetca_storage::Store::connect(&fleetca_storage::StoreOptions {
        url: app.database_url.clone(),
        max_connections: 1,
    })
    .await
    .unwrap();
    store.verify_audit().await.unwrap()
}

#[actix_web::test]
async fn changes_are_recorded_with_their_actor_and_readable_by_scope() {
    let app = TestApp::spawn().await;
    let key = app
        .post(
            "/api/v4/manage/users/",
            &app.admin,
            json!({"username": "svc-audit", "is_service_account": true, "enterprise": "acme"}),
        )
        .await;
    let cert = app
        .post(
            "/api/v4/manage/mqtt-certificates/",
            &app.admin,
            json!({"name": "a", "api_key_id": key.body["id"]}),
        )
        .await;
    let id = cert.body["id"].as_str().unwrap();
    app.post(
        &format!("/api/v4/manage/mqtt-certificates/{id}/revoke/"),
        &app.admin,
        json!({"reason": "keyCompromise"}),
    )
    .await;
    app.post(
        "/api/v4/manage/devices/",
        &app.admin,
        json!({"device_id": "d1", "tenant": "globex", "password": "device-secret-1"}),
    )
    .await;
    // A bulk request refused as a whole records nothing.
    let refused = app
        .post(
            "/api/v4/manage/devices/bulk/",
            &app.admin,
            json!([{"device_id": "d1", "tenant": "globex", "password": "device-secret-1"}]),
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    // A wrong token and a wrong password are recorded as failures.
    let r = app.get(AUDIT, "fca_0123456789ab_wrongwrongwrong").await;
    assert_eq!(r.status, 401);
    let r = app
        .send(
            "POST",
            "/api/v4/auth/login",
            None,
            Some(json!({"username": "admin", "password": "not-the-password"})),
        )
        .await;
    assert!(r.status == 401 || r.status == 400, "{}", r.body);

    let all = app.get(&format!("{AUDIT}?page_size=50"), &app.admin).await;
    assert_eq!(all.status, 200, "{}", all.body);
    let seen = actions(&all.body);
    for action in [
        "user.create",
        "certificate.create",
        "certificate.revoke",
        "device.create",
        "auth.token_failed",
        "auth.sign_in_failed",
    ] {
        assert!(seen.contains(&action.to_owned()), "{action} missing: {seen:?}");
    }
    assert_eq!(seen.iter().filter(|a| *a == "device.create").count(), 1, "{seen:?}");
    let revoke = all.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "certificate.revoke")
        .unwrap();
    assert_eq!(revoke["actor"], "admin");
    assert_eq!(revoke["target_id"], id);
    assert_eq!(revoke["enterprise"], "acme");
    assert_eq!(revoke["details"]["reason"], "keyCompromise");
    assert!(
        revoke["request_id"].is_string() && revoke["client_addr"] == "127.0.0.1",
        "{revoke}"
    );
    let failed = all.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "auth.token_failed")
        .unwrap();
    assert_eq!(failed["outcome"], "failure");
    assert_eq!(failed["actor"], "token fca_0123456789ab");
    assert!(
        !all.raw.windows(9).any(|w| w == b"wrongwron"),
        "a token's secret part reached the log"
    );

    // Filters, and the export of everything, oldest first.
    let revokes = app.get(&format!("{AUDIT}?action=certificate.revoke"), &app.admin).await;
    assert_eq!(revokes.body["count"], 1);
    let export = app.get(&format!("{AUDIT}?format=jsonl"), &app.admin).await;
    assert_eq!(export.content_type, "application/x-ndjson");
    let lines: Vec<Value> = String::from_utf8_lossy(&export.raw)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, all.body["count"].as_u64().unwrap());
    assert_eq!(lines[0]["seq"], 1);

    // A manager reads their enterprise only; an API key nothing.
    app.post(
        "/api/v4/manage/users/",
        &app.admin,
        json!({"username": "mgr-acme", "is_service_account": false, "enterprise": "acme", "role": "manager", "password": "manager-password-1"}),
    )
    .await;
    let token = app
        .post(
            "/api/v4/manage/users/",
            &app.admin,
            json!({"username": "mgr-two", "is_service_account": true, "enterprise": "acme"}),
        )
        .await;
    let api_token = token.body["token"].as_str().unwrap();
    assert_problem(&app.get(AUDIT, api_token).await, 403);
    assert_eq!(verify(&app).await, Ok(all.body["count"].as_i64().unwrap() + 2));
}

/// The `seq`s of every record a filtered listing answers, read a page of `size` at a time,
/// and the count it gave.
async fn listed(app: &TestApp, filter: &str, size: usize) -> (Vec<i64>, i64) {
    let (mut seqs, mut page) = (Vec::new(), 1);
    loop {
        let r = app
            .get(&format!("{AUDIT}?{filter}&page={page}&page_size={size}"), &app.admin)
            .await;
        assert_eq!(r.status, 200, "{filter}: {}", r.body);
        let results = r.body["results"].as_array().unwrap();
        seqs.extend(results.iter().map(|r| r["seq"].as_i64().unwrap()));
        if results.len() < size {
            return (seqs, r.body["count"].as_i64().unwrap());
        }
        page += 1;
    }
}

/// Which records a filter should answer.
type Wanted = Box<dyn Fn(&Value) -> bool>;

#[actix_web::test]
async fn each_filter_answers_exactly_its_records_newest_first_page_by_page() {
    let app = TestApp::spawn().await;
    for (name, enterprise) in [("svc-a", "acme"), ("svc-g", "globex")] {
        let r = app
            .post(
                "/api/v4/manage/users/",
                &app.admin,
                json!({"username": name, "is_service_account": true, "enterprise": enterprise}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    for n in 0..3 {
        let r = app
            .post(
                "/api/v4/manage/devices/",
                &app.admin,
                json!({"device_id": format!("d{n}"), "tenant": "globex", "password": "device-secret-1"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // Every record, read whole, is what each filter is checked against.
    let export = app.get(&format!("{AUDIT}?format=jsonl"), &app.admin).await;
    let all: Vec<Value> = String::from_utf8_lossy(&export.raw)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(all.iter().filter(|r| r["action"] == "device.create").count(), 3);
    let at = |r: &Value| chrono::DateTime::parse_from_rfc3339(r["at"].as_str().unwrap()).unwrap();
    let cut = between.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let cases: Vec<(String, Wanted)> = vec![
        (
            "action=device.create".into(),
            Box::new(|r| r["action"] == "device.create"),
        ),
        ("enterprise=globex".into(), Box::new(|r| r["enterprise"] == "globex")),
        (
            "enterprise=globex&action=user.create".into(),
            Box::new(|r| r["enterprise"] == "globex" && r["action"] == "user.create"),
        ),
        ("target_kind=device".into(), Box::new(|r| r["target_kind"] == "device")),
        ("actor=admin".into(), Box::new(|r| r["actor"] == "admin")),
        (format!("since={cut}"), Box::new(move |r| at(r) >= between)),
        (format!("until={cut}"), Box::new(move |r| at(r) < between)),
        (
            format!("since={cut}&enterprise=globex"),
            Box::new(move |r| at(r) >= between && r["enterprise"] == "globex"),
        ),
        ("action=no.such.action".into(), Box::new(|_| false)),
    ];
    for (filter, wanted) in &cases {
        let mut expected: Vec<i64> = all
            .iter()
            .filter(|r| wanted(r))
            .map(|r| r["seq"].as_i64().unwrap())
            .collect();
        expected.reverse();
        // A real narrowing: something but not everything (the last case: nothing).
        assert!(expected.len() < all.len(), "{filter} matches every record");
        assert_eq!(expected.is_empty(), filter.contains("no.such"), "{filter}");
        for size in [1, 2, 50] {
            let (seqs, count) = listed(&app, filter, size).await;
            assert_eq!(seqs, expected, "{filter}, pages of {size}");
            assert_eq!(count, expected.len() as i64, "{filter}");
        }
    }
}

#[actix_web::test]
async fn the_chain_catches_a_record_altered_removed_or_appended() {
    let app = TestApp::spawn().await;
    for n in 0..3 {
        app.post(
            "/api/v4/manage/devices/",
            &app.admin,
            json!({"device_id": format!("d{n}"), "tenant": "acme", "password": "device-secret-1"}),
        )
        .await;
    }
    let intact = verify(&app).await.unwrap();
    assert!(intact >= 4, "bootstrap admin and three devices: {intact}");

    exec(&app, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2").await;
    let broken = verify(&app).await.unwrap_err();
    assert_eq!(broken.seq, 2, "{broken:?}");
    assert!(broken.why.contains("altered"), "{broken:?}");
    exec(&app, "UPDATE audit_log SET actor = 'admin' WHERE seq = 2").await;
    assert_eq!(verify(&app).await, Ok(intact));

    exec(&app, "DELETE FROM audit_log WHERE seq = 3").await;
    let broken = verify(&app).await.unwrap_err();
    assert_eq!(broken.seq, 3, "{broken:?}");

    let app = TestApp::spawn().await;
    app.post(
        "/api/v4/manage/devices/",
        &app.admin,
        json!({"device_id": "x", "tenant": "acme", "password": "device-secret-1"}),
    )
    .await;
    let n = verify(&app).await.unwrap();
    exec(
        &app,
        &format!(
            "INSERT INTO audit_log (seq, at, actor, role, action, target_kind, target_id, outcome, details, prev_hash, hash) \
             SELECT seq + 1, at, 'mallory', role, action, target_kind, target_id, outcome, details, hash, hash FROM audit_log WHERE seq = {n}"
        ),
    )
    .await;
    let broken = verify(&app).await.unwrap_err();
    assert_eq!(broken.seq, n + 1, "{broken:?}");
}

/// Issuance chains its audit records from the head it keeps in memory. Another appender
/// (a second instance, `fleetca admin`) moving the head meanwhile makes the batch write
/// nothing and go again from the head as it is: each certificate is stored and audited
/// exactly once, and the chain verifies. On PostgreSQL the issuance function finds the moved
/// head before inserting and answers `head`; the writer reads the head and calls it again.
/// (A swap that fails after the inserts, FC001, is what two instances issuing at once meet:
/// `tests/instances.rs`.)
#[actix_web::test]
async fn issuance_after_another_appender_moved_the_head_stores_each_certificate_once() {
    let app = TestApp::spawn().await;
    let postgres = app.database_url.starts_with("postgres");
    if postgres {
        // Counted, to prove below that the batches went through the function.
        let db = app.database_url.rsplit('/').next().unwrap();
        exec(&app, &format!("ALTER DATABASE \"{db}\" SET track_functions = 'pl'")).await;
    }
    let (key, _) = app.user("svc-chain", true, "acme", None).await;
    let other = fleetca_storage::Store::connect(&fleetca_storage::StoreOptions {
        url: app.database_url.clone(),
        max_connections: 1,
    })
    .await
    .unwrap();
    let mut answers = Vec::new();
    for round in 0..3 {
        answers.push(app.certificate(&key, &format!("before-{round}")).await);
        let moved = fleetca_storage::NewAudit {
            actor_id: None,
            actor: "operator".into(),
            role: "admin".into(),
            action: "audit.note".into(),
            target_kind: "audit".into(),
            target_id: format!("note-{round}"),
            enterprise: None,
            request_id: None,
            client_addr: None,
            outcome: "success".into(),
            details: json!({}),
            event: None,
            ends_sessions: false,
        };
        other.append_audit(&[moved], chrono::Utc::now()).await.unwrap();
        answers.push(app.certificate(&key, &format!("after-{round}")).await);
    }
    assert!(verify(&app).await.is_ok(), "the chain verifies");
    let created = app
        .get(&format!("{AUDIT}?action=certificate.create&page_size=50"), &app.admin)
        .await;
    assert_eq!(created.body["count"], 6, "one record per certificate: {}", created.body);
    let notes = app.get(&format!("{AUDIT}?action=audit.note"), &app.admin).await;
    assert_eq!(notes.body["count"], 3, "{}", notes.body);
    let listed = app
        .get(
            &format!("/api/v4/manage/mqtt-certificates/?api_key_id={key}&page_size=50"),
            &app.admin,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let mut names: Vec<String> = listed.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["after-0", "after-1", "after-2", "before-0", "before-1", "before-2"],
        "each certificate stored once"
    );
    // Each stored as it was answered, field by field (the function's arguments are bound by
    // position).
    for answer in &answers {
        let stored = app
            .get(
                &format!("/api/v4/manage/mqtt-certificates/{}/", answer["id"].as_str().unwrap()),
                &app.admin,
            )
            .await;
        assert_eq!(stored.status, 200, "{}", stored.body);
        let fields = stored.body.as_object().unwrap();
        for must in [
            "name",
            "serial",
            "fingerprint",
            "certificate_pem",
            "created_at",
            "expires_at",
            "api_key_id",
        ] {
            assert!(
                fields.contains_key(must) && answer.get(must).is_some(),
                "{must}: {}",
                stored.body
            );
        }
        for (field, value) in fields {
            if let Some(answered) = answer.get(field) {
                assert_eq!(value, answered, "{field}");
            }
        }
        // And the columns the API does not show, as a plain issuance sets them.
        let row = other
            .certificate(answer["id"].as_str().unwrap().parse().unwrap())
            .await
            .unwrap();
        assert_eq!(row.enterprise, "acme");
        assert_eq!(row.kind, "client");
        assert!(
            row.not_before < row.not_after && row.not_before <= row.created_at,
            "{row:?}"
        );
        assert!(row.crl_shard.is_some(), "{row:?}");
        assert_eq!(
            (
                row.revoked_at,
                row.revocation_reason.as_deref(),
                row.device.as_deref(),
                row.supersede_at
            ),
            (None, None, None, None),
            "{row:?}"
        );
        assert_eq!(
            (row.renewed_by, row.renewed_via.as_deref(), row.expiry_warned),
            (None, None, None),
            "{row:?}"
        );
    }
    if postgres {
        let db = sea_orm::Database::connect(app.database_url.as_str()).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let calls: i64 = db
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_user_functions WHERE funcname = 'fleetca_issue_batch'",
                ))
                .await
                .unwrap()
                .unwrap()
                .try_get_by_index(0)
                .unwrap();
            // Six certificates, three of them after the head moved: six calls that wrote and
            // three that answered `head` (a call that raises is not counted). An idle
            // connection reports its counts within 10 s.
            if calls >= 9 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "fleetca_issue_batch called {calls} times"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        db.close().await.unwrap();
    }
}
