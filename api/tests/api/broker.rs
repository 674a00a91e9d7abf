use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, openssl_dgst};

const HA1: &str = "939e7578ed9e3c518a452acee763bce9";

/// HMAC-SHA256 keyed with the HA1's hex characters, computed by openssl, not fleetca.
fn openssl_signature(ha1: &str, timestamp: i64) -> String {
    openssl_dgst(&["-sha256", "-hmac", ha1], timestamp.to_string().as_bytes())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn device_password(ts: i64) -> String {
    format!("signature={}&timestamp={ts}", openssl_signature(HA1, ts))
}

async fn with_device(app: &TestApp) {
    let r = app
        .post(
            "/api/v4/manage/devices/",
            &app.admin,
            json!({"device_id": "dev-1", "tenant": "acme", "ha1": HA1}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

async fn auth(app: &TestApp, body: Value) -> u16 {
    app.send("POST", "/broker/auth", None, Some(body)).await.status
}

async fn emqx(app: &TestApp, path: &str, body: Value) -> Value {
    let r = app.send("POST", path, None, Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[actix_web::test]
async fn a_device_signs_in_with_an_hmac_of_the_time() {
    let app = TestApp::spawn().await;
    with_device(&app).await;
    let ok =
        |ts: i64| json!({"username": "device=dev-1&tenant=acme", "password": device_password(ts), "clientid": "dev-1"});
    assert_eq!(auth(&app, ok(now())).await, 200);
    // Five seconds from each edge of the 300 s window: the test's clock and the server's may
    // read different seconds (a second boundary between them flaked on a slow PostgreSQL run).
    assert_eq!(auth(&app, ok(now() - 295)).await, 200);
    assert_eq!(auth(&app, ok(now() + 295)).await, 200);
    assert_eq!(auth(&app, ok(now() - 305)).await, 403);
    assert_eq!(auth(&app, ok(now() + 305)).await, 403);
    // Fields swapped, or percent-encoded, still name the same device.
    let ts = now();
    let swapped = json!({"username": "tenant=acme&device=dev-1", "password": format!("timestamp={ts}&signature={}", openssl_signature(HA1, ts)), "clientid": "dev-1"});
    assert_eq!(auth(&app, swapped).await, 200);
    let encoded =
        json!({"username": "device=dev%2D1&tenant=ac%6De", "password": device_password(now()), "clientid": "dev-1"});
    assert_eq!(auth(&app, encoded).await, 200);
    // Wrong client id, tampered signature, unknown device, garbage.
    let mut wrong_client = ok(now());
    wrong_client["clientid"] = json!("dev-2");
    assert_eq!(auth(&app, wrong_client).await, 403);
    let mut tampered = ok(now());
    let p = tampered["password"]
        .as_str()
        .unwrap()
        .replacen("signature=", "signature=0", 1)
        .replacen("signature=0", "signature=", 1);
    let flipped = p.replacen(&p[10..11], if &p[10..11] == "a" { "b" } else { "a" }, 1);
    tampered["password"] = json!(flipped);
    assert_eq!(auth(&app, tampered).await, 403);
    let unknown =
        json!({"username": "device=nope&tenant=acme", "password": device_password(now()), "clientid": "nope"});
    assert_eq!(auth(&app, unknown).await, 403);
    let swapped_fields =
        json!({"username": "device=acme&tenant=dev-1", "password": device_password(now()), "clientid": "acme"});
    assert_eq!(auth(&app, swapped_fields).await, 403);
    assert_eq!(
        auth(
            &app,
            json!({"username": "device=dev-1&tenant=acme", "password": "hunter2", "clientid": "dev-1"})
        )
        .await,
        403
    );
}

#[actix_web::test]
async fn a_disabled_or_rotated_device_is_refused_on_the_next_call() {
    let app = TestApp::spawn().await;
    with_device(&app).await;
    let body =
        || json!({"username": "device=dev-1&tenant=acme", "password": device_password(now()), "clientid": "dev-1"});
    assert_eq!(auth(&app, body()).await, 200);
    app.send(
        "PATCH",
        "/api/v4/manage/devices/acme/dev-1/",
        Some(&app.admin),
        Some(json!({"is_active": false})),
    )
    .await;
    assert_eq!(auth(&app, body()).await, 403);
    app.send(
        "PATCH",
        "/api/v4/manage/devices/acme/dev-1/",
        Some(&app.admin),
        Some(json!({"is_active": true})),
    )
    .await;
    assert_eq!(auth(&app, body()).await, 200);
    let r = app
        .send(
            "PUT",
            "/api/v4/manage/devices/acme/dev-1/credentials/",
            Some(&app.admin),
            Some(json!({"password": "a-new-password"})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(auth(&app, body()).await, 403, "the old HA1 no longer works");
}

#[actix_web::test]
async fn an_api_key_signs_in_with_its_username_and_token() {
    let app = TestApp::spawn().await;
    let (id, token) = app.user("svc-mqtt", true, "acme", None).await;
    let (_, other_token) = app.user("svc-other", true, "acme", None).await;
    assert_eq!(
        auth(
            &app,
            json!({"username": "svc-mqtt", "password": token, "clientid": "anything"})
        )
        .await,
        200
    );
    assert_eq!(
        auth(
            &app,
            json!({"username": "svc-mqtt", "password": other_token, "clientid": "x"})
        )
        .await,
        403
    );
    assert_eq!(
        auth(
            &app,
            json!({"username": "svc-mqtt", "password": "wrong", "clientid": "x"})
        )
        .await,
        403
    );
    // Humans are not MQTT clients.
    assert_eq!(
        auth(
            &app,
            json!({"username": "admin", "password": app.admin, "clientid": "x"})
        )
        .await,
        403
    );
    app.send("DELETE", &format!("/api/v4/manage/users/{id}/"), Some(&app.admin), None)
        .await;
    assert_eq!(
        auth(
            &app,
            json!({"username": "svc-mqtt", "password": token, "clientid": "x"})
        )
        .await,
        403
    );
}

#[actix_web::test]
async fn a_client_certificate_is_accepted_until_revoked() {
    let app = TestApp::spawn().await;
    let (key_id, _) = app.user("svc-cert", true, "acme", None).await;
    // No certificate yet: a password-less username is refused.
    assert_eq!(auth(&app, json!({"username": "svc-cert", "clientid": "c"})).await, 403);
    let cert = app.certificate(&key_id, "broker client").await;
    let fp = cert["fingerprint"].as_str().unwrap();
    // Safe by default: a username alone is not a certificate, even with one active.
    assert_eq!(auth(&app, json!({"username": "svc-cert", "clientid": "c"})).await, 403);
    assert_eq!(
        emqx(
            &app,
            "/broker/emqx/authn",
            json!({"username": "svc-cert", "password": ""})
        )
        .await["result"],
        "deny"
    );
    assert_eq!(
        auth(&app, json!({"username": "svc-cert", "cert_fingerprint": fp})).await,
        200
    );
    assert_eq!(
        auth(
            &app,
            json!({"username": "svc-cert", "cert_pem": cert["certificate_pem"]})
        )
        .await,
        200
    );
    assert_eq!(
        auth(
            &app,
            json!({"username": "svc-cert", "cert_fingerprint": "00".repeat(32)})
        )
        .await,
        403
    );
    // EMQX 5.8+ learns when the certificate expires, and ends the session then by itself.
    let granted = emqx(
        &app,
        "/broker/emqx/authn",
        json!({"username": "svc-cert", "password": "", "cert_pem": cert["certificate_pem"]}),
    )
    .await;
    assert_eq!(granted["result"], "allow");
    let not_after = chrono::DateTime::parse_from_rfc3339(cert["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(granted["expire_at"], not_after.timestamp(), "{granted}");
    assert!(
        granted["acl"]
            .as_array()
            .unwrap()
            .iter()
            .any(|rule| rule["permission"] == "allow" && rule["topic"].as_str().unwrap().contains("acme")),
        "{granted}"
    );
    app.post(
        &format!(
            "/api/v4/manage/mqtt-certificates/{}/revoke/",
            cert["id"].as_str().unwrap()
        ),
        &app.admin,
        json!({}),
    )
    .await;
    assert_eq!(
        auth(&app, json!({"username": "svc-cert", "cert_fingerprint": fp})).await,
        403
    );
    assert_eq!(
        auth(
            &app,
            json!({"username": "svc-cert", "cert_pem": cert["certificate_pem"]})
        )
        .await,
        403
    );
    assert_eq!(
        auth(&app, json!({"username": "svc-cert"})).await,
        403,
        "no active certificate left"
    );
}

#[actix_web::test]
async fn every_request_shape_and_response_mode_is_understood() {
    let app = TestApp::spawn().await;
    with_device(&app).await;
    let pw = device_password(now());
    for id_field in ["clientid", "client_id", "clientId"] {
        let body = json!({"username": "device=dev-1&tenant=acme", "password": pw, id_field: "dev-1"});
        assert_eq!(auth(&app, body).await, 200, "{id_field} as JSON");
        let form = serde_urlencoded::to_string([
            ("username", "device=dev-1&tenant=acme"),
            ("password", pw.as_str()),
            (id_field, "dev-1"),
        ])
        .unwrap();
        let r = app
            .send_raw(
                "POST",
                "/broker/auth",
                None,
                "application/x-www-form-urlencoded",
                form.into_bytes(),
            )
            .await;
        assert_eq!(r.status, 200, "{id_field} as a form");
    }
    let good = json!({"username": "device=dev-1&tenant=acme", "password": pw, "clientid": "dev-1"});
    let bad = json!({"username": "device=dev-1&tenant=acme", "password": "x", "clientid": "dev-1"});
    let r = app
        .send("POST", "/broker/auth?response=json", None, Some(good.clone()))
        .await;
    assert_eq!((r.status, r.body.clone()), (200, json!({"ok": true})));
    let r = app
        .send("POST", "/broker/auth?response=json", None, Some(bad.clone()))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["ok"], false);
    assert_eq!(r.body["error"], "not authorized", "no hint of which part was wrong");
    let r = app.send("POST", "/broker/emqx/authn", None, Some(good)).await;
    assert_eq!(
        (&r.body["result"], &r.body["is_superuser"]),
        (&json!("allow"), &json!(false))
    );
    // EMQX 5.8+ takes the device's rules with the answer: activation topics denied first,
    // its own topics with the placeholders filled, everything else denied last.
    assert!(
        r.body.get("expire_at").is_none(),
        "a password does not expire: {}",
        r.body
    );
    let acl = r.body["acl"].as_array().unwrap();
    assert_eq!(
        acl.first().unwrap(),
        &json!({"permission": "deny", "action": "all", "topic": "/ext/session/+/+/thing/activate/info"})
    );
    assert_eq!(
        acl.last().unwrap(),
        &json!({"permission": "deny", "action": "all", "topic": "#"})
    );
    assert!(
        acl.iter()
            .any(|rule| rule["permission"] == "allow" && rule["topic"].as_str().unwrap().contains("acme/dev-1")),
        "{acl:?}"
    );
    assert!(
        !acl.iter().any(|rule| rule["topic"].as_str().unwrap().contains('{')),
        "{acl:?}"
    );
    let r = app.send("POST", "/broker/emqx/authn", None, Some(bad)).await;
    assert_eq!(r.body["result"], "deny");
    // EMQX 4 / RMQTT form shape.
    let form = serde_urlencoded::to_string([
        ("username", "device=dev-1&tenant=acme"),
        ("password", pw.as_str()),
        ("clientid", "dev-1"),
        ("ipaddr", "127.0.0.1"),
        ("protocol", "mqtt"),
    ])
    .unwrap();
    let r = app
        .send_raw(
            "POST",
            "/broker/emqx/authn",
            None,
            "application/x-www-form-urlencoded",
            form.into_bytes(),
        )
        .await;
    assert_eq!(r.body["result"], "allow");
    // amqtt's default: GET with a JSON body; also a plain query string.
    let r = app
        .send(
            "GET",
            "/broker/auth",
            None,
            Some(json!({"username": "device=dev-1&tenant=acme", "password": pw, "clientid": "dev-1"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let q = serde_urlencoded::to_string([
        ("username", "device=dev-1&tenant=acme"),
        ("password", pw.as_str()),
        ("clientid", "dev-1"),
    ])
    .unwrap();
    assert_eq!(
        app.send("GET", &format!("/broker/auth?{q}"), None, None).await.status,
        200
    );
    // Nobody is a superuser.
    assert_eq!(
        app.send("POST", "/broker/superuser", None, Some(json!({"username": "admin"})))
            .await
            .status,
        403
    );
    let r = app
        .send(
            "POST",
            "/broker/superuser?response=json",
            None,
            Some(json!({"username": "admin"})),
        )
        .await;
    assert_eq!(r.body["ok"], false);
}

async fn acl(app: &TestApp, username: &str, clientid: &str, topic: &str, acc: u8) -> u16 {
    app.send(
        "POST",
        "/broker/acl",
        None,
        Some(json!({"username": username, "clientid": clientid, "topic": topic, "acc": acc})),
    )
    .await
    .status
}

#[actix_web::test]
async fn acls_keep_each_principal_in_its_own_topics() {
    let app = TestApp::spawn().await;
    with_device(&app).await;
    app.user("svc-acl", true, "nnn.acme", None).await;
    let d = "device=dev-1&tenant=acme";
    let table: &[(&str, &str, &str, u8, u16)] = &[
        ("svc-acl", "c", "v4/groups/nnn.acme.master/+/uplinks", 4, 200),
        ("svc-acl", "c", "v4/groups/nnn.acme.master/#", 4, 200),
        ("svc-acl", "c", "v4/groups/nnn.acme.master/d1/uplinks", 1, 200),
        ("svc-acl", "c", "v4/groups/nnn.acme.master/d1/uplinks", 2, 403),
        ("svc-acl", "c", "v4/groups/nnn.acme.master/d1/uplinks", 3, 403),
        ("svc-acl", "c", "v4/groups/#", 4, 403),
        ("svc-acl", "c", "v4/groups/+/d1/uplinks", 4, 403),
        ("svc-acl", "c", "+/groups/nnn.acme.master/#", 4, 403),
        ("svc-acl", "c", "v4/groups/nnn.globex.master/#", 4, 403),
        ("nobody", "c", "v4/groups/nnn.acme.master/#", 4, 403),
        (d, "dev-1", "devices/acme/dev-1/telemetry", 2, 200),
        (d, "dev-1", "devices/acme/dev-1/cmd/#", 4, 200),
        (d, "dev-1", "devices/acme/dev-1/cmd", 3, 200),
        (d, "dev-1", "devices/acme/+/telemetry", 4, 403),
        (d, "dev-1", "devices/acme/dev-2/telemetry", 2, 403),
        (d, "dev-2", "devices/acme/dev-1/telemetry", 2, 403),
        (d, "dev-1", "v4/groups/acme.master/#", 4, 403),
    ];
    for (user, client, topic, acc, expect) in table {
        assert_eq!(
            acl(&app, user, client, topic, *acc).await,
            *expect,
            "{user} {topic} acc={acc}"
        );
    }
    // EMQX 5 `action` and EMQX 4 / RMQTT `access` shapes.
    let r = app
        .send(
            "POST",
            "/broker/emqx/authz",
            None,
            Some(json!({"username": d, "clientid": "dev-1", "topic": "devices/acme/dev-1/t", "action": "publish"})),
        )
        .await;
    assert_eq!(r.body["result"], "allow");
    let r = app
        .send(
            "POST",
            "/broker/emqx/authz",
            None,
            Some(json!({"username": d, "clientid": "dev-1", "topic": "devices/#", "action": "subscribe"})),
        )
        .await;
    assert_eq!(r.body["result"], "deny");
    let form = serde_urlencoded::to_string([
        ("username", d),
        ("clientid", "dev-1"),
        ("topic", "devices/acme/dev-1/t"),
        ("access", "1"),
    ])
    .unwrap();
    let r = app
        .send_raw(
            "POST",
            "/broker/emqx/authz",
            None,
            "application/x-www-form-urlencoded",
            form.into_bytes(),
        )
        .await;
    assert_eq!(r.body["result"], "allow");
}

#[actix_web::test]
async fn broker_endpoints_answer_only_allowed_networks_and_the_shared_secret() {
    let app = TestApp::spawn_with(|c| c.broker_allow = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let r = app
        .send(
            "POST",
            "/broker/auth",
            None,
            Some(json!({"username": "x", "password": "y"})),
        )
        .await;
    assert_problem(&r, 403);
    let app =
        TestApp::spawn_with(|c| c.broker_secret = Some(fleetca::config::Secret::new("broker-shared-secret"))).await;
    let (_, token) = app.user("svc-s", true, "acme", None).await;
    let body = json!({"username": "svc-s", "password": token});
    assert_eq!(
        app.send("POST", "/broker/auth", None, Some(body.clone())).await.status,
        403
    );
    let r = app
        .client
        .post(app.url("/broker/auth"))
        .insert_header(("X-Broker-Secret", "broker-shared-secret"))
        .send_json(&body)
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[actix_web::test]
async fn a_username_alone_is_a_certificate_login_only_when_the_operator_says_so() {
    let app = TestApp::spawn_with(|c| c.broker_trust_username_for_certificates = true).await;
    let (key_id, _) = app.user("svc-trusted", true, "acme", None).await;
    assert_eq!(
        auth(&app, json!({"username": "svc-trusted", "clientid": "c"})).await,
        403
    );
    let cert = app.certificate(&key_id, "broker client").await;
    assert_eq!(
        auth(&app, json!({"username": "svc-trusted", "clientid": "c"})).await,
        200
    );
    app.post(
        &format!(
            "/api/v4/manage/mqtt-certificates/{}/revoke/",
            cert["id"].as_str().unwrap()
        ),
        &app.admin,
        json!({}),
    )
    .await;
    assert_eq!(
        auth(&app, json!({"username": "svc-trusted", "clientid": "c"})).await,
        403
    );
}

#[actix_web::test]
async fn the_plugins_feed_starts_a_follower_afresh_and_names_a_bad_broker_name() {
    let app = TestApp::spawn().await;
    let r = app
        .send("GET", "/broker/plugin/feed?broker=mosquitto-1", None, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["reset"], true, "a first poll forgets everything cached");
    assert!(r.body["cursor"].is_string());
    for bad in ["", "a,b", &"x".repeat(65)] {
        let r = app
            .send("GET", &format!("/broker/plugin/feed?broker={bad}&wait=0"), None, None)
            .await;
        let body = assert_problem(&r, 400);
        assert!(
            body["errors"]["broker"][0]
                .as_str()
                .unwrap()
                .contains("1 to 64 characters"),
            "{body}"
        );
    }
    // A login with no password and no certificate is nobody's, whatever else it says.
    let r = app
        .send(
            "POST",
            "/broker/plugin/login",
            None,
            Some(json!({"username": "nobody", "clientid": "c"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["result"], "deny");
}
