//! The event feed and the webhook delivery queue on PostgreSQL.
//!
//! Events are rows of `events`, written in the transaction of their change (by the other
//! modules through [`insert_event`], and by the trigger on `ledger_entries`). The feed orders
//! them by `(tx, seq)` — the writing transaction's 64-bit id, then the row's sequence — and
//! hands out only rows whose transaction is below `pg_snapshot_xmin(pg_current_snapshot())`:
//! every transaction below that horizon has finished, so a reader continuing from a returned
//! position can never miss a row that commits later, whatever order transactions commit in.
//!
//! Delivery is three short statements, none of which spans the network: fan-out (under the
//! `event_consumers` row lock, so one process at a time), a claim (`FOR UPDATE SKIP LOCKED`,
//! then the lease is written and committed), and the record of the attempt (checked against
//! the claim token, so a worker whose lease ran out cannot overwrite its successor).

use async_trait::async_trait;
use diesel::sql_types::{
    Array, BigInt, Binary, Bool, Integer, Jsonb, Nullable, SmallInt, Text, Timestamptz,
    Uuid as SqlUuid,
};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tessera_domain::model::{
    Attempt, AttemptRecord, AuditEvent, ClaimedDelivery, Delivery, DeliveryQuery, DeliveryStats,
    DeliveryStatus, EndpointChanges, Event, EventPayload, EventType, FeedCursor, FeedEvent,
    FeedPage, FeedQuery, NewEndpoint, NextStep, PayloadKind, Recorded, Redelivered, Redelivery,
    SealedSecret, WebhookEndpoint,
};
use tessera_domain::ports::{EventRepository, RepoError, RepoResult, WebhookRepository};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{map, TxError};
use crate::prepared::Prepared;
use crate::PgStore;

/// Rows one feed read looks at, at most: a filter that matches rarely costs a bounded scan,
/// and the reader continues from where the scan stopped.
const FEED_SCAN: i64 = 5000;

fn encode(what: &str, err: serde_json::Error) -> RepoError {
    RepoError::internal(format!("cannot encode {what}: {err}"))
}

/// Writes `event` on `conn`, inside the caller's transaction.
pub(crate) async fn insert_event(
    conn: &mut AsyncPgConnection,
    event: &Event,
) -> Result<(), RepoError> {
    let payload = serde_json::to_value(&event.payload).map_err(|e| encode("an event", e))?;
    Prepared(
        diesel::sql_query(
            "INSERT INTO events (id, type, version, occurred_at, subject_id, actor_id, payload) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind::<SqlUuid, _>(event.id)
        .bind::<Text, _>(event.event_type.as_str())
        .bind::<SmallInt, _>(i16::try_from(event.version()).unwrap_or(i16::MAX))
        .bind::<Timestamptz, _>(event.occurred_at)
        .bind::<Nullable<SqlUuid>, _>(event.subject_id)
        .bind::<Nullable<SqlUuid>, _>(event.actor_id)
        .bind::<Jsonb, _>(payload),
    )
    .execute(conn)
    .await
    .map_err(map)?;
    Ok(())
}

/// An event's payload from its stored JSON, by the shape its type fixes.
fn payload_of(event_type: EventType, raw: serde_json::Value) -> RepoResult<EventPayload> {
    let bad = |e: serde_json::Error| {
        RepoError::internal(format!(
            "stored {} event does not parse: {e}",
            event_type.as_str()
        ))
    };
    Ok(match event_type.payload_kind() {
        PayloadKind::Changes => EventPayload::Changes(serde_json::from_value(raw).map_err(bad)?),
        PayloadKind::Ledger => EventPayload::Ledger(serde_json::from_value(raw).map_err(bad)?),
        PayloadKind::Quota => EventPayload::Quota(serde_json::from_value(raw).map_err(bad)?),
        PayloadKind::Balance => EventPayload::Balance(serde_json::from_value(raw).map_err(bad)?),
        PayloadKind::Endpoint => EventPayload::Endpoint(serde_json::from_value(raw).map_err(bad)?),
    })
}

fn event_of(
    id: Uuid,
    raw_type: &str,
    occurred_at: OffsetDateTime,
    subject_id: Option<Uuid>,
    actor_id: Option<Uuid>,
    payload: serde_json::Value,
) -> RepoResult<Event> {
    let event_type = EventType::parse(raw_type)
        .ok_or_else(|| RepoError::internal(format!("unknown stored event type {raw_type:?}")))?;
    Ok(Event {
        id,
        event_type,
        occurred_at,
        subject_id,
        actor_id,
        payload: payload_of(event_type, payload)?,
    })
}

fn tx_of(raw: &str) -> RepoResult<u64> {
    raw.parse()
        .map_err(|_| RepoError::internal(format!("unreadable transaction id {raw:?}")))
}

fn limit_of(n: u32) -> i64 {
    i64::from(n)
}

// -- the feed --------------------------------------------------------------------------------

/// One row of a feed read: an event (`last_scanned` false), or the position the scan reached
/// (`last_scanned` true, event columns null).
#[derive(QueryableByName)]
struct FeedRow {
    #[diesel(sql_type = Text)]
    tx: String,
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Bool)]
    last_scanned: bool,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    event_type: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    occurred_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    subject_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    actor_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    payload: Option<serde_json::Value>,
}

