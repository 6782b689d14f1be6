use std::collections::BTreeMap;

use async_trait::async_trait;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tessera_domain::error::Conflict;
use tessera_domain::model::{AuditEvent, RateLimit, ResourceId, Tier, TierSpec};
use tessera_domain::ports::{RepoError, RepoResult, TierRepository};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::record;
use crate::error::{is_foreign_key_violation, map, TxError};
use crate::schema::{tier_quotas, tier_rate_limits, tiers};
use crate::PgStore;

type TierRow = (Uuid, String, OffsetDateTime, OffsetDateTime);

fn resource(raw: &str) -> RepoResult<ResourceId> {
    ResourceId::parse("resource_id", raw)
        .map_err(|_| RepoError::internal(format!("stored resource id {raw:?} is invalid")))
}

/// Assembles tiers from their rows, quotas and rate limits (rate limits ordered by path).
async fn load(conn: &mut AsyncPgConnection, rows: Vec<TierRow>) -> RepoResult<Vec<Tier>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let quotas: Vec<(Uuid, String, i64)> = tier_quotas::table
        .filter(tier_quotas::tier_id.eq_any(&ids))
        .select((
            tier_quotas::tier_id,
            tier_quotas::resource_id,
            tier_quotas::daily_limit,
        ))
        .load(conn)
        .await
        .map_err(map)?;
    let limits: Vec<(Uuid, String, i32, i32)> = tier_rate_limits::table
        .filter(tier_rate_limits::tier_id.eq_any(&ids))
        .order(sql::<Text>("tier_rate_limits.path COLLATE \"C\""))
        .select((
            tier_rate_limits::tier_id,
            tier_rate_limits::path,
            tier_rate_limits::max_requests,
            tier_rate_limits::period_secs,
        ))
        .load(conn)
        .await
        .map_err(map)?;
    let mut tiers = Vec::with_capacity(rows.len());
    for (id, name, created_at, updated_at) in rows {
        let mut q = BTreeMap::new();
        for (_, res, limit) in quotas.iter().filter(|q| q.0 == id) {
            q.insert(resource(res)?, u64::try_from(*limit).unwrap_or(0));
        }
        let rate_limits = limits
            .iter()
            .filter(|l| l.0 == id)
            .map(|(_, path, max, period)| RateLimit {
                path: path.clone(),
                limit: u32::try_from(*max).unwrap_or(0),
                period_secs: u32::try_from(*period).unwrap_or(0),
            })
            .collect();
        tiers.push(Tier {
            id,
            name,
            quotas: q,
            rate_limits,
            created_at,
            updated_at,
        });
    }
    Ok(tiers)
}

async fn load_one(conn: &mut AsyncPgConnection, id: Uuid) -> RepoResult<Tier> {
    let row: TierRow = tiers::table
        .find(id)
        .select((tiers::id, tiers::name, tiers::created_at, tiers::updated_at))
        .first(conn)
        .await
        .map_err(map)?;
    load(conn, vec![row])
        .await?
        .pop()
        .ok_or(RepoError::NotFound)
}

/// Replaces the quotas and/or rate limits of a tier the spec names.
async fn replace_contents(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    spec: &TierSpec,
) -> Result<(), RepoError> {
    if let Some(quotas) = &spec.quotas {
        diesel::delete(tier_quotas::table.filter(tier_quotas::tier_id.eq(id)))
            .execute(conn)
            .await
            .map_err(map)?;
        let rows: Vec<_> = quotas
            .iter()
            .map(|(res, limit)| {
                (
                    tier_quotas::tier_id.eq(id),
                    tier_quotas::resource_id.eq(res.to_string()),
                    tier_quotas::daily_limit.eq(i64::try_from(*limit).unwrap_or(i64::MAX)),
                )
            })
            .collect();
        if !rows.is_empty() {
            diesel::insert_into(tier_quotas::table)
                .values(rows)
                .execute(conn)
                .await
                .map_err(map)?;
        }
    }
    if let Some(limits) = &spec.rate_limits {
        diesel::delete(tier_rate_limits::table.filter(tier_rate_limits::tier_id.eq(id)))
            .execute(conn)
            .await
            .map_err(map)?;
        let rows: Vec<_> = limits
            .iter()
            .map(|l| {
                (
                    tier_rate_limits::tier_id.eq(id),
                    tier_rate_limits::path.eq(l.path.clone()),
                    tier_rate_limits::max_requests.eq(i32::try_from(l.limit).unwrap_or(i32::MAX)),
                    tier_rate_limits::period_secs
                        .eq(i32::try_from(l.period_secs).unwrap_or(i32::MAX)),
                )
            })
            .collect();
        if !rows.is_empty() {
            diesel::insert_into(tier_rate_limits::table)
                .values(rows)
                .execute(conn)
                .await
                .map_err(map)?;
        }
    }
    Ok(())
}

