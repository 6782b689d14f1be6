//! [`MeteringRepository`] on PostgreSQL.
//!
//! A consumption without an `Idempotency-Key` is **one statement** ([`CONSUME_SQL`]), sent
//! without `BEGIN`/`COMMIT`: a single statement is atomic by itself, so its writes commit
//! together or not at all. It is a chain of data-modifying CTEs, each gated on the one before:
//! - the user (a missing one writes nothing and reads `NotFound`) and, when metered, a key-share
//!   lock of the default wallet;
//! - `Metered`: the conditional upsert of the day's counter
//!   (`INSERT … ON CONFLICT DO UPDATE SET used = used + n WHERE used + n <= quota RETURNING`),
//!   which locks the counter row even when it refuses, so one user's calls serialise there;
//! - past the quota (no row returned), or invoiced: one conditional `UPDATE wallets …
//!   RETURNING` of the default wallet (`balance >= charge AND balance > 0`, or
//!   `allow_negative`), and the ledger entry inserted `SELECT … FROM` that `RETURNING`;
//! - the hourly usage bucket upsert, and the key's decision, only if the call was covered.
//!
//! A refusal therefore writes nothing at all; the statement's result says why (no user, or
//! neither quota nor balance), so no second query is needed. It replaces a transaction of up to
//! six round trips (`BEGIN`, counter, debit, entry, bucket, `COMMIT`). diesel-async would send
//! raw SQL unprepared, parsed and planned on every call; [`Prepared`](crate::prepared::Prepared) keeps it prepared per
//! connection like the query builder's statements.
//!
//! With a key, or for an invoiced user without a default wallet, the same statement runs inside
//! a transaction: the key is claimed first (`INSERT … ON CONFLICT DO NOTHING`; a concurrent
//! duplicate waits on the unique index, then answers with the first decision), or the wallet is
//! opened first. A keyed call is five round trips (`BEGIN`, wallet key share, claim, statement,
//! `COMMIT`).
//!
//! Deadlock-free: rows are locked in one order, the default wallet (key share), the key, the
//! counter, the wallet's debit, the bucket, and the user rows last (the foreign-key checks of new
//! rows, at the end of the statement). The CTEs read one another's results, so each step waits
//! for the one before. That is the order of a purge too (wallets, then the user, then its
//! rows); key share lets balance changes and other consumptions of the wallet through, and a
//! user's calls serialise on the counter row, then on the wallet's debit.

use std::collections::BTreeMap;

