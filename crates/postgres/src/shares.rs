//! [`ShareRepository`] over the `shares` table.

use async_trait::async_trait;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Bool;
use diesel_async::{AsyncConnection, RunQueryDsl};
use tessera_domain::model::{AuditEvent, NewShare, ScopeSet, Share};
use tessera_domain::ports::{RepoError, RepoResult, ShareRepository};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::record;
use crate::error::{is_foreign_key_violation, map, TxError};
use crate::schema::shares;
use crate::PgStore;

pub(crate) type ShareRow = (Uuid, Uuid, i32, OffsetDateTime, OffsetDateTime);

pub(crate) const SHARE_COLUMNS: (
    shares::owner_id,
    shares::grantee_id,
    shares::scopes,
    shares::created_at,
    shares::updated_at,
) = (
    shares::owner_id,
    shares::grantee_id,
    shares::scopes,
    shares::created_at,
    shares::updated_at,
);

fn share((owner_id, grantee_id, scopes, created_at, updated_at): ShareRow) -> Share {
    Share {
        owner_id,
        grantee_id,
        scopes: ScopeSet::from_bits(scopes),
        created_at,
        updated_at,
    }
}

#[async_trait]
impl ShareRepository for PgStore {
    async fn put(&self, new: NewShare) -> RepoResult<(Share, bool)> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            // `xmax = 0` holds for a freshly inserted row, not for one the upsert updated: the
            // answer comes from the statement itself, so concurrent puts cannot both claim it.
            let (row, inserted): (ShareRow, bool) = diesel::insert_into(shares::table)
                .values((
                    shares::owner_id.eq(new.owner_id),
                    shares::grantee_id.eq(new.grantee_id),
                    shares::scopes.eq(new.scopes.bits()),
                    shares::created_at.eq(new.now),
                    shares::updated_at.eq(new.now),
                ))
                .on_conflict((shares::owner_id, shares::grantee_id))
                .do_update()
                .set((
                    shares::scopes.eq(new.scopes.bits()),
                    shares::updated_at.eq(new.now),
                ))
                .returning((SHARE_COLUMNS, sql::<Bool>("xmax = 0")))
                .get_result(conn)
                .await
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        RepoError::NotFound
                    } else {
                        map(e)
                    }
                })?;
            record(conn, new.audit.as_ref()).await?;
            Ok((share(row), inserted))
        })
        .await
        .map_err(RepoError::from)
    }

    async fn get(&self, owner_id: Uuid, grantee_id: Uuid) -> RepoResult<Share> {
        let mut conn = self.conn().await?;
        let row: ShareRow = shares::table
            .find((owner_id, grantee_id))
            .select(SHARE_COLUMNS)
            .first(&mut conn)
            .await
            .map_err(map)?;
        Ok(share(row))
    }

    async fn update(&self, new: NewShare) -> RepoResult<Share> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            let row: ShareRow = diesel::update(shares::table.find((new.owner_id, new.grantee_id)))
                .set((
                    shares::scopes.eq(new.scopes.bits()),
                    shares::updated_at.eq(new.now),
                ))
                .returning(SHARE_COLUMNS)
                .get_result(conn)
                .await
                .map_err(map)?;
            record(conn, new.audit.as_ref()).await?;
            Ok(share(row))
        })
        .await
        .map_err(RepoError::from)
    }

    async fn delete(
        &self,
        owner_id: Uuid,
        grantee_id: Uuid,
        audit: Option<AuditEvent>,
    ) -> RepoResult<()> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            let deleted = diesel::delete(shares::table.find((owner_id, grantee_id)))
                .execute(conn)
                .await
                .map_err(map)?;
            if deleted == 0 {
                return Err(RepoError::NotFound.into());
            }
            record(conn, audit.as_ref()).await?;
            Ok(())
        })
        .await
        .map_err(RepoError::from)
    }

    async fn granted_by(&self, owner_id: Uuid) -> RepoResult<Vec<Share>> {
        let mut conn = self.conn().await?;
        let rows: Vec<ShareRow> = shares::table
            .filter(shares::owner_id.eq(owner_id))
            .order((shares::created_at, shares::grantee_id))
            .select(SHARE_COLUMNS)
            .load(&mut conn)
            .await
            .map_err(map)?;
        Ok(rows.into_iter().map(share).collect())
    }

    async fn granted_to(&self, grantee_id: Uuid) -> RepoResult<Vec<Share>> {
        let mut conn = self.conn().await?;
        let rows: Vec<ShareRow> = shares::table
            .filter(shares::grantee_id.eq(grantee_id))
            .order((shares::created_at, shares::owner_id))
            .select(SHARE_COLUMNS)
            .load(&mut conn)
            .await
            .map_err(map)?;
        Ok(rows.into_iter().map(share).collect())
    }
}
