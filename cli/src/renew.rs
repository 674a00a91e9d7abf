//! `fleetca renew`: a machine that holds a fleetca certificate renews it itself, over EST
//! (`simplereenroll`, RFC 7030) with the certificate as its TLS client certificate, once two
//! thirds of its lifetime have passed (with jitter), as `step ca renew --daemon` does. The new
//! key and certificate are written atomically (the key first, the certificate last) and a
//! hook runs, e.g. to make the MQTT client reconnect with them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use clap::Args;

use super::CliError;
use super::output::Output;

#[derive(Args, Debug)]
pub struct RenewArgs {
    /// The certificate (PEM) to renew; replaced by the new one.
    #[arg(long)]
    pub cert: PathBuf,
    /// Its private key (PEM); replaced by the new one (0600).
    #[arg(long)]
    pub key: PathBuf,
    /// fleetca's HTTPS (EST) listener, e.g. https://fleetca.example:8443 (default: the URL of
    /// `fleetca login` or FLEETCA_URL).
    #[arg(long)]
    pub url: Option<String>,
    /// fleetca's CA (PEM), to verify its HTTPS listener (default: that of `fleetca login`).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// An EST label (`/.well-known/est/{label}/simplereenroll`).
    #[arg(long)]
    pub label: Option<String>,
    /// Keep running: renew each time the certificate is due.
    #[arg(long)]
    pub daemon: bool,
    /// Renew now, due or not (fleetca still applies its renewal window).
    #[arg(long)]
    pub force: bool,
    /// Renew once this share of the lifetime has passed (default 66, plus up to 5 of jitter).
    #[arg(long, default_value_t = 66, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub after_percent: u8,
    /// Run this (with `sh -c`) after each renewal, e.g. 'systemctl reload my-consumer';
    /// FLEETCA_CERT_FILE and FLEETCA_KEY_FILE are in its environment.
    #[arg(long)]
    pub exec: Option<String>,
    #[command(flatten)]
    pub output: super::ClientArgs,
}

/// When `cert_pem` is due: notBefore + `percent` % of its lifetime, plus up to 5 % of jitter
/// (none for a share below 10 % or above 95 %).
fn due(cert_pem: &str, percent: u8) -> Result<(DateTime<Utc>, DateTime<Utc>), CliError> {
    let der = pem::parse(cert_pem.trim())
        .map_err(|e| CliError::Usage(format!("the certificate is not PEM: {e}")))?
        .into_contents();
    let (not_before, not_after) =
        fleetca_ca::validity(&der).ok_or_else(|| CliError::Usage("the certificate does not parse".into()))?;
    let lifetime = (not_after - not_before).num_seconds().max(0);
    // Up to 5 % later (less for an early share, none past 95 %), so a fleet does not renew at once.
    let spread = i64::from(percent.min(100 - percent.min(100)).min(50) / 10).min(5);
    let jitter_percent = match spread {
        0 => 0,
        n => i64::from(uuid::Uuid::new_v4().as_bytes().first().copied().unwrap_or(0)) % (n + 1),
    };
    let at = not_before + chrono::Duration::seconds(lifetime * (i64::from(percent) + jitter_percent) / 100);
    Ok((at, not_after))
}

fn read(path: &Path, what: &str) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("--{what} {}: {e}", path.display())))
}

