//! Changing the CAs: an intermediate signed by fleetca's own root ([`certify_new`]) or by
//! the operator's root from a CSR ([`add`], then [`import`]), which waits, trusted and
//! publishing its CRL, until [`activate`] makes it the issuing CA and the one before it
//! retires; a root rollover with its cross-certificates ([`rollover`]); and [`CaAdmin`],
//! the same for the admin API. The CLI and the API call these; each change takes effect when
//! the instances restart.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use fleetca_ca::{Authority, CaSubject};
use fleetca_storage::authority::{CaRow, NewCa, Parent};
use fleetca_storage::{NewAudit, Store};

use super::authorities::{Authorities, Keys, NewKey, crl_url, lf_pem};
use crate::domain::{CaRole, CaState};
use crate::support::Error;

/// What `fleetca ca intermediate --csr-out` made: the pending CA's id and its CSR (PEM).
pub struct Requested {
    pub id: i32,
    pub csr_pem: String,
}

/// Makes an intermediate's key (sealed in the database, or in the token) and a CSR for the
/// operator's root to sign; the CA waits, pending, for [`import`].
pub async fn add(
    store: &Store,
    keys: &Keys,
    new_key: NewKey<'_>,
    subject: &CaSubject,
    audit: impl FnOnce(&str) -> NewAudit,
    now: DateTime<Utc>,
) -> Result<Requested, Error> {
    let (key, _) = keys.make_for(store, new_key).await?;
    let csr = fleetca_ca::intermediate_csr(&*key.key, subject)?;
    let csr_pem = lf_pem(&pem::Pem::new("CERTIFICATE REQUEST", csr));
    let new = NewCa {
        role: CaRole::Intermediate.as_str().into(),
        state: CaState::Pending.as_str().into(),
        parent_id: None,
        certificate_pem: String::new(),
        sealed_key: key.sealed,
        csr_pem: Some(csr_pem.clone()),
        in_token: key.in_token,
        cross_pem: None,
    };
    let id = store.add_authority(new, &[audit(&subject.common_name)], now).await?;
    Ok(Requested { id, csr_pem })
}

/// What [`import`] activated.
pub struct Imported {
    pub id: i32,
    pub subject: String,
    pub not_after: DateTime<Utc>,
    /// Whether the root was new to fleetca (stored beside the others).
    pub new_root: bool,
}

/// Gives the pending intermediate whose key `cert_pem` certifies, signed by `root_pem`, its
/// certificate: the chain, the constraints and the key are checked (see
/// [`fleetca_ca::Authority::import_intermediate`]); the root is stored when fleetca does not
/// know it. The intermediate stands by (trusted, publishing its CRL) until [`activate`].
pub async fn import(
    store: &Store,
    keys: &Keys,
    only: Option<i32>,
    cert_pem: &str,
    root_pem: &str,
    audit: impl FnOnce(&Authority) -> NewAudit,
    now: DateTime<Utc>,
) -> Result<Imported, Error> {
    let rows = store.authorities().await?;
    let pending: Vec<&CaRow> = rows
        .iter()
        .filter(|r| r.state == CaState::Pending.as_str() && only.is_none_or(|id| r.id == id))
        .collect();
    if pending.is_empty() {
        return Err(Error::Conflict(
            "No intermediate is waiting for its certificate; make one first with `fleetca ca intermediate --csr-out FILE`."
                .into(),
        ));
    }
    let mut why = String::new();
    for row in pending {
        let Some(key) = keys.open(row).map_err(Error::Conflict)? else {
            continue;
        };
        let ca = match Authority::import_intermediate(cert_pem, root_pem, key.key, now) {
            Ok(ca) => ca,
            Err(e) => {
                why = e.to_string();
                continue;
            }
        };
        let root = pem::parse(root_pem.trim()).map_err(|e| Error::invalid("root_pem", e.to_string()))?;
        let known = rows
            .iter()
            .find(|r| pem::parse(r.certificate_pem.trim()).is_ok_and(|p| p.contents() == root.contents()));
        let parent = match known {
            Some(r) => Parent::Known(r.id),
            None => Parent::New(NewCa {
                role: CaRole::Root.as_str().into(),
                state: CaState::Standby.as_str().into(),
                parent_id: None,
                certificate_pem: lf_pem(&root),
                sealed_key: Vec::new(),
                csr_pem: None,
                in_token: None,
                cross_pem: None,
            }),
        };
        let new_root = known.is_none();
        let record = audit(&ca);
        store
            .import_intermediate(row.id, ca.certificate_pem().to_owned(), parent, &[record], now)
            .await?;
        return Ok(Imported {
            id: row.id,
            subject: ca.subject().to_owned(),
            not_after: ca.not_after(),
            new_root,
        });
    }
    Err(Error::invalid("certificate_pem", why))
}

