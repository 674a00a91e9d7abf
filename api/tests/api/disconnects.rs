//! Revocation that ends live sessions, on both databases: a change that invalidates a
//! credential queues a disconnect in its transaction, and the worker tells each configured
//! broker, retrying until it confirms. The command adapter is driven with a real script; the
//! EMQX 5 adapter against a recorded contract of EMQX's REST API (an HTTP server here that
//! checks every request as EMQX 5 documents it: `GET /api/v5/clients` with `page`, `limit`
//! and `username` or `like_username`, answering `{"data": [...], "meta": {"hasnext"}}`;
//! `DELETE /api/v5/clients/{clientid}` answering 204, or 404 for an unknown client; HTTP
//! Basic auth with the API key and secret. Source: emqx/emqx,
//! `apps/emqx_management/src/emqx_mgmt_api_clients.erl`, and docs.emqx.com's Clients API).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use fleetca::brokers::admin::BrokerAdapter;
use fleetca::domain::Secret;
use serde_json::{Value, json};

use crate::helpers::{TestApp, fresh_dir};

const DISCONNECTS: &str = "/api/v4/manage/disconnects/";

async fn wait_done(app: &TestApp, action: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = app.get(&format!("{DISCONNECTS}?page_size=100"), &app.admin).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if let Some(d) = r.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["action"] == action && d["status"] == "done")
        {
            return d.clone();
        }
        assert!(Instant::now() < deadline, "no {action} disconnect done: {}", r.body);
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The environment of each run of the script, oldest first.
fn calls(dir: &std::path::Path) -> Vec<HashMap<String, String>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("call-"))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

