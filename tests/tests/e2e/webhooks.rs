//! Webhooks against the real binary and a real receiver that checks every signature with the
//! Standard Webhooks reference library (`standardwebhooks` from PyPI, tests/webhooks): events
//! arrive signed; a receiver that fails five times gets the event on the sixth attempt; an
//! expiry warning fires for a certificate set up to expire soon; and an event committed while
//! the receiver is down survives a `kill -9` of fleetca and is delivered after the restart.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fleetca_e2e::{Daemon, Fleetca, Scratch, tool};
use serde_json::{Value, json};

/// The receiver script, from the workspace.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("webhooks/receiver.py")
}

/// Starts the receiver in `dir` (failing the first `fail_first` attempts of each message) on
/// `port` (0: a free one); returns it and its port.
pub(crate) fn receiver(dir: &Path, fail_first: u32, port: u16) -> (Daemon, u16) {
    std::fs::create_dir_all(dir).unwrap();
    let _ = std::fs::remove_file(dir.join("port"));
    let mut cmd = Command::new(tool("python3"));
    cmd.arg(script())
        .arg(dir)
        .arg(fail_first.to_string())
        .arg(port.to_string());
    let mut daemon = Daemon::spawn("webhook receiver", &mut cmd, &dir.join(format!("receiver-{port}")));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(p) = std::fs::read_to_string(dir.join("port")) {
            return (daemon, p.trim().parse().unwrap());
        }
        if let Some(status) = daemon.exited() {
            panic!(
                "the receiver exited ({status}); is `standardwebhooks` installed (pip install -r tests/webhooks/requirements.txt)?\n{}",
                daemon.log_tail(40)
            );
        }
        assert!(
            Instant::now() < deadline,
            "the receiver did not start:\n{}",
            daemon.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the receiver logged: one JSON object per request.
fn log(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits for a verified delivery of `event_type` answered 204 that `matches`.
pub(crate) fn wait_delivered(
    dir: &Path,
    event_type: &str,
    matches: impl Fn(&Value) -> bool,
    timeout: Duration,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(r) = log(dir)
            .into_iter()
            .find(|r| r["type"] == event_type && r["status"] == 204 && matches(&r["data"]))
        {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no verified {event_type} within {timeout:?}; the receiver logged:\n{:#?}",
            log(dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start(data: &Path, config: &Path) -> Fleetca {
    Fleetca::start_with(data, &["--config", config.to_str().unwrap()], &[])
}

#[test]
fn signed_events_survive_failures_and_a_kill_9() {
    let dir = Scratch::new("webhooks");
    let rdir = dir.join("receiver");
    let (mut flaky, port) = receiver(&rdir, 5, 0);
    let config = dir.write(
        "fleetca.toml",
        "webhook_allow_private = true\nwebhook_retry_initial_seconds = 0.1\nwebhook_timeout_seconds = 2\nexpiry_scan_seconds = 1\n",
        false,
    );
    let data = dir.join("data");
    let server = start(&data, &config);
    let admin = server.admin_token();
    let hook = server
        .post(
            "/api/v4/manage/webhooks/",
            Some(&admin),
            &json!({
                "url": format!("http://127.0.0.1:{port}/fleetca"),
                "events": ["certificate.issued", "certificate.revoked", "certificate.expiring", "device.disabled"],
            }),
        )
        .expect_json(201, "create a webhook");
    std::fs::write(rdir.join("secret"), hook["secret"].as_str().unwrap()).unwrap();

    let key = server.create_api_key(&admin, "svc-hooks", "acme");
    let key_id = key["id"].as_str().unwrap();
    let cert = server
        .post(
            "/api/v4/manage/mqtt-certificates/",
            Some(&admin),
            &json!({"name": "hooked", "api_key_id": key_id}),
        )
        .expect_json(201, "create a certificate");
    let cert_id = cert["id"].as_str().unwrap().to_owned();
    server.revoke(&admin, &cert_id, "keyCompromise");
    server
        .post(
            "/api/v4/manage/devices/",
            Some(&admin),
            &json!({"device_id": "dev-hook", "tenant": "acme", "password": "device-secret-1"}),
        )
        .expect_json(201, "create a device");
    fleetca_e2e::http::request(
        "PATCH",
        &server.url("/api/v4/manage/devices/acme/dev-hook/"),
        Some(&admin),
        Some(&json!({"is_active": false})),
    )
    .expect_json(200, "disable the device");
    // A claim whose certificate expires in three days: the 7-day warning.
    let claim = server
        .post(
            "/api/v4/manage/claims/",
            Some(&admin),
            &json!({"name": "short", "tenant": "acme", "max_uses": 1,
                    "expires_at": (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339()}),
        )
        .expect_json(201, "create a claim");
    let claim_cert = claim["certificate_id"].as_str().unwrap().to_owned();

    let wait = Duration::from_secs(30);
    let issued = wait_delivered(
        &rdir,
        "certificate.issued",
        |d| d["target"]["id"] == cert_id.as_str(),
        wait,
    );
    let revoked = wait_delivered(
        &rdir,
        "certificate.revoked",
        |d| d["target"]["id"] == cert_id.as_str(),
        wait,
    );
    assert_eq!(revoked["data"]["reason"], "keyCompromise");
    let disabled = wait_delivered(&rdir, "device.disabled", |d| d["target"]["id"] == "acme/dev-hook", wait);
    let expiring = wait_delivered(
        &rdir,
        "certificate.expiring",
        |d| d["target"]["id"] == claim_cert.as_str(),
        wait,
    );
    assert_eq!(expiring["data"]["days"], 7);
    // Each was refused five times and taken at the sixth attempt, with the same message id.
    for got in [&issued, &revoked, &disabled, &expiring] {
        assert_eq!(got["attempt"], 6, "{got}");
        let attempts: Vec<u64> = log(&rdir)
            .iter()
            .filter(|r| r["id"] == got["id"])
            .map(|r| r["status"].as_u64().unwrap())
            .collect();
        assert_eq!(attempts, [500, 500, 500, 500, 500, 204], "{got}");
    }
    assert!(
        log(&rdir).iter().all(|r| r["verified"] == true),
        "a signature did not verify with standardwebhooks:\n{:#?}",
        log(&rdir)
    );

    // The receiver goes down; a revocation commits; fleetca is killed before it can deliver.
    flaky.terminate(Duration::from_secs(5));
    let second = server
        .post(
            "/api/v4/manage/mqtt-certificates/",
            Some(&admin),
            &json!({"name": "after-crash", "api_key_id": key_id}),
        )
        .expect_json(201, "create a certificate");
    let second_id = second["id"].as_str().unwrap().to_owned();
    server.revoke(&admin, &second_id, "cessationOfOperation");
    let hook_id = hook["id"].as_str().unwrap();
    let pending = server
        .get(
            &format!("/api/v4/manage/webhooks/{hook_id}/deliveries/?status=pending"),
            Some(&admin),
        )
        .expect_json(200, "the delivery log");
    assert!(
        pending["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["event_type"] == "certificate.revoked"),
        "the revocation is not waiting for delivery: {pending}"
    );
    assert!(fleetca_e2e::process::signal(server.pid(), "KILL"), "kill -9 failed");
    drop(server);
    let (_receiver, _) = receiver(&rdir, 0, port);
    let server = start(&data, &config);
    let after = wait_delivered(
        &rdir,
        "certificate.revoked",
        |d| d["target"]["id"] == second_id.as_str(),
        Duration::from_secs(30),
    );
    assert_eq!(after["data"]["reason"], "cessationOfOperation");
    assert_eq!(after["verified"], true);
    // The expiry warning was not sent again by the restarted instance.
    std::thread::sleep(Duration::from_millis(2500));
    let warnings = log(&rdir)
        .iter()
        .filter(|r| r["type"] == "certificate.expiring" && r["status"] == 204)
        .count();
    assert_eq!(warnings, 1, "{:#?}", log(&rdir));
    drop(server);
}
