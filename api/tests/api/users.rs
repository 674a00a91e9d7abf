use serde_json::json;

use crate::helpers::{TestApp, assert_field_error, assert_problem};

#[actix_web::test]
async fn creating_an_api_key_shows_its_token_once_and_never_again() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/v4/manage/users/",
            &app.admin,
            json!({"username": "svc-mqtt-prod", "is_service_account": true, "enterprise": "nnn.acme"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert_eq!(r.body["username"], "svc-mqtt-prod");
    assert_eq!(r.body["is_service_account"], true);
    assert_eq!(r.body["enterprise"], "nnn.acme");
    assert_eq!(r.body["role"], "service");
    assert_eq!(r.body["is_active"], true);
    assert!(r.body["created_at"].is_string());
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 40);

    let detail = app.get(&format!("/api/v4/manage/users/{id}/"), &app.admin).await;
    assert_eq!(detail.status, 200);
    assert!(detail.body.get("token").is_none());
    let list = app.get("/api/v4/manage/users/", &app.admin).await;
    assert!(!String::from_utf8_lossy(&list.raw).contains(&token));
    assert!(
        list.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u.get("token").is_none())
    );

    // The token works, and the database holds only its hash.
    assert_eq!(
        app.get(&format!("/api/v4/manage/users/{id}/"), &token).await.status,
        200
    );
    let db = app.database_bytes();
    // After `fca_<lookup>_`: the secret is base64url and may itself contain '_'.
    let secret_part = token.splitn(3, '_').nth(2).unwrap();
    assert!(
        !db.windows(secret_part.len()).any(|w| w == secret_part.as_bytes()),
        "token stored in clear"
    );
}

#[actix_web::test]
async fn requests_without_a_valid_token_are_401_problems() {
    let app = TestApp::spawn().await;
    let r = app.send("GET", "/api/v4/manage/users/", None, None).await;
    assert_problem(&r, 401);
    assert_eq!(r.headers.get("www-authenticate").unwrap(), "Bearer");
    let r = app.get("/api/v4/manage/users/", "fca_000000000000_wrong").await;
    assert_problem(&r, 401);
    let r = app.get("/api/v4/manage/users/", "not-even-a-token").await;
    assert_problem(&r, 401);
}

#[actix_web::test]
async fn a_manager_sees_and_touches_only_its_own_enterprise() {
    let app = TestApp::spawn().await;
    let (_, acme_mgr) = app.user("acme-manager", false, "acme", Some("manager")).await;
    let (acme_key, _) = app.user("acme-key", true, "acme", None).await;
    let (globex_key, _) = app.user("globex-key", true, "globex", None).await;

    let list = app.get("/api/v4/manage/users/", &acme_mgr).await;
    let names: Vec<&str> = list.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"acme-key") && names.contains(&"acme-manager"));
    assert!(!names.contains(&"globex-key") && !names.contains(&"admin"));
    let filtered = app.get("/api/v4/manage/users/?enterprise=globex", &acme_mgr).await;
    assert_eq!(filtered.body["count"], 0);

    assert_eq!(
        app.get(&format!("/api/v4/manage/users/{acme_key}/"), &acme_mgr)
            .await
            .status,
        200
    );
    assert_problem(
        &app.get(&format!("/api/v4/manage/users/{globex_key}/"), &acme_mgr).await,
        404,
    );
    let r = app
        .send(
            "PATCH",
            &format!("/api/v4/manage/users/{globex_key}/"),
            Some(&acme_mgr),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_problem(&r, 404);
    assert_problem(
        &app.send(
            "DELETE",
            &format!("/api/v4/manage/users/{globex_key}/"),
            Some(&acme_mgr),
            None,
        )
        .await,
        404,
    );
    assert_problem(
        &app.post(
            &format!("/api/v4/manage/users/{globex_key}/rotate-token/"),
            &acme_mgr,
            json!({}),
        )
        .await,
        404,
    );

    // Creating defaults to, and is limited to, the manager's enterprise.
    let r = app
        .post(
            "/api/v4/manage/users/",
            &acme_mgr,
            json!({"username": "acme-key-2", "is_service_account": true}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["enterprise"], "acme");
    let r = app
        .post(
            "/api/v4/manage/users/",
            &acme_mgr,
            json!({"username": "sneaky", "is_service_account": true, "enterprise": "globex"}),
        )
        .await;
    assert_problem(&r, 403);
    let r = app
        .post(
            "/api/v4/manage/users/",
            &acme_mgr,
            json!({"username": "boss", "is_service_account": false, "role": "admin"}),
        )
        .await;
    assert_problem(&r, 403);
}

#[actix_web::test]
async fn a_service_account_reads_only_its_own_record_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (me, token) = app.user("svc-a", true, "acme", None).await;
    let (other, _) = app.user("svc-b", true, "acme", None).await;
    assert_eq!(
        app.get(&format!("/api/v4/manage/users/{me}/"), &token).await.status,
        200
    );
    assert_problem(&app.get(&format!("/api/v4/manage/users/{other}/"), &token).await, 404);
    let list = app.get("/api/v4/manage/users/", &token).await;
    assert_eq!(list.body["count"], 1);
    assert_eq!(list.body["results"][0]["id"], me.as_str());
    let r = app
        .post(
            "/api/v4/manage/users/",
            &token,
            json!({"username": "svc-c", "is_service_account": true}),
        )
        .await;
    assert_problem(&r, 403);
    assert_problem(
        &app.post(&format!("/api/v4/manage/users/{me}/rotate-token/"), &token, json!({}))
            .await,
        403,
    );
}

