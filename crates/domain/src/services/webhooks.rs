//! Events out: the event feed administrators read, the webhook endpoints they register, and the
//! delivery of events to those endpoints.
//!
//! Events are written by the stores with the changes they describe (see `model::event`); this
//! service reads them and moves them on. Delivery is split so that no request waits for it and
//! no transaction spans the network: [`WebhookService::fan_out`] turns newly readable events
//! into deliveries, [`WebhookService::claim`] leases due deliveries to this worker in one
//! statement, and [`WebhookService::deliver`] sends one and records the attempt with what
//! follows from it (retry time, giving up, disabling the endpoint). The server runs these in a
//! loop in every process; an embedding program may run them itself.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::actor::{Access, Actor};
use crate::app::{Ports, TesseraConfig};
use crate::counters::Counters;
use crate::error::{Conflict, Failure, RepoError, ValidationError, WebhookError};
use crate::model::{
    Attempt, AttemptRecord, AuditAction, ClaimedDelivery, Delivery, DeliveryQuery, DeliveryStats,
    DeliveryStatus, EndpointChanges, EndpointPayload, Event, EventPayload, EventType, FeedCursor,
    FeedPage, FeedQuery, NewEndpoint, NextStep, OutgoingWebhook, Redelivered, Redelivery,
    RetryPolicy, SendOutcome, UrlPolicy, WebhookEndpoint, WebhookUrl,
};
use crate::policy;
use crate::ports::{
    Clock, EventRepository, IdGenerator, SecretCipher, SecretGenerator, WebhookRepository,
    WebhookSender,
};
use crate::services::audit;

/// Feed page size when the caller gives none, and the largest.
pub const DEFAULT_FEED_LIMIT: u32 = 100;
pub const MAX_FEED_LIMIT: u32 = 1000;
/// Most event types one filter or one endpoint may name (there are fewer types than this).
pub const MAX_EVENT_TYPES: usize = 64;
/// Delivery page size when the caller gives none, and the largest.
pub const DEFAULT_DELIVERY_LIMIT: u32 = 50;
pub const MAX_DELIVERY_LIMIT: u32 = 500;
/// The longest a previous signing secret may keep signing after a rotation.
pub const MAX_SECRET_OVERLAP: Duration = Duration::from_secs(7 * 24 * 3600);

/// Webhook settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url_policy: UrlPolicy,
    pub retry: RetryPolicy,
    /// Most endpoints the server holds.
    pub max_endpoints: u64,
    /// How long the previous secret signs after a rotation when the request does not say.
    pub default_secret_overlap: Duration,
    /// Most events one redelivery request queues.
    pub max_redeliveries: u32,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            url_policy: UrlPolicy::default(),
            retry: RetryPolicy::default(),
            max_endpoints: 100,
            default_secret_overlap: Duration::from_secs(24 * 3600),
            max_redeliveries: 10_000,
        }
    }
}

/// A feed read as requested, before validation.
#[derive(Debug, Clone, Default)]
pub struct FeedInput {
    pub after: Option<String>,
    pub types: Vec<String>,
    pub subject: Option<Uuid>,
    pub limit: Option<u32>,
}

/// An endpoint as submitted; on update, absent fields are left alone.
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    pub url: Option<String>,
    pub description: Option<String>,
    /// Event type names; empty: every type.
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// A new endpoint with its signing secret, shown this once.
#[derive(Debug, Clone)]
pub struct CreatedEndpoint {
    pub endpoint: WebhookEndpoint,
    pub secret: String,
}

/// A rotated endpoint with its new signing secret, shown this once.
#[derive(Debug, Clone)]
pub struct RotatedSecret {
    pub endpoint: WebhookEndpoint,
    pub secret: String,
}

