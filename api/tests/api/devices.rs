use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_field_error, assert_problem, openssl_dgst};

const DEVICES: &str = "/api/v4/manage/devices/";

fn md5_ha1(device: &str, realm: &str, password: &str) -> String {
    openssl_dgst(&["-md5"], format!("{device}:{realm}:{password}").as_bytes())
}

#[actix_web::test]
async fn provisioning_with_a_password_stores_only_the_sealed_ha1() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            DEVICES,
            &app.admin,
            json!({"device_id": "dev-001", "tenant": "acme", "password": "device-secret-1", "description": "boiler"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["mqtt_username"], "device=dev-001&tenant=acme");
    assert_eq!(r.body["realm"], "acme");
    assert!(r.body.get("password").is_none() && r.body.get("ha1").is_none());
    let ha1 = md5_ha1("dev-001", "acme", "device-secret-1");
    let db = app.database_bytes();
    let text = String::from_utf8_lossy(&db);
    assert!(!text.contains(&ha1), "HA1 stored in clear");
    assert!(!text.contains("device-secret-1"));
    let d = app.get(&format!("{DEVICES}acme/dev-001/"), &app.admin).await;
    assert_eq!(d.status, 200);
    assert!(!String::from_utf8_lossy(&d.raw).contains(&ha1));
}

#[actix_web::test]
async fn a_device_without_credentials_gets_a_generated_password_shown_once() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            DEVICES,
            &app.admin,
            json!({"device_id": "gen:1", "tenant": "acme", "realm": "iot.example"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let password = r.body["password"].as_str().unwrap();
    assert!(password.len() >= 20);
    assert_eq!(r.body["ha1"], md5_ha1("gen:1", "iot.example", password));
    let list = app.get(DEVICES, &app.admin).await;
    assert!(!String::from_utf8_lossy(&list.raw).contains(password));
}

#[actix_web::test]
async fn bad_device_input_names_the_field() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({"device_id": "", "tenant": "acme"}), "device_id"),
        (json!({"device_id": "a b", "tenant": "acme"}), "device_id"),
        (json!({"device_id": "x".repeat(129), "tenant": "acme"}), "device_id"),
        (json!({"device_id": "d", "tenant": "ACME"}), "tenant"),
        (json!({"device_id": "d", "tenant": "acme", "ha1": "xyz"}), "ha1"),
        (
            json!({"device_id": "d", "tenant": "acme", "ha1": "0".repeat(32), "password": "both-given-1"}),
            "password",
        ),
        (
            json!({"device_id": "d", "tenant": "acme", "password": "short"}),
            "password",
        ),
        (json!({"device_id": "d", "tenant": "acme", "realm": ""}), "realm"),
        (json!({"tenant": "acme"}), "device_id"),
    ];
    for (body, field) in cases {
        assert_field_error(&app.post(DEVICES, &app.admin, body).await, field);
    }
    assert_eq!(app.get(DEVICES, &app.admin).await.body["count"], 0);
    app.post(DEVICES, &app.admin, json!({"device_id": "d", "tenant": "acme"}))
        .await;
    assert_problem(
        &app.post(DEVICES, &app.admin, json!({"device_id": "d", "tenant": "acme"}))
            .await,
        409,
    );
    // The same id in another tenant is fine.
    assert_eq!(
        app.post(DEVICES, &app.admin, json!({"device_id": "d", "tenant": "globex"}))
            .await
            .status,
        201
    );
}

#[actix_web::test]
async fn a_manager_manages_only_its_enterprises_devices() {
    let app = TestApp::spawn().await;
    let (_, mgr) = app.user("acme-mgr", false, "acme", Some("manager")).await;
    let (_, key) = app.user("acme-key", true, "acme", None).await;
    app.post(DEVICES, &app.admin, json!({"device_id": "g1", "tenant": "globex"}))
        .await;
    assert_eq!(
        app.post(DEVICES, &mgr, json!({"device_id": "a1", "tenant": "acme"}))
            .await
            .status,
        201
    );
    assert_problem(
        &app.post(DEVICES, &mgr, json!({"device_id": "g2", "tenant": "globex"}))
            .await,
        403,
    );
    let list = app.get(DEVICES, &mgr).await;
    assert_eq!(list.body["count"], 1);
    assert_eq!(
        app.get(&format!("{DEVICES}?tenant=globex"), &mgr).await.body["count"],
        0
    );
    assert_problem(&app.get(&format!("{DEVICES}globex/g1/"), &mgr).await, 404);
    assert_problem(
        &app.send("DELETE", &format!("{DEVICES}globex/g1/"), Some(&mgr), None)
            .await,
        404,
    );
    assert_problem(&app.get(DEVICES, &key).await, 403);
}

