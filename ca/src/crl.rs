//! Certificate revocation lists (RFC 5280 §5).
//!
//! [`Authority::sign_crl`] builds a v2 CRL with an AKI equal to the CA certificate's SKI, a
//! CRL number, an Issuing Distribution Point naming the same URL as the certificates' CRL
//! distribution point (EMQX requires it), and a reason code on every entry.
//! [`Authority::sign_crl_encoded`] signs the same CRL from entries already encoded with
//! [`encode_revoked_entry`] (which leaves out an `unspecified` reason code, as RFC 5280
//! §5.3.1 says); that is what the publisher uses. [`Authority::verify_crl_signature`] checks
//! a CRL's structure and signature without walking its entries, which the publisher does
//! before it replaces a broker's CRL file; [`Authority::check_crl`] parses a CRL in full and
//! reads back its number, dates and entry count.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rcgen::{
    CertificateRevocationListParams, CrlDistributionPoint, CrlIssuingDistributionPoint, KeyIdMethod, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::authority::to_time;
use crate::{Authority, CaError};

/// An RFC 5280 revocation reason that fleetca accepts. `certificateHold` and
/// `removeFromCRL` are left out on purpose: a revocation here is final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// unspecified (0)
    Unspecified,
    /// keyCompromise (1)
    KeyCompromise,
    /// cACompromise (2)
    CaCompromise,
    /// affiliationChanged (3)
    AffiliationChanged,
    /// superseded (4)
    Superseded,
    /// cessationOfOperation (5)
    CessationOfOperation,
    /// privilegeWithdrawn (9)
    PrivilegeWithdrawn,
    /// aACompromise (10)
    AaCompromise,
}

impl Reason {
    /// Every accepted reason.
    pub const ALL: [Reason; 8] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::CaCompromise,
        Reason::AffiliationChanged,
        Reason::Superseded,
        Reason::CessationOfOperation,
        Reason::PrivilegeWithdrawn,
        Reason::AaCompromise,
    ];

    /// The RFC 5280 name, e.g. `keyCompromise`.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "keyCompromise",
            Reason::CaCompromise => "cACompromise",
            Reason::AffiliationChanged => "affiliationChanged",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessationOfOperation",
            Reason::PrivilegeWithdrawn => "privilegeWithdrawn",
            Reason::AaCompromise => "aACompromise",
        }
    }

    /// The CRLReason code.
    pub fn code(self) -> u8 {
        self.to_rcgen() as u8
    }

    fn to_rcgen(self) -> RevocationReason {
        match self {
            Reason::Unspecified => RevocationReason::Unspecified,
            Reason::KeyCompromise => RevocationReason::KeyCompromise,
            Reason::CaCompromise => RevocationReason::CaCompromise,
            Reason::AffiliationChanged => RevocationReason::AffiliationChanged,
            Reason::Superseded => RevocationReason::Superseded,
            Reason::CessationOfOperation => RevocationReason::CessationOfOperation,
            Reason::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
            Reason::AaCompromise => RevocationReason::AaCompromise,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing an unknown reason name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownReason;

impl FromStr for Reason {
    type Err = UnknownReason;

    /// Accepts the RFC 5280 name in any case, with or without `_`/`-` (`key_compromise`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let folded: String = s
            .chars()
            .filter(|c| *c != '_' && *c != '-')
            .collect::<String>()
            .to_ascii_lowercase();
        Reason::ALL
            .into_iter()
            .find(|r| r.name().to_ascii_lowercase() == folded)
            .ok_or(UnknownReason)
    }
}

/// One revoked certificate on a CRL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The certificate's serial number bytes (positive, big-endian).
    pub serial: Vec<u8>,
    /// When it was revoked.
    pub revoked_at: DateTime<Utc>,
    /// Why.
    pub reason: Reason,
}

