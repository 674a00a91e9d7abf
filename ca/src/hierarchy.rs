//! A CA hierarchy as a PKI policy wants it: a root that signs only intermediates (and its
//! own CRL), and issuing intermediates that sign what fleetca issues.
//!
//! - [`Authority::create_root`]: a self-signed root that may certify one level of
//!   intermediates, and one root rollover's cross-certificate above them (path length 2).
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
    /// Creates a self-signed ECDSA P-256 root for a hierarchy: it signs certificates of CAs
    /// and CRLs only, with path length 2 — its issuing intermediates, and during a root
    /// rollover the cross-certificate of the next root above theirs ("new with old", RFC 4210
    /// §4.4: leaf, new intermediate, new root certified by this one). Valid from
    /// an hour before `now` until `now + validity`.
    pub fn create_root(subject: &CaSubject, now: DateTime<Utc>, validity: Duration) -> Result<Self, CaError> {
        Self::create_root_with(subject, now, validity, crate::CaAlgorithm::P256)
    }

    /// As [`Authority::create_root`], with a key of `algorithm`.
    pub fn create_root_with(
        subject: &CaSubject,
        now: DateTime<Utc>,
        validity: Duration,
        algorithm: crate::CaAlgorithm,
    ) -> Result<Self, CaError> {
        let usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Self::self_signed(subject, now, validity, 2, usages, algorithm)
    }

    /// As [`Authority::create_root`], with a key made elsewhere (a PKCS#11 token's: it never
    /// leaves the token, which signs the root's own certificate too).
    pub fn create_root_with_key(
        subject: &CaSubject,
        now: DateTime<Utc>,
        validity: Duration,
        key: Box<dyn crate::CaKey>,
    ) -> Result<Self, CaError> {
        let usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Self::self_signed_with(subject, now, validity, 2, usages, key)
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
        let key = crate::MemoryKey::generate(self.key_algorithm())?;
        let certified = self.certify_intermediate(profile, &PublicKey::of_ca_key(&key)?, now)?;
        Ok((certified, key.seal(master)?))
    }
}

impl Authority {
    /// RFC 4210 §4.4's cross-certificate for a root rollover: `other`'s subject, key, subject
    /// key identifier and path length, certified by this root. With this the old root and
    /// `other` the new, it is "new with old": a client that trusts only the old root verifies
    /// what the new hierarchy signs through it; the other way round, "old with new". Valid
    /// from now until the earlier of the two roots' ends; keyCertSign and cRLSign; this root's
    /// CRL as its distribution point. Refused when this root's path length is below 2 (an
    /// installation's single CA from before hierarchies has 0, a root made before rollovers 1):
    /// a chain through the cross-certificate would exceed it.
    pub fn cross_certify(
        &self,
        other: &Authority,
        crl_url: &str,
        now: DateTime<Utc>,
    ) -> Result<IssuedCertificate, CaError> {
        // The other root's cross-certificate sits between this root and the other's
        // intermediates: two CAs below this one.
        let deep_enough = parsed(self.certificate_der(), "CA")?
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|b| b.value.ca && b.value.path_len_constraint.is_none_or(|n| n >= 2));
        if !deep_enough {
            return Err(CaError::InvalidKey(
                "this root's path length constraint is below 2: a chain through its cross-certificate would be refused"
                    .into(),
            ));
        }
        let cert = parsed(other.certificate_der(), "CA")?;
        let attribute = |oid: &x509_parser::der_parser::asn1_rs::Oid<'_>| {
            cert.subject()
                .iter_attributes()
                .find(|a| a.attr_type() == oid)
                .and_then(|a| a.as_str().ok())
                .map(str::to_owned)
        };
        let subject = CaSubject {
            common_name: attribute(&x509_parser::oid_registry::OID_X509_COMMON_NAME)
                .ok_or_else(|| CaError::InvalidKey("the CA to certify has no common name".into()))?,
            organization: attribute(&x509_parser::oid_registry::OID_X509_ORGANIZATION_NAME),
        };
        let path_len = cert
            .basic_constraints()
            .ok()
            .flatten()
            .filter(|b| b.value.ca)
            .ok_or_else(|| CaError::InvalidKey("the certificate to cross-certify is not a CA".into()))?
            .value
            .path_len_constraint;
        let public = PublicKey::of_ca_key(other.issuer().key().0.as_ref())?;
        let now = whole_seconds(now);
        let not_before = now - BACKDATE;
        let not_after = self.not_after().min(other.not_after());
        if not_after <= now {
            return Err(CaError::InvalidName("one of the two roots has expired".into()));
        }
        let (serial, serial_hex) = random_serial()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = crate::authority::distinguished_name(&subject);
        params.serial_number = Some(serial);
        params.not_before = to_time(not_before)?;
        params.not_after = to_time(not_after)?;
        params.is_ca = match path_len {
            Some(n) => IsCa::Ca(BasicConstraints::Constrained(u8::try_from(n).unwrap_or(u8::MAX))),
            None => IsCa::Ca(BasicConstraints::Unconstrained),
        };
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issued = self.certify_with_ski(
            params,
            crl_url,
            &public,
            other.key_identifier().to_vec(),
            serial_hex,
            (not_before, not_after),
        )?;
        // Path building matches names byte for byte: the cross-certificate must carry the
        // certified root's subject exactly as its own certificate does.
        let made = parsed(&issued.der, "cross")?;
        if made.subject().as_raw() != cert.subject().as_raw() {
            return Err(CaError::InvalidKey(
                "the CA's name cannot be repeated exactly in a cross-certificate".into(),
            ));
        }
        Ok(issued)
    }
}