use async_trait::async_trait;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{
    BigInt, Bool, Date as SqlDate, Integer, Jsonb, Nullable, Text, Timestamptz,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tessera_domain::error::Conflict;
use tessera_domain::model::{
    AuditEvent, Consumption, ConsumptionMode, ConsumptionOutcome, CounterKey, Discount,
    IdempotencyClaim, MeteringRates, ResourceId, Source, ThresholdOwner, UsageItem, UsagePage,
    UsageQuery, User,
};
use tessera_domain::ports::{MeteringRepository, RepoError, RepoResult};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::audit::record;
use crate::error::{is_foreign_key_violation, map, TxError};
use crate::models::UserRow;
use crate::prepared::Prepared;
use crate::schema::{usage_keys, user_discounts, user_quotas, users, wallets};
use crate::wallets::{insert_wallet, lock_user};
use crate::PgStore;

fn resource(raw: &str) -> Result<ResourceId, RepoError> {
    ResourceId::parse("resource_id", raw)
        .map_err(|_| RepoError::internal(format!("stored resource id {raw:?} is invalid")))
}

fn discount(ppm: i32) -> Result<Discount, RepoError> {
    Discount::from_ppm("discount", i64::from(ppm))
        .map_err(|_| RepoError::internal(format!("stored discount {ppm} is invalid")))
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

/// Rates from their stored rows: quotas (user, user `*`, tier, tier `*`) and discounts (user,
/// user `*`).
fn rates_of(quotas: [Option<i64>; 4], discounts: [Option<i32>; 2]) -> RepoResult<MeteringRates> {
    let quota = |q: Option<i64>| q.map(|q| u64::try_from(q).unwrap_or(0));
    let [user_quota, user_wildcard_quota, tier_quota, tier_wildcard_quota] = quotas.map(quota);
    let [user_discount, user_wildcard_discount] = discounts;
    Ok(MeteringRates {
        user_quota,
        user_wildcard_quota,
        tier_quota,
        tier_wildcard_quota,
        user_discount: user_discount.map(discount).transpose()?,
        user_wildcard_discount: user_wildcard_discount.map(discount).transpose()?,
    })
}

/// One consumption in one statement. Every data-modifying step reads the previous one, which
/// fixes the order they run (and lock) in: the default wallet (key share, metered only), the
/// day's counter, the wallet's debit, then the ledger entry, the hourly bucket and the
/// idempotency key. Parameters:
/// `$1` user, `$2` mode (`free`/`invoice`/`metered`), `$3` counter key, `$4` day, `$5` count,
/// `$6` quota, `$7` charge, `$8` currency, `$9` now, `$10` entry id, `$11` reason, `$12` actor,
/// `$13` idempotency key, `$14` key scope, `$15` resource, `$16` bucket, `$17`/`$18` tokens,
/// `$19` the id of the `quota.exhausted` event (null: the call has no quota to exhaust), `$20`
/// its payload.
const CONSUME_SQL: &str = "\
WITH u AS (
  SELECT id FROM users WHERE id = $1
),
w AS (
  -- Before the counter: a purge locks the wallets before the user's rows, so it waits here
  -- instead of holding the wallet while waiting for our counter row.
  SELECT id FROM wallets
  WHERE user_id = $1 AND currency = $8 AND is_default AND deleted_at IS NULL
  FOR KEY SHARE
),
bump AS (
  -- Only if it stays within the quota; the conflict path locks the row even when it refuses.
  INSERT INTO quota_counters (user_id, counter_key, day, used)
  SELECT u.id, $3, $4, $5 FROM u LEFT JOIN w ON true WHERE $2 = 'metered' AND $5 <= $6
  ON CONFLICT (user_id, counter_key, day)
  DO UPDATE SET used = quota_counters.used + EXCLUDED.used
  WHERE quota_counters.used + EXCLUDED.used <= $6
  RETURNING used
),
exhaust AS (
  -- The first call of the day the quota does not cover marks the counter, once; a refused
  -- call too, since running out is what the event reports.
  INSERT INTO quota_counters (user_id, counter_key, day, used, exhausted_by)
  SELECT u.id, $3, $4, 0, $19 FROM u
  WHERE $2 = 'metered' AND $19 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM bump)
  ON CONFLICT (user_id, counter_key, day) DO UPDATE SET exhausted_by = EXCLUDED.exhausted_by
  WHERE quota_counters.exhausted_by IS NULL
  RETURNING exhausted_by
),
exhausted AS (
  INSERT INTO events (id, type, version, occurred_at, subject_id, actor_id, payload)
  SELECT $19, 'quota.exhausted', 1, $9, $1, $12, $20 FROM exhaust
),
pay AS (
  SELECT ($2 = 'metered' AND NOT EXISTS (SELECT 1 FROM bump)) OR ($2 = 'invoice' AND $7 > 0)
    AS due
),
debit AS (
  UPDATE wallets SET balance = balance - $7, updated_at = $9
  WHERE user_id = $1 AND currency = $8 AND is_default AND deleted_at IS NULL
    AND ((balance - $7 >= 0 AND balance > 0) OR allow_negative)
    AND EXISTS (SELECT 1 FROM u) AND (SELECT due FROM pay)
  RETURNING id, balance
),
entry AS (
  INSERT INTO ledger_entries (id, wallet_id, amount, balance_after, kind, reason, actor_id,
                              transfer_id, idempotency_key, created_at)
  SELECT $10, id, -$7, balance, 'usage', $11, $12, NULL, $13, $9 FROM debit WHERE $7 <> 0
  RETURNING id
),
res AS (
  -- ok: the call is covered; otherwise nothing below writes anything.
  SELECT EXISTS (SELECT 1 FROM u) AS found,
         EXISTS (SELECT 1 FROM u) AND (NOT (SELECT due FROM pay) OR EXISTS (SELECT 1 FROM debit))
           AS ok,
         EXISTS (SELECT 1 FROM bump) AS fitted,
         CASE WHEN $2 = 'metered' THEN coalesce(
           (SELECT used FROM bump),
           (SELECT used FROM quota_counters WHERE user_id = $1 AND counter_key = $3 AND day = $4),
           0) ELSE 0 END AS used,
         (SELECT balance FROM debit) AS balance_after,
         (SELECT id FROM entry) AS entry_id
),
bucket AS (
  INSERT INTO usage_buckets (user_id, resource_id, bucket, count, amount, input_tokens,
                             output_tokens)
  SELECT $1, $15, $16, $5, CASE WHEN balance_after IS NULL THEN 0 ELSE $7 END, $17, $18
  FROM res WHERE ok
  ON CONFLICT (user_id, resource_id, bucket) DO UPDATE SET
    count = usage_buckets.count + EXCLUDED.count,
    amount = usage_buckets.amount + EXCLUDED.amount,
    input_tokens = usage_buckets.input_tokens + EXCLUDED.input_tokens,
    output_tokens = usage_buckets.output_tokens + EXCLUDED.output_tokens
  RETURNING 1
),
k AS (
  UPDATE usage_keys SET
    source = CASE WHEN $2 <> 'metered' THEN $2 WHEN res.fitted THEN 'quota' ELSE 'balance' END,
    amount_charged = CASE WHEN res.balance_after IS NULL THEN 0 ELSE $7 END,
    entry_id = res.entry_id,
    balance_after = res.balance_after,
    quota_used = res.used
  FROM res
  WHERE res.ok AND scope = $14 AND key = $13
  RETURNING 1
)
SELECT found, ok, fitted, used, balance_after FROM res";

