//! `fleetca` as a client of a running fleetca, for provisioning scripts: API keys,
//! certificates (written as files with the right modes), devices (CSV imports of any size,
//! resumable), and the device-side passwords. It talks to the REST API with a token (see
//! [`profile`]); nothing shells out to curl.
//!
//! Exit codes: 0 success, 1 usage (bad arguments, files, configuration), 2 the API refused
//! (its problem `detail` is printed), 3 network (fleetca unreachable).
//!
//! The crate knows nothing of the server: it speaks the API. Its two utilities, an atomic
//! file write ([`files`]) and the outgoing HTTP client ([`net`]), are the server's too.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable
    )
)]

pub mod api;
mod commands;
pub mod files;
mod import;
pub mod net;
pub mod output;
mod products;
pub mod profile;
mod renew;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

pub use commands::{ClientCommand, run};

/// What a client command can fail with, and its exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad arguments, files or configuration (exit 1).
    Usage(String),
    /// The API refused (exit 2): its status, problem detail and field errors.
    Api {
        status: u16,
        detail: String,
        errors: Option<serde_json::Value>,
    },
    /// fleetca could not be reached (exit 3).
    Network(String),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Usage(_) => 1,
            CliError::Api { .. } => 2,
            CliError::Network(_) => 3,
        })
    }

    /// The message for standard error.
    pub fn message(&self) -> String {
        match self {
            CliError::Usage(m) | CliError::Network(m) => m.clone(),
            CliError::Api { status, detail, errors } => {
                let mut text = format!("{detail} (HTTP {status})");
                if let Some(serde_json::Value::Object(fields)) = errors {
                    for (field, why) in fields {
                        let why = match why {
                            serde_json::Value::Array(a) => a
                                .iter()
                                .filter_map(serde_json::Value::as_str)
                                .collect::<Vec<_>>()
                                .join("; "),
                            other => other.to_string(),
                        };
                        text.push_str(&format!("\n  {field}: {why}"));
                    }
                }
                text
            }
        }
    }
}

/// The output option of the client commands (and only theirs).
#[derive(Args, Debug, Clone, Copy)]
pub struct ClientArgs {
    /// Print JSON (the API's objects; an array for a listing) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A group of client commands (`keys`, `certs`, …) with the output option.
#[derive(Args, Debug)]
pub struct Group<C: Subcommand> {
    #[command(subcommand)]
    pub command: C,
    #[command(flatten)]
    pub output: ClientArgs,
}

/// `fleetca login`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// fleetca's URL, e.g. https://fleetca.example:8443.
    #[arg(long)]
    pub url: String,
    /// fleetca's CA certificate (PEM), trusted for HTTPS (for a certificate fleetca issued itself).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    #[command(flatten)]
    pub output: ClientArgs,
}

/// API keys.
#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create an API key; its token is printed once.
    Create {
        /// 3–64 of [a-z0-9._-].
        username: String,
        /// Enterprise code (default: yours).
        #[arg(long)]
        enterprise: Option<String>,
    },
    /// List API keys.
    List {
        /// Only this enterprise's.
        #[arg(long)]
        enterprise: Option<String>,
        /// Username contains this.
        #[arg(long)]
        search: Option<String>,
    },
    /// Show one API key (by username or id).
    Show { key: String },
    /// Replace a key's token (printed once); the old one stops working at once.
    Rotate { key: String },
    /// Deactivate a key: its token stops working, its certificates are revoked.
    Deactivate { key: String },
}