/// `$1` tx, `$2` seq of the cursor, `$3` types (empty: all), `$4` page size, `$5` scan bound,
/// `$6` subject (the `_SUBJECT` variant). One statement, so the events and the position the
/// scan reached come from one snapshot.
macro_rules! feed_sql {
    ($scope:literal) => {
        concat!(
            "WITH scanned AS (
               SELECT tx, seq, id, type, occurred_at, subject_id, actor_id, payload FROM events
               WHERE ",
            $scope,
            " (tx, seq) > ($1::text::xid8, $2)
                 AND tx < pg_snapshot_xmin(pg_current_snapshot())
               ORDER BY tx, seq
               LIMIT $5
             ), matched AS (
               SELECT * FROM scanned
               WHERE cardinality($3::text[]) = 0 OR type = ANY($3::text[])
               ORDER BY tx, seq
               LIMIT $4
             )
             SELECT tx::text AS tx, seq, false AS last_scanned, id, type AS event_type,
                    occurred_at, subject_id, actor_id, payload
             FROM matched
             UNION ALL
             (SELECT tx::text, seq, true, NULL, NULL, NULL, NULL, NULL, NULL
              FROM scanned ORDER BY tx DESC, seq DESC LIMIT 1)"
        )
    };
}
const FEED_SQL: &str = feed_sql!("");
const FEED_SUBJECT_SQL: &str = feed_sql!("subject_id = $6 AND");

#[async_trait]
impl EventRepository for PgStore {
    async fn feed(&self, query: FeedQuery) -> RepoResult<FeedPage> {
        let mut conn = self.conn().await?;
        let types: Vec<&str> = query.types.iter().map(|t| t.as_str()).collect();
        let scan = FEED_SCAN.max(limit_of(query.limit));
        let rows: Vec<FeedRow> = match query.subject {
            None => {
                Prepared(
                    diesel::sql_query(FEED_SQL)
                        .bind::<Text, _>(query.after.tx.to_string())
                        .bind::<BigInt, _>(query.after.seq)
                        .bind::<Array<Text>, _>(&types)
                        .bind::<BigInt, _>(limit_of(query.limit))
                        .bind::<BigInt, _>(scan),
                )
                .load(&mut conn)
                .await
            }
            Some(subject) => {
                Prepared(
                    diesel::sql_query(FEED_SUBJECT_SQL)
                        .bind::<Text, _>(query.after.tx.to_string())
                        .bind::<BigInt, _>(query.after.seq)
                        .bind::<Array<Text>, _>(&types)
                        .bind::<BigInt, _>(limit_of(query.limit))
                        .bind::<BigInt, _>(scan)
                        .bind::<SqlUuid, _>(subject),
                )
                .load(&mut conn)
                .await
            }
        }
        .map_err(map)?;
        let mut events = Vec::new();
        let mut scanned_to = None;
        for row in rows {
            let cursor = FeedCursor {
                tx: tx_of(&row.tx)?,
                seq: row.seq,
            };
            if row.last_scanned {
                scanned_to = Some(cursor);
                continue;
            }
            let (Some(id), Some(t), Some(at), Some(payload)) =
                (row.id, row.event_type, row.occurred_at, row.payload)
            else {
                return Err(RepoError::internal("a feed row without its event"));
            };
            events.push(FeedEvent {
                cursor,
                event: event_of(id, &t, at, row.subject_id, row.actor_id, payload)?,
            });
        }
        // A full page continues after its last event; a short one after everything scanned.
        let next = if events.len() >= query.limit as usize {
            events.last().map(|e| e.cursor)
        } else {
            scanned_to
        }
        .unwrap_or(query.after);
        Ok(FeedPage { events, next })
    }

    async fn prune_events(&self, cutoff: OffsetDateTime, limit: u32) -> RepoResult<u64> {
        self.delete_batch(
            "DELETE FROM events WHERE (tx, seq) IN (
               SELECT tx, seq FROM events WHERE occurred_at < $1
               ORDER BY occurred_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
            cutoff,
            limit,
        )
        .await
    }
}

