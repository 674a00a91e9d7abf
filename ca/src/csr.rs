//! PKCS#10 certificate signing requests: the device keeps its key and sends only a CSR.

use x509_parser::prelude::{FromDer, X509CertificationRequest};

use crate::{CaError, PublicKey};

/// Parses a PEM CSR, checks that its key is one fleetca certifies
/// ([`crate::ACCEPTED_KEYS`]) and that it is signed by that key,
/// and returns the key to certify. The subject the CSR asks for is ignored: fleetca sets
/// the subject from the API key the certificate belongs to.
pub fn parse_csr_pem(text: &str) -> Result<PublicKey, CaError> {
    let bad = |m: &str| CaError::InvalidCsr(m.to_owned());
    let block = pem::parse(text.trim())
        .map_err(|_| bad("csr_pem is not a PEM block; expected -----BEGIN CERTIFICATE REQUEST-----"))?;
    if !matches!(block.tag(), "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST") {
        return Err(bad("csr_pem must be a CERTIFICATE REQUEST PEM block"));
    }
    Ok(parse_csr_der(block.contents())?.public_key)
}

/// What a verified CSR asks for.
#[derive(Clone, Debug)]
pub struct CsrFacts {
    /// The key to certify.
    pub public_key: PublicKey,
    /// The subject's common name, if it has one.
    pub common_name: Option<String>,
}

/// Parses a DER PKCS#10 request (as EST sends it), checks that its key is one fleetca
/// certifies ([`crate::ACCEPTED_KEYS`]) and that it is signed by that key.
pub fn parse_csr_der(der: &[u8]) -> Result<CsrFacts, CaError> {
    let bad = |m: &str| CaError::InvalidCsr(m.to_owned());
    let (rest, csr) = X509CertificationRequest::from_der(der).map_err(|_| bad("not a valid PKCS#10 request"))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the request"));
    }
    let public_key = PublicKey::from_spki(&csr.certification_request_info.subject_pki)?;
    csr.verify_signature()
        .map_err(|_| bad("the CSR's signature does not verify with its own key"))?;
    let common_name = csr
        .certification_request_info
        .subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    Ok(CsrFacts {
        public_key,
        common_name,
    })
}
