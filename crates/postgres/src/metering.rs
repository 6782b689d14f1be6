//! [`MeteringRepository`] on PostgreSQL.
//!
//! A consumption is one transaction of at most six statements, each a single atomic write:
//! - with an `Idempotency-Key`: claim it (`INSERT … ON CONFLICT DO NOTHING`; a concurrent
//!   duplicate waits on the unique index, then answers with the first decision);
//! - `Metered`: one conditional upsert of the day's counter
//!   (`INSERT … ON CONFLICT DO UPDATE SET used = used + n WHERE used + n <= quota`), which
//!   takes the counter row's lock, so concurrent calls of one user are serialised there;
//! - past the quota, or invoiced: one conditional `UPDATE wallets … RETURNING` of the default
//!   wallet (`balance >= charge AND balance > 0`, or `allow_negative`), then its ledger entry;
//! - one upsert of the hourly usage bucket;
//! - with a key: the decision written onto the claim.
//!
//! Rows are always locked in the same order (key, counter, wallet, bucket), so consumptions
//! cannot deadlock one another.

use std::collections::BTreeMap;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Date as SqlDate, Integer, Nullable, Text, Timestamptz};
use diesel::upsert::excluded;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tessera_domain::error::Conflict;
use tessera_domain::model::{
    AuditEvent, Consumption, ConsumptionMode, ConsumptionOutcome, CounterKey, Discount, EntryKind,
    IdempotencyClaim, LedgerEntry, MeteringRates, NewWallet, ResourceId, Source, UsageItem,
    UsagePage, UsageQuery, DEFAULT_WALLET_NAME,
};
use tessera_domain::ports::{MeteringRepository, RepoError, RepoResult};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::audit::record;
use crate::error::{is_foreign_key_violation, map, TxError};
use crate::schema::{usage_buckets, usage_keys, user_discounts, user_quotas, users, wallets};
use crate::wallets::{insert_entry, insert_wallet, lock_user};
use crate::PgStore;

fn resource(raw: &str) -> Result<ResourceId, RepoError> {
    ResourceId::parse("resource_id", raw)
        .map_err(|_| RepoError::Internal(format!("stored resource id {raw:?} is invalid")))
}

fn discount(ppm: i32) -> Result<Discount, RepoError> {
    Discount::from_ppm("discount", i64::from(ppm))
        .map_err(|_| RepoError::Internal(format!("stored discount {ppm} is invalid")))
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A foreign-key failure on the user means the user is gone.
fn user_reference(err: diesel::result::Error) -> TxError {
    if is_foreign_key_violation(&err) {
        TxError(RepoError::NotFound)
    } else {
        TxError(map(err))
    }
}

/// Fails with `NotFound` unless the user exists; key-share locks it so it cannot be purged
/// under the transaction.
async fn user_exists(conn: &mut AsyncPgConnection, user_id: Uuid) -> Result<(), TxError> {
    users::table
        .find(user_id)
        .select(users::id)
        .for_key_share()
        .first::<Uuid>(conn)
        .await
        .optional()
        .map_err(map)?
        .map(|_| ())
        .ok_or(TxError(RepoError::NotFound))
}

#[derive(QueryableByName)]
struct RatesRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    user_quota: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    user_wildcard_quota: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    tier_quota: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    tier_wildcard_quota: Option<i64>,
    #[diesel(sql_type = Nullable<Integer>)]
    user_discount: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    user_wildcard_discount: Option<i32>,
}

const RATES_SQL: &str = "\
SELECT
  (SELECT daily_limit FROM user_quotas WHERE user_id = $1 AND resource_id = $2) AS user_quota,
  (SELECT daily_limit FROM user_quotas WHERE user_id = $1 AND resource_id = '*')
    AS user_wildcard_quota,
  (SELECT tq.daily_limit FROM users u JOIN tier_quotas tq ON tq.tier_id = u.tier_id
    WHERE u.id = $1 AND tq.resource_id = $2) AS tier_quota,
  (SELECT tq.daily_limit FROM users u JOIN tier_quotas tq ON tq.tier_id = u.tier_id
    WHERE u.id = $1 AND tq.resource_id = '*') AS tier_wildcard_quota,
  (SELECT ppm FROM user_discounts WHERE user_id = $1 AND resource_id = $2) AS user_discount,
  (SELECT ppm FROM user_discounts WHERE user_id = $1 AND resource_id = '*')
    AS user_wildcard_discount";