// -- endpoints -------------------------------------------------------------------------------

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, enabled, disabled_reason, \
     failing_since, previous_secret_expires_at, created_at, updated_at";

#[derive(QueryableByName)]
struct EndpointRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Text)]
    description: String,
    #[diesel(sql_type = Array<Text>)]
    event_types: Vec<String>,
    #[diesel(sql_type = Bool)]
    enabled: bool,
    #[diesel(sql_type = Nullable<Text>)]
    disabled_reason: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    failing_since: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    previous_secret_expires_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Timestamptz)]
    created_at: OffsetDateTime,
    #[diesel(sql_type = Timestamptz)]
    updated_at: OffsetDateTime,
}

impl TryFrom<EndpointRow> for WebhookEndpoint {
    type Error = RepoError;

    fn try_from(r: EndpointRow) -> RepoResult<Self> {
        let event_types = r
            .event_types
            .iter()
            .map(|t| {
                EventType::parse(t)
                    .ok_or_else(|| RepoError::internal(format!("unknown stored event type {t:?}")))
            })
            .collect::<RepoResult<Vec<_>>>()?;
        Ok(Self {
            id: r.id,
            url: r.url,
            description: r.description,
            event_types,
            enabled: r.enabled,
            disabled_reason: r.disabled_reason,
            failing_since: r.failing_since,
            previous_secret_expires_at: r.previous_secret_expires_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

fn type_names(types: &[EventType]) -> Vec<&'static str> {
    types.iter().map(|t| t.as_str()).collect()
}

async fn endpoint_on(conn: &mut AsyncPgConnection, id: Uuid) -> RepoResult<WebhookEndpoint> {
    let row: Option<EndpointRow> = diesel::sql_query(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
    ))
    .bind::<SqlUuid, _>(id)
    .get_result(conn)
    .await
    .optional()
    .map_err(map)?;
    row.ok_or(RepoError::NotFound)?.try_into()
}

use diesel::OptionalExtension;

// -- deliveries ------------------------------------------------------------------------------

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_id, event_type, status, attempts, \
     next_attempt_at, first_attempt_at, last_attempt_at, delivered_at, last_status_code, \
     last_error, created_at";

#[derive(QueryableByName)]
struct DeliveryRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    endpoint_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    event_id: Uuid,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    next_attempt_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    first_attempt_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_attempt_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    delivered_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Integer>)]
    last_status_code: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    created_at: OffsetDateTime,
}

fn status_code(raw: Option<i32>) -> Option<u16> {
    raw.and_then(|c| u16::try_from(c).ok())
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = RepoError;

    fn try_from(r: DeliveryRow) -> RepoResult<Self> {
        Ok(Self {
            id: r.id,
            endpoint_id: r.endpoint_id,
            event_id: r.event_id,
            event_type: EventType::parse(&r.event_type).ok_or_else(|| {
                RepoError::internal(format!("unknown stored event type {:?}", r.event_type))
            })?,
            status: DeliveryStatus::parse(&r.status).ok_or_else(|| {
                RepoError::internal(format!("unknown delivery status {:?}", r.status))
            })?,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            next_attempt_at: r.next_attempt_at,
            first_attempt_at: r.first_attempt_at,
            last_attempt_at: r.last_attempt_at,
            delivered_at: r.delivered_at,
            last_status_code: status_code(r.last_status_code),
            last_error: r.last_error,
            created_at: r.created_at,
        })
    }
}

#[derive(QueryableByName)]
struct AttemptRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    delivery_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    attempted_at: OffsetDateTime,
    #[diesel(sql_type = Integer)]
    duration_ms: i32,
    #[diesel(sql_type = Nullable<Integer>)]
    status_code: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    response_excerpt: Option<String>,
}

/// Fan-out: the events after the consumer's position that every writer has finished with, one
/// delivery per enabled endpoint that wants each, and the position moved past them. `$1`/`$2`
/// the position, `$3` the batch size, `$4` now.
const FAN_OUT_SQL: &str = "\
WITH batch AS (
  SELECT tx, seq, id, type, occurred_at FROM events
  WHERE (tx, seq) > ($1::text::xid8, $2) AND tx < pg_snapshot_xmin(pg_current_snapshot())
  ORDER BY tx, seq
  LIMIT $3
), queued AS (
  INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, status,
                                  next_attempt_at, created_at)
  SELECT tessera_uuid_v7($4), e.id, b.id, b.type, 'pending', $4, $4
  FROM batch b
  JOIN webhook_endpoints e
    ON e.enabled AND (cardinality(e.event_types) = 0 OR b.type = ANY(e.event_types))
    -- An endpoint gets what happens after it is registered (earlier events: redeliver).
    AND b.occurred_at >= e.created_at
  ON CONFLICT (endpoint_id, event_id) DO NOTHING
), last AS (
  SELECT tx, seq FROM batch ORDER BY tx DESC, seq DESC LIMIT 1
), moved AS (
  UPDATE event_consumers c SET tx = last.tx, seq = last.seq
  FROM last WHERE c.name = 'webhooks'
)
SELECT count(*) AS n FROM batch";

