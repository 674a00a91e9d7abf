//! `GET /metrics`: Prometheus text format, rendered by `metrics-exporter-prometheus` from
//! what the services count (certificates issued and revoked, broker decisions and their
//! latency, cache lookups), the request metrics of [`track`], and gauges read at scrape
//! time (the CRL, certificates about to expire, password hashes, database connections).
//! Open only to `metrics_allow` networks (loopback by default).

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::ApiError;
use crate::http::edge::route;
use crate::state::AppState;
use crate::support::Error;

pub fn routes() -> crate::http::edge::Routes {
    vec![("/metrics", vec![route("GET", || web::get().to(metrics))])]
}

/// Latency buckets (seconds): sub-millisecond broker decisions to multi-second revocations.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's metrics recorder (once) and returns the handle that renders it.
/// Call before the services are built, so the counters they register are recorded.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Histograms keep their samples until drained: drain them every few seconds
            // whether or not anyone scrapes, so memory stays flat.
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                });
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics shows only fleetca's own");
            }
            metrics::gauge!("fleetca_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            describe();
            handle
        })
        .clone()
}

/// The help text of every metric (promtool wants one), and the issued counters at zero so
/// a query finds them before the first issuance.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("fleetca_build_info", "fleetca's version (the value is always 1)");
    describe_counter!(
        "fleetca_http_requests_total",
        "HTTP requests by method, route template and status"
    );
    describe_histogram!(
        "fleetca_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by method and route template"
    );
    describe_counter!(
        "fleetca_certificates_issued_total",
        "Certificates issued, by kind (client, device, claim, server)"
    );
    describe_counter!(
        "fleetca_certificates_revoked_total",
        "Certificates revoked, by RFC 5280 reason"
    );
    describe_counter!(
        "fleetca_broker_decisions_total",
        "Broker auth and ACL decisions by check, client kind and result (allow, deny, error)"
    );
    describe_histogram!(
        "fleetca_broker_decision_duration_seconds",
        Unit::Seconds,
        "Broker decision latency by check and client kind"
    );
    describe_counter!(
        "fleetca_cache_lookups_total",
        "Credential cache lookups by cache and result (hit, miss)"
    );
    describe_gauge!(
        "fleetca_broker_revocation_enforced",
        "1 when the revocation canary's last check found the broker refusing a revoked certificate and accepting a valid one, else 0"
    );
    describe_gauge!(
        "fleetca_broker_canary_valid_accepted",
        "1 when the broker accepted the valid canary certificate at the last check (0: down, or refusing fleetca's certificates)"
    );
    describe_gauge!(
        "fleetca_broker_canary_last_check_timestamp_seconds",
        "When the revocation canary last checked the broker (Unix time)"
    );
    describe_gauge!(
        "fleetca_broker_canary_interval_seconds",
        "How often the revocation canary checks the broker (canary_interval_seconds)"
    );
    describe_gauge!(
        "fleetca_broker_canary_latency_seconds",
        "How long the valid canary certificate took from connecting to its CONNACK at the last check (NaN when it got none)"
    );
    describe_gauge!("fleetca_crl_number", "The CRL number of the CRL being served");
    describe_gauge!(
        "fleetca_crl_entries",
        "Revoked certificates listed in the CRL being served"
    );
    describe_gauge!("fleetca_crl_size_bytes", "Size of the CRL being served (DER)");
    describe_gauge!(
        "fleetca_crl_age_seconds",
        "Seconds since the thisUpdate of the CRL being served"
    );
    describe_gauge!(
        "fleetca_crl_validity_seconds",
        "nextUpdate minus thisUpdate of the CRL being served"
    );
    describe_gauge!(
        "fleetca_crl_publication_ok",
        "1 when the last CRL file write and reload command succeeded (or none is configured), else 0"
    );
    describe_gauge!(
        "fleetca_certificates_expiring",
        "Active certificates that expire within 7 or 30 days (renewed ones not counted)"
    );
    describe_gauge!(
        "fleetca_ca_not_after_timestamp_seconds",
        "When each CA that is not retired expires (Unix time); alert on it minus time() (ca.expiring warns 180, 90 and 30 days ahead)"
    );
    describe_gauge!(
        "fleetca_password_hashes",
        "argon2id hashes in flight and waiting for a core"
    );
    describe_gauge!("fleetca_db_connections", "Database pool connections in use and idle");
    describe_counter!(
        "fleetca_webhook_deliveries_total",
        "Webhook delivery attempts by result (delivered, retry, failed: given up)"
    );
    describe_counter!(
        "fleetca_disconnects_total",
        "Requests to end live sessions, by broker and result (ok, error)"
    );
    describe_histogram!(
        "fleetca_disconnect_delay_seconds",
        Unit::Seconds,
        "From the change that invalidated a credential to a broker's confirmation that its sessions ended"
    );
    describe_gauge!(
        "fleetca_disconnects",
        "Disconnects waiting for a broker's confirmation (pending) and given up (failed)"
    );
    describe_gauge!(
        "fleetca_webhook_deliveries",
        "Webhook deliveries waiting for an attempt (pending) and given up (failed)"
    );
    for kind in ["client", "device", "claim", "server"] {
        metrics::counter!("fleetca_certificates_issued_total", "kind" => kind).increment(0);
    }
}