/// Whether two certificates (PEM) name the same subject, byte for byte: which of a root's
/// cross-certificates certifies it ("new with old") and which the other root.
pub fn same_subject(a_pem: &str, b_pem: &str) -> bool {
    let der = |text: &str| pem::parse(text.trim()).ok().map(pem::Pem::into_contents);
    match (der(a_pem), der(b_pem)) {
        (Some(a), Some(b)) => match (parsed(&a, "a"), parsed(&b, "b")) {
            (Ok(a), Ok(b)) => a.subject().as_raw() == b.subject().as_raw(),
            _ => false,
        },
        _ => false,
    }
}

/// Whether certificate `cert_pem` names as its issuer, byte for byte, the subject of
/// `ca_pem` (and verifies under its key): which root signed a cross-certificate.
pub fn issued_by(cert_pem: &str, ca_pem: &str) -> bool {
    let der = |text: &str| pem::parse(text.trim()).ok().map(pem::Pem::into_contents);
    match (der(cert_pem), der(ca_pem)) {
        (Some(c), Some(a)) => match (parsed(&c, "c"), parsed(&a, "a")) {
            (Ok(c), Ok(a)) => {
                c.issuer().as_raw() == a.subject().as_raw() && c.verify_signature(Some(a.public_key())).is_ok()
            }
            _ => false,
        },
        _ => false,
    }
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
            // The root: trusted, not presented. During a root rollover the set also holds
            // this root certified by the one before it ("new with old", RFC 4210 §4.4):
            // presented, so a peer that trusts only the older root verifies the chain too.
            let bridge = parsed.iter().find(|(_, c)| {
                c.subject() == ca.subject() && c.issuer() != c.subject() && c.public_key().raw == ca.public_key().raw
            });
            if let Some((cross, _)) = bridge {
                chain.push((*cross).clone());
            }
            break;
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

    /// A hierarchy under `root`: its issuing intermediate and a client certificate of it.
    fn hierarchy_under(root: &Authority, name: &str, now: DateTime<Utc>) -> (IssuedCertificate, IssuedCertificate) {
        let key = MemoryKey::generate_p256().unwrap();
        let profile = IntermediateProfile {
            subject: &subject(&format!("{name} issuing CA")),
            validity: Duration::days(3650),
            crl_url: "http://x/root.crl",
        };
        let certified = root.certify_intermediate(&profile, &public_of(&key), now).unwrap();
        let issuing = Authority::with_key(&certified.pem, key).unwrap();
        let client = ClientProfile {
            common_name: "device-1",
            organization: "acme",
            validity: Duration::days(30),
            crl_url: "http://x/issuing.crl",
        };
        let leaf = issuing
            .issue_client(&client, &generate_p256().unwrap().public_key, now)
            .unwrap();
        (certified, leaf)
    }

    /// `openssl verify -x509_strict` of `leaf` trusting only `anchor`, with `untrusted` as
    /// the certificates a peer presents: whether it verified, and what openssl said.
    fn openssl_verifies(anchor: &str, untrusted: &[&str], leaf: &str) -> (bool, String) {
        let dir = std::env::temp_dir().join(format!("fleetca-cross-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tag = format!(
            "{:x}",
            ring::digest::digest(&ring::digest::SHA256, leaf.as_bytes()).as_ref()[0]
        );
        let write = |name: &str, text: &str| {
            let path = dir.join(format!("{tag}-{name}"));
            std::fs::write(&path, text).unwrap();
            path
        };
        let (a, u, l) = (
            write("anchor.pem", anchor),
            write("untrusted.pem", &untrusted.concat()),
            write("leaf.pem", leaf),
        );
        let out = std::process::Command::new("openssl")
            .args(["verify", "-x509_strict", "-CAfile"])
            .arg(&a)
            .arg("-untrusted")
            .arg(&u)
            .arg(&l)
            .output()
            .expect("openssl (scripts/test installs it)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// RFC 4210 §4.4: during a root rollover a client that trusts only the old root verifies
    /// the new hierarchy's certificates through "new with old", and one that trusts only the
    /// new root verifies the old hierarchy's through "old with new" — checked by openssl.
    #[test]
    fn cross_certificates_let_each_roots_clients_verify_the_other_hierarchy() {
        let now = Utc::now();
        let old = Authority::create_root(&subject("fleetca root CA"), now, Duration::days(7300)).unwrap();
        let new = Authority::create_root(&subject("fleetca root CA 2"), now, Duration::days(9000)).unwrap();
        let (old_issuing, old_leaf) = hierarchy_under(&old, "old", now);
        let (new_issuing, new_leaf) = hierarchy_under(&new, "new", now);
        let new_with_old = old.cross_certify(&new, "http://x/old-root.crl", now).unwrap();
        let old_with_new = new.cross_certify(&old, "http://x/new-root.crl", now).unwrap();

        let cross = cert_of(&new_with_old.der);
        let new_cert = cert_of(new.certificate_der());
        assert_eq!(cross.subject().as_raw(), new_cert.subject().as_raw());
        assert_eq!(
            cross.issuer().as_raw(),
            cert_of(old.certificate_der()).subject().as_raw()
        );
        assert_eq!(cross.public_key().raw, new_cert.public_key().raw, "the new root's key");
        assert_eq!(
            cross.basic_constraints().unwrap().unwrap().value.path_len_constraint,
            Some(2),
            "the new root's own path length"
        );
        assert_eq!(new_with_old.not_after, old.not_after(), "no longer than the old root");
        cross
            .verify_signature(Some(cert_of(old.certificate_der()).public_key()))
            .unwrap();

        let (ok, said) = openssl_verifies(
            old.certificate_pem(),
            &[&new_issuing.pem, &new_with_old.pem],
            &new_leaf.pem,
        );
        assert!(ok, "a client of the old root, the new hierarchy: {said}");
        let (ok, said) = openssl_verifies(
            new.certificate_pem(),
            &[&old_issuing.pem, &old_with_new.pem],
            &old_leaf.pem,
        );
        assert!(ok, "a client of the new root, the old hierarchy: {said}");
        // Without the cross-certificate it does not verify: the test can fail.
        let (ok, _) = openssl_verifies(old.certificate_pem(), &[&new_issuing.pem], &new_leaf.pem);
        assert!(
            !ok,
            "the new hierarchy verified under the old root without a cross-certificate"
        );

        // The single CA of an installation from before hierarchies (path length 0) may not
        // vouch for another CA; the new root vouches for it (old with new).
        let legacy = Authority::create(&subject("fleetca root CA"), now, Duration::days(3650)).unwrap();
        assert!(legacy.cross_certify(&new, "http://x/legacy.crl", now).is_err());
        new.cross_certify(&legacy, "http://x/new-root.crl", now)
            .expect("the new root certifies the legacy CA (old with new)");
    }

    /// A hierarchy of P-384 keys: the root, its intermediate (made with the root's algorithm),
    /// a leaf, and a CRL signed with ecdsa-with-SHA384 that lists the leaf — openssl verifies
    /// the chain and refuses the leaf once the CRL is given.
    #[test]
    fn a_p384_hierarchy_signs_certificates_and_crls_with_sha384() {
        hierarchy_of(crate::CaAlgorithm::P384, &["ecdsa-with-SHA384", "NIST CURVE: P-384"]);
    }

    /// The same of RSA keys, 3,072 and 4,096 bits, signing with sha256WithRSAEncryption.
    #[test]
    fn rsa_hierarchies_sign_certificates_and_crls_with_sha256_with_rsa() {
        hierarchy_of(
            crate::CaAlgorithm::Rsa3072,
            &["sha256WithRSAEncryption", "Public-Key: (3072 bit)"],
        );
        hierarchy_of(
            crate::CaAlgorithm::Rsa4096,
            &["sha256WithRSAEncryption", "Public-Key: (4096 bit)"],
        );
    }

    /// A root of `algorithm`, its intermediate, a leaf and a CRL that lists it, checked by
    /// openssl: the intermediate's text shows each of `shown`, the chain verifies, the leaf
    /// is refused once the CRL is given, and the CRL is signed with the first of `shown`.
    fn hierarchy_of(algorithm: crate::CaAlgorithm, shown: &[&str]) {
        let now = Utc::now();
        let master = crate::MasterKey::generate().unwrap();
        let root =
            Authority::create_root_with(&subject("fleetca test root"), now, Duration::days(3650), algorithm).unwrap();
        assert_eq!(root.key_algorithm(), algorithm);
        let profile = IntermediateProfile {
            subject: &subject("fleetca test issuing CA"),
            validity: Duration::days(1825),
            crl_url: "http://x/root.crl",
        };
        let (certified, sealed) = root.new_intermediate(&profile, &master, now).unwrap();
        let issuing = Authority::load(&certified.pem, &sealed, &master).unwrap();
        assert_eq!(
            issuing.key_algorithm(),
            algorithm,
            "the intermediate takes the root's algorithm"
        );
        let client = ClientProfile {
            common_name: "device-384",
            organization: "acme",
            validity: Duration::days(30),
            crl_url: "http://x/issuing.crl",
        };
        let leaf = issuing
            .issue_client(&client, &generate_p256().unwrap().public_key, now)
            .unwrap();
        let serial = hex::decode(&leaf.serial_hex).unwrap();
        let entry = crate::crl::RevokedEntry {
            serial,
            revoked_at: now,
            reason: crate::crl::Reason::KeyCompromise,
        };
        let request = crate::crl::CrlRequest {
            number: 7,
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::days(7),
            url: "http://x/issuing.crl",
            scoped: true,
        };
        let crl = issuing
            .sign_crl_encoded(&request, &crate::crl::encode_revoked_entry(&entry))
            .unwrap();
        issuing.verify_crl_signature(&crl.der).unwrap();

        let dir = std::env::temp_dir().join(format!("fleetca-{algorithm:?}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let (r, i, l, c) = (
            write("root.pem", root.certificate_pem()),
            write("issuing.pem", &certified.pem),
            write("leaf.pem", &leaf.pem),
            write("crl.pem", &crl.pem),
        );
        let openssl = |args: &[&std::ffi::OsStr]| {
            std::process::Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl (scripts/test installs it)")
        };
        let text = openssl(&[
            "x509".as_ref(),
            "-in".as_ref(),
            i.as_os_str(),
            "-noout".as_ref(),
            "-text".as_ref(),
        ]);
        let text = String::from_utf8_lossy(&text.stdout).into_owned();
        assert!(shown.iter().all(|s| text.contains(s)), "{text}");
        let verify = |extra: &[&std::ffi::OsStr]| {
            let mut args: Vec<&std::ffi::OsStr> = vec![
                "verify".as_ref(),
                "-x509_strict".as_ref(),
                "-CAfile".as_ref(),
                r.as_os_str(),
                "-untrusted".as_ref(),
                i.as_os_str(),
            ];
            args.extend(extra);
            args.push(l.as_os_str());
            let out = openssl(&args);
            (
                out.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            )
        };
        let (ok, said) = verify(&[]);
        assert!(ok, "{said}");
        let (ok, said) = verify(&["-crl_check".as_ref(), "-CRLfile".as_ref(), c.as_os_str()]);
        assert!(!ok && said.contains("certificate revoked"), "{said}");
        let crl_text = openssl(&[
            "crl".as_ref(),
            "-in".as_ref(),
            c.as_os_str(),
            "-noout".as_ref(),
            "-text".as_ref(),
        ]);
        let crl_text = String::from_utf8_lossy(&crl_text.stdout).into_owned();
        assert!(shown.first().is_some_and(|s| crl_text.contains(s)), "{crl_text}");
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
            Some(2),
            "its intermediates, and a rollover's cross-certificate above them"
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
