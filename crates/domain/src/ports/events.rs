use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::RepoResult;
use crate::error::Cause;
use crate::model::{
    Attempt, AttemptRecord, AuditEvent, ClaimedDelivery, Delivery, DeliveryQuery, DeliveryStats,
    EndpointChanges, FeedPage, FeedQuery, NewEndpoint, OutgoingWebhook, Recorded, Redelivered,
    Redelivery, SealedSecret, SendOutcome, WebhookEndpoint,
};

/// Reading the event feed. Events are written by the other stores, in the same transaction as
/// the change they describe.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait EventRepository: Send + Sync {
    /// Events after `query.after` in feed order, at most `query.limit`, among those whose
    /// writing transactions have all finished: a reader that continues from the returned
    /// `next` never misses an event that commits later. Errors: `Unavailable`.
    async fn feed(&self, query: FeedQuery) -> RepoResult<FeedPage>;

    /// Removes events that occurred before `cutoff`, at most `limit`; returns how many.
    async fn prune_events(&self, cutoff: OffsetDateTime, limit: u32) -> RepoResult<u64>;
}

/// Webhook endpoints and the delivery queue.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait WebhookRepository: Send + Sync {
    /// Stores an endpoint and its sealed secret, with `audit`. Errors: `Unavailable`.
    async fn create_endpoint(
        &self,
        endpoint: NewEndpoint,
        audit: Option<AuditEvent>,
    ) -> RepoResult<WebhookEndpoint>;

    /// Errors: `NotFound`, `Unavailable`.
    async fn endpoint(&self, id: Uuid) -> RepoResult<WebhookEndpoint>;

    /// Every endpoint, oldest first.
    async fn endpoints(&self) -> RepoResult<Vec<WebhookEndpoint>>;

    /// Endpoints held; registration is bounded.
    async fn count_endpoints(&self) -> RepoResult<u64>;

    /// Applies `changes`, with `audit`. Errors: `NotFound`.
    async fn update_endpoint(
        &self,
        id: Uuid,
        changes: EndpointChanges,
        audit: Option<AuditEvent>,
    ) -> RepoResult<WebhookEndpoint>;

    /// Removes the endpoint with its deliveries and attempts. Errors: `NotFound`.
    async fn delete_endpoint(&self, id: Uuid, audit: Option<AuditEvent>) -> RepoResult<()>;

    /// Replaces the signing secret; the current one becomes the previous one and keeps signing
    /// until `previous_expires_at` (`None`: it stops at once). Errors: `NotFound`.
    async fn rotate_secret(
        &self,
        id: Uuid,
        secret: SealedSecret,
        previous_expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<WebhookEndpoint>;

    /// Creates the deliveries of events that became readable in the feed since the last call,
    /// one per enabled endpoint that subscribes to the event's type, at most `limit` events per
    /// call; returns how many events it consumed. Safe to call from several processes at once:
    /// each event is fanned out once.
    async fn fan_out(&self, limit: u32, now: OffsetDateTime) -> RepoResult<u64>;

    /// Claims up to `limit` due pending deliveries of enabled endpoints for one attempt each,
    /// leasing them until `lease_until`; concurrent callers never claim the same delivery.
    /// The claim is one statement that commits at once: no transaction stays open while the
    /// caller sends.
    async fn claim(
        &self,
        limit: u32,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> RepoResult<Vec<ClaimedDelivery>>;

    /// Records an attempt and applies its consequence (delivered, retry at, failed; the
    /// endpoint's failing state; disabling it with its event, and failing its pending
    /// deliveries, when `record.disable` is set and the endpoint is still enabled and failing
    /// since `record.failing_since` or earlier). Ignored when `record.claim` is no longer the
    /// delivery's claim (another worker took over after the lease ran out).
    async fn record_attempt(&self, record: AttemptRecord) -> RepoResult<Recorded>;

    /// An endpoint's deliveries, newest first. Errors: `NotFound` for the endpoint.
    async fn deliveries(&self, query: DeliveryQuery) -> RepoResult<Vec<Delivery>>;

    /// One delivery with its attempts, oldest first. Errors: `NotFound`.
    async fn delivery(
        &self,
        endpoint_id: Uuid,
        delivery_id: Uuid,
    ) -> RepoResult<(Delivery, Vec<Attempt>)>;

    /// Queues events for the endpoint again (pending, due now), creating deliveries where
    /// there were none; at most `limit` events. Errors: `NotFound` (endpoint, or the one event).
    async fn redeliver(
        &self,
        endpoint_id: Uuid,
        what: Redelivery,
        limit: u32,
        now: OffsetDateTime,
    ) -> RepoResult<Redelivered>;

    /// Queue figures for metrics.
    async fn stats(&self, now: OffsetDateTime) -> RepoResult<DeliveryStats>;

    /// Removes finished deliveries (and their attempts) older than `cutoff`, at most `limit`.
    async fn prune_deliveries(&self, cutoff: OffsetDateTime, limit: u32) -> RepoResult<u64>;
}

/// Sealing and opening webhook signing secrets with a key the database does not hold.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait SecretCipher: Send + Sync {
    fn seal(&self, secret: &str) -> Result<SealedSecret, Cause>;
    fn open(&self, sealed: &SealedSecret) -> Result<String, Cause>;
}

/// Sending one signed webhook request (Standard Webhooks headers and signatures).
/// Implementations refuse destinations the URL policy does not allow — checked on the
/// addresses the host resolves to at send time — follow no redirects, and cut off slow or
/// large responses.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait WebhookSender: Send + Sync {
    async fn send<'a>(&self, request: OutgoingWebhook<'a>) -> SendOutcome;
}