/// A listing of an endpoint's deliveries as requested.
#[derive(Debug, Clone, Default)]
pub struct DeliveriesInput {
    pub status: Option<String>,
    pub event_id: Option<Uuid>,
    pub before: Option<Uuid>,
    pub limit: Option<u32>,
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryResult {
    Delivered,
    RetryScheduled,
    GaveUp,
    /// Another worker took the delivery over (this one's lease ran out); nothing recorded.
    Superseded,
}

#[derive(Clone)]
pub struct WebhookService {
    events: Arc<dyn EventRepository>,
    webhooks: Arc<dyn WebhookRepository>,
    cipher: Option<Arc<dyn SecretCipher>>,
    sender: Option<Arc<dyn WebhookSender>>,
    secrets: Arc<dyn SecretGenerator>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    config: Arc<TesseraConfig>,
    counters: Arc<Counters>,
}

fn event_types(raw: &[String], field: &'static str) -> Result<Vec<EventType>, ValidationError> {
    if raw.len() > MAX_EVENT_TYPES {
        return Err(ValidationError::new(field, "names too many event types"));
    }
    let mut out = BTreeSet::new();
    for name in raw {
        let t = EventType::parse(name.trim()).ok_or_else(|| {
            ValidationError::new(
                field,
                "names an unknown event type; see GET /api/v1/events/types",
            )
        })?;
        out.insert(t);
    }
    Ok(out.into_iter().collect())
}

fn description(raw: &str) -> Result<String, ValidationError> {
    let d = raw.trim();
    if d.chars().count() > crate::model::MAX_WEBHOOK_DESCRIPTION_LEN
        || d.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(ValidationError::new(
            "description",
            "must be at most 500 printable characters",
        ));
    }
    Ok(d.to_owned())
}