/// The claim: due pending deliveries of enabled endpoints, skipping rows other workers hold,
/// leased to this one until `$3`. `$1` now, `$2` how many.
const CLAIM_SQL: &str = "\
WITH due AS (
  SELECT d.id FROM webhook_deliveries d
  WHERE d.status = 'pending' AND d.next_attempt_at <= $1
    AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id AND e.enabled)
  ORDER BY d.next_attempt_at
  LIMIT $2
  FOR UPDATE OF d SKIP LOCKED
), claimed AS (
  UPDATE webhook_deliveries d
  SET claim = gen_random_uuid(), attempts = d.attempts + 1, next_attempt_at = $3,
      last_attempt_at = $1, first_attempt_at = coalesce(d.first_attempt_at, $1)
  FROM due WHERE d.id = due.id
  RETURNING d.id, d.claim, d.attempts, d.first_attempt_at, d.endpoint_id, d.event_id
)
SELECT c.id AS delivery_id, c.claim, c.attempts AS attempt, c.first_attempt_at, c.endpoint_id,
       e.url, e.failing_since, e.secret,
       CASE WHEN e.previous_secret_expires_at > $1 THEN e.previous_secret END AS previous_secret,
       ev.id AS event_id, ev.type AS event_type, ev.occurred_at, ev.subject_id, ev.actor_id,
       ev.payload
FROM claimed c
JOIN webhook_endpoints e ON e.id = c.endpoint_id
JOIN events ev ON ev.id = c.event_id";

#[derive(QueryableByName)]
struct ClaimRow {
    #[diesel(sql_type = SqlUuid)]
    delivery_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    claim: Uuid,
    #[diesel(sql_type = Integer)]
    attempt: i32,
    #[diesel(sql_type = Timestamptz)]
    first_attempt_at: OffsetDateTime,
    #[diesel(sql_type = SqlUuid)]
    endpoint_id: Uuid,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    failing_since: Option<OffsetDateTime>,
    #[diesel(sql_type = Binary)]
    secret: Vec<u8>,
    #[diesel(sql_type = Nullable<Binary>)]
    previous_secret: Option<Vec<u8>>,
    #[diesel(sql_type = SqlUuid)]
    event_id: Uuid,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Timestamptz)]
    occurred_at: OffsetDateTime,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    subject_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    actor_id: Option<Uuid>,
    #[diesel(sql_type = Jsonb)]
    payload: serde_json::Value,
}

/// The record of one attempt, in one statement: the delivery (only while `$2` is still its
/// claim), the attempt row, the endpoint's failing state (written only when it changes, so
/// a burst of successes does not queue on the endpoint row) and, when `$11`, the endpoint
/// disabled with its event.
const RECORD_SQL: &str = "\
WITH d AS (
  UPDATE webhook_deliveries SET
    claim = NULL, status = $3, next_attempt_at = $4,
    delivered_at = CASE WHEN $3 = 'delivered' THEN $5 ELSE delivered_at END,
    last_status_code = $6, last_error = $7
  WHERE id = $1 AND claim = $2
  RETURNING id, endpoint_id
), a AS (
  INSERT INTO webhook_attempts (id, delivery_id, attempted_at, duration_ms, status_code, error,
                                response_excerpt)
  SELECT $8, d.id, $5, $9, $6, $7, $10 FROM d
), e AS (
  -- The endpoint's failing state, when this attempt does not disable it.
  UPDATE webhook_endpoints w SET
    failing_since = CASE WHEN $3 = 'delivered' THEN NULL ELSE coalesce(w.failing_since, $5) END
  FROM d
  WHERE w.id = d.endpoint_id AND NOT $11
    AND ($3 = 'delivered') = (w.failing_since IS NOT NULL)
), dis AS (
  -- Disabling happens once: only while the endpoint is still enabled and still failing since
  -- the time the decision was based on ($16). A row lock makes concurrent records wait and
  -- re-check this on the row as the first one left it.
  UPDATE webhook_endpoints w SET enabled = false, disabled_reason = $12, updated_at = $5
  FROM d
  WHERE w.id = d.endpoint_id AND $11 AND w.enabled
    AND w.failing_since IS NOT NULL AND w.failing_since <= $16
  RETURNING w.id
), parked AS (
  -- Its pending deliveries fail (redeliver after enabling it) instead of staying due.
  UPDATE webhook_deliveries p SET status = 'failed', next_attempt_at = NULL, claim = NULL,
    last_error = 'the endpoint was disabled'
  FROM dis
  WHERE p.endpoint_id = dis.id AND p.status = 'pending' AND p.id <> $1
), ev AS (
  INSERT INTO events (id, type, version, occurred_at, subject_id, actor_id, payload)
  SELECT $13, 'webhook_endpoint.disabled', 1, $15, dis.id, NULL, $14 FROM dis
)
SELECT (SELECT count(*) FROM d) AS n, (SELECT count(*) FROM dis) AS disabled";

