//! Events out: the event feed and webhook endpoints. Handlers translate; the rules are in
//! `WebhookService`.

use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use tessera_domain::model::{Attempt, Delivery, Event, EventType, Redelivery, WebhookEndpoint};
use tessera_domain::services::{DeliveriesInput, EndpointInput, FeedInput, DEFAULT_DELIVERY_LIMIT};
use tessera_domain::{Failure, WebhookError};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::responses::{
    Conflict, Forbidden, InvalidBody, InvalidInput, NotFound, ServerErrors, Unauthenticated,
};
use crate::error::ApiError;
use crate::extract::{date_time_param, ApiJson, ApiQuery, Authenticated, DateTimeForm};
use crate::routes::{op, Routes};
use crate::state::ApiState;

pub fn configure(routes: &mut Routes) {
    routes
        .op(op!(feed))
        .op(op!(event_types))
        .resource("/webhooks", |r| {
            r.op(op!(list_endpoints)).op(op!(create_endpoint))
        })
        .resource("/webhooks/{endpoint_id}", |r| {
            r.op(op!(get_endpoint))
                .op(op!(update_endpoint))
                .op(op!(delete_endpoint))
        })
        .op(op!(rotate_secret))
        .op(op!(list_deliveries))
        .op(op!(get_delivery))
        .op(op!(redeliver));
}

/// The longest a feed read waits for events (`wait`).
const MAX_WAIT_SECS: u64 = 30;
/// How often a waiting read looks again.
const POLL: Duration = Duration::from_millis(200);

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// An endpoint id from the path; anything else names no endpoint.
fn endpoint_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("Webhook endpoint not found"))
}

/// A domain validation error located in the query string instead of the body.
fn in_query(e: WebhookError) -> ApiError {
    match e {
        WebhookError::Failure(Failure::Validation(v)) => {
            ApiError::validation("query", &v.field, v.reason.into_owned(), "value_error")
        }
        other => other.into(),
    }
}

// -- documentation of the event shape -------------------------------------------------------

/// `changes` of an audited change: `{field: {before, after}}`, values as display strings
/// (secrets as `"(changed)"`). Carried by `user.*`, `api_key.*`, `share.*`, `tier.*`,
/// `wallet.created|deleted|restored`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct ChangesPayloadDoc {
    changes: std::collections::BTreeMap<String, super::audit::FieldChangeView>,
}

/// `wallet.credited`, `wallet.debited`: one ledger entry.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct LedgerPayloadDoc {
    wallet_id: Uuid,
    entry_id: Uuid,
    /// `adjustment`, `transfer_in`, `transfer_out`, `usage`, `deposit`.
    kind: String,
    /// Signed minor units of `currency`.
    amount: i64,
    balance_after: i64,
    currency: String,
    reason: String,
    /// Shared by the two entries of a transfer.
    transfer_id: Option<Uuid>,
}

/// `quota.exhausted`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct QuotaPayloadDoc {
    /// The resource of the call (`*` for the wildcard).
    resource_id: String,
    /// The counter: the resource's own, or `__default__`.
    counter: String,
    /// The UTC day (`YYYY-MM-DD`); the quota resets at the next 00:00 UTC.
    day: String,
    quota: u64,
}

/// `balance.below_threshold`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct BalancePayloadDoc {
    wallet_id: Uuid,
    currency: String,
    balance: i64,
    threshold: i64,
    entry_id: Uuid,
}

/// `webhook_endpoint.disabled`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct EndpointPayloadDoc {
    endpoint_id: Uuid,
    url: String,
    #[schema(format = DateTime)]
    failing_since: Option<String>,
    reason: String,
}

/// The payload; its shape is fixed by `type` and `version` (see `GET /api/v1/events/types`).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum EventPayloadDoc {
    Changes(ChangesPayloadDoc),
    Ledger(LedgerPayloadDoc),
    Quota(QuotaPayloadDoc),
    Balance(BalancePayloadDoc),
    Endpoint(EndpointPayloadDoc),
}

