//! Chutes' billing routes (research note §1.5 and §2): the admin balance change, quotas,
//! discounts, and a user's own quotas, discounts, quota usage and usage history. Wire shapes and
//! error texts are Chutes'; the rules are `MeteringService`'s and `WalletService`'s.
//!
//! Fixes over the original (see docs/api.md): the balance change is atomic, exact (USD converted
//! to micro-dollars without rounding) and idempotent with `Idempotency-Key`; booleans are not
//! quotas; `/me/discounts` is never shadowed (the `/me/...` routes are registered first).
//! `POST /users/{user_id}/enable_invoicing` lives elsewhere (it answers with a SelfResponse);
//! it calls `MeteringService::set_invoicing`.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tessera_domain::model::{Money, ResourceId, UsageItem};
use tessera_domain::services::metering::MAX_QUOTA;
use tessera_domain::services::UsageInput;
use tessera_domain::values::UserRef;
use tessera_domain::{Actor, MeteringError, WalletError};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};
use uuid::Uuid;

use super::ChutesError;
use crate::error::ApiError;
use crate::extract::{idempotency_key, ApiQuery, Authenticated, LaterJson};
use crate::state::ApiState;

/// Registers the billing routes inside the `/users` scope: the `/me/...` literals first, then
/// `/admin_balance_change`, then the `/{user_id}/...` routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/me/quotas", web::get().to(my_quotas))
        .route("/me/discounts", web::get().to(my_discounts))
        .route("/me/quota_usage/{chute_id}", web::get().to(my_quota_usage))
        .route("/me/usage", web::get().to(my_usage))
        .route(
            "/admin_balance_change",
            web::post().to(admin_balance_change),
        )
        .route("/{user_id}/quotas", web::post().to(set_quotas))
        .route("/{user_id}/discounts", web::post().to(set_discounts));
}

fn user_not_found(raw: &str) -> ChutesError {
    ChutesError::not_found(format!("User not found: {raw}"))
}

/// The refusal of every billing-admin route, before anything is looked at.
fn require_billing_admin(state: &ApiState, actor: &Actor) -> Result<(), ChutesError> {
    state
        .tessera
        .metering
        .require_billing_admin(actor)
        .map_err(|e| match e {
            MeteringError::Forbidden { message, .. } => ChutesError::forbidden(message),
            other => other.into(),
        })
}

/// The path's user id: a UUID, else nobody.
fn target(raw: &str) -> Result<UserRef, ChutesError> {
    Uuid::parse_str(raw)
        .map(UserRef::Id)
        .map_err(|_| user_not_found(raw))
}

/// A metering error of an admin route on `user_id`.
fn admin_error(user_id: &str) -> impl Fn(MeteringError) -> ChutesError + '_ {
    move |e| match e {
        MeteringError::UserNotFound => user_not_found(user_id),
        MeteringError::Forbidden { message, .. } => ChutesError::forbidden(message),
        other => other.into(),
    }
}

/// Micro-dollars (or the default currency's minor units) as a USD float, for display.
fn as_major(state: &ApiState, minor: i64) -> f64 {
    let currencies = state.tessera.wallets.currencies();
    Money::from_minor(currencies.default_currency(), minor)
        .to_decimal_string(currencies)
        .parse()
        .unwrap_or(0.0)
}

#[derive(Deserialize)]
struct BalanceChangeBody {
    user_id: String,
    amount: f64,
    reason: String,
}

#[derive(Serialize)]
struct BalanceChanged {
    new_balance: f64,
    event_id: Uuid,
}

/// `POST /users/admin_balance_change` `{user_id, amount (USD, signed), reason}` →
/// `{new_balance, event_id}`. One atomic ledger entry on the user's default wallet;
/// `event_id` is the entry's id. Honours `Idempotency-Key`.
async fn admin_balance_change(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    req: HttpRequest,
    body: LaterJson,
) -> Result<HttpResponse, ChutesError> {
    require_billing_admin(&state, &actor)?;
    let key = idempotency_key(&req)?;
    let body: BalanceChangeBody = body.parse()?;
    let user = target(&body.user_id)?;
    let currency = state
        .tessera
        .wallets
        .currencies()
        .default_currency()
        .to_string();
    // The shortest decimal that reads back as the same double: the amount the client wrote.
    let decimal = body.amount.to_string();
    let posted = state
        .tessera
        .wallets
        .adjust_default_by_decimal(&actor, &user, &currency, &decimal, &body.reason, key)
        .await
        .map_err(|e| match e {
            WalletError::UserNotFound | WalletError::NotFound => user_not_found(&body.user_id),
            WalletError::Forbidden { message, .. } => ChutesError::forbidden(message),
            other => other.into(),
        })?;
    let mut response = HttpResponse::Ok();
    if posted.replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    } else {
        state.metrics.ledger_entries(1);
    }
    Ok(response.json(BalanceChanged {
        new_balance: as_major(&state, posted.entry.balance_after),
        event_id: posted.entry.id,
    }))
}

