//! [`ApiKeyRepository`] over `api_keys`, and [`GuardRepository`] over `used_signatures` and
//! `rate_counters`: each guard check is one statement, so it holds across server processes.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};
use tessera_domain::model::{
    ApiKey, ApiKeyScope, ApiKeyScopes, AuditEvent, NewApiKey, User, API_KEY_TOUCH_INTERVAL,
};
use tessera_domain::ports::{ApiKeyRepository, GuardRepository, RepoError, RepoResult};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::record;
use crate::error::{is_foreign_key_violation, map, TxError};
use crate::models::UserRow;
use crate::schema::{api_keys, users};
use crate::PgStore;

type ApiKeyRow = (
    Uuid,
    Uuid,
    String,
    bool,
    String,
    OffsetDateTime,
    Option<OffsetDateTime>,
);

const API_KEY_COLUMNS: (
    api_keys::id,
    api_keys::user_id,
    api_keys::name,
    api_keys::admin,
    api_keys::scopes,
    api_keys::created_at,
    api_keys::last_used_at,
) = (
    api_keys::id,
    api_keys::user_id,
    api_keys::name,
    api_keys::admin,
    api_keys::scopes,
    api_keys::created_at,
    api_keys::last_used_at,
);

fn scopes_text(scopes: ApiKeyScopes) -> String {
    scopes.names().join(",")
}

fn api_key((id, user_id, name, admin, scopes, created_at, last_used_at): ApiKeyRow) -> ApiKey {
    ApiKey {
        id,
        user_id,
        name,
        admin,
        scopes: scopes.split(',').filter_map(ApiKeyScope::parse).collect(),
        created_at,
        last_used_at,
    }
}

#[async_trait]
impl ApiKeyRepository for PgStore {
    async fn create(&self, new: NewApiKey) -> RepoResult<ApiKey> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            let row: ApiKeyRow = diesel::insert_into(api_keys::table)
                .values((
                    api_keys::id.eq(new.id),
                    api_keys::user_id.eq(new.user_id),
                    api_keys::name.eq(&new.name),
                    api_keys::admin.eq(new.admin),
                    api_keys::scopes.eq(scopes_text(new.scopes)),
                    api_keys::digest.eq(&new.digest),
                    api_keys::created_at.eq(new.now),
                ))
                .returning(API_KEY_COLUMNS)
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
            Ok(api_key(row))
        })
        .await
        .map_err(RepoError::from)
    }

    async fn list(&self, user_id: Uuid) -> RepoResult<Vec<ApiKey>> {
        let mut conn = self.conn().await?;
        let rows: Vec<ApiKeyRow> = api_keys::table
            .filter(api_keys::user_id.eq(user_id))
            .order((api_keys::created_at, api_keys::id))
            .select(API_KEY_COLUMNS)
            .load(&mut conn)
            .await
            .map_err(map)?;
        Ok(rows.into_iter().map(api_key).collect())
    }

    async fn revoke(
        &self,
        user_id: Uuid,
        key_id: Uuid,
        audit: Option<AuditEvent>,
    ) -> RepoResult<()> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            let deleted = diesel::delete(
                api_keys::table
                    .filter(api_keys::id.eq(key_id))
                    .filter(api_keys::user_id.eq(user_id)),
            )
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

    async fn find(&self, digest: &str) -> RepoResult<(ApiKey, User)> {
        let mut conn = self.conn().await?;
        let (key, user): (ApiKeyRow, UserRow) = api_keys::table
            .inner_join(users::table)
            .filter(api_keys::digest.eq(digest))
            .select((API_KEY_COLUMNS, UserRow::as_select()))
            .first(&mut conn)
            .await
            .map_err(map)?;
        Ok((api_key(key), user.try_into()?))
    }

    async fn touch(&self, key_id: Uuid, now: OffsetDateTime) -> RepoResult<()> {
        let mut conn = self.conn().await?;
        let stale_before = now - API_KEY_TOUCH_INTERVAL;
        diesel::update(
            api_keys::table.filter(api_keys::id.eq(key_id)).filter(
                api_keys::last_used_at
                    .is_null()
                    .or(api_keys::last_used_at.le(stale_before)),
            ),
        )
        .set(api_keys::last_used_at.eq(now))
        .execute(&mut conn)
        .await
        .map_err(map)?;
        Ok(())
    }
}

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = Bool)]
    claimed: bool,
}

#[derive(QueryableByName)]
struct Hits {
    #[diesel(sql_type = BigInt)]
    hits: i64,
}

#[async_trait]
impl GuardRepository for PgStore {
    async fn claim_signature(
        &self,
        signature: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> RepoResult<bool> {
        let mut conn = self.conn().await?;
        // One statement: prune a few expired records, then insert unless present. Whether a row
        // came back says whether this request is the first to use the signature.
        let rows: Vec<Claimed> = diesel::sql_query(
            "WITH pruned AS (
                 DELETE FROM used_signatures
                 WHERE signature IN (SELECT signature FROM used_signatures
                                     WHERE expires_at < $3 LIMIT 16)
             )
             INSERT INTO used_signatures (signature, expires_at) VALUES ($1, $2)
             ON CONFLICT (signature) DO NOTHING
             RETURNING true AS claimed",
        )
        .bind::<Text, _>(signature)
        .bind::<Timestamptz, _>(expires_at)
        .bind::<Timestamptz, _>(now)
        .load(&mut conn)
        .await
        .map_err(map)?;
        Ok(rows.iter().any(|r| r.claimed))
    }

    async fn hit(
        &self,
        key: &str,
        window_start: OffsetDateTime,
        window_secs: i64,
        now: OffsetDateTime,
    ) -> RepoResult<u64> {
        let mut conn = self.conn().await?;
        let expires_at = window_start + time::Duration::seconds(window_secs);
        let row: Hits = diesel::sql_query(
            "WITH pruned AS (
                 DELETE FROM rate_counters
                 WHERE (key, window_start) IN (SELECT key, window_start FROM rate_counters
                                               WHERE expires_at < $4 LIMIT 16)
             )
             INSERT INTO rate_counters (key, window_start, expires_at, hits)
             VALUES ($1, $2, $3, 1)
             ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_counters.hits + 1
             RETURNING hits",
        )
        .bind::<Text, _>(key)
        .bind::<Timestamptz, _>(window_start)
        .bind::<Timestamptz, _>(expires_at)
        .bind::<Timestamptz, _>(now)
        .get_result(&mut conn)
        .await
        .map_err(map)?;
        Ok(u64::try_from(row.hits).unwrap_or(0))
    }

    async fn count(&self, key: &str, window_start: OffsetDateTime) -> RepoResult<u64> {
        let mut conn = self.conn().await?;
        let row: Option<Hits> = diesel::sql_query(
            "SELECT hits FROM rate_counters WHERE key = $1 AND window_start = $2",
        )
        .bind::<Text, _>(key)
        .bind::<Timestamptz, _>(window_start)
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(map)?;
        Ok(row.map_or(0, |r| u64::try_from(r.hits).unwrap_or(0)))
    }
}