fn limit(raw: Option<u32>, default: u32, max: u32) -> Result<u32, ValidationError> {
    match raw {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(ValidationError::new(
            "limit",
            if max == MAX_FEED_LIMIT {
                "must be between 1 and 1000"
            } else {
                "must be between 1 and 500"
            },
        )),
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

impl WebhookService {
    pub(crate) fn new(
        ports: &Ports,
        config: &Arc<TesseraConfig>,
        counters: &Arc<Counters>,
    ) -> Self {
        Self {
            events: ports.events.clone(),
            webhooks: ports.webhooks.clone(),
            cipher: ports.webhook_cipher.clone(),
            sender: ports.webhook_sender.clone(),
            secrets: ports.secrets.clone(),
            clock: ports.clock.clone(),
            ids: ports.ids.clone(),
            config: config.clone(),
            counters: counters.clone(),
        }
    }

    fn policy(&self) -> &WebhookConfig {
        &self.config.webhooks
    }

    fn record(
        &self,
        actor: &Actor,
        target: Uuid,
        action: AuditAction,
        fields: Vec<(&str, Option<String>, Option<String>)>,
    ) -> crate::model::AuditEvent {
        let changes = fields
            .into_iter()
            .map(|(f, before, after)| (f.to_owned(), crate::model::FieldChange { before, after }))
            .collect();
        audit::event(
            self.ids.new_id(),
            self.clock.now(),
            Some(actor),
            Some(target),
            action,
            changes,
        )
    }

    // -- the feed ---------------------------------------------------------------------------

    /// `GET /api/v1/events`: events after a cursor, in feed order. Administrators only.
    pub async fn feed(&self, actor: &Actor, input: FeedInput) -> Result<FeedPage, WebhookError> {
        policy::authorize(actor, Access::Read)?;
        policy::ensure_can_read_events(actor)?;
        let after = match input.after.as_deref() {
            None | Some("") => FeedCursor::START,
            Some(raw) => FeedCursor::decode(raw).ok_or_else(|| {
                ValidationError::new("after", "is not a cursor this feed returned")
            })?,
        };
        let query = FeedQuery {
            after,
            types: event_types(&input.types, "types")?,
            subject: input.subject,
            limit: limit(input.limit, DEFAULT_FEED_LIMIT, MAX_FEED_LIMIT)?,
        };
        Ok(self.events.feed(query).await.map_err(Failure::from)?)
    }

    // -- endpoints --------------------------------------------------------------------------

    fn url(&self, raw: &str) -> Result<WebhookUrl, ValidationError> {
        WebhookUrl::parse(raw.trim(), self.policy().url_policy)
    }

    fn cipher(&self) -> Result<&Arc<dyn SecretCipher>, WebhookError> {
        self.cipher
            .as_ref()
            .ok_or(WebhookError::Failure(Failure::Conflict(
                Conflict::WebhooksNotConfigured,
            )))
    }

    /// `POST /api/v1/webhooks`: registers an endpoint; the signing secret is returned once.
    pub async fn create_endpoint(
        &self,
        actor: &Actor,
        input: EndpointInput,
    ) -> Result<CreatedEndpoint, WebhookError> {
        policy::authorize(actor, Access::Write)?;
        policy::ensure_can_manage_webhooks(actor)?;
        let url = self.url(
            input
                .url
                .as_deref()
                .ok_or_else(|| ValidationError::new("url", "is required"))?,
        )?;
        let description = description(input.description.as_deref().unwrap_or(""))?;
        let types = event_types(input.event_types.as_deref().unwrap_or(&[]), "event_types")?;
        let cipher = self.cipher()?;
        if self
            .webhooks
            .count_endpoints()
            .await
            .map_err(Failure::from)?
            >= self.policy().max_endpoints
        {
            return Err(Failure::Conflict(Conflict::TooMany).into());
        }
        let secret = self.secrets.new_webhook_secret();
        let sealed = cipher.seal(&secret)?;
        let now = self.clock.now();
        let endpoint = WebhookEndpoint {
            id: self.ids.new_id(),
            url: url.as_str().to_owned(),
            description,
            event_types: types,
            enabled: input.enabled.unwrap_or(true),
            disabled_reason: None,
            failing_since: None,
            previous_secret_expires_at: None,
            created_at: now,
            updated_at: now,
        };
        let audit = self.record(
            actor,
            endpoint.id,
            AuditAction::WebhookEndpointCreated,
            vec![
                ("url", None, Some(endpoint.url.clone())),
                ("event_types", None, Some(type_names(&endpoint.event_types))),
                ("enabled", None, Some(endpoint.enabled.to_string())),
                ("secret", None, Some("(changed)".into())),
            ],
        );
        let endpoint = self
            .webhooks
            .create_endpoint(
                NewEndpoint {
                    endpoint,
                    secret: sealed,
                },
                Some(audit),
            )
            .await
            .map_err(Failure::from)?;
        Ok(CreatedEndpoint { endpoint, secret })
    }

    pub async fn endpoints(&self, actor: &Actor) -> Result<Vec<WebhookEndpoint>, WebhookError> {
        policy::authorize(actor, Access::Read)?;
        policy::ensure_can_manage_webhooks(actor)?;
        Ok(self.webhooks.endpoints().await.map_err(Failure::from)?)
    }

    pub async fn endpoint(&self, actor: &Actor, id: Uuid) -> Result<WebhookEndpoint, WebhookError> {
        policy::authorize(actor, Access::Read)?;
        policy::ensure_can_manage_webhooks(actor)?;
        Ok(self.webhooks.endpoint(id).await?)
    }

    /// `PATCH /api/v1/webhooks/{id}`. Enabling a disabled endpoint starts its failure clock
    /// afresh; its pending deliveries resume.
    pub async fn update_endpoint(
        &self,
        actor: &Actor,
        id: Uuid,
        input: EndpointInput,
    ) -> Result<WebhookEndpoint, WebhookError> {
        policy::authorize(actor, Access::Write)?;
        policy::ensure_can_manage_webhooks(actor)?;
        let before = self.webhooks.endpoint(id).await?;
        let changes = EndpointChanges {
            url: input
                .url
                .as_deref()
                .map(|u| self.url(u).map(|u| u.as_str().to_owned()))
                .transpose()?,
            description: input.description.as_deref().map(description).transpose()?,
            event_types: input
                .event_types
                .as_deref()
                .map(|t| event_types(t, "event_types"))
                .transpose()?,
            enabled: input.enabled,
            now: Some(self.clock.now()),
        };
        let mut fields = Vec::new();
        if let Some(url) = &changes.url {
            fields.push(("url", Some(before.url.clone()), Some(url.clone())));
        }
        if let Some(d) = &changes.description {
            fields.push((
                "description",
                Some(before.description.clone()),
                Some(d.clone()),
            ));
        }
        if let Some(t) = &changes.event_types {
            fields.push((
                "event_types",
                Some(type_names(&before.event_types)),
                Some(type_names(t)),
            ));
        }
        if let Some(e) = changes.enabled {
            fields.push((
                "enabled",
                Some(before.enabled.to_string()),
                Some(e.to_string()),
            ));
        }
        let audit = self.record(actor, id, AuditAction::WebhookEndpointUpdated, fields);
        Ok(self
            .webhooks
            .update_endpoint(id, changes, Some(audit))
            .await?)
    }

    pub async fn delete_endpoint(&self, actor: &Actor, id: Uuid) -> Result<(), WebhookError> {
        policy::authorize(actor, Access::Write)?;
        policy::ensure_can_manage_webhooks(actor)?;
        let before = self.webhooks.endpoint(id).await?;
        let audit = self.record(
            actor,
            id,
            AuditAction::WebhookEndpointDeleted,
            vec![("url", Some(before.url), None)],
        );
        Ok(self.webhooks.delete_endpoint(id, Some(audit)).await?)
    }

    /// `POST /api/v1/webhooks/{id}/secret`: a new signing secret, returned once. The previous
    /// one keeps signing for `overlap` (default `webhooks.secret_overlap_secs`, at most 7
    /// days; 0 stops it at once), so receivers can switch without missing a delivery.
    pub async fn rotate_secret(
        &self,
        actor: &Actor,
        id: Uuid,
        overlap_secs: Option<u64>,
    ) -> Result<RotatedSecret, WebhookError> {
        policy::authorize(actor, Access::Write)?;
        policy::ensure_can_manage_webhooks(actor)?;
        let overlap = match overlap_secs {
            None => self.policy().default_secret_overlap,
            Some(s) if Duration::from_secs(s) <= MAX_SECRET_OVERLAP => Duration::from_secs(s),
            Some(_) => {
                return Err(
                    ValidationError::new("overlap_secs", "must be at most 604800 (7 days)").into(),
                )
            }
        };
        let cipher = self.cipher()?;
        self.webhooks.endpoint(id).await?;
        let secret = self.secrets.new_webhook_secret();
        let sealed = cipher.seal(&secret)?;
        let now = self.clock.now();
        let expires = (!overlap.is_zero()).then(|| now + overlap);
        let audit = self.record(
            actor,
            id,
            AuditAction::WebhookSecretRotated,
            vec![
                ("secret", None, Some("(changed)".into())),
                ("previous_secret_expires_at", None, expires.map(rfc3339)),
            ],
        );
        let endpoint = self
            .webhooks
            .rotate_secret(id, sealed, expires, now, Some(audit))
            .await?;
        Ok(RotatedSecret { endpoint, secret })
    }

    pub async fn deliveries(
        &self,
        actor: &Actor,
        endpoint_id: Uuid,
        input: DeliveriesInput,
    ) -> Result<Vec<Delivery>, WebhookError> {
        policy::authorize(actor, Access::Read)?;
        policy::ensure_can_manage_webhooks(actor)?;
        let status = input
            .status
            .as_deref()
            .map(|s| {
                DeliveryStatus::parse(s).ok_or_else(|| {
                    ValidationError::new("status", "must be pending, delivered or failed")
                })
            })
            .transpose()?;
        let query = DeliveryQuery {
            endpoint_id,
            status,
            event_id: input.event_id,
            before: input.before,
            limit: limit(input.limit, DEFAULT_DELIVERY_LIMIT, MAX_DELIVERY_LIMIT)?,
        };
        Ok(self.webhooks.deliveries(query).await?)
    }

    pub async fn delivery(
        &self,
        actor: &Actor,
        endpoint_id: Uuid,
        delivery_id: Uuid,
    ) -> Result<(Delivery, Vec<Attempt>), WebhookError> {
        policy::authorize(actor, Access::Read)?;
        policy::ensure_can_manage_webhooks(actor)?;
        self.webhooks.endpoint(endpoint_id).await?;
        self.webhooks
            .delivery(endpoint_id, delivery_id)
            .await
            .map_err(|e| match e {
                RepoError::NotFound => WebhookError::DeliveryNotFound,
                other => other.into(),
            })
    }

    /// `POST /api/v1/webhooks/{id}/redeliver`: one event again, or everything the endpoint
    /// subscribes to since a time (at most `webhooks.max_redeliveries` per request; the answer
    /// says where to continue).
    pub async fn redeliver(
        &self,
        actor: &Actor,
        endpoint_id: Uuid,
        what: Redelivery,
    ) -> Result<Redelivered, WebhookError> {
        policy::authorize(actor, Access::Write)?;
        policy::ensure_can_manage_webhooks(actor)?;
        self.webhooks.endpoint(endpoint_id).await?;
        let now = self.clock.now();
        if let Redelivery::Since(since) = what {
            if since > now {
                return Err(ValidationError::new("since", "must not be in the future").into());
            }
        }
        self.webhooks
            .redeliver(endpoint_id, what, self.policy().max_redeliveries, now)
            .await
            .map_err(|e| match (e, what) {
                (RepoError::NotFound, Redelivery::Event(_)) => WebhookError::EventNotFound,
                (other, _) => other.into(),
            })
    }

    // -- delivery (the system; no caller) ----------------------------------------------------

    /// Whether this object can deliver: it has a sender and a cipher.
    pub fn delivers(&self) -> bool {
        self.sender.is_some() && self.cipher.is_some()
    }

    /// Turns newly readable events into deliveries (at most `limit` events); returns how many
    /// events it consumed.
    pub async fn fan_out(&self, limit: u32) -> Result<u64, Failure> {
        Ok(self.webhooks.fan_out(limit, self.clock.now()).await?)
    }

    /// Leases up to `limit` due deliveries to this worker.
    pub async fn claim(&self, limit: u32) -> Result<Vec<ClaimedDelivery>, Failure> {
        let now = self.clock.now();
        let lease = self.policy().retry.lease;
        Ok(self.webhooks.claim(limit, now, now + lease).await?)
    }

    /// Sends one claimed delivery and records the attempt. Runs outside any transaction: the
    /// claim committed before, the record commits after.
    pub async fn deliver(&self, claimed: ClaimedDelivery) -> Result<DeliveryResult, Failure> {
        let outcome = match (&self.sender, &self.cipher) {
            (Some(sender), Some(cipher)) => {
                let secrets: Result<Vec<String>, _> =
                    claimed.secrets.iter().map(|s| cipher.open(s)).collect();
                match secrets {
                    Ok(secrets) => {
                        sender
                            .send(OutgoingWebhook {
                                url: &claimed.url,
                                message_id: claimed.event.id.to_string(),
                                timestamp: self.clock.now(),
                                event: &claimed.event,
                                secrets,
                            })
                            .await
                    }
                    // A failed attempt like any other, so it is seen, retried and given up.
                    Err(_) => SendOutcome {
                        status_code: None,
                        error: Some(
                            "the signing secret cannot be opened with webhooks.secret_key \
                             (was the key changed? rotate the endpoint's secret)"
                                .into(),
                        ),
                        duration_ms: 0,
                        response_excerpt: None,
                    },
                }
            }
            _ => SendOutcome {
                status_code: None,
                error: Some("this server has no webhook sender or secret key".into()),
                duration_ms: 0,
                response_excerpt: None,
            },
        };
        self.record_outcome(&claimed, outcome).await
    }

    async fn record_outcome(
        &self,
        claimed: &ClaimedDelivery,
        outcome: SendOutcome,
    ) -> Result<DeliveryResult, Failure> {
        let now = self.clock.now();
        let retry = &self.policy().retry;
        let succeeded = outcome.succeeded();
        let next = if succeeded {
            NextStep::Delivered
        } else {
            retry.after_failure(
                claimed.delivery_id,
                claimed.attempt,
                claimed.first_attempt_at,
                now,
            )
        };
        let disable = (!succeeded && retry.disables(claimed.failing_since, now)).then(|| Event {
            id: self.ids.new_id(),
            event_type: EventType::WebhookEndpointDisabled,
            occurred_at: now,
            subject_id: Some(claimed.endpoint_id),
            actor_id: None,
            payload: EventPayload::Endpoint(EndpointPayload {
                endpoint_id: claimed.endpoint_id,
                // Without its query or fragment: tokens often travel there, and this event
                // goes to every other subscribed receiver.
                url: without_query(&claimed.url),
                failing_since: claimed.failing_since.map(rfc3339),
                reason: "every delivery failed for longer than the retry window".into(),
            }),
        });
        let error = match (&outcome.error, outcome.status_code) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(code)) if !succeeded => Some(format!("the endpoint answered {code}")),
            _ => None,
        };
        let record = AttemptRecord {
            delivery_id: claimed.delivery_id,
            claim: claimed.claim,
            endpoint_id: claimed.endpoint_id,
            attempt: Attempt {
                id: self.ids.new_id(),
                delivery_id: claimed.delivery_id,
                attempted_at: now,
                duration_ms: outcome.duration_ms,
                status_code: outcome.status_code,
                error: error.map(|e| bounded_text(&e, MAX_ATTEMPT_ERROR_CHARS)),
                response_excerpt: outcome
                    .response_excerpt
                    .map(|e| bounded_text(&e, MAX_RESPONSE_EXCERPT_CHARS)),
            },
            next: next.clone(),
            disable,
            failing_since: claimed.failing_since,
        };
        let recorded = self.webhooks.record_attempt(record).await?;
        if !recorded.applied {
            return Ok(DeliveryResult::Superseded);
        }
        let disabled = recorded.disabled;
        let result = match next {
            NextStep::Delivered => DeliveryResult::Delivered,
            NextStep::RetryAt(_) => DeliveryResult::RetryScheduled,
            NextStep::GiveUp => DeliveryResult::GaveUp,
        };
        self.counters.webhook_delivery(result, disabled);
        Ok(result)
    }

    /// Queue figures for metrics.
    pub async fn stats(&self) -> Result<DeliveryStats, Failure> {
        Ok(self.webhooks.stats(self.clock.now()).await?)
    }
}