#[derive(QueryableByName)]
struct RecordedRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = BigInt)]
    disabled: i64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Queue again: `$1` endpoint, `$2` now; the events to queue come from `picked`.
macro_rules! requeue_sql {
    ($picked:literal) => {
        concat!(
            "WITH ep AS (SELECT event_types FROM webhook_endpoints WHERE id = $1), ",
            $picked,
            ", up AS (
               INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, status,
                                               next_attempt_at, created_at)
               SELECT tessera_uuid_v7($2), $1, q.id, q.type, 'pending', $2, $2 FROM queue q
               ON CONFLICT (endpoint_id, event_id) DO UPDATE SET
                 status = 'pending', next_attempt_at = $2, first_attempt_at = NULL,
                 attempts = 0, claim = NULL
               -- One being attempted right now keeps its lease: its outcome decides.
               WHERE webhook_deliveries.claim IS NULL
               RETURNING 1
             )
             SELECT (SELECT count(*) FROM picked) AS found, (SELECT count(*) FROM up) AS queued,
                    (SELECT occurred_at FROM picked ORDER BY occurred_at, id OFFSET $4 LIMIT 1)
                      AS continue_from"
        )
    };
}
/// `$3` the event, `$4` unused beyond the offset (1).
const REDELIVER_ONE_SQL: &str = requeue_sql!(
    "picked AS (SELECT id, type, occurred_at FROM events WHERE id = $3),
     queue AS (SELECT * FROM picked)"
);
/// `$3` since, `$4` the most to queue.
const REDELIVER_SINCE_SQL: &str = requeue_sql!(
    "picked AS (
       SELECT ev.id, ev.type, ev.occurred_at FROM events ev, ep
       WHERE ev.occurred_at >= $3
         AND (cardinality(ep.event_types) = 0 OR ev.type = ANY(ep.event_types))
       ORDER BY ev.occurred_at, ev.id LIMIT $4 + 1
     ),
     queue AS (SELECT * FROM picked ORDER BY occurred_at, id LIMIT $4)"
);

#[derive(QueryableByName)]
struct Requeued {
    #[diesel(sql_type = BigInt)]
    found: i64,
    #[diesel(sql_type = BigInt)]
    queued: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    continue_from: Option<OffsetDateTime>,
}

#[derive(QueryableByName)]
struct Stats {
    #[diesel(sql_type = Nullable<BigInt>)]
    written: Option<i64>,
    #[diesel(sql_type = BigInt)]
    pending: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    oldest: Option<OffsetDateTime>,
}

#[async_trait]
impl WebhookRepository for PgStore {
    async fn create_endpoint(
        &self,
        new: NewEndpoint,
        audit: Option<AuditEvent>,
    ) -> RepoResult<WebhookEndpoint> {
        let mut conn = self.conn().await?;
        let e = new.endpoint;
        conn.transaction(async |conn| -> Result<_, TxError> {
            let row: EndpointRow = diesel::sql_query(format!(
                "INSERT INTO webhook_endpoints (id, url, description, event_types, enabled, \
                   secret, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {ENDPOINT_COLUMNS}"
            ))
            .bind::<SqlUuid, _>(e.id)
            .bind::<Text, _>(&e.url)
            .bind::<Text, _>(&e.description)
            .bind::<Array<Text>, _>(type_names(&e.event_types))
            .bind::<Bool, _>(e.enabled)
            .bind::<Binary, _>(&new.secret.0)
            .bind::<Timestamptz, _>(e.created_at)
            .get_result(conn)
            .await
            .map_err(map)?;
            crate::audit::record(conn, audit.as_ref()).await?;
            Ok(WebhookEndpoint::try_from(row)?)
        })
        .await
        .map_err(RepoError::from)
    }

    async fn endpoint(&self, id: Uuid) -> RepoResult<WebhookEndpoint> {
        let mut conn = self.conn().await?;
        endpoint_on(&mut conn, id).await
    }

