//! Metering (PRODUCT.md §4 "Metering"): quotas, discounts, quota usage, consumption, usage
//! history and invoicing. Handlers translate; the rules are in `MeteringService`.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_domain::model::{Discount, ResourceId, UsageItem};
use tessera_domain::services::{ConsumeInput, QuotaUsage, UsageInput, UserQuotas};
use tessera_domain::Failure;
use tessera_domain::MeteringError;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::user_ref;
use crate::error::responses::{
    Conflict, Forbidden, InvalidBody, InvalidInput, NotFound, ServerErrors, Unauthenticated,
};
use crate::error::{ApiError, QuotaExceededBody};
use crate::extract::{ApiJson, ApiQuery, Authenticated, Idempotency};
use crate::routes::{op, Routes};
use crate::state::ApiState;

pub fn configure(routes: &mut Routes) {
    routes
        .resource("/users/{user}/quotas", |r| {
            r.op(op!(get_quotas)).op(op!(put_quotas))
        })
        .resource("/users/{user}/discounts", |r| {
            r.op(op!(get_discounts)).op(op!(put_discounts))
        })
        .resource("/users/{user}/balance-thresholds", |r| {
            r.op(op!(get_thresholds)).op(op!(put_thresholds))
        })
        .op(op!(quota_usage))
        .op(op!(usage))
        .op(op!(invoicing))
        .op(op!(consume));
}

/// A domain validation error located in the query string or path instead of the body.
fn located(location: &'static str) -> impl Fn(MeteringError) -> ApiError {
    move |e| match e {
        MeteringError::Failure(Failure::Validation(v)) => {
            ApiError::validation(location, &v.field, v.reason.into_owned(), "value_error")
        }
        other => other.into(),
    }
}

fn keyed<V: Clone>(m: &BTreeMap<ResourceId, V>) -> BTreeMap<String, V> {
    m.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// A user's quotas: `{resource_id: daily limit}` maps, `resource_id` a UUID or `*`.
#[derive(Serialize, ToSchema)]
pub(crate) struct QuotasView {
    /// The user's own rows.
    quotas: BTreeMap<String, u64>,
    /// What applies without a row: the tier's defaults, else the server's.
    defaults: BTreeMap<String, u64>,
    /// Free or invoiced users have no quota.
    unlimited: bool,
}

impl From<UserQuotas> for QuotasView {
    fn from(q: UserQuotas) -> Self {
        Self {
            quotas: keyed(&q.rows),
            defaults: keyed(&q.defaults),
            unlimited: q.unlimited,
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{user}/quotas",
    operation_id = "get_user_quotas",
    summary = "The user's daily quotas",
    tag = "metering",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    responses(
        (status = 200, description = "The user's quota rows, the defaults that apply without a row, and whether the user is unlimited (free or invoiced)", body = QuotasView),
        Unauthenticated, Forbidden, NotFound, ServerErrors,
    ),
)]
pub(crate) async fn get_quotas(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let quotas = state
        .tessera
        .metering
        .quotas(&actor, &user_ref(&path)?)
        .await?;
    Ok(HttpResponse::Ok().json(QuotasView::from(quotas)))
}

/// Replace-all quotas: `{resource_id: daily limit (0..=10^12)}`, `resource_id` a UUID or `*`;
/// `{}` removes every row; at most 1000 entries.
#[derive(Deserialize, ToSchema)]
#[serde(transparent)]
pub(crate) struct QuotasBody(BTreeMap<String, i64>);

/// Replace-all: `{resource_id: daily_limit}`; `{}` removes every row.
#[utoipa::path(
    put,
    path = "/api/v1/users/{user}/quotas",
    operation_id = "replace_user_quotas",
    tag = "metering",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    request_body = QuotasBody,
    responses(
        (status = 200, description = "The quotas after the change (audited `user.quotas_changed`)", body = QuotasView),
        Unauthenticated, Forbidden, NotFound, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn put_quotas(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiJson(QuotasBody(body)): ApiJson<QuotasBody>,
) -> Result<HttpResponse, ApiError> {
    let user = user_ref(&path)?;
    let metering = &state.tessera.metering;
    metering.set_quotas(&actor, &user, body).await?;
    let quotas = metering.quotas(&actor, &user).await?;
    Ok(HttpResponse::Ok().json(QuotasView::from(quotas)))
}

/// Balance thresholds by currency, in minor units: a debit that takes a wallet of that
/// currency from at least the threshold to below it emits `balance.below_threshold`.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct ThresholdsView {
    /// `{currency: threshold}`; at most 64 currencies, each threshold within ±10^15.
    pub(crate) thresholds: BTreeMap<String, i64>,
}

/// The user's own balance thresholds (a tier's apply where the user has none for a currency).
#[utoipa::path(
    get,
    path = "/api/v1/users/{user}/balance-thresholds",
    operation_id = "get_user_balance_thresholds",
    summary = "The user's balance thresholds",
    tag = "metering",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    responses(
        (status = 200, description = "The user's thresholds", body = ThresholdsView),
        Unauthenticated, Forbidden, NotFound, ServerErrors,
    ),
)]
pub(crate) async fn get_thresholds(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let thresholds = state
        .tessera
        .metering
        .balance_thresholds(&actor, &user_ref(&path)?)
        .await?;
    Ok(HttpResponse::Ok().json(ThresholdsView { thresholds }))
}

