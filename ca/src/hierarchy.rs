//! A CA hierarchy as a PKI policy wants it: a root that signs only intermediates (and its
//! own CRL), and issuing intermediates that sign what fleetca issues.
//!
//! - [`Authority::create_root`]: a self-signed root that may certify one level of
//!   intermediates (path length 1).
//! - [`Authority::certify_intermediate`]: the root certifies an issuing intermediate's key:
//!   CA with path length 0, keyCertSign and cRLSign, within the root's own validity.
//! - [`intermediate_csr`] and [`Authority::import_intermediate`]: an intermediate whose key
//!   fleetca holds (in the sealed store or a token) under a root fleetca never sees — a CSR
//!   out, the certificate back in, its chain, key and constraints checked before it is used.
//!
//! An intermediate is an [`Authority`] like any other: it issues, signs its CRL and names
//! itself in what it signs (the AKI of its certificates is its SKI).

use chrono::{DateTime, Duration, Utc};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyUsagePurpose, PublicKeyData, SignatureAlgorithm};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::authority::{BACKDATE, distinguished_name, random_serial, to_time, whole_seconds};
use crate::signer::{CaKey, Signer};
use crate::{Authority, CaError, CaSubject, IssuedCertificate, PublicKey};

/// An issuing intermediate to certify.
#[derive(Clone, Debug)]
pub struct IntermediateProfile<'a> {
    /// Its distinguished name.
    pub subject: &'a CaSubject,
    /// How long it is valid from now; never past the root's own notAfter.
    pub validity: Duration,
    /// The URL of the root's CRL, where the intermediate's revocation is published.
    pub crl_url: &'a str,
}

impl Authority {
    /// Creates a self-signed ECDSA P-256 root for a hierarchy: it may certify one level of
    /// intermediates (path length 1) and signs certificates of CAs and CRLs only. Valid from
    /// an hour before `now` until `now + validity`.
    pub fn create_root(subject: &CaSubject, now: DateTime<Utc>, validity: Duration) -> Result<Self, CaError> {
        let usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Self::self_signed(subject, now, validity, 1, usages)
    }

    /// Certifies an issuing intermediate for `public_key`: CA with path length 0 (critical),
    /// keyUsage keyCertSign and cRLSign (critical), its SKI by RFC 5280 method 1, this CA's
    /// AKI, and this CA's CRL as its distribution point. It ends no later than this CA does.
    pub fn certify_intermediate(
        &self,
        profile: &IntermediateProfile<'_>,
        public_key: &PublicKey,
        now: DateTime<Utc>,
    ) -> Result<IssuedCertificate, CaError> {
        let now = whole_seconds(now);
        let not_before = now - BACKDATE;
        let not_after = (now + profile.validity).min(self.not_after());
        if not_after <= now {
            return Err(CaError::InvalidName(
                "this CA expires before the intermediate would begin".into(),
            ));
        }
        let (serial, serial_hex) = random_serial()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(profile.subject);
        params.serial_number = Some(serial);
        params.not_before = to_time(not_before)?;
        params.not_after = to_time(not_after)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        self.certify(params, profile.crl_url, public_key, serial_hex, (not_before, not_after))
    }