/// What goes into a CRL besides its entries.
#[derive(Clone, Debug)]
pub struct CrlRequest<'a> {
    /// The CRL number; the caller guarantees it only grows.
    pub number: u64,
    /// thisUpdate. Callers set it a few minutes in the past: a thisUpdate in the future
    /// makes mosquitto refuse every client.
    pub this_update: DateTime<Utc>,
    /// nextUpdate.
    pub next_update: DateTime<Utc>,
    /// The URL of this CRL: the Issuing Distribution Point, equal to the certificates'
    /// CRL distribution point.
    pub url: &'a str,
    /// Whether the CRL names its scope (the issuingDistributionPoint extension). A root
    /// that certifies only intermediates leaves it out: its CRL then covers everything it
    /// signed, itself included, which is what `openssl verify -crl_check_all` asks of the
    /// last certificate of a chain (a certificate without a distribution point is outside
    /// a CRL that names one).
    pub scoped: bool,
}

/// Empties `buffer` and makes it hold at least `needed` bytes: a buffer that must grow gets
/// an eighth more, so a list that grows by a few entries a publication is not reallocated
/// at every one (a signature's length varies by a byte or two as well).
fn make_room(buffer: &mut Vec<u8>, needed: usize) {
    buffer.clear();
    if buffer.capacity() < needed {
        buffer.reserve_exact(needed.saturating_add(needed / 8));
    }
}

/// Writes `der` as a PEM block labelled `label` into `out` (replacing what it held): 64
/// characters a line, LF line endings, as the `pem` crate writes it with LF.
fn pem_into(label: &str, der: &[u8], out: &mut Vec<u8>) -> Result<(), CaError> {
    use base64::Engine as _;
    make_room(out, 2 * (label.len() + 17) + der.len().div_ceil(48) * 65);
    out.extend_from_slice(b"-----BEGIN ");
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(b"-----\n");
    for chunk in der.chunks(48) {
        let start = out.len();
        out.resize(start + 64, 0);
        let line = out.get_mut(start..).unwrap_or_default();
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(chunk, line)
            .map_err(|e| CaError::Signing(format!("PEM encoding: {e}")))?;
        out.truncate(start + written);
        out.push(b'\n');
    }
    out.extend_from_slice(b"-----END ");
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(b"-----\n");
    Ok(())
}

/// A signed CRL.
#[derive(Clone, Debug)]
pub struct SignedCrl {
    /// DER encoding.
    pub der: Vec<u8>,
    /// PEM encoding (`X509 CRL`).
    pub pem: String,
}

/// The buffers a CRL is built in ([`Authority::sign_crl_into`]). A publisher that signs one
/// CRL again and again keeps them, and gives back the DER and PEM of the CRL it replaced
/// once nothing else holds them, so a publication allocates nothing the size of the list:
/// list-sized buffers made anew every time are what spread over glibc's arenas and stay
/// resident (docs/performance.md, "Memory").
#[derive(Debug, Default)]
pub struct CrlBuffers {
    /// The tbsCertList being signed (scratch).
    pub tbs: Vec<u8>,
    /// The signed CRL's DER.
    pub der: Vec<u8>,
    /// Its PEM (`X509 CRL`, 64-character lines, LF).
    pub pem: Vec<u8>,
}

/// Facts read back from a CRL whose signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlFacts {
    /// The CRL number.
    pub number: u64,
    /// thisUpdate.
    pub this_update: DateTime<Utc>,
    /// nextUpdate.
    pub next_update: Option<DateTime<Utc>>,
    /// How many entries it lists.
    pub entries: usize,
}

