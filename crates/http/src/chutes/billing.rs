//! Chutes' billing routes (research note §1.5 and §2): the admin balance change, quotas,
//! discounts, and a user's own quotas, discounts, quota usage and usage history. Wire shapes and
//! error texts are Chutes'; the rules are `MeteringService`'s and `WalletService`'s.
//!
//! Fixes over the original (see docs/api.md): the balance change is atomic, exact (USD converted
//! to micro-dollars without rounding) and idempotent with `Idempotency-Key`; booleans are not
//! quotas; `/me/discounts` is never shadowed (the `/me/...` routes are registered first).
//! `POST /users/{user_id}/enable_invoicing` answers with the target's SelfResponse and calls
//! `MeteringService::set_invoicing`, the operation behind `PUT /api/v1/users/{user}/invoicing`.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tessera_domain::model::{Money, ResourceId, UsageItem};
use tessera_domain::services::metering::MAX_QUOTA;
use tessera_domain::services::UsageInput;
use tessera_domain::values::UserRef;
use tessera_domain::Failure;
use tessera_domain::{Actor, MeteringError, WalletError};
use time::macros::format_description;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::responses::{ChutesInvalidBody, ChutesInvalidInput, ChutesServerErrors};
use super::{self_response, ChutesAuth, ChutesError, ChutesErrorBody, SelfResponse};
use crate::error::ApiError;
use crate::extract::{date_time_param, DateTimeForm};
use crate::extract::{idempotency_key, ApiQuery, LaterJson};
use crate::routes::{op, Routes};
use crate::state::ApiState;

