//! The CAs fleetca holds, as the service uses them: the one that issues, the chain a client
//! presents with its certificate, the roots brokers trust, and every CA whose CRL fleetca
//! signs.
//!
//! A new installation has a root (CA 1) and an issuing intermediate under it (CA 2); one
//! made before hierarchies has a single root that issues, as it always has. Adding,
//! importing and activating CAs, and a root rollover, are in [`super::rotation`]. The set is
//! read at start; a change takes effect when fleetca (every instance) restarts, so an
//! intermediate is trusted everywhere before it issues. CA keys are sealed in the database
//! or held in a PKCS#11 token ([`Keys`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use fleetca_ca::token::Token;
use fleetca_ca::{Authority, CaKey, MasterKey, MemoryKey};
use fleetca_storage::Store;
use fleetca_storage::authority::CaRow;

use crate::domain::{CaRole, CaState};
use crate::support::Error;

/// One CA.
#[derive(Clone)]
pub struct Ca {
    pub id: i32,
    pub role: CaRole,
    pub state: CaState,
    pub parent_id: Option<i32>,
    /// Its certificate (empty while pending).
    pub certificate_pem: String,
    /// It, with its key, when fleetca holds the key and the certificate.
    pub authority: Option<Arc<Authority>>,
    /// Where its own CRL is published: the distribution point of what it signed before its
    /// CRL was sharded, and of the intermediates a root signs.
    pub crl_url: String,
    /// Where its CRL's shards are published (see [`CRL_SHARDS`]; none for a hierarchy's
    /// root, whose CRL covers the CAs it signed and itself).
    pub shard_urls: Vec<String>,
    /// A root's cross-certificates with the root before it (PEM, RFC 4210 §4.4).
    pub cross_pem: Option<String>,
    /// When its root revoked it, and why (RFC 5280's reason name).
    pub revoked: Option<(DateTime<Utc>, String)>,
}

impl Ca {
    /// Its subject's common name as `CN=…` and its notAfter, read from its certificate
    /// (none while it waits for one).
    pub fn facts(&self) -> Option<(String, DateTime<Utc>)> {
        certificate_facts(&self.certificate_pem)
    }

    /// Whether fleetca publishes its CRL: it holds the key and certificates it signed may
    /// still be valid.
    pub fn publishes_crl(&self) -> bool {
        self.authority.is_some()
            && matches!(
                self.state,
                CaState::Active | CaState::Standby | CaState::Retiring | CaState::Revoked
            )
    }

    /// Whether it is trusted: in the bundle, its chain served (neither retired nor revoked,
    /// and it has a certificate).
    pub fn trusted(&self) -> bool {
        !matches!(self.state, CaState::Retired | CaState::Revoked) && !self.certificate_pem.is_empty()
    }
}

impl Ca {
    /// Whether its CRL names its distribution point: every CA's but a hierarchy's root —
    /// standing by, or retiring after a rollover — whose CRL covers the CAs it signed and
    /// itself (what `openssl verify -crl_check_all` asks of a chain's last certificate, which
    /// names no distribution point). An installation's single CA from before hierarchies
    /// (path length 0) signs leaves that name its CRL, and keeps the scope.
    pub fn scoped_crl(&self) -> bool {
        let hierarchy_root =
            self.role == CaRole::Root && self.authority.as_ref().is_some_and(|a| a.may_certify_intermediates());
        !hierarchy_root
    }

    /// The distribution points of its CRL's shards (none when its CRL is not sharded: a
    /// hierarchy's root).
    pub fn crl_shards(&self) -> &[String] {
        if self.scoped_crl() { &self.shard_urls } else { &[] }
    }
}

/// How many shards the CRL of a CA that signs certificates is split into. Each certificate
/// names one shard as its distribution point (chosen in turn at issuance, so shards fill
/// evenly whatever the certificates' validity), and a revocation re-signs only that shard:
/// its cost follows the shard's size, a sixteenth of the CA's revocations. Certificates
/// issued before shards name the CA's own CRL, which still lists theirs.
pub const CRL_SHARDS: u16 = 16;

