//! The CA row and the CRL number.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use crate::entity::authority::{ActiveModel as CaActive, Entity as CaEntity};
use crate::entity::crl_state::{ActiveModel as CrlActive, Column as CrlCol, Entity as CrlEntity};
use crate::{StorageError, Store};

const ROW: i32 = 1;

/// The stored CA: its certificate and sealed key.
#[derive(Clone, Debug)]
pub struct StoredAuthority {
    /// PEM certificate.
    pub certificate_pem: String,
    /// The key, sealed under the master key.
    pub sealed_key: Vec<u8>,
}

impl Store {
    /// The stored CA, if one was created.
    pub async fn load_authority(&self) -> Result<Option<StoredAuthority>, StorageError> {
        Ok(CaEntity::find_by_id(ROW)
            .one(self.conn())
            .await?
            .map(|m| StoredAuthority {
                certificate_pem: m.certificate_pem,
                sealed_key: m.sealed_key,
            }))
    }

    /// Stores a new CA unless one exists, and returns the one that is stored: when two
    /// instances start on an empty database at once, both end up with the winner's CA.
    pub async fn insert_authority(
        &self,
        ca: StoredAuthority,
        now: DateTime<Utc>,
    ) -> Result<StoredAuthority, StorageError> {
        let txn = self.write_txn().await?;
        let inserted = CaActive {
            id: Set(ROW),
            certificate_pem: Set(ca.certificate_pem),
            sealed_key: Set(ca.sealed_key),
            created_at: Set(now),
        }
        .insert(&txn)
        .await;
        match inserted {
            Ok(_) => {
                CrlActive {
                    id: Set(ROW),
                    number: Set(0),
                    this_update: Set(now),
                    next_update: Set(now),
                }
                .insert(&txn)
                .await?;
                txn.commit().await?;
            }
            Err(e) => match StorageError::from(e) {
                StorageError::Conflict(_) => drop(txn),
                other => return Err(other),
            },
        }
        self.load_authority().await?.ok_or(StorageError::NotFound)
    }

    /// Takes the next CRL number and records the CRL's dates, atomically, so no two CRLs
    /// (from any instance) share a number and numbers never go backwards.
    pub async fn next_crl_number(
        &self,
        this_update: DateTime<Utc>,
        next_update: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        let txn = self.write_txn().await?;
        CrlEntity::update_many()
            .col_expr(CrlCol::Number, Expr::col(CrlCol::Number).add(1))
            .col_expr(CrlCol::ThisUpdate, Expr::value(this_update))
            .col_expr(CrlCol::NextUpdate, Expr::value(next_update))
            .filter(CrlCol::Id.eq(ROW))
            .exec(&txn)
            .await?;
        let row = CrlEntity::find_by_id(ROW)
            .one(&txn)
            .await?
            .ok_or(StorageError::NotFound)?;
        txn.commit().await?;
        u64::try_from(row.number).map_err(|_| StorageError::Internal("negative CRL number".into()))
    }
}