/// Registers the billing routes inside the `/users` scope, after the account routes (whose
/// `/me` resource takes GET and DELETE only): the `/me/...` literals first, then
/// `/admin_balance_change`, then the `/{user_id}/...` routes, so no `/me/...` path is ever
/// taken for a user id.
pub fn configure(routes: &mut Routes) {
    routes
        .op(op!(my_quotas))
        .op(op!(my_discounts))
        .op(op!(my_quota_usage))
        .op(op!(my_usage))
        .op(op!(admin_balance_change))
        .op(op!(set_quotas))
        .op(op!(set_discounts))
        .op(op!(enable_invoicing));
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
            MeteringError::Failure(Failure::Forbidden { message, .. }) => {
                ChutesError::forbidden(message)
            }
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
        MeteringError::Failure(Failure::Forbidden { message, .. }) => {
            ChutesError::forbidden(message)
        }
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

#[derive(Deserialize, ToSchema)]
#[schema(as = chutes::BalanceChangeBody)]
pub(crate) struct BalanceChangeBody {
    /// The user's id (UUID).
    user_id: String,
    /// USD, signed: any finite JSON number (billing tools send floats such as `0.1 + 0.2`),
    /// rounded to the currency's minor unit, halves away from zero; one that rounds to zero is
    /// refused (422).
    amount: f64,
    reason: String,
}

#[derive(Serialize, ToSchema)]
#[schema(as = chutes::BalanceChanged)]
pub(crate) struct BalanceChanged {
    /// USD.
    new_balance: f64,
    event_id: Uuid,
}

/// `POST /users/admin_balance_change` `{user_id, amount (USD, signed), reason}` →
/// `{new_balance, event_id}`. One atomic ledger entry on the user's default wallet;
/// `event_id` is the entry's id. Honours `Idempotency-Key`.
#[utoipa::path(
    post,
    path = "/users/admin_balance_change",
    operation_id = "chutes_admin_balance_change",
    tag = "chutes",
    params(("Idempotency-Key" = Option<String>, Header, description = "1..=255 printable ASCII characters; a replay with the same body returns the first result (marked `Idempotent-Replayed: true`), a different body is 409")),
    request_body = BalanceChangeBody,
    responses(
        (status = 200, description = "The new balance (USD) and the ledger entry's id", body = BalanceChanged, headers(("Idempotent-Replayed" = String, description = "`true` when this is the stored result of an earlier request with the same key"))),
        (status = 401, description = "No or an invalid credential, signature or nonce (Chutes' message)", body = ChutesErrorBody),
        (status = 403, description = "`This action can only be performed by billing admin accounts.`", body = ChutesErrorBody),
        (status = 404, description = "`User not found: {id}`", body = ChutesErrorBody),
        (status = 409, description = "A debit beyond the balance of a non-invoiced user (`insufficient_funds`), or an `Idempotency-Key` reused with a different body", body = ChutesErrorBody),
        ChutesInvalidBody, ChutesServerErrors,
    ),
)]
pub(crate) async fn admin_balance_change(
    state: web::Data<ApiState>,
    ChutesAuth(actor): ChutesAuth,
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
    // The shortest decimal that reads back as the same double (the amount the client wrote),
    // rounded to the currency's minor unit as Chutes' float arithmetic would land near it.
    let scale = {
        let currencies = state.tessera.wallets.currencies();
        currencies.scale(&currencies.default_currency())
    };
    let decimal = round_decimal(&body.amount.to_string(), scale);
    let posted = state
        .tessera
        .wallets
        .adjust_default_by_decimal(&actor, &user, &currency, &decimal, &body.reason, key)
        .await
        .map_err(|e| match e {
            WalletError::UserNotFound | WalletError::NotFound => user_not_found(&body.user_id),
            WalletError::Failure(Failure::Forbidden { message, .. }) => {
                ChutesError::forbidden(message)
            }
            other => other.into(),
        })?;
    let mut response = HttpResponse::Ok();
    if posted.replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
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
#[utoipa::path(
    post,
    path = "/users/{user_id}/quotas",
    operation_id = "chutes_set_quotas",
    tag = "chutes",
    params(("user_id" = String, Path, description = "The user's id (UUID)")),
    request_body(content = BTreeMap<String, u64>, description = "Replace-all `{chute_id or \"*\": daily limit (0..=10^12)}`"),
    responses(
        (status = 200, description = "The object as sent", body = BTreeMap<String, u64>),
        (status = 401, description = "No or an invalid credential, signature or nonce (Chutes' message)", body = ChutesErrorBody),
        (status = 403, description = "`This action can only be performed by billing admin accounts.`", body = ChutesErrorBody),
        (status = 404, description = "`User not found: {id}`", body = ChutesErrorBody),
        ChutesInvalidBody, ChutesServerErrors,
    ),
)]
pub(crate) async fn set_quotas(
    state: web::Data<ApiState>,
    ChutesAuth(actor): ChutesAuth,
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
            MeteringError::Failure(Failure::Validation(v)) => {
                ChutesError::bad_request(v.reason.into_owned())
            }
            other => admin_error(&path)(other),
        })?;
    Ok(HttpResponse::Ok().json(Value::Object(raw)))
}

