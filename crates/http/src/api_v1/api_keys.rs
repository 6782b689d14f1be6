//! `/api/v1/me/api-keys`: the caller's API keys. Secrets are shown once, at creation.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use tessera_domain::model::ApiKey;
use tessera_domain::services::ApiKeyInput;
use tessera_domain::IdentityError;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::responses::{Forbidden, InvalidBody, NotFound, ServerErrors, Unauthenticated};
use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated};
use crate::routes::{op, Routes};
use crate::state::ApiState;

pub fn configure(routes: &mut Routes) {
    routes
        .resource("/me/api-keys", |r| r.op(op!(list)).op(op!(create)))
        .op(op!(revoke));
}

/// One of the caller's API keys (never its secret).
#[derive(Serialize, ToSchema)]
pub(crate) struct ApiKeyView {
    id: Uuid,
    name: String,
    admin: bool,
    #[schema(value_type = Vec<crate::vocabulary::ApiKeyScopeName>)]
    scopes: Vec<&'static str>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    last_used_at: Option<OffsetDateTime>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id,
            name: k.name,
            admin: k.admin,
            scopes: k.scopes.names(),
            created_at: k.created_at,
            last_used_at: k.last_used_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[schema(as = CreateApiKeyBody)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    name: String,
    /// An admin key acts with all of the caller's permissions.
    #[serde(default)]
    admin: bool,
    /// Scope names, at most 16.
    #[serde(default)]
    #[schema(value_type = Vec<crate::vocabulary::ApiKeyScopeName>)]
    scopes: Vec<String>,
}

/// A new API key with its secret, shown once: only its digest is stored.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedApiKey {
    #[serde(flatten)]
    key: ApiKeyView,
    /// Shown once: only its digest is stored.
    secret_key: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/me/api-keys",
    operation_id = "list_api_keys",
    summary = "The caller's API keys (never their secrets)",
    tag = "auth",
    responses(
        (status = 200, description = "The caller's API keys, without secrets", body = [ApiKeyView]),
        Unauthenticated, Forbidden, ServerErrors,
    ),
)]
pub(crate) async fn list(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let keys = state.tessera.identity.list_api_keys(&actor).await?;
    let views: Vec<ApiKeyView> = keys.into_iter().map(ApiKeyView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

#[utoipa::path(
    post,
    path = "/api/v1/me/api-keys",
    operation_id = "create_api_key",
    summary = "Creates an API key for the caller; its secret is shown only here",
    tag = "auth",
    request_body = CreateBody,
    responses(
        (status = 201, description = "The new key with its `secret_key`, shown only here", body = CreatedApiKey),
        Unauthenticated, Forbidden, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn create(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    if body.scopes.len() > 16 {
        return Err(ApiError::validation(
            "body",
            "scopes",
            "at most 16 scopes",
            "too_long",
        ));
    }
    let issued = state
        .tessera
        .identity
        .create_api_key(
            &actor,
            ApiKeyInput {
                name: body.name,
                admin: body.admin,
                scopes: body.scopes,
            },
        )
        .await?;
    Ok(HttpResponse::Created().json(CreatedApiKey {
        key: issued.key.into(),
        secret_key: issued.secret,
    }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/me/api-keys/{id}",
    operation_id = "revoke_api_key",
    summary = "Revokes one of the caller's API keys",
    tag = "auth",
    params(("id" = String, Path, description = "The API key's id (UUID)")),
    responses(
        (status = 204, description = "The key is revoked"),
        Unauthenticated, Forbidden, NotFound, ServerErrors,
    ),
)]
pub(crate) async fn revoke(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = Uuid::parse_str(&path).map_err(|_| ApiError::NotFound("API key not found"))?;
    match state.tessera.identity.revoke_api_key(&actor, id).await {
        Ok(()) => Ok(HttpResponse::NoContent().finish()),
        Err(IdentityError::NotFound) => Err(ApiError::NotFound("API key not found")),
        Err(e) => Err(e.into()),
    }
}
