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
    /// 429 with `Retry-After`.
    Throttled(String, u64),
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

    pub fn throttled(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::Throttled(detail.into(), retry_after_secs)
    }
}

impl std::fmt::Display for ChutesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(status, detail) => write!(f, "{status}: {detail}"),
            Self::Throttled(detail, _) => write!(f, "429: {detail}"),
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
            Self::Throttled(..) => StatusCode::TOO_MANY_REQUESTS,
            Self::Api(err) => err.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Status(status, detail) => {
                HttpResponse::build(*status).json(serde_json::json!({ "detail": detail }))
            }
            Self::Throttled(detail, retry_after) => HttpResponse::TooManyRequests()
                .insert_header((header::RETRY_AFTER, retry_after.to_string()))
                .json(serde_json::json!({ "detail": detail })),
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

/// The error responses Chutes operations share, as reusable sets for `responses(...)` in
/// `#[utoipa::path]`, with [`ChutesErrorBody`] bodies (the canonical sets of
/// [`crate::error::responses`] describe `ErrorBody`).
pub mod responses {
    use std::collections::BTreeMap;

    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
    use utoipa::IntoResponses;

    fn chutes(description: &str) -> ResponseBuilder {
        ResponseBuilder::new().description(description).content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ChutesErrorBody"))),
        )
    }

    fn set(entries: Vec<(&str, ResponseBuilder)>) -> BTreeMap<String, RefOr<Response>> {
        entries
            .into_iter()
            .map(|(status, response)| (status.to_owned(), RefOr::T(response.build())))
            .collect()
    }

    const VALIDATION: &str =
        "Validation failed: `detail` lists each failing field (FastAPI's shape, no `code`)";

    /// 400, 413 and 422 of a Chutes operation that reads a JSON body.
    pub struct ChutesInvalidBody;
    impl IntoResponses for ChutesInvalidBody {
        fn responses() -> BTreeMap<String, RefOr<Response>> {
            set(vec![
                (
                    "400",
                    chutes(
                        "Malformed request (bad JSON, unsupported content type) or a value Chutes \
                         rejects, with its message",
                    ),
                ),
                ("413", chutes("Request body too large")),
                ("422", chutes(VALIDATION)),
            ])
        }
    }

    /// 422 of a Chutes operation whose only checked input is its query string or headers.
    pub struct ChutesInvalidInput;
    impl IntoResponses for ChutesInvalidInput {
        fn responses() -> BTreeMap<String, RefOr<Response>> {
            set(vec![("422", chutes(VALIDATION))])
        }
    }

    /// 429, 500 and 503 of every Chutes operation (429: a rate limit or throttle).
    pub struct ChutesServerErrors;
    impl IntoResponses for ChutesServerErrors {
        fn responses() -> BTreeMap<String, RefOr<Response>> {
            set(vec![
                (
                    "429",
                    chutes("Over a rate limit or throttle").header(
                        "Retry-After",
                        HeaderBuilder::new()
                            .schema(ObjectBuilder::new().schema_type(Type::String))
                            .description(Some("Seconds until the window ends"))
                            .build(),
                    ),
                ),
                (
                    "500",
                    chutes("A bug: the body carries no detail; the cause is logged"),
                ),
                (
                    "503",
                    chutes("The database is unavailable; retry later").header(
                        "Retry-After",
                        HeaderBuilder::new()
                            .schema(ObjectBuilder::new().schema_type(Type::String))
                            .description(Some("Seconds to wait before retrying"))
                            .build(),
                    ),
                ),
            ])
        }
    }
}