/// `POST /users/{user_id}/discounts`: `{chute_id: float strictly between 0 and 1}` (integers
/// such as `0` or `1` are refused), replace-all; echoes the object.
#[utoipa::path(
    post,
    path = "/users/{user_id}/discounts",
    operation_id = "chutes_set_discounts",
    tag = "chutes",
    params(("user_id" = String, Path, description = "The user's id (UUID)")),
    request_body(content = BTreeMap<String, f64>, description = "Replace-all `{chute_id or \"*\": fraction strictly between 0 and 1, at most six decimal places}`"),
    responses(
        (status = 200, description = "The object as sent", body = BTreeMap<String, f64>),
        (status = 401, description = "No or an invalid credential, signature or nonce (Chutes' message)", body = ChutesErrorBody),
        (status = 403, description = "`This action can only be performed by billing admin accounts.`", body = ChutesErrorBody),
        (status = 404, description = "`User not found: {id}`", body = ChutesErrorBody),
        ChutesInvalidBody, ChutesServerErrors,
    ),
)]
pub(crate) async fn set_discounts(
    state: web::Data<ApiState>,
    ChutesAuth(actor): ChutesAuth,
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
            MeteringError::Failure(Failure::Validation(v)) => ChutesError::bad_request(format!(
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

/// One of the user's quota rows.
#[derive(Serialize, ToSchema)]
#[schema(as = chutes::QuotaRow)]
pub(crate) struct QuotaRow {
    user_id: Uuid,
    chute_id: String,
    quota: u64,
    is_default: bool,
    payment_refresh_date: Option<String>,
    updated_at: Option<String>,
}

/// Chutes' polymorphic answer of `GET /users/me/quotas`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = chutes::MyQuotas)]
pub(crate) enum MyQuotas {
    /// The user's rows.
    Rows(Vec<QuotaRow>),
    /// Without rows, the defaults `{chute_id: quota}`; `{}` for free or invoiced users.
    Defaults(BTreeMap<String, u64>),
}

/// `GET /users/me/quotas`: `{}` for free or invoiced users; the user's rows; or, without rows,
/// the defaults object (the tier's, else the server's) — Chutes' polymorphic shape.
#[utoipa::path(
    get,
    path = "/users/me/quotas",
    operation_id = "chutes_my_quotas",
    tag = "chutes",
    responses(
        (status = 200, description = "The caller's quota rows; without rows the defaults object; `{}` for free or invoiced users", body = MyQuotas),
        (status = 401, description = "No or an invalid credential, signature or nonce (Chutes' message)", body = ChutesErrorBody),
        ChutesServerErrors,
    ),
)]
pub(crate) async fn my_quotas(
    state: web::Data<ApiState>,
    ChutesAuth(actor): ChutesAuth,
) -> Result<HttpResponse, ChutesError> {
    let quotas = state.tessera.metering.quotas(&actor, &me(&actor)).await?;
    let body = if quotas.unlimited {
        MyQuotas::Defaults(BTreeMap::new())
    } else if quotas.rows.is_empty() {
        MyQuotas::Defaults(
            quotas
                .defaults
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        )
    } else {
        MyQuotas::Rows(
            quotas
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
                .collect(),
        )
    };
    Ok(HttpResponse::Ok().json(body))
}

/// One of the user's discounts.
#[derive(Serialize, ToSchema)]
#[schema(as = chutes::DiscountRow)]
pub(crate) struct DiscountRow {
    user_id: Uuid,
    chute_id: String,
    discount: f64,
}

/// `GET /users/me/discounts`: the user's rows, or `[]`.
#[utoipa::path(
    get,
    path = "/users/me/discounts",
    operation_id = "chutes_my_discounts",
    tag = "chutes",
    responses(
        (status = 200, description = "The caller's discounts, or `[]`", body = [DiscountRow]),
        (status = 401, description = "No or an invalid credential, signature or nonce (Chutes' message)", body = ChutesErrorBody),
        ChutesServerErrors,
    ),
)]
pub(crate) async fn my_discounts(
    state: web::Data<ApiState>,
    ChutesAuth(actor): ChutesAuth,
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
#[utoipa::path(
    get,
    path = "/users/me/quota_usage/{chute_id}",
    operation_id = "chutes_my_quota_usage",
    tag = "chutes",
    params(("chute_id" = String, Path, description = "A chute id (UUID); `me` or `*` for the wildcard quota")),
    responses(
        (status = 200, description = "Today's quota and use", body = MyQuotaUsage),
        (status = 400, description = "`Invalid chute_id specified: …`", body = ChutesErrorBody),
        (status = 401, description = "No or an invalid credential, signature or nonce (Chutes' message)", body = ChutesErrorBody),
        ChutesServerErrors,
    ),
)]
pub(crate) async fn my_quota_usage(
    state: web::Data<ApiState>,
    ChutesAuth(actor): ChutesAuth,
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
            MeteringError::Failure(Failure::Validation(_)) => {
                ChutesError::bad_request(format!("Invalid chute_id specified: {chute}"))
            }
            other => other.into(),
        })?;
    let body = match usage.limit {
        None => MyQuotaUsage {
            quota: Value::from("unlimited"),
            used: 0,
        },
        Some(limit) => MyQuotaUsage {
            quota: Value::from(limit),
            used: usage.used,
        },
    };
    Ok(HttpResponse::Ok().json(body))
}