#[actix_web::test]
async fn a_command_is_run_for_each_credential_that_stops_being_valid() {
    let dir = fresh_dir();
    let script = dir.join("kick.sh");
    // Fails once (exit 3) while `fail-once` exists, then records its environment.
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ -e {d}/fail-once ]; then rm {d}/fail-once; echo broker down >&2; exit 3; fi\nenv | grep '^FLEETCA_' > {d}/call-$(date +%s%N)\n",
            d = dir.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let argv = vec![script.display().to_string()];
    let app = TestApp::spawn_with(move |c| {
        c.disconnects.brokers = vec![BrokerAdapter::command("kick", argv)];
    })
    .await;

    let (key_id, _) = app.user("svc-kick", true, "acme", None).await;
    let cert = app.certificate(&key_id, "kicked").await;
    let id = cert["id"].as_str().unwrap();
    std::fs::write(dir.join("fail-once"), "").unwrap();
    let r = app
        .post(
            &format!("/api/v4/manage/mqtt-certificates/{id}/revoke/"),
            &app.admin,
            json!({"reason": "keyCompromise"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let done = wait_done(&app, "certificate.revoke").await;
    assert_eq!(done["attempts"], 2, "the first attempt failed: {done}");
    assert_eq!(done["done_brokers"], json!(["kick"]));
    assert_eq!(done["target_id"], id);
    let first = &calls(&dir)[0];
    assert_eq!(first["FLEETCA_REASON"], "certificate.revoke");
    assert_eq!(first["FLEETCA_SCOPE"], "certificate");
    assert_eq!(first["FLEETCA_USERNAME"], "svc-kick");
    assert_eq!(first["FLEETCA_SERIAL"], cert["serial"].as_str().unwrap());

    app.post(
        "/api/v4/manage/devices/",
        &app.admin,
        json!({"device_id": "dev-kick", "tenant": "acme", "password": "device-secret-1"}),
    )
    .await;
    let r = app
        .send(
            "PATCH",
            "/api/v4/manage/devices/acme/dev-kick/",
            Some(&app.admin),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    wait_done(&app, "device.disable").await;
    let r = app
        .send(
            "PATCH",
            &format!("/api/v4/manage/users/{key_id}/"),
            Some(&app.admin),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    wait_done(&app, "user.deactivate").await;
    let all = calls(&dir);
    let find = |reason: &str| all.iter().find(|c| c["FLEETCA_REASON"] == reason).unwrap().clone();
    let device = find("device.disable");
    assert_eq!(device["FLEETCA_USERNAME"], "device=dev-kick&tenant=acme");
    assert_eq!(device["FLEETCA_SCOPE"], "password");
    let key = find("user.deactivate");
    assert_eq!(key["FLEETCA_USERNAME"], "svc-kick");
    assert_eq!(key["FLEETCA_SCOPE"], "all");
    // The queue is visible to admins, with the configured brokers; API keys see nothing.
    let r = app.get(DISCONNECTS, &app.admin).await;
    assert_eq!(r.body["brokers"], json!(["kick"]));
    let (_, token) = app.user("svc-nosee", true, "acme", None).await;
    let r = app.get(DISCONNECTS, &token).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let _ = std::fs::remove_dir_all(dir);
}

/// EMQX 5's clients API as documented, over a table of connected clients.
struct Emqx {
    url: String,
    kicked: Arc<Mutex<Vec<String>>>,
    violations: Arc<Mutex<Vec<String>>>,
    _server: actix_web::dev::ServerHandle,
}

impl Emqx {
    fn start(clients: Vec<(&str, &str)>) -> Self {
        let table: Arc<Mutex<Vec<(String, String)>>> = Arc::new(Mutex::new(
            clients.into_iter().map(|(c, u)| (c.to_owned(), u.to_owned())).collect(),
        ));
        let kicked: Arc<Mutex<Vec<String>>> = Arc::default();
        let violations: Arc<Mutex<Vec<String>>> = Arc::default();
        let (t, k, v) = (table.clone(), kicked.clone(), violations.clone());
        let expected_auth = format!(
            "Basic {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "fleetca-key:emqx-secret")
        );
        let server = HttpServer::new(move || {
            let (t, k, v, auth) = (t.clone(), k.clone(), v.clone(), expected_auth.clone());
            App::new().default_service(web::to(move |req: HttpRequest| {
                let (t, k, v, auth) = (t.clone(), k.clone(), v.clone(), auth.clone());
                async move {
                    let violation = |why: String| {
                        v.lock().unwrap().push(why);
                        HttpResponse::BadRequest().json(json!({"code": "BAD_REQUEST"}))
                    };
                    if req.headers().get("authorization").and_then(|h| h.to_str().ok()) != Some(auth.as_str()) {
                        v.lock().unwrap().push("no or wrong Basic auth".into());
                        return HttpResponse::Unauthorized().json(json!({"code": "BAD_API_KEY_OR_SECRET"}));
                    }
                    let path = req.path().to_owned();
                    match (req.method().as_str(), path.as_str()) {
                        ("GET", "/api/v5/clients") => {
                            let q: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).unwrap();
                            for (key, _) in &q {
                                if !["page", "limit", "username", "like_username"].contains(&key.as_str()) {
                                    return violation(format!("undocumented query parameter {key}"));
                                }
                            }
                            let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                            let limit: usize = get("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
                            if !(1..=10_000).contains(&limit) {
                                return violation(format!("limit {limit}"));
                            }
                            let page: usize = get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                            let all: Vec<(String, String)> = t
                                .lock()
                                .unwrap()
                                .iter()
                                .filter(|(_, u)| get("username").is_none_or(|x| *u == x))
                                .filter(|(_, u)| get("like_username").is_none_or(|x| u.contains(&x)))
                                .cloned()
                                .collect();
                            let start = (page - 1) * limit;
                            let data: Vec<Value> = all
                                .iter()
                                .skip(start)
                                .take(limit)
                                .map(|(c, u)| json!({"clientid": c, "username": u, "connected": true, "node": "emqx@127.0.0.1"}))
                                .collect();
                            HttpResponse::Ok().json(json!({
                                "data": data,
                                "meta": {"page": page, "limit": limit, "count": all.len(), "hasnext": start + limit < all.len()}
                            }))
                        }
                        ("DELETE", p) if p.starts_with("/api/v5/clients/") => {
                            let id = percent_encoding::percent_decode_str(&p["/api/v5/clients/".len()..])
                                .decode_utf8()
                                .unwrap()
                                .into_owned();
                            let mut table = t.lock().unwrap();
                            match table.iter().position(|(c, _)| *c == id) {
                                Some(i) => {
                                    table.remove(i);
                                    k.lock().unwrap().push(id);
                                    HttpResponse::NoContent().finish()
                                }
                                None => HttpResponse::NotFound()
                                    .json(json!({"code": "CLIENTID_NOT_FOUND", "message": "Client ID not found"})),
                            }
                        }
                        (m, p) => violation(format!("undocumented call {m} {p}")),
                    }
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
            url: format!("http://127.0.0.1:{port}"),
            kicked,
            violations,
            _server: handle,
        }
    }
}

#[actix_web::test]
async fn emqx_clients_are_kicked_as_its_rest_api_documents() {
    let emqx = Emqx::start(vec![
        ("c-key", "svc-emqx"),
        ("c-other", "svc-other"),
        ("c-dev", "device=dev-1&tenant=acme"),
        ("c-dev-10", "device=dev-10&tenant=acme"),
        ("c-dev-globex", "tenant=globex&device=dev-1"),
    ]);
    let url = emqx.url.clone();
    let app = TestApp::spawn_with(move |c| {
        c.disconnects.brokers = vec![BrokerAdapter::emqx(
            "emqx",
            url,
            "fleetca-key".into(),
            Secret::new("emqx-secret"),
        )];
    })
    .await;
    let (key_id, _) = app.user("svc-emqx", true, "acme", None).await;
    let r = app
        .send(
            "PATCH",
            &format!("/api/v4/manage/users/{key_id}/"),
            Some(&app.admin),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    wait_done(&app, "user.deactivate").await;
    assert_eq!(*emqx.kicked.lock().unwrap(), ["c-key"]);

    app.post(
        "/api/v4/manage/devices/",
        &app.admin,
        json!({"device_id": "dev-1", "tenant": "acme", "password": "device-secret-1"}),
    )
    .await;
    let r = app
        .send("DELETE", "/api/v4/manage/devices/acme/dev-1/", Some(&app.admin), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    wait_done(&app, "device.delete").await;
    assert_eq!(*emqx.kicked.lock().unwrap(), ["c-key", "c-dev"]);
    assert!(
        emqx.violations.lock().unwrap().is_empty(),
        "requests outside EMQX's documented API: {:?}",
        emqx.violations.lock().unwrap()
    );
}

#[actix_web::test]
async fn an_unreachable_broker_is_retried_and_shown_pending() {
    let app = TestApp::spawn_with(|c| {
        c.disconnects.brokers = vec![BrokerAdapter::rabbitmq(
            "rabbit",
            "http://127.0.0.1:9".into(),
            "fleetca".into(),
            Secret::new("unused"),
            None,
        )];
    })
    .await;
    let (key_id, _) = app.user("svc-unreachable", true, "acme", None).await;
    let r = app
        .send(
            "PATCH",
            &format!("/api/v4/manage/users/{key_id}/"),
            Some(&app.admin),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(
        r.status, 200,
        "a broker being down does not hold up the change: {}",
        r.body
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.get(&format!("{DISCONNECTS}?status=pending"), &app.admin).await;
        let row = &r.body["results"][0];
        if row["attempts"].as_i64().unwrap_or(0) >= 2 {
            assert!(row["last_error"].as_str().unwrap().contains("rabbit"), "{row}");
            assert!(row["next_attempt_at"].is_string());
            break;
        }
        assert!(Instant::now() < deadline, "{}", r.body);
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = app.send("GET", "/metrics", None, None).await;
    let text = String::from_utf8_lossy(&metrics.raw);
    assert!(text.contains("fleetca_disconnects{status=\"pending\"}"), "{text}");
}
