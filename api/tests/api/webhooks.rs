//! Webhooks on both databases: endpoints and their scope, the secret shown once, events
//! signed as Standard Webhooks says (checked with the `standardwebhooks` crate), retries
//! until a failing receiver recovers, the delivery log, test events, expiry warnings sent
//! once, `crl.publication_failed`, two instances sending each event once, and no receiver
//! on an internal address unless the operator allows it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_field_error, assert_problem};

const WEBHOOKS: &str = "/api/v4/manage/webhooks/";

/// What a receiver got: each request's headers and body, and the status it answered.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    event: Value,
    verified: bool,
    status: u16,
}

/// A webhook receiver on a free loopback port: answers 500 to the first `fail_first`
/// attempts of each message, then 204; verifies each signature with the secret it is given.
struct Receiver {
    url: String,
    secret: Arc<Mutex<String>>,
    got: Arc<Mutex<Vec<Received>>>,
    _server: actix_web::dev::ServerHandle,
}

impl Receiver {
    fn start(fail_first: usize) -> Self {
        let secret = Arc::new(Mutex::new(String::new()));
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let attempts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (s, g) = (secret.clone(), got.clone());
        let server = HttpServer::new(move || {
            let (s, g, a) = (s.clone(), g.clone(), attempts.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (s, g, a) = (s.clone(), g.clone(), a.clone());
                async move {
                    let mut headers = http::HeaderMap::new();
                    for (k, v) in req.headers() {
                        headers.insert(
                            http::HeaderName::from_bytes(k.as_str().as_bytes()).unwrap(),
                            http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
                        );
                    }
                    let secret = s.lock().unwrap().clone();
                    let verified = standardwebhooks::Webhook::new(&secret)
                        .map(|w| w.verify(&body, &headers).is_ok())
                        .unwrap_or(false);
                    let id = headers
                        .get("webhook-id")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    let n = {
                        let mut a = a.lock().unwrap();
                        let n = a.entry(id.clone()).or_default();
                        *n += 1;
                        *n
                    };
                    let status = if n <= fail_first {
                        500
                    } else if verified {
                        204
                    } else {
                        400
                    };
                    g.lock().unwrap().push(Received {
                        id,
                        event: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        verified,
                        status,
                    });
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
                }
            }))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hooks/fleetca"),
            secret,
            got,
            _server: handle,
        }
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until a delivery of `event_type` was answered 204 and returns it.
    async fn delivered(&self, event_type: &str, timeout: Duration) -> Received {
        self.delivered_where(event_type, |_| true, timeout).await
    }