/// One event, as the feed lists it and as webhook bodies carry it (in `data`, without
/// `cursor`).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct EventDoc {
    /// The feed position after this event (feed only).
    cursor: String,
    /// UUID v7; also the `webhook-id` of its deliveries.
    id: Uuid,
    #[serde(rename = "type")]
    event_type: String,
    /// The version of the payload shape.
    version: u16,
    #[schema(format = DateTime)]
    occurred_at: String,
    /// The user (`user.*`, `wallet.*`, `share.*`, `api_key.*`, `quota.*`, `balance.*`), tier
    /// (`tier.*`) or endpoint (`webhook_endpoint.*`) it is about.
    subject_id: Option<Uuid>,
    /// Who caused it; `null` for the system.
    actor_id: Option<Uuid>,
    payload: EventPayloadDoc,
}

/// A page of the feed.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct FeedPageDoc {
    data: Vec<EventDoc>,
    /// Where the next read starts (`after`); store it with what you processed.
    next_cursor: String,
}

/// What is sent.
#[derive(Serialize)]
struct FeedItem<'a> {
    cursor: String,
    #[serde(flatten)]
    event: &'a Event,
}

#[derive(Serialize)]
struct FeedPageWire<'a> {
    data: Vec<FeedItem<'a>>,
    next_cursor: String,
}

// -- the feed --------------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FeedParams {
    /// A `next_cursor` (or an event's `cursor`) from an earlier read; absent: from the oldest
    /// event kept.
    after: Option<String>,
    /// Comma-separated event types; absent: every type.
    types: Option<String>,
    /// Only events about this user, tier or endpoint.
    subject: Option<Uuid>,
    /// Page size, 1..=1000 (default 100).
    limit: Option<u32>,
    /// Seconds to wait for an event when there is none yet, 0..=30 (default 0).
    wait: Option<u64>,
}

/// The event feed (administrators): events in commit order after `after`. A consumer that
/// stores `next_cursor` with its work sees every event exactly once, in order, whichever
/// process wrote it. With `wait`, an empty read waits up to that many seconds for one.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    operation_id = "list_events",
    summary = "The event feed",
    tag = "events",
    params(FeedParams),
    responses(
        (status = 200, description = "Events after the cursor, and where to continue", body = FeedPageDoc),
        Unauthenticated, Forbidden, InvalidInput, ServerErrors,
    ),
)]
pub(crate) async fn feed(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    ApiQuery(p): ApiQuery<FeedParams>,
) -> Result<HttpResponse, ApiError> {
    let wait = p.wait.unwrap_or(0);
    if wait > MAX_WAIT_SECS {
        return Err(ApiError::validation(
            "query",
            "wait",
            "must be between 0 and 30",
            "value_error",
        ));
    }
    let types = p
        .types
        .as_deref()
        .map(|t| {
            t.split(',')
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut input = FeedInput {
        after: p.after,
        types,
        subject: p.subject,
        limit: p.limit,
    };
    let deadline = Instant::now() + Duration::from_secs(wait);
    let page = loop {
        let page = state
            .tessera
            .webhooks
            .feed(&actor, input.clone())
            .await
            .map_err(in_query)?;
        if !page.events.is_empty() || Instant::now() + POLL > deadline {
            break page;
        }
        // Go on from what this read scanned, so a filtered wait does not re-read it.
        input.after = Some(page.next.encode());
        actix_web::rt::time::sleep(POLL).await;
    };
    let wire = FeedPageWire {
        data: page
            .events
            .iter()
            .map(|e| FeedItem {
                cursor: e.cursor.encode(),
                event: &e.event,
            })
            .collect(),
        next_cursor: page.next.encode(),
    };
    Ok(HttpResponse::Ok().json(wire))
}

/// One event type.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventTypeView {
    #[serde(rename = "type")]
    event_type: &'static str,
    version: u16,
    /// The payload shape: `changes`, `ledger`, `quota`, `balance` or `endpoint`.
    payload: &'static str,
}

/// The event types, their payload versions and shapes.
#[utoipa::path(
    get,
    path = "/api/v1/events/types",
    operation_id = "list_event_types",
    summary = "Event types",
    tag = "events",
    responses(
        (status = 200, description = "Every event type", body = Vec<EventTypeView>),
        Unauthenticated, ServerErrors,
    ),
)]
pub(crate) async fn event_types(Authenticated(_actor): Authenticated) -> HttpResponse {
    use tessera_domain::model::PayloadKind;
    let all: Vec<EventTypeView> = EventType::ALL
        .iter()
        .map(|t| EventTypeView {
            event_type: t.as_str(),
            version: t.version(),
            payload: match t.payload_kind() {
                PayloadKind::Changes => "changes",
                PayloadKind::Ledger => "ledger",
                PayloadKind::Quota => "quota",
                PayloadKind::Balance => "balance",
                PayloadKind::Endpoint => "endpoint",
            },
        })
        .collect();
    HttpResponse::Ok().json(all)
}

