//! Starts a real fleetca server in-process on a free port with a fresh data directory
//! (SQLite) and talks to it over HTTP, as a client would.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use awc::Client;
use fleetca::config::{Config, LogFormat, Secret};
use serde_json::{Value, json};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdefghijklmnop";

pub struct TestApp {
    pub base: String,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub client: Client,
    pub admin: String,
    _handle: actix_web::dev::ServerHandle,
}

pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub headers: awc::http::header::HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn test_config(data_dir: PathBuf) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: format!("sqlite://{}?mode=rwc", data_dir.join("fleetca.db").display()),
        data_dir,
        database_max_connections: 4,
        public_url: "http://fleetca.test".into(),
        log_format: LogFormat::Text,
        body_limit_bytes: 64 * 1024,
        ca_common_name: "fleetca test CA".into(),
        ca_organization: None,
        ca_validity_years: 20,
        admin_enterprise: "default".into(),
        crl_file: None,
        crl_reload_command: None,
        crl_file_access: Default::default(),
        crl_validity_hours: 168,
        crl_refresh_hours: 24,
        broker_allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        broker_secret: None,
        proxy_secret: None,
        broker_timestamp_skew_seconds: 300,
        broker_trust_username_for_certificates: false,
        enterprise_certificate_changes_per_minute: 600,
        registrations_per_minute: 60,
        mqtt: None,
        tls: None,
        trusted_proxies: Vec::new(),
        metrics_allow: vec!["127.0.0.0/8".parse().unwrap()],
        renewal: Default::default(),
        webhooks: fleetca::outbox::webhooks::WebhookPolicy {
            allow_private: true,
            initial_backoff: chrono::Duration::milliseconds(50),
            expiry_scan: std::time::Duration::from_millis(300),
            ..Default::default()
        },
        disconnects: Default::default(),
        rabbitmq: Default::default(),
        canary: Default::default(),
        acl: Default::default(),
        pkcs11: None,
        ca_key_algorithm: Default::default(),
        master_key: Some(Secret::new("00".repeat(32))),
        bootstrap_token: Some(Secret::new(ADMIN_TOKEN)),
        benchmark_baseline: false,
    }
}

pub fn fresh_dir() -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!(
        "fleetca-api-{}-{n}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let data_dir = fresh_dir();
        let mut config = test_config(data_dir.clone());
        // The suite runs twice: on SQLite, and with FLEETCA_TEST_POSTGRES_URL on PostgreSQL
        // (a fresh database per test).
        if let Ok(server) = std::env::var("FLEETCA_TEST_POSTGRES_URL") {
            let name = format!("fleetca_test_{}", uuid::Uuid::new_v4().simple());
            fleetca_storage::create_postgres_database(&server, &name)
                .await
                .expect("create test database");
            let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
            config.database_url = format!("{base}/{name}");
        }
        tweak(&mut config);
        let database_url = config.database_url.clone();
        let state = fleetca::startup::prepare(config).await.expect("server prepares");
        let running = fleetca::startup::serve(state).expect("server binds");
        let handle = running.handle.clone();
        actix_web::rt::spawn(running.server);
        let client = Client::builder().timeout(std::time::Duration::from_secs(30)).finish();
        TestApp {
            base: format!("http://{}", running.addr),
            database_url,
            data_dir,
            client,
            admin: ADMIN_TOKEN.into(),
            _handle: handle,
        }
    }

    /// Everything the database holds, as bytes to search: the SQLite files, or a
    /// `pg_dump` of the PostgreSQL database.
    pub fn database_bytes(&self) -> Vec<u8> {
        if self.database_url.starts_with("postgres") {
            let out = std::process::Command::new("pg_dump")
                .args(["--data-only", &self.database_url])
                .output()
                .expect("pg_dump is installed with PostgreSQL");
            assert!(
                out.status.success(),
                "pg_dump: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return out.stdout;
        }
        let mut bytes = Vec::new();
        for f in std::fs::read_dir(&self.data_dir).unwrap() {
            let path = f.unwrap().path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("fleetca.db"))
            {
                bytes.extend(std::fs::read(path).unwrap());
            }
        }
        bytes
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = self.client.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let res = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        };
        Self::read(res.expect("request sent")).await
    }

    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Resp {
        let mut req = self
            .client
            .request(method.parse().unwrap(), self.url(path))
            .insert_header(("Content-Type", content_type));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        Self::read(req.send_body(body).await.expect("request sent")).await
    }

    pub async fn read<S>(mut res: awc::ClientResponse<S>) -> Resp
    where
        S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
    {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let raw = res.body().limit(64 * 1024 * 1024).await.expect("body read").to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Resp {
            status,
            content_type,
            headers,
            body,
            raw,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.send("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.send("POST", path, Some(token), Some(body)).await
    }

    /// Creates a user as the admin; returns (id, token).
    pub async fn user(&self, username: &str, service: bool, enterprise: &str, role: Option<&str>) -> (String, String) {
        let mut body = json!({"username": username, "is_service_account": service, "enterprise": enterprise});
        if let Some(r) = role {
            body["role"] = json!(r);
        }
        let r = self.post("/api/v4/manage/users/", &self.admin, body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        (
            r.body["id"].as_str().unwrap().to_owned(),
            r.body["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates a client certificate for `api_key_id` as the admin.
    pub async fn certificate(&self, api_key_id: &str, name: &str) -> Value {
        let r = self
            .post(
                "/api/v4/manage/mqtt-certificates/",
                &self.admin,
                json!({"name": name, "api_key_id": api_key_id}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Asserts an RFC 9457 problem with this status, and returns its body.
#[track_caller]
pub fn assert_problem(r: &Resp, status: u16) -> &Value {
    assert_eq!(r.status, status, "body: {}", String::from_utf8_lossy(&r.raw));
    assert_eq!(r.content_type, "application/problem+json", "body: {}", r.body);
    for key in ["type", "title", "detail"] {
        assert!(r.body[key].is_string(), "problem lacks {key}: {}", r.body);
    }
    assert_eq!(r.body["status"], status);
    assert!(!r.body["detail"].as_str().unwrap().is_empty());
    &r.body
}

/// Asserts a 400 validation problem naming `field`.
#[track_caller]
pub fn assert_field_error(r: &Resp, field: &str) {
    let body = assert_problem(r, 400);
    assert!(body["errors"][field].is_array(), "no error for {field}: {body}");
}

/// `openssl dgst ARGS -r` over `input`: a digest computed independently of fleetca.
pub fn openssl_dgst(args: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .arg("dgst")
        .args(args)
        .arg("-r")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl is installed (scripts/test installs it)");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}
