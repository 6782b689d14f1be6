use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use tessera_domain::model::Tier;
use tessera_domain::services::{RateLimitInput, TierInput, TierRef};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::user_ref;
use crate::error::responses::{
    Conflict, Forbidden, InvalidBody, NotFound, ServerErrors, Unauthenticated,
};
use crate::error::ApiError;
use crate::extract::double_option;
use crate::extract::{ApiJson, Authenticated};
use crate::routes::{op, Routes};
use crate::state::ApiState;

pub fn configure(routes: &mut Routes) {
    routes
        .resource("/tiers", |r| r.op(op!(list)).op(op!(create)))
        .resource("/tiers/{tier}", |r| {
            r.op(op!(get)).op(op!(update)).op(op!(delete))
        })
        .resource("/users/{user}/tier", |r| {
            r.op(op!(user_tier)).op(op!(assign))
        })
        .resource("/tiers/{tier}/balance-thresholds", |r| {
            r.op(op!(get_thresholds)).op(op!(put_thresholds))
        });
}

/// The tier's balance thresholds: they apply to its users who have none of their own for a
/// currency.
#[utoipa::path(
    get,
    path = "/api/v1/tiers/{tier}/balance-thresholds",
    operation_id = "get_tier_balance_thresholds",
    summary = "A tier's balance thresholds",
    tag = "tiers",
    params(("tier" = String, Path, description = "A tier id (UUID) or name")),
    responses(
        (status = 200, description = "The tier's thresholds", body = super::metering::ThresholdsView),
        Unauthenticated, NotFound, ServerErrors,
    ),
)]
pub(crate) async fn get_thresholds(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let thresholds = state
        .tessera
        .tiers
        .balance_thresholds(&actor, &TierRef::parse(&path))
        .await?;
    Ok(HttpResponse::Ok().json(super::metering::ThresholdsView { thresholds }))
}

