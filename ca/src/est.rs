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