#[derive(QueryableByName)]
struct Consumed {
    #[diesel(sql_type = Bool)]
    found: bool,
    #[diesel(sql_type = Bool)]
    ok: bool,
    #[diesel(sql_type = Bool)]
    fitted: bool,
    #[diesel(sql_type = BigInt)]
    used: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    balance_after: Option<i64>,
}

/// What [`consume_once`] did.
enum Once {
    Done(ConsumptionOutcome),
    /// Invoiced, but the user has no live default wallet to charge; nothing was written.
    NeedsWallet,
}

/// Runs [`CONSUME_SQL`]: on its own it is one atomic statement; inside a transaction it is one
/// step of it.
async fn consume_once(conn: &mut AsyncPgConnection, c: &Consumption) -> Result<Once, TxError> {
    let (mode, counter, limit) = match c.mode {
        ConsumptionMode::Free => ("free", CounterKey::Shared, 0),
        ConsumptionMode::Invoice => ("invoice", CounterKey::Shared, 0),
        ConsumptionMode::Metered(q) => ("metered", q.counter, as_i64(q.limit)),
    };
    let key = c.idempotency.as_ref();
    let exhaustion = exhaustion_of(c)?;
    let row: Consumed = Prepared(
        diesel::sql_query(CONSUME_SQL)
            .bind::<diesel::sql_types::Uuid, _>(c.user_id)
            .bind::<Text, _>(mode)
            .bind::<Text, _>(counter.as_string())
            .bind::<SqlDate, _>(c.day)
            .bind::<BigInt, _>(c.count)
            .bind::<BigInt, _>(limit)
            .bind::<BigInt, _>(c.charge)
            .bind::<Text, _>(&c.currency)
            .bind::<Timestamptz, _>(c.now)
            .bind::<diesel::sql_types::Uuid, _>(c.entry_id)
            .bind::<Text, _>(&c.reason)
            .bind::<Nullable<diesel::sql_types::Uuid>, _>(c.actor_id)
            .bind::<Nullable<Text>, _>(key.map(|k| k.key.as_str()))
            .bind::<Nullable<diesel::sql_types::Uuid>, _>(key.map(|k| k.scope))
            .bind::<Text, _>(c.resource.to_string())
            .bind::<Timestamptz, _>(c.bucket)
            .bind::<BigInt, _>(c.input_tokens)
            .bind::<BigInt, _>(c.output_tokens)
            .bind::<Nullable<diesel::sql_types::Uuid>, _>(exhaustion.as_ref().map(|(id, _)| *id))
            .bind::<Nullable<Jsonb>, _>(exhaustion.map(|(_, payload)| payload)),
    )
    .get_result(conn)
    .await
    .map_err(user_reference)?;
    if !row.found {
        return Err(RepoError::NotFound.into());
    }
    let source = match c.mode {
        ConsumptionMode::Free => Source::Free,
        ConsumptionMode::Invoice => Source::Invoice,
        ConsumptionMode::Metered(_) if row.fitted => Source::Quota,
        ConsumptionMode::Metered(_) => Source::Balance,
    };
    if !row.ok {
        return match source {
            Source::Invoice => Ok(Once::NeedsWallet),
            _ => Err(RepoError::Conflict(Conflict::InsufficientFunds).into()),
        };
    }
    let paid = row.balance_after.is_some();
    Ok(Once::Done(ConsumptionOutcome {
        source,
        amount_charged: if paid { c.charge } else { 0 },
        entry_id: (paid && c.charge != 0).then_some(c.entry_id),
        balance_after: row.balance_after,
        quota_used: row.used,
        replayed: false,
    }))
}