#[derive(QueryableByName)]
struct Bumped {
    #[diesel(sql_type = BigInt)]
    used: i64,
    #[diesel(sql_type = Bool)]
    fitted: bool,
}

/// The day's counter: incremented by `count` only if it stays within `limit`, in one statement
/// (the conflict path locks the row even when its `WHERE` refuses). Returns the counter after
/// the statement and whether the increment happened; a counter that does not exist and could
/// not be created reads as 0.
const BUMP_SQL: &str = "\
WITH up AS (
  INSERT INTO quota_counters (user_id, counter_key, day, used)
  SELECT $1, $2, $3, $4 WHERE $4 <= $5
  ON CONFLICT (user_id, counter_key, day)
  DO UPDATE SET used = quota_counters.used + EXCLUDED.used
  WHERE quota_counters.used + EXCLUDED.used <= $5
  RETURNING used
)
SELECT used, true AS fitted FROM up
UNION ALL
SELECT used, false AS fitted FROM quota_counters
 WHERE user_id = $1 AND counter_key = $2 AND day = $3 AND NOT EXISTS (SELECT 1 FROM up)";

async fn bump(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    counter: CounterKey,
    day: Date,
    count: i64,
    limit: u64,
) -> Result<(bool, i64), TxError> {
    let rows: Vec<Bumped> = diesel::sql_query(BUMP_SQL)
        .bind::<diesel::sql_types::Uuid, _>(user_id)
        .bind::<Text, _>(counter.as_string())
        .bind::<SqlDate, _>(day)
        .bind::<BigInt, _>(count)
        .bind::<BigInt, _>(as_i64(limit))
        .load(conn)
        .await
        .map_err(user_reference)?;
    Ok(rows
        .into_iter()
        .next()
        .map_or((false, 0), |row| (row.fitted, row.used)))
}

/// Takes `amount` from the user's live default wallet in `currency`: only if the balance covers
/// it and is positive, or the wallet may go negative. Returns the wallet and its new balance,
/// or `None` when no row qualified.
async fn take(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    currency: &str,
    amount: i64,
    now: OffsetDateTime,
) -> Result<Option<(Uuid, i64)>, TxError> {
    Ok(diesel::update(
        wallets::table
            .filter(wallets::user_id.eq(user_id))
            .filter(wallets::currency.eq(currency))
            .filter(wallets::is_default)
            .filter(wallets::deleted_at.is_null())
            .filter(
                (wallets::balance - amount)
                    .ge(0)
                    .and(wallets::balance.gt(0))
                    .or(wallets::allow_negative),
            ),
    )
    .set((
        wallets::balance.eq(wallets::balance - amount),
        wallets::updated_at.eq(now),
    ))
    .returning((wallets::id, wallets::balance))
    .get_result(conn)
    .await
    .optional()
    .map_err(map)?)
}

type KeyRow = (
    String,
    Option<String>,
    Option<i64>,
    Option<Uuid>,
    Option<i64>,
    Option<i64>,
);

