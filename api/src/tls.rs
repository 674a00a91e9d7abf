//! The HTTPS listener: rustls (ring), a server certificate that is either the operator's
//! (`tls_cert_file`, `tls_key_file`, re-read when they change) or issued by fleetca's own CA
//! for the host of `public_url` plus `tls_dns_names`, kept in the data directory and renewed
//! once two thirds of its lifetime have passed. Client certificates are requested, not
//! required, and must chain to fleetca's CA; the verified leaf is handed to the request
//! ([`PeerCertificate`]), where revocation and expiry are checked before it authenticates
//! anything.

use std::any::Any;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use chrono::{DateTime, Utc};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::UnixTime;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls::{RootCertStore, ServerConfig};

use crate::domain::AuditAction;
use crate::domain::ServerCertRequest;
use crate::pki::issuer::Issuer;

/// Where and with what certificate the HTTPS listener serves.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub listen: SocketAddr,
    /// The operator's certificate chain and key (PEM); fleetca issues its own without them.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// DNS names of the certificate fleetca issues itself, beside the host of `public_url`.
    pub dns_names: Vec<String>,
}

/// A client certificate that chains to fleetca's CA, as the TLS handshake verified it
/// (DER). Not yet checked against revocation or expiry (`RenewalService::usable` does).
#[derive(Clone, Debug)]
pub struct PeerCertificate(pub Vec<u8>);

/// Stores the verified client certificate of a TLS connection in its request extensions.
pub fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    if let Some(tls) = conn.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<TcpStream>>() {
        ext.insert(OverTls);
        if let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
            ext.insert(PeerCertificate(leaf.to_vec()));
        }
    }
}

/// Marks a request that came over fleetca's own TLS listener.
#[derive(Clone, Copy, Debug)]
pub struct OverTls;

