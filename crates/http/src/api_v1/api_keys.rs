//! `/api/v1/me/api-keys`: the caller's API keys. Secrets are shown once, at creation.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use tessera_domain::model::ApiKey;
use tessera_domain::services::ApiKeyInput;
use tessera_domain::IdentityError;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated};
use crate::state::ApiState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/me/api-keys")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .route("/me/api-keys/{id}", web::delete().to(revoke));
}

#[derive(Serialize)]
struct ApiKeyView {
    id: Uuid,
    name: String,
    admin: bool,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    scopes: Vec<String>,
}

async fn list(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let keys = state.tessera.identity.list_api_keys(&actor).await?;
    let views: Vec<ApiKeyView> = keys.into_iter().map(ApiKeyView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

async fn create(
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
    #[derive(Serialize)]
    struct Created {
        #[serde(flatten)]
        key: ApiKeyView,
        /// Shown once: only its digest is stored.
        secret_key: String,
    }
    Ok(HttpResponse::Created().json(Created {
        key: issued.key.into(),
        secret_key: issued.secret,
    }))
}

async fn revoke(
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