#[actix_web::test]
async fn devices_can_be_disabled_described_rotated_and_deleted() {
    let app = TestApp::spawn().await;
    app.post(
        DEVICES,
        &app.admin,
        json!({"device_id": "d1", "tenant": "acme", "password": "first-password"}),
    )
    .await;
    let r = app
        .send(
            "PATCH",
            &format!("{DEVICES}acme/d1/"),
            Some(&app.admin),
            Some(json!({"is_active": false, "description": "spare"})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["is_active"], false);
    assert_eq!(r.body["description"], "spare");
    assert_eq!(
        app.get(&format!("{DEVICES}?is_active=false"), &app.admin).await.body["count"],
        1
    );
    let r = app
        .send(
            "PUT",
            &format!("{DEVICES}acme/d1/credentials/"),
            Some(&app.admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["password"].is_string());
    let r = app
        .send(
            "PUT",
            &format!("{DEVICES}acme/d1/credentials/"),
            Some(&app.admin),
            Some(json!({"ha1": "zz"})),
        )
        .await;
    assert_field_error(&r, "ha1");
    assert_eq!(
        app.send("DELETE", &format!("{DEVICES}acme/d1/"), Some(&app.admin), None)
            .await
            .status,
        204
    );
    assert_problem(&app.get(&format!("{DEVICES}acme/d1/"), &app.admin).await, 404);
}

fn rows(n: usize, prefix: &str) -> Vec<Value> {
    (0..n).map(|i| json!({"device_id": format!("{prefix}-{i:05}"), "tenant": "acme", "password": format!("password-{i:05}")})).collect()
}

#[actix_web::test]
async fn bulk_provisioning_is_all_or_nothing_with_per_row_errors() {
    let app = TestApp::spawn().await;
    let mut batch = rows(50, "bulk");
    batch[7]["device_id"] = json!("bad id");
    batch[9]["ha1"] = json!("nothex");
    let r = app
        .post("/api/v4/manage/devices/bulk/", &app.admin, Value::Array(batch))
        .await;
    let body = assert_problem(&r, 400);
    assert!(body["errors"]["7.device_id"].is_array(), "{body}");
    assert!(
        body["errors"]["9.password"].is_array() || body["errors"]["9.ha1"].is_array(),
        "{body}"
    );
    assert_eq!(app.get(DEVICES, &app.admin).await.body["count"], 0, "nothing written");

    let mut dup = rows(3, "dup");
    dup[2]["device_id"] = json!("dup-00000");
    let r = app
        .post("/api/v4/manage/devices/bulk/", &app.admin, Value::Array(dup))
        .await;
    assert!(assert_problem(&r, 400)["errors"]["2.device_id"].is_array());

    let r = app
        .post("/api/v4/manage/devices/bulk/", &app.admin, Value::Array(rows(20, "ok")))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["created"], 20);
    let again = rows(21, "ok");
    let r = app
        .post("/api/v4/manage/devices/bulk/", &app.admin, Value::Array(again))
        .await;
    let body = assert_problem(&r, 409);
    assert!(body["errors"]["0.device_id"].is_array());
    assert_eq!(app.get(DEVICES, &app.admin).await.body["count"], 20);
    assert_field_error(
        &app.post("/api/v4/manage/devices/bulk/", &app.admin, json!([])).await,
        "body",
    );
}

#[actix_web::test]
async fn ten_thousand_devices_provision_in_one_bulk_request() {
    let app = TestApp::spawn().await;
    let started = std::time::Instant::now();
    let r = app
        .post(
            "/api/v4/manage/devices/bulk/",
            &app.admin,
            Value::Array(rows(10_000, "fleet")),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(
        r.status,
        201,
        "{}",
        String::from_utf8_lossy(&r.raw[..r.raw.len().min(500)])
    );
    assert_eq!(r.body["created"], 10_000);
    println!("bulk: 10000 devices in {} ms", took.as_millis());
    assert_eq!(
        app.get("/api/v4/manage/devices/?page_size=1", &app.admin).await.body["count"],
        10_000
    );
    assert_field_error(
        &app.post(
            "/api/v4/manage/devices/bulk/",
            &app.admin,
            Value::Array(rows(10_001, "over")),
        )
        .await,
        "body",
    );
}
