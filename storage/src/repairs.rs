//! What a restored database is repaired with: the revocations fleetca had published (its
//! record of the last CRL, kept outside the database) that the database does not list, and
//! the CRL number it had reached. Restoring an older backup must never un-revoke a
//! certificate nor make CRL numbers go backwards.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

use crate::audit::NewAudit;
use crate::certificates::Revocation;
use crate::entity::certificates::{Column as CertCol, Entity as Certificates};
use crate::entity::crl_state::{Column as CrlCol, Entity as CrlEntity};
use crate::entity::repairs::{ActiveModel as RepairActive, Column as RepairCol, Entity as Repairs};
use crate::entity::restored_revocations::{ActiveModel as RestoredActive, Column as RestoredCol, Entity as Restored};
use crate::{StorageError, Store};

pub use crate::entity::repairs::Model as Repair;

/// What a repair changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Repaired {
    /// Certificates the database held unrevoked, revoked again.
    pub revoked_again: u64,
    /// Published revocations of certificates the database does not know.
    pub unknown_serials: u64,
}

impl Store {
    /// The last CRL number handed out by the CA `issuer`.
    pub async fn crl_number(&self, issuer: i32) -> Result<u64, StorageError> {
        let row = CrlEntity::find_by_id(issuer)
            .one(self.conn())
            .await?
            .ok_or(StorageError::NotFound)?;
        u64::try_from(row.number).map_err(|_| StorageError::Internal("negative CRL number".into()))
    }

    /// Applies the published revocations the database lacks, raises the CRL number to
    /// `published_number` and records the repair, all in one transaction. `not_after` bounds
    /// how long an unknown certificate's revocation stays listed.
    pub async fn repair_from_published(
        &self,
        issuer: i32,
        published: &[Revocation],
        published_number: u64,
        details: serde_json::Value,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<Repaired, StorageError> {
        let txn = self.write_txn().await?;
        let mut repaired = Repaired::default();
        for r in published {
            let updated = Certificates::update_many()
                .col_expr(CertCol::RevokedAt, Expr::value(r.revoked_at))
                .col_expr(CertCol::RevocationReason, Expr::value(r.reason.clone()))
                .filter(CertCol::Serial.eq(r.serial.as_str()))
                .filter(CertCol::RevokedAt.is_null())
                .exec(&txn)
                .await?;
            if updated.rows_affected > 0 {
                repaired.revoked_again += updated.rows_affected;
                continue;
            }
            let known = Certificates::find()
                .filter(CertCol::Serial.eq(r.serial.as_str()))
                .count(&txn)
                .await?;
            if known == 0 {
                let row = RestoredActive {
                    serial: Set(r.serial.clone()),
                    revoked_at: Set(r.revoked_at),
                    reason: Set(r.reason.clone()),
                    not_after: Set(r.not_after),
                    issuer_id: Set(issuer),
                    crl_shard: Set(r.shard),
                };
                Restored::insert(row)
                    .on_conflict(OnConflict::column(RestoredCol::Serial).do_nothing().to_owned())
                    .try_insert()
                    .exec(&txn)
                    .await?;
                repaired.unknown_serials += 1;
            }
        }
        let number = i64::try_from(published_number).map_err(|_| StorageError::Internal("CRL number".into()))?;
        CrlEntity::update_many()
            .col_expr(CrlCol::Number, Expr::value(number))
            .filter(CrlCol::Id.eq(issuer))
            .filter(CrlCol::Number.lt(number))
            .exec(&txn)
            .await?;
        let mut details = details;
        if let Some(map) = details.as_object_mut() {
            map.insert("revoked_again".into(), repaired.revoked_again.into());
            map.insert("unknown_serials".into(), repaired.unknown_serials.into());
        }
        RepairActive {
            id: Set(Uuid::new_v4()),
            at: Set(now),
            details: Set(details.to_string()),
            acknowledged_at: Set(None),
            acknowledged_by: Set(None),
        }
        .insert(&txn)
        .await?;
        let audit: Vec<NewAudit> = audit
            .iter()
            .cloned()
            .map(|mut a| {
                if let Some(map) = a.details.as_object_mut() {
                    map.insert("revoked_again".into(), repaired.revoked_again.into());
                    map.insert("unknown_serials".into(), repaired.unknown_serials.into());
                }
                a
            })
            .collect();
        crate::outbox::append(&txn, &audit, now).await?;
        txn.commit().await?;
        Ok(repaired)
    }

    /// Published revocations of certificates this database does not know, still listed.
    pub async fn restored_revocations(&self, since: DateTime<Utc>) -> Result<Vec<Revocation>, StorageError> {
        Ok(Restored::find()
            .filter(RestoredCol::NotAfter.gt(since))
            .all(self.conn())
            .await?
            .into_iter()
            .map(|r| Revocation {
                serial: r.serial,
                revoked_at: r.revoked_at,
                reason: r.reason,
                not_after: r.not_after,
                issuer_id: r.issuer_id,
                shard: r.crl_shard,
            })
            .collect())
    }

    /// Repairs no admin has acknowledged yet, oldest first.
    pub async fn open_repairs(&self) -> Result<Vec<Repair>, StorageError> {
        Ok(Repairs::find()
            .filter(RepairCol::AcknowledgedAt.is_null())
            .order_by_asc(RepairCol::At)
            .all(self.conn())
            .await?)
    }

    /// Marks a repair acknowledged (once); [`StorageError::NotFound`] when there is no such
    /// open repair.
    pub async fn acknowledge_repair(
        &self,
        id: Uuid,
        by: &str,
        audit: &[NewAudit],
        now: DateTime<Utc>,
    ) -> Result<Repair, StorageError> {
        let txn = self.write_txn().await?;
        let Some(open) = Repairs::find_by_id(id)
            .filter(RepairCol::AcknowledgedAt.is_null())
            .one(&txn)
            .await?
        else {
            return Err(StorageError::NotFound);
        };
        let mut model: RepairActive = open.into();
        model.acknowledged_at = Set(Some(now));
        model.acknowledged_by = Set(Some(by.to_owned()));
        let repair = model.update(&txn).await?;
        crate::rows::commit_audited(txn, audit, now).await?;
        Ok(repair)
    }
}