/// The distribution points of CA `id`'s CRL shards: `/crl/{id}/{shard}.der`.
pub fn shard_urls(public_url: &str, id: i32) -> Vec<String> {
    (0..CRL_SHARDS)
        .map(|shard| format!("{public_url}/crl/{id}/{shard}.der"))
        .collect()
}

/// A CA certificate's subject common name as `CN=…` and its notAfter (none for an empty or
/// unreadable PEM).
pub fn certificate_facts(certificate_pem: &str) -> Option<(String, DateTime<Utc>)> {
    let der = pem::parse(certificate_pem.trim()).ok()?.into_contents();
    let (_, not_after) = fleetca_ca::validity(&der)?;
    Some((format!("CN={}", fleetca_ca::common_name(certificate_pem)?), not_after))
}

/// The distribution point of CA `id`'s CRL: the first CA keeps `/crl.der`, later ones
/// `/crl/{id}.der`.
pub fn crl_url(public_url: &str, id: i32) -> String {
    if id == 1 {
        format!("{public_url}/crl.der")
    } else {
        format!("{public_url}/crl/{id}.der")
    }
}

/// Every CA, and which one issues.
pub struct Authorities {
    cas: Vec<Ca>,
    /// The one that issues (also in `cas`), and its key and certificate.
    issuing: Ca,
    issuer: Arc<Authority>,
}

impl Authorities {
    /// Reads and opens every CA. Fails when no CA is active or the active one's key cannot
    /// be opened.
    pub async fn load(store: &Store, keys: &Keys, public_url: &str) -> Result<Self, String> {
        let rows = store.authorities().await.map_err(|e| e.to_string())?;
        Self::from_rows(rows, keys, public_url)
    }

    /// As [`Authorities::load`] for the admin's changes: a CA whose key does not open now (a
    /// token away, a key deleted) is listed without it rather than failing the whole set,
    /// and no active CA is needed. The issuing CA is then the active one, as stored.
    pub async fn load_lenient(store: &Store, keys: &Keys, public_url: &str) -> Result<Self, Error> {
        let rows = store.authorities().await?;
        let cas = read(rows, keys, public_url, false).map_err(Error::Internal)?;
        let issuing = cas
            .iter()
            .find(|c| c.state == CaState::Active)
            .cloned()
            .ok_or_else(|| Error::Internal("no active CA is stored".into()))?;
        let issuer = issuing
            .authority
            .clone()
            .ok_or_else(|| Error::Conflict("fleetca cannot open the issuing CA's key now; retry".into()))?;
        Ok(Self { cas, issuing, issuer })
    }

    fn from_rows(rows: Vec<CaRow>, keys: &Keys, public_url: &str) -> Result<Self, String> {
        let cas = read(rows, keys, public_url, true)?;
        let (issuing, issuer) = cas
            .iter()
            .filter(|c| c.state == CaState::Active)
            .find_map(|c| Some((c.clone(), c.authority.clone()?)))
            .ok_or("no active CA whose key fleetca holds")?;
        Ok(Self { cas, issuing, issuer })
    }

    /// A set of one CA, the first (for tests and the test kit).
    pub fn single(ca: Arc<Authority>, public_url: &str) -> Self {
        let only = Ca {
            id: 1,
            role: CaRole::Root,
            state: CaState::Active,
            parent_id: None,
            certificate_pem: ca.certificate_pem().to_owned(),
            authority: Some(ca.clone()),
            crl_url: crl_url(public_url, 1),
            shard_urls: shard_urls(public_url, 1),
            cross_pem: None,
            revoked: None,
        };
        Self {
            cas: vec![only.clone()],
            issuing: only,
            issuer: ca,
        }
    }

    /// Every CA, oldest first.
    pub fn all(&self) -> &[Ca] {
        &self.cas
    }

    /// The CA that issues new certificates.
    pub fn issuing(&self) -> &Ca {
        &self.issuing
    }