/// MQTT client certificates.
#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Issue a certificate for an API key and write client.crt, ca.crt and client.key (0600).
    Create {
        /// The API key (username or id).
        #[arg(long)]
        key: String,
        /// A PKCS#10 CSR (PEM): the key stays yours and no client.key is written.
        #[arg(long)]
        csr: Option<PathBuf>,
        /// Validity: 1y to 10y (or hours, e.g. 8760h). Default 1y.
        #[arg(long, default_value = "1y")]
        validity: String,
        /// A name for it (default: the key's username).
        #[arg(long)]
        name: Option<String>,
        /// Where to write the files.
        #[arg(long)]
        out: PathBuf,
        /// Replace files that exist.
        #[arg(long)]
        force: bool,
    },
    /// List certificates.
    List {
        /// Only this API key's (username or id).
        #[arg(long)]
        key: Option<String>,
        /// Only active ones expiring within this long (e.g. 30d).
        #[arg(long)]
        expiring_within: Option<String>,
        /// client (default), device or claim.
        #[arg(long)]
        kind: Option<String>,
    },
    /// Revoke certificates (several at once: all or nothing), or every certificate of an API
    /// key with --key; returns once a CRL listing them is published.
    Revoke {
        #[arg(required_unless_present = "key", conflicts_with = "key")]
        ids: Vec<String>,
        /// Every certificate of this API key (username or id) not yet revoked.
        #[arg(long)]
        key: Option<String>,
        /// RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded,
        /// cessationOfOperation, privilegeWithdrawn, …
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Renew a certificate (same name and key binding); writes the new files to --out.
    Renew {
        id: String,
        /// A CSR (PEM) for the new certificate; without one fleetca makes a new key.
        #[arg(long)]
        csr: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        force: bool,
    },
}

/// A device's credentials: a password, its HA1 (with its realm), or neither for a generated
/// password.
#[derive(Args, Debug)]
pub struct DeviceCredentials {
    #[arg(long, conflicts_with = "ha1")]
    pub password: Option<String>,
    #[arg(long)]
    pub ha1: Option<String>,
    #[arg(long)]
    pub realm: Option<String>,
}

impl DeviceCredentials {
    /// Puts the ones given into a request body.
    pub(crate) fn into_body(self, body: &mut serde_json::Value) {
        for (k, v) in [("password", self.password), ("ha1", self.ha1), ("realm", self.realm)] {
            if let Some(v) = v {
                api::put(body, k, v.into());
            }
        }
    }
}

/// HA1 devices.
#[derive(Subcommand, Debug)]
pub enum DevicesCommand {
    /// Provision a device (with --password, --ha1, or neither for a generated password, printed once).
    Create {
        device_id: String,
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        credentials: DeviceCredentials,
        #[arg(long)]
        description: Option<String>,
    },
    /// List devices.
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        search: Option<String>,
    },
    /// Show a device.
    Show {
        device_id: String,
        #[arg(long)]
        tenant: String,
    },
    /// Disable a device: refused at once, its open sessions ended, its certificates revoked.
    Disable {
        device_id: String,
        #[arg(long)]
        tenant: String,
    },
    /// Enable a device again.
    Enable {
        device_id: String,
        #[arg(long)]
        tenant: String,
    },
    /// Replace a device's credentials (with --password, --ha1, or a generated password).
    Rotate {
        device_id: String,
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        credentials: DeviceCredentials,
    },
    /// Delete a device.
    Delete {
        device_id: String,
        #[arg(long)]
        tenant: String,
    },
    /// Provision the devices of a CSV file (header: device_id,tenant and password or ha1;
    /// optional realm, description) in bulk requests. A re-run skips the devices that exist.
    Import(import::ImportArgs),
}