#[actix_web::test]
async fn rotating_a_token_stops_the_old_one_at_once() {
    let app = TestApp::spawn().await;
    let (id, old) = app.user("svc-rot", true, "acme", None).await;
    // Verified once, so it sits in the cache.
    assert_eq!(app.get(&format!("/api/v4/manage/users/{id}/"), &old).await.status, 200);
    let r = app
        .post(
            &format!("/api/v4/manage/users/{id}/rotate-token/"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    let new = r.body["token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_problem(&app.get(&format!("/api/v4/manage/users/{id}/"), &old).await, 401);
    assert_eq!(app.get(&format!("/api/v4/manage/users/{id}/"), &new).await.status, 200);
}

#[actix_web::test]
async fn deactivating_a_user_takes_effect_on_the_next_request() {
    let app = TestApp::spawn().await;
    let (id, token) = app.user("svc-off", true, "acme", None).await;
    assert_eq!(
        app.get(&format!("/api/v4/manage/users/{id}/"), &token).await.status,
        200
    );
    let r = app
        .send("DELETE", &format!("/api/v4/manage/users/{id}"), Some(&app.admin), None)
        .await;
    assert_eq!(r.status, 204);
    assert_problem(&app.get(&format!("/api/v4/manage/users/{id}/"), &token).await, 401);
    let r = app.get(&format!("/api/v4/manage/users/{id}/"), &app.admin).await;
    assert_eq!(r.body["is_active"], false);
    // And back on through PATCH.
    let r = app
        .send(
            "PATCH",
            &format!("/api/v4/manage/users/{id}/"),
            Some(&app.admin),
            Some(json!({"is_active": true})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        app.get(&format!("/api/v4/manage/users/{id}/"), &token).await.status,
        200
    );
    let r = app.get("/api/v4/manage/users/?is_active=false", &app.admin).await;
    assert_eq!(r.body["count"], 0);
}

#[actix_web::test]
async fn an_admin_cannot_deactivate_itself() {
    let app = TestApp::spawn().await;
    let me = app.get("/api/v4/manage/users/?search=admin", &app.admin).await;
    let id = me.body["results"][0]["id"].as_str().unwrap().to_owned();
    assert_problem(
        &app.send("DELETE", &format!("/api/v4/manage/users/{id}/"), Some(&app.admin), None)
            .await,
        409,
    );
}

#[actix_web::test]
async fn a_taken_username_is_a_409() {
    let app = TestApp::spawn().await;
    app.user("dup-name", true, "acme", None).await;
    let r = app
        .post(
            "/api/v4/manage/users/",
            &app.admin,
            json!({"username": "dup-name", "is_service_account": true}),
        )
        .await;
    let body = assert_problem(&r, 409);
    assert!(body["detail"].as_str().unwrap().contains("username"));
}

#[actix_web::test]
async fn bad_user_fields_are_named_in_the_problem() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({"username": "ab", "is_service_account": true}), "username"),
        (json!({"username": "Has Space", "is_service_account": true}), "username"),
        (
            json!({"username": "okname", "is_service_account": true, "enterprise": "-bad"}),
            "enterprise",
        ),
        (
            json!({"username": "okname", "is_service_account": false, "password": "short"}),
            "password",
        ),
        (
            json!({"username": "okname", "is_service_account": true, "password": "long-enough-password"}),
            "password",
        ),
        (
            json!({"username": "okname", "is_service_account": true, "role": "admin"}),
            "role",
        ),
        (
            json!({"username": "okname", "is_service_account": false, "role": "service"}),
            "role",
        ),
        (
            json!({"username": "okname", "is_service_account": "yes"}),
            "is_service_account",
        ),
        (
            json!({"username": "okname", "is_service_account": true, "role": "root"}),
            "role",
        ),
        (json!({"is_service_account": true}), "username"),
        (
            json!({"username": "okname", "is_service_account": true, "colour": "red"}),
            "colour",
        ),
    ];
    for (body, field) in cases {
        let r = app.post("/api/v4/manage/users/", &app.admin, body.clone()).await;
        assert_field_error(&r, field);
    }
    // Nothing was written.
    let list = app.get("/api/v4/manage/users/?search=okname", &app.admin).await;
    assert_eq!(list.body["count"], 0);
}

#[actix_web::test]
async fn a_human_user_gets_a_hashed_password() {
    let app = TestApp::spawn().await;
    let r = app
        .post("/api/v4/manage/users/", &app.admin, json!({"username": "alice", "is_service_account": false, "enterprise": "acme", "password": "correct horse battery"}))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["role"], "manager");
    let db = app.database_bytes();
    let text = String::from_utf8_lossy(&db);
    assert!(!text.contains("correct horse battery"));
    assert!(text.contains("$argon2id$v=19$m=19456,t=2,p=1$"));
}