/// Makes a new intermediate signed by fleetca's own root (a root whose key fleetca holds
/// and whose path length allows it; a single CA made before hierarchies cannot): its key is
/// sealed in the database, and it stands by until [`activate`]. Returns its id.
pub async fn certify_new(
    store: &Store,
    keys: &Keys,
    new_key: NewKey<'_>,
    subject: &CaSubject,
    public_url: &str,
    audit: impl FnOnce(serde_json::Value) -> NewAudit,
    now: DateTime<Utc>,
) -> Result<i32, Error> {
    let cas = Authorities::load_lenient(store, keys, public_url).await?;
    // The newest root that may (after a rollover, the new one).
    let Some(root) = cas.all().iter().rev().find(|c| {
        c.role == CaRole::Root
            && matches!(c.state, CaState::Standby | CaState::Active)
            && c.authority.as_ref().is_some_and(|a| a.may_certify_intermediates())
    }) else {
        return Err(Error::Conflict(
            "fleetca holds no root in use that may certify an intermediate (an installation made before hierarchies has a single CA with path length 0; a retiring root certifies no more): use `fleetca ca intermediate --csr-out FILE` and your own root, or fleetca ca root".into(),
        ));
    };
    let root_ca = root
        .authority
        .clone()
        .ok_or_else(|| Error::Conflict(format!("fleetca cannot open the key of root {}", root.id)))?;
    if root_ca.not_after() < now + chrono::Duration::days(1) {
        return Err(Error::Conflict(format!(
            "root {} ends at {}: an intermediate under it could not be activated; roll the root over first (fleetca ca root)",
            root.id,
            root_ca.not_after()
        )));
    }
    let profile = fleetca_ca::IntermediateProfile {
        subject,
        validity: root_ca.not_after() - now,
        crl_url: &root.crl_url,
    };
    let (key, _) = keys.make_for(store, new_key).await?;
    let public = fleetca_ca::PublicKey::of_ca_key(key.key.as_ref())?;
    let certified = root_ca.certify_intermediate(&profile, &public, now)?;
    let new = NewCa {
        role: CaRole::Intermediate.as_str().into(),
        state: CaState::Standby.as_str().into(),
        parent_id: Some(root.id),
        certificate_pem: certified.pem.clone(),
        sealed_key: key.sealed,
        csr_pem: None,
        in_token: key.in_token,
        cross_pem: None,
    };
    // What the audit record says of it; the caller adds who asked and how.
    let record = audit(serde_json::json!({
        "common_name": subject.common_name,
        "signed_by": root_ca.subject(),
        "fingerprint": certified.fingerprint,
    }));
    Ok(store.add_authority(new, &[record], now).await?)
}

/// The root a rollover makes.
pub struct NewRoot<'a> {
    pub subject: &'a CaSubject,
    pub validity: chrono::Duration,
    /// Where its key is made: sealed in the database, or in the token.
    pub key: NewKey<'a>,
}

/// What [`rollover`] made.
pub struct RolledOver {
    pub id: i32,
    /// Whether the old root could certify the new one ("new with old"): not when its path
    /// length is below 2 (a single CA from before hierarchies, a root from before rollovers).
    pub new_with_old: bool,
}

