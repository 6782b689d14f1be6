//! [`EventRepository`] and [`WebhookRepository`] in memory. Every call holds the store's one
//! lock, so the feed's commit order is simply the order events were written in, and a claim
//! is exclusive by construction; leases, claim tokens and the retry bookkeeping behave as in
//! PostgreSQL.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use tessera_domain::model::{
    Attempt, AttemptRecord, AuditEvent, ClaimedDelivery, Delivery, DeliveryQuery, DeliveryStats,
    DeliveryStatus, EndpointChanges, FeedCursor, FeedEvent, FeedPage, FeedQuery, NewEndpoint,
    NextStep, Recorded, Redelivered, Redelivery, SealedSecret, WebhookEndpoint,
};
use tessera_domain::ports::{EventRepository, RepoError, RepoResult, WebhookRepository};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::{stored, State};
use crate::MemoryStore;

/// An endpoint with its secrets.
#[derive(Clone)]
pub(crate) struct EndpointRow {
    pub endpoint: WebhookEndpoint,
    pub secret: SealedSecret,
    pub previous_secret: Option<SealedSecret>,
}

/// A delivery with its claim.
#[derive(Clone)]
pub(crate) struct DeliveryRow {
    pub delivery: Delivery,
    pub claim: Option<Uuid>,
    /// The feed position of the event, for ordering and redelivery.
    pub event_seq: i64,
}

/// The webhook tables.
#[derive(Default)]
pub(crate) struct Webhooks {
    pub endpoints: BTreeMap<Uuid, EndpointRow>,
    pub deliveries: HashMap<Uuid, DeliveryRow>,
    /// Delivery id by `(endpoint, event)`: one delivery per pair.
    pub by_pair: HashMap<(Uuid, Uuid), Uuid>,
    pub attempts: Vec<Attempt>,
    /// The feed position fan-out has reached.
    pub fanned_out: i64,
}

fn new_delivery(
    id: Uuid,
    endpoint_id: Uuid,
    event: &tessera_domain::model::Event,
    now: OffsetDateTime,
) -> Delivery {
    Delivery {
        id,
        endpoint_id,
        event_id: event.id,
        event_type: event.event_type,
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: Some(now),
        first_attempt_at: None,
        last_attempt_at: None,
        delivered_at: None,
        last_status_code: None,
        last_error: None,
        created_at: now,
    }
}

/// Why Tessera disabled an endpoint.
const DISABLED_REASON: &str = "every delivery failed for longer than the retry window";
/// What a pending delivery of a disabled endpoint says.
const ENDPOINT_DISABLED: &str = "the endpoint was disabled";

impl State {
    /// A disabled endpoint's pending deliveries fail (redeliver them after enabling it), so
    /// they do not wait in the due queue.
    fn fail_pending(&mut self, endpoint_id: Uuid) {
        for row in self.webhooks.deliveries.values_mut() {
            let d = &mut row.delivery;
            if d.endpoint_id == endpoint_id && d.status == DeliveryStatus::Pending {
                d.status = DeliveryStatus::Failed;
                d.next_attempt_at = None;
                d.last_error = Some(ENDPOINT_DISABLED.into());
                row.claim = None;
            }
        }
    }

    fn event_at(&self, seq: i64) -> Option<&tessera_domain::model::Event> {
        // Sequences are dense and start at 1 until pruning removes a prefix.
        let first = self.events.first()?.0;
        let index = usize::try_from(seq - first).ok()?;
        self.events
            .get(index)
            .filter(|(s, _)| *s == seq)
            .map(|(_, e)| e)
    }

    /// Queues `(endpoint, event)` for an attempt now, creating the delivery if needed.
    fn queue(&mut self, endpoint_id: Uuid, seq: i64, now: OffsetDateTime) {
        let Some(event) = self.event_at(seq).cloned() else {
            return;
        };
        let webhooks = &mut self.webhooks;
        match webhooks.by_pair.get(&(endpoint_id, event.id)) {
            Some(id) => {
                // One being attempted right now keeps its lease: its outcome decides.
                if let Some(row) = webhooks
                    .deliveries
                    .get_mut(id)
                    .filter(|r| r.claim.is_none())
                {
                    let d = &mut row.delivery;
                    d.status = DeliveryStatus::Pending;
                    d.next_attempt_at = Some(now);
                    d.first_attempt_at = None;
                    d.attempts = 0;
                    row.claim = None;
                }
            }
            None => {
                let id = Uuid::now_v7();
                webhooks.by_pair.insert((endpoint_id, event.id), id);
                webhooks.deliveries.insert(
                    id,
                    DeliveryRow {
                        delivery: new_delivery(id, endpoint_id, &event, now),
                        claim: None,
                        event_seq: seq,
                    },
                );
            }
        }
    }
}

