//! Chutes' error shape: `{"detail": <string or object>}` and nothing else.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::ApiError;

/// The Chutes surface's error body: `detail` is a message, or the list of failing fields of a
/// 422 (FastAPI's shape, without the canonical `code`).
#[derive(Serialize, ToSchema)]
pub struct ChutesErrorBody {
    pub detail: Value,
}

#[derive(Debug)]
pub enum ChutesError {
    /// Any status with Chutes' own message.
    Status(StatusCode, Value),
    /// Errors shared with the other surfaces (validation 422s, 503s, 500s) keep their status
    /// and detail; only the body shape changes.
    Api(ApiError),
}

impl ChutesError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self::Status(status, Value::String(detail.into()))
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }
}

impl std::fmt::Display for ChutesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(status, detail) => write!(f, "{status}: {detail}"),
            Self::Api(err) => err.fmt(f),
        }
    }
}

impl<E: Into<ApiError>> From<E> for ChutesError {
    fn from(err: E) -> Self {
        Self::Api(err.into())
    }
}

impl ResponseError for ChutesError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Status(status, _) => *status,
            Self::Api(err) => err.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Status(status, detail) => {
                HttpResponse::build(*status).json(serde_json::json!({ "detail": detail }))
            }
            Self::Api(err) => {
                // Keep the status and headers (Retry-After, WWW-Authenticate) of the shared
                // mapping, but drop the canonical `code` field from the body.
                let original = err.error_response();
                let mut response = HttpResponse::build(original.status());
                for name in [header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
                    if let Some(value) = original.headers().get(&name) {
                        response.insert_header((name, value.clone()));
                    }
                }
                let detail = match err {
                    ApiError::Validation(errors) => {
                        serde_json::to_value(errors).unwrap_or(Value::Null)
                    }
                    other => Value::String(other.public_detail()),
                };
                response.json(serde_json::json!({ "detail": detail }))
            }
        }
    }
}