/// Starts a root rollover (RFC 4210 §4.4): a new root (its key sealed in the database, or
/// made in the PKCS#11 token: [`NewRoot::key`]) beside the
/// one above the issuing CA, and their cross-certificates — the new root certified by the
/// old ("new with old", so clients that trust only the old root verify the new hierarchy)
/// and the old certified by the new ("old with new"). The new root stands by; the next
/// intermediate made with [`certify_new`] is its, and activating that retires the old root
/// once nothing it vouches for is valid. Refused when fleetca does not hold the old root's
/// key or a rollover is under way.
pub async fn rollover(
    store: &Store,
    keys: &Keys,
    root: NewRoot<'_>,
    public_url: &str,
    audit: impl FnOnce(&Authority, bool) -> NewAudit,
    now: DateTime<Utc>,
) -> Result<RolledOver, Error> {
    let cas = Authorities::load(store, keys, public_url)
        .await
        .map_err(Error::Internal)?;
    let path = cas.path(cas.issuing());
    let Some(old) = path.last().filter(|c| c.role == CaRole::Root) else {
        return Err(Error::Internal("the issuing CA has no root".into()));
    };
    let Some(old_root) = old.authority.clone() else {
        return Err(Error::Conflict(format!(
            "fleetca does not hold the key of root {} (the operator's own): make the new root with your own tooling and import an intermediate under it (fleetca ca intermediate --csr-out)",
            old.id
        )));
    };
    let NewRoot { subject, validity, key } = root;
    let (key, _) = keys.make_for(store, key).await?;
    let (sealed_key, in_token) = (key.sealed, key.in_token);
    let new_root = Authority::create_root_with_key(subject, now, validity, key.key)?;
    let old_id = old.id;
    let old_crl = old.crl_url.clone();
    let name = format!("CN={}", subject.common_name);
    let mut new_with_old = false;
    // The checks and the new root's id are the transaction's: two rollovers at once, or
    // another CA added meanwhile, cannot both go through.
    let built = store
        .add_authority_with(
            |id, rows| {
                let newer_root = rows.iter().find(|r| {
                    r.role == CaRole::Root.as_str() && r.id > old_id && r.state == CaState::Standby.as_str() && r.cross_pem.is_some()
                });
                if let Some(newer) = newer_root {
                    return Err(Error::Conflict(format!(
                        "root {} is already the new root of a rollover under way: add its intermediate (fleetca ca intermediate --new) and activate it",
                        newer.id
                    )));
                }
                if rows
                    .iter()
                    .any(|r| super::authorities::certificate_facts(&r.certificate_pem).is_some_and(|(cn, _)| cn == name))
                {
                    return Err(Error::invalid(
                        "common_name",
                        format!("a CA named {:?} exists: give the new root another name", subject.common_name),
                    ));
                }
                // An old root whose path length is below 2 cannot vouch for the new
                // hierarchy (its clients then need the new root itself, which the bundle and
                // ca_certificate_pem carry); any other failure is one.
                let forward = match old_root.cross_certify(&new_root, &old_crl, now) {
                    Ok(cross) => Some(cross),
                    Err(fleetca_ca::CaError::InvalidKey(why)) if why.contains("path length") => None,
                    Err(other) => return Err(other.into()),
                };
                let backward = new_root.cross_certify(&old_root, &crl_url(public_url, id), now)?;
                new_with_old = forward.is_some();
                let cross_pem: String = forward
                    .iter()
                    .map(|c| c.pem.as_str())
                    .chain(std::iter::once(backward.pem.as_str()))
                    .collect();
                let new = NewCa {
                    role: CaRole::Root.as_str().into(),
                    state: CaState::Standby.as_str().into(),
                    parent_id: None,
                    certificate_pem: new_root.certificate_pem().to_owned(),
                    sealed_key,
                    csr_pem: None,
                    in_token,
                    cross_pem: Some(cross_pem),
                };
                Ok((new, vec![audit(&new_root, forward.is_some())]))
            },
            now,
        )
        .await?;
    let id = built?;
    Ok(RolledOver { id, new_with_old })
}

/// Makes the standby intermediate `id` the issuing CA (from the next start of each
/// instance); the one before it retires. Refused unless fleetca holds its key, it is valid
/// for at least another day, its root is one fleetca trusts, and its CRL has been published
/// (an instance has started since it was added, so brokers can have its CRL).
pub async fn activate(
    store: &Store,
    cas: &Authorities,
    id: i32,
    audit: NewAudit,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let ca = cas.all().iter().find(|c| c.id == id).ok_or(Error::NotFound("CA"))?;
    if ca.role != CaRole::Intermediate || ca.state != CaState::Standby {
        return Err(Error::Conflict(format!(
            "CA {id} is a {} in state {}; only a standby intermediate can be made the issuing CA",
            ca.role, ca.state
        )));
    }
    let Some(authority) = &ca.authority else {
        return Err(Error::Conflict(format!("fleetca does not hold CA {id}'s key")));
    };
    if authority.not_before() > now || authority.not_after() < now + chrono::Duration::days(1) {
        return Err(Error::Conflict(format!(
            "CA {id} is valid from {} to {}: not for the next day; add another",
            authority.not_before(),
            authority.not_after()
        )));
    }
    let root_live = ca
        .parent_id
        .and_then(|p| cas.all().iter().find(|c| c.id == p))
        .is_some_and(|r| r.role == CaRole::Root && matches!(r.state, CaState::Standby | CaState::Active));
    if !root_live {
        return Err(Error::Conflict(format!(
            "CA {id}'s root is not one fleetca trusts and keeps (it is retiring or retired): add an intermediate of the current root"
        )));
    }
    if store.crl_number(id).await? == 0 {
        return Err(Error::Conflict(format!(
            "CA {id}'s CRL has never been published: restart every instance first (they then trust it and publish its CRL), give brokers the new bundle, then activate it"
        )));
    }
    Ok(store.activate_authority(id, &[audit], now).await?)
}