impl Authority {
    /// Signs a CRL listing `revoked`.
    pub fn sign_crl<'e>(
        &self,
        request: &CrlRequest<'_>,
        revoked: impl IntoIterator<Item = &'e RevokedEntry>,
    ) -> Result<SignedCrl, CaError> {
        let revoked_certs = revoked
            .into_iter()
            .map(|e| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&e.serial),
                    revocation_time: to_time(e.revoked_at)?,
                    reason_code: Some(e.reason.to_rcgen()),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, CaError>>()?;
        let params = CertificateRevocationListParams {
            this_update: to_time(request.this_update)?,
            next_update: to_time(request.next_update)?,
            crl_number: SerialNumber::from_slice(&request.number.to_be_bytes()),
            issuing_distribution_point: Some(CrlIssuingDistributionPoint {
                distribution_point: CrlDistributionPoint {
                    uris: vec![request.url.to_owned()],
                },
                scope: None,
            }),
            revoked_certs,
            // rcgen would otherwise derive the AKI from the CA key; it must be the CA
            // certificate's SKI as written there.
            key_identifier_method: KeyIdMethod::PreSpecified(self.key_identifier().to_vec()),
        };
        let crl = params.signed_by(self.issuer())?;
        Ok(SignedCrl {
            der: crl.der().to_vec(),
            pem: crl.pem()?,
        })
    }

    /// Signs a CRL from entries already encoded with [`encode_revoked_entry`] and
    /// concatenated. A publisher that keeps that buffer and appends to it pays per revocation
    /// only for hashing the list, not for encoding every entry again: at 100,000 entries this
    /// is several times faster than [`Authority::sign_crl`], which encodes them all.
    pub fn sign_crl_encoded(&self, request: &CrlRequest<'_>, entries_der: &[u8]) -> Result<SignedCrl, CaError> {
        let mut buffers = CrlBuffers::default();
        self.sign_crl_into(request, entries_der, &mut buffers)?;
        let pem = String::from_utf8(buffers.pem).map_err(|_| CaError::Signing("the CRL's PEM is not text".into()))?;
        Ok(SignedCrl { der: buffers.der, pem })
    }

    /// [`Self::sign_crl_encoded`] into `buffers`: their DER and PEM are replaced by the new
    /// CRL's, in the memory they already hold when it is large enough.
    pub fn sign_crl_into(
        &self,
        request: &CrlRequest<'_>,
        entries_der: &[u8],
        buffers: &mut CrlBuffers,
    ) -> Result<(), CaError> {
        // The signature algorithm of the CA's key: ecdsa-with-SHA256 (P-256) or
        // ecdsa-with-SHA384 (P-384), RFC 5758 §3.2, parameters absent; sha256WithRSAEncryption
        // (RSA), RFC 4055 §5, parameters NULL.
        const ECDSA_WITH_SHA256: &[u8] = &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        const ECDSA_WITH_SHA384: &[u8] = &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
        const SHA256_WITH_RSA: &[u8] = &[
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
        ];
        let algorithm = match self.key_algorithm() {
            crate::CaAlgorithm::P256 => ECDSA_WITH_SHA256,
            crate::CaAlgorithm::P384 => ECDSA_WITH_SHA384,
            crate::CaAlgorithm::Rsa3072 | crate::CaAlgorithm::Rsa4096 => SHA256_WITH_RSA,
        };
        let mut exts = Vec::with_capacity(128);
        // authorityKeyIdentifier: [0] keyIdentifier, equal to the CA certificate's SKI.
        let aki = tlv(0x30, &tlv(0x80, self.key_identifier()));
        exts.extend(tlv(
            0x30,
            &[&[0x06, 0x03, 0x55, 0x1d, 0x23][..], &tlv(0x04, &aki)].concat(),
        ));
        // cRLNumber.
        let number = tlv(0x02, &positive_integer(&request.number.to_be_bytes()));
        exts.extend(tlv(
            0x30,
            &[&[0x06, 0x03, 0x55, 0x1d, 0x14][..], &tlv(0x04, &number)].concat(),
        ));
        // issuingDistributionPoint (critical): distributionPoint fullName URI.
        if request.scoped {
            let uri = tlv(0x86, request.url.as_bytes());
            let idp = tlv(0x30, &tlv(0xa0, &tlv(0xa0, &uri)));
            exts.extend(tlv(
                0x30,
                &[&[0x06, 0x03, 0x55, 0x1d, 0x1c, 0x01, 0x01, 0xff][..], &tlv(0x04, &idp)].concat(),
            ));
        }
        // The list can be megabytes: the tbsCertList and the CRL are each built once, in a
        // buffer of their exact size, rather than grown (a grown buffer of that size is
        // copied at every doubling, and each copy is a large allocation left to fragment the
        // allocator's arenas: docs/performance.md, "Memory").
        let version: &[u8] = &[0x02, 0x01, 0x01];
        let subject = self.subject_der();
        let (this_update, next_update) = (der_time(request.this_update), der_time(request.next_update));
        let entries_header = if entries_der.is_empty() {
            Vec::new()
        } else {
            tlv_header(0x30, entries_der.len())
        };
        let extensions = tlv(0xa0, &tlv(0x30, &exts));
        let parts: [&[u8]; 8] = [
            version,
            algorithm,
            subject,
            &this_update,
            &next_update,
            &entries_header,
            entries_der,
            &extensions,
        ];
        let tbs_len: usize = parts.iter().map(|p| p.len()).sum();
        let tbs_header = tlv_header(0x30, tbs_len);
        let tbs = &mut buffers.tbs;
        make_room(tbs, tbs_header.len() + tbs_len);
        tbs.extend_from_slice(&tbs_header);
        for part in parts {
            tbs.extend_from_slice(part);
        }
        let signature = self.sign(tbs)?;
        let sig_header = tlv_header(0x03, signature.len() + 1);
        let body_len = tbs.len() + algorithm.len() + sig_header.len() + 1 + signature.len();
        let header = tlv_header(0x30, body_len);
        let der = &mut buffers.der;
        make_room(der, header.len() + body_len);
        der.extend_from_slice(&header);
        der.extend_from_slice(tbs);
        der.extend_from_slice(algorithm);
        der.extend_from_slice(&sig_header);
        der.push(0);
        der.extend_from_slice(&signature);
        pem_into("X509 CRL", der, &mut buffers.pem)
    }

    /// Checks a DER CRL's outer structure and that this CA signed it, without walking its
    /// entries: what the publisher runs before a CRL replaces a broker's file, at a cost that
    /// does not grow with the number of entries beyond hashing them.
    pub fn verify_crl_signature(&self, der: &[u8]) -> Result<(), CaError> {
        let bad = |m: &str| CaError::Signing(format!("CRL check failed: {m}"));
        let (outer, rest) = der_element(der, 0x30).ok_or_else(|| bad("not a DER SEQUENCE"))?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes"));
        }
        let body = &outer.1;
        let (tbs, after_tbs) = der_element(body, 0x30).ok_or_else(|| bad("no tbsCertList"))?;
        let (_alg, after_alg) = der_element(after_tbs, 0x30).ok_or_else(|| bad("no signatureAlgorithm"))?;
        let (sig, end) = der_element(after_alg, 0x03).ok_or_else(|| bad("no signature"))?;
        let signature = match sig.1.split_first() {
            Some((&0, signature)) if end.is_empty() => signature,
            _ => return Err(bad("malformed signature")),
        };
        let verification: &dyn ring::signature::VerificationAlgorithm = match self.key_algorithm() {
            crate::CaAlgorithm::P256 => &ring::signature::ECDSA_P256_SHA256_ASN1,
            crate::CaAlgorithm::P384 => &ring::signature::ECDSA_P384_SHA384_ASN1,
            crate::CaAlgorithm::Rsa3072 | crate::CaAlgorithm::Rsa4096 => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        };
        let key = ring::signature::UnparsedPublicKey::new(verification, self.public_key_raw());
        key.verify(tbs.0, signature).map_err(|_| bad("signature"))
    }

    /// Parses a DER CRL and checks that this CA signed it.
    pub fn check_crl(&self, der: &[u8]) -> Result<CrlFacts, CaError> {
        let bad = |m: &str| CaError::Signing(format!("CRL check failed: {m}"));
        let (rest, crl) = CertificateRevocationList::from_der(der).map_err(|_| bad("unparsable"))?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes"));
        }
        let (_, ca) = X509Certificate::from_der(self.certificate_der()).map_err(|_| bad("CA certificate"))?;
        crl.verify_signature(ca.public_key()).map_err(|_| bad("signature"))?;
        let number = crl
            .crl_number()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| bad("no CRL number"))?;
        let ts = |t: x509_parser::time::ASN1Time| DateTime::from_timestamp(t.timestamp(), 0);
        Ok(CrlFacts {
            number,
            this_update: ts(crl.last_update()).ok_or_else(|| bad("thisUpdate"))?,
            next_update: crl.next_update().and_then(ts),
            entries: crl.iter_revoked_certificates().count(),
        })
    }
}

