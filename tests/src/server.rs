//! The real `fleetca` binary on a free loopback port, and the few API calls every test
//! needs (creating an API key, issuing and revoking a certificate).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http::{self, Response};
use crate::process::{Daemon, run, tool};
use crate::scratch::free_port;

/// The binary under test: `$FLEETCA_BIN`, else `target/debug/fleetca` in the workspace.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FLEETCA_BIN") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "FLEETCA_BIN={} is not a file", path.display());
        return path;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits inside the workspace");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let path = target.join("debug").join("fleetca");
    assert!(
        path.is_file(),
        "{} does not exist: run `cargo build --bin fleetca` first (scripts/test does), or set FLEETCA_BIN",
        path.display()
    );
    path
}

/// A running `fleetca serve`, stopped when dropped.
pub struct Fleetca {
    pub port: u16,
    /// `http://127.0.0.1:{port}`, also its public URL.
    pub base: String,
    pub data_dir: PathBuf,
    daemon: Daemon,
}

impl Fleetca {
    /// Starts fleetca on a free port with `data_dir` and waits until `/healthz` answers.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[], &[])
    }

    /// Like [`Fleetca::start`] with extra flags and environment variables.
    pub fn start_with(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let daemon = Self::spawn(data_dir, port, args, env);
        let mut server = Self {
            port,
            base: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_owned(),
            daemon,
        };
        server.wait_healthy(Duration::from_secs(30));
        server
    }

    /// Starts `fleetca serve --listen 127.0.0.1:{port} --data-dir {data_dir}` without waiting
    /// for it, with `FLEETCA_PUBLIC_URL`, `RUST_LOG=info` and `NO_COLOR` set and every other `FLEETCA_*`
    /// variable of the test's environment removed. Its output goes to
    /// `{data_dir}/fleetca-{port}.stdout` and `.stderr`.
    pub fn spawn(data_dir: &Path, port: u16, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        std::fs::create_dir_all(data_dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", data_dir.display()));
        let mut cmd = Command::new(binary());
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(args);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FLEETCA_") {
                cmd.env_remove(key);
            }
        }
        // NO_COLOR: the log goes to a file that a failing test prints; keep it plain text.
        cmd.env("FLEETCA_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon::spawn("fleetca", &mut cmd, &data_dir.join(format!("fleetca-{port}")))
    }

    fn wait_healthy(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let url = self.url("/healthz");
        loop {
            if let Some(status) = self.daemon.exited() {
                panic!(
                    "fleetca exited ({status}) before answering {url}:\n{}",
                    self.daemon.log_tail(80)
                );
            }
            let out = run(
                Command::new(tool("curl"))
                    .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2"])
                    .arg(&url),
                Duration::from_secs(10),
            );
            if out.stdout.trim() == "200" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "fleetca did not answer 200 on {url} within {timeout:?}:\n{}",
                self.daemon.log_tail(80)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The first admin's token, from `{data_dir}/admin-token`.
    pub fn admin_token(&self) -> String {
        let path = self.data_dir.join("admin-token");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
            .trim()
            .to_owned()
    }

    /// What the server has logged so far.
    pub fn stderr(&self) -> String {
        self.daemon.stderr()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Sends SIGTERM and waits at most `timeout` for the exit status (`None` if it still
    /// runs; dropping the guard then kills it).
    pub fn stop(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.daemon.terminate(timeout)
    }

    /// `GET path`.
    pub fn get(&self, path: &str, token: Option<&str>) -> Response {
        http::request("GET", &self.url(path), token, None)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        http::request("POST", &self.url(path), token, Some(body))
    }

    /// Creates an API key (service account) and returns the created record with its token.
    pub fn create_api_key(&self, admin: &str, username: &str, enterprise: &str) -> Value {
        let body = json!({"username": username, "is_service_account": true, "enterprise": enterprise});
        self.post("/api/v4/manage/users/", Some(admin), &body)
            .expect_json(201, "creating an API key")
    }

    /// Issues an MQTT client certificate for `api_key_id` and writes `{stem}.crt` (the
    /// certificate and its intermediates, as a client presents them), `{stem}.key` (mode
    /// 0600) and `ca.crt` into `dir`.
    pub fn issue_certificate(
        &self,
        token: &str,
        api_key_id: &str,
        name: &str,
        dir: &Path,
        stem: &str,
    ) -> IssuedCertificate {
        let body = json!({"name": name, "api_key_id": api_key_id});
        let created = self
            .post("/api/v4/manage/mqtt-certificates/", Some(token), &body)
            .expect_json(201, "creating an MQTT certificate");
        let field = |k: &str| {
            created[k]
                .as_str()
                .unwrap_or_else(|| panic!("the create response has no string {k:?}: {created}"))
                .to_owned()
        };
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        let ca = dir.join("ca.crt");
        write_file(&cert, &(field("certificate_pem") + &field("chain_pem")), false);
        write_file(&key, &field("private_key_pem"), true);
        write_file(&ca, &field("ca_certificate_pem"), false);
        IssuedCertificate {
            id: field("id"),
            serial: field("serial"),
            fingerprint: field("fingerprint"),
            cert,
            key,
            ca,
            created,
        }
    }

    /// Revokes a certificate with a reason and returns the revoked record.
    pub fn revoke(&self, token: &str, id: &str, reason: &str) -> Value {
        self.post(
            &format!("/api/v4/manage/mqtt-certificates/{id}/revoke/"),
            Some(token),
            &json!({"reason": reason}),
        )
        .expect_json(200, "revoking a certificate")
    }
}

/// A certificate issued by [`Fleetca::issue_certificate`] and the files it was written to.
#[derive(Debug)]
pub struct IssuedCertificate {
    pub id: String,
    /// Lowercase hex, as the API reports it.
    pub serial: String,
    /// SHA-256 of the DER, lowercase hex, as the API reports it.
    pub fingerprint: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// The whole create response.
    pub created: Value,
}

/// `fleetca --data-dir DATA <args>`: an offline command on a server's database (`fleetca ca
/// …`, `fleetca renew …`), with every `FLEETCA_*` variable of the test's environment removed.
pub fn offline(data: &Path, args: &[&str]) -> crate::process::Output {
    let mut cmd = Command::new(binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FLEETCA_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("--data-dir").arg(data).args(args).env("NO_COLOR", "1");
    crate::process::run(&mut cmd, Duration::from_secs(60))
}

/// Writes a file, mode 0600 when `private`.
pub fn write_file(path: &Path, contents: &str, private: bool) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    f.write_all(contents.as_bytes())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Runs `openssl` with these arguments (30 s limit).
pub fn openssl<I, S>(args: I) -> crate::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(Command::new(tool("openssl")).args(args), Duration::from_secs(30))
}

/// The CRL distribution point a certificate file names (`openssl x509 -ext
/// crlDistributionPoints`).
pub fn distribution_point(cert: &Path) -> String {
    let out = openssl([
        OsStr::new("x509"),
        OsStr::new("-noout"),
        OsStr::new("-ext"),
        OsStr::new("crlDistributionPoints"),
        OsStr::new("-in"),
        cert.as_os_str(),
    ]);
    out.expect_success("openssl x509 -ext crlDistributionPoints")
        .split_whitespace()
        .find_map(|w| w.strip_prefix("URI:"))
        .unwrap_or_else(|| panic!("{} names no distribution point", cert.display()))
        .to_owned()
}

/// Runs `openssl` with these arguments in `dir` (30 s limit).
pub fn openssl_in<I, S>(dir: &Path, args: I) -> crate::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(
        Command::new(tool("openssl")).args(args).current_dir(dir),
        Duration::from_secs(30),
    )
}
