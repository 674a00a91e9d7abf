//! `/metrics` is open to `metrics_allow` networks only.

use crate::helpers::{TestApp, assert_problem};

#[actix_web::test]
async fn metrics_are_served_in_the_prometheus_text_format_to_allowed_networks_only() {
    let app = TestApp::spawn().await;
    let r = app.send("GET", "/metrics", None, None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        r.content_type
    );
    let text = String::from_utf8_lossy(&r.raw);
    for name in [
        "fleetca_build_info",
        "fleetca_crl_number",
        "fleetca_certificates_expiring",
        "fleetca_db_connections",
        "fleetca_ca_not_after_timestamp_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} gauge")),
            "{name} missing:\n{text}"
        );
    }
    // The CA's expiry, as a timestamp an alert compares with time().
    let ca_expiry = text
        .lines()
        .find(|l| l.starts_with("fleetca_ca_not_after_timestamp_seconds{ca=\"1\""))
        .unwrap_or_else(|| panic!("no expiry of CA 1:\n{text}"));
    let at: f64 = ca_expiry.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(at > chrono::Utc::now().timestamp() as f64 + 86_400.0, "{ca_expiry}");
    let closed = TestApp::spawn_with(|c| c.metrics_allow = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let r = closed.send("GET", "/metrics", None, None).await;
    assert_problem(&r, 403);
}

/// The brokers' routes have an edge of their own (no request id, one middleware): they are
/// still counted by route and status, marked `nosniff`, and what they refuse is problem+json.
#[actix_web::test]
async fn the_brokers_routes_are_counted_by_route_and_refuse_with_problems() {
    let app = TestApp::spawn().await;
    let body = serde_json::json!({"username": "nobody", "password": "x"});
    for path in ["/broker/superuser?response=json", "/broker/superuser/?response=json"] {
        let r = app.send("POST", path, None, Some(body.clone())).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.body["ok"], false, "{path}");
        assert_eq!(r.headers.get("x-content-type-options").unwrap(), "nosniff", "{path}");
        assert!(r.headers.get("x-request-id").is_none(), "{path}");
    }
    let wrong_method = app.send("GET", "/broker/superuser", None, None).await;
    assert_problem(&wrong_method, 405);
    assert_eq!(wrong_method.headers.get("allow").unwrap(), "POST");
    let unknown = app.send("POST", "/broker/no-such-check", None, Some(body)).await;
    assert_problem(&unknown, 404);
    assert_eq!(unknown.headers.get("x-content-type-options").unwrap(), "nosniff");
    let text = String::from_utf8_lossy(&app.send("GET", "/metrics", None, None).await.raw).into_owned();
    let count = |route: &str, status: u16| {
        let labels = format!("fleetca_http_requests_total{{method=\"POST\",route=\"{route}\",status=\"{status}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(labels.as_str()))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(count("/broker/superuser", 200) >= 2, "{text}");
    assert!(count("unmatched", 404) >= 1, "{text}");
}