#[async_trait]
impl EventRepository for MemoryStore {
    async fn feed(&self, query: FeedQuery) -> RepoResult<FeedPage> {
        let state = self.lock();
        let mut events = Vec::new();
        // Like PostgreSQL's read: a short page continues after everything looked at.
        let mut next = query.after;
        for (seq, event) in &state.events {
            let cursor = FeedCursor { tx: 0, seq: *seq };
            if cursor <= query.after {
                continue;
            }
            next = cursor;
            if (query.types.is_empty() || query.types.contains(&event.event_type))
                && query.subject.is_none_or(|s| event.subject_id == Some(s))
            {
                events.push(FeedEvent {
                    cursor,
                    event: event.clone(),
                });
                if events.len() >= query.limit as usize {
                    break;
                }
            }
        }
        Ok(FeedPage { events, next })
    }

    async fn prune_events(&self, cutoff: OffsetDateTime, limit: u32) -> RepoResult<u64> {
        let mut state = self.lock();
        let old = state
            .events
            .iter()
            .take(limit as usize)
            .take_while(|(_, e)| e.occurred_at < cutoff)
            .count();
        let gone: Vec<Uuid> = state.events.drain(..old).map(|(_, e)| e.id).collect();
        // Deliveries reference their event (ON DELETE CASCADE).
        let webhooks = &mut state.webhooks;
        for event_id in gone {
            let doomed: Vec<(Uuid, Uuid)> = webhooks
                .by_pair
                .keys()
                .filter(|(_, e)| *e == event_id)
                .copied()
                .collect();
            for pair in doomed {
                if let Some(id) = webhooks.by_pair.remove(&pair) {
                    webhooks.deliveries.remove(&id);
                    webhooks.attempts.retain(|a| a.delivery_id != id);
                }
            }
        }
        Ok(old as u64)
    }
}

fn endpoint_of(state: &State, id: Uuid) -> RepoResult<&EndpointRow> {
    state.webhooks.endpoints.get(&id).ok_or(RepoError::NotFound)
}

fn stored_endpoint(mut e: WebhookEndpoint) -> WebhookEndpoint {
    e.created_at = stored(e.created_at);
    e.updated_at = stored(e.updated_at);
    e.failing_since = e.failing_since.map(stored);
    e.previous_secret_expires_at = e.previous_secret_expires_at.map(stored);
    e
}

#[async_trait]
impl WebhookRepository for MemoryStore {
    async fn create_endpoint(
        &self,
        new: NewEndpoint,
        audit: Option<AuditEvent>,
    ) -> RepoResult<WebhookEndpoint> {
        let mut state = self.lock();
        let endpoint = stored_endpoint(new.endpoint);
        state.webhooks.endpoints.insert(
            endpoint.id,
            EndpointRow {
                endpoint: endpoint.clone(),
                secret: new.secret,
                previous_secret: None,
            },
        );
        state.record(audit);
        Ok(endpoint)
    }

    async fn endpoint(&self, id: Uuid) -> RepoResult<WebhookEndpoint> {
        let state = self.lock();
        Ok(endpoint_of(&state, id)?.endpoint.clone())
    }

    async fn endpoints(&self) -> RepoResult<Vec<WebhookEndpoint>> {
        let state = self.lock();
        let mut all: Vec<WebhookEndpoint> = state
            .webhooks
            .endpoints
            .values()
            .map(|r| r.endpoint.clone())
            .collect();
        all.sort_by_key(|e| (e.created_at, e.id));
        Ok(all)
    }

    async fn count_endpoints(&self) -> RepoResult<u64> {
        Ok(self.lock().webhooks.endpoints.len() as u64)
    }