/// What [`revoke`] did.
pub struct Revoked {
    /// Its serial (lowercase hex), as its root's CRL lists it.
    pub serial: String,
    /// The unexpired certificates it signed that this revoked.
    pub certificates: Vec<fleetca_storage::Certificate>,
    /// Whether fleetca signs its root's CRL; when not, the operator's root must list it.
    pub root_held: bool,
}

/// The roots that must stay published although nothing valid they signed is left: each lists
/// on its CRL an intermediate it revoked that has not expired yet.
pub fn roots_listing_revoked(rows: &[CaRow], now: DateTime<Utc>) -> Vec<i32> {
    rows.iter()
        .filter(|r| r.revoked_at.is_some())
        .filter(|r| super::authorities::certificate_facts(&r.certificate_pem).is_some_and(|(_, end)| end > now))
        .filter_map(|r| r.parent_id)
        .collect()
}

/// What the certificates of a revoked intermediate are revoked with, and what its root's CRL
/// says of it: `cACompromise` when its key is compromised (RFC 5280 §5.3.1), else the
/// intermediate's own reason.
pub fn leaf_reason(reason: fleetca_ca::crl::Reason) -> fleetca_ca::crl::Reason {
    use fleetca_ca::crl::Reason;
    match reason {
        Reason::KeyCompromise | Reason::CaCompromise => Reason::CaCompromise,
        other => other,
    }
}

/// Revokes intermediate `id` — standing by, retiring or retired; never the issuing CA nor a
/// root — and every unexpired certificate it signed ([`leaf_reason`]), in one transaction,
/// audited by `audit` (given the intermediate's serial) and `leaves`. Its root's CRL lists
/// it from then on, the bundle leaves it out, and its own CRL, listing its certificates, is
/// published while they are unexpired.
pub async fn revoke(
    store: &Store,
    cas: &Authorities,
    id: i32,
    reason: fleetca_ca::crl::Reason,
    audit: impl FnOnce(&str) -> NewAudit,
    leaves: fleetca_storage::certificates::RevocationRecords<'_>,
    now: DateTime<Utc>,
) -> Result<Revoked, Error> {
    let ca = cas.all().iter().find(|c| c.id == id).ok_or(Error::NotFound("CA"))?;
    if reason == fleetca_ca::crl::Reason::AaCompromise {
        return Err(Error::invalid(
            "reason",
            "aACompromise is for attribute authorities; a CA whose key is compromised is keyCompromise or cACompromise",
        ));
    }
    match (ca.role, ca.state) {
        (CaRole::Root, _) => {
            return Err(Error::Conflict(format!(
                "CA {id} is a root: a root is not revoked but rolled over (fleetca ca root), and retires once nothing depends on it"
            )));
        }
        (_, CaState::Active) => {
            return Err(Error::Conflict(format!(
                "CA {id} issues every new certificate: add and activate another intermediate first (and restart every instance), then revoke this one"
            )));
        }
        (_, CaState::Pending) => {
            return Err(Error::Conflict(format!(
                "CA {id} has no certificate yet, so there is nothing to revoke"
            )));
        }
        // A revoked CA that retired keeps its revocation: it is revoked already too.
        _ if ca.state == CaState::Revoked || ca.revoked.is_some() => {
            return Err(Error::Conflict(format!("CA {id} is revoked already")));
        }
        _ => {}
    }
    let serial = pem::parse(ca.certificate_pem.trim())
        .ok()
        .and_then(|p| fleetca_ca::serial_hex(p.contents()))
        .ok_or_else(|| Error::Internal(format!("CA {id}'s stored certificate does not read")))?;
    let root_held = ca
        .parent_id
        .and_then(|p| cas.all().iter().find(|c| c.id == p))
        .is_some_and(|root| root.authority.is_some() && root.state != CaState::Retired);
    let certificates = store
        .revoke_authority(
            id,
            reason.name(),
            leaf_reason(reason).name(),
            audit(&serial),
            leaves,
            now,
        )
        .await?;
    Ok(Revoked {
        serial,
        certificates,
        root_held,
    })
}