/// Replace-all thresholds of a tier (superusers).
#[utoipa::path(
    put,
    path = "/api/v1/tiers/{tier}/balance-thresholds",
    operation_id = "replace_tier_balance_thresholds",
    summary = "Replace a tier's balance thresholds",
    tag = "tiers",
    params(("tier" = String, Path, description = "A tier id (UUID) or name")),
    request_body = super::metering::ThresholdsView,
    responses(
        (status = 200, description = "The thresholds after the change", body = super::metering::ThresholdsView),
        Unauthenticated, Forbidden, NotFound, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn put_thresholds(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiJson(body): ApiJson<super::metering::ThresholdsView>,
) -> Result<HttpResponse, ApiError> {
    let thresholds = state
        .tessera
        .tiers
        .set_balance_thresholds(&actor, &TierRef::parse(&path), body.thresholds)
        .await?;
    Ok(HttpResponse::Ok().json(super::metering::ThresholdsView { thresholds }))
}

/// A rate limit on a path: at most `limit` requests per `period_secs`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RateLimitView {
    pub path: String,
    pub limit: u32,
    pub period_secs: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TierView {
    pub id: Uuid,
    /// FastAPI-boilerplate's spelling of `id`.
    pub tier_id: Uuid,
    pub name: String,
    /// Default daily quota per resource (`*` = any resource).
    pub quotas: BTreeMap<String, u64>,
    pub rate_limits: Vec<RateLimitView>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<Tier> for TierView {
    fn from(t: Tier) -> Self {
        Self {
            id: t.id,
            tier_id: t.id,
            name: t.name,
            quotas: t
                .quotas
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            rate_limits: t
                .rate_limits
                .into_iter()
                .map(|r| RateLimitView {
                    path: r.path,
                    limit: r.limit,
                    period_secs: r.period_secs,
                })
                .collect(),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A tier's fields; on `PATCH`, absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct TierBody {
    name: Option<String>,
    quotas: Option<BTreeMap<String, u64>>,
    rate_limits: Option<Vec<RateLimitView>>,
}

impl From<TierBody> for TierInput {
    fn from(b: TierBody) -> Self {
        Self {
            name: b.name,
            quotas: b.quotas,
            rate_limits: b.rate_limits.map(|v| {
                v.into_iter()
                    .map(|r| RateLimitInput {
                        path: r.path,
                        limit: r.limit,
                        period_secs: r.period_secs,
                    })
                    .collect()
            }),
        }
    }
}

/// `{tier_id}`, or `{"tier_id": null}` to clear.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct AssignBody {
    #[schema(required = true)]
    #[serde(default, deserialize_with = "double_option")]
    tier_id: Option<Option<Uuid>>,
}

#[utoipa::path(
    get,
    path = "/api/v1/tiers",
    operation_id = "list_tiers",
    summary = "The tiers",
    tag = "tiers",
    responses(
        (status = 200, description = "Every tier", body = [TierView]),
        Unauthenticated, Forbidden, ServerErrors,
    ),
)]
pub(crate) async fn list(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let tiers = state.tessera.tiers.list(&actor).await?;
    let views: Vec<TierView> = tiers.into_iter().map(TierView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

#[utoipa::path(
    post,
    path = "/api/v1/tiers",
    operation_id = "create_tier",
    summary = "Creates a tier",
    tag = "tiers",
    request_body = TierBody,
    responses(
        (status = 201, description = "The new tier", body = TierView),
        Unauthenticated, Forbidden, Conflict, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn create(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    ApiJson(body): ApiJson<TierBody>,
) -> Result<HttpResponse, ApiError> {
    let tier = state.tessera.tiers.create(&actor, body.into()).await?;
    Ok(HttpResponse::Created().json(TierView::from(tier)))
}

#[utoipa::path(
    get,
    path = "/api/v1/tiers/{tier}",
    operation_id = "get_tier",
    summary = "One tier",
    tag = "tiers",
    params(("tier" = String, Path, description = "A tier id (UUID) or name")),
    responses(
        (status = 200, description = "The tier", body = TierView),
        Unauthenticated, Forbidden, NotFound, ServerErrors,
    ),
)]
pub(crate) async fn get(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tier = state
        .tessera
        .tiers
        .get(&actor, &TierRef::parse(&path))
        .await?;
    Ok(HttpResponse::Ok().json(TierView::from(tier)))
}

#[utoipa::path(
    patch,
    path = "/api/v1/tiers/{tier}",
    operation_id = "update_tier",
    summary = "Updates a tier",
    tag = "tiers",
    params(("tier" = String, Path, description = "A tier id (UUID) or name")),
    request_body = TierBody,
    responses(
        (status = 200, description = "The updated tier", body = TierView),
        Unauthenticated, Forbidden, NotFound, Conflict, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn update(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiJson(body): ApiJson<TierBody>,
) -> Result<HttpResponse, ApiError> {
    let tier = state
        .tessera
        .tiers
        .update(&actor, &TierRef::parse(&path), body.into())
        .await?;
    Ok(HttpResponse::Ok().json(TierView::from(tier)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tiers/{tier}",
    operation_id = "delete_tier",
    summary = "Deletes a tier",
    tag = "tiers",
    params(("tier" = String, Path, description = "A tier id (UUID) or name")),
    responses(
        (status = 204, description = "Deleted"),
        Unauthenticated, Forbidden, NotFound, Conflict, ServerErrors,
    ),
)]
pub(crate) async fn delete(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .tessera
        .tiers
        .delete(&actor, &TierRef::parse(&path))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The user's tier, or `null`.
#[utoipa::path(
    get,
    path = "/api/v1/users/{user}/tier",
    operation_id = "get_user_tier",
    tag = "tiers",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    responses(
        (status = 200, description = "The user's tier, or `null`", body = Option<TierView>),
        Unauthenticated, Forbidden, NotFound, ServerErrors,
    ),
)]
pub(crate) async fn user_tier(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tier = state
        .tessera
        .tiers
        .of_user(&actor, &user_ref(&path)?)
        .await?;
    Ok(HttpResponse::Ok().json(tier.map(TierView::from)))
}

/// `{tier_id}` (or `null` to clear); answers with the tier now assigned.
#[utoipa::path(
    patch,
    path = "/api/v1/users/{user}/tier",
    operation_id = "assign_user_tier",
    tag = "tiers",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    request_body = AssignBody,
    responses(
        (status = 200, description = "The tier now assigned, or `null`", body = Option<TierView>),
        Unauthenticated, Forbidden, NotFound, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn assign(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiJson(body): ApiJson<AssignBody>,
) -> Result<HttpResponse, ApiError> {
    let Some(tier_id) = body.tier_id else {
        return Err(ApiError::validation(
            "body",
            "tier_id",
            "Field required",
            "missing",
        ));
    };
    let tier = state
        .tessera
        .tiers
        .assign(&actor, &user_ref(&path)?, tier_id)
        .await?;
    Ok(HttpResponse::Ok().json(tier.map(TierView::from)))
}