/// The body of the quota and discount routes: a JSON object (anything else is Chutes' 400).
fn object(body: LaterJson) -> Result<Map<String, Value>, ChutesError> {
    match body.parse::<Value>()? {
        Value::Object(map) => Ok(map),
        _ => Err(ChutesError::bad_request("Invalid request body")),
    }
}

fn check_key(key: &str) -> Result<(), ChutesError> {
    ResourceId::parse("chute_id", key)
        .map(|_| ())
        .map_err(|_| ChutesError::bad_request(format!("Invalid chute_id specified: {key}")))
}

/// `POST /users/{user_id}/quotas`: `{chute_id: non-negative integer}`, replace-all; echoes the
/// object. Validation first, then the user look-up.
async fn set_quotas(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    body: LaterJson,
) -> Result<HttpResponse, ChutesError> {
    require_billing_admin(&state, &actor)?;
    let raw = object(body)?;
    let mut quotas = BTreeMap::new();
    for (key, value) in &raw {
        let limit = value
            .as_i64()
            .filter(|v| (0..=MAX_QUOTA).contains(v))
            .ok_or_else(|| {
                ChutesError::bad_request(format!("Invalid quota value key={key} value={value}"))
            })?;
        check_key(key)?;
        quotas.insert(key.clone(), limit);
    }
    let user = target(&path)?;
    state
        .tessera
        .metering
        .set_quotas(&actor, &user, quotas)
        .await
        .map_err(|e| match e {
            MeteringError::Validation(v) => ChutesError::bad_request(v.reason.into_owned()),
            other => admin_error(&path)(other),
        })?;
    Ok(HttpResponse::Ok().json(Value::Object(raw)))
}

/// `POST /users/{user_id}/discounts`: `{chute_id: float strictly between 0 and 1}` (integers
/// such as `0` or `1` are refused), replace-all; echoes the object.
async fn set_discounts(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    body: LaterJson,
) -> Result<HttpResponse, ChutesError> {
    require_billing_admin(&state, &actor)?;
    let raw = object(body)?;
    let mut discounts = BTreeMap::new();
    for (key, value) in &raw {
        let invalid =
            || ChutesError::bad_request(format!("Invalid discount value key={key} value={value}"));
        let fraction = value
            .as_f64()
            .filter(|f| value.is_f64() && *f > 0.0 && *f < 1.0)
            .ok_or_else(invalid)?;
        check_key(key)?;
        discounts.insert(key.clone(), fraction.to_string());
    }
    let user = target(&path)?;
    state
        .tessera
        .metering
        .set_discounts(&actor, &user, discounts)
        .await
        .map_err(|e| match e {
            MeteringError::Validation(v) => ChutesError::bad_request(format!(
                "Invalid discount value {}: {}",
                v.field, v.reason
            )),
            other => admin_error(&path)(other),
        })?;
    Ok(HttpResponse::Ok().json(Value::Object(raw)))
}

fn me(actor: &Actor) -> UserRef {
    UserRef::Id(actor.id())
}

#[derive(Serialize)]
struct QuotaRow {
    user_id: Uuid,
    chute_id: String,
    quota: u64,
    is_default: bool,
    payment_refresh_date: Option<String>,
    updated_at: Option<String>,
}

/// `GET /users/me/quotas`: `{}` for free or invoiced users; the user's rows; or, without rows,
/// the defaults object (the tier's, else the server's) — Chutes' polymorphic shape.
async fn my_quotas(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ChutesError> {
    let quotas = state.tessera.metering.quotas(&actor, &me(&actor)).await?;
    let body = if quotas.unlimited {
        Value::Object(Map::new())
    } else if quotas.rows.is_empty() {
        Value::Object(
            quotas
                .defaults
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect(),
        )
    } else {
        let rows: Vec<QuotaRow> = quotas
            .rows
            .iter()
            .map(|(k, v)| QuotaRow {
                user_id: actor.id(),
                chute_id: k.to_string(),
                quota: *v,
                is_default: true,
                payment_refresh_date: None,
                updated_at: None,
            })
            .collect();
        serde_json::to_value(rows).unwrap_or(Value::Null)
    };
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Serialize)]
struct DiscountRow {
    user_id: Uuid,
    chute_id: String,
    discount: f64,
}

