//! Monitoring: `/metrics` passes `promtool check metrics`, and a real Prometheus scrapes
//! fleetca and answers a query for the issued-certificates counter with the right value.

use std::process::Command;
use std::time::{Duration, Instant};

use fleetca_e2e::{Daemon, Fleetca, Scratch, free_port, run, run_with_input, tool};
use serde_json::Value;

fn get(url: &str) -> String {
    let out = run(
        Command::new(tool("curl")).args(["-sS", "--max-time", "10", url]),
        Duration::from_secs(15),
    );
    out.expect_success("curl").to_owned()
}

#[test]
fn prometheus_scrapes_fleetca_and_counts_what_it_issued() {
    let (promtool, prometheus) = (tool("promtool"), tool("prometheus"));
    let dir = Scratch::new("metrics");
    let server = Fleetca::start(&dir.join("data"));
    let admin = server.admin_token();
    let key = server.create_api_key(&admin, "svc-metrics", "acme");
    for n in 0..3 {
        server.issue_certificate(
            &admin,
            key["id"].as_str().unwrap(),
            &format!("m{n}"),
            dir.path(),
            &format!("m{n}"),
        );
    }

    let text = get(&server.url("/metrics"));
    assert!(
        text.contains("fleetca_certificates_issued_total{kind=\"client\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("fleetca_http_requests_total{method=\"POST\",route=\"/api/v4/manage/mqtt-certificates/\""),
        "{text}"
    );
    let lint = run_with_input(
        Command::new(&promtool).args(["check", "metrics"]),
        Some(text.as_bytes()),
        Duration::from_secs(20),
    );
    assert!(lint.success(), "promtool check metrics:\n{}", lint.combined());

    // The alert rules the README recommends are valid rules.
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/monitoring/fleetca-alerts.yml");
    let checked = run(
        Command::new(&promtool).arg("check").arg("rules").arg(&rules),
        Duration::from_secs(20),
    );
    assert!(
        checked.success(),
        "promtool check rules:
{}",
        checked.combined()
    );

    let port = free_port();
    let config = dir.write(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: fleetca\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            server.port
        ),
        false,
    );
    let _prometheus = Daemon::spawn(
        "prometheus",
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}")),
        &dir.join("prometheus"),
    );
    let query = format!(
        "http://127.0.0.1:{port}/api/v1/query?query=fleetca_certificates_issued_total%7Bkind%3D%22client%22%7D"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let value = loop {
        let answer = run(
            Command::new(tool("curl")).args(["-sS", "--max-time", "5", &query]),
            Duration::from_secs(10),
        );
        if answer.success()
            && let Ok(json) = serde_json::from_str::<Value>(&answer.stdout)
            && let Some(v) = json["data"]["result"][0]["value"][1].as_str()
        {
            break v.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never answered the query: {}",
            answer.combined()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(value, "3", "Prometheus's value of the issued-certificates counter");
}