/// Replace-all: `{"thresholds": {currency: minor units}}`; `{}` removes them. Billing
/// administrators.
#[utoipa::path(
    put,
    path = "/api/v1/users/{user}/balance-thresholds",
    operation_id = "replace_user_balance_thresholds",
    summary = "Replace the user's balance thresholds",
    tag = "metering",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    request_body = ThresholdsView,
    responses(
        (status = 200, description = "The thresholds after the change (audited `user.balance_thresholds_changed`)", body = ThresholdsView),
        Unauthenticated, Forbidden, NotFound, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn put_thresholds(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiJson(body): ApiJson<ThresholdsView>,
) -> Result<HttpResponse, ApiError> {
    let thresholds = state
        .tessera
        .metering
        .set_balance_thresholds(&actor, &user_ref(&path)?, body.thresholds)
        .await?;
    Ok(HttpResponse::Ok().json(ThresholdsView { thresholds }))
}

/// A user's discounts.
#[derive(Serialize, ToSchema)]
pub(crate) struct DiscountsView {
    /// Fractions strictly between 0 and 1 (exact to six decimal places).
    discounts: BTreeMap<String, f64>,
}

fn discounts_view(d: &BTreeMap<ResourceId, Discount>) -> DiscountsView {
    DiscountsView {
        discounts: d.iter().map(|(k, v)| (k.to_string(), v.as_f64())).collect(),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{user}/discounts",
    operation_id = "get_user_discounts",
    summary = "The user's discounts",
    tag = "metering",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    responses(
        (status = 200, description = "The user's discounts: `{resource_id: fraction}`", body = DiscountsView),
        Unauthenticated, Forbidden, NotFound, ServerErrors,
    ),
)]
pub(crate) async fn get_discounts(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let discounts = state
        .tessera
        .metering
        .discounts(&actor, &user_ref(&path)?)
        .await?;
    Ok(HttpResponse::Ok().json(discounts_view(&discounts)))
}

/// A discount as sent: a JSON number (`0.15`) or a decimal string (`"0.15"`), strictly
/// between 0 and 1, at most six decimal places.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum Fraction {
    Number(f64),
    Text(String),
}

/// Replace-all discounts: `{resource_id: fraction}`, `resource_id` a UUID or `*`; at most 1000
/// entries.
#[derive(Deserialize, ToSchema)]
#[serde(transparent)]
pub(crate) struct DiscountsBody(BTreeMap<String, Fraction>);

/// Replace-all: `{resource_id: fraction}`.
#[utoipa::path(
    put,
    path = "/api/v1/users/{user}/discounts",
    operation_id = "replace_user_discounts",
    tag = "metering",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    request_body = DiscountsBody,
    responses(
        (status = 200, description = "The discounts after the change (audited `user.discounts_changed`)", body = DiscountsView),
        Unauthenticated, Forbidden, NotFound, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn put_discounts(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiJson(DiscountsBody(body)): ApiJson<DiscountsBody>,
) -> Result<HttpResponse, ApiError> {
    let user = user_ref(&path)?;
    let raw = body
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Fraction::Number(f) => f.to_string(),
                Fraction::Text(t) => t,
            };
            (k, text)
        })
        .collect();
    let discounts = state
        .tessera
        .metering
        .set_discounts(&actor, &user, raw)
        .await?;
    Ok(HttpResponse::Ok().json(discounts_view(&discounts)))
}

