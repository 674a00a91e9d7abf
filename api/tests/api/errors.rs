use serde_json::json;

use crate::helpers::{TestApp, assert_problem};

#[actix_web::test]
async fn malformed_bodies_are_400_problems_and_write_nothing() {
    let app = TestApp::spawn().await;
    let r = app
        .send_raw(
            "POST",
            "/api/v4/manage/users/",
            Some(&app.admin),
            "application/json",
            b"{\"username\": ".to_vec(),
        )
        .await;
    let body = assert_problem(&r, 400);
    assert!(body["detail"].as_str().unwrap().contains("not valid JSON"));
    let r = app
        .send_raw(
            "POST",
            "/api/v4/manage/users/",
            Some(&app.admin),
            "application/json",
            Vec::new(),
        )
        .await;
    assert_problem(&r, 400);
    let r = app
        .send_raw(
            "POST",
            "/api/v4/manage/users/",
            Some(&app.admin),
            "application/json",
            b"[1,2]".to_vec(),
        )
        .await;
    assert_problem(&r, 400);
    assert_eq!(app.get("/api/v4/manage/users/", &app.admin).await.body["count"], 1);
}

#[actix_web::test]
async fn a_wrong_content_type_is_a_415_problem() {
    let app = TestApp::spawn().await;
    let r = app
        .send_raw(
            "POST",
            "/api/v4/manage/users/",
            Some(&app.admin),
            "text/plain",
            b"{}".to_vec(),
        )
        .await;
    let body = assert_problem(&r, 415);
    assert!(body["detail"].as_str().unwrap().contains("application/json"));
}

#[actix_web::test]
async fn a_body_over_the_limit_is_a_413_problem() {
    let app = TestApp::spawn().await;
    let big = format!(
        "{{\"username\": \"{}\", \"is_service_account\": true}}",
        "a".repeat(70 * 1024)
    );
    let r = app
        .send_raw(
            "POST",
            "/api/v4/manage/users/",
            Some(&app.admin),
            "application/json",
            big.into_bytes(),
        )
        .await;
    let body = assert_problem(&r, 413);
    assert!(body["detail"].as_str().unwrap().contains("65536"));
}

#[actix_web::test]
async fn unknown_routes_and_wrong_methods_are_problems() {
    let app = TestApp::spawn().await;
    assert_problem(&app.get("/api/v4/manage/nothing-here/", &app.admin).await, 404);
    assert_problem(&app.send("GET", "/no/such/thing", None, None).await, 404);
    assert_problem(
        &app.send("PUT", "/api/v4/manage/users/", Some(&app.admin), Some(json!({})))
            .await,
        405,
    );
    assert_problem(&app.send("DELETE", "/healthz", None, None).await, 405);
    // A malformed id cannot name anything.
    assert_problem(&app.get("/api/v4/manage/users/not-a-uuid/", &app.admin).await, 404);
}

#[actix_web::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    let r = app.send("GET", "/healthz", None, None).await;
    assert_eq!(r.status, 200);
    let r = app.send("GET", "/readyz", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["database"], true);
    // The issuing CA's own CRL and its 16 shards, numbered 1 to 17.
    assert_eq!(r.body["crl"]["number"], 17);
    assert!(r.headers.get("x-request-id").is_some());
}

#[actix_web::test]
async fn a_whole_number_may_be_written_with_a_zero_fraction_but_not_with_another() {
    let app = TestApp::spawn().await;
    let claim = |max_uses: serde_json::Value| json!({"name": "line 9", "tenant": "acme", "max_uses": max_uses});
    let r = app.post("/api/v4/manage/claims/", &app.admin, claim(json!(1.5))).await;
    let body = assert_problem(&r, 400);
    assert!(
        body.to_string().contains("max_uses"),
        "the problem names the field: {body}"
    );
    assert_eq!(app.get("/api/v4/manage/claims/", &app.admin).await.body["count"], 0);
    // What JSON encoders write for a whole float is the same number.
    let r = app.post("/api/v4/manage/claims/", &app.admin, claim(json!(2.0))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["max_uses"], 2);
}
