//! fleetca's record of what it has published, kept outside the database: the last CRL it
//! signed (DER, signed, so it vouches for itself), next to the data directory. A database
//! restored from an older backup forgets the revocations made since; at start fleetca
//! compares the two and, when the database is behind, revokes again what it had published,
//! numbers its next CRL above the published one, audits the repair and shows it on
//! `/readyz` until an admin acknowledges it. Without the record, a restore would publish
//! CRLs that un-revoke certificates and whose numbers go backwards.

use std::path::Path;
use std::sync::Arc;

use chrono::Duration;
use fleetca_ca::Authority;
use fleetca_storage::certificates::Revocation;
use fleetca_storage::repairs::Repaired;
use fleetca_storage::{NewAudit, Store};
use serde_json::json;

use crate::domain::AuditAction;
use crate::support::Error;
use crate::support::clock::Clock;

/// The file name of the record in the data directory (of the first CA's CRL; see
/// [`record_of`] for the others).
pub const RECORD_FILE: &str = "published-crl.der";

/// The record of CA `issuer`'s CRL (its own, or shard `shard`), beside `first` (the first
/// CA's own CRL's record): `published-crl-{issuer}.der`, a shard's
/// `published-crl-{issuer}-{shard}.der`.
pub fn record_of(first: &Path, issuer: i32, shard: Option<i16>) -> std::path::PathBuf {
    match shard {
        None if issuer == 1 => first.to_owned(),
        None => first.with_file_name(format!("published-crl-{issuer}.der")),
        Some(shard) => first.with_file_name(format!("published-crl-{issuer}-{shard}.der")),
    }
}

/// How long a revocation of a certificate the database does not know stays listed: the
/// longest validity a certificate can have, counted from its revocation.
const UNKNOWN_CERTIFICATE_LIFETIME: Duration = Duration::hours(87_600);

/// Writes the record atomically and synced (see [`crate::support::files::replace_retiring`]): a crash leaves
/// the old record or the new one, never half of one. Returns the old record, to be freed off
/// the caller's path.
pub fn write_record(path: &Path, der: &[u8]) -> Result<crate::support::files::Retired, String> {
    crate::support::files::replace_retiring(path, der, 0o644)
        .map_err(|e| format!("writing the published CRL record {} failed: {e}", path.display()))
}

/// The records of every CA's CRLs but the first CA's own in `data_dir`: (CA id, path), a
/// shard's under its CA's id.
pub fn other_records(data_dir: &Path) -> Vec<(i32, std::path::PathBuf)> {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Vec::new();
    };
    let mut found: Vec<(i32, std::path::PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let which = name.to_str()?.strip_prefix("published-crl-")?.strip_suffix(".der")?;
            let id = which.split_once('-').map_or(which, |(id, _shard)| id).parse().ok()?;
            Some((id, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// Compares the database with the records of CA `issuer`'s CRLs (its own and its shards',
/// each with the shard it is and its path) and repairs a database that is behind: every
/// record numbered above the database's CRL number (the shards share it) is applied, in one
/// repair. Returns what was repaired, if anything.
pub async fn reconcile(
    issuer: i32,
    ca: &Arc<Authority>,
    store: &Store,
    clock: &Arc<dyn Clock>,
    records: &[(Option<i16>, std::path::PathBuf)],
) -> Result<Option<Repaired>, Error> {
    let database_number = store.crl_number(issuer).await?;
    let mut published_number = database_number;
    let mut published: Vec<Revocation> = Vec::new();
    for (shard, path) in records {
        let der = match std::fs::read(path) {
            Ok(der) => der,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::Internal(format!("reading {}: {e}", path.display()))),
        };
        let (number, entries) = ca.read_crl(&der).map_err(|e| {
            Error::Internal(format!(
                "{} is not a CRL of this CA ({e}); if the CA was replaced on purpose, move the file away",
                path.display()
            ))
        })?;
        if number <= database_number {
            continue;
        }
        published_number = published_number.max(number);
        published.extend(entries.into_iter().map(|e| Revocation {
            serial: hex::encode(&e.serial),
            revoked_at: e.revoked_at,
            reason: e.reason.name().to_owned(),
            not_after: e.revoked_at + UNKNOWN_CERTIFICATE_LIFETIME,
            issuer_id: issuer,
            shard: *shard,
        }));
    }
    if published_number <= database_number {
        return Ok(None);
    }
    tracing::warn!(
        ca = issuer,
        published_number,
        database_number,
        "the database is behind the CRLs fleetca last published (restored from an older backup?): revoking again what was published"
    );
    let details = json!({
        "published_crl_number": published_number,
        "database_crl_number": database_number,
        "ca": issuer,
        "published_entries": published.len(),
    });
    let audit = NewAudit {
        actor_id: None,
        actor: "system".into(),
        role: "system".into(),
        action: AuditAction::CrlRepair.as_str().into(),
        target_kind: "crl".into(),
        target_id: published_number.to_string(),
        enterprise: None,
        request_id: None,
        client_addr: None,
        outcome: "success".into(),
        details: details.clone(),
        event: None,
        ends_sessions: false,
    };
    let repaired = store
        .repair_from_published(issuer, &published, published_number, details, &[audit], clock.now())
        .await?;
    tracing::warn!(
        revoked_again = repaired.revoked_again,
        unknown_serials = repaired.unknown_serials,
        "database repaired from the published CRL; an admin should acknowledge it (POST /api/v4/manage/repairs/{{id}}/acknowledge/)"
    );
    Ok(Some(repaired))
}