/// A quota and its use today.
#[derive(Serialize, ToSchema)]
#[schema(as = chutes::QuotaUsage)]
pub(crate) struct MyQuotaUsage {
    /// The day's limit, or `"unlimited"` for free and invoiced users.
    #[schema(value_type = Object, example = 100)]
    quota: Value,
    used: i64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UsageParams {
    /// 0-based.
    page: Option<u64>,
    /// 1..=500, default 24.
    limit: Option<u64>,
    /// One item per bucket and chute, instead of per bucket summed.
    #[serde(default)]
    per_chute: bool,
    chute_id: Option<String>,
    /// ISO date or date-time (naive times are UTC); inclusive bound on the bucket start.
    start_date: Option<String>,
    /// ISO date or date-time (naive times are UTC); inclusive bound on the bucket start.
    end_date: Option<String>,
}

/// A page of the caller's usage.
#[derive(Serialize, ToSchema)]
#[schema(as = chutes::UsagePage)]
pub(crate) struct MyUsagePage {
    total: u64,
    page: u64,
    limit: u64,
    items: Vec<MyUsageItem>,
}

/// One hourly bucket (and chute, with `per_chute`).
#[derive(Serialize, ToSchema)]
#[schema(as = chutes::UsageItem)]
pub(crate) struct MyUsageItem {
    /// ISO, without a zone (UTC).
    bucket: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    chute_id: Option<String>,
    /// USD.
    amount: f64,
    count: i64,
}

/// `GET /users/me/usage` → `{total, page, limit, items}`: hourly buckets, newest first
/// (`per_chute`: `{bucket, chute_id, amount, count}`, else summed `{bucket, amount, count}`);
/// `amount` in USD, `bucket` ISO without a zone (UTC).
#[utoipa::path(
    get,
    path = "/users/me/usage",
    operation_id = "chutes_my_usage",
    tag = "chutes",
    params(UsageParams),
    responses(
        (status = 200, description = "The caller's hourly usage, newest first", body = MyUsagePage),
        (status = 401, description = "No or an invalid credential, signature or nonce (Chutes' message)", body = ChutesErrorBody),
        ChutesInvalidInput, ChutesServerErrors,
    ),
)]
pub(crate) async fn my_usage(
    state: web::Data<ApiState>,
    ChutesAuth(actor): ChutesAuth,
    ApiQuery(q): ApiQuery<UsageParams>,
) -> Result<HttpResponse, ChutesError> {
    let input = UsageInput {
        page: q.page,
        limit: q.limit,
        per_resource: q.per_chute,
        resource_id: q.chute_id,
        start: date_time_param("start_date", DateTimeForm::Lenient, q.start_date.as_deref())?,
        end: date_time_param("end_date", DateTimeForm::Lenient, q.end_date.as_deref())?,
    };
    let (found, page, limit) = state
        .tessera
        .metering
        .usage(&actor, &me(&actor), input)
        .await
        .map_err(|e| match e {
            MeteringError::Failure(Failure::Validation(v)) => {
                ChutesError::from(ApiError::validation(
                    "query",
                    if v.field == "resource_id" {
                        "chute_id"
                    } else {
                        &v.field
                    },
                    v.reason.into_owned(),
                    "value_error",
                ))
            }
            other => other.into(),
        })?;
    let naive = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let item = |i: &UsageItem| MyUsageItem {
        bucket: i.bucket.format(naive).unwrap_or_default(),
        chute_id: i.resource.as_ref().map(ToString::to_string),
        amount: as_major(&state, i.amount),
        count: i.count,
    };
    Ok(HttpResponse::Ok().json(MyUsagePage {
        total: found.total,
        page,
        limit,
        items: found.items.iter().map(item).collect(),
    }))
}