    async fn delivered_where(&self, event_type: &str, f: impl Fn(&Value) -> bool, timeout: Duration) -> Received {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self
                .got()
                .into_iter()
                .find(|r| r.status == 204 && r.event["type"] == event_type && f(&r.event))
            {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no {event_type} delivered within {timeout:?}; received: {:?}",
                self.got()
            );
            actix_web::rt::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn endpoint(app: &TestApp, token: &str, receiver: &Receiver, events: &[&str], enterprise: Option<&str>) -> Value {
    let mut body = json!({"url": receiver.url, "events": events, "description": "test receiver"});
    if let Some(e) = enterprise {
        body["enterprise"] = json!(e);
    }
    let r = app.post(WEBHOOKS, token, body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
    *receiver.secret.lock().unwrap() = r.body["secret"].as_str().unwrap().to_owned();
    r.body
}

#[actix_web::test]
async fn events_are_signed_and_delivered_with_their_data() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(0);
    let hook = endpoint(
        &app,
        &app.admin,
        &receiver,
        &[
            "certificate.issued",
            "certificate.revoked",
            "device.disabled",
            "device.deleted",
            "api_key.deactivated",
        ],
        None,
    )
    .await;
    assert!(hook["secret"].as_str().unwrap().starts_with("whsec_"));
    let hook_id = hook["id"].as_str().unwrap();
    // The secret is never shown again.
    let shown = app.get(&format!("{WEBHOOKS}{hook_id}/"), &app.admin).await;
    assert_eq!(shown.status, 200);
    assert!(shown.body.get("secret").is_none(), "{}", shown.body);
    assert_eq!(shown.body["events"].as_array().unwrap().len(), 5);

    let (key_id, _) = app.user("svc-hooks", true, "acme", None).await;
    let cert = app.certificate(&key_id, "hooked").await;
    let cert_id = cert["id"].as_str().unwrap();
    let issued = receiver.delivered("certificate.issued", Duration::from_secs(10)).await;
    assert!(issued.verified);
    let data = &issued.event["data"];
    assert_eq!(data["target"]["id"], cert_id);
    assert_eq!(data["serial"], cert["serial"]);
    assert_eq!(data["enterprise"], "acme");
    assert_eq!(data["actor"]["username"], "admin");
    assert!(data["expires_at"].is_string(), "{data}");
    assert!(issued.id.starts_with("msg_"));

    let r = app
        .post(
            &format!("/api/v4/manage/mqtt-certificates/{cert_id}/revoke/"),
            &app.admin,
            json!({"reason": "keyCompromise"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let revoked = receiver.delivered("certificate.revoked", Duration::from_secs(10)).await;
    assert_eq!(revoked.event["data"]["reason"], "keyCompromise");
    assert_eq!(revoked.event["data"]["target"]["id"], cert_id);

    let r = app
        .post(
            "/api/v4/manage/devices/",
            &app.admin,
            json!({"device_id": "d-hook", "tenant": "acme", "password": "device-secret-1"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = app
        .send(
            "PATCH",
            "/api/v4/manage/devices/acme/d-hook/",
            Some(&app.admin),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let disabled = receiver.delivered("device.disabled", Duration::from_secs(10)).await;
    assert_eq!(disabled.event["data"]["target"]["id"], "acme/d-hook");
    let r = app
        .send("DELETE", "/api/v4/manage/devices/acme/d-hook/", Some(&app.admin), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    receiver.delivered("device.deleted", Duration::from_secs(10)).await;

    // Deactivating the key announces it, and revokes its certificates (each announced).
    let second = app.certificate(&key_id, "hooked-2").await;
    let r = app
        .send(
            "PATCH",
            &format!("/api/v4/manage/users/{key_id}/"),
            Some(&app.admin),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let deactivated = receiver.delivered("api_key.deactivated", Duration::from_secs(10)).await;
    assert_eq!(deactivated.event["data"]["target"]["id"], key_id);
    receiver
        .delivered_where(
            "certificate.revoked",
            |e| e["data"]["target"]["id"] == second["id"],
            Duration::from_secs(10),
        )
        .await;
    assert!(receiver.got().iter().all(|r| r.verified), "{:?}", receiver.got());

    // The delivery log shows each, delivered at the first attempt. A delivery is marked
    // delivered just after the receiver answered, so the last one may take a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = app
            .get(&format!("{WEBHOOKS}{hook_id}/deliveries/?status=delivered"), &app.admin)
            .await;
        assert_eq!(log.status, 200, "{}", log.body);
        if log.body["results"].as_array().unwrap().len() >= 7 || std::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rows = log.body["results"].as_array().unwrap();
    assert!(rows.len() >= 7, "{}", log.body);
    assert!(
        rows.iter().all(|d| d["attempts"] == 1 && d["last_status"] == 204),
        "{}",
        log.body
    );
    // The audit log has the endpoint's creation, without its secret.
    let audit = app.get("/api/v4/manage/audit/?action=webhook.create", &app.admin).await;
    assert_eq!(audit.body["count"], 1);
    assert!(!String::from_utf8_lossy(&audit.raw).contains("whsec_"));
}

#[actix_web::test]
async fn a_receiver_that_fails_five_times_gets_the_event_on_the_sixth() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(5);
    let hook = endpoint(&app, &app.admin, &receiver, &["certificate.issued"], None).await;
    let hook_id = hook["id"].as_str().unwrap();
    let (key_id, _) = app.user("svc-retry", true, "acme", None).await;
    app.certificate(&key_id, "retried").await;
    let got = receiver.delivered("certificate.issued", Duration::from_secs(20)).await;
    let attempts: Vec<u16> = receiver
        .got()
        .iter()
        .filter(|r| r.id == got.id)
        .map(|r| r.status)
        .collect();
    assert_eq!(attempts, [500, 500, 500, 500, 500, 204]);
    // Let the sender record the answer.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = app.get(&format!("{WEBHOOKS}{hook_id}/deliveries/"), &app.admin).await;
        let row = &log.body["results"][0];
        if row["status"] == "delivered" {
            assert_eq!(row["attempts"], 6, "{row}");
            assert_eq!(row["event_id"], got.id.as_str());
            break;
        }
        assert!(Instant::now() < deadline, "not recorded as delivered: {}", log.body);
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_test_event_shows_in_the_delivery_log_and_can_be_sent_again() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(0);
    let hook = endpoint(&app, &app.admin, &receiver, &["certificate.revoked"], None).await;
    let hook_id = hook["id"].as_str().unwrap();
    let r = app
        .post(&format!("{WEBHOOKS}{hook_id}/test/"), &app.admin, json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["event_type"], "webhook.test");
    let delivery = r.body["id"].as_i64().unwrap();
    let first = receiver.delivered("webhook.test", Duration::from_secs(10)).await;
    assert!(first.verified);
    let r = app
        .post(
            &format!("{WEBHOOKS}{hook_id}/deliveries/{delivery}/redeliver/"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.got().iter().filter(|r| r.id == first.id).count() < 2 {
        assert!(Instant::now() < deadline, "not sent again: {:?}", receiver.got());
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
    // The same message id both times, so receivers can drop the duplicate.
    assert!(receiver.got().iter().all(|r| r.id == first.id));
    // Rotating the secret: the next delivery verifies only with the new one.
    let r = app
        .post(&format!("{WEBHOOKS}{hook_id}/rotate-secret/"), &app.admin, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let new_secret = r.body["secret"].as_str().unwrap().to_owned();
    app.post(&format!("{WEBHOOKS}{hook_id}/test/"), &app.admin, json!({}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.got().len() < 3 {
        assert!(Instant::now() < deadline, "{:?}", receiver.got());
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(!receiver.got()[2].verified, "signed with the old secret");
    *receiver.secret.lock().unwrap() = new_secret;
    let r = app
        .post(&format!("{WEBHOOKS}{hook_id}/test/"), &app.admin, json!({}))
        .await;
    let id = r.body["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = receiver.got();
        if got.len() >= 4 {
            assert!(got[3].verified);
            break;
        }
        assert!(Instant::now() < deadline, "{got:?} (delivery {id})");
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
    // Deleting the endpoint deletes its log.
    let r = app
        .send("DELETE", &format!("{WEBHOOKS}{hook_id}/"), Some(&app.admin), None)
        .await;
    assert_eq!(r.status, 204);
    let r = app.get(&format!("{WEBHOOKS}{hook_id}/deliveries/"), &app.admin).await;
    assert_problem(&r, 404);
}

#[actix_web::test]
async fn managers_see_their_enterprise_and_api_keys_nothing() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(0);
    let (_, manager) = app.user("mgr-acme", false, "acme", Some("manager")).await;
    let (_, other) = app.user("mgr-globex", false, "globex", Some("manager")).await;
    let (_, key) = app.user("svc-nohooks", true, "acme", None).await;
    // A manager's endpoint is its enterprise's, named or not.
    let mine = endpoint(&app, &manager, &receiver, &["certificate.issued"], None).await;
    assert_eq!(mine["enterprise"], "acme");
    let r = app
        .post(
            WEBHOOKS,
            &manager,
            json!({"url": receiver.url, "events": ["certificate.issued"], "enterprise": "globex"}),
        )
        .await;
    assert_problem(&r, 403);
    let r = app
        .post(
            WEBHOOKS,
            &manager,
            json!({"url": receiver.url, "events": ["crl.publication_failed"]}),
        )
        .await;
    assert_field_error(&r, "events");
    let r = app
        .post(
            WEBHOOKS,
            &key,
            json!({"url": receiver.url, "events": ["certificate.issued"]}),
        )
        .await;
    assert_problem(&r, 403);
    let id = mine["id"].as_str().unwrap();
    let r = app.get(&format!("{WEBHOOKS}{id}/"), &other).await;
    assert_problem(&r, 404);
    let r = app.get(WEBHOOKS, &other).await;
    assert_eq!(r.body["count"], 0);
    let r = app.get(WEBHOOKS, &manager).await;
    assert_eq!(r.body["count"], 1);
    let r = app.get(WEBHOOKS, &app.admin).await;
    assert_eq!(r.body["count"], 1);
    // Bad input: an unknown event, none at all, an unknown field, a bad URL.
    for body in [
        json!({"url": receiver.url, "events": ["certificate.stolen"]}),
        json!({"url": receiver.url, "events": []}),
        json!({"url": receiver.url, "events": ["certificate.issued"], "secret": "mine"}),
        json!({"url": "ftp://example.com/", "events": ["certificate.issued"]}),
        json!({"url": "https://user:pw@example.com/", "events": ["certificate.issued"]}),
    ] {
        let r = app.post(WEBHOOKS, &app.admin, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }
    // Another enterprise's events do not reach the manager's endpoint.
    let (globex_key, _) = app.user("svc-globex", true, "globex", None).await;
    app.certificate(&globex_key, "not-for-acme").await;
    let (acme_key, _) = app.user("svc-acme", true, "acme", None).await;
    app.certificate(&acme_key, "for-acme").await;
    let got = receiver.delivered("certificate.issued", Duration::from_secs(10)).await;
    assert_eq!(got.event["data"]["enterprise"], "acme");
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.got().len(), 1, "{:?}", receiver.got());
}

#[actix_web::test]
async fn receivers_on_internal_addresses_are_refused_unless_allowed() {
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private = false).await;
    for url in [
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://10.0.0.7/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/",
        "http://[fd00::1]/",
    ] {
        let r = app
            .post(
                WEBHOOKS,
                &app.admin,
                json!({"url": url, "events": ["certificate.issued"]}),
            )
            .await;
        assert_field_error(&r, "url");
        assert!(
            r.body["errors"]["url"][0]
                .as_str()
                .unwrap()
                .contains("webhook_allow_private"),
            "{}",
            r.body
        );
    }
    let r = app.get(WEBHOOKS, &app.admin).await;
    assert_eq!(r.body["count"], 0, "a refused endpoint was stored");
    // A public address is accepted (nothing is sent to it here).
    let r = app
        .post(
            WEBHOOKS,
            &app.admin,
            json!({"url": "https://93.184.216.34/hook", "events": ["certificate.issued"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Nor may a change point it inside.
    let id = r.body["id"].as_str().unwrap();
    let r = app
        .send(
            "PATCH",
            &format!("{WEBHOOKS}{id}/"),
            Some(&app.admin),
            Some(json!({"url": "http://192.168.1.1/"})),
        )
        .await;
    assert_field_error(&r, "url");
}

#[actix_web::test]
async fn expiry_warnings_are_sent_once_per_threshold() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(0);
    endpoint(&app, &app.admin, &receiver, &["certificate.expiring"], None).await;
    // Claim certificates expire with their claim: one in 20 hours, one in 5 days.
    let soon = chrono::Utc::now() + chrono::Duration::hours(20);
    let later = chrono::Utc::now() + chrono::Duration::days(5);
    let mut ids = Vec::new();
    for (name, at) in [("soon", soon), ("later", later)] {
        let r = app
            .post(
                "/api/v4/manage/claims/",
                &app.admin,
                json!({"name": name, "tenant": "acme", "max_uses": 1, "expires_at": at}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.body["certificate_id"].as_str().unwrap().to_owned());
    }
    let one = receiver
        .delivered_where(
            "certificate.expiring",
            |e| e["data"]["target"]["id"] == ids[0].as_str(),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(one.event["data"]["days"], 1);
    let seven = receiver
        .delivered_where(
            "certificate.expiring",
            |e| e["data"]["target"]["id"] == ids[1].as_str(),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(seven.event["data"]["days"], 7);
    assert_eq!(seven.event["data"]["kind"], "claim");
    // Several scans later (every 300 ms here), still one warning each.
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.got().len(), 2, "{:?}", receiver.got());
}

#[actix_web::test]
async fn a_failing_crl_publication_is_announced() {
    let dir = crate::helpers::fresh_dir();
    let flag = dir.join("broker-down");
    let command = format!("test ! -e {}", flag.display());
    let crl_file = dir.join("crl.pem");
    let app = TestApp::spawn_with(move |c| {
        c.crl_file = Some(crl_file);
        c.crl_reload_command = Some(command);
    })
    .await;
    let receiver = Receiver::start(0);
    endpoint(&app, &app.admin, &receiver, &["crl.publication_failed"], None).await;
    std::fs::write(&flag, "").unwrap();
    let (key_id, _) = app.user("svc-crl", true, "acme", None).await;
    let cert = app.certificate(&key_id, "crl").await;
    let id = cert["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/v4/manage/mqtt-certificates/{id}/revoke/"),
            &app.admin,
            json!({"reason": "keyCompromise"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let failed = receiver
        .delivered("crl.publication_failed", Duration::from_secs(10))
        .await;
    assert!(
        failed.event["data"]["error"]
            .as_str()
            .unwrap()
            .contains("reload command"),
        "{}",
        failed.event
    );
    assert_eq!(failed.event["data"]["enterprise"], Value::Null);
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_web::test]
async fn two_instances_send_each_event_once() {
    let first = TestApp::spawn().await;
    let url = first.database_url.clone();
    let second = TestApp::spawn_with(move |c| c.database_url = url).await;
    let receiver = Receiver::start(0);
    endpoint(&first, &first.admin, &receiver, &["certificate.issued"], None).await;
    let (key_id, _) = first.user("svc-two", true, "acme", None).await;
    for i in 0..6 {
        let app = if i % 2 == 0 { &first } else { &second };
        let r = app
            .post(
                "/api/v4/manage/mqtt-certificates/",
                &app.admin,
                json!({"name": format!("two-{i}"), "api_key_id": key_id}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while receiver.got().len() < 6 {
        assert!(Instant::now() < deadline, "{:?}", receiver.got());
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    let got = receiver.got();
    let mut ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((got.len(), ids.len()), (6, 6), "{got:?}");
}

#[actix_web::test]
async fn an_enterprise_has_at_most_twenty_endpoints() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(0);
    let body = json!({"url": receiver.url, "events": ["certificate.issued"], "enterprise": "acme"});
    for _ in 0..20 {
        let r = app.post(WEBHOOKS, &app.admin, body.clone()).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = app.post(WEBHOOKS, &app.admin, body.clone()).await;
    let problem = assert_problem(&r, 409);
    assert!(problem["detail"].as_str().unwrap().contains("at most 20"), "{problem}");
    // Another enterprise, and the admins' endpoints for every enterprise, count apart.
    let mut globex = body.clone();
    globex["enterprise"] = json!("globex");
    assert_eq!(app.post(WEBHOOKS, &app.admin, globex).await.status, 201);
    let r = app.get(&format!("{WEBHOOKS}?page_size=100"), &app.admin).await;
    assert_eq!(r.body["count"], 21, "the refused one was not stored");
}
