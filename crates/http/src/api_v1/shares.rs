//! Sharing (`/me/shares`, `/me/shared-with-me`) and delegated tokens
//! (`/auth/delegated-token`).

use actix_web::{web, HttpResponse};

use super::user_ref;
use crate::api_v1::dto::{
    DelegatedTokenBody, DelegatedTokenView, ShareBody, ShareScopesBody, ShareView,
};
use crate::error::responses::{
    Conflict, Forbidden, InvalidBody, NotFound, ServerErrors, Unauthenticated,
};
use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated};
use crate::routes::{op, Routes};
use crate::state::ApiState;

pub fn configure(routes: &mut Routes) {
    routes
        .op(op!(delegated_token))
        .resource("/me/shares", |r| r.op(op!(list)).op(op!(grant)))
        .op(op!(shared_with_me))
        .resource("/me/shares/{grantee}", |r| {
            r.op(op!(change)).op(op!(revoke))
        });
}

#[utoipa::path(
    get,
    path = "/api/v1/me/shares",
    operation_id = "list_my_shares",
    summary = "The shares the caller granted",
    tag = "shares",
    responses(
        (status = 200, description = "The caller's shares; `user` is the grantee", body = [ShareView]),
        Unauthenticated, Forbidden, ServerErrors,
    ),
)]
pub(crate) async fn list(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let shares = state.tessera.shares.mine(&actor).await?;
    let views: Vec<ShareView> = shares.into_iter().map(ShareView::granted).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// `POST /me/shares`: 201 with the share when new, 200 when an existing share's scopes were
/// replaced.
#[utoipa::path(
    post,
    path = "/api/v1/me/shares",
    operation_id = "grant_share",
    tag = "shares",
    request_body = ShareBody,
    responses(
        (status = 201, description = "A new share", body = ShareView),
        (status = 200, description = "An existing share's scopes were replaced", body = ShareView),
        Unauthenticated, Forbidden, NotFound, Conflict, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn grant(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    ApiJson(body): ApiJson<ShareBody>,
) -> Result<HttpResponse, ApiError> {
    let (share, created) = state
        .tessera
        .shares
        .grant(&actor, &user_ref(&body.grantee)?, &body.scopes)
        .await?;
    let view = ShareView::granted(share);
    Ok(if created {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}

#[utoipa::path(
    patch,
    path = "/api/v1/me/shares/{grantee}",
    operation_id = "change_share",
    summary = "Replaces the scopes of a share the caller granted",
    tag = "shares",
    params(("grantee" = String, Path, description = "The grantee's id (UUID) or username")),
    request_body = ShareScopesBody,
    responses(
        (status = 200, description = "The share with its new scopes", body = ShareView),
        Unauthenticated, Forbidden, NotFound, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn change(
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
    Ok(HttpResponse::Ok().json(ShareView::granted(share)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/me/shares/{grantee}",
    operation_id = "revoke_share",
    summary = "Revokes a share the caller granted",
    tag = "shares",
    params(("grantee" = String, Path, description = "The grantee's id (UUID) or username")),
    responses(
        (status = 204, description = "Revoked"),
        Unauthenticated, Forbidden, NotFound, ServerErrors,
    ),
)]
pub(crate) async fn revoke(
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

#[utoipa::path(
    get,
    path = "/api/v1/me/shared-with-me",
    operation_id = "list_shared_with_me",
    summary = "The shares other users granted to the caller",
    tag = "shares",
    responses(
        (status = 200, description = "Shares granted to the caller; `user` is the owner", body = [ShareView]),
        Unauthenticated, Forbidden, ServerErrors,
    ),
)]
pub(crate) async fn shared_with_me(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let shares = state.tessera.shares.shared_with_me(&actor).await?;
    let views: Vec<ShareView> = shares.into_iter().map(ShareView::received).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// A token acting as another user: a managed user, or a sharer within the share's scopes.
#[utoipa::path(
    post,
    path = "/api/v1/auth/delegated-token",
    operation_id = "delegated_token",
    tag = "auth",
    request_body = DelegatedTokenBody,
    responses(
        (status = 200, description = "An access token acting as the subject within the scopes", body = DelegatedTokenView),
        Unauthenticated, Forbidden, NotFound, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn delegated_token(
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
