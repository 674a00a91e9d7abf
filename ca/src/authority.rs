//! The certificate authority: its self-signed root, and issuance of client and server
//! certificates under it.

use chrono::{DateTime, Duration, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::signer::{CaKey, MemoryKey, Signer};
use crate::{CaError, MasterKey, PublicKey, fingerprint, random_bytes};

/// How far back certificates are dated, so a client whose clock is a little behind does
/// not see a certificate from the future.
pub(crate) const BACKDATE: Duration = Duration::minutes(5);

/// The CA's distinguished name.
#[derive(Clone, Debug)]
pub struct CaSubject {
    /// Common name, e.g. `fleetca root CA`.
    pub common_name: String,
    /// Organization, if any.
    pub organization: Option<String>,
}

/// What a client certificate says: CN = the API key's username, O = its enterprise.
#[derive(Clone, Debug)]
pub struct ClientProfile<'a> {
    /// Subject common name.
    pub common_name: &'a str,
    /// Subject organization.
    pub organization: &'a str,
    /// Validity from `now`.
    pub validity: Duration,
    /// The URL of the CRL, written as the CRL distribution point.
    pub crl_url: &'a str,
}

/// What a device certificate says: CN = the device id, O = its enterprise, OU = its
/// tenant, and a SAN URI `urn:fleetca:device:{tenant}:{device_id}` that names it uniquely.
#[derive(Clone, Debug)]
pub struct DeviceProfile<'a> {
    /// Subject common name.
    pub device_id: &'a str,
    /// Subject organizational unit.
    pub tenant: &'a str,
    /// Subject organization.
    pub enterprise: &'a str,
    /// Validity from `now`.
    pub validity: Duration,
    /// The URL of the CRL.
    pub crl_url: &'a str,
}

impl DeviceProfile<'_> {
    /// The SAN URI that names the device.
    pub fn uri(&self) -> String {
        format!("urn:fleetca:device:{}:{}", self.tenant, self.device_id)
    }
}

/// What a claim certificate says: CN = `fleetca-claim-{id}` (a reserved prefix no API key
/// can have, so no broker takes it for one), O = the enterprise, OU = the tenant, and a SAN
/// URI `urn:fleetca:claim:{tenant}:{id}`. It is good for nothing but enrolling devices of
/// its tenant over EST.
#[derive(Clone, Debug)]
pub struct ClaimProfile<'a> {
    /// The claim's id.
    pub claim_id: &'a str,
    /// Subject organizational unit.
    pub tenant: &'a str,
    /// Subject organization.
    pub enterprise: &'a str,
    /// Validity from `now`.
    pub validity: Duration,
    /// The URL of the CRL.
    pub crl_url: &'a str,
}

impl ClaimProfile<'_> {
    /// The subject common name.
    pub fn common_name(&self) -> String {
        format!("fleetca-claim-{}", self.claim_id)
    }

    /// The SAN URI that names the claim.
    pub fn uri(&self) -> String {
        format!("urn:fleetca:claim:{}:{}", self.tenant, self.claim_id)
    }
}

/// What a broker's server certificate says.
#[derive(Clone, Debug)]
pub struct ServerProfile<'a> {
    /// DNS names (the first one is also the CN).
    pub dns_names: &'a [String],
    /// IP addresses.
    pub ip_addresses: &'a [std::net::IpAddr],
    /// Validity from `now`.
    pub validity: Duration,
    /// The URL of the CRL.
    pub crl_url: &'a str,
}

/// A certificate just signed.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    /// DER encoding.
    pub der: Vec<u8>,
    /// PEM encoding.
    pub pem: String,
    /// Serial number as lowercase hex, without separators.
    pub serial_hex: String,
    /// SHA-256 of the DER, lowercase hex.
    pub fingerprint: String,
    /// notBefore.
    pub not_before: DateTime<Utc>,
    /// notAfter.
    pub not_after: DateTime<Utc>,
}