diesel::define_sql_function!(fn lower(x: Text) -> Text);

#[async_trait]
impl TierRepository for PgStore {
    async fn list(&self) -> RepoResult<Vec<Tier>> {
        let mut conn = self.conn().await?;
        let rows: Vec<TierRow> = tiers::table
            .order((sql::<Text>("lower(tiers.name) COLLATE \"C\""), tiers::id))
            .select((tiers::id, tiers::name, tiers::created_at, tiers::updated_at))
            .load(&mut conn)
            .await
            .map_err(map)?;
        load(&mut conn, rows).await
    }

    async fn get(&self, id: Uuid) -> RepoResult<Tier> {
        let mut conn = self.conn().await?;
        load_one(&mut conn, id).await
    }

    async fn find_by_name(&self, name: &str) -> RepoResult<Tier> {
        let mut conn = self.conn().await?;
        let id: Uuid = tiers::table
            .filter(lower(tiers::name).eq(lower(name)))
            .select(tiers::id)
            .first(&mut conn)
            .await
            .map_err(map)?;
        load_one(&mut conn, id).await
    }

    async fn create(
        &self,
        id: Uuid,
        spec: TierSpec,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<Tier> {
        let name = spec
            .name
            .clone()
            .ok_or_else(|| RepoError::internal("a new tier needs a name"))?;
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            diesel::insert_into(tiers::table)
                .values((
                    tiers::id.eq(id),
                    tiers::name.eq(&name),
                    tiers::created_at.eq(now),
                    tiers::updated_at.eq(now),
                ))
                .execute(conn)
                .await
                .map_err(map)?;
            replace_contents(conn, id, &spec).await?;
            record(conn, audit.as_ref()).await?;
            Ok(load_one(conn, id).await?)
        })
        .await
        .map_err(RepoError::from)
    }

    async fn update(
        &self,
        id: Uuid,
        spec: TierSpec,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<Tier> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            let touched = match &spec.name {
                Some(name) => diesel::update(tiers::table.find(id))
                    .set((tiers::name.eq(name), tiers::updated_at.eq(now)))
                    .execute(conn)
                    .await
                    .map_err(map)?,
                None => diesel::update(tiers::table.find(id))
                    .set(tiers::updated_at.eq(now))
                    .execute(conn)
                    .await
                    .map_err(map)?,
            };
            if touched == 0 {
                return Err(RepoError::NotFound.into());
            }
            replace_contents(conn, id, &spec).await?;
            record(conn, audit.as_ref()).await?;
            Ok(load_one(conn, id).await?)
        })
        .await
        .map_err(RepoError::from)
    }

    async fn delete(&self, id: Uuid, audit: Option<AuditEvent>) -> RepoResult<()> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            // users.tier_id is ON DELETE RESTRICT: a tier in use cannot go, atomically.
            let deleted = diesel::delete(tiers::table.find(id))
                .execute(conn)
                .await
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        RepoError::Conflict(Conflict::TierInUse)
                    } else {
                        map(e)
                    }
                })?;
            if deleted == 0 {
                return Err(RepoError::NotFound.into());
            }
            record(conn, audit.as_ref()).await?;
            Ok(())
        })
        .await
        .map_err(RepoError::from)
    }
}