/// The `quota.exhausted` event of a consumption, as `(id, payload)`.
fn exhaustion_of(c: &Consumption) -> Result<Option<(Uuid, serde_json::Value)>, TxError> {
    c.exhaustion
        .as_ref()
        .map(|e| {
            serde_json::to_value(&e.payload)
                .map(|p| (e.id, p))
                .map_err(|err| RepoError::internal(format!("cannot encode an event: {err}")).into())
        })
        .transpose()
}

/// A refused call inside a transaction (one with an `Idempotency-Key`) rolls everything back;
/// its `quota.exhausted` mark and event are written afterwards on their own, as the statement
/// would have written them without a key.
const EXHAUST_SQL: &str = "\
WITH exhaust AS (
  INSERT INTO quota_counters (user_id, counter_key, day, used, exhausted_by)
  SELECT id, $2, $3, 0, $4 FROM users WHERE id = $1
  ON CONFLICT (user_id, counter_key, day) DO UPDATE SET exhausted_by = EXCLUDED.exhausted_by
  WHERE quota_counters.exhausted_by IS NULL
  RETURNING exhausted_by
)
INSERT INTO events (id, type, version, occurred_at, subject_id, actor_id, payload)
SELECT $4, 'quota.exhausted', 1, $5, $1, $6, $7 FROM exhaust";

async fn exhaust_after_refusal(
    conn: &mut AsyncPgConnection,
    c: &Consumption,
) -> Result<(), TxError> {
    let (ConsumptionMode::Metered(q), Some((id, payload))) = (c.mode, exhaustion_of(c)?) else {
        return Ok(());
    };
    Prepared(
        diesel::sql_query(EXHAUST_SQL)
            .bind::<diesel::sql_types::Uuid, _>(c.user_id)
            .bind::<Text, _>(q.counter.as_string())
            .bind::<SqlDate, _>(c.day)
            .bind::<diesel::sql_types::Uuid, _>(id)
            .bind::<Timestamptz, _>(c.now)
            .bind::<Nullable<diesel::sql_types::Uuid>, _>(c.actor_id)
            .bind::<Jsonb, _>(payload),
    )
    .execute(conn)
    .await
    .map_err(map)?;
    Ok(())
}

/// Takes `amount` from the user's live default wallet in `currency`: only if the balance covers
/// it and is positive, or the wallet may go negative. Returns the new balance, or `None` when
/// no row qualified.
async fn take(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    currency: &str,
    amount: i64,
    now: OffsetDateTime,
) -> Result<Option<i64>, TxError> {
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
    .returning(wallets::balance)
    .get_result(conn)
    .await
    .optional()
    .map_err(map)?)
}