/// Products of the sign-based families (EnOS, Alibaba) and their devices.
#[derive(Subcommand, Debug)]
pub enum ProductsCommand {
    /// Create a product; its product secret is printed once.
    Create {
        /// 1–200 characters.
        name: String,
        #[arg(long, value_parser = ["enos", "aliyun"])]
        scheme: String,
        /// 4–32 of [A-Za-z0-9_-] (default: generated).
        #[arg(long)]
        product_key: Option<String>,
        /// Enterprise code (default: yours).
        #[arg(long)]
        enterprise: Option<String>,
        /// Devices may obtain their secret with the product secret (dynamic activation).
        #[arg(long)]
        dynamic_activation: bool,
        /// Allowed distance of a login's timestamp from server time, in seconds (default: no
        /// check, as on the platforms).
        #[arg(long)]
        max_clock_skew: Option<i64>,
        /// Read the product secret the platform issued from this file (- for standard
        /// input) instead of generating one; it is sent, never printed.
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
    /// Import products from a CSV or JSON Lines file (product_key, name, scheme,
    /// product_secret, dynamic_activation; or the platforms' productKey, productName,
    /// productSecret); products that exist already are left alone, so a re-run goes on.
    Import(import::ImportArgs),
    /// List products.
    List {
        #[arg(long)]
        enterprise: Option<String>,
        /// enos or aliyun.
        #[arg(long)]
        scheme: Option<String>,
        /// product_key or name contains this.
        #[arg(long)]
        search: Option<String>,
    },
    /// Show a product.
    Show { product_key: String },
    /// Disable a product: none of its devices may connect.
    Disable { product_key: String },
    /// Enable a product again.
    Enable { product_key: String },
    /// Replace the product secret (printed once).
    RotateSecret { product_key: String },
    /// Delete a product and its devices.
    Delete { product_key: String },
    /// The devices of a product: create, list, show, disable, enable, rotate-secret,
    /// reset-activation, delete, import a CSV.
    #[command(subcommand)]
    Devices(ProductDevicesCommand),
}

/// Devices of a product.
#[derive(Subcommand, Debug)]
pub enum ProductDevicesCommand {
    /// Register a device (with --secret, or without for a generated one, printed once).
    Create {
        /// The device key (EnOS) or device name (Alibaba).
        device_key: String,
        #[arg(long)]
        product: String,
        /// 16–128 printable ASCII characters without spaces (default: generated, printed once).
        #[arg(long)]
        secret: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// List a product's devices.
    List {
        #[arg(long)]
        product: String,
        /// device_key contains this.
        #[arg(long)]
        search: Option<String>,
    },
    /// Show a device.
    Show {
        device_key: String,
        #[arg(long)]
        product: String,
    },
    /// Disable a device: refused at once, its open sessions ended.
    Disable {
        device_key: String,
        #[arg(long)]
        product: String,
    },
    /// Enable a device again.
    Enable {
        device_key: String,
        #[arg(long)]
        product: String,
    },
    /// Replace a device's secret (printed once).
    RotateSecret {
        device_key: String,
        #[arg(long)]
        product: String,
    },
    /// Let a device activate again (dynamic activation).
    ResetActivation {
        device_key: String,
        #[arg(long)]
        product: String,
    },
    /// Delete a device.
    Delete {
        device_key: String,
        #[arg(long)]
        product: String,
    },
    /// Register the devices of a CSV file (header: device_key; optional device_secret,
    /// description) in bulk requests. A re-run skips the devices that exist.
    Import(import::ProductImportArgs),
}

/// The device side: the MQTT password of an HA1 device.
#[derive(Args, Debug)]
pub struct DevicePasswordArgs {
    /// The device's HA1 (32 hex).
    #[arg(long, conflicts_with_all = ["device", "realm", "password"])]
    pub ha1: Option<String>,
    #[arg(long, requires_all = ["realm", "password"])]
    pub device: Option<String>,
    #[arg(long)]
    pub realm: Option<String>,
    #[arg(long)]
    pub password: Option<String>,
    /// Unix seconds (default: now).
    #[arg(long)]
    pub timestamp: Option<i64>,
    #[command(flatten)]
    pub output: ClientArgs,
}

/// The device side: a sign-based device's MQTT login.
#[derive(Args, Debug)]
pub struct SignPasswordArgs {
    /// enos (SHA-256) or aliyun (HMAC).
    #[arg(long, value_parser = ["enos", "aliyun"])]
    pub scheme: String,
    #[arg(long)]
    pub product_key: String,
    /// The device key (EnOS) or device name (Alibaba).
    #[arg(long)]
    pub device_key: String,
    /// The device secret.
    #[arg(long)]
    pub secret: String,
    /// The client id before `|…|` (default: the device key).
    #[arg(long)]
    pub client_id: Option<String>,
    /// Alibaba: hmacsha1 (default), hmacsha256 or hmacmd5.
    #[arg(long, default_value = "hmacsha1")]
    pub signmethod: String,
    /// Milliseconds since the epoch (default: now).
    #[arg(long)]
    pub timestamp: Option<i64>,
    #[command(flatten)]
    pub output: ClientArgs,
}