/// A URL up to its query or fragment.
fn without_query(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or_default().to_owned()
}

/// How much of a failure's description an attempt keeps.
const MAX_ATTEMPT_ERROR_CHARS: usize = 1000;
/// How much of the receiver's answer an attempt keeps.
const MAX_RESPONSE_EXCERPT_CHARS: usize = 1024;

/// Text from the network made storable: NUL and other control characters (but newlines and
/// tabs) become spaces — PostgreSQL text cannot hold NUL — and at most `max` characters stay.
fn bounded_text(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

fn type_names(types: &[EventType]) -> String {
    if types.is_empty() {
        "*".to_owned()
    } else {
        types
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::bounded_text;

    #[test]
    fn urls_in_events_leave_out_query_and_fragment() {
        assert_eq!(
            super::without_query("https://h.example/x?token=s#f"),
            "https://h.example/x"
        );
        assert_eq!(
            super::without_query("https://h.example/x"),
            "https://h.example/x"
        );
    }

    #[test]
    fn bounded_text_drops_nul_and_cuts_by_characters() {
        assert_eq!(bounded_text("a\0b\r\nc", 10), "a b \nc");
        assert_eq!(bounded_text("ééé", 2), "éé");
        assert_eq!(bounded_text(&"x".repeat(5000), 1000).chars().count(), 1000);
    }
}