/// The CA: its certificate and signing key.
///
/// ```
/// use chrono::{Duration, Utc};
/// use fleetca_ca::{Authority, CaSubject, ClientProfile, MasterKey, generate_p256};
///
/// let now = Utc::now();
/// let subject = CaSubject { common_name: "Example CA".into(), organization: None };
/// let ca = Authority::create(&subject, now, Duration::days(365 * 20)).unwrap();
///
/// // Saved sealed under the master key, and loaded again on the next start.
/// let master = MasterKey::generate().unwrap();
/// let sealed = ca.seal_key(&master).unwrap();
/// let ca = Authority::load(ca.certificate_pem(), &sealed, &master).unwrap();
///
/// let key = generate_p256().unwrap();
/// let profile = ClientProfile {
///     common_name: "svc-mqtt",
///     organization: "nnn.acme",
///     validity: Duration::hours(8760),
///     crl_url: "http://127.0.0.1:8080/crl.der",
/// };
/// let cert = ca.issue_client(&profile, &key.public_key, now).unwrap();
/// assert!(cert.pem.starts_with("-----BEGIN CERTIFICATE-----"));
/// ```
pub struct Authority {
    issuer: Issuer<'static, Signer>,
    cert_der: Vec<u8>,
    cert_pem: String,
    subject: String,
    subject_der: Vec<u8>,
    key_identifier: Vec<u8>,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

pub(crate) fn to_time(t: DateTime<Utc>) -> Result<time::OffsetDateTime, CaError> {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|e| CaError::Signing(e.to_string()))
}

/// Truncates to whole seconds, which is all X.509 times carry.
pub(crate) fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// The key identifier of RFC 5280 §4.2.1.2 method 1: the SHA-1 of the value of the
/// subjectPublicKey BIT STRING (its tag, length and unused-bits count excluded), which for a
/// P-256 key is the 65-byte uncompressed point. Every certificate this CA makes carries it as
/// its subject key identifier; rcgen's own methods (truncated SHA-256 of the whole
/// SubjectPublicKeyInfo, RFC 7093) are not ones that RFC 5280 names, and linters flag them.
pub(crate) fn key_identifier_of(subject_public_key: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, subject_public_key)
        .as_ref()
        .to_vec()
}

/// A random positive serial: 16 bytes, top bit clear and second bit set so the DER integer
/// is always 16 bytes (126 random bits, well over RFC 5280's and CA/B's 64).
pub(crate) fn random_serial() -> Result<(SerialNumber, String), CaError> {
    let mut bytes = random_bytes::<16>()?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok((SerialNumber::from_slice(&bytes), hex::encode(bytes)))
}

impl Authority {
    /// Creates a new self-signed ECDSA P-256 root, valid from an hour before `now` until
    /// `now + validity`. Its subject key identifier is RFC 5280 §4.2.1.2 method 1: the SHA-1
    /// of its public key.
    pub fn create(subject: &CaSubject, now: DateTime<Utc>, validity: Duration) -> Result<Self, CaError> {
        let usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Self::self_signed(subject, now, validity, 0, usages, crate::CaAlgorithm::P256)
    }

    /// A new self-signed ECDSA P-256 CA with this path length and key usage, valid from an
    /// hour before `now` until `now + validity`, its SKI by RFC 5280 method 1.
    pub(crate) fn self_signed(
        subject: &CaSubject,
        now: DateTime<Utc>,
        validity: Duration,
        path_len: u8,
        usages: Vec<KeyUsagePurpose>,
        algorithm: crate::CaAlgorithm,
    ) -> Result<Self, CaError> {
        let key = Box::new(MemoryKey::generate(algorithm)?);
        Self::self_signed_with(subject, now, validity, path_len, usages, key)
    }

    /// As [`Authority::self_signed`], with a key made elsewhere (a PKCS#11 token's).
    pub(crate) fn self_signed_with(
        subject: &CaSubject,
        now: DateTime<Utc>,
        validity: Duration,
        path_len: u8,
        usages: Vec<KeyUsagePurpose>,
        key: Box<dyn CaKey>,
    ) -> Result<Self, CaError> {
        let key = Signer(key);
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(subject);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
        params.key_usages = usages;
        let (serial, _) = random_serial()?;
        params.serial_number = Some(serial);
        params.not_before = to_time(whole_seconds(now) - Duration::hours(1))?;
        params.not_after = to_time(whole_seconds(now) + validity)?;
        params.key_identifier_method = KeyIdMethod::PreSpecified(key_identifier_of(key.0.public_key_raw()));
        let cert = params.self_signed(&key)?;
        Self::from_parts(cert.der().to_vec(), key)
    }