/// `GET /users/me/discounts`: the user's rows, or `[]`.
async fn my_discounts(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ChutesError> {
    let discounts = state
        .tessera
        .metering
        .discounts(&actor, &me(&actor))
        .await?;
    let rows: Vec<DiscountRow> = discounts
        .iter()
        .map(|(k, d)| DiscountRow {
            user_id: actor.id(),
            chute_id: k.to_string(),
            discount: d.as_f64(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(rows))
}

/// `GET /users/me/quota_usage/{chute_id}` → `{quota, used}`, or `{"quota": "unlimited",
/// "used": 0}` for free and invoiced users. `me` (and `*`) mean the wildcard.
async fn my_quota_usage(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ChutesError> {
    let chute = path.into_inner();
    let resource = if chute == "me" { "*" } else { chute.as_str() };
    let usage = state
        .tessera
        .metering
        .quota_usage(&actor, &me(&actor), resource)
        .await
        .map_err(|e| match e {
            MeteringError::Validation(_) => {
                ChutesError::bad_request(format!("Invalid chute_id specified: {chute}"))
            }
            other => other.into(),
        })?;
    let body = match usage.limit {
        None => serde_json::json!({"quota": "unlimited", "used": 0}),
        Some(limit) => serde_json::json!({"quota": limit, "used": usage.used}),
    };
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize)]
struct UsageParams {
    page: Option<u64>,
    limit: Option<u64>,
    #[serde(default)]
    per_chute: bool,
    chute_id: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
}

/// An ISO date-time: RFC 3339, or naive (`2025-01-02T03:04:05`, taken as UTC), or a date.
fn iso(field: &str, raw: Option<&str>) -> Result<Option<OffsetDateTime>, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if raw.len() > 64 {
        return Err(ApiError::validation(
            "query",
            field,
            "is too long",
            "value_error",
        ));
    }
    if let Ok(t) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok(Some(t));
    }
    let naive = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let naive_frac =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]");
    let date = format_description!("[year]-[month]-[day]");
    PrimitiveDateTime::parse(raw, naive)
        .or_else(|_| PrimitiveDateTime::parse(raw, naive_frac))
        .map(PrimitiveDateTime::assume_utc)
        .or_else(|_| {
            time::Date::parse(raw, date).map(|d| d.with_time(time::Time::MIDNIGHT).assume_utc())
        })
        .map(Some)
        .map_err(|_| {
            ApiError::validation(
                "query",
                field,
                "Input should be a valid datetime",
                "datetime_parsing",
            )
        })
}

/// `GET /users/me/usage` → `{total, page, limit, items}`: hourly buckets, newest first
/// (`per_chute`: `{bucket, chute_id, amount, count}`, else summed `{bucket, amount, count}`);
/// `amount` in USD, `bucket` ISO without a zone (UTC).
async fn my_usage(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    ApiQuery(q): ApiQuery<UsageParams>,
) -> Result<HttpResponse, ChutesError> {
    let input = UsageInput {
        page: q.page,
        limit: q.limit,
        per_resource: q.per_chute,
        resource_id: q.chute_id,
        start: iso("start_date", q.start_date.as_deref())?,
        end: iso("end_date", q.end_date.as_deref())?,
    };
    let (found, page, limit) = state
        .tessera
        .metering
        .usage(&actor, &me(&actor), input)
        .await
        .map_err(|e| match e {
            MeteringError::Validation(v) => ChutesError::from(ApiError::validation(
                "query",
                if v.field == "resource_id" {
                    "chute_id"
                } else {
                    &v.field
                },
                v.reason.into_owned(),
                "value_error",
            )),
            other => other.into(),
        })?;
    let naive = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let item = |i: &UsageItem| {
        let bucket = i.bucket.format(naive).unwrap_or_default();
        let mut obj = Map::new();
        obj.insert("bucket".into(), Value::from(bucket));
        if let Some(r) = &i.resource {
            obj.insert("chute_id".into(), Value::from(r.to_string()));
        }
        obj.insert("amount".into(), Value::from(as_major(&state, i.amount)));
        obj.insert("count".into(), Value::from(i.count));
        Value::Object(obj)
    };
    Ok(HttpResponse::build(StatusCode::OK).json(serde_json::json!({
        "total": found.total,
        "page": page,
        "limit": limit,
        "items": found.items.iter().map(item).collect::<Vec<_>>(),
    })))
}
