use actix_web::{web, HttpResponse};

use crate::api_v1::dto::{LoginBody, RefreshBody, TokenView};
use crate::error::responses::{InvalidBody, ServerErrors, Unauthenticated};
use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated, JsonOrForm};
use crate::routes::{op, Routes};
use crate::state::ApiState;

pub fn configure(routes: &mut Routes) {
    routes.op(op!(login)).op(op!(refresh)).op(op!(logout));
}

/// Password login: JSON `{username, password}` or the OAuth2 password form. The username
/// field also takes an email address.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    operation_id = "login",
    security(),
    tag = "auth",
    request_body(
        content = LoginBody,
        content_type = "application/json",
        description = "JSON; the same fields are also accepted as application/x-www-form-urlencoded (where a field cannot be set to null)"
    ),
    responses(
        (status = 200, description = "A new session's tokens", body = TokenView),
        Unauthenticated, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn login(
    req: actix_web::HttpRequest,
    state: web::Data<ApiState>,
    JsonOrForm(body): JsonOrForm<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    if let Some(grant) = body.grant_type.as_deref() {
        if grant != "password" {
            return Err(ApiError::validation(
                "body",
                "grant_type",
                "only the password grant is supported",
                "value_error",
            ));
        }
    }
    let pair = state
        .tessera
        .auth
        .login(
            body.username.trim(),
            &body.password,
            &crate::auth::client_ip(&req),
        )
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(TokenView::from(pair)))
}

/// A new token pair for a refresh token, which is spent (a spent one revokes the session).
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    operation_id = "refresh",
    security(),
    tag = "auth",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "The rotated tokens", body = TokenView),
        Unauthenticated, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn refresh(
    state: web::Data<ApiState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    let pair = state.tessera.auth.refresh(&body.refresh_token).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(TokenView::from(pair)))
}

/// Ends the session of the presented token.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    operation_id = "logout",
    extensions(("x-tessera-access" = json!("read"))),
    tag = "auth",
    responses(
        (status = 204, description = "The session is revoked"),
        Unauthenticated, ServerErrors,
    ),
)]
pub(crate) async fn logout(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ApiError> {
    state.tessera.auth.logout(&actor).await?;
    Ok(HttpResponse::NoContent().finish())
}