    /// Loads a CA from its certificate and the key sealed by [`Authority::seal_key`].
    /// Fails with [`CaError::Unseal`] when `master` is not the key it was sealed under, and
    /// with [`CaError::InvalidKey`] when the key does not belong to the certificate.
    pub fn load(cert_pem: &str, sealed_key: &[u8], master: &MasterKey) -> Result<Self, CaError> {
        let key = MemoryKey::unseal(sealed_key, master)?;
        Self::with_key(cert_pem, key)
    }

    /// A CA of its certificate (PEM) and its key, wherever the key lives. Fails with
    /// [`CaError::InvalidKey`] when the key does not belong to the certificate.
    pub fn with_key(cert_pem: &str, key: impl CaKey + 'static) -> Result<Self, CaError> {
        let block = pem::parse(cert_pem).map_err(|e| CaError::InvalidKey(e.to_string()))?;
        Self::from_parts(block.into_contents(), Signer(Box::new(key)))
    }

    pub(crate) fn from_parts(cert_der: Vec<u8>, key: Signer) -> Result<Self, CaError> {
        if crate::CaAlgorithm::of(&*key.0).is_none() {
            return Err(CaError::InvalidKey(crate::keys::CA_KEYS.into()));
        }
        let (_, cert) = X509Certificate::from_der(&cert_der).map_err(|e| CaError::InvalidKey(e.to_string()))?;
        if cert.public_key().subject_public_key.data.as_ref() != key.0.public_key_raw() {
            return Err(CaError::InvalidKey(
                "the CA key does not match the CA certificate".into(),
            ));
        }
        let subject = cert.subject().to_string();
        let subject_der = cert.subject().as_raw().to_vec();
        let key_identifier = cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .ok_or_else(|| CaError::InvalidKey("the CA certificate has no subject key identifier".into()))?;
        let not_after = DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
            .ok_or_else(|| CaError::InvalidKey("CA notAfter out of range".into()))?;
        let not_before = DateTime::from_timestamp(cert.validity().not_before.timestamp(), 0)
            .ok_or_else(|| CaError::InvalidKey("CA notBefore out of range".into()))?;
        // rcgen reads the issuer's key identifier method from the certificate: the SKI found
        // above, as `KeyIdMethod::PreSpecified`. Issued certificates therefore name exactly
        // that SKI as their AKI, however it was made (a CA created before fleetca used
        // RFC 5280 method 1 keeps its truncated SHA-256 identifier), and nothing recomputes
        // it from the key. CRLs take it from `key_identifier` (see `crate::crl`).
        let issuer = Issuer::from_ca_cert_der(&cert_der.as_slice().into(), key)?;
        let cert_pem = pem::encode_config(
            &pem::Pem::new("CERTIFICATE", cert_der.clone()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        Ok(Self {
            issuer,
            cert_der,
            cert_pem,
            subject,
            subject_der,
            key_identifier,
            not_before,
            not_after,
        })
    }

    /// Whether the CA's key can sign now: always for a key in memory; for a token's, the
    /// token answers (a recovery is attempted when one is due).
    pub fn key_available(&self) -> Result<(), CaError> {
        self.issuer.key().0.available()
    }

    /// The token and label of a key held in a PKCS#11 token; `None` for a sealed key.
    pub fn key_in_token(&self) -> Option<(String, String)> {
        self.issuer
            .key()
            .0
            .token_label()
            .map(|(token, label)| (token.to_owned(), label.to_owned()))
    }

    /// The CA key sealed under `master`, for storage. A key that never leaves its store (a
    /// token's) has nothing to seal: [`CaError::InvalidKey`].
    pub fn seal_key(&self, master: &MasterKey) -> Result<Vec<u8>, CaError> {
        self.issuer
            .key()
            .0
            .sealed(master)
            .unwrap_or_else(|| Err(CaError::InvalidKey("this CA's key never leaves its token".into())))
    }

    /// The CA certificate, PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA subject as an RFC 4514-style string.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// SHA-256 fingerprint of the CA certificate.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert_der)
    }

    /// The CA certificate's notBefore.
    pub fn not_before(&self) -> DateTime<Utc> {
        self.not_before
    }

    /// The CA certificate's notAfter.
    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }

    pub(crate) fn subject_der(&self) -> &[u8] {
        &self.subject_der
    }

    pub(crate) fn key_identifier(&self) -> &[u8] {
        &self.key_identifier
    }

    pub(crate) fn public_key_raw(&self) -> &[u8] {
        self.issuer.key().0.public_key_raw()
    }

    /// The CA key's algorithm.
    pub fn key_algorithm(&self) -> crate::CaAlgorithm {
        crate::CaAlgorithm::of(&*self.issuer.key().0).unwrap_or_default()
    }

    /// Signs a TBSCertList (or anything else the CA signs by hand) with the CA's key.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        self.issuer.key().0.sign(message)
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, Signer> {
        &self.issuer
    }

    /// Issues an MQTT client certificate for `public_key`: keyUsage digitalSignature
    /// (critical), extendedKeyUsage clientAuth, CA:FALSE, SKI, AKI and the CRL
    /// distribution point.
    pub fn issue_client(
        &self,
        profile: &ClientProfile<'_>,
        public_key: &PublicKey,
        now: DateTime<Utc>,
    ) -> Result<IssuedCertificate, CaError> {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, profile.organization);
        dn.push(DnType::CommonName, profile.common_name);
        self.issue(
            dn,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            profile.validity,
            profile.crl_url,
            public_key,
            now,
        )
    }

    /// Issues a device certificate (see [`DeviceProfile`]): keyUsage digitalSignature,
    /// extendedKeyUsage clientAuth, the CRL distribution point.
    pub fn issue_device(
        &self,
        profile: &DeviceProfile<'_>,
        public_key: &PublicKey,
        now: DateTime<Utc>,
    ) -> Result<IssuedCertificate, CaError> {
        self.issue_named(
            [profile.enterprise, profile.tenant, profile.device_id],
            profile.uri(),
            profile.validity,
            profile.crl_url,
            public_key,
            now,
        )
    }

    /// Issues a claim certificate (see [`ClaimProfile`]).
    pub fn issue_claim(
        &self,
        profile: &ClaimProfile<'_>,
        public_key: &PublicKey,
        now: DateTime<Utc>,
    ) -> Result<IssuedCertificate, CaError> {
        self.issue_named(
            [profile.enterprise, profile.tenant, &profile.common_name()],
            profile.uri(),
            profile.validity,
            profile.crl_url,
            public_key,
            now,
        )
    }

    /// A clientAuth certificate with subject O, OU, CN (each within RFC 5280's 64-character
    /// upper bound) and one SAN URI naming it: device and claim certificates.
    fn issue_named(
        &self,
        [organization, unit, common_name]: [&str; 3],
        uri: String,
        validity: Duration,
        crl_url: &str,
        public_key: &PublicKey,
        now: DateTime<Utc>,
    ) -> Result<IssuedCertificate, CaError> {
        if [organization, unit, common_name].iter().any(|v| v.len() > 64) {
            return Err(CaError::InvalidName(
                "a device id or tenant longer than 64 characters cannot be a certificate's subject (RFC 5280 upper bounds)"
                    .into(),
            ));
        }
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, organization);
        dn.push(DnType::OrganizationalUnitName, unit);
        dn.push(DnType::CommonName, common_name);
        let uri = uri
            .try_into()
            .map_err(|_| CaError::InvalidName("the device id or tenant is not ASCII".into()))?;
        self.issue(
            dn,
            vec![SanType::URI(uri)],
            ExtendedKeyUsagePurpose::ClientAuth,
            validity,
            crl_url,
            public_key,
            now,
        )
    }

    /// Issues a TLS server certificate for a broker, with the given names as SANs. Fails with
    /// [`CaError::InvalidName`] when a DNS name is not ASCII.
    pub fn issue_server(
        &self,
        profile: &ServerProfile<'_>,
        public_key: &PublicKey,
        now: DateTime<Utc>,
    ) -> Result<IssuedCertificate, CaError> {
        let mut sans = Vec::new();
        for name in profile.dns_names {
            let ia5 = name
                .clone()
                .try_into()
                .map_err(|_| CaError::InvalidName(format!("{name:?} is not a valid DNS name")))?;
            sans.push(SanType::DnsName(ia5));
        }
        sans.extend(profile.ip_addresses.iter().map(|ip| SanType::IpAddress(*ip)));
        let cn = profile
            .dns_names
            .first()
            .cloned()
            .or_else(|| profile.ip_addresses.first().map(|ip| ip.to_string()))
            .unwrap_or_else(|| "mqtt broker".into());
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        self.issue(
            dn,
            sans,
            ExtendedKeyUsagePurpose::ServerAuth,
            profile.validity,
            profile.crl_url,
            public_key,
            now,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn issue(
        &self,
        dn: DistinguishedName,
        sans: Vec<SanType>,
        eku: ExtendedKeyUsagePurpose,
        validity: Duration,
        crl_url: &str,
        public_key: &PublicKey,
        now: DateTime<Utc>,
    ) -> Result<IssuedCertificate, CaError> {
        let now = whole_seconds(now);
        let not_before = now - BACKDATE;
        // Never past this CA's own notAfter: a chain is valid only while every certificate
        // of it is (an intermediate nearing its end issues shorter certificates).
        let not_after = (now + validity).min(self.not_after());
        if not_after <= now {
            return Err(CaError::InvalidName("this CA has expired; rotate it".into()));
        }
        let (serial, serial_hex) = random_serial()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.serial_number = Some(serial);
        params.not_before = to_time(not_before)?;
        params.not_after = to_time(not_after)?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![eku];
        self.certify(params, crl_url, public_key, serial_hex, (not_before, not_after))
    }

    /// Signs `params` for `public_key`: with its SKI by RFC 5280 method 1, this CA's AKI and
    /// `crl_url` as its distribution point. What every certificate this CA makes shares.
    pub(crate) fn certify(
        &self,
        params: CertificateParams,
        crl_url: &str,
        public_key: &PublicKey,
        serial_hex: String,
        (not_before, not_after): (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<IssuedCertificate, CaError> {
        let ski = key_identifier_of(public_key.der_bytes());
        self.certify_with_ski(params, crl_url, public_key, ski, serial_hex, (not_before, not_after))
    }

    /// As [`Authority::certify`], naming `ski` as the subject key identifier (a
    /// cross-certificate repeats the certified CA's own, whatever method made it).
    pub(crate) fn certify_with_ski(
        &self,
        mut params: CertificateParams,
        crl_url: &str,
        public_key: &PublicKey,
        ski: Vec<u8>,
        serial_hex: String,
        (not_before, not_after): (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<IssuedCertificate, CaError> {
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::PreSpecified(ski);
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![crl_url.to_owned()],
        }];
        let cert = params.signed_by(public_key, &self.issuer)?;
        let der = cert.der().to_vec();
        Ok(IssuedCertificate {
            pem: cert.pem(),
            fingerprint: fingerprint(&der),
            der,
            serial_hex,
            not_before,
            not_after,
        })
    }
}

/// A CA's distinguished name: O (when given), CN.
pub(crate) fn distinguished_name(subject: &CaSubject) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(org) = &subject.organization {
        dn.push(DnType::OrganizationName, org.as_str());
    }
    dn.push(DnType::CommonName, subject.common_name.as_str());
    dn
}

/// Facts read back from a PEM certificate, e.g. one a broker forwarded.
#[derive(Clone, Debug)]
pub struct CertificateFacts {
    /// SHA-256 of the DER.
    pub fingerprint: String,
    /// Serial as lowercase hex (no leading zero bytes).
    pub serial_hex: String,
}

impl Authority {
    /// Parses a certificate a broker forwarded — PEM, or the bare base64 of its DER as EMQX
    /// sends `${cert_pem}` — and returns its fingerprint and serial if this CA signed it.
    pub fn check_issued(&self, cert_pem: &str) -> Option<CertificateFacts> {
        let text = cert_pem.trim();
        let der = if text.starts_with("-----BEGIN") {
            pem::parse(text).ok()?.into_contents()
        } else {
            use base64::Engine;
            let compact: String = text.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD.decode(compact).ok()?
        };
        self.check_issued_der(&der)
    }

    /// As [`Authority::check_issued`], for a DER certificate.
    pub fn check_issued_der(&self, der: &[u8]) -> Option<CertificateFacts> {
        let (rest, cert) = X509Certificate::from_der(der).ok()?;
        if !rest.is_empty() {
            return None;
        }
        let (_, ca) = X509Certificate::from_der(&self.cert_der).ok()?;
        cert.verify_signature(Some(ca.public_key())).ok()?;
        Some(CertificateFacts {
            fingerprint: fingerprint(der),
            serial_hex: hex::encode(cert.raw_serial()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate_p256;
    use crate::signer::CA_KEY_CONTEXT;
    use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
    use x509_parser::extensions::{GeneralName, ParsedExtension};

    fn test_ca(now: DateTime<Utc>) -> Authority {
        let subject = CaSubject {
            common_name: "Test CA".into(),
            organization: Some("fleetca".into()),
        };
        Authority::create(&subject, now, Duration::days(365 * 20)).unwrap()
    }

    #[test]
    fn a_ca_sealed_and_loaded_again_signs_certificates_that_verify() {
        let now = Utc::now();
        let ca = test_ca(now);
        let master = MasterKey::generate().unwrap();
        let sealed = ca.seal_key(&master).unwrap();
        let loaded = Authority::load(ca.certificate_pem(), &sealed, &master).unwrap();
        assert_eq!(loaded.fingerprint(), ca.fingerprint());
        let key = generate_p256().unwrap();
        let profile = ClientProfile {
            common_name: "svc",
            organization: "nnn.acme",
            validity: Duration::hours(8760),
            crl_url: "http://x/crl.der",
        };
        let cert = loaded.issue_client(&profile, &key.public_key, now).unwrap();
        let facts = ca.check_issued(&cert.pem).expect("signed by the original CA");
        assert_eq!(facts.serial_hex, cert.serial_hex);
        // A wrong master key is an Unseal error, not a panic.
        let other = MasterKey::generate().unwrap();
        assert!(matches!(
            Authority::load(ca.certificate_pem(), &sealed, &other),
            Err(CaError::Unseal)
        ));
    }

    #[test]
    fn client_certificates_follow_the_profile() {
        let now = Utc::now();
        let ca = test_ca(now);
        let key = generate_p256().unwrap();
        let profile = ClientProfile {
            common_name: "svc-mqtt",
            organization: "nnn.acme",
            validity: Duration::hours(8760),
            crl_url: "http://127.0.0.1:8080/crl.der",
        };
        let issued = ca.issue_client(&profile, &key.public_key, now).unwrap();
        let (_, cert) = X509Certificate::from_der(&issued.der).unwrap();
        assert_eq!(cert.version().0, 2, "X.509 v3");
        let serial = cert.raw_serial();
        assert!(
            serial.len() >= 8 && serial[0] & 0x80 == 0 && serial[0] != 0,
            "positive, >= 64 bits"
        );
        assert_eq!(hex::encode(serial), issued.serial_hex);
        assert_eq!(cert.subject().to_string(), "O=nnn.acme, CN=svc-mqtt");
        assert_eq!(
            cert.validity().not_after.timestamp(),
            (DateTime::from_timestamp(now.timestamp(), 0).unwrap() + Duration::hours(8760)).timestamp()
        );
        assert_eq!(issued.not_after.timestamp(), cert.validity().not_after.timestamp());
        let ku = cert.key_usage().unwrap().unwrap();
        assert!(ku.critical && ku.value.digital_signature() && !ku.value.key_cert_sign());
        assert!(cert.extended_key_usage().unwrap().unwrap().value.client_auth);
        assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
        let mut saw = (false, false, false);
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(_) => saw.0 = true,
                ParsedExtension::AuthorityKeyIdentifier(_) => saw.1 = true,
                ParsedExtension::CRLDistributionPoints(points) => {
                    let uri = points.points[0].distribution_point.as_ref().unwrap();
                    let x509_parser::extensions::DistributionPointName::FullName(names) = uri else {
                        panic!()
                    };
                    assert!(matches!(names[0], GeneralName::URI("http://127.0.0.1:8080/crl.der")));
                    saw.2 = true;
                }
                _ => {}
            }
        }
        assert_eq!(saw, (true, true, true));
        let (_, ca_cert) = X509Certificate::from_der(ca.certificate_der()).unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        assert_eq!(issued.fingerprint, crate::fingerprint(&issued.der));
    }

    #[test]
    fn server_certificates_carry_their_names() {
        let now = Utc::now();
        let ca = test_ca(now);
        let key = generate_p256().unwrap();
        let names = vec!["localhost".to_string()];
        let ips = vec!["127.0.0.1".parse().unwrap()];
        let profile = ServerProfile {
            dns_names: &names,
            ip_addresses: &ips,
            validity: Duration::days(365),
            crl_url: "http://x/crl.der",
        };
        let issued = ca.issue_server(&profile, &key.public_key, now).unwrap();
        let (_, cert) = X509Certificate::from_der(&issued.der).unwrap();
        assert!(cert.extended_key_usage().unwrap().unwrap().value.server_auth);
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names.len(), 2);
    }

    /// The SKI of a certificate.
    fn ski_of(cert: &X509Certificate<'_>) -> Vec<u8> {
        cert.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .expect("a subject key identifier")
    }

    /// The keyIdentifier of the AKI among `extensions` (a certificate's or a CRL's).
    fn aki_of(extensions: &[x509_parser::extensions::X509Extension<'_>]) -> Vec<u8> {
        extensions
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0.to_vec()),
                _ => None,
            })
            .expect("an authority key identifier with a keyIdentifier")
    }

    /// RFC 5280 §4.2.1.2 method 1, computed from the parsed certificate.
    fn method_1(cert: &X509Certificate<'_>) -> Vec<u8> {
        let bits = cert.public_key().subject_public_key.data.as_ref();
        ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, bits)
            .as_ref()
            .to_vec()
    }

    fn client_and_server(ca: &Authority, now: DateTime<Utc>) -> (IssuedCertificate, IssuedCertificate) {
        let client = ClientProfile {
            common_name: "svc",
            organization: "nnn.acme",
            validity: Duration::hours(8760),
            crl_url: "http://x/crl.der",
        };
        let names = vec!["broker.example".to_string()];
        let server = ServerProfile {
            dns_names: &names,
            ip_addresses: &[],
            validity: Duration::days(365),
            crl_url: "http://x/crl.der",
        };
        (
            ca.issue_client(&client, &generate_p256().unwrap().public_key, now)
                .unwrap(),
            ca.issue_server(&server, &generate_p256().unwrap().public_key, now)
                .unwrap(),
        )
    }

    #[test]
    fn ca_client_and_server_skis_are_sha1_of_the_public_key_bits() {
        let now = Utc::now();
        let ca = test_ca(now);
        let (_, ca_cert) = X509Certificate::from_der(ca.certificate_der()).unwrap();
        let ca_ski = ski_of(&ca_cert);
        assert_eq!(ca_ski.len(), 20);
        assert_eq!(ca_ski, method_1(&ca_cert));
        assert_eq!(ca.key_identifier(), ca_ski.as_slice());
        let (client, server) = client_and_server(&ca, now);
        for issued in [&client, &server] {
            let (_, cert) = X509Certificate::from_der(&issued.der).unwrap();
            assert_eq!(ski_of(&cert), method_1(&cert));
            assert_eq!(aki_of(cert.extensions()), ca_ski, "AKI = the CA's SKI");
        }
    }

    #[test]
    fn a_loaded_ca_whose_ski_was_made_another_way_keeps_it_as_the_aki() {
        // A CA made the way fleetca made them before (rcgen's truncated SHA-256 of the SPKI),
        // and one with an arbitrary identifier that no method recomputes.
        for method in [KeyIdMethod::Sha256, KeyIdMethod::PreSpecified(vec![0x5a; 8])] {
            loaded_ca_keeps_its_ski_as_the_aki(method);
        }
    }

    fn loaded_ca_keeps_its_ski_as_the_aki(method: KeyIdMethod) {
        let now = Utc::now();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "Old CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = to_time(now - Duration::hours(1)).unwrap();
        params.not_after = to_time(now + Duration::days(3650)).unwrap();
        params.key_identifier_method = method;
        let old = params.self_signed(&key).unwrap();
        let master = MasterKey::generate().unwrap();
        let sealed = master.seal(CA_KEY_CONTEXT, key.serialized_der()).unwrap();
        let ca = Authority::load(&old.pem(), &sealed, &master).unwrap();

        let (_, ca_cert) = X509Certificate::from_der(ca.certificate_der()).unwrap();
        let old_ski = ski_of(&ca_cert);
        assert_ne!(old_ski, method_1(&ca_cert), "the test CA's SKI is not method 1");
        assert_eq!(ca.key_identifier(), old_ski.as_slice());

        let (client, server) = client_and_server(&ca, now);
        for issued in [&client, &server] {
            let (_, cert) = X509Certificate::from_der(&issued.der).unwrap();
            assert_eq!(aki_of(cert.extensions()), old_ski);
            assert_eq!(ski_of(&cert), method_1(&cert), "new certificates use method 1");
            assert!(ca.check_issued(&issued.pem).is_some());
            // EMQX sends `${cert_pem}` as the bare base64 of the DER.
            let bare: String = issued.pem.lines().filter(|l| !l.starts_with("-----")).collect();
            let facts = ca.check_issued(&bare).expect("bare base64 is read too");
            assert_eq!(facts.fingerprint, crate::fingerprint(&issued.der));
            assert!(ca.check_issued("bm90IGEgY2VydA==").is_none());
        }

        let request = crate::crl::CrlRequest {
            number: 1,
            this_update: now,
            next_update: now + Duration::days(7),
            url: "http://x/crl.der",
            scoped: true,
        };
        let entry = crate::crl::RevokedEntry {
            serial: hex::decode(&client.serial_hex).unwrap(),
            revoked_at: now,
            reason: crate::crl::Reason::KeyCompromise,
        };
        let whole = ca.sign_crl(&request, [&entry]).unwrap();
        let encoded = ca
            .sign_crl_encoded(&request, &crate::crl::encode_revoked_entry(&entry))
            .unwrap();
        for crl in [whole, encoded] {
            ca.check_crl(&crl.der).unwrap();
            let (_, parsed) = x509_parser::revocation_list::CertificateRevocationList::from_der(&crl.der).unwrap();
            assert_eq!(aki_of(parsed.extensions()), old_ski);
        }
    }

    #[test]
    fn a_server_name_that_is_not_ascii_is_an_invalid_name() {
        let now = Utc::now();
        let ca = test_ca(now);
        let names = vec!["bröker.example".to_string()];
        let profile = ServerProfile {
            dns_names: &names,
            ip_addresses: &[],
            validity: Duration::days(365),
            crl_url: "http://x/crl.der",
        };
        let err = ca
            .issue_server(&profile, &generate_p256().unwrap().public_key, now)
            .unwrap_err();
        assert!(matches!(err, CaError::InvalidName(_)), "{err:?}");
        assert_eq!(err.to_string(), "\"bröker.example\" is not a valid DNS name");
    }

    #[test]
    fn the_ca_is_a_p256_root_that_may_sign_certificates_and_crls() {
        let ca = test_ca(Utc::now());
        let (_, cert) = X509Certificate::from_der(ca.certificate_der()).unwrap();
        assert!(cert.basic_constraints().unwrap().unwrap().value.ca);
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        assert_eq!(cert.subject(), cert.issuer());
        assert!(ca.not_after() > Utc::now() + Duration::days(365 * 19));
    }
}