    /// An intermediate from its certificate (PEM), the root that signed it (PEM) and its key,
    /// wherever the key lives. Refused, saying why, unless: the root is a self-signed CA that
    /// may sign certificates; the intermediate is signed by it and names it as its issuer; the
    /// intermediate is a CA that may sign certificates and CRLs; both are valid at `now`; and
    /// the key is the intermediate's.
    pub fn import_intermediate(
        cert_pem: &str,
        root_pem: &str,
        key: impl CaKey + 'static,
        now: DateTime<Utc>,
    ) -> Result<Self, CaError> {
        let refuse = |why: &str| CaError::InvalidKey(why.to_owned());
        let der = |text: &str, what: &str| {
            pem::parse(text.trim())
                .ok()
                .filter(|p| p.tag() == "CERTIFICATE")
                .map(pem::Pem::into_contents)
                .ok_or_else(|| refuse(&format!("the {what} is not a PEM certificate")))
        };
        let (root_der, cert_der) = (der(root_pem, "root")?, der(cert_pem, "intermediate")?);
        let (root, cert) = (parsed(&root_der, "root")?, parsed(&cert_der, "intermediate")?);
        if !may_sign_certificates(&root) || root.subject() != root.issuer() {
            return Err(refuse("the root must be a self-signed CA that may sign certificates"));
        }
        if !may_certify_cas(&root) {
            return Err(refuse(
                "the root's path length constraint is 0: it may not certify an intermediate (make the root without pathlen, or with pathlen 1 or more)",
            ));
        }
        if cert.validity().not_after.timestamp() > root.validity().not_after.timestamp() {
            return Err(refuse("the intermediate is valid longer than its root"));
        }
        root.verify_signature(None)
            .map_err(|_| refuse("the root's self-signature does not verify"))?;
        if cert.issuer() != root.subject() {
            return Err(refuse("the intermediate does not name this root as its issuer"));
        }
        cert.verify_signature(Some(root.public_key()))
            .map_err(|_| refuse("the intermediate is not signed by this root"))?;
        if !may_sign_certificates(&cert) || !may_sign_crls(&cert) {
            return Err(refuse(
                "the intermediate must be a CA whose key usage allows keyCertSign and cRLSign",
            ));
        }
        let valid = |c: &X509Certificate<'_>| {
            let t = now.timestamp();
            c.validity().not_before.timestamp() <= t && t < c.validity().not_after.timestamp()
        };
        if !valid(&root) || !valid(&cert) {
            return Err(refuse("the root or the intermediate is not valid now"));
        }
        Self::from_parts(cert_der, Signer(Box::new(key)))
    }
}

impl Authority {
    /// A new issuing intermediate whose key is made here (P-256, in memory): the certificate
    /// this CA signs for it (see [`Authority::certify_intermediate`]) and its key sealed under
    /// `master`, for the database.
    pub fn new_intermediate(
        &self,
        profile: &IntermediateProfile<'_>,
        master: &crate::MasterKey,
        now: DateTime<Utc>,
    ) -> Result<(IssuedCertificate, Vec<u8>), CaError> {
        let key = crate::MemoryKey::generate_p256()?;
        let certified = self.certify_intermediate(profile, &PublicKey::from_sec1(key.public_key_raw())?, now)?;
        Ok((certified, key.seal(master)?))
    }
}

/// A new intermediate's key (P-256, in memory) and its CSR (DER) for an outside root to
/// sign: the CSR, and the key sealed under `master` for the database.
pub fn new_intermediate_request(subject: &CaSubject, master: &crate::MasterKey) -> Result<(Vec<u8>, Vec<u8>), CaError> {
    let key = crate::MemoryKey::generate_p256()?;
    Ok((intermediate_csr(&key, subject)?, key.seal(master)?))
}

/// A whole DER certificate, or why not.
fn parsed<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, CaError> {
    X509Certificate::from_der(der)
        .ok()
        .filter(|(rest, _)| rest.is_empty())
        .map(|(_, c)| c)
        .ok_or_else(|| CaError::InvalidKey(format!("the {what} certificate does not parse")))
}

/// Whether a CA's path length allows an intermediate below it (none, or at least 1).
fn may_certify_cas(c: &X509Certificate<'_>) -> bool {
    c.basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|b| b.value.ca && b.value.path_len_constraint.is_none_or(|n| n >= 1))
}

impl Authority {
    /// Whether this CA may certify an intermediate (a CA whose path length is absent or at
    /// least 1): a hierarchy's root may, the single CA of an installation made before
    /// hierarchies (path length 0) may not.
    pub fn may_certify_intermediates(&self) -> bool {
        parsed(self.certificate_der(), "CA").is_ok_and(|c| may_certify_cas(&c))
    }
}