    async fn update_endpoint(
        &self,
        id: Uuid,
        changes: EndpointChanges,
        audit: Option<AuditEvent>,
    ) -> RepoResult<WebhookEndpoint> {
        let mut state = self.lock();
        let row = state
            .webhooks
            .endpoints
            .get_mut(&id)
            .ok_or(RepoError::NotFound)?;
        let e = &mut row.endpoint;
        if let Some(url) = changes.url {
            e.url = url;
        }
        if let Some(d) = changes.description {
            e.description = d;
        }
        if let Some(t) = changes.event_types {
            e.event_types = t;
        }
        let mut disabling = false;
        if let Some(enabled) = changes.enabled {
            if enabled && !e.enabled {
                e.failing_since = None;
                e.disabled_reason = None;
            }
            disabling = !enabled && e.enabled;
            e.enabled = enabled;
        }
        if let Some(now) = changes.now {
            e.updated_at = stored(now);
        }
        let out = e.clone();
        if disabling {
            state.fail_pending(id);
        }
        state.record(audit);
        Ok(out)
    }

    async fn delete_endpoint(&self, id: Uuid, audit: Option<AuditEvent>) -> RepoResult<()> {
        let mut state = self.lock();
        if state.webhooks.endpoints.remove(&id).is_none() {
            return Err(RepoError::NotFound);
        }
        let webhooks = &mut state.webhooks;
        let doomed: Vec<Uuid> = webhooks
            .deliveries
            .values()
            .filter(|r| r.delivery.endpoint_id == id)
            .map(|r| r.delivery.id)
            .collect();
        for d in &doomed {
            webhooks.deliveries.remove(d);
        }
        webhooks.by_pair.retain(|(e, _), _| *e != id);
        webhooks
            .attempts
            .retain(|a| !doomed.contains(&a.delivery_id));
        state.record(audit);
        Ok(())
    }

