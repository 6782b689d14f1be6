use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use tessera_domain::model::Tier;
use tessera_domain::services::{RateLimitInput, TierInput, TierRef};
use time::OffsetDateTime;
use uuid::Uuid;

use super::user_ref;
use crate::dto::double_option;
use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated};
use crate::state::ApiState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tiers")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/tiers/{tier}")
            .route(web::get().to(get))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    )
    .service(
        web::resource("/users/{user}/tier")
            .route(web::get().to(user_tier))
            .route(web::patch().to(assign)),
    );
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RateLimitView {
    pub path: String,
    pub limit: u32,
    pub period_secs: u32,
}

#[derive(Debug, Serialize)]
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

#[derive(Debug, Deserialize)]
struct TierBody {
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

#[derive(Debug, Deserialize)]
struct AssignBody {
    #[serde(default, deserialize_with = "double_option")]
    tier_id: Option<Option<Uuid>>,
}

async fn list(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let tiers = state.tessera.tiers.list(&actor).await?;
    let views: Vec<TierView> = tiers.into_iter().map(TierView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

async fn create(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    ApiJson(body): ApiJson<TierBody>,
) -> Result<HttpResponse, ApiError> {
    let tier = state.tessera.tiers.create(&actor, body.into()).await?;
    Ok(HttpResponse::Created().json(TierView::from(tier)))
}

async fn get(
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

async fn update(
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

async fn delete(
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
async fn user_tier(
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
async fn assign(
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
