//! The CAs (a root, issuing intermediates, imported roots) and their CRL numbers.
//!
//! Row 1 is the CA made at the first start; later CAs get the next ids. Each CA has a
//! `crl_state` row of the same id: its CRLs are numbered on their own.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::entity::authority::{ActiveModel as CaActive, Column as CaCol, Entity as CaEntity, Model as CaModel};
use crate::entity::crl_state::{ActiveModel as CrlActive, Column as CrlCol, Entity as CrlEntity};
use crate::{NewAudit, StorageError, Store};

const FIRST: i32 = 1;

/// The CA made at the first start: its certificate and sealed key.
#[derive(Clone, Debug)]
pub struct StoredAuthority {
    /// PEM certificate.
    pub certificate_pem: String,
    /// The key, sealed under the master key.
    pub sealed_key: Vec<u8>,
}

/// A stored CA.
pub type CaRow = CaModel;

/// A CA to store.
#[derive(Clone, Debug)]
pub struct NewCa {
    /// `root` or `intermediate`.
    pub role: String,
    /// See the migration: `active`, `pending`, `standby`, `retiring`, `retired`.
    pub state: String,
    /// The CA that signed it.
    pub parent_id: Option<i32>,
    /// Its certificate (empty while pending).
    pub certificate_pem: String,
    /// Its key sealed under the master key (empty when fleetca does not hold it).
    pub sealed_key: Vec<u8>,
    /// A pending intermediate's CSR.
    pub csr_pem: Option<String>,
    /// Where its key is when a PKCS#11 token holds it: the token's label and the key's.
    pub in_token: Option<(String, String)>,
    /// A new root's cross-certificates with the root before it (RFC 4210 §4.4), PEM.
    pub cross_pem: Option<String>,
}

impl Store {
    /// The CA made at the first start, if any. Reads only the columns every schema version
    /// has, so it works before migrations (the master key is checked against it first).
    pub async fn load_authority(&self) -> Result<Option<StoredAuthority>, StorageError> {
        let row: Option<(String, Vec<u8>)> = CaEntity::find_by_id(FIRST)
            .select_only()
            .column(CaCol::CertificatePem)
            .column(CaCol::SealedKey)
            .into_tuple()
            .one(self.conn())
            .await?;
        Ok(row.map(|(certificate_pem, sealed_key)| StoredAuthority {
            certificate_pem,
            sealed_key,
        }))
    }

    /// Every CA, oldest first.
    pub async fn authorities(&self) -> Result<Vec<CaRow>, StorageError> {
        Ok(CaEntity::find().order_by_asc(CaCol::Id).all(self.conn()).await?)
    }

    /// Stores the first CA unless one exists, and returns the one that is stored: when two
    /// instances start on an empty database at once, both end up with the winner's CA.
    pub async fn insert_authority(
        &self,
        ca: StoredAuthority,
        now: DateTime<Utc>,
    ) -> Result<StoredAuthority, StorageError> {
        let txn = self.write_txn().await?;
        let new = NewCa {
            role: "root".into(),
            state: "active".into(),
            parent_id: None,
            certificate_pem: ca.certificate_pem,
            sealed_key: ca.sealed_key,
            csr_pem: None,
            in_token: None,
            cross_pem: None,
        };
        match insert_ca(&txn, FIRST, new, now).await {
            Ok(()) => txn.commit().await?,
            Err(StorageError::Conflict(_)) => drop(txn),
            Err(other) => return Err(other),
        }
        self.load_authority().await?.ok_or(StorageError::NotFound)
    }