/// CA:TRUE and, when it has a key usage, keyCertSign among it.
fn may_sign_certificates(c: &X509Certificate<'_>) -> bool {
    let ca = c.basic_constraints().ok().flatten().is_some_and(|b| b.value.ca);
    ca && c.key_usage().ok().flatten().is_none_or(|k| k.value.key_cert_sign())
}

/// A key usage with cRLSign (an intermediate signs its own CRL).
fn may_sign_crls(c: &X509Certificate<'_>) -> bool {
    c.extensions()
        .iter()
        .any(|e| matches!(e.parsed_extension(), ParsedExtension::KeyUsage(k) if k.crl_sign()))
}

/// A PKCS#10 request (DER) for an intermediate's key, with `subject` as its name, signed by
/// the key itself: what an outside root signs.
pub fn intermediate_csr(key: &dyn CaKey, subject: &CaSubject) -> Result<Vec<u8>, CaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(subject);
    let csr = params.serialize_request(&Borrowed(key))?;
    Ok(csr.der().to_vec())
}

/// A borrowed [`CaKey`] as rcgen signs with it.
struct Borrowed<'a>(&'a dyn CaKey);

impl PublicKeyData for Borrowed<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key_raw()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.0.algorithm()
    }
}

impl rcgen::SigningKey for Borrowed<'_> {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(message).map_err(|e| {
            crate::signer::remember(e);
            rcgen::Error::RemoteKeyError
        })
    }
}

