//! Claims, re-enrollment, Digest, device certificates and renewal over HTTP, on both
//! databases. The client certificate arrives as a trusted proxy's `X-SSL-Client-Cert`
//! header here (the TLS listener's own path is driven by the end-to-end tests).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::helpers::{Resp, TestApp, assert_field_error, assert_problem};

const CLAIMS: &str = "/api/v4/manage/claims/";

async fn proxied() -> TestApp {
    TestApp::spawn_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.renewal.window_percent = 100;
    })
    .await
}

fn csr_b64(cn: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    STANDARD
        .encode(params.serialize_request(&key).unwrap().der())
        .into_bytes()
}

fn escaped(pem: &str) -> String {
    percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn est(app: &TestApp, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> Resp {
    let mut req = app
        .client
        .post(app.url(path))
        .insert_header(("Content-Type", "application/pkcs10"));
    for (name, value) in headers {
        req = req.insert_header((*name, value.clone()));
    }
    TestApp::read(req.send_body(body).await.expect("request sent")).await
}

/// The PEM certificate inside an EST answer (base64 certs-only PKCS#7).
fn issued_pem(r: &Resp) -> String {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.raw));
    let der = STANDARD
        .decode(String::from_utf8_lossy(&r.raw).split_whitespace().collect::<String>())
        .unwrap();
    let dir = crate::helpers::fresh_dir();
    std::fs::write(dir.join("p7.der"), der).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["pkcs7", "-inform", "DER", "-print_certs", "-in"])
        .arg(dir.join("p7.der"))
        .output()
        .expect("openssl runs");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let start = text.find("-----BEGIN CERTIFICATE-----").unwrap();
    text[start..].to_owned()
}

async fn claim(app: &TestApp, body: Value) -> Value {
    let r = app.post(CLAIMS, &app.admin, body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

#[actix_web::test]
async fn claims_are_created_once_listed_with_their_uses_and_revoked() {
    let app = proxied().await;
    let c = claim(
        &app,
        json!({"name": "line 3", "tenant": "acme", "max_uses": 1, "register_unknown": true}),
    )
    .await;
    assert!(c["private_key_pem"].as_str().unwrap().contains("PRIVATE KEY"));
    assert_eq!(c["status"], "active");
    let header = [("X-SSL-Client-Cert", escaped(c["certificate_pem"].as_str().unwrap()))];
    let r = est(&app, "/.well-known/est/acme/simpleenroll", &header, csr_b64("fresh-1")).await;
    let pem = issued_pem(&r);
    assert!(pem.contains("BEGIN CERTIFICATE"));
    let device = app.get("/api/v4/manage/devices/acme/fresh-1/", &app.admin).await;
    assert_eq!(device.status, 200, "registered on first enrollment");
    // Used up: refused, and no device registered.
    let r = est(&app, "/.well-known/est/acme/simpleenroll", &header, csr_b64("fresh-2")).await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.raw));
    assert!(String::from_utf8_lossy(&r.raw).contains("used up"));
    assert_eq!(
        app.get("/api/v4/manage/devices/acme/fresh-2/", &app.admin).await.status,
        404
    );
    let id = c["id"].as_str().unwrap();
    let got = app.get(&format!("{CLAIMS}{id}/"), &app.admin).await;
    assert_eq!(
        (got.body["uses"].as_i64(), got.body["status"].as_str()),
        (Some(1), Some("used_up"))
    );
    assert!(got.body.get("private_key_pem").is_none());
    let list = app.get(&format!("{CLAIMS}?tenant=acme"), &app.admin).await;
    assert_eq!(list.body["count"], 1);
    let revoked = app
        .post(&format!("{CLAIMS}{id}/revoke/"), &app.admin, json!(null))
        .await;
    assert_eq!(revoked.body["status"], "revoked");
    // The claim certificate is a `claim` in the certificate listing, now revoked.
    let certs = app
        .get("/api/v4/manage/mqtt-certificates/?kind=claim", &app.admin)
        .await;
    assert_eq!(certs.body["count"], 1);
    assert_eq!(certs.body["results"][0]["status"], "revoked");
}