/// With `renew_after_expiry_days` set, an expired client certificate of fleetca's CA still
/// completes the handshake — checked as of just before its notAfter, so chain and signature
/// are verified all the same — and the request decides: only re-enrollment within the
/// after-expiry window accepts it (`RenewalService::usable`).
#[derive(Debug)]
struct ExpiredToo(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for ExpiredToo {
    fn offer_client_auth(&self) -> bool {
        self.0.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.0.verify_client_cert(end_entity, intermediates, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            )) => {
                let (_, not_after) = fleetca_ca::validity(end_entity)
                    .ok_or(rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
                let not_after = not_after.timestamp();
                let then = UnixTime::since_unix_epoch(Duration::from_secs(
                    u64::try_from(not_after.saturating_sub(1)).unwrap_or(0),
                ));
                self.0.verify_client_cert(end_entity, intermediates, then)
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The server certificate, swappable while serving.
#[derive(Debug)]
pub struct Resolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

impl Resolver {
    fn set(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = key;
    }
}

fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate PEM: {e}"))?;
    if chain.is_empty() {
        return Err("the certificate file holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("key PEM: {e}"))?;
    let signing = default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

/// notAfter and notBefore of the first certificate of a PEM file.
fn validity(cert_pem: &[u8]) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let der = CertificateDer::pem_slice_iter(cert_pem).next()?.ok()?;
    fleetca_ca::validity(&der)
}

/// Whether a certificate is past two thirds of its lifetime (or unreadable).
fn due(cert_pem: &[u8], now: DateTime<Utc>) -> bool {
    match validity(cert_pem) {
        Some((from, until)) => now >= from + (until - from) * 2 / 3,
        None => true,
    }
}

/// The certificate fleetca serves: the operator's, or its own.
enum Source {
    Files { cert: PathBuf, key: PathBuf },
    Own { dir: PathBuf, request: ServerCertRequest },
}

impl Source {
    async fn load(&self, issuer: &Issuer, now: DateTime<Utc>) -> Result<Arc<CertifiedKey>, String> {
        match self {
            Source::Files { cert, key } => {
                let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
                certified_key(&read(cert)?, &read(key)?)
            }
            Source::Own { dir, request } => {
                let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
                if let (Ok(cert), Ok(key)) = (std::fs::read(&cert_path), std::fs::read(&key_path))
                    && !due(&cert, now)
                {
                    return certified_key(&cert, &key);
                }
                let record = crate::outbox::audit::system(
                    AuditAction::CertificateCreate,
                    "certificate",
                    "",
                    None,
                    serde_json::json!({"kind": "server", "for": "the HTTPS listener"}),
                );
                let (cert, key) = issuer
                    .issue_server(request, Some(record))
                    .await
                    .map_err(|e| e.to_string())?;
                let write = |path: &Path, bytes: &[u8], mode| {
                    crate::support::files::replace(path, bytes, mode).map_err(|e| format!("{}: {e}", path.display()))
                };
                // The whole chain, so clients that trust only the root verify it.
                let chain = format!("{}{}", cert.certificate_pem, issuer.chain_pem());
                write(&key_path, key.as_bytes(), 0o600)?;
                write(&cert_path, chain.as_bytes(), 0o644)?;
                tracing::info!(path = %cert_path.display(), serial = %cert.serial, "issued the HTTPS listener's certificate");
                certified_key(chain.as_bytes(), key.as_bytes())
            }
        }
    }

    /// What, when it changes, means the certificate should be loaded again.
    fn stamp(&self) -> Option<SystemTime> {
        match self {
            Source::Files { cert, key } => {
                let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
                m(cert).max(m(key))
            }
            Source::Own { .. } => None,
        }
    }
}

/// Builds the listener's rustls configuration and keeps its certificate fresh: the
/// operator's files are re-read when they change; fleetca's own certificate is renewed once
/// two thirds of its lifetime have passed.
pub async fn server_config(
    settings: &TlsSettings,
    anchors: &[Vec<u8>],
    issuer: Arc<Issuer>,
    accept_expired: bool,
    data_dir: &Path,
    public_host: &str,
) -> Result<ServerConfig, String> {
    let source = match (&settings.cert_file, &settings.key_file) {
        (Some(cert), Some(key)) => Source::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        (None, None) => {
            let mut names: Vec<String> = settings.dns_names.clone();
            let ips = match public_host.parse::<std::net::IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => {
                    names.insert(0, public_host.to_owned());
                    Vec::new()
                }
            };
            let request = ServerCertRequest::parse(Some("fleetca HTTPS listener"), &names, ips, Some(90))
                .map_err(|e| format!("tls_dns_names: {e:?}"))?;
            Source::Own {
                dir: data_dir.to_owned(),
                request,
            }
        }
        _ => return Err("give both tls_cert_file and tls_key_file, or neither".into()),
    };
    let now = fleetca_storage::now();
    let resolver = Arc::new(Resolver(RwLock::new(source.load(&issuer, now).await?)));
    // Every CA certificate is an anchor: a client presenting only its own certificate,
    // issued by an intermediate, verifies too.
    let mut roots = RootCertStore::empty();
    for der in anchors {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| format!("CA certificate: {e}"))?;
    }
    let provider = Arc::new(default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("client certificate verifier: {e}"))?;
    let verifier: Arc<dyn ClientCertVerifier> = if accept_expired {
        Arc::new(ExpiredToo(verifier))
    } else {
        verifier
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver.clone());
    let mut stamp = source.stamp();
    tokio::spawn(async move {
        loop {
            let wait = match source {
                Source::Files { .. } => Duration::from_secs(5),
                Source::Own { .. } => Duration::from_secs(3600),
            };
            tokio::time::sleep(wait).await;
            let fresh = source.stamp();
            let reload = match source {
                Source::Files { .. } => fresh != stamp,
                Source::Own { ref dir, .. } => std::fs::read(dir.join("tls.crt"))
                    .map(|c| due(&c, fleetca_storage::now()))
                    .unwrap_or(true),
            };
            if !reload {
                continue;
            }
            match source.load(&issuer, fleetca_storage::now()).await {
                Ok(key) => {
                    resolver.set(key);
                    stamp = fresh;
                    tracing::info!("the HTTPS listener's certificate was reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not reload the HTTPS listener's certificate; serving the old one")
                }
            }
        }
    });
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_due_after_two_thirds_of_its_lifetime() {
        let ca = fleetca_ca::Authority::create(
            &fleetca_ca::CaSubject {
                common_name: "t".into(),
                organization: None,
            },
            Utc::now(),
            chrono::Duration::days(365),
        )
        .unwrap();
        let key = fleetca_ca::generate_p256().unwrap();
        let names = vec!["x.test".to_owned()];
        let profile = fleetca_ca::ServerProfile {
            dns_names: &names,
            ip_addresses: &[],
            validity: chrono::Duration::days(90),
            crl_url: "http://x/crl.der",
        };
        let now = Utc::now();
        let issued = ca.issue_server(&profile, &key.public_key, now).unwrap();
        assert!(!due(issued.pem.as_bytes(), now));
        assert!(due(issued.pem.as_bytes(), now + chrono::Duration::days(61)));
        assert!(due(b"garbage", now));
        assert!(certified_key(issued.pem.as_bytes(), key.private_key_pem.as_bytes()).is_ok());
    }
}