    /// The first CA (a new installation's root; the single CA of one made before), whose
    /// certificate clients have trusted longest.
    pub fn first(&self) -> Arc<Authority> {
        // CA 1 while it is in use; after it retired (a rollover), the newest root fleetca
        // holds; with the operator's root alone, the issuing CA.
        let live_root = |c: &&Ca| c.role == CaRole::Root && c.state != CaState::Retired;
        self.cas
            .iter()
            .find(|c| c.id == 1 && c.state != CaState::Retired)
            .and_then(|c| c.authority.clone())
            .or_else(|| {
                self.cas
                    .iter()
                    .rev()
                    .filter(live_root)
                    .find_map(|c| c.authority.clone())
            })
            .unwrap_or_else(|| self.issuer.clone())
    }

    /// The issuing CA's key and certificate.
    pub fn issuer(&self) -> Arc<Authority> {
        self.issuer.clone()
    }

    fn by_id(&self, id: i32) -> Option<&Ca> {
        self.cas.iter().find(|c| c.id == id)
    }

    /// The CAs from `ca` up to its root, `ca` first.
    pub(crate) fn path<'a>(&'a self, ca: &'a Ca) -> Vec<&'a Ca> {
        let mut path = vec![ca];
        let mut at = ca;
        while let Some(parent) = at.parent_id.and_then(|p| self.by_id(p)) {
            if path.iter().any(|c| c.id == parent.id) {
                break;
            }
            path.push(parent);
            at = parent;
        }
        path
    }