#[actix_web::test]
async fn bad_claims_name_the_field_and_write_nothing() {
    let app = proxied().await;
    for (body, field) in [
        (json!({"name": "x", "tenant": "acme", "max_uses": 0}), "max_uses"),
        (json!({"name": "x", "tenant": "Not A Tenant", "max_uses": 1}), "tenant"),
        (
            json!({"name": "x", "tenant": "acme", "max_uses": 1, "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"name": "x", "tenant": "acme", "max_uses": 1, "validity_days": 0}),
            "validity_days",
        ),
    ] {
        assert_field_error(&app.post(CLAIMS, &app.admin, body).await, field);
    }
    assert_eq!(app.get(CLAIMS, &app.admin).await.body["count"], 0);
    let r = app
        .post(CLAIMS, &app.admin, json!({"name": "x", "tenant": "acme"}))
        .await;
    assert_problem(&r, 400);
}

#[actix_web::test]
async fn a_proxy_header_counts_only_from_trusted_proxies() {
    let app = TestApp::spawn().await;
    let c = claim(
        &app,
        json!({"name": "l", "tenant": "acme", "max_uses": 5, "register_unknown": true}),
    )
    .await;
    let header = [("X-SSL-Client-Cert", escaped(c["certificate_pem"].as_str().unwrap()))];
    let r = est(&app, "/.well-known/est/acme/simpleenroll", &header, csr_b64("dev-1")).await;
    assert_eq!(r.status, 401);
    let r = est(&app, "/.well-known/est/simplereenroll", &header, csr_b64("dev-1")).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        app.get(&format!("{CLAIMS}{}/", c["id"].as_str().unwrap()), &app.admin)
            .await
            .body["uses"],
        0
    );
}

#[actix_web::test]
async fn with_a_proxy_secret_the_proxy_must_send_it_too() {
    let app = TestApp::spawn_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.proxy_secret = Some(fleetca::domain::Secret::new("proxy-secret-0123456789"));
    })
    .await;
    let c = claim(
        &app,
        json!({"name": "l", "tenant": "acme", "max_uses": 5, "register_unknown": true}),
    )
    .await;
    let cert = ("X-SSL-Client-Cert", escaped(c["certificate_pem"].as_str().unwrap()));
    let path = "/.well-known/est/acme/simpleenroll";
    let r = est(&app, path, std::slice::from_ref(&cert), csr_b64("dev-1")).await;
    assert_eq!(r.status, 401, "the address alone is not enough");
    let wrong = ("X-Proxy-Secret", "proxy-secret-wrong".to_owned());
    let r = est(&app, path, &[cert.clone(), wrong], csr_b64("dev-1")).await;
    assert_eq!(r.status, 401);
    let right = ("X-Proxy-Secret", "proxy-secret-0123456789".to_owned());
    issued_pem(&est(&app, path, &[cert, right], csr_b64("dev-1")).await);
}