/// One quota's state today. `quota` is a number, or `"unlimited"` for free and invoiced users
/// (then `remaining` is null).
#[derive(Serialize, ToSchema)]
pub(crate) struct QuotaView {
    #[schema(value_type = Object, example = 100)]
    quota: Value,
    used: i64,
    remaining: Option<u64>,
    /// The next UTC midnight, when the day's counters start again.
    #[serde(with = "time::serde::rfc3339")]
    resets_at: OffsetDateTime,
}

impl From<QuotaUsage> for QuotaView {
    fn from(q: QuotaUsage) -> Self {
        Self {
            quota: q
                .limit
                .map_or_else(|| Value::from("unlimited"), Value::from),
            used: q.used,
            remaining: q.remaining,
            resets_at: q.resets_at,
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{user}/quota-usage/{resource_id}",
    operation_id = "get_user_quota_usage",
    summary = "The user's quota and usage today for one resource",
    tag = "metering",
    params(("user" = String, Path, description = "A user id (UUID) or a username"), ("resource_id" = String, Path, description = "A resource id (UUID), or `*` for the wildcard quota and its shared counter")),
    responses(
        (status = 200, description = "Today's quota, use and reset time for the resource", body = QuotaView),
        Unauthenticated, Forbidden, NotFound, InvalidInput, ServerErrors,
    ),
)]
pub(crate) async fn quota_usage(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (user, resource) = path.into_inner();
    let usage = state
        .tessera
        .metering
        .quota_usage(&actor, &user_ref(&user)?, &resource)
        .await
        .map_err(located("path"))?;
    Ok(HttpResponse::Ok().json(QuotaView::from(usage)))
}

/// One metered call.
#[derive(Deserialize, ToSchema)]
pub(crate) struct ConsumeBody {
    user_id: Uuid,
    /// A resource id (UUID).
    resource_id: String,
    /// Units of the call, 1..=10^6.
    #[serde(default = "one")]
    #[schema(default = 1)]
    count: i64,
    /// The undiscounted cost in minor units of the user's default currency, 0..=10^12.
    cost: i64,
    #[serde(default)]
    input_tokens: i64,
    #[serde(default)]
    output_tokens: i64,
}

fn one() -> i64 {
    1
}

/// The decision on one call.
#[derive(Serialize, ToSchema)]
pub(crate) struct ConsumedView {
    user_id: Uuid,
    resource_id: String,
    /// `quota`, `balance`, `free` or `invoice`.
    source: &'static str,
    /// Minor units of `currency`.
    amount_charged: i64,
    currency: String,
    /// The wallet's balance after the charge (only when something was charged).
    balance_after: Option<i64>,
    /// The ledger entry of the charge.
    entry_id: Option<Uuid>,
    quota: QuotaView,
}

/// `POST /api/v1/usage`: 201 with the decision (a replay: the first decision, with
/// `Idempotent-Replayed: true`); 402 when the quota is used up and the balance cannot pay.
#[utoipa::path(
    post,
    path = "/api/v1/usage",
    operation_id = "consume",
    extensions(("x-tessera-access" = json!("meter"))),
    tag = "metering",
    params(("Idempotency-Key" = Option<String>, Header, description = "1..=255 printable ASCII characters; a replay with the same body returns the first decision (marked `Idempotent-Replayed: true`), a different body is 409")),
    request_body = ConsumeBody,
    responses(
        (status = 201, description = "Recorded: `source` is `quota`, `balance`, `free` or `invoice`. Billing administrators, or an API key with the `metering` scope whose owner is one", body = ConsumedView, headers(("Idempotent-Replayed" = String, description = "`true` when this is the stored decision of an earlier request with the same key"))),
        (status = 402, description = "The day's quota is used up and the balance cannot pay; nothing changed", body = QuotaExceededBody),
        Unauthenticated, Forbidden, NotFound, Conflict, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn consume(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    Idempotency(key): Idempotency,
    ApiJson(body): ApiJson<ConsumeBody>,
) -> Result<HttpResponse, ApiError> {
    let resource_id = body.resource_id.clone();
    let input = ConsumeInput {
        user_id: body.user_id,
        resource_id: body.resource_id,
        count: body.count,
        cost: body.cost,
        input_tokens: body.input_tokens,
        output_tokens: body.output_tokens,
    };
    let consumed = match state.tessera.metering.consume(&actor, input, key).await {
        Ok(consumed) => consumed,
        Err(e) => return Err(e.into()),
    };
    let outcome = &consumed.outcome;
    let mut response = HttpResponse::Created();
    if outcome.replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(response.json(ConsumedView {
        user_id: body.user_id,
        resource_id,
        source: outcome.source.as_str(),
        amount_charged: outcome.amount_charged,
        currency: consumed.currency.clone(),
        balance_after: outcome.balance_after,
        entry_id: outcome.entry_id,
        quota: QuotaView::from(consumed.quota),
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UsageQueryParams {
    /// 0-based page (Chutes' convention).
    page: Option<u64>,
    /// 1..=500, default 24.
    limit: Option<u64>,
    /// One item per bucket and resource, instead of per bucket summed.
    #[serde(default)]
    per_resource: bool,
    /// Only this resource (UUID or `*`).
    resource_id: Option<String>,
    /// RFC 3339; inclusive bound on the bucket start.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    start_date: Option<OffsetDateTime>,
    /// RFC 3339; inclusive bound on the bucket start.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    end_date: Option<OffsetDateTime>,
}

/// One hourly bucket (and resource, with `per_resource`).
#[derive(Serialize, ToSchema)]
pub(crate) struct UsageItemView {
    #[serde(with = "time::serde::rfc3339")]
    bucket: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_id: Option<String>,
    count: i64,
    /// Minor units of `currency`.
    amount: i64,
    input_tokens: i64,
    output_tokens: i64,
}

impl From<UsageItem> for UsageItemView {
    fn from(i: UsageItem) -> Self {
        Self {
            bucket: i.bucket,
            resource_id: i.resource.map(|r| r.to_string()),
            count: i.count,
            amount: i.amount,
            input_tokens: i.input_tokens,
            output_tokens: i.output_tokens,
        }
    }
}

/// A page of usage history; amounts in minor units of `currency`.
#[derive(Serialize, ToSchema)]
pub(crate) struct UsagePageView {
    total: u64,
    page: u64,
    limit: u64,
    currency: String,
    items: Vec<UsageItemView>,
}

/// Hourly buckets, newest first; `page` is 0-based (as on Chutes).
#[utoipa::path(
    get,
    path = "/api/v1/users/{user}/usage",
    operation_id = "get_user_usage",
    tag = "metering",
    params(("user" = String, Path, description = "A user id (UUID) or a username"), UsageQueryParams),
    responses(
        (status = 200, description = "Hourly usage buckets, newest first", body = UsagePageView),
        Unauthenticated, Forbidden, NotFound, InvalidInput, ServerErrors,
    ),
)]
pub(crate) async fn usage(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiQuery(q): ApiQuery<UsageQueryParams>,
) -> Result<HttpResponse, ApiError> {
    let input = UsageInput {
        page: q.page,
        limit: q.limit,
        per_resource: q.per_resource,
        resource_id: q.resource_id,
        start: q.start_date,
        end: q.end_date,
    };
    let (found, page, limit) = state
        .tessera
        .metering
        .usage(&actor, &user_ref(&path)?, input)
        .await
        .map_err(located("query"))?;
    Ok(HttpResponse::Ok().json(UsagePageView {
        total: found.total,
        page,
        limit,
        currency: state
            .tessera
            .wallets
            .currencies()
            .default_currency()
            .to_string(),
        items: found.items.into_iter().map(UsageItemView::from).collect(),
    }))
}

/// Turn invoice billing on or off; `unlimited` goes with it.
#[derive(Deserialize, ToSchema)]
pub(crate) struct InvoicingBody {
    enabled: bool,
    #[serde(default)]
    unlimited: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct InvoicingView {
    user_id: Uuid,
    invoicing: bool,
    unlimited: bool,
}

/// `PUT /users/{user}/invoicing` `{enabled, unlimited}`; turning it off while a wallet is
/// below zero is 409 `negative_balance`.
#[utoipa::path(
    put,
    path = "/api/v1/users/{user}/invoicing",
    operation_id = "set_user_invoicing",
    tag = "metering",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    request_body = InvoicingBody,
    responses(
        (status = 200, description = "The user's invoicing flags after the change (audited `user.invoicing_changed`)", body = InvoicingView),
        Unauthenticated, Forbidden, NotFound, Conflict, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn invoicing(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiJson(body): ApiJson<InvoicingBody>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .tessera
        .metering
        .set_invoicing(&actor, &user_ref(&path)?, body.enabled, body.unlimited)
        .await?;
    Ok(HttpResponse::Ok().json(InvoicingView {
        user_id: user.id,
        invoicing: user.invoicing,
        unlimited: user.unlimited,
    }))
}