/// Python's truthiness of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The optional body of `enable_invoicing`.
#[derive(Deserialize, ToSchema)]
#[schema(as = chutes::EnableInvoicingBody)]
pub(crate) struct EnableInvoicingBody {
    /// Truthy: also set `unlimited`.
    unlimited: Option<Value>,
}

/// `POST /users/{user_id}/enable_invoicing`: turns invoice billing on for the user, with
/// `unlimited` when the optional body `{"unlimited": <truthy>}` asks for it (a missing or bad
/// body is ignored, as in Chutes) → the target's SelfResponse.
#[utoipa::path(
    post,
    path = "/users/{user_id}/enable_invoicing",
    operation_id = "chutes_enable_invoicing",
    tag = "chutes",
    params(("user_id" = String, Path, description = "The user's id (UUID)")),
    request_body(content = Option<EnableInvoicingBody>, description = "Optional; a missing or unparsable body is ignored"),
    responses(
        (status = 200, description = "The target user's SelfResponse, invoice billing on", body = SelfResponse),
        (status = 401, description = "No or an invalid credential, signature or nonce (Chutes' message)", body = ChutesErrorBody),
        (status = 403, description = "`This action can only be performed by billing admin accounts.`", body = ChutesErrorBody),
        (status = 404, description = "`User not found: {id}`", body = ChutesErrorBody),
        (status = 413, description = "Request body too large", body = ChutesErrorBody),
        ChutesServerErrors,
    ),
)]
pub(crate) async fn enable_invoicing(
    state: web::Data<ApiState>,
    ChutesAuth(actor): ChutesAuth,
    path: web::Path<String>,
    body: LaterJson,
) -> Result<HttpResponse, ChutesError> {
    require_billing_admin(&state, &actor)?;
    let unlimited = body
        .parse::<EnableInvoicingBody>()
        .ok()
        .and_then(|b| b.unlimited)
        .is_some_and(|v| truthy(&v));
    let user = target(&path)?;
    let user = state
        .tessera
        .metering
        .enable_invoicing(&actor, &user, unlimited)
        .await
        .map_err(admin_error(&path))?;
    Ok(HttpResponse::Ok().json(self_response(&state, &actor, user).await?))
}

/// `raw` (a plain decimal: optional `-`, digits, optional `.` and digits, as `f64`'s `Display`
/// writes it) rounded to `scale` decimal places, halves away from zero. Anything else is
/// returned unchanged (and refused by the amount parser).
fn round_decimal(raw: &str, scale: u32) -> String {
    let (negative, digits) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = scale as usize;
    if frac.len() <= scale
        || int.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return raw.to_owned();
    }
    let round_up = frac.as_bytes()[scale] >= b'5';
    let mut kept: Vec<u8> = int.bytes().chain(frac.bytes().take(scale)).collect();
    if round_up {
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, b'1');
                break;
            }
            i -= 1;
            if kept[i] == b'9' {
                kept[i] = b'0';
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    let split = kept.len() - scale;
    let (int, frac) = kept.split_at(split);
    let mut out = String::with_capacity(kept.len() + 2);
    if negative {
        out.push('-');
    }
    out.push_str(std::str::from_utf8(int).unwrap_or("0"));
    if scale > 0 {
        out.push('.');
        out.push_str(std::str::from_utf8(frac).unwrap_or("0"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::round_decimal;

    #[test]
    fn amounts_round_to_the_minor_unit_halves_away_from_zero() {
        assert_eq!(round_decimal(&(0.1f64 + 0.2).to_string(), 6), "0.300000");
        assert_eq!(round_decimal("12.5", 6), "12.5");
        assert_eq!(round_decimal("-0.0000005", 6), "-0.000001");
        assert_eq!(round_decimal("0.0000004", 6), "0.000000");
        assert_eq!(round_decimal("9.9999996", 6), "10.000000");
        assert_eq!(round_decimal("-999.9999999", 6), "-1000.000000");
        assert_eq!(round_decimal("1.25", 1), "1.3");
        assert_eq!(round_decimal("2.5", 0), "3");
        assert_eq!(round_decimal("nan", 6), "nan");
    }
}
