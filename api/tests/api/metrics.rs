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
