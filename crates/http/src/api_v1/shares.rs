//! Sharing (`/me/shares`, `/me/shared-with-me`) and delegated tokens
//! (`/auth/delegated-token`).

use actix_web::{web, HttpResponse};
use tessera_domain::values::UserRef;

use crate::dto::{DelegatedTokenBody, DelegatedTokenView, ShareBody, ShareScopesBody, ShareView};
use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated};
use crate::state::ApiState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/delegated-token", web::post().to(delegated_token))
        .service(
            web::resource("/me/shares")
                .route(web::get().to(list))
                .route(web::post().to(grant)),
        )
        .route("/me/shared-with-me", web::get().to(shared_with_me))
        .service(
            web::resource("/me/shares/{grantee}")
                .route(web::patch().to(change))
                .route(web::delete().to(revoke)),
        );
}

/// A reference that cannot name a user names nobody.
fn user_ref(raw: &str) -> Result<UserRef, ApiError> {
    UserRef::parse(raw).map_err(|_| ApiError::NotFound("User not found"))
}

async fn list(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let shares = state.tessera.shares.mine(&actor).await?;
    let views: Vec<ShareView> = shares.into_iter().map(ShareView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// `POST /me/shares`: 201 with the share when new, 200 when an existing share's scopes were
/// replaced.
async fn grant(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    ApiJson(body): ApiJson<ShareBody>,
) -> Result<HttpResponse, ApiError> {
    let (share, created) = state
        .tessera
        .shares
        .grant(&actor, &user_ref(&body.grantee)?, &body.scopes)
        .await?;
    let view = ShareView::from(share);
    Ok(if created {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}

async fn change(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiJson(body): ApiJson<ShareScopesBody>,
) -> Result<HttpResponse, ApiError> {
    let share = state
        .tessera
        .shares
        .change(&actor, &user_ref(&path)?, &body.scopes)
        .await?;
    Ok(HttpResponse::Ok().json(ShareView::from(share)))
}

async fn revoke(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .tessera
        .shares
        .revoke(&actor, &user_ref(&path)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn shared_with_me(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let shares = state.tessera.shares.shared_with_me(&actor).await?;
    let views: Vec<ShareView> = shares.into_iter().map(ShareView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// `POST /auth/delegated-token`: `{user, scopes?}` → `{access_token, token_type, expires_in,
/// user_id, scope, scopes}`.
async fn delegated_token(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    ApiJson(body): ApiJson<DelegatedTokenBody>,
) -> Result<HttpResponse, ApiError> {
    let token = state
        .tessera
        .shares
        .delegated_token(&actor, &user_ref(&body.user)?, body.scopes.as_deref())
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(DelegatedTokenView::from(token)))
}