impl Authority {
    /// A CRL this CA signed, read back whole: its number and every entry (serial, date,
    /// reason), after its signature is checked. What a restored database is compared with.
    pub fn read_crl(&self, der: &[u8]) -> Result<(u64, Vec<RevokedEntry>), CaError> {
        let facts = self.check_crl(der)?;
        let bad = |m: &str| CaError::Signing(format!("CRL read failed: {m}"));
        let (_, crl) = CertificateRevocationList::from_der(der).map_err(|_| bad("unparsable"))?;
        let mut entries = Vec::with_capacity(facts.entries);
        for revoked in crl.iter_revoked_certificates() {
            let reason = revoked
                .reason_code()
                .and_then(|(_, code)| Reason::ALL.into_iter().find(|r| r.code() == code.0))
                .unwrap_or(Reason::Unspecified);
            let revoked_at = DateTime::from_timestamp(revoked.revocation_date.timestamp(), 0)
                .ok_or_else(|| bad("revocation date"))?;
            entries.push(RevokedEntry {
                serial: revoked.raw_serial().iter().copied().skip_while(|b| *b == 0).collect(),
                revoked_at,
                reason,
            });
        }
        Ok((facts.number, entries))
    }
}

/// The DER of one `revokedCertificates` element: serial, revocation date and, unless the
/// reason is `unspecified` (which RFC 5280 §5.3.1 says to leave out), a reasonCode.
pub fn encode_revoked_entry(e: &RevokedEntry) -> Vec<u8> {
    let mut body = tlv(0x02, &positive_integer(&e.serial));
    body.extend(der_time(e.revoked_at));
    if e.reason != Reason::Unspecified {
        let ext = tlv(
            0x30,
            &[
                &[0x06, 0x03, 0x55, 0x1d, 0x15][..],
                &tlv(0x04, &[0x0a, 0x01, e.reason.code()]),
            ]
            .concat(),
        );
        body.extend(tlv(0x30, &ext));
    }
    tlv(0x30, &body)
}