    async fn endpoints(&self) -> RepoResult<Vec<WebhookEndpoint>> {
        let mut conn = self.conn().await?;
        let rows: Vec<EndpointRow> = diesel::sql_query(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id"
        ))
        .load(&mut conn)
        .await
        .map_err(map)?;
        rows.into_iter().map(WebhookEndpoint::try_from).collect()
    }

    async fn count_endpoints(&self) -> RepoResult<u64> {
        let mut conn = self.conn().await?;
        let c: Count = diesel::sql_query("SELECT count(*) AS n FROM webhook_endpoints")
            .get_result(&mut conn)
            .await
            .map_err(map)?;
        Ok(u64::try_from(c.n).unwrap_or(0))
    }

    async fn update_endpoint(
        &self,
        id: Uuid,
        changes: EndpointChanges,
        audit: Option<AuditEvent>,
    ) -> RepoResult<WebhookEndpoint> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            let types = changes.event_types.as_deref().map(type_names);
            let row: Option<EndpointRow> = diesel::sql_query(format!(
                "UPDATE webhook_endpoints SET
                   url = coalesce($2, url),
                   description = coalesce($3, description),
                   event_types = coalesce($4, event_types),
                   failing_since = CASE WHEN $5 AND NOT enabled THEN NULL ELSE failing_since END,
                   disabled_reason = CASE WHEN $5 AND NOT enabled THEN NULL
                                          ELSE disabled_reason END,
                   enabled = coalesce($5, enabled),
                   updated_at = coalesce($6, updated_at)
                 WHERE id = $1 RETURNING {ENDPOINT_COLUMNS}"
            ))
            .bind::<SqlUuid, _>(id)
            .bind::<Nullable<Text>, _>(changes.url.as_deref())
            .bind::<Nullable<Text>, _>(changes.description.as_deref())
            .bind::<Nullable<Array<Text>>, _>(types)
            .bind::<Nullable<Bool>, _>(changes.enabled)
            .bind::<Nullable<Timestamptz>, _>(changes.now)
            .get_result(conn)
            .await
            .optional()
            .map_err(map)?;
            let row = row.ok_or(RepoError::NotFound)?;
            if changes.enabled == Some(false) {
                // Pending deliveries of a disabled endpoint fail instead of staying due
                // (redeliver them after enabling it).
                diesel::sql_query(
                    "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL,
                       claim = NULL, last_error = 'the endpoint was disabled'
                     WHERE endpoint_id = $1 AND status = 'pending'",
                )
                .bind::<SqlUuid, _>(id)
                .execute(conn)
                .await
                .map_err(map)?;
            }
            crate::audit::record(conn, audit.as_ref()).await?;
            Ok(WebhookEndpoint::try_from(row)?)
        })
        .await
        .map_err(RepoError::from)
    }

    async fn delete_endpoint(&self, id: Uuid, audit: Option<AuditEvent>) -> RepoResult<()> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            let gone = diesel::sql_query("DELETE FROM webhook_endpoints WHERE id = $1")
                .bind::<SqlUuid, _>(id)
                .execute(conn)
                .await
                .map_err(map)?;
            if gone == 0 {
                return Err(RepoError::NotFound.into());
            }
            crate::audit::record(conn, audit.as_ref()).await?;
            Ok(())
        })
        .await
        .map_err(RepoError::from)
    }

    async fn rotate_secret(
        &self,
        id: Uuid,
        secret: SealedSecret,
        previous_expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<WebhookEndpoint> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            let row: Option<EndpointRow> = diesel::sql_query(format!(
                "UPDATE webhook_endpoints SET
                   previous_secret = CASE WHEN $3::timestamptz IS NULL THEN NULL ELSE secret END,
                   previous_secret_expires_at = $3, secret = $2, updated_at = $4
                 WHERE id = $1 RETURNING {ENDPOINT_COLUMNS}"
            ))
            .bind::<SqlUuid, _>(id)
            .bind::<Binary, _>(&secret.0)
            .bind::<Nullable<Timestamptz>, _>(previous_expires_at)
            .bind::<Timestamptz, _>(now)
            .get_result(conn)
            .await
            .optional()
            .map_err(map)?;
            let row = row.ok_or(RepoError::NotFound)?;
            crate::audit::record(conn, audit.as_ref()).await?;
            Ok(WebhookEndpoint::try_from(row)?)
        })
        .await
        .map_err(RepoError::from)
    }

    async fn fan_out(&self, limit: u32, now: OffsetDateTime) -> RepoResult<u64> {
        #[derive(QueryableByName)]
        struct Position {
            #[diesel(sql_type = Text)]
            tx: String,
            #[diesel(sql_type = BigInt)]
            seq: i64,
        }
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            // One process fans out at a time; the others skip instead of queueing.
            let at: Option<Position> = diesel::sql_query(
                "SELECT tx::text AS tx, seq FROM event_consumers WHERE name = 'webhooks' \
                 FOR UPDATE SKIP LOCKED",
            )
            .get_result(conn)
            .await
            .optional()
            .map_err(map)?;
            let Some(at) = at else {
                return Ok(0);
            };
            let n: Count = Prepared(
                diesel::sql_query(FAN_OUT_SQL)
                    .bind::<Text, _>(at.tx)
                    .bind::<BigInt, _>(at.seq)
                    .bind::<BigInt, _>(limit_of(limit))
                    .bind::<Timestamptz, _>(now),
            )
            .get_result(conn)
            .await
            .map_err(map)?;
            Ok(u64::try_from(n.n).unwrap_or(0))
        })
        .await
        .map_err(RepoError::from)
    }

    async fn claim(
        &self,
        limit: u32,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> RepoResult<Vec<ClaimedDelivery>> {
        let mut conn = self.conn().await?;
        let rows: Vec<ClaimRow> = Prepared(
            diesel::sql_query(CLAIM_SQL)
                .bind::<Timestamptz, _>(now)
                .bind::<BigInt, _>(limit_of(limit))
                .bind::<Timestamptz, _>(lease_until),
        )
        .load(&mut conn)
        .await
        .map_err(map)?;
        rows.into_iter()
            .map(|r| {
                let mut secrets = vec![SealedSecret(r.secret)];
                secrets.extend(r.previous_secret.map(SealedSecret));
                Ok(ClaimedDelivery {
                    delivery_id: r.delivery_id,
                    claim: r.claim,
                    attempt: u32::try_from(r.attempt).unwrap_or(1),
                    first_attempt_at: r.first_attempt_at,
                    endpoint_id: r.endpoint_id,
                    url: r.url,
                    failing_since: r.failing_since,
                    secrets,
                    event: event_of(
                        r.event_id,
                        &r.event_type,
                        r.occurred_at,
                        r.subject_id,
                        r.actor_id,
                        r.payload,
                    )?,
                })
            })
            .collect()
    }

    async fn record_attempt(&self, record: AttemptRecord) -> RepoResult<Recorded> {
        let mut conn = self.conn().await?;
        let (status, next_at) = match record.next {
            NextStep::Delivered => (DeliveryStatus::Delivered, None),
            NextStep::RetryAt(at) => (DeliveryStatus::Pending, Some(at)),
            NextStep::GiveUp => (DeliveryStatus::Failed, None),
        };
        let a = &record.attempt;
        let disable_payload = record
            .disable
            .as_ref()
            .map(|e| serde_json::to_value(&e.payload).map_err(|err| encode("an event", err)))
            .transpose()?;
        let reason = "every delivery failed for longer than the retry window";
        let row: RecordedRow = Prepared(
            diesel::sql_query(RECORD_SQL)
                .bind::<SqlUuid, _>(record.delivery_id)
                .bind::<SqlUuid, _>(record.claim)
                .bind::<Text, _>(status.as_str())
                .bind::<Nullable<Timestamptz>, _>(next_at)
                .bind::<Timestamptz, _>(a.attempted_at)
                .bind::<Nullable<Integer>, _>(a.status_code.map(i32::from))
                .bind::<Nullable<Text>, _>(a.error.as_deref())
                .bind::<SqlUuid, _>(a.id)
                .bind::<Integer, _>(i32::try_from(a.duration_ms).unwrap_or(i32::MAX))
                .bind::<Nullable<Text>, _>(a.response_excerpt.as_deref())
                .bind::<Bool, _>(record.disable.is_some())
                .bind::<Text, _>(reason)
                .bind::<SqlUuid, _>(record.disable.as_ref().map_or(Uuid::nil(), |e| e.id))
                .bind::<Nullable<Jsonb>, _>(disable_payload)
                .bind::<Timestamptz, _>(
                    record
                        .disable
                        .as_ref()
                        .map_or(a.attempted_at, |e| e.occurred_at),
                )
                .bind::<Nullable<Timestamptz>, _>(record.failing_since),
        )
        .get_result(&mut conn)
        .await
        .map_err(map)?;
        Ok(Recorded {
            applied: row.n > 0,
            disabled: row.disabled > 0,
        })
    }

    async fn deliveries(&self, query: DeliveryQuery) -> RepoResult<Vec<Delivery>> {
        let mut conn = self.conn().await?;
        endpoint_on(&mut conn, query.endpoint_id).await?;
        let rows: Vec<DeliveryRow> = diesel::sql_query(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
             WHERE endpoint_id = $1 AND ($2::text IS NULL OR status = $2)
               AND ($3::uuid IS NULL OR event_id = $3) AND ($4::uuid IS NULL OR id < $4)
             ORDER BY id DESC LIMIT $5"
        ))
        .bind::<SqlUuid, _>(query.endpoint_id)
        .bind::<Nullable<Text>, _>(query.status.map(DeliveryStatus::as_str))
        .bind::<Nullable<SqlUuid>, _>(query.event_id)
        .bind::<Nullable<SqlUuid>, _>(query.before)
        .bind::<BigInt, _>(limit_of(query.limit))
        .load(&mut conn)
        .await
        .map_err(map)?;
        rows.into_iter().map(Delivery::try_from).collect()
    }

    async fn delivery(
        &self,
        endpoint_id: Uuid,
        delivery_id: Uuid,
    ) -> RepoResult<(Delivery, Vec<Attempt>)> {
        let mut conn = self.conn().await?;
        let row: Option<DeliveryRow> = diesel::sql_query(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2"
        ))
        .bind::<SqlUuid, _>(delivery_id)
        .bind::<SqlUuid, _>(endpoint_id)
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(map)?;
        let delivery = Delivery::try_from(row.ok_or(RepoError::NotFound)?)?;
        let attempts: Vec<AttemptRow> = diesel::sql_query(
            "SELECT id, delivery_id, attempted_at, duration_ms, status_code, error, \
               response_excerpt \
             FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempted_at, id",
        )
        .bind::<SqlUuid, _>(delivery_id)
        .load(&mut conn)
        .await
        .map_err(map)?;
        let attempts = attempts
            .into_iter()
            .map(|a| Attempt {
                id: a.id,
                delivery_id: a.delivery_id,
                attempted_at: a.attempted_at,
                duration_ms: u32::try_from(a.duration_ms).unwrap_or(0),
                status_code: status_code(a.status_code),
                error: a.error,
                response_excerpt: a.response_excerpt,
            })
            .collect();
        Ok((delivery, attempts))
    }

    async fn redeliver(
        &self,
        endpoint_id: Uuid,
        what: Redelivery,
        limit: u32,
        now: OffsetDateTime,
    ) -> RepoResult<Redelivered> {
        let mut conn = self.conn().await?;
        endpoint_on(&mut conn, endpoint_id).await?;
        let row: Requeued = match what {
            Redelivery::Event(event_id) => {
                Prepared(
                    diesel::sql_query(REDELIVER_ONE_SQL)
                        .bind::<SqlUuid, _>(endpoint_id)
                        .bind::<Timestamptz, _>(now)
                        .bind::<SqlUuid, _>(event_id)
                        .bind::<BigInt, _>(1_i64),
                )
                .get_result(&mut conn)
                .await
            }
            Redelivery::Since(since) => {
                Prepared(
                    diesel::sql_query(REDELIVER_SINCE_SQL)
                        .bind::<SqlUuid, _>(endpoint_id)
                        .bind::<Timestamptz, _>(now)
                        .bind::<Timestamptz, _>(since)
                        .bind::<BigInt, _>(limit_of(limit)),
                )
                .get_result(&mut conn)
                .await
            }
        }
        .map_err(map)?;
        if matches!(what, Redelivery::Event(_)) && row.found == 0 {
            return Err(RepoError::NotFound);
        }
        Ok(Redelivered {
            queued: u64::try_from(row.queued).unwrap_or(0),
            continue_from: row.continue_from,
        })
    }

    async fn stats(&self, now: OffsetDateTime) -> RepoResult<DeliveryStats> {
        let mut conn = self.conn().await?;
        let s: Stats = diesel::sql_query(
            "SELECT pg_sequence_last_value(pg_get_serial_sequence('events', 'seq')) AS written,
                    (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') AS pending,
                    (SELECT min(created_at) FROM webhook_deliveries WHERE status = 'pending')
                      AS oldest",
        )
        .get_result(&mut conn)
        .await
        .map_err(map)?;
        Ok(DeliveryStats {
            events_written: s.written.and_then(|w| u64::try_from(w).ok()).unwrap_or(0),
            pending: u64::try_from(s.pending).unwrap_or(0),
            oldest_pending_secs: s
                .oldest
                .map(|t| u64::try_from((now - t).whole_seconds()).unwrap_or(0))
                .unwrap_or(0),
        })
    }

    async fn prune_deliveries(&self, cutoff: OffsetDateTime, limit: u32) -> RepoResult<u64> {
        self.delete_batch(
            "DELETE FROM webhook_deliveries WHERE id IN (
               SELECT id FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1
               ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
            cutoff,
            limit,
        )
        .await
    }
}