    /// Stores a new installation's hierarchy unless a CA exists: `root` as CA 1 and `issuing`
    /// (signed by it) as CA 2, in one transaction. When two instances start on an empty
    /// database at once, the second finds the first's and stores nothing.
    /// Returns whether these were stored (false: another instance's were first).
    pub async fn insert_hierarchy(
        &self,
        root: NewCa,
        issuing: NewCa,
        now: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        let txn = self.write_txn().await?;
        match insert_ca(&txn, FIRST, root, now).await {
            Ok(()) => {
                insert_ca(&txn, FIRST + 1, issuing, now).await?;
                txn.commit().await?;
                Ok(true)
            }
            Err(StorageError::Conflict(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Stores a new CA with the next id, audited (records of a CA with no id yet name this
    /// one: [`naming`]); returns its id.
    pub async fn add_authority(&self, ca: NewCa, audit: &[NewAudit], now: DateTime<Utc>) -> Result<i32, StorageError> {
        let txn = self.write_txn().await?;
        let id = next_id(&txn).await?;
        insert_ca(&txn, id, ca, now).await?;
        crate::rows::commit_audited(txn, &naming(audit, id), now).await?;
        Ok(id)
    }

    /// Stores a CA that must know its own id (a new root's cross-certificate names its CRL),
    /// in one transaction: `build` sees every stored CA and the id the new one gets, and
    /// returns the CA and its audit records, or why it may not be added (nothing stored).
    /// A concurrent addition of another CA fails the insert (a conflict): run it again.
    pub async fn add_authority_with<E>(
        &self,
        build: impl FnOnce(i32, &[CaRow]) -> Result<(NewCa, Vec<NewAudit>), E>,
        now: DateTime<Utc>,
    ) -> Result<Result<i32, E>, StorageError> {
        let txn = self.write_txn().await?;
        let rows = CaEntity::find().order_by_asc(CaCol::Id).all(&txn).await?;
        let id = next_id(&txn).await?;
        let (ca, audit) = match build(id, &rows) {
            Ok(built) => built,
            Err(why) => return Ok(Err(why)),
        };
        insert_ca(&txn, id, ca, now).await?;
        crate::rows::commit_audited(txn, &naming(&audit, id), now).await?;
        Ok(Ok(id))
    }

    /// Gives the pending intermediate `id` its signed certificate and makes it `standby`
    /// (trusted and publishing its CRL, issuing nothing until [`Store::activate_authority`]):
    /// the root that signed it is stored first when fleetca does not know it yet
    /// ([`Parent::New`], whose id becomes the intermediate's parent). One transaction,
    /// audited. Returns the parent's id.
    pub async fn import_intermediate(
        &self,
        id: i32,
        certificate_pem: String,
        parent: Parent,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<i32, StorageError> {
        let txn = self.write_txn().await?;
        let parent_id = match parent {
            Parent::Known(parent) => parent,
            Parent::New(root) => {
                let root_id = next_id(&txn).await?;
                insert_ca(&txn, root_id, root, now).await?;
                root_id
            }
        };
        let updated = CaEntity::update_many()
            .col_expr(CaCol::State, Expr::value("standby"))
            .col_expr(CaCol::CertificatePem, Expr::value(certificate_pem))
            .col_expr(CaCol::ParentId, Expr::value(parent_id))
            .col_expr(CaCol::CsrPem, Expr::value(Option::<String>::None))
            .filter(CaCol::Id.eq(id))
            .filter(CaCol::State.eq("pending"))
            .exec(&txn)
            .await?;
        if updated.rows_affected != 1 {
            return Err(StorageError::Conflict(
                "that intermediate is no longer waiting for its certificate".into(),
            ));
        }
        crate::rows::commit_audited(txn, audit, now).await?;
        Ok(parent_id)
    }

    /// Makes the standby intermediate `id` the issuing CA; the CA that issued until now
    /// retires (its CRL is published while certificates it signed are valid). One
    /// transaction, audited.
    pub async fn activate_authority(
        &self,
        id: i32,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let txn = self.write_txn().await?;
        let candidate = CaEntity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(StorageError::NotFound)?;
        if candidate.role != "intermediate" || candidate.state != "standby" || candidate.revoked_at.is_some() {
            return Err(StorageError::Conflict(format!(
                "CA {id} is a {} in state {}; only a standby intermediate can be made active",
                candidate.role, candidate.state
            )));
        }
        // After a root rollover the new intermediate's root is the rollover's new root (it
        // holds the cross-certificates): the root above the CA issuing until now retires with
        // it, and so do that root's other intermediates standing by (they could no longer be
        // activated); the root is published until nothing it vouches for is valid (see
        // `retire_spent`). Moving to an operator's root retires nothing of fleetca's own.
        let before = CaEntity::find().filter(CaCol::State.eq("active")).one(&txn).await?;
        let old_root = before.and_then(|b| if b.role == "root" { None } else { b.parent_id });
        let successor = match candidate.parent_id {
            Some(parent) => CaEntity::find_by_id(parent)
                .one(&txn)
                .await?
                .is_some_and(|p| p.cross_pem.is_some()),
            None => false,
        };
        if let Some(root) = old_root
            && candidate.parent_id != Some(root)
            && successor
        {
            CaEntity::update_many()
                .col_expr(CaCol::State, Expr::value("retiring"))
                .filter(
                    sea_orm::Condition::any()
                        .add(CaCol::Id.eq(root))
                        .add(CaCol::ParentId.eq(root)),
                )
                .filter(CaCol::State.eq("standby"))
                .filter(CaCol::Id.ne(id))
                .exec(&txn)
                .await?;
        }
        CaEntity::update_many()
            .col_expr(CaCol::State, Expr::value("retiring"))
            .filter(CaCol::State.eq("active"))
            .exec(&txn)
            .await?;
        // Still standing by and never revoked (a revocation committed since the read above,
        // on PostgreSQL, leaves nothing to activate).
        let activated = CaEntity::update_many()
            .col_expr(CaCol::State, Expr::value("active"))
            .filter(CaCol::Id.eq(id))
            .filter(CaCol::State.eq("standby"))
            .filter(CaCol::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        if activated.rows_affected != 1 {
            return Err(StorageError::Conflict(format!(
                "CA {id} changed meanwhile (revoked, or activated by another request)"
            )));
        }
        crate::rows::commit_audited(txn, audit, now).await
    }

    /// How many certificates each CA signed that have not expired at `now` (revoked ones
    /// included: their revocation must stay listed), by CA id.
    pub async fn live_certificates(&self, now: DateTime<Utc>) -> Result<Vec<(i32, u64)>, StorageError> {
        use crate::entity::certificates::{Column as CertCol, Entity as Certificates};
        let rows: Vec<(i32, i64)> = Certificates::find()
            .select_only()
            .column(CertCol::IssuerId)
            .column_as(CertCol::Id.count(), "live")
            .filter(CertCol::NotAfter.gt(now))
            .group_by(CertCol::IssuerId)
            .into_tuple()
            .all(self.conn())
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, n)| (id, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    /// Retires every retiring or revoked CA of which no certificate is valid any more (nothing
    /// it signed needs its CRL), but those of `keep` (a root whose CRL must go on listing an
    /// unexpired intermediate it revoked): it is no longer trusted, loaded or published (a
    /// revoked one stays on its root's CRL: its revocation time is kept). One transaction; one
    /// audit record per CA from `audit`. Returns the ids retired.
    pub async fn retire_spent(
        &self,
        now: DateTime<Utc>,
        keep: &[i32],
        audit: impl Fn(i32) -> NewAudit,
    ) -> Result<Vec<i32>, StorageError> {
        let live: Vec<i32> = self
            .live_certificates(now)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let txn = self.write_txn().await?;
        let rows = CaEntity::find().all(&txn).await?;
        // Spent: retiring, no valid certificate it signed, and no CA it signed still in use
        // (a root retires after its intermediates; their retirement comes first, at an
        // earlier start or in this same pass).
        let mut spent: Vec<i32> = Vec::new();
        loop {
            let more: Vec<i32> = rows
                .iter()
                .filter(|r| (r.state == "retiring" || r.state == "revoked") && !spent.contains(&r.id))
                .filter(|r| !live.contains(&r.id) && !keep.contains(&r.id))
                .filter(|r| {
                    rows.iter()
                        .filter(|c| c.parent_id == Some(r.id) && c.id != r.id)
                        .all(|c| c.state == "retired" || spent.contains(&c.id) || (c.state == "pending"))
                })
                .map(|r| r.id)
                .collect();
            if more.is_empty() {
                break;
            }
            spent.extend(more);
        }
        if spent.is_empty() {
            return Ok(spent);
        }
        CaEntity::update_many()
            .col_expr(CaCol::State, Expr::value("retired"))
            .filter(CaCol::Id.is_in(spent.clone()))
            .filter(CaCol::State.is_in(["retiring", "revoked"]))
            .exec(&txn)
            .await?;
        let records: Vec<NewAudit> = spent.iter().map(|id| audit(*id)).collect();
        crate::rows::commit_audited(txn, &records, now).await?;
        Ok(spent)
    }

    /// Revokes the intermediate `id` (standing by, retiring or retired: never the issuing CA,
    /// never a root) and, with `leaf_reason`, every unexpired certificate it signed that is not
    /// revoked yet, in one transaction: audited by `audit` and the leaves' `records`.
    /// Returns the certificates this revoked. A conflict when the CA may not be revoked (it
    /// changed meanwhile).
    pub async fn revoke_authority(
        &self,
        id: i32,
        reason: &str,
        leaf_reason: &str,
        audit: NewAudit,
        records: crate::certificates::RevocationRecords<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::Certificate>, StorageError> {
        let txn = self.write_txn().await?;
        let updated = CaEntity::update_many()
            .col_expr(CaCol::State, Expr::value("revoked"))
            .col_expr(CaCol::RevokedAt, Expr::value(now))
            .col_expr(CaCol::RevocationReason, Expr::value(reason))
            .filter(CaCol::Id.eq(id))
            .filter(CaCol::Role.eq("intermediate"))
            .filter(CaCol::State.is_in(["standby", "retiring", "retired"]))
            .filter(CaCol::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        if updated.rows_affected != 1 {
            return Err(StorageError::Conflict(format!(
                "CA {id} is no longer an intermediate that may be revoked"
            )));
        }
        let revoked = revoke_leaves(&txn, id, leaf_reason, now).await?;
        let mut all = vec![audit];
        all.extend(records(&revoked));
        crate::rows::commit_audited(txn, &all, now).await?;
        Ok(revoked)
    }

    /// Revokes, with `reason`, every unexpired certificate the CA `issuer` signed that is not
    /// revoked yet (one that an instance issued from a revoked CA before it heard of the
    /// revocation), audited by `records`; returns them.
    pub async fn revoke_leaves_of(
        &self,
        issuer: i32,
        reason: &str,
        records: crate::certificates::RevocationRecords<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::Certificate>, StorageError> {
        let txn = self.write_txn().await?;
        let revoked = revoke_leaves(&txn, issuer, reason, now).await?;
        crate::rows::commit_audited(txn, &records(&revoked), now).await?;
        Ok(revoked)
    }

    /// Takes the next CRL number of the CA `issuer` and records the CRL's dates, atomically,
    /// so no two CRLs of a CA (from any instance) share a number and numbers never go back.
    pub async fn next_crl_number(
        &self,
        issuer: i32,
        this_update: DateTime<Utc>,
        next_update: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        let txn = self.write_txn().await?;
        CrlEntity::update_many()
            .col_expr(CrlCol::Number, Expr::col(CrlCol::Number).add(1))
            .col_expr(CrlCol::ThisUpdate, Expr::value(this_update))
            .col_expr(CrlCol::NextUpdate, Expr::value(next_update))
            .filter(CrlCol::Id.eq(issuer))
            .exec(&txn)
            .await?;
        let row = CrlEntity::find_by_id(issuer)
            .one(&txn)
            .await?
            .ok_or(StorageError::NotFound)?;
        txn.commit().await?;
        u64::try_from(row.number).map_err(|_| StorageError::Internal("negative CRL number".into()))
    }
}

/// A CA whose expiry may be announced.
#[derive(Clone, Debug)]
pub struct CaExpiry {
    pub id: i32,
    pub not_after: DateTime<Utc>,
    /// The event's data, besides the days left.
    pub data: serde_json::Value,
}

/// Which warning is due for a CA that ends at `not_after`: 180, 90 or 30 days ahead.
fn ca_warning_due(not_after: DateTime<Utc>, now: DateTime<Utc>) -> Option<i32> {
    let left = not_after - now;
    [30, 90, 180]
        .into_iter()
        .find(|d| left <= chrono::Duration::days(i64::from(*d)))
}

impl Store {
    /// Queues `ca.expiring` for each CA of `cas` that has come within 180, 90 or 30 days of
    /// its end since its last warning, each once (instances racing mark the row first, so one
    /// of them announces it). Returns how many were announced.
    pub async fn warn_ca_expiring(&self, cas: &[CaExpiry], now: DateTime<Utc>) -> Result<usize, StorageError> {
        let mut events = Vec::new();
        let txn = self.write_txn().await?;
        for ca in cas {
            let Some(days) = ca_warning_due(ca.not_after, now) else {
                continue;
            };
            let marked = CaEntity::update_many()
                .col_expr(CaCol::ExpiryWarned, Expr::value(days))
                .filter(CaCol::Id.eq(ca.id))
                .filter(CaCol::State.ne("retired"))
                .filter(
                    sea_orm::Condition::any()
                        .add(CaCol::ExpiryWarned.is_null())
                        .add(CaCol::ExpiryWarned.gt(days)),
                )
                .exec(&txn)
                .await?;
            if marked.rows_affected == 0 {
                continue;
            }
            let mut data = ca.data.clone();
            if let Some(map) = data.as_object_mut() {
                map.insert("days".into(), days.into());
                map.insert("expires_at".into(), serde_json::json!(ca.not_after));
            }
            events.push(crate::webhooks::NewEvent {
                event_type: "ca.expiring".into(),
                enterprise: None,
                data,
            });
        }
        crate::webhooks::events::enqueue(&txn, &events, now).await?;
        txn.commit().await?;
        Ok(events.len())
    }
}

/// The root an intermediate is activated under.
#[derive(Clone, Debug)]
pub enum Parent {
    /// A CA fleetca holds already.
    Known(i32),
    /// A root fleetca does not know yet (an operator's own): stored beside the others.
    New(NewCa),
}

async fn next_id(txn: &DatabaseTransaction) -> Result<i32, StorageError> {
    let max: Option<i32> = CaEntity::find()
        .select_only()
        .column_as(CaCol::Id.max(), "max")
        .into_tuple()
        .one(txn)
        .await?
        .flatten();
    Ok(max.unwrap_or(0) + 1)
}

/// The audit records of a new CA, each that targets a CA with no id yet (made before the id
/// was taken) naming `id`.
fn naming(audit: &[NewAudit], id: i32) -> Vec<NewAudit> {
    audit
        .iter()
        .cloned()
        .map(|mut record| {
            if record.target_kind == "ca" && record.target_id.is_empty() {
                record.target_id = id.to_string();
            }
            record
        })
        .collect()
}

/// Revokes every unexpired, unrevoked certificate `issuer` signed, in the caller's transaction.
async fn revoke_leaves(
    txn: &DatabaseTransaction,
    issuer: i32,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Vec<crate::Certificate>, StorageError> {
    use crate::entity::certificates::{Column as CertCol, Entity as CertEntity};
    let ids: Vec<uuid::Uuid> = CertEntity::find()
        .select_only()
        .column(CertCol::Id)
        .filter(CertCol::IssuerId.eq(issuer))
        .filter(CertCol::RevokedAt.is_null())
        .filter(CertCol::NotAfter.gt(now))
        .into_tuple()
        .all(txn)
        .await?;
    crate::certificates::revoke_in(txn, &ids, reason, now).await
}

async fn insert_ca(txn: &DatabaseTransaction, id: i32, ca: NewCa, now: DateTime<Utc>) -> Result<(), StorageError> {
    CaActive {
        id: Set(id),
        certificate_pem: Set(ca.certificate_pem),
        sealed_key: Set(ca.sealed_key),
        created_at: Set(now),
        role: Set(ca.role),
        state: Set(ca.state),
        parent_id: Set(ca.parent_id),
        csr_pem: Set(ca.csr_pem),
        key_token: Set(ca.in_token.as_ref().map(|(token, _)| token.clone())),
        key_label: Set(ca.in_token.map(|(_, label)| label)),
        expiry_warned: Set(None),
        cross_pem: Set(ca.cross_pem),
        revoked_at: Set(None),
        revocation_reason: Set(None),
    }
    .insert(txn)
    .await
    .map_err(StorageError::from)?;
    CrlActive {
        id: Set(id),
        number: Set(0),
        this_update: Set(now),
        next_update: Set(now),
    }
    .insert(txn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use fleetca_migrations::{Migrator, MigratorTrait};
    use sea_orm::ConnectionTrait;

    use crate::{Store, StoreOptions};

    use crate::testing::{fresh_store as fresh, new_ca as ca};

    /// The audit record of a retirement (what it says is not under test here).
    fn retire_record(_: i32) -> crate::NewAudit {
        crate::testing::system_record("ca.retire", "ca", String::new(), serde_json::json!({}))
    }

    /// After a root rollover, activating the new root's intermediate retires the old root
    /// with the old intermediate; the old root retires only once the old intermediate has.
    #[tokio::test]
    async fn the_old_root_retires_after_its_intermediate_once_a_new_roots_intermediate_is_active() {
        let (store, path) = fresh().await;
        let now = chrono::Utc::now();
        store
            .insert_hierarchy(ca("root", "standby", None), ca("intermediate", "active", Some(1)), now)
            .await
            .unwrap();
        let mut rollover_root = ca("root", "standby", None);
        rollover_root.cross_pem = Some("CROSS".into());
        let new_root = store.add_authority(rollover_root, &[], now).await.unwrap();
        let new_issuing = store
            .add_authority(ca("intermediate", "standby", Some(new_root)), &[], now)
            .await
            .unwrap();
        store.activate_authority(new_issuing, &[], now).await.unwrap();
        let states = |rows: Vec<super::CaRow>| rows.into_iter().map(|r| (r.id, r.state)).collect::<Vec<_>>();
        assert_eq!(
            states(store.authorities().await.unwrap()),
            vec![
                (1, "retiring".to_owned()),
                (2, "retiring".to_owned()),
                (3, "standby".to_owned()),
                (4, "active".to_owned())
            ]
        );
        let audit = retire_record;
        // CA 2 signed a certificate valid for a year: both it and its root stay.
        store
            .conn()
            .execute_unprepared(&format!(
                "INSERT INTO certificates (id, name, kind, enterprise, serial, fingerprint, certificate_pem, not_before, not_after, created_at, issuer_id) \
                 VALUES ('00000000-0000-0000-0000-000000000009', 'c', 'client', 'acme', '0c', 'fd', 'PEM', '{now}', '{later}', '{now}', 2)",
                now = now.to_rfc3339(),
                later = (now + chrono::Duration::days(365)).to_rfc3339()
            ))
            .await
            .unwrap();
        assert!(store.retire_spent(now, &[], audit).await.unwrap().is_empty());
        // A year and a day later: the intermediate, then its root, in one pass.
        let later = now + chrono::Duration::days(366);
        assert_eq!(store.retire_spent(later, &[], audit).await.unwrap(), vec![2, 1]);
        drop(store);
        let _ = std::fs::remove_file(path);
    }

    /// A CA's expiry is announced 180, 90 and 30 days ahead, each once, also when instances
    /// scan at once; a CA far from its end, or retired, is not announced.
    #[tokio::test]
    async fn ca_expiring_is_announced_180_90_and_30_days_ahead_each_once() {
        let (store, path) = fresh().await;
        let now = chrono::Utc::now();
        store
            .insert_hierarchy(ca("root", "standby", None), ca("intermediate", "active", Some(1)), now)
            .await
            .unwrap();
        let expiry = |id, days| super::CaExpiry {
            id,
            not_after: now + chrono::Duration::days(days),
            data: serde_json::json!({"ca": id}),
        };
        // The root ends in 20 years, the intermediate in 170 days: only the intermediate.
        let cas = [expiry(1, 7300), expiry(2, 170)];
        assert_eq!(store.warn_ca_expiring(&cas, now).await.unwrap(), 1);
        assert_eq!(store.warn_ca_expiring(&cas, now).await.unwrap(), 0, "once");
        // 80 days later it is within 90: announced again, once.
        let later = now + chrono::Duration::days(80);
        assert_eq!(store.warn_ca_expiring(&cas, later).await.unwrap(), 1);
        assert_eq!(store.warn_ca_expiring(&cas, later).await.unwrap(), 0);
        // Within 30 days; a retired CA is not announced.
        let last = now + chrono::Duration::days(150);
        store
            .conn()
            .execute_unprepared("UPDATE authority SET state = 'retired' WHERE id = 1")
            .await
            .unwrap();
        let cas = [expiry(1, 151), expiry(2, 170)];
        assert_eq!(store.warn_ca_expiring(&cas, last).await.unwrap(), 1, "CA 2 only");
        drop(store);
        let _ = std::fs::remove_file(path);
    }

    /// A retiring CA retires once nothing it signed is valid; the active one never does.
    #[tokio::test]
    async fn a_retiring_ca_retires_when_its_last_certificate_has_expired() {
        let (store, path) = fresh().await;
        let now = chrono::Utc::now();
        assert!(
            store
                .insert_hierarchy(ca("root", "standby", None), ca("intermediate", "active", Some(1)), now)
                .await
                .unwrap()
        );
        assert!(
            !store
                .insert_hierarchy(ca("root", "standby", None), ca("intermediate", "active", Some(1)), now)
                .await
                .unwrap(),
            "the second start stores nothing"
        );
        let third = store
            .add_authority(ca("intermediate", "standby", Some(1)), &[], now)
            .await
            .unwrap();
        assert_eq!(third, 3);
        store.activate_authority(3, &[], now).await.unwrap();
        let audit = retire_record;
        // CA 2 signed a certificate valid for a year: it stays retiring.
        store
            .conn()
            .execute_unprepared(&format!(
                "INSERT INTO certificates (id, name, kind, enterprise, serial, fingerprint, certificate_pem, not_before, not_after, created_at, issuer_id) \
                 VALUES ('00000000-0000-0000-0000-000000000002', 'c', 'client', 'acme', '0b', 'fe', 'PEM', '{now}', '{later}', '{now}', 2)",
                now = now.to_rfc3339(),
                later = (now + chrono::Duration::days(365)).to_rfc3339()
            ))
            .await
            .unwrap();
        assert_eq!(store.live_certificates(now).await.unwrap(), vec![(2, 1)]);
        assert!(store.retire_spent(now, &[], audit).await.unwrap().is_empty());
        // A year and a day later it has nothing valid left.
        let later = now + chrono::Duration::days(366);
        assert_eq!(store.retire_spent(later, &[], audit).await.unwrap(), vec![2]);
        let states: Vec<(i32, String)> = store
            .authorities()
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.id, c.state))
            .collect();
        assert_eq!(
            states,
            vec![(1, "standby".into()), (2, "retired".into()), (3, "active".into())]
        );
        drop(store);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    /// An installation made before several CAs: its one CA (row 1) and a revoked certificate
    /// are still the issuing CA and a revocation of CA 1 after the migration.
    #[tokio::test]
    async fn a_database_from_before_several_cas_keeps_its_one_ca_issuing() {
        let path = std::env::temp_dir().join(format!("fleetca-upgrade-{}.db", uuid::Uuid::new_v4().simple()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let store = Store::connect(&StoreOptions {
            url: url.clone(),
            max_connections: 1,
        })
        .await
        .unwrap();
        // Every migration before the hierarchy's, then the rows such an installation has.
        let before = Migrator::migrations().len() - 1;
        Migrator::up(store.conn(), Some(u32::try_from(before).unwrap()))
            .await
            .unwrap();
        for sql in [
            "INSERT INTO authority (id, certificate_pem, sealed_key, created_at) VALUES (1, 'PEM', x'01', '2026-12-01T00:00:00Z')",
            "INSERT INTO crl_state (id, number, this_update, next_update) VALUES (1, 41, '2026-12-01T00:00:00Z', '2026-12-08T00:00:00Z')",
            "INSERT INTO certificates (id, name, kind, enterprise, serial, fingerprint, certificate_pem, not_before, not_after, created_at, revoked_at, revocation_reason) \
             VALUES ('00000000-0000-0000-0000-000000000001', 'c', 'client', 'acme', '0a', 'ff', 'PEM', '2026-12-01T00:00:00Z', '2036-12-01T00:00:00Z', '2026-12-01T00:00:00Z', '2026-12-02T00:00:00Z', 'keyCompromise')",
        ] {
            store.conn().execute_unprepared(sql).await.unwrap();
        }
        // The master key is checked against row 1 before migrating: readable on the old schema.
        assert_eq!(store.load_authority().await.unwrap().unwrap().certificate_pem, "PEM");
        store.migrate().await.unwrap();
        let cas = store.authorities().await.unwrap();
        assert_eq!(cas.len(), 1);
        assert_eq!((cas[0].role.as_str(), cas[0].state.as_str()), ("root", "active"));
        assert_eq!(cas[0].parent_id, None);
        let revoked = store.revocations(chrono::Utc::now()).await.unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].issuer_id, 1, "listed on the one CA's CRL");
        assert_eq!(store.crl_number(1).await.unwrap(), 41, "its CRL numbers go on");
        drop(store);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
