//! Metering (PRODUCT.md §4 "Metering"): quotas, discounts, quota usage, consumption, usage
//! history and invoicing. Handlers translate; the rules are in `MeteringService`.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_domain::model::{Discount, ResourceId, UsageItem};
use tessera_domain::services::{ConsumeInput, QuotaUsage, UsageInput, UserQuotas};
use tessera_domain::MeteringError;
use time::OffsetDateTime;
use uuid::Uuid;

use super::user_ref;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Authenticated, Idempotency};
use crate::state::ApiState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/users/{user}/quotas")
            .route(web::get().to(get_quotas))
            .route(web::put().to(put_quotas)),
    )
    .service(
        web::resource("/users/{user}/discounts")
            .route(web::get().to(get_discounts))
            .route(web::put().to(put_discounts)),
    )
    .route(
        "/users/{user}/quota-usage/{resource_id}",
        web::get().to(quota_usage),
    )
    .route("/users/{user}/usage", web::get().to(usage))
    .route("/users/{user}/invoicing", web::put().to(invoicing))
    .route("/usage", web::post().to(consume));
}

/// A domain validation error located in the query string or path instead of the body.
fn located(location: &'static str) -> impl Fn(MeteringError) -> ApiError {
    move |e| match e {
        MeteringError::Validation(v) => {
            ApiError::validation(location, &v.field, v.reason.into_owned(), "value_error")
        }
        other => other.into(),
    }
}

fn keyed<V: Clone>(m: &BTreeMap<ResourceId, V>) -> BTreeMap<String, V> {
    m.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

#[derive(Serialize)]
struct QuotasView {
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

async fn get_quotas(
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

/// Replace-all: `{resource_id: daily_limit}`; `{}` removes every row.
async fn put_quotas(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiJson(body): ApiJson<BTreeMap<String, i64>>,
) -> Result<HttpResponse, ApiError> {
    let user = user_ref(&path)?;
    let metering = &state.tessera.metering;
    metering.set_quotas(&actor, &user, body).await?;
    let quotas = metering.quotas(&actor, &user).await?;
    Ok(HttpResponse::Ok().json(QuotasView::from(quotas)))
}

#[derive(Serialize)]
struct DiscountsView {
    /// Fractions strictly between 0 and 1 (exact to six decimal places).
    discounts: BTreeMap<String, f64>,
}

fn discounts_view(d: &BTreeMap<ResourceId, Discount>) -> DiscountsView {
    DiscountsView {
        discounts: d.iter().map(|(k, v)| (k.to_string(), v.as_f64())).collect(),
    }
}

async fn get_discounts(
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

/// A discount as sent: a JSON number (`0.15`) or a decimal string (`"0.15"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Fraction {
    Number(f64),
    Text(String),
}

/// Replace-all: `{resource_id: fraction}`.
async fn put_discounts(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiJson(body): ApiJson<BTreeMap<String, Fraction>>,
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

/// `quota` is a number, or `"unlimited"` for free and invoiced users.
#[derive(Serialize)]
struct QuotaView {
    quota: Value,
    used: i64,
    remaining: Option<u64>,
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

async fn quota_usage(
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

#[derive(Deserialize)]
struct ConsumeBody {
    user_id: Uuid,
    resource_id: String,
    #[serde(default = "one")]
    count: i64,
    cost: i64,
    #[serde(default)]
    input_tokens: i64,
    #[serde(default)]
    output_tokens: i64,
}

fn one() -> i64 {
    1
}

#[derive(Serialize)]
struct ConsumedView {
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
async fn consume(
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
        Err(e) => {
            if matches!(e, MeteringError::QuotaExceeded { .. }) {
                state.metrics.metering_decision("refused");
            }
            return Err(e.into());
        }
    };
    let outcome = &consumed.outcome;
    let mut response = HttpResponse::Created();
    if outcome.replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    } else {
        state.metrics.metering_decision(outcome.source.as_str());
        if outcome.entry_id.is_some() {
            state.metrics.ledger_entries(1);
        }
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

#[derive(Deserialize)]
struct UsageQueryParams {
    page: Option<u64>,
    limit: Option<u64>,
    #[serde(default)]
    per_resource: bool,
    resource_id: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    start_date: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    end_date: Option<OffsetDateTime>,
}

#[derive(Serialize)]
struct UsageItemView {
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

#[derive(Serialize)]
struct UsagePageView {
    total: u64,
    page: u64,
    limit: u64,
    currency: String,
    items: Vec<UsageItemView>,
}

/// Hourly buckets, newest first; `page` is 0-based (as on Chutes).
async fn usage(
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

#[derive(Deserialize)]
struct InvoicingBody {
    enabled: bool,
    #[serde(default)]
    unlimited: bool,
}

#[derive(Serialize)]
struct InvoicingView {
    user_id: Uuid,
    invoicing: bool,
    unlimited: bool,
}

/// `PUT /users/{user}/invoicing` `{enabled, unlimited}`; turning it off while a wallet is
/// below zero is 409 `negative_balance`.
async fn invoicing(
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