    async fn rotate_secret(
        &self,
        id: Uuid,
        secret: SealedSecret,
        previous_expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<WebhookEndpoint> {
        let mut state = self.lock();
        let row = state
            .webhooks
            .endpoints
            .get_mut(&id)
            .ok_or(RepoError::NotFound)?;
        let old = std::mem::replace(&mut row.secret, secret);
        row.previous_secret = previous_expires_at.map(|_| old);
        row.endpoint.previous_secret_expires_at = previous_expires_at.map(stored);
        row.endpoint.updated_at = stored(now);
        let out = row.endpoint.clone();
        state.record(audit);
        Ok(out)
    }

    async fn fan_out(&self, limit: u32, now: OffsetDateTime) -> RepoResult<u64> {
        let mut state = self.lock();
        let now = stored(now);
        let from = state.webhooks.fanned_out;
        let batch: Vec<(i64, tessera_domain::model::Event)> = state
            .events
            .iter()
            .filter(|(seq, _)| *seq > from)
            .take(limit as usize)
            .cloned()
            .collect();
        let Some(last) = batch.last().map(|(s, _)| *s) else {
            return Ok(0);
        };
        let endpoints: Vec<WebhookEndpoint> = state
            .webhooks
            .endpoints
            .values()
            .map(|r| r.endpoint.clone())
            .filter(|e| e.enabled)
            .collect();
        for (seq, event) in &batch {
            // An endpoint gets what happens after it is registered (earlier events: redeliver).
            for endpoint in endpoints
                .iter()
                .filter(|e| e.wants(event.event_type) && event.occurred_at >= e.created_at)
            {
                if !state
                    .webhooks
                    .by_pair
                    .contains_key(&(endpoint.id, event.id))
                {
                    state.queue(endpoint.id, *seq, now);
                }
            }
        }
        state.webhooks.fanned_out = last;
        Ok(batch.len() as u64)
    }

    async fn claim(
        &self,
        limit: u32,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> RepoResult<Vec<ClaimedDelivery>> {
        let mut state = self.lock();
        let (now, lease_until) = (stored(now), stored(lease_until));
        let mut due: Vec<(OffsetDateTime, Uuid)> = state
            .webhooks
            .deliveries
            .values()
            .filter(|r| {
                r.delivery.status == DeliveryStatus::Pending
                    && r.delivery.next_attempt_at.is_some_and(|t| t <= now)
                    && state
                        .webhooks
                        .endpoints
                        .get(&r.delivery.endpoint_id)
                        .is_some_and(|e| e.endpoint.enabled)
            })
            .filter_map(|r| r.delivery.next_attempt_at.map(|t| (t, r.delivery.id)))
            .collect();
        due.sort();
        due.truncate(limit as usize);
        let mut out = Vec::with_capacity(due.len());
        for (_, id) in due {
            let claim = Uuid::new_v4();
            let Some(row) = state.webhooks.deliveries.get_mut(&id) else {
                continue;
            };
            row.claim = Some(claim);
            let d = &mut row.delivery;
            d.attempts += 1;
            d.next_attempt_at = Some(lease_until);
            d.last_attempt_at = Some(now);
            let first = *d.first_attempt_at.get_or_insert(now);
            let (attempt, endpoint_id, seq) = (d.attempts, d.endpoint_id, row.event_seq);
            let Some(event) = state.event_at(seq).cloned() else {
                continue;
            };
            let Some(endpoint) = state.webhooks.endpoints.get(&endpoint_id) else {
                continue;
            };
            let mut secrets = vec![endpoint.secret.clone()];
            if let (Some(prev), Some(until)) = (
                &endpoint.previous_secret,
                endpoint.endpoint.previous_secret_expires_at,
            ) {
                if until > now {
                    secrets.push(prev.clone());
                }
            }
            out.push(ClaimedDelivery {
                delivery_id: id,
                claim,
                attempt,
                first_attempt_at: first,
                endpoint_id,
                url: endpoint.endpoint.url.clone(),
                failing_since: endpoint.endpoint.failing_since,
                secrets,
                event,
            });
        }
        Ok(out)
    }

    async fn record_attempt(&self, record: AttemptRecord) -> RepoResult<Recorded> {
        let mut state = self.lock();
        let at = stored(record.attempt.attempted_at);
        let Some(row) = state.webhooks.deliveries.get_mut(&record.delivery_id) else {
            return Ok(Recorded::default());
        };
        if row.claim != Some(record.claim) {
            return Ok(Recorded::default());
        }
        row.claim = None;
        let d = &mut row.delivery;
        d.last_status_code = record.attempt.status_code;
        d.last_error = record.attempt.error.clone();
        let succeeded = matches!(record.next, NextStep::Delivered);
        match record.next {
            NextStep::Delivered => {
                d.status = DeliveryStatus::Delivered;
                d.delivered_at = Some(at);
                d.next_attempt_at = None;
            }
            NextStep::RetryAt(t) => d.next_attempt_at = Some(stored(t)),
            NextStep::GiveUp => {
                d.status = DeliveryStatus::Failed;
                d.next_attempt_at = None;
            }
        }
        let mut attempt = record.attempt;
        attempt.attempted_at = at;
        state.webhooks.attempts.push(attempt);
        let mut disabled = false;
        if let Some(endpoint) = state.webhooks.endpoints.get_mut(&record.endpoint_id) {
            let e = &mut endpoint.endpoint;
            // Disabled once: only while still enabled and failing since then or earlier.
            let disable = record.disable.is_some()
                && e.enabled
                && matches!(
                    (e.failing_since, record.failing_since),
                    (Some(now), Some(judged)) if now <= stored(judged)
                );
            if disable {
                e.enabled = false;
                e.disabled_reason = Some(DISABLED_REASON.into());
                e.updated_at = at;
                disabled = true;
            } else if record.disable.is_none() {
                if succeeded {
                    e.failing_since = None;
                } else if e.failing_since.is_none() {
                    e.failing_since = Some(at);
                }
            }
        }
        if disabled {
            state.fail_pending(record.endpoint_id);
            if let Some(event) = record.disable {
                state.emit(event);
            }
        }
        Ok(Recorded {
            applied: true,
            disabled,
        })
    }

    async fn deliveries(&self, query: DeliveryQuery) -> RepoResult<Vec<Delivery>> {
        let state = self.lock();
        endpoint_of(&state, query.endpoint_id)?;
        let mut all: Vec<&Delivery> = state
            .webhooks
            .deliveries
            .values()
            .map(|r| &r.delivery)
            .filter(|d| {
                d.endpoint_id == query.endpoint_id
                    && query.status.is_none_or(|s| d.status == s)
                    && query.event_id.is_none_or(|e| d.event_id == e)
                    && query.before.is_none_or(|b| d.id < b)
            })
            .collect();
        all.sort_by_key(|d| std::cmp::Reverse(d.id));
        Ok(all
            .into_iter()
            .take(query.limit as usize)
            .cloned()
            .collect())
    }

    async fn delivery(
        &self,
        endpoint_id: Uuid,
        delivery_id: Uuid,
    ) -> RepoResult<(Delivery, Vec<Attempt>)> {
        let state = self.lock();
        let row = state
            .webhooks
            .deliveries
            .get(&delivery_id)
            .filter(|r| r.delivery.endpoint_id == endpoint_id)
            .ok_or(RepoError::NotFound)?;
        let mut attempts: Vec<Attempt> = state
            .webhooks
            .attempts
            .iter()
            .filter(|a| a.delivery_id == delivery_id)
            .cloned()
            .collect();
        attempts.sort_by_key(|a| (a.attempted_at, a.id));
        Ok((row.delivery.clone(), attempts))
    }

    async fn redeliver(
        &self,
        endpoint_id: Uuid,
        what: Redelivery,
        limit: u32,
        now: OffsetDateTime,
    ) -> RepoResult<Redelivered> {
        let mut state = self.lock();
        let now = stored(now);
        let endpoint = endpoint_of(&state, endpoint_id)?.endpoint.clone();
        match what {
            Redelivery::Event(event_id) => {
                let seq = state
                    .events
                    .iter()
                    .find(|(_, e)| e.id == event_id)
                    .map(|(s, _)| *s)
                    .ok_or(RepoError::NotFound)?;
                state.queue(endpoint_id, seq, now);
                Ok(Redelivered {
                    queued: 1,
                    continue_from: None,
                })
            }
            Redelivery::Since(since) => {
                let mut matching: Vec<(OffsetDateTime, Uuid, i64)> = state
                    .events
                    .iter()
                    .filter(|(_, e)| e.occurred_at >= since && endpoint.wants(e.event_type))
                    .map(|(s, e)| (e.occurred_at, e.id, *s))
                    .collect();
                matching.sort();
                matching.truncate(limit as usize + 1);
                let continue_from = (matching.len() > limit as usize)
                    .then(|| matching.last().map(|(at, _, _)| *at))
                    .flatten();
                let mut queued = 0;
                for (_, _, seq) in matching.iter().take(limit as usize) {
                    state.queue(endpoint_id, *seq, now);
                    queued += 1;
                }
                Ok(Redelivered {
                    queued,
                    continue_from,
                })
            }
        }
    }

    async fn stats(&self, now: OffsetDateTime) -> RepoResult<DeliveryStats> {
        let state = self.lock();
        let pending: Vec<&Delivery> = state
            .webhooks
            .deliveries
            .values()
            .map(|r| &r.delivery)
            .filter(|d| d.status == DeliveryStatus::Pending)
            .collect();
        let oldest = pending.iter().map(|d| d.created_at).min();
        Ok(DeliveryStats {
            events_written: u64::try_from(state.event_seq).unwrap_or(0),
            pending: pending.len() as u64,
            oldest_pending_secs: oldest
                .map(|t| u64::try_from((now - t).whole_seconds()).unwrap_or(0))
                .unwrap_or(0),
        })
    }

    async fn prune_deliveries(&self, cutoff: OffsetDateTime, limit: u32) -> RepoResult<u64> {
        let mut state = self.lock();
        let webhooks = &mut state.webhooks;
        let doomed: Vec<Uuid> = webhooks
            .deliveries
            .values()
            .filter(|r| {
                r.delivery.status != DeliveryStatus::Pending && r.delivery.created_at < cutoff
            })
            .map(|r| r.delivery.id)
            .take(limit as usize)
            .collect();
        for id in &doomed {
            if let Some(row) = webhooks.deliveries.remove(id) {
                webhooks
                    .by_pair
                    .remove(&(row.delivery.endpoint_id, row.delivery.event_id));
            }
        }
        webhooks
            .attempts
            .retain(|a| !doomed.contains(&a.delivery_id));
        Ok(doomed.len() as u64)
    }
}
