//! The REST API as the client commands use it: a base URL, a token, JSON in and out, and
//! errors sorted into the CLI's exit codes.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::CliError;

/// A running fleetca.
pub struct Api {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

/// A path segment, percent-encoded.
pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl Api {
    /// A client for `base`, trusting `ca_file` (fleetca's CA) for HTTPS besides the system's roots.
    pub fn new(base: &str, token: Option<String>, ca_file: Option<&Path>) -> Result<Self, CliError> {
        let client = client_builder(ca_file)?
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| CliError::Usage(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            client,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `method path` with an optional JSON body; the JSON answer (`Null` for an empty one).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        let mut request = self.client.request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|e| network(&e, &self.base))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| network(&e, &self.base))?;
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status.is_success() {
            return Ok(value);
        }
        Err(CliError::Api {
            status: status.as_u16(),
            detail: problem_detail(&value, status),
            errors: value.get("errors").cloned(),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Every result of a paged listing (`?…&page_size=500`, following `page`).
    pub async fn list_all(&self, path: &str) -> Result<Vec<Value>, CliError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        for page in 1u64.. {
            let body = self.get(&format!("{path}{sep}page={page}&page_size=500")).await?;
            let results = body
                .get("results")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            out.extend(results);
            if body.get("next").is_none_or(Value::is_null) {
                break;
            }
        }
        Ok(out)
    }
}

/// The CLI's HTTP client: fleetca's outgoing-call defaults, trusting `ca_file` (fleetca's CA,
/// PEM) besides the system's roots.
pub fn client_builder(ca_file: Option<&Path>) -> Result<reqwest::ClientBuilder, CliError> {
    let mut builder = crate::net::http_client()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("fleetca-cli/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| CliError::Usage(format!("--ca-file {}: {e}", path.display())))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| CliError::Usage(format!("--ca-file {}: not a PEM certificate ({e})", path.display())))?;
        builder = builder.tls_certs_merge([cert]);
    }
    Ok(builder)
}

/// A problem's `detail` (RFC 9457), or the status's reason.
fn problem_detail(value: &Value, status: reqwest::StatusCode) -> String {
    value
        .get("detail")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| value.as_str().map(|s| s.chars().take(300).collect()))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned())
}

fn network(e: &reqwest::Error, base: &str) -> CliError {
    CliError::Network(format!(
        "cannot reach fleetca at {base}: {}",
        crate::net::describe_request_error(e)
    ))
}

/// The API client of the saved profile (or `FLEETCA_URL` and `FLEETCA_TOKEN`).
pub fn api() -> Result<Api, CliError> {
    let p = super::profile::effective()?;
    let url = p
        .url
        .ok_or_else(|| CliError::Usage("no fleetca URL: run `fleetca login --url URL` or set FLEETCA_URL".into()))?;
    let token = p
        .token
        .ok_or_else(|| CliError::Usage("no token: run `fleetca login` or set FLEETCA_TOKEN".into()))?;
    Api::new(&url, Some(token), p.ca_file.as_deref())
}

/// Sets a field of a JSON object body.
pub fn put(body: &mut Value, field: &str, value: Value) {
    if let Some(obj) = body.as_object_mut() {
        obj.insert(field.to_owned(), value);
    }
}
