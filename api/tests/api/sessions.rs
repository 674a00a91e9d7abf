use serde_json::json;

use crate::helpers::{TestApp, assert_field_error, assert_problem};

async fn human(app: &TestApp, name: &str, enterprise: &str, role: &str) {
    let r = app
        .post(
            "/api/v4/manage/users/",
            &app.admin,
            json!({"username": name, "is_service_account": false, "enterprise": enterprise, "role": role, "password": "a-long-password-1"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Signs in; returns (cookie header value, csrf token).
async fn login(app: &TestApp, name: &str, password: &str) -> (u16, String, String, String) {
    let mut res = app
        .client
        .post(app.url("/api/v4/auth/login"))
        .send_json(&json!({"username": name, "password": password}))
        .await
        .unwrap();
    let status = res.status().as_u16();
    let set_cookie = res
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: serde_json::Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap_or_default();
    let cookie = set_cookie.split(';').next().unwrap_or("").to_owned();
    (
        status,
        cookie,
        body["csrf_token"].as_str().unwrap_or("").to_owned(),
        set_cookie,
    )
}

#[actix_web::test]
async fn a_human_signs_in_with_a_strict_http_only_cookie_and_csrf_protection() {
    let app = TestApp::spawn().await;
    human(&app, "alice", "acme", "manager").await;
    let (status, cookie, csrf, raw) = login(&app, "alice", "a-long-password-1").await;
    assert_eq!(status, 200);
    assert!(
        raw.contains("HttpOnly") && raw.contains("SameSite=Strict") && raw.contains("Path=/"),
        "{raw}"
    );
    assert!(!csrf.is_empty());
    let me = app
        .client
        .get(app.url("/api/v4/auth/me"))
        .insert_header(("Cookie", cookie.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status().as_u16(), 200);
    let list = app
        .client
        .get(app.url("/api/v4/manage/users/"))
        .insert_header(("Cookie", cookie.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status().as_u16(), 200);
    let body = json!({"username": "svc-ui", "is_service_account": true});
    let no_csrf = app
        .client
        .post(app.url("/api/v4/manage/users/"))
        .insert_header(("Cookie", cookie.clone()))
        .send_json(&body)
        .await
        .unwrap();
    assert_eq!(no_csrf.status().as_u16(), 403);
    let wrong = app
        .client
        .post(app.url("/api/v4/manage/users/"))
        .insert_header(("Cookie", cookie.clone()))
        .insert_header(("X-CSRF-Token", "nope"))
        .send_json(&body)
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 403);
    let ok = app
        .client
        .post(app.url("/api/v4/manage/users/"))
        .insert_header(("Cookie", cookie.clone()))
        .insert_header(("X-CSRF-Token", csrf.clone()))
        .send_json(&body)
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 201);
    let out = app
        .client
        .post(app.url("/api/v4/auth/logout"))
        .insert_header(("Cookie", cookie.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 204);
    let me = app
        .client
        .get(app.url("/api/v4/auth/me"))
        .insert_header(("Cookie", cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status().as_u16(), 401);
}

#[actix_web::test]
async fn wrong_passwords_are_refused_and_then_rate_limited() {
    let app = TestApp::spawn().await;
    human(&app, "bob", "acme", "manager").await;
    // Unknown users cannot sign in (and count as a failure from this address).
    let r = app
        .send(
            "POST",
            "/api/v4/auth/login",
            None,
            Some(json!({"username": "nobody", "password": "whatever-password"})),
        )
        .await;
    assert_problem(&r, 401);
    for _ in 0..4 {
        assert_eq!(login(&app, "bob", "wrong-password-x").await.0, 401);
    }
    let r = app
        .send(
            "POST",
            "/api/v4/auth/login",
            None,
            Some(json!({"username": "bob", "password": "a-long-password-1"})),
        )
        .await;
    let body = assert_problem(&r, 429);
    assert!(body["detail"].as_str().unwrap().contains("try again"));
    assert!(r.headers.get("retry-after").is_some());
}

#[actix_web::test]
async fn a_user_changes_its_own_password() {
    let app = TestApp::spawn().await;
    human(&app, "carol", "acme", "admin").await;
    let (_, cookie, csrf, _) = login(&app, "carol", "a-long-password-1").await;
    let change = |body: serde_json::Value| {
        app.client
            .post(app.url("/api/v4/auth/password"))
            .insert_header(("Cookie", cookie.clone()))
            .insert_header(("X-CSRF-Token", csrf.clone()))
            .send_json(&body)
    };
    let r = change(json!({"current_password": "wrong-one-here", "new_password": "another-long-password"}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = change(json!({"current_password": "a-long-password-1", "new_password": "short"}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = change(json!({"current_password": "a-long-password-1", "new_password": "another-long-password"}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(login(&app, "carol", "a-long-password-1").await.0, 401);
    assert_eq!(login(&app, "carol", "another-long-password").await.0, 200);
    // The bootstrapped admin has no password yet and may set one with its token.
    let r = app
        .post(
            "/api/v4/auth/password",
            &app.admin,
            json!({"new_password": "admin-password-123"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_field_error(
        &app.post("/api/v4/auth/password", &app.admin, json!({"new_password": "x"}))
            .await,
        "new_password",
    );
}

#[actix_web::test]
async fn the_overview_counts_only_what_the_caller_may_see() {
    let app = TestApp::spawn().await;
    let (acme_key, _) = app.user("acme-key", true, "acme", None).await;
    let (globex_key, _) = app.user("globex-key", true, "globex", None).await;
    let (_, mgr) = app.user("acme-mgr", false, "acme", Some("manager")).await;
    app.certificate(&acme_key, "a").await;
    let g = app.certificate(&globex_key, "g").await;
    app.post(
        &format!("/api/v4/manage/mqtt-certificates/{}/revoke/", g["id"].as_str().unwrap()),
        &app.admin,
        json!({}),
    )
    .await;
    app.post(
        "/api/v4/manage/devices/",
        &app.admin,
        json!({"device_id": "d", "tenant": "acme"}),
    )
    .await;
    app.post(
        "/api/v4/manage/devices/",
        &app.admin,
        json!({"device_id": "d", "tenant": "globex"}),
    )
    .await;
    let all = app.get("/api/v4/manage/stats/", &app.admin).await;
    assert_eq!(all.body["api_keys"], 2);
    assert_eq!(all.body["devices"], 2);
    assert_eq!(
        all.body["certificates"],
        json!({"active": 1, "revoked": 1, "expiring_30d": 0})
    );
    assert_eq!(all.body["expiries_by_month"].as_array().unwrap().len(), 1);
    assert!(all.body["crl"]["number"].as_u64().unwrap() >= 2);
    let acme = app.get("/api/v4/manage/stats/", &mgr).await;
    assert_eq!(acme.body["api_keys"], 1);
    assert_eq!(acme.body["devices"], 1);
    assert_eq!(acme.body["certificates"]["revoked"], 0);
    let ca = app.get("/api/v4/manage/ca/", &mgr).await;
    assert_eq!(ca.status, 200);
    assert_eq!(ca.body["fingerprint"].as_str().unwrap().len(), 64);
    assert!(ca.body["subject"].as_str().unwrap().contains("fleetca test CA"));
}

#[actix_web::test]
async fn the_first_admin_sets_its_password_with_its_token_once_and_is_signed_in() {
    let app = TestApp::spawn().await;
    let status = app.send("GET", "/api/v4/auth/setup", None, None).await;
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.body["needed"], true);
    let file = status.body["token_file"].as_str().unwrap();
    assert!(
        file.ends_with("admin-token") && file.starts_with(&*app.data_dir.to_string_lossy()),
        "{file}"
    );
    let setup = |body: serde_json::Value| app.send("POST", "/api/v4/auth/setup", None, Some(body));
    let password = "the-first-admin-password";

    // Only the token of an active human admin without a password will do.
    assert_problem(
        &setup(json!({"token": "fca_0123456789ab_wrongwrongwrong", "new_password": password})).await,
        401,
    );
    let (_, key) = app.user("svc-setup", true, "acme", None).await;
    assert_problem(&setup(json!({"token": key, "new_password": password})).await, 401);
    let (_, manager) = app.user("mgr-setup", false, "acme", Some("manager")).await;
    assert_problem(&setup(json!({"token": manager, "new_password": password})).await, 401);
    assert_problem(
        &setup(json!({"token": app.admin, "username": "someone-else", "new_password": password})).await,
        401,
    );
    assert_field_error(
        &setup(json!({"token": app.admin, "new_password": "short"})).await,
        "new_password",
    );
    assert_field_error(
        &setup(json!({"token": app.admin, "new_password": password, "role": "admin"})).await,
        "role",
    );
    let status = app.send("GET", "/api/v4/auth/setup", None, None).await;
    assert_eq!(status.body["needed"], true);

    let mut res = app
        .client
        .post(app.url("/api/v4/auth/setup"))
        .send_json(&json!({"token": app.admin, "username": "admin", "new_password": password}))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
    let set_cookie = res.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let body: serde_json::Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap();
    assert_eq!(body["user"]["username"], "admin");
    assert!(!body["csrf_token"].as_str().unwrap().is_empty());
    let mut me = app
        .client
        .get(app.url("/api/v4/auth/me"))
        .insert_header(("Cookie", cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status().as_u16(), 200);
    let me: serde_json::Value = serde_json::from_slice(&me.body().await.unwrap()).unwrap();
    assert_eq!(me["user"]["username"], "admin");
    assert_eq!(me["csrf_token"], body["csrf_token"]);

    // Done: the set-up is closed, and the admin signs in with its password.
    let status = app.send("GET", "/api/v4/auth/setup", None, None).await;
    assert_eq!(status.body, json!({"needed": false, "token_file": null}));
    assert_problem(&setup(json!({"token": app.admin, "new_password": password})).await, 409);
    assert_eq!(login(&app, "admin", password).await.0, 200);

    // The refusals and the change are in the audit log, with the request's address.
    let audit = app
        .get("/api/v4/manage/audit/?action=auth.sign_in_failed", &app.admin)
        .await;
    assert_eq!(audit.body["count"], 4, "{}", audit.body);
    let set = app
        .get("/api/v4/manage/audit/?action=user.set_password", &app.admin)
        .await;
    assert_eq!(set.body["count"], 1, "{}", set.body);
    let record = &set.body["results"][0];
    assert_eq!(record["actor"], "admin");
    assert_eq!(record["client_addr"], "127.0.0.1", "{record}");
    assert!(
        !audit.raw.windows(9).any(|w| w == b"wrongwron"),
        "a token's secret part reached the log"
    );
}