/// One renewal: returns the new certificate's notAfter.
async fn renew_once(args: &RenewArgs, base: &str, ca_file: Option<&Path>) -> Result<DateTime<Utc>, CliError> {
    let cert_pem = read(&args.cert, "cert")?;
    let key_pem = read(&args.key, "key")?;
    let cn = fleetca_ca::common_name(&cert_pem)
        .ok_or_else(|| CliError::Usage(format!("{}: no common name in the certificate", args.cert.display())))?;
    let identity = reqwest::Identity::from_pem(format!("{}\n{}", cert_pem.trim(), key_pem.trim()).as_bytes())
        .map_err(|e| CliError::Usage(format!("the certificate and key do not make a TLS identity: {e}")))?;
    let client = super::api::client_builder(ca_file)?
        .identity(identity)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| CliError::Usage(format!("cannot build the HTTP client: {e}")))?;
    // The CA certificates first (so a failure here loses nothing): the file written holds
    // the new certificate and its intermediates, a file the client presents whole,
    // whichever CA issued it.
    let cacerts = client
        .get(format!("{}/.well-known/est/cacerts", base.trim_end_matches('/')))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| CliError::Network(format!("reading fleetca's CA certificates (/cacerts): {e}")))?
        .bytes()
        .await
        .map_err(|e| CliError::Network(format!("reading fleetca's CA certificates (/cacerts): {e}")))?;
    let compact: Vec<u8> = cacerts.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    let cas = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
        .and_then(|p7| fleetca_ca::est::certificates_of(&p7).ok())
        .ok_or_else(|| CliError::Usage("fleetca's /cacerts answer is not a certs-only PKCS#7".into()))?;
    let (new_key_pem, csr) =
        fleetca_ca::est::new_key_and_csr(&cn).map_err(|e| CliError::Usage(format!("a new key: {e}")))?;
    let path = match &args.label {
        Some(label) => format!("/.well-known/est/{label}/simplereenroll"),
        None => "/.well-known/est/simplereenroll".to_owned(),
    };
    let response = client
        .post(format!("{}{path}", base.trim_end_matches('/')))
        .header("content-type", "application/pkcs10")
        .header("content-transfer-encoding", "base64")
        .body(base64::engine::general_purpose::STANDARD.encode(&csr))
        .send()
        .await
        .map_err(|e| CliError::Network(format!("cannot reach fleetca's EST endpoint at {base}: {e}")))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| CliError::Network(format!("reading fleetca's answer: {e}")))?;
    if !status.is_success() {
        return Err(CliError::Api {
            status: status.as_u16(),
            detail: String::from_utf8_lossy(&body).trim().chars().take(300).collect(),
            errors: None,
        });
    }
    let compact: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    let pkcs7 = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| CliError::Usage(format!("fleetca's answer is not base64: {e}")))?;
    let certs = fleetca_ca::est::certificates_of(&pkcs7).map_err(|e| CliError::Usage(e.to_string()))?;
    let der = certs
        .first()
        .ok_or_else(|| CliError::Usage("fleetca's answer holds no certificate".into()))?;
    let encode = |der: &[u8]| {
        pem::encode_config(
            &pem::Pem::new("CERTIFICATE", der.to_vec()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    };
    let mut new_cert_pem = encode(der);
    for intermediate in fleetca_ca::chain_for(der, &cas) {
        new_cert_pem.push_str(&encode(&intermediate));
    }
    // Both staged beside their targets, then swapped: the key first, the certificate last, so
    // a reader that sees the new certificate finds its key.
    let write = |path: &Path, text: &str, mode: u32| {
        crate::files::replace(path, text.as_bytes(), mode)
            .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
    };
    write(&args.key, &new_key_pem, 0o600)?;
    write(&args.cert, &new_cert_pem, 0o644)?;
    let (_, not_after) =
        fleetca_ca::validity(der).ok_or_else(|| CliError::Usage("the new certificate does not parse".into()))?;
    if let Some(hook) = &args.exec {
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(hook)
            .env("FLEETCA_CERT_FILE", &args.cert)
            .env("FLEETCA_KEY_FILE", &args.key)
            .status()
            .await
            .map_err(|e| CliError::Usage(format!("--exec could not start: {e}")))?;
        if !status.success() {
            eprintln!("fleetca: --exec exited with {status}");
        }
    }
    Ok(not_after)
}

pub async fn run(args: RenewArgs, out: Output) -> Result<(), CliError> {
    let profile = super::profile::effective()?;
    let base = args.url.clone().or(profile.url).ok_or_else(|| {
        CliError::Usage("no fleetca URL: give --url (the HTTPS listener) or run `fleetca login`".into())
    })?;
    let ca_file = args.ca_file.clone().or(profile.ca_file);
    let mut force = args.force;
    loop {
        let (at, not_after) = due(&read(&args.cert, "cert")?, args.after_percent)?;
        let now = Utc::now();
        if !force && now < at {
            if !args.daemon {
                out.note(&format!(
                    "not due yet: renews from {at} (expires {not_after}); --force renews now"
                ));
                return Ok(());
            }
            let wait = (at - now).to_std().unwrap_or(Duration::from_secs(1));
            out.note(&format!("next renewal at {at}"));
            tokio::time::sleep(wait).await;
            continue;
        }
        force = false;
        match renew_once(&args, &base, ca_file.as_deref()).await {
            Ok(new_not_after) => {
                out.note(&format!("renewed {}: valid until {new_not_after}", args.cert.display()));
                if !args.daemon {
                    if out.json {
                        out.object(&serde_json::json!({"renewed": true, "expires_at": new_not_after}), &[]);
                    }
                    return Ok(());
                }
                // At least a second between renewals, whatever the share asked for.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) if args.daemon => {
                eprintln!("fleetca: renewal failed: {}; retrying in a minute", e.message());
                if Utc::now() > not_after {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