/// The intermediates (DER, nearest first) between `leaf` and a self-signed root, found
/// among `cas` (EST's `/cacerts`, say) by each one having signed the one below: what a
/// client presents after its certificate. Empty when the leaf's issuer is a root, or is not
/// among `cas`.
pub fn chain_for(leaf: &[u8], cas: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let parsed: Vec<(&Vec<u8>, X509Certificate<'_>)> = cas
        .iter()
        .filter_map(|der| Some((der, X509Certificate::from_der(der).ok()?.1)))
        .collect();
    let Ok((_, mut at)) = X509Certificate::from_der(leaf) else {
        return Vec::new();
    };
    let mut chain = Vec::new();
    while chain.len() < parsed.len() {
        let issuer = parsed
            .iter()
            .find(|(_, ca)| ca.subject() == at.issuer() && at.verify_signature(Some(ca.public_key())).is_ok());
        let Some((der, ca)) = issuer else { break };
        if ca.subject() == ca.issuer() {
            break; // the root: trusted, not presented
        }
        chain.push((*der).clone());
        at = ca.clone();
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::MemoryKey;
    use crate::{ClientProfile, generate_p256};

    fn subject(cn: &str) -> CaSubject {
        CaSubject {
            common_name: cn.into(),
            organization: Some("fleetca".into()),
        }
    }

    fn cert_of(der: &[u8]) -> X509Certificate<'_> {
        X509Certificate::from_der(der).unwrap().1
    }

    /// The intermediate's public key, as a subject's key to certify.
    fn public_of(key: &MemoryKey) -> PublicKey {
        PublicKey::from_sec1(key.public_key_raw()).unwrap()
    }

    #[test]
    fn a_root_certifies_an_issuing_intermediate_whose_certificates_chain_to_it() {
        let now = Utc::now();
        let root = Authority::create_root(&subject("fleetca root"), now, Duration::days(7300)).unwrap();
        let key = MemoryKey::generate_p256().unwrap();
        let profile = IntermediateProfile {
            subject: &subject("fleetca issuing CA 1"),
            validity: Duration::days(9000),
            crl_url: "http://x/root.crl",
        };
        let made = root.certify_intermediate(&profile, &public_of(&key), now).unwrap();
        let cert = cert_of(&made.der);
        let constraints = cert.basic_constraints().unwrap().unwrap().value;
        assert!(constraints.ca && constraints.path_len_constraint == Some(0));
        let usage = cert.key_usage().unwrap().unwrap();
        assert!(usage.critical && usage.value.key_cert_sign() && usage.value.crl_sign());
        assert_eq!(made.not_after, root.not_after(), "no longer than its root");
        let root_cert = cert_of(root.certificate_der());
        assert_eq!(
            root_cert
                .basic_constraints()
                .unwrap()
                .unwrap()
                .value
                .path_len_constraint,
            Some(1)
        );
        cert.verify_signature(Some(root_cert.public_key())).unwrap();

        let issuing = Authority::import_intermediate(&made.pem, root.certificate_pem(), key, now).unwrap();
        let leaf = issuing
            .issue_client(
                &ClientProfile {
                    common_name: "svc",
                    organization: "nnn.acme",
                    validity: Duration::days(30),
                    crl_url: "http://x/issuing.crl",
                },
                &generate_p256().unwrap().public_key,
                now,
            )
            .unwrap();
        let leaf_cert = cert_of(&leaf.der);
        leaf_cert.verify_signature(Some(cert.public_key())).unwrap();
        assert_eq!(leaf_cert.issuer(), cert.subject());
        assert!(
            root.check_issued(&leaf.pem).is_none(),
            "the leaf is the intermediate's, not the root's"
        );

        // The chain a client presents: the intermediate, found among every CA certificate
        // (in any order), the root left out.
        let other = Authority::create_root(&subject("another root"), now, Duration::days(30)).unwrap();
        let cas = vec![
            other.certificate_der().to_vec(),
            root.certificate_der().to_vec(),
            made.der.clone(),
        ];
        assert_eq!(chain_for(&leaf.der, &cas), vec![made.der.clone()]);
        assert!(chain_for(&made.der, &cas).is_empty(), "a root's child needs no chain");
        assert!(chain_for(&leaf.der, &cas[..2]).is_empty(), "without its issuer, none");
    }

    #[test]
    fn an_outside_roots_intermediate_is_checked_before_it_is_used() {
        let now = Utc::now();
        // The operator's root, which fleetca never holds: here another Authority.
        let outside = Authority::create_root(&subject("Operator Root"), now, Duration::days(7300)).unwrap();
        let key = MemoryKey::generate_p256().unwrap();
        let csr = intermediate_csr(&key, &subject("fleetca issuing CA")).unwrap();
        let facts = crate::csr::parse_csr_der(&csr).unwrap();
        assert_eq!(facts.common_name.as_deref(), Some("fleetca issuing CA"));
        let profile = IntermediateProfile {
            subject: &subject("fleetca issuing CA"),
            validity: Duration::days(3650),
            crl_url: "http://x/root.crl",
        };
        let signed = outside.certify_intermediate(&profile, &facts.public_key, now).unwrap();

        // Another root, a key that is not the intermediate's, a leaf, and a time outside
        // the validity are each refused.
        let stranger = Authority::create_root(&subject("Operator Root"), now, Duration::days(7300)).unwrap();
        let refused = |r: Result<Authority, CaError>| matches!(r, Err(CaError::InvalidKey(_)));
        let master = crate::MasterKey::generate().unwrap();
        let sealed = key.sealed(&master).unwrap().unwrap();
        let again = || MemoryKey::unseal(&sealed, &master).unwrap();
        assert!(refused(Authority::import_intermediate(
            &signed.pem,
            stranger.certificate_pem(),
            again(),
            now
        )));
        assert!(refused(Authority::import_intermediate(
            &signed.pem,
            outside.certificate_pem(),
            MemoryKey::generate_p256().unwrap(),
            now
        )));
        let leaf = outside
            .issue_client(
                &ClientProfile {
                    common_name: "svc",
                    organization: "nnn.acme",
                    validity: Duration::days(30),
                    crl_url: "http://x/root.crl",
                },
                &public_of(&key),
                now,
            )
            .unwrap();
        assert!(refused(Authority::import_intermediate(
            &leaf.pem,
            outside.certificate_pem(),
            again(),
            now
        )));
        let later = now + Duration::days(4000);
        assert!(refused(Authority::import_intermediate(
            &signed.pem,
            outside.certificate_pem(),
            again(),
            later
        )));
        let issuing = Authority::import_intermediate(&signed.pem, outside.certificate_pem(), key, now).unwrap();
        assert_eq!(issuing.certificate_der(), signed.der.as_slice());
    }
}
