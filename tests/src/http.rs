//! HTTP through `curl`, as an operator following the README would call the API.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::process::{Output, run_with_input, tool};

/// The `-w` suffix that makes curl print the status code on a line of its own after the
/// body.
pub const STATUS_SUFFIX: &str = r"-w '\n%{http_code}'";

/// A response: the status code and the body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    /// Splits curl's output written with [`STATUS_SUFFIX`] (or `-w '\n%{http_code}'`).
    pub fn from_curl(what: &str, out: &Output) -> Self {
        out.expect_success(what);
        let (body, status) = out.stdout.rsplit_once('\n').unwrap_or(("", out.stdout.as_str()));
        let status = status
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{what}: curl printed no status code:\n{}", out.combined()));
        Self {
            status,
            body: body.to_owned(),
        }
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}); status {}: {}", self.status, self.body))
    }

    /// Asserts the status and returns the body as JSON.
    pub fn expect_json(&self, status: u16, what: &str) -> Value {
        assert_eq!(self.status, status, "{what}: unexpected status; body: {}", self.body);
        self.json()
    }
}

/// One request with curl: `method url`, an optional Bearer token and an optional JSON body
/// (sent on standard input, so it needs no shell quoting).
pub fn request(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> Response {
    let mut cmd = Command::new(tool("curl"));
    cmd.args(["-sS", "--max-time", "30", "-X", method, url, "-w", "\n%{http_code}"]);
    if let Some(t) = token {
        cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
    }
    let body = body.map(|b| b.to_string());
    if body.is_some() {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", "@-"]);
    }
    let out = run_with_input(&mut cmd, body.as_deref().map(str::as_bytes), Duration::from_secs(40));
    Response::from_curl(&format!("curl -X {method} {url}"), &out)
}