/// An intermediate's name: the operator's (at most 64 characters, RFC 5280's upper bound for
/// a common name), or "fleetca issuing CA" and the date and time.
pub fn intermediate_subject(
    organization: Option<String>,
    common_name: Option<String>,
    now: DateTime<Utc>,
) -> Result<CaSubject, Error> {
    let common_name = common_name.unwrap_or_else(|| format!("fleetca issuing CA {}", now.format("%Y-%m-%d %H:%M")));
    let length = common_name.chars().count();
    if common_name.trim().is_empty() || length > 64 || common_name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "common_name",
            format!("a CA's common name is 1 to 64 printable characters (got {length})"),
        ));
    }
    Ok(CaSubject {
        common_name,
        organization,
    })
}

/// Intermediates that may wait (pending or standing by) at once: enough for any rotation,
/// few enough that a script in a loop cannot fill the database with CAs.
pub const MAX_WAITING: usize = 8;

/// Who signs a new intermediate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignedBy {
    /// fleetca's own root.
    FleetcaRoot,
    /// The operator's root, from a CSR (the intermediate waits for its certificate).
    OperatorRoot,
}

/// What an admin asked for.
pub struct NewIntermediate {
    pub signed_by: SignedBy,
    pub subject: CaSubject,
    /// The label of its key in the PKCS#11 token; none: sealed in the database.
    pub token_key: Option<String>,
}

/// What [`CaAdmin::add`] made.
pub struct Added {
    pub id: i32,
    pub state: CaState,
    /// The CSR for the operator's root (when it signs).
    pub csr_pem: Option<String>,
}

/// The CA operations of the admin API (the CLI calls the same flows). Changes take effect
/// when the instances restart, as the CLI's do.
pub struct CaAdmin {
    pub store: Store,
    pub keys: Keys,
    pub public_url: String,
    pub clock: Arc<dyn crate::support::clock::Clock>,
    /// The CAs this instance started with (the one it issues from among them).
    pub loaded: Arc<Authorities>,
    /// Where a revocation goes at once: the caches, sessions and CRLs (the revoked
    /// intermediate's root's among them) here and on the other instances.
    pub changes: Arc<crate::outbox::changes::Changes>,
}

impl CaAdmin {
    /// Adds an intermediate: certified by fleetca's root (it stands by), or its key and a CSR
    /// for the operator's root (it waits for [`CaAdmin::import`]). Audited.
    pub async fn add(&self, caller: &crate::domain::Principal, new: NewIntermediate) -> Result<Added, Error> {
        use crate::domain::AuditAction;
        let rows = self.store.authorities().await?;
        let waiting = rows
            .iter()
            .filter(|r| r.role == CaRole::Intermediate.as_str())
            .filter(|r| r.state == CaState::Pending.as_str() || r.state == CaState::Standby.as_str())
            .count();
        if waiting >= MAX_WAITING {
            return Err(Error::Conflict(format!(
                "{waiting} intermediates already wait (pending or standing by); activate or import one of them first"
            )));
        }
        let now = self.clock.now();
        let key = new.token_key.as_deref().map_or(NewKey::Sealed, NewKey::Token);
        let where_key = match &new.token_key {
            Some(label) => {
                serde_json::json!({"token": self.keys.token.as_ref().map(|t| t.label().to_owned()), "label": label})
            }
            None => serde_json::json!("sealed"),
        };
        match new.signed_by {
            SignedBy::FleetcaRoot => {
                let subject = &new.subject;
                let id = certify_new(
                    &self.store,
                    &self.keys,
                    key,
                    subject,
                    &self.public_url,
                    |mut details| {
                        if let Some(fields) = details.as_object_mut() {
                            fields.insert("key".into(), where_key);
                        }
                        crate::outbox::audit::by(caller, AuditAction::CaIntermediateRequest, "ca", "", None, details)
                    },
                    now,
                )
                .await?;
                Ok(Added {
                    id,
                    state: CaState::Standby,
                    csr_pem: None,
                })
            }
            SignedBy::OperatorRoot => {
                let requested = add(
                    &self.store,
                    &self.keys,
                    key,
                    &new.subject,
                    |cn| {
                        crate::outbox::audit::by(
                            caller,
                            AuditAction::CaIntermediateRequest,
                            "ca",
                            "",
                            None,
                            serde_json::json!({"common_name": cn, "key": where_key}),
                        )
                    },
                    now,
                )
                .await?;
                Ok(Added {
                    id: requested.id,
                    state: CaState::Pending,
                    csr_pem: Some(requested.csr_pem),
                })
            }
        }
    }