/// An invoiced user without a live default wallet: opens one (it copies the invoicing flag
/// under the user's lock) unless a concurrent call already did.
async fn open_default_wallet(conn: &mut AsyncPgConnection, c: &Consumption) -> Result<(), TxError> {
    lock_user(conn, c.user_id).await?;
    if take(conn, c.user_id, &c.currency, 0, c.now)
        .await?
        .is_none()
    {
        insert_wallet(conn, c.new_default_wallet()).await?;
    }
    Ok(())
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
        .ok_or_else(|| TxError(RepoError::internal("usage key without a decision")))?;
    Ok(Some(ConsumptionOutcome {
        source,
        amount_charged: amount.unwrap_or(0),
        entry_id,
        balance_after,
        quota_used: quota_used.unwrap_or(0),
        replayed: true,
    }))
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

    async fn balance_thresholds(&self, owner: ThresholdOwner) -> RepoResult<BTreeMap<String, i64>> {
        #[derive(QueryableByName)]
        struct Threshold {
            #[diesel(sql_type = Text)]
            currency: String,
            #[diesel(sql_type = BigInt)]
            threshold: i64,
        }
        let mut conn = self.conn().await?;
        let (sql, id) = match owner {
            ThresholdOwner::User(id) => (
                "SELECT currency, threshold FROM user_balance_thresholds WHERE user_id = $1",
                id,
            ),
            ThresholdOwner::Tier(id) => (
                "SELECT currency, threshold FROM tier_balance_thresholds WHERE tier_id = $1",
                id,
            ),
        };
        let rows: Vec<Threshold> = diesel::sql_query(sql)
            .bind::<diesel::sql_types::Uuid, _>(id)
            .load(&mut conn)
            .await
            .map_err(map)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.currency, r.threshold))
            .collect())
    }

    async fn replace_balance_thresholds(
        &self,
        owner: ThresholdOwner,
        thresholds: BTreeMap<String, i64>,
        audit: Option<AuditEvent>,
    ) -> RepoResult<()> {
        let mut conn = self.conn().await?;
        let (lock, clear, insert, id) = match owner {
            ThresholdOwner::User(id) => (
                "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE",
                "DELETE FROM user_balance_thresholds WHERE user_id = $1",
                "INSERT INTO user_balance_thresholds (user_id, currency, threshold) \
                 SELECT $1, c, t FROM unnest($2::text[], $3::bigint[]) AS x(c, t)",
                id,
            ),
            ThresholdOwner::Tier(id) => (
                "SELECT 1 FROM tiers WHERE id = $1 FOR NO KEY UPDATE",
                "DELETE FROM tier_balance_thresholds WHERE tier_id = $1",
                "INSERT INTO tier_balance_thresholds (tier_id, currency, threshold) \
                 SELECT $1, c, t FROM unnest($2::text[], $3::bigint[]) AS x(c, t)",
                id,
            ),
        };
        let currencies: Vec<&str> = thresholds.keys().map(String::as_str).collect();
        let values: Vec<i64> = thresholds.values().copied().collect();
        conn.transaction(async |conn| -> Result<_, TxError> {
            let found = diesel::sql_query(lock)
                .bind::<diesel::sql_types::Uuid, _>(id)
                .execute(conn)
                .await
                .map_err(map)?;
            if found == 0 {
                return Err(RepoError::NotFound.into());
            }
            diesel::sql_query(clear)
                .bind::<diesel::sql_types::Uuid, _>(id)
                .execute(conn)
                .await
                .map_err(map)?;
            diesel::sql_query(insert)
                .bind::<diesel::sql_types::Uuid, _>(id)
                .bind::<diesel::sql_types::Array<Text>, _>(&currencies)
                .bind::<diesel::sql_types::Array<BigInt>, _>(&values)
                .execute(conn)
                .await
                .map_err(map)?;
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
        rates_of(
            [
                row.user_quota,
                row.user_wildcard_quota,
                row.tier_quota,
                row.tier_wildcard_quota,
            ],
            [row.user_discount, row.user_wildcard_discount],
        )
    }

    async fn consumer(
        &self,
        user_id: Uuid,
        resource: &ResourceId,
    ) -> RepoResult<(User, MeteringRates)> {
        let mut conn = self.conn().await?;
        let r = resource.to_string();
        // RATES_SQL's sub-selects, correlated with the user row instead of a parameter.
        let own = |table: &str, column: &str| {
            sql::<Nullable<BigInt>>(&format!(
                "(SELECT {column}::bigint FROM {table} x WHERE x.user_id = users.id \
                 AND x.resource_id = "
            ))
            .bind::<Text, _>(r.clone())
            .sql(")")
        };
        let wildcard = |table: &str, column: &str| {
            sql::<Nullable<BigInt>>(&format!(
                "(SELECT {column}::bigint FROM {table} x WHERE x.user_id = users.id \
                 AND x.resource_id = '*')"
            ))
        };
        let tier = sql::<Nullable<BigInt>>(
            "(SELECT daily_limit FROM tier_quotas x WHERE x.tier_id = users.tier_id \
             AND x.resource_id = ",
        )
        .bind::<Text, _>(r.clone())
        .sql(")");
        let tier_wildcard = sql::<Nullable<BigInt>>(
            "(SELECT daily_limit FROM tier_quotas x WHERE x.tier_id = users.tier_id \
             AND x.resource_id = '*')",
        );
        type Row = (
            UserRow,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        let (user, uq, uwq, tq, twq, ud, uwd): Row = Prepared(
            users::table
                .find(user_id)
                .select((
                    UserRow::as_select(),
                    own("user_quotas", "daily_limit"),
                    wildcard("user_quotas", "daily_limit"),
                    tier,
                    tier_wildcard,
                    own("user_discounts", "ppm"),
                    wildcard("user_discounts", "ppm"),
                ))
                .limit(1),
        )
        .get_result(&mut conn)
        .await
        .map_err(map)?;
        let ppm = |d: Option<i64>| d.map(|d| i32::try_from(d).unwrap_or(-1));
        Ok((
            user.try_into()?,
            rates_of([uq, uwq, tq, twq], [ppm(ud), ppm(uwd)])?,
        ))
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
        if c.idempotency.is_none() {
            // The common paths: one statement, atomic by itself, no BEGIN/COMMIT.
            if let Once::Done(outcome) = consume_once(&mut conn, &c).await? {
                return Ok(outcome);
            }
        }
        // A key must be claimed before anything is decided, so that a concurrent duplicate
        // waits for the first decision; and an invoiced user without a wallet needs one opened
        // first. Both take a transaction.
        let result = conn
            .transaction(async |conn| -> Result<_, TxError> {
                if let Some(k) = &c.idempotency {
                    // The wallet before the key: the claim's foreign-key checks key-share the user.
                    wallets::table
                        .filter(wallets::user_id.eq(c.user_id))
                        .filter(wallets::currency.eq(&c.currency))
                        .filter(wallets::is_default)
                        .filter(wallets::deleted_at.is_null())
                        .select(wallets::id)
                        .for_key_share()
                        .load::<Uuid>(conn)
                        .await
                        .map_err(map)?;
                    if let Some(first) = claim(conn, k, c.user_id, c.now).await? {
                        return Ok(first);
                    }
                }
                let mut once = consume_once(conn, &c).await?;
                if matches!(once, Once::NeedsWallet) {
                    open_default_wallet(conn, &c).await?;
                    once = consume_once(conn, &c).await?;
                }
                match once {
                    Once::Done(outcome) => Ok(outcome),
                    Once::NeedsWallet => {
                        Err(RepoError::Conflict(Conflict::InsufficientFunds).into())
                    }
                }
            })
            .await
            .map_err(RepoError::from);
        if let Err(RepoError::Conflict(Conflict::InsufficientFunds)) = &result {
            exhaust_after_refusal(&mut conn, &c).await?;
        }
        result
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

    async fn prune_usage_keys(&self, cutoff: OffsetDateTime, limit: u32) -> RepoResult<u64> {
        self.delete_batch(
            "DELETE FROM usage_keys WHERE (scope, key) IN (
                 SELECT scope, key FROM usage_keys WHERE created_at < $1
                 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            cutoff,
            limit,
        )
        .await
    }

    async fn prune_quota_counters(&self, day: Date, limit: u32) -> RepoResult<u64> {
        let mut conn = self.conn().await?;
        let deleted = diesel::sql_query(
            "DELETE FROM quota_counters WHERE (user_id, counter_key, day) IN (
                 SELECT user_id, counter_key, day FROM quota_counters WHERE day < $1
                 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind::<SqlDate, _>(day)
        .bind::<BigInt, _>(i64::from(limit))
        .execute(&mut conn)
        .await
        .map_err(map)?;
        Ok(deleted as u64)
    }
}

fn resource_of(raw: &str) -> RepoResult<ResourceId> {
    resource(raw)
}