// -- endpoints -------------------------------------------------------------------------------

/// A webhook endpoint.
#[derive(Serialize, ToSchema)]
pub(crate) struct EndpointView {
    id: Uuid,
    url: String,
    description: String,
    /// The types delivered; empty: every type.
    event_types: Vec<&'static str>,
    enabled: bool,
    /// Why Tessera disabled it (after failing for longer than the retry window).
    disabled_reason: Option<String>,
    /// Since when every delivery has failed.
    #[schema(format = DateTime)]
    failing_since: Option<String>,
    /// Until when the previous secret still signs, after a rotation.
    #[schema(format = DateTime)]
    previous_secret_expires_at: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<WebhookEndpoint> for EndpointView {
    fn from(e: WebhookEndpoint) -> Self {
        Self {
            id: e.id,
            url: e.url,
            description: e.description,
            event_types: e.event_types.iter().map(|t| t.as_str()).collect(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since.map(rfc3339),
            previous_secret_expires_at: e.previous_secret_expires_at.map(rfc3339),
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
        }
    }
}

/// An endpoint with its signing secret, shown only in this response.
#[derive(Serialize, ToSchema)]
pub(crate) struct EndpointWithSecret {
    #[serde(flatten)]
    endpoint: EndpointView,
    /// `whsec_…`: verify deliveries with it (Standard Webhooks). Not shown again.
    secret: String,
}

/// An endpoint to register, or the fields to change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndpointBody {
    /// `https://…` (public addresses only, unless the server allows others).
    #[schema(max_length = 2048)]
    url: Option<String>,
    #[schema(max_length = 500)]
    description: Option<String>,
    /// Event types to deliver; empty or absent: every type.
    #[schema(max_items = 64)]
    event_types: Option<Vec<String>>,
    /// Default `true` on registration.
    enabled: Option<bool>,
}

impl From<EndpointBody> for EndpointInput {
    fn from(b: EndpointBody) -> Self {
        Self {
            url: b.url,
            description: b.description,
            event_types: b.event_types,
            enabled: b.enabled,
        }
    }
}

/// Registers a webhook endpoint (administrators). The signing secret is in this response only.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    operation_id = "create_webhook_endpoint",
    summary = "Register a webhook endpoint",
    tag = "events",
    request_body = EndpointBody,
    responses(
        (status = 201, description = "The endpoint and its signing secret (shown once)", body = EndpointWithSecret),
        Unauthenticated, Forbidden, Conflict, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn create_endpoint(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    ApiJson(body): ApiJson<EndpointBody>,
) -> Result<HttpResponse, ApiError> {
    let created = state
        .tessera
        .webhooks
        .create_endpoint(&actor, body.into())
        .await?;
    Ok(HttpResponse::Created().json(EndpointWithSecret {
        endpoint: created.endpoint.into(),
        secret: created.secret,
    }))
}

/// Every webhook endpoint (administrators), oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    operation_id = "list_webhook_endpoints",
    summary = "Webhook endpoints",
    tag = "events",
    responses(
        (status = 200, description = "Every endpoint", body = Vec<EndpointView>),
        Unauthenticated, Forbidden, ServerErrors,
    ),
)]
pub(crate) async fn list_endpoints(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let all = state.tessera.webhooks.endpoints(&actor).await?;
    let views: Vec<EndpointView> = all.into_iter().map(EndpointView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// One webhook endpoint.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{endpoint_id}",
    operation_id = "get_webhook_endpoint",
    summary = "A webhook endpoint",
    tag = "events",
    params(("endpoint_id" = Uuid, Path, description = "The endpoint")),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        Unauthenticated, Forbidden, NotFound, ServerErrors,
    ),
)]
pub(crate) async fn get_endpoint(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let e = state
        .tessera
        .webhooks
        .endpoint(&actor, endpoint_id(&path)?)
        .await?;
    Ok(HttpResponse::Ok().json(EndpointView::from(e)))
}