    /// Gives pending intermediate `id` the certificate the operator's root signed. Audited.
    pub async fn import(
        &self,
        caller: &crate::domain::Principal,
        id: i32,
        certificate_pem: &str,
        root_pem: &str,
    ) -> Result<Imported, Error> {
        let rows = self.store.authorities().await?;
        match rows.iter().find(|r| r.id == id) {
            None => return Err(Error::NotFound("CA")),
            Some(r) if r.state != CaState::Pending.as_str() => {
                return Err(Error::Conflict(format!(
                    "CA {id} is {}: only an intermediate waiting for its certificate (pending) takes one",
                    r.state
                )));
            }
            Some(_) => {}
        }
        import(
            &self.store,
            &self.keys,
            Some(id),
            certificate_pem,
            root_pem,
            |ca| {
                crate::outbox::audit::by(
                    caller,
                    crate::domain::AuditAction::CaIntermediateImport,
                    "ca",
                    &id.to_string(),
                    None,
                    serde_json::json!({
                        "subject": ca.subject(),
                        "fingerprint": ca.fingerprint(),
                        "not_after": ca.not_after(),
                    }),
                )
            },
            self.clock.now(),
        )
        .await
    }

    /// Makes standby intermediate `id` the issuing CA from the next start. Audited.
    pub async fn activate(&self, caller: &crate::domain::Principal, id: i32) -> Result<(), Error> {
        let record = crate::outbox::audit::by(
            caller,
            crate::domain::AuditAction::CaActivate,
            "ca",
            &id.to_string(),
            None,
            serde_json::json!({}),
        );
        // The CAs as stored now (one added since this instance started included).
        let cas = Authorities::load_lenient(&self.store, &self.keys, &self.public_url).await?;
        activate(&self.store, &cas, id, record, self.clock.now()).await
    }

    /// Revokes intermediate `id` and every unexpired certificate it signed, audited; returns
    /// once this instance's CRLs list them (the root's too, when fleetca holds the root) and
    /// live sessions of those certificates are being ended.
    pub async fn revoke(
        &self,
        caller: &crate::domain::Principal,
        id: i32,
        reason: fleetca_ca::crl::Reason,
    ) -> Result<Revoked, Error> {
        if self.loaded.issuing().id == id {
            return Err(Error::Conflict(format!(
                "CA {id} issues every new certificate on this instance until it restarts: activate another intermediate, restart every instance, then revoke it"
            )));
        }
        let cas = Authorities::load_lenient(&self.store, &self.keys, &self.public_url).await?;
        let leaves = crate::outbox::audit::revoked_by(caller, None, leaf_reason(reason).name());
        let revoked = revoke(
            &self.store,
            &cas,
            id,
            reason,
            |serial| {
                crate::outbox::audit::by(
                    caller,
                    crate::domain::AuditAction::CaRevoke,
                    "ca",
                    &id.to_string(),
                    None,
                    serde_json::json!({"serial": serial, "reason": reason.name()}),
                )
            },
            &leaves,
            self.clock.now(),
        )
        .await?;
        // Both, whatever the first did: the revocation is stored already.
        let leaves = self.changes.revoked(&revoked.certificates).await;
        let root = self.changes.ca_revoked(id).await;
        leaves.and(root)?;
        tracing::warn!(ca = id, serial = %revoked.serial, %reason, certificates = revoked.certificates.len(), by = %caller.username, "intermediate CA revoked");
        Ok(revoked)
    }
}
