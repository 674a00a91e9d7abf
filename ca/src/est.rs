//! The wire formats of EST (RFC 7030): a certs-only CMS SignedData ("degenerate PKCS#7")
//! for `/cacerts` and enrollment answers, and the CSR attributes fleetca asks for.

use cms::cert::x509::Certificate;
use cms::cert::x509::der::{Decode, Encode};
use cms::content_info::ContentInfo;

use crate::CaError;

/// A certs-only CMS SignedData holding `certificates` (DER each), DER-encoded.
pub fn certs_only(certificates: &[&[u8]]) -> Result<Vec<u8>, CaError> {
    let certs = certificates
        .iter()
        .map(|der| Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CaError::Signing(format!("a certificate does not decode: {e}")))?;
    ContentInfo::try_from(certs)
        .and_then(|info| info.to_der())
        .map_err(|e| CaError::Signing(format!("certs-only SignedData: {e}")))
}

/// The certificates (DER each) of a certs-only CMS SignedData, as an EST server answers an
/// enrollment (the client side of [`certs_only`]).
pub fn certificates_of(der: &[u8]) -> Result<Vec<Vec<u8>>, CaError> {
    use cms::cert::CertificateChoices;
    use cms::signed_data::SignedData;
    let bad = |e: String| CaError::InvalidKey(format!("not a certs-only PKCS#7: {e}"));
    let info = ContentInfo::from_der(der).map_err(|e| bad(e.to_string()))?;
    let signed: SignedData = info.content.decode_as().map_err(|e| bad(e.to_string()))?;
    let set = signed
        .certificates
        .ok_or_else(|| bad("it holds no certificate".into()))?;
    set.0
        .iter()
        .filter_map(|c| match c {
            CertificateChoices::Certificate(cert) => Some(cert.to_der().map_err(|e| bad(e.to_string()))),
            CertificateChoices::Other(_) => None,
        })
        .collect()
}

/// A new P-256 key (PKCS#8 `PRIVATE KEY` PEM) and a CSR for it (DER) with subject CN
/// `common_name`: what a client re-enrolls with.
pub fn new_key_and_csr(common_name: &str) -> Result<(String, Vec<u8>), CaError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|_| CaError::Random)?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    let csr = params
        .serialize_request(&key)
        .map_err(|e| CaError::Signing(format!("CSR: {e}")))?;
    Ok((key.serialize_pem(), csr.der().to_vec()))
}

/// The CSR attributes (RFC 7030 §4.5): a P-256 key (id-ecPublicKey with prime256v1) and
/// an ECDSA-with-SHA256 signature, DER-encoded.
pub fn csr_attributes() -> Vec<u8> {
    // SEQUENCE { OID ecdsa-with-SHA256,
    //            SEQUENCE { OID id-ecPublicKey, SET { OID prime256v1 } } }
    const ECDSA_WITH_SHA256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    const EC_PUBLIC_KEY: [u8; 9] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const PRIME256V1: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let set = [&[0x31, PRIME256V1.len() as u8][..], &PRIME256V1].concat();
    let attribute = [
        &[0x30, (EC_PUBLIC_KEY.len() + set.len()) as u8][..],
        &EC_PUBLIC_KEY,
        &set,
    ]
    .concat();
    let body = [&ECDSA_WITH_SHA256[..], &attribute].concat();
    [&[0x30, body.len() as u8][..], &body].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enrollment_answer_reads_back_its_certificate() {
        let (key_pem, csr) = new_key_and_csr("dev-1").unwrap();
        assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(crate::csr::parse_csr_der(&csr).is_ok());
        let now = chrono::Utc::now();
        let ca = crate::Authority::create(
            &crate::CaSubject {
                common_name: "t".into(),
                organization: None,
            },
            now,
            chrono::Duration::days(30),
        )
        .unwrap();
        let der = ca.certificate_der().to_vec();
        assert_eq!(certificates_of(&certs_only(&[&der]).unwrap()).unwrap(), vec![der]);
        assert!(certificates_of(b"not der").is_err());
    }
    use crate::{Authority, CaSubject};

    #[test]
    fn certs_only_holds_the_certificates_and_parses_back() {
        let now = chrono::Utc::now();
        let ca = Authority::create(
            &CaSubject {
                common_name: "est test".into(),
                organization: None,
            },
            now,
            chrono::Duration::days(30),
        )
        .unwrap();
        let der = certs_only(&[ca.certificate_der()]).unwrap();
        let info = ContentInfo::from_der(&der).unwrap();
        assert_eq!(
            info.content_type,
            cms::cert::x509::der::oid::db::rfc5911::ID_SIGNED_DATA
        );
        assert!(
            der.windows(ca.certificate_der().len())
                .any(|w| w == ca.certificate_der())
        );
        assert!(certs_only(&[b"junk"]).is_err());
    }

    #[test]
    fn the_csr_attributes_are_well_formed_der() {
        let attrs = csr_attributes();
        assert_eq!(attrs[0], 0x30);
        assert_eq!(usize::from(attrs[1]) + 2, attrs.len());
    }
}