fn tlv_header(tag: u8, len: usize) -> Vec<u8> {
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant = bytes.iter().skip_while(|b| **b == 0);
        out.push(0x80 | significant.clone().count() as u8);
        out.extend(significant);
    }
    out
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = tlv_header(tag, content.len());
    out.extend_from_slice(content);
    out
}

/// A big-endian unsigned number as the contents of a DER INTEGER.
fn positive_integer(bytes: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = bytes
        .iter()
        .position(|b| *b != 0)
        .and_then(|i| bytes.get(i..))
        .unwrap_or(&[0]);
    let mut out = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
    out
}

/// UTCTime through 2049, GeneralizedTime after (RFC 5280 §5.1.2.4).
fn der_time(t: DateTime<Utc>) -> Vec<u8> {
    use chrono::Datelike;
    if t.year() < 2050 {
        tlv(0x17, t.format("%y%m%d%H%M%SZ").to_string().as_bytes())
    } else {
        tlv(0x18, t.format("%Y%m%d%H%M%SZ").to_string().as_bytes())
    }
}

/// A DER element: (the whole encoding, its contents).
type DerElement<'a> = (&'a [u8], &'a [u8]);

/// One DER element with the expected tag, and the bytes after it.
fn der_element(input: &[u8], tag: u8) -> Option<(DerElement<'_>, &[u8])> {
    if *input.first()? != tag {
        return None;
    }
    let first = *input.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let len = input
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    let (whole, rest) = input.split_at_checked(end)?;
    Some(((whole, whole.get(header..)?), rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CaSubject;
    use chrono::Duration;
    use x509_parser::extensions::ParsedExtension;

    #[test]
    fn a_crl_signed_from_cached_entries_parses_like_one_signed_whole() {
        let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
        let ca = Authority::create(
            &CaSubject {
                common_name: "Inc CA".into(),
                organization: Some("fleetca".into()),
            },
            now,
            Duration::days(3650),
        )
        .unwrap();
        let entries: Vec<RevokedEntry> = (0..300u32)
            .map(|i| RevokedEntry {
                serial: [&[0xc0u8][..], &i.to_be_bytes()].concat(),
                revoked_at: now,
                reason: Reason::ALL[i as usize % Reason::ALL.len()],
            })
            .collect();
        let encoded: Vec<u8> = entries.iter().flat_map(encode_revoked_entry).collect();
        let request = CrlRequest {
            number: 300,
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::days(7),
            url: "http://h/crl.der",
            scoped: true,
        };
        let fast = ca.sign_crl_encoded(&request, &encoded).unwrap();
        let whole = ca.sign_crl(&request, &entries).unwrap();
        ca.verify_crl_signature(&fast.der).unwrap();
        // The PEM is the DER, written as the pem crate writes it with LF line endings.
        assert_eq!(pem::parse(&fast.pem).unwrap().contents(), &fast.der[..]);
        let by_crate = pem::encode_config(
            &pem::Pem::new("X509 CRL", fast.der.clone()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        assert_eq!(fast.pem, by_crate);
        // Signed again into kept buffers: the same memory, a new CRL in it.
        let mut buffers = CrlBuffers::default();
        ca.sign_crl_into(&request, &encoded, &mut buffers).unwrap();
        let (der_at, pem_at) = (buffers.der.as_ptr(), buffers.pem.as_ptr());
        let next = CrlRequest { number: 301, ..request };
        ca.sign_crl_into(&next, &encoded, &mut buffers).unwrap();
        assert_eq!((buffers.der.as_ptr(), buffers.pem.as_ptr()), (der_at, pem_at));
        assert_eq!(ca.check_crl(&buffers.der).unwrap().number, 301);
        assert_eq!(pem::parse(&buffers.pem).unwrap().contents(), &buffers.der[..]);
        assert_eq!(ca.check_crl(&fast.der).unwrap(), ca.check_crl(&whole.der).unwrap());
        let (_, a) = CertificateRevocationList::from_der(&fast.der).unwrap();
        let (_, b) = CertificateRevocationList::from_der(&whole.der).unwrap();
        assert_eq!(a.issuer(), b.issuer());
        let reasons = |c: &CertificateRevocationList| -> Vec<(Vec<u8>, Option<u8>)> {
            c.iter_revoked_certificates()
                .map(|r| {
                    (
                        r.raw_serial().to_vec(),
                        r.reason_code().map(|x| x.1.0).filter(|x| *x != 0),
                    )
                })
                .collect()
        };
        assert_eq!(reasons(&a), reasons(&b));
        let exts = |c: &CertificateRevocationList| -> Vec<String> {
            c.extensions()
                .iter()
                .map(|e| format!("{:?}", e.parsed_extension()))
                .collect()
        };
        assert_eq!(exts(&a), exts(&b), "AKI, CRL number and IDP match rcgen's");
        assert!(fast.pem.starts_with("-----BEGIN X509 CRL-----\n"));
        // An empty list has no revokedCertificates field at all.
        let empty = ca.sign_crl_encoded(&request, &[]).unwrap();
        assert_eq!(ca.check_crl(&empty.der).unwrap().entries, 0);
        // Past 2049 the dates are GeneralizedTime.
        assert_eq!(der_time(DateTime::from_timestamp(2_600_000_000, 0).unwrap())[0], 0x18);
    }

    #[test]
    fn crls_name_the_ca_certificates_ski_as_their_aki() {
        let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
        let ca = Authority::create(
            &CaSubject {
                common_name: "AKI CA".into(),
                organization: None,
            },
            now,
            Duration::days(3650),
        )
        .unwrap();
        let (_, ca_cert) = X509Certificate::from_der(ca.certificate_der()).unwrap();
        let ca_ski = ca_cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .unwrap();
        let bits = ca_cert.public_key().subject_public_key.data.as_ref();
        assert_eq!(
            ca_ski,
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, bits).as_ref()
        );
        let entries = [RevokedEntry {
            serial: vec![0x40, 1, 2, 3],
            revoked_at: now,
            reason: Reason::Superseded,
        }];
        let request = CrlRequest {
            number: 1,
            this_update: now,
            next_update: now + Duration::days(7),
            url: "http://h/crl.der",
            scoped: true,
        };
        let whole = ca.sign_crl(&request, &entries).unwrap();
        let encoded: Vec<u8> = entries.iter().flat_map(encode_revoked_entry).collect();
        let fast = ca.sign_crl_encoded(&request, &encoded).unwrap();
        for crl in [whole, fast] {
            let (_, parsed) = CertificateRevocationList::from_der(&crl.der).unwrap();
            let aki = parsed.extensions().iter().find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0.to_vec()),
                _ => None,
            });
            assert_eq!(aki, Some(ca_ski.clone()));
        }
    }

    #[test]
    fn reasons_parse_from_rfc_names_in_any_spelling() {
        assert_eq!("keyCompromise".parse(), Ok(Reason::KeyCompromise));
        assert_eq!("key_compromise".parse(), Ok(Reason::KeyCompromise));
        assert_eq!("CACOMPROMISE".parse(), Ok(Reason::CaCompromise));
        assert_eq!("certificateHold".parse::<Reason>(), Err(UnknownReason));
        assert_eq!(Reason::PrivilegeWithdrawn.code(), 9);
    }

    #[test]
    fn a_signed_crl_parses_back_with_its_number_entries_reasons_and_idp() {
        let now = Utc::now();
        let ca = Authority::create(
            &CaSubject {
                common_name: "CRL CA".into(),
                organization: None,
            },
            now,
            Duration::days(3650),
        )
        .unwrap();
        let entries: Vec<RevokedEntry> = (0..1000u32)
            .map(|i| RevokedEntry {
                serial: [&[0x40u8][..], &i.to_be_bytes()].concat(),
                revoked_at: now,
                reason: if i % 2 == 0 {
                    Reason::KeyCompromise
                } else {
                    Reason::Superseded
                },
            })
            .collect();
        let request = CrlRequest {
            number: 42,
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::days(7),
            url: "http://h/crl.der",
            scoped: true,
        };
        let crl = ca.sign_crl(&request, &entries).unwrap();
        assert!(crl.pem.starts_with("-----BEGIN X509 CRL-----"));
        let facts = ca.check_crl(&crl.der).unwrap();
        ca.verify_crl_signature(&crl.der).unwrap();
        let mut tampered = crl.der.clone();
        let n = tampered.len();
        tampered[n / 2] ^= 1;
        assert!(ca.verify_crl_signature(&tampered).is_err());
        assert!(ca.verify_crl_signature(b"garbage").is_err());
        assert_eq!(facts.number, 42);
        assert_eq!(facts.entries, 1000);
        assert_eq!(
            facts.next_update.unwrap().timestamp(),
            (now + Duration::days(7)).timestamp()
        );

        let (_, parsed) = CertificateRevocationList::from_der(&crl.der).unwrap();
        assert_eq!(parsed.version().map(|v| v.0), Some(1), "v2 CRL");
        let first = parsed.iter_revoked_certificates().next().unwrap();
        assert_eq!(first.reason_code().unwrap().1.0, 1);
        let exts: Vec<_> = parsed.extensions().iter().map(|e| e.parsed_extension()).collect();
        assert!(
            exts.iter()
                .any(|e| matches!(e, ParsedExtension::AuthorityKeyIdentifier(_)))
        );
        assert!(
            exts.iter()
                .any(|e| matches!(e, ParsedExtension::IssuingDistributionPoint(_)))
        );

        let other = Authority::create(
            &CaSubject {
                common_name: "Other".into(),
                organization: None,
            },
            now,
            Duration::days(3650),
        )
        .unwrap();
        assert!(
            other.check_crl(&crl.der).is_err(),
            "a CRL from another CA does not verify"
        );
        assert!(ca.check_crl(b"garbage").is_err());
    }
}