    /// The intermediates between a certificate of the issuing CA and its root (PEM,
    /// nearest first; empty when the root issues): what a client presents after its own
    /// certificate.
    pub fn chain_pem(&self) -> String {
        let path = self.path(self.issuing());
        let intermediates = path
            .iter()
            .filter(|c| c.role == CaRole::Intermediate)
            .map(|c| c.certificate_pem.clone());
        // During a root rollover: the new root certified by the old one ("new with old"), so
        // a peer that trusts only the old root verifies this chain too.
        let bridge = path
            .last()
            .filter(|root| root.role == CaRole::Root && self.live_roots() > 1)
            .map(|root| {
                self.crosses(root)
                    .filter(|c| fleetca_ca::same_subject(c, &root.certificate_pem))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        intermediates.chain(bridge).collect()
    }

    /// How many roots are not retired.
    fn live_roots(&self) -> usize {
        self.cas
            .iter()
            .filter(|c| c.role == CaRole::Root && c.state != CaState::Retired && !c.certificate_pem.is_empty())
            .count()
    }

    /// A root's cross-certificates (PEM each) whose two roots — the one named as subject and
    /// the one named as issuer — are both still in use: one with a retired root would bring
    /// that root's key back into trust.
    fn crosses<'a>(&'a self, root: &'a Ca) -> impl Iterator<Item = String> + 'a {
        let live: Vec<&Ca> = self
            .cas
            .iter()
            .filter(|c| c.role == CaRole::Root && c.state != CaState::Retired && !c.certificate_pem.is_empty())
            .collect();
        root.cross_pem
            .as_deref()
            .map(|text| pem::parse_many(text).unwrap_or_default())
            .unwrap_or_default()
            .into_iter()
            .map(|p| lf_pem(&p))
            .filter(move |cross| {
                let subject = live
                    .iter()
                    .find(|c| fleetca_ca::same_subject(cross, &c.certificate_pem));
                let issuer = live.iter().find(|c| fleetca_ca::issued_by(cross, &c.certificate_pem));
                matches!((subject, issuer), (Some(s), Some(i)) if s.id != i.id)
            })
    }

    /// Every cross-certificate between roots that are both still in use.
    fn live_crosses(&self) -> Vec<String> {
        if self.live_roots() < 2 {
            return Vec::new();
        }
        self.cas
            .iter()
            .filter(|c| c.role == CaRole::Root && c.state != CaState::Retired)
            .flat_map(|c| self.crosses(c).collect::<Vec<_>>())
            .collect()
    }

    /// Every root that is not retired (PEM, oldest first): what a client trusts, to verify
    /// brokers and fleetca whichever CA their certificates come from. With one root, its
    /// certificate; during a move to an operator's root, both.
    pub fn roots_pem(&self) -> String {
        self.cas
            .iter()
            .filter(|c| c.role == CaRole::Root && c.state != CaState::Retired && !c.certificate_pem.is_empty())
            .map(|c| c.certificate_pem.as_str())
            .collect()
    }

    /// The trust bundle a broker loads as its `cafile` (and `/ca.pem` serves): every CA
    /// certificate that is not retired, roots first, oldest first. Certificates of the old
    /// CA and of the new one both verify against it, and so does a client that presents only
    /// its own certificate (the intermediate is in the bundle).
    pub fn bundle_pem(&self) -> String {
        let live = |c: &&Ca| c.trusted();
        let roots = self.cas.iter().filter(live).filter(|c| c.role == CaRole::Root);
        let intermediates = self.cas.iter().filter(live).filter(|c| c.role == CaRole::Intermediate);
        let mut bundle: String = roots.map(|c| c.certificate_pem.as_str()).collect();
        bundle.extend(self.live_crosses());
        bundle.extend(intermediates.map(|c| c.certificate_pem.clone()));
        bundle
    }

    /// Every CA certificate a client may need (roots and intermediates, not retired), DER.
    pub fn certificates_der(&self) -> Vec<Vec<u8>> {
        self.cas
            .iter()
            .filter(|c| c.trusted())
            .map(|c| c.certificate_pem.clone())
            .chain(self.live_crosses())
            .filter_map(|text| pem::parse(text.trim()).ok())
            .map(pem::Pem::into_contents)
            .collect()
    }

    /// The CAs whose expiry is announced (`ca.expiring`) and exported as a metric: every one
    /// with a certificate that is not retired, fleetca's own and the operator's roots.
    pub fn expiries(&self) -> Vec<fleetca_storage::authority::CaExpiry> {
        self.cas
            .iter()
            .filter(|c| c.trusted())
            .filter_map(|c| {
                let (subject, not_after) = c.facts()?;
                Some(fleetca_storage::authority::CaExpiry {
                    id: c.id,
                    not_after,
                    data: serde_json::json!({
                        "target": {"kind": "ca", "id": c.id.to_string()},
                        "ca": c.id,
                        "role": c.role.as_str(),
                        "state": c.state.as_str(),
                        "subject": subject,
                        "issuing": c.id == self.issuing.id,
                    }),
                })
            })
            .collect()
    }

    /// The CAs whose CRLs fleetca signs.
    pub fn crl_signers(&self) -> impl Iterator<Item = &Ca> {
        self.cas.iter().filter(|c| c.publishes_crl())
    }

    /// The fingerprint of a certificate (PEM, or the bare base64 EMQX sends) that one of
    /// fleetca's CAs signed.
    pub fn check_issued(&self, pem: &str) -> Option<String> {
        self.signers()
            .find_map(|ca| ca.check_issued(pem))
            .map(|f| f.fingerprint)
    }

    /// As [`Authorities::check_issued`], for DER.
    pub fn check_issued_der(&self, der: &[u8]) -> Option<String> {
        self.signers()
            .find_map(|ca| ca.check_issued_der(der))
            .map(|f| f.fingerprint)
    }

    /// The issuing CA first, then the others that may have signed a valid certificate.
    fn signers(&self) -> impl Iterator<Item = &Authority> {
        std::iter::once(self.issuing())
            .chain(self.cas.iter().filter(|c| c.id != self.issuing().id))
            .filter(|c| c.publishes_crl() && c.state != CaState::Revoked)
            .filter_map(|c| c.authority.as_deref())
    }
}

/// The stored CAs, each with its key when fleetca holds it. `strict`: a row that does not
/// read or a key that does not open fails the whole set (at start); otherwise the row is
/// skipped, or the CA listed without its key (an admin's change while a token is away).
fn read(rows: Vec<CaRow>, keys: &Keys, public_url: &str, strict: bool) -> Result<Vec<Ca>, String> {
    let mut cas = Vec::with_capacity(rows.len());
    for row in rows {
        let (role, state) = match (CaRole::parse(&row.role), CaState::parse(&row.state)) {
            (Some(role), Some(state)) => (role, state),
            _ if strict => {
                return Err(format!(
                    "CA {}: unknown role {:?} or state {:?}",
                    row.id, row.role, row.state
                ));
            }
            _ => continue,
        };
        let authority = if state == CaState::Retired || row.certificate_pem.is_empty() {
            None
        } else {
            let opened = keys.open(&row).and_then(|key| {
                key.map(|k| k.certified(&row.certificate_pem))
                    .transpose()
                    .map_err(|e| e.to_string())
            });
            match opened {
                Ok(authority) => authority.map(Arc::new),
                // A revoked CA's key may be gone on purpose (destroyed after a compromise):
                // then its CRL is not published, and nothing else needs it.
                Err(e) if strict && state != CaState::Revoked => return Err(format!("CA {}: {e}", row.id)),
                Err(_) => None,
            }
        };
        cas.push(Ca {
            id: row.id,
            role,
            state,
            parent_id: row.parent_id,
            certificate_pem: row.certificate_pem,
            authority,
            crl_url: crl_url(public_url, row.id),
            shard_urls: shard_urls(public_url, row.id),
            cross_pem: row.cross_pem,
            revoked: row.revoked_at.map(|at| (at, row.revocation_reason.unwrap_or_default())),
        });
    }
    Ok(cas)
}

/// Where CA keys are kept: sealed under the master key in the database, or in the PKCS#11
/// token the settings name.
#[derive(Clone)]
pub struct Keys {
    pub master: Arc<MasterKey>,
    pub token: Option<Arc<Token>>,
    /// The algorithm of keys made in the database (`ca_key_algorithm`; a token's are P-256).
    pub algorithm: fleetca_ca::CaAlgorithm,
}

/// Where a new CA key is made.
#[derive(Clone, Copy)]
pub enum NewKey<'a> {
    /// In memory (P-256), sealed under the master key in the database.
    Sealed,
    /// In the PKCS#11 token, under this label (a key pair already there with the label is
    /// used: the operator's own).
    Token(&'a str),
}

/// A CA key, opened or made.
pub struct OpenKey {
    pub(crate) key: Box<dyn CaKey>,
    /// Sealed under the master key (empty for a token's).
    pub(crate) sealed: Vec<u8>,
    /// The token's label and the key's, for a token's.
    pub(crate) in_token: Option<(String, String)>,
}

impl OpenKey {
    /// The CA of this key and its certificate.
    pub fn certified(self, certificate_pem: &str) -> Result<Authority, fleetca_ca::CaError> {
        Authority::with_key(certificate_pem, self.key)
    }
}

impl Keys {
    /// The key of a stored CA: from its token, or unsealed; `None` when fleetca does not
    /// hold it (an operator's root).
    pub fn open(&self, row: &CaRow) -> Result<Option<OpenKey>, String> {
        if let Some(label) = &row.key_label {
            let wanted = row.key_token.as_deref().unwrap_or_default();
            let token = self.token.as_ref().filter(|t| t.label() == wanted).ok_or_else(|| {
                format!(
                    "its key is in the PKCS#11 token {wanted:?} under the label {label:?}: set [pkcs11] to that token (module, token, and its PIN)"
                )
            })?;
            let (key, _) = token.key(label, false).map_err(|e| e.to_string())?;
            return Ok(Some(OpenKey {
                key: Box::new(key),
                sealed: Vec::new(),
                in_token: Some((wanted.to_owned(), label.clone())),
            }));
        }
        if row.sealed_key.is_empty() {
            return Ok(None);
        }
        let key = MemoryKey::unseal(&row.sealed_key, &self.master).map_err(|e| e.to_string())?;
        Ok(Some(OpenKey {
            key: Box::new(key),
            sealed: row.sealed_key.clone(),
            in_token: None,
        }))
    }

    /// A new CA key (P-256): sealed in the database, or in the token. Returns it and
    /// whether it was made now (false: a key pair already in the token under the label).
    /// A label another CA's key has in the token is refused: each CA its own key.
    pub async fn make_for(&self, store: &Store, new: NewKey<'_>) -> Result<(OpenKey, bool), Error> {
        if let NewKey::Token(label) = new {
            valid_label(label)?;
        }
        if let (NewKey::Token(label), Some(token)) = (new, &self.token) {
            let rows = store.authorities().await?;
            if let Some(taken) = rows
                .iter()
                .find(|r| r.key_label.as_deref() == Some(label) && r.key_token.as_deref() == Some(token.label()))
            {
                return Err(Error::Conflict(format!(
                    "CA {}'s key has the label {label:?} in this token; give the new CA's key another label",
                    taken.id
                )));
            }
        }
        if let NewKey::Sealed = new {
            // An RSA key takes a second or more to make: off the async workers.
            let keys = self.clone();
            return crate::support::blocking(move || keys.make(NewKey::Sealed)).await?;
        }
        self.make(new)
    }

    fn make(&self, new: NewKey<'_>) -> Result<(OpenKey, bool), Error> {
        match new {
            NewKey::Sealed => {
                let key = MemoryKey::generate(self.algorithm)?;
                let sealed = key.seal(&self.master)?;
                Ok((
                    OpenKey {
                        key: Box::new(key),
                        sealed,
                        in_token: None,
                    },
                    true,
                ))
            }
            NewKey::Token(label) => {
                let token = self.token.as_ref().ok_or_else(|| {
                    Error::Conflict(
                        "no PKCS#11 token is configured: add [pkcs11] (module, token, pin_file or FLEETCA_PKCS11_PIN) to the settings"
                            .into(),
                    )
                })?;
                valid_label(label)?;
                let (key, made) = token.key(label, true).map_err(|e| match e {
                    fleetca_ca::CaError::InvalidKey(why) => Error::Conflict(why),
                    other => other.into(),
                })?;
                Ok((
                    OpenKey {
                        key: Box::new(key),
                        sealed: Vec::new(),
                        in_token: Some((token.label().to_owned(), label.to_owned())),
                    },
                    made,
                ))
            }
        }
    }
}

/// A key label: 1 to 64 letters, digits, '.', '_' or '-'.
fn valid_label(label: &str) -> Result<(), Error> {
    let ok = !label.is_empty()
        && label.len() <= 64
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "token_key",
            "a key label is 1 to 64 letters, digits, '.', '_' or '-'",
        ))
    }
}