/// Changes an endpoint's URL, description, event types or whether it is enabled. Enabling a
/// disabled endpoint resumes its pending deliveries.
#[utoipa::path(
    patch,
    path = "/api/v1/webhooks/{endpoint_id}",
    operation_id = "update_webhook_endpoint",
    summary = "Change a webhook endpoint",
    tag = "events",
    params(("endpoint_id" = Uuid, Path, description = "The endpoint")),
    request_body = EndpointBody,
    responses(
        (status = 200, description = "The endpoint after the change", body = EndpointView),
        Unauthenticated, Forbidden, NotFound, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn update_endpoint(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiJson(body): ApiJson<EndpointBody>,
) -> Result<HttpResponse, ApiError> {
    let e = state
        .tessera
        .webhooks
        .update_endpoint(&actor, endpoint_id(&path)?, body.into())
        .await?;
    Ok(HttpResponse::Ok().json(EndpointView::from(e)))
}

/// Removes an endpoint with its deliveries.
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{endpoint_id}",
    operation_id = "delete_webhook_endpoint",
    summary = "Remove a webhook endpoint",
    tag = "events",
    params(("endpoint_id" = Uuid, Path, description = "The endpoint")),
    responses(
        (status = 204, description = "Removed"),
        Unauthenticated, Forbidden, NotFound, ServerErrors,
    ),
)]
pub(crate) async fn delete_endpoint(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .tessera
        .webhooks
        .delete_endpoint(&actor, endpoint_id(&path)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A secret rotation.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateBody {
    /// How long the previous secret keeps signing, 0..=604800 seconds (default
    /// `webhooks.secret_overlap_secs`).
    overlap_secs: Option<u64>,
}

/// Rotates the signing secret. During the overlap every delivery carries a signature with each
/// secret, so receivers switch at their own pace.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{endpoint_id}/secret",
    operation_id = "rotate_webhook_secret",
    summary = "Rotate a webhook signing secret",
    tag = "events",
    params(("endpoint_id" = Uuid, Path, description = "The endpoint")),
    request_body = RotateBody,
    responses(
        (status = 200, description = "The endpoint and its new secret (shown once)", body = EndpointWithSecret),
        Unauthenticated, Forbidden, NotFound, Conflict, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn rotate_secret(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiJson(body): ApiJson<RotateBody>,
) -> Result<HttpResponse, ApiError> {
    let rotated = state
        .tessera
        .webhooks
        .rotate_secret(&actor, endpoint_id(&path)?, body.overlap_secs)
        .await?;
    Ok(HttpResponse::Ok().json(EndpointWithSecret {
        endpoint: rotated.endpoint.into(),
        secret: rotated.secret,
    }))
}

/// A delivery of one event to one endpoint.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryView {
    id: Uuid,
    endpoint_id: Uuid,
    /// Also the `webhook-id` header of every attempt.
    event_id: Uuid,
    event_type: &'static str,
    /// `pending`, `delivered` or `failed`.
    status: &'static str,
    attempts: u32,
    #[schema(format = DateTime)]
    next_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    last_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    delivered_at: Option<String>,
    last_status_code: Option<u16>,
    last_error: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            endpoint_id: d.endpoint_id,
            event_id: d.event_id,
            event_type: d.event_type.as_str(),
            status: d.status.as_str(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at.map(rfc3339),
            last_attempt_at: d.last_attempt_at.map(rfc3339),
            delivered_at: d.delivered_at.map(rfc3339),
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            created_at: rfc3339(d.created_at),
        }
    }
}

/// One attempt.
#[derive(Serialize, ToSchema)]
pub(crate) struct AttemptView {
    id: Uuid,
    #[schema(format = DateTime)]
    attempted_at: String,
    duration_ms: u32,
    status_code: Option<u16>,
    error: Option<String>,
    /// The start of the response body (at most 1 KiB).
    response_excerpt: Option<String>,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        Self {
            id: a.id,
            attempted_at: rfc3339(a.attempted_at),
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error: a.error,
            response_excerpt: a.response_excerpt,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryWithAttempts {
    #[serde(flatten)]
    delivery: DeliveryView,
    /// Oldest first.
    attempts_made: Vec<AttemptView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeliveryParams {
    /// `pending`, `delivered` or `failed`.
    status: Option<String>,
    /// Only the delivery of this event.
    event_id: Option<Uuid>,
    /// The `id` of the last delivery of the previous page.
    before: Option<Uuid>,
    /// Page size, 1..=500 (default 50).
    limit: Option<u32>,
}

/// A page of deliveries.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryPageView {
    data: Vec<DeliveryView>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    next_before: Option<Uuid>,
}

/// An endpoint's deliveries, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{endpoint_id}/deliveries",
    operation_id = "list_webhook_deliveries",
    summary = "Deliveries of a webhook endpoint",
    tag = "events",
    params(("endpoint_id" = Uuid, Path, description = "The endpoint"), DeliveryParams),
    responses(
        (status = 200, description = "Deliveries, newest first", body = DeliveryPageView),
        Unauthenticated, Forbidden, NotFound, InvalidInput, ServerErrors,
    ),
)]
pub(crate) async fn list_deliveries(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiQuery(p): ApiQuery<DeliveryParams>,
) -> Result<HttpResponse, ApiError> {
    let input = DeliveriesInput {
        status: p.status,
        event_id: p.event_id,
        before: p.before,
        limit: p.limit,
    };
    let all = state
        .tessera
        .webhooks
        .deliveries(&actor, endpoint_id(&path)?, input)
        .await
        .map_err(in_query)?;
    let full = all.len() == p.limit.unwrap_or(DEFAULT_DELIVERY_LIMIT) as usize;
    let next_before = all.last().filter(|_| full).map(|d| d.id);
    Ok(HttpResponse::Ok().json(DeliveryPageView {
        data: all.into_iter().map(DeliveryView::from).collect(),
        next_before,
    }))
}

/// One delivery with every attempt made.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}",
    operation_id = "get_webhook_delivery",
    summary = "A delivery and its attempts",
    tag = "events",
    params(
        ("endpoint_id" = Uuid, Path, description = "The endpoint"),
        ("delivery_id" = Uuid, Path, description = "The delivery"),
    ),
    responses(
        (status = 200, description = "The delivery and its attempts", body = DeliveryWithAttempts),
        Unauthenticated, Forbidden, NotFound, ServerErrors,
    ),
)]
pub(crate) async fn get_delivery(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (endpoint, delivery) = path.into_inner();
    let endpoint_id = endpoint_id(&endpoint)?;
    let delivery_id =
        Uuid::parse_str(&delivery).map_err(|_| ApiError::NotFound("Delivery not found"))?;
    let (delivery, attempts) = state
        .tessera
        .webhooks
        .delivery(&actor, endpoint_id, delivery_id)
        .await?;
    Ok(HttpResponse::Ok().json(DeliveryWithAttempts {
        delivery: delivery.into(),
        attempts_made: attempts.into_iter().map(AttemptView::from).collect(),
    }))
}