/// Claims the key. `None`: ours, go ahead. `Some`: the first decision under this key.
async fn claim(
    conn: &mut AsyncPgConnection,
    claim: &IdempotencyClaim,
    user_id: Uuid,
    now: OffsetDateTime,
) -> Result<Option<ConsumptionOutcome>, TxError> {
    let inserted = diesel::insert_into(usage_keys::table)
        .values((
            usage_keys::scope.eq(claim.scope),
            usage_keys::key.eq(&claim.key),
            usage_keys::fingerprint.eq(&claim.fingerprint),
            usage_keys::user_id.eq(user_id),
            usage_keys::created_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map_err(user_reference)?;
    if inserted == 1 {
        return Ok(None);
    }
    // Read committed: this statement sees the row the winner committed.
    let (fingerprint, source, amount, entry_id, balance_after, quota_used): KeyRow =
        usage_keys::table
            .find((claim.scope, &claim.key))
            .select((
                usage_keys::fingerprint,
                usage_keys::source,
                usage_keys::amount_charged,
                usage_keys::entry_id,
                usage_keys::balance_after,
                usage_keys::quota_used,
            ))
            .first(conn)
            .await
            .map_err(map)?;
    if fingerprint != claim.fingerprint {
        return Err(RepoError::Conflict(Conflict::IdempotencyMismatch).into());
    }
    let source = source
        .as_deref()
        .and_then(Source::parse)
        .ok_or_else(|| TxError(RepoError::Internal("usage key without a decision".into())))?;
    Ok(Some(ConsumptionOutcome {
        source,
        amount_charged: amount.unwrap_or(0),
        entry_id,
        balance_after,
        quota_used: quota_used.unwrap_or(0),
        replayed: true,
    }))
}

/// The charge of a consumption, with its ledger entry. `None` when refused.
async fn charge(
    conn: &mut AsyncPgConnection,
    c: &Consumption,
    invoice: bool,
) -> Result<Option<(Uuid, i64)>, TxError> {
    let mut taken = take(conn, c.user_id, &c.currency, c.charge, c.now).await?;
    if taken.is_none() && invoice {
        // An invoiced user without a live default wallet: open one (it copies the invoicing
        // flag under the user's lock) and charge it.
        lock_user(conn, c.user_id).await?;
        if take(conn, c.user_id, &c.currency, 0, c.now)
            .await?
            .is_none()
        {
            insert_wallet(
                conn,
                NewWallet {
                    id: c.new_wallet_id,
                    user_id: c.user_id,
                    name: DEFAULT_WALLET_NAME.to_owned(),
                    currency: c.currency.clone(),
                    now: c.now,
                },
            )
            .await?;
        }
        taken = take(conn, c.user_id, &c.currency, c.charge, c.now).await?;
    }
    let Some((wallet_id, balance_after)) = taken else {
        return Ok(None);
    };
    if c.charge != 0 {
        let entry = LedgerEntry {
            id: c.entry_id,
            wallet_id,
            amount: -c.charge,
            balance_after,
            kind: EntryKind::Usage,
            reason: c.reason.clone(),
            actor_id: c.actor_id,
            transfer_id: None,
            idempotency_key: c.idempotency.as_ref().map(|k| k.key.clone()),
            created_at: c.now,
        };
        insert_entry(conn, &entry).await?;
    }
    Ok(Some((wallet_id, balance_after)))
}

async fn record_bucket(
    conn: &mut AsyncPgConnection,
    c: &Consumption,
    amount: i64,
) -> Result<(), TxError> {
    diesel::insert_into(usage_buckets::table)
        .values((
            usage_buckets::user_id.eq(c.user_id),
            usage_buckets::resource_id.eq(c.resource.to_string()),
            usage_buckets::bucket.eq(c.bucket),
            usage_buckets::count.eq(c.count),
            usage_buckets::amount.eq(amount),
            usage_buckets::input_tokens.eq(c.input_tokens),
            usage_buckets::output_tokens.eq(c.output_tokens),
        ))
        .on_conflict((
            usage_buckets::user_id,
            usage_buckets::resource_id,
            usage_buckets::bucket,
        ))
        .do_update()
        .set((
            usage_buckets::count.eq(usage_buckets::count + excluded(usage_buckets::count)),
            usage_buckets::amount.eq(usage_buckets::amount + excluded(usage_buckets::amount)),
            usage_buckets::input_tokens
                .eq(usage_buckets::input_tokens + excluded(usage_buckets::input_tokens)),
            usage_buckets::output_tokens
                .eq(usage_buckets::output_tokens + excluded(usage_buckets::output_tokens)),
        ))
        .execute(conn)
        .await
        .map_err(user_reference)?;
    Ok(())
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = BigInt)]
    total: i64,
}

#[derive(QueryableByName)]
struct BucketRow {
    #[diesel(sql_type = Timestamptz)]
    bucket: OffsetDateTime,
    #[diesel(sql_type = Nullable<Text>)]
    resource_id: Option<String>,
    #[diesel(sql_type = BigInt)]
    count: i64,
    #[diesel(sql_type = BigInt)]
    amount: i64,
    #[diesel(sql_type = BigInt)]
    input_tokens: i64,
    #[diesel(sql_type = BigInt)]
    output_tokens: i64,
}

const USAGE_FILTER: &str = "user_id = $1 AND ($2::text IS NULL OR resource_id = $2) \
    AND ($3::timestamptz IS NULL OR bucket >= $3) AND ($4::timestamptz IS NULL OR bucket <= $4)";

#[async_trait]
impl MeteringRepository for PgStore {
    async fn quotas(&self, user_id: Uuid) -> RepoResult<BTreeMap<ResourceId, u64>> {
        let mut conn = self.conn().await?;
        let rows: Vec<(String, i64)> = user_quotas::table
            .filter(user_quotas::user_id.eq(user_id))
            .select((user_quotas::resource_id, user_quotas::daily_limit))
            .load(&mut conn)
            .await
            .map_err(map)?;
        rows.into_iter()
            .map(|(r, q)| Ok((resource(&r)?, u64::try_from(q).unwrap_or(0))))
            .collect()
    }