/// PEM with LF line endings, as openssl writes it and every other PEM of fleetca's.
pub(crate) fn lf_pem(p: &pem::Pem) -> String {
    pem::encode_config(p, pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF))
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};
    use fleetca_ca::{Authority, CaSubject, MasterKey};
    use fleetca_storage::authority::CaRow;

    use super::*;

    fn row(id: i32, role: &str, state: &str, parent_id: Option<i32>, ca: &Authority, master: &MasterKey) -> CaRow {
        CaRow {
            id,
            certificate_pem: ca.certificate_pem().to_owned(),
            sealed_key: ca.seal_key(master).unwrap(),
            created_at: Utc::now(),
            role: role.into(),
            state: state.into(),
            parent_id,
            csr_pem: None,
            key_token: None,
            key_label: None,
            expiry_warned: None,
            cross_pem: None,
            revoked_at: None,
            revocation_reason: None,
        }
    }

    fn keys(master: &MasterKey) -> Keys {
        Keys {
            master: Arc::new(MasterKey::parse(&master.to_hex()).unwrap()),
            token: None,
            algorithm: fleetca_ca::CaAlgorithm::P256,
        }
    }

    fn subject(cn: &str) -> CaSubject {
        CaSubject {
            common_name: cn.into(),
            organization: None,
        }
    }

    /// A revoked intermediate leaves the bundle and is no CA fleetca checks issuance
    /// against, its CRL stays published, and its root is kept from retiring until the
    /// intermediate would have expired (its root's CRL must list it until then).
    #[test]
    fn a_revoked_intermediate_is_untrusted_and_keeps_its_root_published() {
        let master = MasterKey::generate().unwrap();
        let now = Utc::now();
        let root = Authority::create_root(&subject("root"), now, Duration::days(3650)).unwrap();
        let intermediate = |cn: &str| {
            let key = fleetca_ca::MemoryKey::generate_p256().unwrap();
            let public = fleetca_ca::PublicKey::of_ca_key(&key).unwrap();
            let profile = fleetca_ca::IntermediateProfile {
                subject: &subject(cn),
                validity: Duration::days(365),
                crl_url: "http://x/root.crl",
            };
            Authority::with_key(&root.certify_intermediate(&profile, &public, now).unwrap().pem, key).unwrap()
        };
        let (old, new) = (intermediate("old"), intermediate("new"));
        let mut revoked = row(2, "intermediate", "revoked", Some(1), &old, &master);
        revoked.revoked_at = Some(now);
        revoked.revocation_reason = Some("keyCompromise".into());
        let rows = vec![
            row(1, "root", "standby", None, &root, &master),
            revoked,
            row(3, "intermediate", "active", Some(1), &new, &master),
        ];
        assert_eq!(crate::pki::rotation::roots_listing_revoked(&rows, now), vec![1]);
        assert!(
            crate::pki::rotation::roots_listing_revoked(&rows, now + Duration::days(366)).is_empty(),
            "once the intermediate would have expired, its root may retire"
        );
        let cas = Authorities::from_rows(rows, &keys(&master), "https://ca.example").unwrap();
        let bundle = cas.bundle_pem();
        assert!(
            !bundle.contains(old.certificate_pem().trim()),
            "the revoked CA is trusted"
        );
        assert_eq!(
            bundle.matches("BEGIN CERTIFICATE").count(),
            2,
            "the root and the new CA"
        );
        assert!(cas.crl_signers().any(|c| c.id == 2), "its CRL lists what it signed");
        let leaf = old
            .issue_client(
                &fleetca_ca::ClientProfile {
                    common_name: "x",
                    organization: "acme",
                    validity: Duration::days(1),
                    crl_url: "http://x/old.crl",
                },
                &fleetca_ca::generate_p256().unwrap().public_key,
                now,
            )
            .unwrap();
        assert!(
            cas.check_issued(&leaf.pem).is_none(),
            "a revoked CA's certificate passes as issued"
        );
    }

    /// After a second rollover, only the cross-certificates between roots still in use are
    /// served: the retired first root's key never comes back into trust through one.
    #[test]
    fn cross_certificates_are_served_only_while_both_their_roots_are_in_use() {
        let master = MasterKey::generate().unwrap();
        let now = Utc::now();
        let roots: Vec<Authority> = ["root A", "root B", "root C"]
            .iter()
            .map(|cn| Authority::create_root(&subject(cn), now, Duration::days(3650)).unwrap())
            .collect();
        let cross = |old: &Authority, new: &Authority| {
            let forward = old.cross_certify(new, "http://x/old.crl", now).unwrap().pem;
            let backward = new.cross_certify(old, "http://x/new.crl", now).unwrap().pem;
            format!("{forward}{backward}")
        };
        let key = fleetca_ca::MemoryKey::generate_p256().unwrap();
        let public = fleetca_ca::PublicKey::of_ca_key(&key).unwrap();
        let profile = fleetca_ca::IntermediateProfile {
            subject: &subject("issuing under C"),
            validity: Duration::days(365),
            crl_url: "http://x/c.crl",
        };
        let issuing =
            Authority::with_key(&roots[2].certify_intermediate(&profile, &public, now).unwrap().pem, key).unwrap();
        let mut b = row(2, "root", "retiring", None, &roots[1], &master);
        b.cross_pem = Some(cross(&roots[0], &roots[1]));
        let mut c = row(3, "root", "standby", None, &roots[2], &master);
        c.cross_pem = Some(cross(&roots[1], &roots[2]));
        let mut a = row(1, "root", "retired", None, &roots[0], &master);
        a.sealed_key = Vec::new();
        let rows = vec![a, b, c, row(4, "intermediate", "active", Some(3), &issuing, &master)];
        let cas = Authorities::from_rows(rows, &keys(&master), "https://ca.example").unwrap();
        let bundle = cas.bundle_pem();
        // Roots B and C, their two cross-certificates, the intermediate: not A's.
        assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 5, "{bundle}");
        assert_eq!(cas.certificates_der().len(), 5);
        // The chain: the intermediate, and C certified by B (B's clients verify it).
        let chain = cas.chain_pem();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2, "{chain}");
        assert!(
            !cas.all()[1].scoped_crl() && !cas.all()[2].scoped_crl(),
            "hierarchy roots' CRLs cover themselves"
        );
    }

    #[test]
    fn an_installation_made_before_several_cas_issues_from_its_one_ca_as_before() {
        let master = MasterKey::generate().unwrap();
        let old = Authority::create(&subject("fleetca root CA"), Utc::now(), Duration::days(3650)).unwrap();
        let cas = Authorities::from_rows(
            vec![row(1, "root", "active", None, &old, &master)],
            &keys(&master),
            "https://ca.example",
        )
        .unwrap();
        assert_eq!(cas.issuing().id, 1);
        assert_eq!(
            cas.issuing().crl_url,
            "https://ca.example/crl.der",
            "the distribution point it always had"
        );
        assert!(
            cas.issuing().scoped_crl(),
            "its CRL keeps its Issuing Distribution Point"
        );
        assert_eq!(cas.chain_pem(), "", "no intermediate to present");
        assert_eq!(cas.roots_pem(), old.certificate_pem());
        assert_eq!(cas.bundle_pem(), old.certificate_pem());
        assert!(
            !old.may_certify_intermediates(),
            "path length 0: an intermediate needs another root"
        );
    }

    #[test]
    fn a_hierarchy_issues_from_its_active_intermediate_and_trusts_every_live_root() {
        let master = MasterKey::generate().unwrap();
        let now = Utc::now();
        let root = Authority::create_root(&subject("fleetca root CA"), now, Duration::days(7300)).unwrap();
        let key = fleetca_ca::MemoryKey::generate_p256().unwrap();
        let public = fleetca_ca::PublicKey::from_sec1(fleetca_ca::CaKey::public_key_raw(&key)).unwrap();
        let profile = fleetca_ca::IntermediateProfile {
            subject: &subject("fleetca issuing CA 1"),
            validity: Duration::days(7300),
            crl_url: "https://ca.example/crl.der",
        };
        let made = root.certify_intermediate(&profile, &public, now).unwrap();
        let issuing = Authority::with_key(&made.pem, key).unwrap();
        let rows = vec![
            row(1, "root", "standby", None, &root, &master),
            row(2, "intermediate", "active", Some(1), &issuing, &master),
        ];
        let cas = Authorities::from_rows(rows, &keys(&master), "https://ca.example").unwrap();
        assert_eq!(cas.issuing().id, 2);
        assert_eq!(cas.issuing().crl_url, "https://ca.example/crl/2.der");
        assert_eq!(cas.chain_pem(), made.pem);
        assert_eq!(cas.roots_pem(), root.certificate_pem());
        assert_eq!(cas.bundle_pem(), format!("{}{}", root.certificate_pem(), made.pem));
        assert!(!cas.all()[0].scoped_crl(), "the root's CRL covers itself");
        assert!(cas.all()[1].scoped_crl());
        assert_eq!(cas.crl_signers().count(), 2);
        assert_eq!(cas.first().fingerprint(), root.fingerprint());
        // A certificate of either CA is recognised; one of another CA is not.
        let leaf = issuing
            .issue_client(
                &fleetca_ca::ClientProfile {
                    common_name: "svc",
                    organization: "acme",
                    validity: Duration::days(30),
                    crl_url: "https://ca.example/crl/2.der",
                },
                &fleetca_ca::generate_p256().unwrap().public_key,
                now,
            )
            .unwrap();
        assert_eq!(cas.check_issued(&leaf.pem), Some(leaf.fingerprint.clone()));
        let stranger = Authority::create(&subject("another CA"), now, Duration::days(30)).unwrap();
        let foreign = stranger
            .issue_client(
                &fleetca_ca::ClientProfile {
                    common_name: "svc",
                    organization: "acme",
                    validity: Duration::days(30),
                    crl_url: "https://x/crl.der",
                },
                &fleetca_ca::generate_p256().unwrap().public_key,
                now,
            )
            .unwrap();
        assert_eq!(cas.check_issued(&foreign.pem), None);
        // Without an active CA whose key fleetca holds, fleetca does not start.
        let idle = vec![row(1, "root", "standby", None, &root, &master)];
        assert!(Authorities::from_rows(idle, &keys(&master), "https://ca.example").is_err());
    }
}
