//! Hostile input: each test here failed on the code before the hardening round (one per
//! defect found), and passes on SQLite and PostgreSQL alike.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_field_error, assert_problem, openssl_dgst};

const LISTS: [&str; 4] = [
    "/api/v4/manage/users/",
    "/api/v4/manage/mqtt-certificates/",
    "/api/v4/manage/devices/",
    "/api/v4/manage/server-certificates/",
];

#[actix_web::test]
async fn a_huge_page_number_is_a_clear_400_on_every_list() {
    let app = TestApp::spawn().await;
    for list in LISTS {
        for page in ["9223372036854775808", "18446744073709551615", "1000001"] {
            let r = app.get(&format!("{list}?page={page}"), &app.admin).await;
            assert_field_error(&r, "page");
        }
        let r = app.get(&format!("{list}?page=99999999999999999999"), &app.admin).await;
        assert_problem(&r, 400);
        let r = app.get(&format!("{list}?page=1000000&page_size=500"), &app.admin).await;
        assert_eq!(r.status, 200, "{list}: {}", r.body);
    }
}

#[actix_web::test]
async fn a_manager_can_neither_see_nor_revoke_the_brokers_server_certificate() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/v4/manage/server-certificates/",
            &app.admin,
            json!({"dns_names": ["broker.test"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    // A manager of the very enterprise server certificates are filed under.
    let (_, manager) = app.user("ops-manager", false, "default", None).await;
    let r = app
        .get(&format!("/api/v4/manage/mqtt-certificates/{id}/"), &manager)
        .await;
    assert_problem(&r, 404);
    let r = app
        .post(
            &format!("/api/v4/manage/mqtt-certificates/{id}/revoke/"),
            &manager,
            json!({"reason": "keyCompromise"}),
        )
        .await;
    assert_problem(&r, 404);
    assert_problem(&app.get("/api/v4/manage/server-certificates/", &manager).await, 403);
    // Not an MQTT certificate, even to an admin; the admins' own endpoints show it.
    let r = app
        .get(&format!("/api/v4/manage/mqtt-certificates/{id}/"), &app.admin)
        .await;
    assert_problem(&r, 404);
    let r = app.get("/api/v4/manage/mqtt-certificates/", &app.admin).await;
    assert_eq!(r.body["count"], 0);
    let r = app.get("/api/v4/manage/server-certificates/", &app.admin).await;
    assert_eq!(r.body["count"], 1, "{}", r.body);
    let crl = app.get("/readyz", &app.admin).await;
    assert_eq!(crl.body["crl"]["entries"], 0, "nothing was revoked");
    let r = app
        .post(
            &format!("/api/v4/manage/server-certificates/{id}/revoke/"),
            &app.admin,
            json!({"reason": "superseded"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "revoked");
}

async fn human_with_password(app: &TestApp, name: &str) -> String {
    let r = app
        .post(
            "/api/v4/manage/users/",
            &app.admin,
            json!({"username": name, "is_service_account": false, "enterprise": "acme", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["token"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn concurrent_wrong_passwords_cannot_race_past_the_lockout_and_the_token_still_works() {
    let app = TestApp::spawn().await;
    let token = human_with_password(&app, "carol").await;
    let attempts = (0..40).map(|_| {
        app.send(
            "POST",
            "/api/v4/auth/login",
            None,
            Some(json!({"username": "carol", "password": "wrong"})),
        )
    });
    let results = futures_util::future::join_all(attempts).await;
    let unauthorized = results.iter().filter(|r| r.status == 401).count();
    let limited: Vec<_> = results.iter().filter(|r| r.status == 429).collect();
    assert_eq!(unauthorized, 5, "the documented limit is 5 per 15 minutes");
    assert_eq!(limited.len(), 35);
    assert!(limited[0].headers.get("retry-after").is_some());
    // Locking a user out of sign-in does not lock its API token out.
    let r = app.get("/api/v4/manage/stats/", &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[actix_web::test]
async fn a_burst_of_unknown_user_sign_ins_is_bounded_not_queued_without_end() {
    let app = TestApp::spawn().await;
    let attempts = (0..150).map(|i| {
        app.send(
            "POST",
            "/api/v4/auth/login",
            None,
            Some(json!({"username": format!("nobody-{i}"), "password": "wrong"})),
        )
    });
    let results = futures_util::future::join_all(attempts).await;
    for r in &results {
        assert!(
            matches!(r.status, 401 | 429),
            "{} {}",
            r.status,
            String::from_utf8_lossy(&r.raw)
        );
        assert_eq!(r.content_type, "application/problem+json");
    }
}

async fn assert_denied(app: &TestApp, body: Value) {
    let r = app.send("POST", "/broker/auth", None, Some(body.clone())).await;
    assert_eq!(r.status, 403, "{body}: {}", String::from_utf8_lossy(&r.raw));
    let r = app.send("POST", "/broker/emqx/authn", None, Some(body.clone())).await;
    assert_eq!(r.body["result"], "deny", "{body}: {}", r.body);
}

#[actix_web::test]
async fn control_characters_are_refused_naming_the_field_and_denied_at_the_broker() {
    let app = TestApp::spawn().await;
    let r = app
        .send(
            "POST",
            "/api/v4/auth/login",
            None,
            Some(json!({"username": "ad\u{0}min", "password": "whatever long"})),
        )
        .await;
    assert_problem(&r, 401);
    let r = app
        .post(
            "/api/v4/manage/devices/",
            &app.admin,
            json!({"device_id": "d-1", "tenant": "acme", "description": "a\u{0}b"}),
        )
        .await;
    assert_field_error(&r, "description");
    let r = app
        .post(
            "/api/v4/manage/devices/bulk/",
            &app.admin,
            json!([{"device_id": "d-2", "tenant": "acme"}, {"device_id": "d-3", "tenant": "acme", "description": "\u{0}"}]),
        )
        .await;
    assert_field_error(&r, "1.description");
    let (key, _) = app.user("svc-nul", true, "acme", None).await;
    let r = app
        .post(
            "/api/v4/manage/mqtt-certificates/",
            &app.admin,
            json!({"name": "x\u{0}y", "api_key_id": key}),
        )
        .await;
    assert_field_error(&r, "name");
    for list in LISTS {
        for field in ["search", "enterprise", "tenant"] {
            let r = app.get(&format!("{list}?{field}=a%00b"), &app.admin).await;
            assert!(matches!(r.status, 200 | 400), "{list}?{field}: {} {}", r.status, r.body);
            if r.status == 400 {
                assert_field_error(&r, field);
            }
        }
        let r = app.get(&format!("{list}?search=a%00b"), &app.admin).await;
        assert_field_error(&r, "search");
    }
    assert_field_error(
        &app.get("/api/v4/manage/users/?enterprise=%00", &app.admin).await,
        "enterprise",
    );
    assert_field_error(
        &app.get("/api/v4/manage/devices/?tenant=%00", &app.admin).await,
        "tenant",
    );
    for path in [
        "/api/v4/manage/users/%00/",
        "/api/v4/manage/mqtt-certificates/%00/",
        "/api/v4/manage/devices/acme/d%00/",
        "/api/v4/manage/devices/ac%00me/d/",
    ] {
        assert_problem(&app.get(path, &app.admin).await, 404);
    }
    assert_eq!(
        app.get("/api/v4/manage/devices/", &app.admin).await.body["count"],
        0,
        "nothing written"
    );
    assert_denied(
        &app,
        json!({"username": "svc\u{0}nul", "password": "", "clientid": "c"}),
    )
    .await;
    assert_denied(
        &app,
        json!({"username": "device=d\u{0}&tenant=acme", "password": "signature=00&timestamp=1", "clientid": "d\u{0}"}),
    )
    .await;
}

#[actix_web::test]
async fn an_overflowing_or_padded_device_timestamp_is_refused_even_when_signed() {
    let app = TestApp::spawn().await;
    let ha1 = "939e7578ed9e3c518a452acee763bce9";
    let r = app
        .post(
            "/api/v4/manage/devices/",
            &app.admin,
            json!({"device_id": "dev-1", "tenant": "acme", "ha1": ha1}),
        )
        .await;
    assert_eq!(r.status, 201);
    let now = chrono::Utc::now().timestamp();
    let login = |ts: String| {
        let signature = openssl_dgst(&["-sha256", "-hmac", ha1], ts.as_bytes());
        json!({"username": "device=dev-1&tenant=acme", "password": format!("signature={signature}&timestamp={ts}"), "clientid": "dev-1"})
    };
    let ok = app
        .send("POST", "/broker/auth", None, Some(login(now.to_string())))
        .await;
    assert_eq!(ok.status, 200);
    assert_denied(&app, login(now.wrapping_add(i64::MIN).to_string())).await;
    assert_denied(&app, login(format!("0{now}"))).await;
    assert_denied(&app, login(format!("+{now}"))).await;
}

#[actix_web::test]
async fn bulk_rows_of_another_enterprise_say_nothing_of_whether_they_exist() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/v4/manage/devices/",
            &app.admin,
            json!({"device_id": "secret-dev", "tenant": "globex"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let (_, manager) = app.user("acme-mgr", false, "acme", None).await;
    let r = app
        .post(
            "/api/v4/manage/devices/bulk/",
            &manager,
            json!([
                {"device_id": "a-1", "tenant": "acme"},
                {"device_id": "secret-dev", "tenant": "globex"},
                {"device_id": "no-such-dev", "tenant": "globex"},
            ]),
        )
        .await;
    let body = assert_problem(&r, 400);
    assert_eq!(body["errors"]["1.tenant"], body["errors"]["2.tenant"], "{body}");
    assert!(body["errors"].get("1.device_id").is_none(), "{body}");
    assert!(!r.body.to_string().contains("already exists"), "{body}");
    assert_eq!(
        app.get("/api/v4/manage/devices/?tenant=acme", &app.admin).await.body["count"],
        0
    );
}

#[actix_web::test]
async fn readyz_keeps_the_reload_commands_output_for_signed_in_users() {
    let app = TestApp::spawn_with(|c| {
        c.crl_file = Some(c.data_dir.join("crl.pem"));
        c.crl_reload_command = Some("echo /secret/host/path >&2; exit 3".into());
    })
    .await;
    let r = app.send("GET", "/readyz", None, None).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["crl"]["publish"]["ok"], false);
    assert!(
        !String::from_utf8_lossy(&r.raw).contains("/secret/host/path"),
        "{}",
        r.body
    );
    let stats = app.get("/api/v4/manage/stats/", &app.admin).await;
    assert!(
        stats.body["crl"]["publish"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("/secret/host/path")),
        "{}",
        stats.body
    );
}

#[actix_web::test]
async fn secrets_are_never_cached_and_nothing_is_sniffed() {
    let app = TestApp::spawn().await;
    let created = app
        .post(
            "/api/v4/manage/users/",
            &app.admin,
            json!({"username": "svc-h", "is_service_account": true}),
        )
        .await;
    let key = created.body["id"].as_str().unwrap().to_owned();
    let cert = app
        .post(
            "/api/v4/manage/mqtt-certificates/",
            &app.admin,
            json!({"name": "h", "api_key_id": key}),
        )
        .await;
    let device = app
        .post(
            "/api/v4/manage/devices/",
            &app.admin,
            json!({"device_id": "h-1", "tenant": "acme"}),
        )
        .await;
    let rotated = app
        .send(
            "POST",
            &format!("/api/v4/manage/users/{key}/rotate-token/"),
            Some(&app.admin),
            None,
        )
        .await;
    for (what, r) in [
        ("token", &created),
        ("private key", &cert),
        ("device password", &device),
        ("rotated token", &rotated),
    ] {
        assert!(r.status < 300, "{what}: {}", r.body);
        assert_eq!(r.headers.get("cache-control").unwrap(), "no-store", "{what}");
    }
    for path in ["/healthz", "/no/such/path", "/", "/api/openapi.json", "/crl.pem"] {
        let r = app.send("GET", path, None, None).await;
        assert_eq!(r.headers.get("x-content-type-options").unwrap(), "nosniff", "{path}");
    }
    let ui = app.send("GET", "/", None, None).await;
    let csp = ui.headers.get("content-security-policy").unwrap().to_str().unwrap();
    for directive in ["frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"] {
        assert!(csp.contains(directive), "{csp}");
    }
}

#[actix_web::test]
async fn an_ipv4_broker_reaching_an_ipv6_socket_matches_the_ipv4_allow_list() {
    let app = TestApp::spawn_with(|c| {
        c.listen = "[::]:0".parse().unwrap();
        c.broker_allow = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let port = app.base.rsplit(':').next().unwrap();
    let url = format!("http://127.0.0.1:{port}/broker/superuser?response=json");
    let r = app.client.post(url).send_json(&json!({"username": "x"})).await.unwrap();
    // 200 with {"ok": false}: the caller was admitted (a refused caller gets a 403 problem).
    assert_eq!(r.status().as_u16(), 200);
}

#[actix_web::test]
async fn one_enterprise_cannot_issue_and_revoke_without_bound() {
    let app = TestApp::spawn_with(|c| c.enterprise_certificate_changes_per_minute = 4).await;
    let (key, _) = app.user("svc-rate", true, "acme", None).await;
    let (_, manager) = app.user("rate-mgr", false, "acme", None).await;
    let create = |token: String| {
        let key = key.clone();
        let app = &app;
        async move {
            app.post(
                "/api/v4/manage/mqtt-certificates/",
                &token,
                json!({"name": "r", "api_key_id": key}),
            )
            .await
        }
    };
    let first = create(manager.clone()).await;
    assert_eq!(first.status, 201);
    for _ in 0..2 {
        assert_eq!(create(manager.clone()).await.status, 201);
    }
    let id = first.body["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/v4/manage/mqtt-certificates/{id}/revoke/"),
            &manager,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "a revocation counts too");
    let refused = create(manager.clone()).await;
    assert_problem(&refused, 429);
    let retry: u64 = refused
        .headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    // Another enterprise, and the operators, are not held back by acme's burst.
    let (gkey, _) = app.user("svc-globex", true, "globex", None).await;
    let (_, gmanager) = app.user("globex-mgr", false, "globex", None).await;
    let r = app
        .post(
            "/api/v4/manage/mqtt-certificates/",
            &gmanager,
            json!({"name": "g", "api_key_id": gkey}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(create(app.admin.clone()).await.status, 201);
}

#[actix_web::test]
async fn a_json_array_never_fills_an_objects_fields_and_fleetcas_own_names_are_reserved() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/v4/manage/users/",
            &app.admin,
            json!(["svc-array", true, null, null, null]),
        )
        .await;
    assert_problem(&r, 400);
    assert_eq!(
        app.get("/api/v4/manage/users/?search=svc-array", &app.admin).await.body["count"],
        0
    );
    let r = app
        .post(
            "/api/v4/manage/users/",
            &app.admin,
            json!({"username": "fleetca-activation", "is_service_account": true}),
        )
        .await;
    assert_field_error(&r, "username");
    let (key, _) = app.user("svc-null", true, "acme", None).await;
    let cert = app.certificate(&key, "null body").await;
    let id = cert["id"].as_str().unwrap();
    let r = app
        .send_raw(
            "POST",
            &format!("/api/v4/manage/mqtt-certificates/{id}/revoke/"),
            Some(&app.admin),
            "application/json",
            b"null".to_vec(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["reason"], "unspecified");
}

#[actix_web::test]
async fn an_api_key_may_not_take_the_name_of_another_enterprises_device() {
    // A device certificate's CN is its device id; a broker that takes the CN as the MQTT
    // username (mosquitto's use_identity_as_username, RabbitMQ's ssl_cert_login) would take
    // acme's device certificate for globex's API key of the same name.
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/v4/manage/devices/",
            &app.admin,
            json!({"device_id": "svc-globex-ingest-7571", "tenant": "acme", "password": "device-password-1"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (_, globex) = app.user("globex-manager", false, "globex", None).await;
    let r = app
        .post(
            "/api/v4/manage/users/",
            &globex,
            json!({"username": "svc-globex-ingest-7571", "is_service_account": true}),
        )
        .await;
    let body = assert_problem(&r, 409);
    assert!(body["detail"].as_str().unwrap().contains("device"), "{body}");
    let users = app.get("/api/v4/manage/users/?search=svc-globex", &app.admin).await;
    assert_eq!(users.body["count"], 0, "nothing was created: {}", users.body);
}

#[actix_web::test]
async fn a_flood_of_bad_tokens_writes_a_bounded_number_of_audit_records() {
    let app = TestApp::spawn().await;
    for i in 0..120 {
        let r = app
            .get(
                "/api/v4/manage/users/",
                &format!("fca_0123456789ab_wrong-secret-{i:04}"),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    let failed = app
        .get(
            "/api/v4/manage/audit/?action=auth.token_failed&page_size=500",
            &app.admin,
        )
        .await;
    assert_eq!(failed.status, 200, "{}", failed.body);
    assert_eq!(
        failed.body["count"], 20,
        "one by one up to the minute's budget, the rest counted into one summary"
    );
    // Legitimate changes are still recorded.
    app.user("svc-after-flood", true, "acme", None).await;
    let created = app.get("/api/v4/manage/audit/?action=user.create", &app.admin).await;
    assert!(created.body.to_string().contains("svc-after-flood"), "{}", created.body);
}

#[actix_web::test]
async fn a_method_a_path_does_not_take_is_a_405_naming_the_ones_it_does() {
    let app = TestApp::spawn().await;
    for (method, path, allow) in [
        ("PUT", "/api/v4/manage/users/", "GET, POST"),
        ("DELETE", "/api/v4/manage/mqtt-certificates/revoke/", "POST"),
        ("PATCH", "/healthz", "GET"),
    ] {
        let r = app.send(method, path, Some(&app.admin), None).await;
        assert_eq!(r.status, 405, "{method} {path}: {}", r.body);
        assert_eq!(
            r.headers.get("allow").map(|v| v.to_str().unwrap()),
            Some(allow),
            "{method} {path}"
        );
    }
}

#[actix_web::test]
async fn a_server_certificate_with_thousands_of_names_is_refused() {
    let app = TestApp::spawn().await;
    let names: Vec<String> = (0..3_000).map(|i| format!("b{i}.example.test")).collect();
    let r = app
        .post(
            "/api/v4/manage/server-certificates/",
            &app.admin,
            json!({"dns_names": names}),
        )
        .await;
    assert_field_error(&r, "dns_names");
    let r = app.get("/api/v4/manage/server-certificates/", &app.admin).await;
    assert_eq!(r.body["count"], 0, "nothing was issued: {}", r.body);
}

#[actix_web::test]
async fn acknowledging_a_repair_that_is_not_open_is_a_404_and_managers_may_not() {
    let app = TestApp::spawn().await;
    let path = format!("/api/v4/manage/repairs/{}/acknowledge/", uuid::Uuid::new_v4());
    assert_problem(&app.post(&path, &app.admin, json!({})).await, 404);
    let (_, manager) = app.user("ops-manager", false, "acme", None).await;
    assert_problem(&app.post(&path, &manager, json!({})).await, 403);
    assert_problem(&app.get("/api/v4/manage/repairs/", &manager).await, 403);
    let open = app.get("/api/v4/manage/repairs/", &app.admin).await;
    assert_eq!(open.body, json!([]), "a fresh installation has repaired nothing");
}