/// The brokers' routes, the hot path: their path is their template, so they are named
/// without looking the request up in the route table. Set from the route table (every
/// family's `/broker/…` paths) when the routes are mounted.
static BROKER_ROUTES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();

/// Names the static `/broker/…` paths (the first call wins: every app mounts the same table).
pub fn name_broker_routes(paths: impl Iterator<Item = &'static str>) {
    BROKER_ROUTES.get_or_init(|| paths.collect());
}

/// A request's counter and latency histogram, looked up once per thread and label set: a
/// handle's increment is one atomic add, where building the labelled key and finding it in the
/// registry on every request would cost the hot broker path several per cent of its throughput.
type RequestHandles = (metrics::Counter, metrics::Histogram);

/// The label sets one thread keeps handles for (method, route template and status are few;
/// past this, requests are still counted, only without the cache).
const CACHED_LABEL_SETS: usize = 512;

/// (method, route template, status).
type RequestLabels = (&'static str, std::borrow::Cow<'static, str>, u16);

thread_local! {
    static HANDLES: std::cell::RefCell<std::collections::HashMap<RequestLabels, RequestHandles>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The method as a label: the standard ones by name, anything else as `other` (a client's
/// made-up method must not add series).
fn method_label(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

fn request_handles(method: &'static str, route: &str, status: u16) -> RequestHandles {
    let make = || {
        let route = metrics::SharedString::from(route.to_owned());
        (
            metrics::counter!(
                "fleetca_http_requests_total",
                "method" => method,
                "route" => route.clone(),
                "status" => status.to_string()
            ),
            metrics::histogram!("fleetca_http_request_duration_seconds", "method" => method, "route" => route),
        )
    };
    HANDLES.with(|cell| {
        let Ok(mut cache) = cell.try_borrow_mut() else {
            return make();
        };
        let key = (method, std::borrow::Cow::Owned(route.to_owned()), status);
        if let Some(h) = cache.get(&key) {
            return h.clone();
        }
        let handles = make();
        if cache.len() < CACHED_LABEL_SETS {
            cache.insert(key, handles.clone());
        }
        handles
    })
}

/// The same for a broker route (a `&'static str`): no allocation on a cache hit.
fn broker_handles(method: &'static str, route: &'static str, status: u16) -> RequestHandles {
    HANDLES.with(|cell| {
        if let Ok(cache) = cell.try_borrow()
            && let Some(h) = cache.get(&(method, std::borrow::Cow::Borrowed(route), status))
        {
            return h.clone();
        }
        request_handles(method, route, status)
    })
}

/// Counts every request by method, route template and status, with its latency (the
/// brokers' routes are counted by their own edge, [`BrokerCount`]).
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let pattern = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let result = next.call(req).await;
    let status = match &result {
        Ok(res) => res.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    let (counter, histogram) = request_handles(method, &pattern, status);
    counter.increment(1);
    histogram.record(started.elapsed().as_secs_f64());
    result
}

/// A broker request being counted: its method and route, both `&'static str` (the route
/// found among the broker routes' paths, so nothing is allocated per request).
pub struct BrokerCount {
    method: &'static str,
    route: &'static str,
}

impl BrokerCount {
    pub fn of(method: &actix_web::http::Method, path: &str) -> Self {
        let path = path.strip_suffix('/').unwrap_or(path);
        let route = BROKER_ROUTES
            .get()
            .and_then(|routes| routes.iter().find(|r| **r == path).copied())
            .unwrap_or("unmatched");
        Self {
            method: method_label(method),
            route,
        }
    }

    /// Counts the answer, with its latency, as [`track`] does the API's.
    pub fn record(self, status: u16, elapsed: std::time::Duration) {
        let (counter, histogram) = broker_handles(self.method, self.route, status);
        counter.increment(1);
        histogram.record(elapsed.as_secs_f64());
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "public", responses(
    (status = 200, description = "Prometheus text format (only from metrics_allow networks)", content_type = "text/plain", body = String),
    (status = 403, description = "Not from a metrics_allow network", content_type = "application/problem+json", body = crate::error::Problem),
))]
pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if !crate::http::extract::peer_within(&req, &state.config.metrics_allow) {
        return Err(Error::Forbidden("This address may not read the metrics (see metrics_allow).".into()).into());
    }
    let g = state.overview.gauges().await?;
    let crl = g.crl.as_ref();
    metrics::gauge!("fleetca_crl_number").set(crl.map_or(0.0, |c| c.number as f64));
    metrics::gauge!("fleetca_crl_entries").set(crl.map_or(0.0, |c| c.entries as f64));
    metrics::gauge!("fleetca_crl_size_bytes").set(crl.map_or(0.0, |c| c.der.len() as f64));
    metrics::gauge!("fleetca_crl_age_seconds").set(g.crl_age_seconds as f64);
    metrics::gauge!("fleetca_crl_validity_seconds")
        .set(crl.map_or(0.0, |c| (c.next_update - c.this_update).num_seconds() as f64));
    metrics::gauge!("fleetca_crl_publication_ok").set(if g.publish_ok { 1.0 } else { 0.0 });
    metrics::gauge!("fleetca_certificates_expiring", "within" => "7d").set(g.expiring_7d as f64);
    metrics::gauge!("fleetca_certificates_expiring", "within" => "30d").set(g.expiring_30d as f64);
    for ca in state.overview.cas.expiries() {
        metrics::gauge!(
            "fleetca_ca_not_after_timestamp_seconds",
            "ca" => ca.id.to_string(),
            "role" => ca.data.get("role").and_then(|v| v.as_str()).unwrap_or_default().to_owned(),
            "state" => ca.data.get("state").and_then(|v| v.as_str()).unwrap_or_default().to_owned(),
        )
        .set(ca.not_after.timestamp() as f64);
    }
    metrics::gauge!("fleetca_password_hashes", "state" => "in_flight").set(g.hashes_in_flight as f64);
    metrics::gauge!("fleetca_password_hashes", "state" => "waiting").set(g.hashes_waiting as f64);
    metrics::gauge!("fleetca_db_connections", "state" => "in_use").set(f64::from(g.pool_open) - g.pool_idle as f64);
    metrics::gauge!("fleetca_db_connections", "state" => "idle").set(g.pool_idle as f64);
    metrics::gauge!("fleetca_webhook_deliveries", "status" => "pending").set(g.webhooks_pending as f64);
    metrics::gauge!("fleetca_webhook_deliveries", "status" => "failed").set(g.webhooks_failed as f64);
    metrics::gauge!("fleetca_disconnects", "status" => "pending").set(g.disconnects_pending as f64);
    metrics::gauge!("fleetca_disconnects", "status" => "failed").set(g.disconnects_failed as f64);
    let text = install().render();
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(text))
}