    async fn replace_quotas(
        &self,
        user_id: Uuid,
        quotas: BTreeMap<ResourceId, u64>,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<()> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            user_exists(conn, user_id).await?;
            diesel::delete(user_quotas::table.filter(user_quotas::user_id.eq(user_id)))
                .execute(conn)
                .await
                .map_err(map)?;
            let rows: Vec<_> = quotas
                .iter()
                .map(|(r, q)| {
                    (
                        user_quotas::user_id.eq(user_id),
                        user_quotas::resource_id.eq(r.to_string()),
                        user_quotas::daily_limit.eq(as_i64(*q)),
                        user_quotas::updated_at.eq(now),
                    )
                })
                .collect();
            if !rows.is_empty() {
                diesel::insert_into(user_quotas::table)
                    .values(rows)
                    .execute(conn)
                    .await
                    .map_err(map)?;
            }
            record(conn, audit.as_ref()).await?;
            Ok(())
        })
        .await
        .map_err(RepoError::from)
    }

    async fn discounts(&self, user_id: Uuid) -> RepoResult<BTreeMap<ResourceId, Discount>> {
        let mut conn = self.conn().await?;
        let rows: Vec<(String, i32)> = user_discounts::table
            .filter(user_discounts::user_id.eq(user_id))
            .select((user_discounts::resource_id, user_discounts::ppm))
            .load(&mut conn)
            .await
            .map_err(map)?;
        rows.into_iter()
            .map(|(r, ppm)| Ok((resource(&r)?, discount(ppm)?)))
            .collect()
    }

    async fn replace_discounts(
        &self,
        user_id: Uuid,
        discounts: BTreeMap<ResourceId, Discount>,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<()> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            user_exists(conn, user_id).await?;
            diesel::delete(user_discounts::table.filter(user_discounts::user_id.eq(user_id)))
                .execute(conn)
                .await
                .map_err(map)?;
            let rows: Vec<_> = discounts
                .iter()
                .map(|(r, d)| {
                    (
                        user_discounts::user_id.eq(user_id),
                        user_discounts::resource_id.eq(r.to_string()),
                        user_discounts::ppm.eq(i32::try_from(d.ppm()).unwrap_or(0)),
                        user_discounts::updated_at.eq(now),
                    )
                })
                .collect();
            if !rows.is_empty() {
                diesel::insert_into(user_discounts::table)
                    .values(rows)
                    .execute(conn)
                    .await
                    .map_err(map)?;
            }
            record(conn, audit.as_ref()).await?;
            Ok(())
        })
        .await
        .map_err(RepoError::from)
    }

    async fn rates(&self, user_id: Uuid, resource: &ResourceId) -> RepoResult<MeteringRates> {
        let mut conn = self.conn().await?;
        let row: RatesRow = diesel::sql_query(RATES_SQL)
            .bind::<diesel::sql_types::Uuid, _>(user_id)
            .bind::<Text, _>(resource.to_string())
            .get_result(&mut conn)
            .await
            .map_err(map)?;
        let quota = |q: Option<i64>| q.map(|q| u64::try_from(q).unwrap_or(0));
        Ok(MeteringRates {
            user_quota: quota(row.user_quota),
            user_wildcard_quota: quota(row.user_wildcard_quota),
            tier_quota: quota(row.tier_quota),
            tier_wildcard_quota: quota(row.tier_wildcard_quota),
            user_discount: row.user_discount.map(discount).transpose()?,
            user_wildcard_discount: row.user_wildcard_discount.map(discount).transpose()?,
        })
    }

    async fn counter(&self, user_id: Uuid, counter: CounterKey, day: Date) -> RepoResult<i64> {
        use crate::schema::quota_counters;
        let mut conn = self.conn().await?;
        let used: Option<i64> = quota_counters::table
            .find((user_id, counter.as_string(), day))
            .select(quota_counters::used)
            .first(&mut conn)
            .await
            .optional()
            .map_err(map)?;
        Ok(used.unwrap_or(0))
    }

    async fn consume(&self, c: Consumption) -> RepoResult<ConsumptionOutcome> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            if let Some(k) = &c.idempotency {
                if let Some(first) = claim(conn, k, c.user_id, c.now).await? {
                    return Ok(first);
                }
            }
            let mut outcome = ConsumptionOutcome {
                source: Source::Free,
                amount_charged: 0,
                entry_id: None,
                balance_after: None,
                quota_used: 0,
                replayed: false,
            };
            let paid = match c.mode {
                ConsumptionMode::Free => false,
                ConsumptionMode::Invoice => {
                    outcome.source = Source::Invoice;
                    c.charge > 0
                }
                ConsumptionMode::Metered(q) => {
                    let (fitted, used) =
                        bump(conn, c.user_id, q.counter, c.day, c.count, q.limit).await?;
                    outcome.quota_used = used;
                    outcome.source = if fitted {
                        Source::Quota
                    } else {
                        Source::Balance
                    };
                    !fitted
                }
            };
            if paid {
                let invoice = outcome.source == Source::Invoice;
                let Some((_, balance_after)) = charge(conn, &c, invoice).await? else {
                    return Err(RepoError::Conflict(Conflict::InsufficientFunds).into());
                };
                outcome.amount_charged = c.charge;
                outcome.balance_after = Some(balance_after);
                outcome.entry_id = (c.charge != 0).then_some(c.entry_id);
            }
            record_bucket(conn, &c, outcome.amount_charged).await?;
            if let Some(k) = &c.idempotency {
                diesel::update(usage_keys::table.find((k.scope, &k.key)))
                    .set((
                        usage_keys::source.eq(outcome.source.as_str()),
                        usage_keys::amount_charged.eq(outcome.amount_charged),
                        usage_keys::entry_id.eq(outcome.entry_id),
                        usage_keys::balance_after.eq(outcome.balance_after),
                        usage_keys::quota_used.eq(outcome.quota_used),
                    ))
                    .execute(conn)
                    .await
                    .map_err(map)?;
            }
            Ok(outcome)
        })
        .await
        .map_err(RepoError::from)
    }

    async fn usage(&self, user_id: Uuid, q: UsageQuery) -> RepoResult<UsagePage> {
        let mut conn = self.conn().await?;
        let resource = q.resource.as_ref().map(ToString::to_string);
        let (count_sql, page_sql) = if q.per_resource {
            (
                format!("SELECT count(*) AS total FROM usage_buckets WHERE {USAGE_FILTER}"),
                format!(
                    "SELECT bucket, resource_id, count, amount, input_tokens, output_tokens \
                     FROM usage_buckets WHERE {USAGE_FILTER} \
                     ORDER BY bucket DESC, amount DESC, resource_id LIMIT $5 OFFSET $6"
                ),
            )
        } else {
            (
                format!(
                    "SELECT count(DISTINCT bucket) AS total FROM usage_buckets WHERE {USAGE_FILTER}"
                ),
                format!(
                    "SELECT bucket, NULL::text AS resource_id, sum(count)::bigint AS count, \
                     sum(amount)::bigint AS amount, sum(input_tokens)::bigint AS input_tokens, \
                     sum(output_tokens)::bigint AS output_tokens \
                     FROM usage_buckets WHERE {USAGE_FILTER} \
                     GROUP BY bucket ORDER BY bucket DESC LIMIT $5 OFFSET $6"
                ),
            )
        };
        let total: Total = diesel::sql_query(count_sql)
            .bind::<diesel::sql_types::Uuid, _>(user_id)
            .bind::<Nullable<Text>, _>(resource.clone())
            .bind::<Nullable<Timestamptz>, _>(q.start)
            .bind::<Nullable<Timestamptz>, _>(q.end)
            .get_result(&mut conn)
            .await
            .map_err(map)?;
        let rows: Vec<BucketRow> = diesel::sql_query(page_sql)
            .bind::<diesel::sql_types::Uuid, _>(user_id)
            .bind::<Nullable<Text>, _>(resource)
            .bind::<Nullable<Timestamptz>, _>(q.start)
            .bind::<Nullable<Timestamptz>, _>(q.end)
            .bind::<BigInt, _>(as_i64(q.limit))
            .bind::<BigInt, _>(as_i64(q.offset))
            .load(&mut conn)
            .await
            .map_err(map)?;
        let items = rows
            .into_iter()
            .map(|r| {
                Ok(UsageItem {
                    bucket: r.bucket,
                    resource: r.resource_id.as_deref().map(resource_of).transpose()?,
                    count: r.count,
                    amount: r.amount,
                    input_tokens: r.input_tokens,
                    output_tokens: r.output_tokens,
                })
            })
            .collect::<RepoResult<Vec<_>>>()?;
        Ok(UsagePage {
            total: u64::try_from(total.total).unwrap_or(0),
            items,
        })
    }
}

fn resource_of(raw: &str) -> RepoResult<ResourceId> {
    resource(raw)
}
