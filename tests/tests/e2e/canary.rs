//! The revocation canary against a real mosquitto: with fleetca's CRL configured the canary
//! passes (the revoked canary certificate refused, the valid one accepted); once the broker
//! runs without its `crlfile` line, the next check fails, `/metrics` and the overview say
//! so, and `broker.revocation_not_enforced` reaches a webhook receiver.

use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use fleetca_e2e::{Daemon, Fleetca, Scratch, free_port, tool};
use serde_json::{Value, json};

use crate::mosquitto::{mosquitto_conf, wait_for_port};
use crate::webhooks::{receiver, wait_delivered};

/// How often the canary checks, in this test.
const INTERVAL_SECONDS: u64 = 2;

/// The overview's canary entry for the broker, once `done` holds for it.
fn wait_canary(server: &Fleetca, admin: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = server
            .get("/api/v4/manage/stats/", Some(admin))
            .expect_json(200, "stats");
        let canary = stats["canaries"][0].clone();
        if done(&canary) {
            return canary;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within 60 s; the last check: {canary}\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn metric(server: &Fleetca, name: &str) -> Option<f64> {
    let text = fleetca_e2e::http::request("GET", &server.url("/metrics"), None, None).body;
    let prefix = format!("{name}{{broker=\"mosquitto\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

fn checked_at(canary: &Value) -> Option<DateTime<Utc>> {
    canary["checked_at"].as_str()?.parse().ok()
}

fn start_mosquitto(dir: &Scratch, conf: &str) -> Daemon {
    let path = dir.write("mosquitto.conf", conf, false);
    Daemon::spawn(
        "mosquitto",
        Command::new(tool("mosquitto")).arg("-c").arg(&path),
        &dir.join("mosquitto"),
    )
}

#[test]
fn the_canary_passes_while_mosquitto_checks_the_crl_and_fails_at_the_next_check_once_it_does_not() {
    tool("mosquitto");
    let dir = Scratch::new("canary");
    let port = free_port();
    let rdir = dir.join("receiver");
    let (_receiver, receiver_port) = receiver(&rdir, 0, 0);
    let config = dir.write(
        "fleetca.toml",
        &format!(
            "canary_interval_seconds = {INTERVAL_SECONDS}\nwebhook_allow_private = true\nwebhook_retry_initial_seconds = 0.2\n\n\
             [[brokers]]\nkind = \"mqtt\"\nname = \"mosquitto\"\nmqtt_url = \"mqtts://127.0.0.1:{port}\"\n"
        ),
        false,
    );
    let crl_file = dir.join("crl.pem");
    let reload = format!(
        "pid=$(cat {} 2>/dev/null) && kill -HUP \"$pid\"",
        dir.join("mosquitto.pid").display()
    );
    let server = Fleetca::start_with(
        &dir.join("data"),
        &[
            "--config",
            config.to_str().expect("UTF-8 path"),
            "--crl-file",
            crl_file.to_str().expect("UTF-8 path"),
            "--crl-reload-command",
            &reload,
        ],
        &[],
    );
    let admin = server.admin_token();
    let hook = server
        .post(
            "/api/v4/manage/webhooks/",
            Some(&admin),
            &json!({
                "url": format!("http://127.0.0.1:{receiver_port}/fleetca"),
                "events": ["broker.revocation_not_enforced"],
            }),
        )
        .expect_json(201, "create a webhook");
    std::fs::write(rdir.join("secret"), hook["secret"].as_str().expect("secret")).expect("secret file");

    // The broker is not up yet: the valid canary cannot connect, so nothing is proven.
    let down = wait_canary(&server, &admin, "a check while the broker is down", |c| {
        c["checked_at"].is_string()
    });
    assert_eq!(down["enforced"], false, "{down}");
    assert_eq!(down["valid_accepted"], false, "{down}");

    // mosquitto with fleetca's server certificate and CRL.
    crate::mosquitto::broker_files(&server, &admin, &dir);
    let with_crl = mosquitto_conf(dir.path(), port);
    assert!(with_crl.contains("crlfile"));
    let mut broker = start_mosquitto(&dir, &with_crl);
    wait_for_port(&mut broker, port);
    let up = Utc::now();
    let passed = wait_canary(&server, &admin, "a passing check", |c| {
        c["enforced"] == true && checked_at(c).is_some_and(|t| t > up)
    });
    println!("passing check: {passed}");
    assert_eq!(passed["valid_accepted"], true, "{passed}");
    assert_eq!(passed["revoked_refused"], true, "{passed}");
    assert!(passed["latency_ms"].is_u64(), "{passed}");
    assert_eq!(metric(&server, "fleetca_broker_revocation_enforced"), Some(1.0));
    assert!(metric(&server, "fleetca_broker_canary_latency_seconds").is_some());
    let last = metric(&server, "fleetca_broker_canary_last_check_timestamp_seconds").expect("last check metric");
    assert!(
        last >= up.timestamp() as f64,
        "last check {last} is before the broker started"
    );
    assert!(
        broker.stderr().contains("certificate verify failed"),
        "mosquitto did not log refusing the revoked canary:\n{}",
        broker.log_tail(40)
    );

    // fleetca's retry of the reload command (refused while mosquitto was not running) has
    // now published the CRL listing the revoked canary to the running broker.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.get("/readyz", None).status != 200 {
        assert!(
            Instant::now() < deadline,
            "the CRL was not published within 30 s of mosquitto's start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The same broker without its crlfile line: the first check after it is up fails.
    broker.terminate(Duration::from_secs(10));
    let without_crl: String = with_crl
        .lines()
        .filter(|l| !l.starts_with("crlfile"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut broker = start_mosquitto(&dir, &without_crl);
    wait_for_port(&mut broker, port);
    let restarted = Utc::now();
    let failed = wait_canary(&server, &admin, "a check after the broker lost its crlfile", |c| {
        c["valid_accepted"] == true && checked_at(c).is_some_and(|t| t > restarted)
    });
    assert_eq!(failed["enforced"], false, "{failed}");
    assert_eq!(failed["revoked_refused"], false, "{failed}");
    assert!(failed["detail"].as_str().unwrap_or("").contains("revoked"), "{failed}");
    // Checks run every interval, so the first one after the restart came within one
    // interval plus the time a check takes (two TLS connections).
    let took = checked_at(&failed).expect("checked_at") - restarted;
    assert!(
        took < chrono::Duration::seconds(INTERVAL_SECONDS as i64 + 5),
        "the failing check came {took} after the broker restarted"
    );
    assert_eq!(metric(&server, "fleetca_broker_revocation_enforced"), Some(0.0));
    // The canary's gauges are described and well-formed.
    let text = fleetca_e2e::http::request("GET", &server.url("/metrics"), None, None).body;
    let lint = fleetca_e2e::run_with_input(
        Command::new(tool("promtool")).args(["check", "metrics"]),
        Some(text.as_bytes()),
        Duration::from_secs(20),
    );
    assert!(lint.success(), "promtool check metrics:\n{}", lint.combined());
    let event = wait_delivered(
        &rdir,
        "broker.revocation_not_enforced",
        |d| d["broker"] == "mosquitto",
        Duration::from_secs(30),
    );
    assert!(
        event["data"]["detail"].as_str().unwrap_or("").contains("revoked"),
        "{event}"
    );
}
