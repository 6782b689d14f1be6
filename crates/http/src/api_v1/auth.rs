use actix_web::{web, HttpResponse};

use crate::dto::{LoginBody, RefreshBody, TokenView};
use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated, JsonOrForm};
use crate::state::ApiState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/login", web::post().to(login))
        .route("/auth/refresh", web::post().to(refresh))
        .route("/auth/logout", web::post().to(logout));
}

/// `POST /auth/login`: JSON `{username, password}` or the OAuth2 password form. The username
/// field also takes an email address.
async fn login(
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
    let outcome = state
        .tessera
        .auth
        .login(body.username.trim(), &body.password)
        .await;
    match &outcome {
        Ok(_) => state.metrics.login(true),
        Err(tessera_domain::AuthError::InvalidCredentials) => state.metrics.login(false),
        Err(_) => {}
    }
    let pair = outcome?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(TokenView::from(pair)))
}

/// `POST /auth/refresh`: a new token pair for a refresh token, which is spent.
async fn refresh(
    state: web::Data<ApiState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    let pair = state.tessera.auth.refresh(&body.refresh_token).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(TokenView::from(pair)))
}

/// `POST /auth/logout`: ends the session of the presented token.
async fn logout(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ApiError> {
    state.tessera.auth.logout(&actor).await?;
    Ok(HttpResponse::NoContent().finish())
}