#[actix_web::test]
async fn a_device_certificate_renews_itself_and_the_device_lists_and_revokes_them() {
    let app = proxied().await;
    let r = app
        .post(
            "/api/v4/manage/devices/",
            &app.admin,
            json!({"device_id": "meter-1", "tenant": "acme", "password": "device-secret-1"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let basic = format!("Basic {}", STANDARD.encode("meter-1:device-secret-1"));
    let r = est(
        &app,
        "/.well-known/est/acme/simpleenroll",
        &[("Authorization", basic)],
        csr_b64("meter-1"),
    )
    .await;
    let first = issued_pem(&r);
    let header = |pem: &str| [("X-SSL-Client-Cert", escaped(pem))];
    // Another subject, and garbage, are refused.
    let r = est(
        &app,
        "/.well-known/est/simplereenroll",
        &header(&first),
        csr_b64("meter-2"),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = est(
        &app,
        "/.well-known/est/simplereenroll",
        &header(&first),
        b"%%%".to_vec(),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = est(
        &app,
        "/.well-known/est/simplereenroll",
        &header(&first),
        csr_b64("meter-1"),
    )
    .await;
    let second = issued_pem(&r);
    assert_ne!(first, second);
    let path = "/api/v4/manage/devices/acme/meter-1/certificates/";
    let list = app.get(path, &app.admin).await;
    assert_eq!(list.body["count"], 2, "{}", list.body);
    let old = list.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["renewed_by"].is_string())
        .expect("the renewed one names its successor")
        .clone();
    assert!(old["supersede_at"].is_string());
    assert_eq!(old["kind"], "device");
    // Revoking it there puts it on the CRL; it then authenticates nothing.
    let id = old["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("{path}{id}/revoke/"),
            &app.admin,
            json!({"reason": "keyCompromise"}),
        )
        .await;
    assert_eq!(r.body["status"], "revoked", "{}", r.body);
    let r = est(
        &app,
        "/.well-known/est/simplereenroll",
        &header(&first),
        csr_b64("meter-1"),
    )
    .await;
    assert_eq!(r.status, 401);
    // Disabling the device revokes the rest.
    let r = app
        .send(
            "PATCH",
            "/api/v4/manage/devices/acme/meter-1/",
            Some(&app.admin),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(r.status, 200);
    let list = app.get(&format!("{path}?page_size=10"), &app.admin).await;
    assert!(
        list.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "revoked")
    );
}

#[actix_web::test]
async fn a_device_enrolls_with_http_digest_once_per_nonce() {
    let app = proxied().await;
    app.post(
        "/api/v4/manage/devices/",
        &app.admin,
        json!({"device_id": "meter-7", "tenant": "acme", "password": "device-secret-7"}),
    )
    .await;
    let path = "/.well-known/est/acme/simpleenroll";
    let challenge = est(&app, path, &[], csr_b64("meter-7")).await;
    assert_eq!(challenge.status, 401);
    let offers: Vec<String> = challenge
        .headers
        .get_all("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let digest = offers
        .iter()
        .find(|o| o.starts_with("Digest "))
        .expect("a Digest challenge");
    assert!(offers.iter().any(|o| o.starts_with("Basic ")));
    assert!(digest.contains("realm=\"acme\"") && digest.contains("qop=\"auth\""));
    let nonce = digest.split("nonce=\"").nth(1).unwrap().split('"').next().unwrap();
    let md5 = |s: String| crate::helpers::openssl_dgst(&["-md5"], s.as_bytes());
    let ha1 = md5("meter-7:acme:device-secret-7".into());
    let ha2 = md5(format!("POST:{path}"));
    let response = md5(format!("{ha1}:{nonce}:00000001:abcdef:auth:{ha2}"));
    let authorization = format!(
        "Digest username=\"meter-7\", realm=\"acme\", nonce=\"{nonce}\", uri=\"{path}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"abcdef\", response=\"{response}\""
    );
    let r = est(
        &app,
        path,
        &[("Authorization", authorization.clone())],
        csr_b64("meter-7"),
    )
    .await;
    issued_pem(&r);
    let replay = est(&app, path, &[("Authorization", authorization)], csr_b64("meter-7")).await;
    assert_eq!(replay.status, 401, "a replayed nonce is refused");
    let list = app
        .get("/api/v4/manage/devices/acme/meter-7/certificates/", &app.admin)
        .await;
    assert_eq!(list.body["count"], 1, "nothing written by the replay");
}

#[actix_web::test]
async fn a_client_certificate_is_renewed_over_rest_and_the_filters_find_it() {
    let app = proxied().await;
    let key = app
        .post(
            "/api/v4/manage/users/",
            &app.admin,
            json!({"username": "svc-renew", "is_service_account": true, "enterprise": "acme"}),
        )
        .await;
    assert_eq!(key.status, 201, "{}", key.body);
    let created = app
        .post(
            "/api/v4/manage/mqtt-certificates/",
            &app.admin,
            json!({"name": "c", "api_key_id": key.body["id"]}),
        )
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let renewed = app
        .post(
            &format!("/api/v4/manage/mqtt-certificates/{id}/renew/"),
            &app.admin,
            json!(null),
        )
        .await;
    assert_eq!(renewed.status, 201, "{}", renewed.body);
    assert!(renewed.body["private_key_pem"].is_string());
    assert_eq!(renewed.body["name"], "c");
    assert_eq!(renewed.headers.get("cache-control").unwrap(), "no-store");
    let old = app
        .get(&format!("/api/v4/manage/mqtt-certificates/{id}/"), &app.admin)
        .await;
    assert_eq!(old.body["renewed_by"], renewed.body["id"]);
    let soon = app
        .get("/api/v4/manage/mqtt-certificates/?expiring_within_days=400", &app.admin)
        .await;
    assert_eq!(soon.body["count"], 2);
    let none = app
        .get("/api/v4/manage/mqtt-certificates/?expiring_within_days=30", &app.admin)
        .await;
    assert_eq!(none.body["count"], 0);
    assert_field_error(
        &app.get("/api/v4/manage/mqtt-certificates/?expiring_within_days=0", &app.admin)
            .await,
        "expiring_within_days",
    );
    assert_field_error(
        &app.get("/api/v4/manage/mqtt-certificates/?kind=server", &app.admin)
            .await,
        "kind",
    );
    let devices = app
        .get("/api/v4/manage/mqtt-certificates/?kind=device", &app.admin)
        .await;
    assert_eq!(devices.body["count"], 0);
    // A device certificate renews only for a CSR.
    let bad = app
        .post(
            &format!("/api/v4/manage/mqtt-certificates/{id}/renew/"),
            &app.admin,
            json!({"csr_pem": "not a csr"}),
        )
        .await;
    assert_field_error(&bad, "csr_pem");
}
