//! Products of sign-based devices, their devices, and HTTPS dynamic registration, through
//! the API; sign passwords computed with openssl, not fleetca.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_field_error, assert_problem, openssl_dgst};

const PK: &str = "a1b2c3d4e5f";

async fn product(app: &TestApp, token: &str, body: Value) -> Value {
    let r = app.post("/api/v4/manage/products/", token, body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
    r.body
}

fn enos_password(client_id: &str, device_key: &str, ts: &str, secret: &str) -> String {
    let content = format!("clientId{client_id}deviceKey{device_key}productKey{PK}timestamp{ts}{secret}");
    openssl_dgst(&["-sha256"], content.as_bytes()).to_uppercase()
}

async fn broker_auth(app: &TestApp, username: &str, clientid: &str, password: &str) -> u16 {
    app.send(
        "POST",
        "/broker/auth",
        None,
        Some(json!({"username": username, "clientid": clientid, "password": password})),
    )
    .await
    .status
}

#[actix_web::test]
async fn a_product_secret_is_shown_once_and_sealed_at_rest() {
    let app = TestApp::spawn().await;
    let created = product(
        &app,
        &app.admin,
        json!({"product_key": PK, "name": "Meters", "scheme": "enos", "enterprise": "acme"}),
    )
    .await;
    let secret = created["product_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32);
    // No freshness check unless asked for, as on the platforms.
    assert_eq!(created["max_clock_skew_seconds"], Value::Null);
    let got = app.get(&format!("/api/v4/manage/products/{PK}/"), &app.admin).await;
    assert_eq!(got.status, 200);
    assert!(got.body.get("product_secret").is_none());
    assert!(
        !String::from_utf8_lossy(&app.database_bytes()).contains(&secret),
        "product secret stored in clear"
    );
    let dup = app
        .post(
            "/api/v4/manage/products/",
            &app.admin,
            json!({"product_key": PK, "name": "x", "scheme": "enos"}),
        )
        .await;
    assert_problem(&dup, 409);
    let rotated = app
        .send(
            "POST",
            &format!("/api/v4/manage/products/{PK}/rotate-secret/"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(rotated.status, 200);
    assert_ne!(rotated.body["product_secret"], secret);
    let generated = product(
        &app,
        &app.admin,
        json!({"name": "Lamps", "scheme": "aliyun", "max_clock_skew_seconds": null}),
    )
    .await;
    assert!(generated["product_key"].as_str().unwrap().len() >= 11);
    assert_eq!(generated["max_clock_skew_seconds"], Value::Null);
}

#[actix_web::test]
async fn bad_product_input_is_refused_by_field_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    for (body, field) in [
        (
            json!({"product_key": "abc", "name": "x", "scheme": "enos"}),
            "product_key",
        ),
        (
            json!({"product_key": "has space in it", "name": "x", "scheme": "enos"}),
            "product_key",
        ),
        (json!({"name": "", "scheme": "enos"}), "name"),
        (
            json!({"name": "x", "scheme": "enos", "max_clock_skew_seconds": 0}),
            "max_clock_skew_seconds",
        ),
        (
            json!({"name": "x", "scheme": "enos", "enterprise": "Bad"}),
            "enterprise",
        ),
        (json!({"name": "x", "scheme": "mqtt"}), "scheme"),
        (
            json!({"name": "x", "scheme": "enos", "product_secret": "too-short"}),
            "product_secret",
        ),
        (
            json!({"name": "x", "scheme": "enos", "product_secret": "has a space in the secret"}),
            "product_secret",
        ),
    ] {
        let r = app.post("/api/v4/manage/products/", &app.admin, body.clone()).await;
        assert_field_error(&r, field);
    }
    assert_eq!(app.get("/api/v4/manage/products/", &app.admin).await.body["count"], 0);
    product(
        &app,
        &app.admin,
        json!({"product_key": PK, "name": "M", "scheme": "enos"}),
    )
    .await;
    for (body, field) in [
        (json!({"device_key": "a&b"}), "device_key"),
        (
            json!({"device_key": "d-1", "device_secret": "only-15-chars-x"}),
            "device_secret",
        ),
        (json!({"device_key": "d-1", "description": "a\u{0}"}), "description"),
    ] {
        let r = app
            .post(&format!("/api/v4/manage/products/{PK}/devices/"), &app.admin, body)
            .await;
        assert_field_error(&r, field);
    }
    let r = app
        .post(
            &format!("/api/v4/manage/products/{PK}/devices/bulk/"),
            &app.admin,
            json!([{"device_key": "ok-1"}, {"device_key": "ok-1"}, {"device_key": "bad|key"}]),
        )
        .await;
    assert_field_error(&r, "2.device_key");
    assert_eq!(
        app.get(&format!("/api/v4/manage/products/{PK}/devices/"), &app.admin)
            .await
            .body["count"],
        0
    );
}

#[actix_web::test]
async fn managers_see_their_enterprises_products_only_and_api_keys_none() {
    let app = TestApp::spawn().await;
    product(
        &app,
        &app.admin,
        json!({"product_key": PK, "name": "G", "scheme": "enos", "enterprise": "globex"}),
    )
    .await;
    let (_, manager) = app.user("acme-mgr", false, "acme", None).await;
    let (_, key) = app.user("svc-p", true, "acme", None).await;
    assert_problem(&app.get(&format!("/api/v4/manage/products/{PK}/"), &manager).await, 404);
    assert_problem(
        &app.post(
            &format!("/api/v4/manage/products/{PK}/devices/"),
            &manager,
            json!({"device_key": "d"}),
        )
        .await,
        404,
    );
    assert_eq!(app.get("/api/v4/manage/products/", &manager).await.body["count"], 0);
    assert_problem(&app.get("/api/v4/manage/products/", &key).await, 403);
    let mine = product(&app, &manager, json!({"name": "A", "scheme": "aliyun"})).await;
    assert_eq!(mine["enterprise"], "acme");
    let r = app
        .post(
            "/api/v4/manage/products/",
            &manager,
            json!({"name": "B", "scheme": "aliyun", "enterprise": "globex"}),
        )
        .await;
    assert_problem(&r, 403);
}

#[actix_web::test]
async fn an_enos_device_connects_with_its_secret_until_disabled() {
    let app = TestApp::spawn().await;
    product(
        &app,
        &app.admin,
        json!({"product_key": PK, "name": "M", "scheme": "enos", "dynamic_activation": true}),
    )
    .await;
    let r = app
        .post(
            &format!("/api/v4/manage/products/{PK}/devices/"),
            &app.admin,
            json!({"device_key": "meter-1", "device_secret": "abcdefgh-given-0123"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body.get("device_secret").is_none(), "a given secret is never echoed");
    assert_eq!(r.body["mqtt_username"], format!("meter-1&{PK}"));
    let ts = chrono::Utc::now().timestamp_millis().to_string();
    let clientid = format!("c1|securemode=2,signmethod=sha256,timestamp={ts}|");
    let username = format!("meter-1&{PK}");
    let password = enos_password("c1", "meter-1", &ts, "abcdefgh-given-0123");
    assert_eq!(broker_auth(&app, &username, &clientid, &password).await, 200);
    assert_eq!(
        broker_auth(&app, &username, &clientid, "0".repeat(64).as_str()).await,
        403
    );
    let device = app
        .get(&format!("/api/v4/manage/products/{PK}/devices/meter-1/"), &app.admin)
        .await;
    assert_eq!(device.body["activated"], true);
    let r = app
        .send(
            "PATCH",
            &format!("/api/v4/manage/products/{PK}/devices/meter-1/"),
            Some(&app.admin),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(broker_auth(&app, &username, &clientid, &password).await, 403);
    let r = app
        .send(
            "DELETE",
            &format!("/api/v4/manage/products/{PK}/"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_problem(
        &app.get(&format!("/api/v4/manage/products/{PK}/devices/meter-1/"), &app.admin)
            .await,
        404,
    );
}

async fn register(app: &TestApp, form: &[(&str, &str)]) -> Value {
    let body = serde_urlencoded::to_string(form).unwrap().into_bytes();
    let r = app
        .send_raw(
            "POST",
            "/auth/register/device",
            None,
            "application/x-www-form-urlencoded",
            body,
        )
        .await;
    assert_eq!(
        r.status,
        200,
        "always 200 with a code: {}",
        String::from_utf8_lossy(&r.raw)
    );
    r.body
}

#[actix_web::test]
async fn https_dynamic_registration_hands_out_the_secret_once() {
    let app = TestApp::spawn().await;
    let created = product(
        &app,
        &app.admin,
        json!({"product_key": PK, "name": "L", "scheme": "aliyun", "dynamic_activation": true}),
    )
    .await;
    let product_secret = created["product_secret"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/v4/manage/products/{PK}/devices/"),
            &app.admin,
            json!({"device_key": "lamp-7"}),
        )
        .await;
    let device_secret = r.body["device_secret"].as_str().unwrap().to_owned();
    let sign = |method: &str, name: &str, random: &str, key: &str| {
        let content = format!("deviceName{name}productKey{PK}random{random}");
        openssl_dgst(&[&format!("-{method}"), "-hmac", key], content.as_bytes())
    };
    let bad = register(
        &app,
        &[
            ("productKey", PK),
            ("deviceName", "lamp-7"),
            ("random", "r1"),
            ("signMethod", "hmacsha256"),
            ("sign", &sign("sha256", "lamp-7", "r1", "wrong")),
        ],
    )
    .await;
    assert_eq!(bad["code"], 403, "{bad}");
    let missing = register(&app, &[("productKey", PK), ("deviceName", "lamp-7")]).await;
    assert_eq!(missing["code"], 400);
    let unknown = register(
        &app,
        &[
            ("productKey", PK),
            ("deviceName", "lamp-0"),
            ("random", "r1"),
            ("signMethod", "hmacsha1"),
            ("sign", &sign("sha1", "lamp-0", "r1", &product_secret)),
        ],
    )
    .await;
    assert_eq!(unknown["code"], 403);
    let ok = register(
        &app,
        &[
            ("productKey", PK),
            ("deviceName", "lamp-7"),
            ("random", "r2"),
            ("signMethod", "hmacmd5"),
            ("sign", &sign("md5", "lamp-7", "r2", &product_secret)),
        ],
    )
    .await;
    assert_eq!(ok["code"], 200, "{ok}");
    assert_eq!(ok["data"]["deviceSecret"], device_secret);
    let again = register(
        &app,
        &[
            ("productKey", PK),
            ("deviceName", "lamp-7"),
            ("random", "r3"),
            ("signMethod", "hmacsha1"),
            ("sign", &sign("sha1", "lamp-7", "r3", &product_secret)),
        ],
    )
    .await;
    assert_eq!(again["code"], 403, "a second registration is refused until reset");
    let r = app
        .send(
            "POST",
            &format!("/api/v4/manage/products/{PK}/devices/lamp-7/reset-activation/"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["activated"], false);
}

#[actix_web::test]
async fn registration_is_rate_limited_per_product() {
    let app = TestApp::spawn_with(|c| c.registrations_per_minute = 3).await;
    product(
        &app,
        &app.admin,
        json!({"product_key": PK, "name": "L", "scheme": "aliyun", "dynamic_activation": true}),
    )
    .await;
    let form = [
        ("productKey", PK),
        ("deviceName", "x"),
        ("random", "r"),
        ("signMethod", "hmacsha1"),
        ("sign", "00"),
    ];
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(register(&app, &form).await["code"].as_u64().unwrap());
    }
    assert_eq!(codes, vec![403, 403, 403, 429, 429]);
}

#[actix_web::test]
async fn bulk_registers_all_or_nothing_with_conflicts_by_row() {
    let app = TestApp::spawn().await;
    product(
        &app,
        &app.admin,
        json!({"product_key": PK, "name": "M", "scheme": "enos"}),
    )
    .await;
    let rows: Vec<Value> = (0..500).map(|i| json!({"device_key": format!("m-{i}")})).collect();
    let r = app
        .post(
            &format!("/api/v4/manage/products/{PK}/devices/bulk/"),
            &app.admin,
            Value::Array(rows),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["created"], 500);
    assert!(r.body["results"][0]["device_secret"].as_str().is_some());
    let r = app
        .post(
            &format!("/api/v4/manage/products/{PK}/devices/bulk/"),
            &app.admin,
            json!([{"device_key": "new-1"}, {"device_key": "m-3"}]),
        )
        .await;
    let body = assert_problem(&r, 409);
    assert!(body["errors"]["1.device_key"].is_array(), "{body}");
    assert_problem(
        &app.get(&format!("/api/v4/manage/products/{PK}/devices/new-1/"), &app.admin)
            .await,
        404,
    );
}

#[actix_web::test]
async fn an_enos_product_key_of_8_and_a_device_key_of_10_characters_log_in() {
    // EnOS issues 8-character product keys (`EhoS3s9r`) and often 10-character device keys.
    let app = TestApp::spawn().await;
    let pk = "EhoS3s9r";
    product(
        &app,
        &app.admin,
        json!({"product_key": pk, "name": "Inverters", "scheme": "enos"}),
    )
    .await;
    let r = app
        .post(
            &format!("/api/v4/manage/products/{pk}/devices/"),
            &app.admin,
            json!({"device_key": "Xy7dK2mQ9a", "device_secret": "Gq8vRk2LmT5xWz7NcY4pHb6JdF3sAe9U"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["mqtt_username"], format!("Xy7dK2mQ9a&{pk}"));
    assert_eq!(r.body["activated"], true, "a device given its secret holds it already");
    // What the official SDK sends: signmethod=hmacsha256, a plain SHA-256 in lower case, a
    // timestamp with a fraction.
    let ts = format!("{}.586", chrono::Utc::now().timestamp_millis());
    let content =
        format!("clientIdXy7dK2mQ9adeviceKeyXy7dK2mQ9aproductKey{pk}timestamp{ts}Gq8vRk2LmT5xWz7NcY4pHb6JdF3sAe9U");
    let password = openssl_dgst(&["-sha256"], content.as_bytes());
    let clientid = format!("Xy7dK2mQ9a|securemode=2,signmethod=hmacsha256,timestamp={ts}|");
    assert_eq!(
        broker_auth(&app, &format!("Xy7dK2mQ9a&{pk}"), &clientid, &password).await,
        200
    );
    assert_eq!(
        broker_auth(&app, &format!("Xy7dK2mQ9a&{pk}"), &clientid, &"0".repeat(64)).await,
        403
    );
}

#[actix_web::test]
async fn an_imported_product_secret_serves_dynamic_activation_and_is_never_shown() {
    let app = TestApp::spawn().await;
    let product_secret = "Imported-Product-Secret-0001";
    let created = product(
        &app,
        &app.admin,
        json!({"product_key": "a1Imported9", "name": "Moved", "scheme": "aliyun",
               "dynamic_activation": true, "product_secret": product_secret}),
    )
    .await;
    assert!(
        created.get("product_secret").is_none(),
        "a given secret is never echoed: {created}"
    );
    let r = app
        .post(
            "/api/v4/manage/products/a1Imported9/devices/",
            &app.admin,
            json!({"device_key": "lamp-1"}),
        )
        .await;
    assert_eq!(
        r.body["activated"], false,
        "a generated secret is the device's to fetch"
    );
    let device_secret = r.body["device_secret"].as_str().unwrap().to_owned();
    let sign = openssl_dgst(
        &["-sha256", "-hmac", product_secret],
        b"deviceNamelamp-1productKeya1Imported9randomr1",
    );
    let ok = register(
        &app,
        &[
            ("productKey", "a1Imported9"),
            ("deviceName", "lamp-1"),
            ("random", "r1"),
            ("signMethod", "hmacsha256"),
            ("sign", &sign),
        ],
    )
    .await;
    assert_eq!(ok["code"], 200, "{ok}");
    assert_eq!(ok["data"]["deviceSecret"], device_secret);
    // Never shown again, nor stored in clear, nor in the audit log.
    let got = app.get("/api/v4/manage/products/a1Imported9/", &app.admin).await;
    assert!(got.body.get("product_secret").is_none());
    assert!(!got.body.to_string().contains(product_secret));
    let audit = app.get("/api/v4/manage/audit/?page_size=100", &app.admin).await;
    assert!(!audit.body.to_string().contains(product_secret), "{}", audit.body);
    assert!(
        !String::from_utf8_lossy(&app.database_bytes()).contains(product_secret),
        "product secret stored in clear"
    );
}

/// EMQX's `auto_subscribe` (its documentation: a topic template whose `${username}` is
/// replaced by the client's username, the subscription made on connect without a SUBSCRIBE
/// from the client) with `/ext/session/${username}/activation/thing/activate/info`, for
/// EnOS's SDK, which never subscribes to its activation topic. Recorded contract: EMQX
/// cannot run here. The SDK's activation login is allowed; EMQX's authorization of that
/// subscription for the template's topic is allowed for its own username only, read only.
#[actix_web::test]
async fn emqx_auto_subscribe_delivers_activation_to_an_enos_sdk_that_never_subscribes() {
    let app = TestApp::spawn_with(|c| {
        c.mqtt = Some(fleetca::brokers::activation::MqttSettings {
            url: "mqtt://127.0.0.1:9".into(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            username: "fleetca-activation".into(),
        })
    })
    .await;
    let product_secret = "EnOS-product-secret-0002";
    product(
        &app,
        &app.admin,
        json!({"product_key": "EhoS3s9r", "name": "Inverters", "scheme": "enos",
               "dynamic_activation": true, "product_secret": product_secret}),
    )
    .await;
    for dk in ["dk00000001", "dk00000002"] {
        let r = app
            .post(
                "/api/v4/manage/products/EhoS3s9r/devices/",
                &app.admin,
                json!({"device_key": dk}),
            )
            .await;
        assert_eq!(r.body["activated"], false);
    }
    // enos-mqtt-sdk-python with only the product secret: securemode=3, hmacsha256 (a plain
    // SHA-256), its client id the device key.
    let ts = format!("{}.125", chrono::Utc::now().timestamp_millis());
    let content = format!("clientIddk00000001deviceKeydk00000001productKeyEhoS3s9rtimestamp{ts}{product_secret}");
    let password = openssl_dgst(&["-sha256"], content.as_bytes());
    let clientid = format!("dk00000001|securemode=3,signmethod=hmacsha256,timestamp={ts}|");
    let username = "dk00000001&EhoS3s9r";
    let authn = app
        .send(
            "POST",
            "/broker/emqx/authn",
            None,
            Some(json!({"username": username, "clientid": clientid, "password": password})),
        )
        .await;
    assert_eq!(authn.body["result"], "allow", "{}", authn.body);
    // `${username}` substituted as EMQX does.
    let template = "/ext/session/${username}/activation/thing/activate/info";
    let topic = template.replace("${username}", username);
    let authz = |topic: &str, action: &str, username: &str, clientid: &str| {
        let body = json!({"username": username, "clientid": clientid, "topic": topic, "action": action});
        let app = &app;
        async move {
            app.send("POST", "/broker/emqx/authz", None, Some(body)).await.body["result"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    assert_eq!(authz(&topic, "subscribe", username, &clientid).await, "allow");
    assert_eq!(authz(&topic, "publish", username, &clientid).await, "deny");
    let other = template.replace("${username}", "dk00000002&EhoS3s9r");
    assert_eq!(authz(&other, "subscribe", username, &clientid).await, "deny");
    // Nobody else reads it: an API key, or the device once it logs in with its secret.
    app.user("svc-reader", true, "acme", None).await;
    assert_eq!(authz(&topic, "subscribe", "svc-reader", "reader").await, "deny");
}