/// What to deliver again: one event, or every subscribed event since a time.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedeliverBody {
    event_id: Option<Uuid>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    since: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RedeliveredView {
    queued: u64,
    /// Set when the request reached the per-request limit: send it again as `since`.
    #[schema(format = DateTime)]
    continue_from: Option<String>,
}

/// Queues events for the endpoint again: `{event_id}` or `{since}` (at most
/// `webhooks.max_redeliveries` events per request; `continue_from` says where to go on).
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{endpoint_id}/redeliver",
    operation_id = "redeliver_webhook_events",
    summary = "Deliver events again",
    tag = "events",
    params(("endpoint_id" = Uuid, Path, description = "The endpoint")),
    request_body = RedeliverBody,
    responses(
        (status = 202, description = "Queued", body = RedeliveredView),
        Unauthenticated, Forbidden, NotFound, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn redeliver(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiJson(body): ApiJson<RedeliverBody>,
) -> Result<HttpResponse, ApiError> {
    let what = match (body.event_id, body.since.as_deref()) {
        (Some(id), None) => Redelivery::Event(id),
        (None, Some(_)) => {
            let since = date_time_param("since", DateTimeForm::Rfc3339, body.since.as_deref())
                .map_err(|_| {
                    ApiError::validation("body", "since", "must be an RFC 3339 time", "value_error")
                })?
                .ok_or_else(|| {
                    ApiError::validation("body", "since", "must be an RFC 3339 time", "value_error")
                })?;
            Redelivery::Since(since)
        }
        _ => {
            return Err(ApiError::validation(
                "body",
                "event_id",
                "give exactly one of event_id and since",
                "value_error",
            ))
        }
    };
    let done = state
        .tessera
        .webhooks
        .redeliver(&actor, endpoint_id(&path)?, what)
        .await?;
    Ok(HttpResponse::Accepted().json(RedeliveredView {
        queued: done.queued,
        continue_from: done.continue_from.map(rfc3339),
    }))
}