#[actix_web::test]
async fn listings_paginate_and_filter() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.user(&format!("page-key-{i}"), true, "acme", None).await;
    }
    app.user("other-human", false, "acme", Some("manager")).await;
    let r = app
        .get(
            "/api/v4/manage/users/?page_size=2&is_service_account=true&search=page-key",
            &app.admin,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["count"], 5);
    assert_eq!(r.body["results"].as_array().unwrap().len(), 2);
    assert!(r.body["previous"].is_null());
    let next = r.body["next"].as_str().unwrap();
    assert!(next.starts_with("http://fleetca.test/api/v4/manage/users/?"), "{next}");
    assert!(next.contains("page=2") && next.contains("page_size=2"));
    let r3 = app
        .get(
            "/api/v4/manage/users/?page_size=2&is_service_account=true&search=page-key&page=3",
            &app.admin,
        )
        .await;
    assert_eq!(r3.body["results"].as_array().unwrap().len(), 1);
    assert!(r3.body["next"].is_null());
    assert!(r3.body["previous"].as_str().unwrap().contains("page=2"));
    let humans = app
        .get(
            "/api/v4/manage/users/?is_service_account=false&enterprise=acme",
            &app.admin,
        )
        .await;
    assert_eq!(humans.body["count"], 1);
    assert_field_error(
        &app.get("/api/v4/manage/users/?page_size=501", &app.admin).await,
        "page_size",
    );
    assert_field_error(&app.get("/api/v4/manage/users/?page=0", &app.admin).await, "page");
    assert_problem(&app.get("/api/v4/manage/users/?is_active=maybe", &app.admin).await, 400);
}

#[actix_web::test]
async fn every_path_answers_with_and_without_the_trailing_slash() {
    let app = TestApp::spawn().await;
    let (id, _) = app.user("slashy", true, "acme", None).await;
    for path in [
        "/api/v4/manage/users",
        "/api/v4/manage/users/",
        &format!("/api/v4/manage/users/{id}"),
        &format!("/api/v4/manage/users/{id}/"),
    ] {
        assert_eq!(app.get(path, &app.admin).await.status, 200, "{path}");
    }
    for path in [
        "/api/v4/manage/mqtt-certificates",
        "/api/v4/manage/mqtt-certificates/",
        "/healthz",
        "/healthz/",
    ] {
        assert_eq!(app.get(path, &app.admin).await.status, 200, "{path}");
    }
}
