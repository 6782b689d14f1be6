//! One error type for every surface, built from each domain error. 5xx bodies never carry
//! internal detail; the cause is logged instead.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use tessera_domain::error::{
    AuthError, Failure, IdentityError, MeteringError, TierError, UserError, ValidationError,
    WalletError, WebhookError,
};
use utoipa::ToSchema;

/// One entry of a FastAPI-shaped validation error.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// Where the failing input sits: `body`, `query` or `header`, then the field path.
    #[schema(example = json!(["body", "username"]))]
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
    #[schema(example = "value_error")]
    pub kind: String,
}

#[derive(Debug)]
pub enum ApiError {
    /// 400: the request itself is malformed (bad JSON, wrong content type).
    BadRequest(String),
    Unauthorized {
        code: &'static str,
        detail: &'static str,
    },
    Forbidden {
        code: &'static str,
        detail: String,
    },
    NotFound(&'static str),
    /// 402: the day's quota is used up and the balance cannot pay. `resets_at` is RFC 3339.
    PaymentRequired {
        message: &'static str,
        resets_at: String,
    },
    Conflict {
        code: &'static str,
        detail: String,
    },
    PayloadTooLarge,
    /// 429 with `Retry-After`.
    TooManyRequests {
        retry_after_secs: u64,
        detail: &'static str,
    },
    /// 422 in FastAPI's shape.
    Validation(Vec<FieldError>),
    Unavailable,
    /// 503: a directory query ran past `database.directory_statement_timeout_ms`.
    QueryTimeout,
    Internal(String),
}

/// The error body of every canonical and LNbits response that is not a validation failure.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    /// A human-readable message.
    #[schema(example = "User not found")]
    detail: &'a str,
    /// A stable snake_case code.
    #[schema(example = "not_found")]
    code: &'a str,
}

/// The 402 of `POST /api/v1/usage`: Chutes' detail object, plus the canonical `code`.
#[derive(Serialize, ToSchema)]
pub struct QuotaExceededBody<'a> {
    detail: QuotaExceededDetail<'a>,
    #[schema(example = "quota_exceeded")]
    code: &'a str,
}

/// Why a consumption was refused and when the day's quota starts again.
#[derive(Serialize, ToSchema)]
pub struct QuotaExceededDetail<'a> {
    #[schema(example = "Quota exceeded and the account balance cannot pay for this call")]
    message: &'a str,
    /// RFC 3339: the next UTC midnight.
    #[schema(example = "2026-11-26T00:00:00Z")]
    quota_reset_timestamp: &'a str,
}

/// A 422: every failing field, in FastAPI's shape.
#[derive(Serialize, ToSchema)]
pub struct ValidationBody<'a> {
    detail: &'a [FieldError],
}

impl ApiError {
    pub fn validation(location: &str, field: &str, msg: impl Into<String>, kind: &str) -> Self {
        let mut loc = vec![location.to_owned()];
        if !field.is_empty() {
            loc.extend(field.split('.').map(str::to_owned));
        }
        Self::Validation(vec![FieldError {
            loc,
            msg: msg.into(),
            kind: kind.to_owned(),
        }])
    }

    pub fn not_authenticated() -> Self {
        Self::Unauthorized {
            code: "not_authenticated",
            detail: "Not authenticated",
        }
    }

    /// The `detail` text the canonical body carries (internal causes are never shown).
    pub fn public_detail(&self) -> String {
        match self {
            Self::Validation(_) => "Validation failed".to_owned(),
            Self::BadRequest(m) => m.clone(),
            Self::Unauthorized { detail, .. } => (*detail).to_owned(),
            Self::Forbidden { detail, .. } | Self::Conflict { detail, .. } => detail.clone(),
            Self::NotFound(what) => (*what).to_owned(),
            Self::PaymentRequired { message, .. } => (*message).to_owned(),
            Self::PayloadTooLarge => "Request body too large".to_owned(),
            Self::TooManyRequests { detail, .. } => (*detail).to_owned(),
            Self::Unavailable => "Service temporarily unavailable".to_owned(),
            Self::QueryTimeout => "The query took longer than the directory allows".to_owned(),
            Self::Internal(_) => "Internal server error".to_owned(),
        }
    }

    fn from_validation(v: ValidationError) -> Self {
        Self::validation("body", &v.field, v.reason.into_owned(), "value_error")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadRequest(m) => write!(f, "bad request: {m}"),
            Self::Unauthorized { detail, .. } => write!(f, "unauthorized: {detail}"),
            Self::Forbidden { detail, .. } => write!(f, "forbidden: {detail}"),
            Self::NotFound(what) => write!(f, "not found: {what}"),
            Self::PaymentRequired { message, .. } => write!(f, "payment required: {message}"),
            Self::Conflict { detail, .. } => write!(f, "conflict: {detail}"),
            Self::PayloadTooLarge => f.write_str("payload too large"),
            Self::TooManyRequests { detail, .. } => write!(f, "too many requests: {detail}"),
            Self::Validation(errors) => write!(f, "validation failed: {errors:?}"),
            Self::Unavailable => f.write_str("service unavailable"),
            Self::QueryTimeout => f.write_str("query timeout"),
            Self::Internal(cause) => write!(f, "internal error: {cause}"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::PaymentRequired { .. } => StatusCode::PAYMENT_REQUIRED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable | Self::QueryTimeout => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        let (detail, code): (&str, &str) = match self {
            Self::Validation(errors) => {
                return response.json(ValidationBody { detail: errors });
            }
            Self::BadRequest(m) => (m, "bad_request"),
            Self::Unauthorized { code, detail } => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
                (detail, code)
            }
            Self::Forbidden { code, detail } => (detail, code),
            Self::NotFound(what) => (what, "not_found"),
            Self::PaymentRequired { message, resets_at } => {
                // Chutes' 402 detail: an object with the message and the reset time.
                return response.json(QuotaExceededBody {
                    detail: QuotaExceededDetail {
                        message,
                        quota_reset_timestamp: resets_at.as_str(),
                    },
                    code: "quota_exceeded",
                });
            }
            Self::Conflict { code, detail } => (detail, code),
            Self::PayloadTooLarge => ("Request body too large", "payload_too_large"),
            Self::TooManyRequests {
                retry_after_secs,
                detail,
            } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
                (detail, "too_many_requests")
            }
            Self::Unavailable => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
                ("Service temporarily unavailable", "unavailable")
            }
            Self::QueryTimeout => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
                (
                    "The query took longer than the directory allows; narrow the filter, search \
                     or sort",
                    "query_timeout",
                )
            }
            Self::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                ("Internal server error", "internal_error")
            }
        };
        response.json(ErrorBody { detail, code })
    }
}

/// The shared failures, the same on every canonical and LNbits route.
impl From<Failure> for ApiError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Forbidden { code, message } => Self::Forbidden {
                code,
                detail: message.to_owned(),
            },
            Failure::Conflict(c) => Self::Conflict {
                code: c.code(),
                detail: c.message().to_owned(),
            },
            Failure::Validation(v) => Self::from_validation(v),
            Failure::Throttled { retry_after_secs } => Self::TooManyRequests {
                retry_after_secs,
                detail: "Too many requests; retry after the given number of seconds",
            },
            Failure::Unavailable => Self::Unavailable,
            Failure::Timeout => Self::QueryTimeout,
            Failure::Internal(cause) => Self::Internal(cause.to_string()),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(err: UserError) -> Self {
        match err {
            UserError::NotFound => Self::NotFound("User not found"),
            UserError::TierNotFound => Self::NotFound("Tier not found"),
            UserError::Failure(f) => f.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidCredentials => Self::Unauthorized {
                code: "invalid_credentials",
                detail: "Incorrect username or password",
            },
            AuthError::InvalidToken => Self::Unauthorized {
                code: "invalid_token",
                detail: "Invalid or expired token",
            },
            AuthError::Failure(f) => f.into(),
        }
    }
}

impl From<WalletError> for ApiError {
    fn from(err: WalletError) -> Self {
        match err {
            WalletError::NotFound => Self::NotFound("Wallet not found"),
            WalletError::UserNotFound => Self::NotFound("User not found"),
            WalletError::Failure(f) => f.into(),
        }
    }
}

impl From<TierError> for ApiError {
    fn from(err: TierError) -> Self {
        match err {
            TierError::NotFound => Self::NotFound("Tier not found"),
            TierError::UserNotFound => Self::NotFound("User not found"),
            TierError::Failure(f) => f.into(),
        }
    }
}

/// The error responses operations document, as reusable sets for `responses(...)` in
/// `#[utoipa::path]`: each set adds the statuses its name says, with the canonical bodies
/// ([`ErrorBody`], [`ValidationBody`]) and headers.
pub mod responses {
    use std::collections::BTreeMap;

    use utoipa::openapi::header::{Header, HeaderBuilder};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
    use utoipa::IntoResponses;

    fn json(description: &str, schema: &str) -> ResponseBuilder {
        ResponseBuilder::new().description(description).content(
            "application/json",
            Content::new(Some(Ref::from_schema_name(schema))),
        )
    }

    fn header(description: &str) -> Header {
        HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::String))
            .description(Some(description))
            .build()
    }

    fn error(description: &str) -> ResponseBuilder {
        json(description, "ErrorBody")
    }

    fn set(entries: Vec<(&str, ResponseBuilder)>) -> BTreeMap<String, RefOr<Response>> {
        entries
            .into_iter()
            .map(|(status, response)| (status.to_owned(), RefOr::T(response.build())))
            .collect()
    }

    fn validation() -> ResponseBuilder {
        json(
            "Validation failed: `detail` lists each failing field (FastAPI's shape)",
            "ValidationBody",
        )
    }

    /// 401: no, or an invalid or expired, credential.
    pub struct Unauthenticated;
    impl IntoResponses for Unauthenticated {
        fn responses() -> BTreeMap<String, RefOr<Response>> {
            set(vec![(
                "401",
                error("Not authenticated, or the credential is invalid or expired")
                    .header("WWW-Authenticate", header("`Bearer`")),
            )])
        }
    }

    /// 403: authenticated but not allowed, or `password_change_required`.
    pub struct Forbidden;
    impl IntoResponses for Forbidden {
        fn responses() -> BTreeMap<String, RefOr<Response>> {
            set(vec![(
                "403",
                error(
                    "Not allowed (only where the target's existence is already known), or the \
                     caller must change their password first (`password_change_required`)",
                ),
            )])
        }
    }

    /// 404: absent or invisible to the caller.
    pub struct NotFound;
    impl IntoResponses for NotFound {
        fn responses() -> BTreeMap<String, RefOr<Response>> {
            set(vec![("404", error("Absent, or not visible to the caller"))])
        }
    }

    /// 409: a conflict (duplicate, state, insufficient funds, idempotency mismatch).
    pub struct Conflict;
    impl IntoResponses for Conflict {
        fn responses() -> BTreeMap<String, RefOr<Response>> {
            set(vec![(
                "409",
                error(
                    "Conflict: a duplicate, a state that forbids it, insufficient funds, or an \
                     `Idempotency-Key` reused with a different body",
                ),
            )])
        }
    }

    /// 400, 413 and 422 of an operation that reads a request body.
    pub struct InvalidBody;
    impl IntoResponses for InvalidBody {
        fn responses() -> BTreeMap<String, RefOr<Response>> {
            set(vec![
                (
                    "400",
                    error("Malformed request: bad JSON or an unsupported content type"),
                ),
                ("413", error("Request body too large")),
                ("422", validation()),
            ])
        }
    }

    /// 422 of an operation whose only checked input is its query string or headers.
    pub struct InvalidInput;
    impl IntoResponses for InvalidInput {
        fn responses() -> BTreeMap<String, RefOr<Response>> {
            set(vec![("422", validation())])
        }
    }

    /// 429, 500 and 503 of every operation that reaches the database (429: a tier rate limit or
    /// a login throttle; rate limits are checked in the database too).
    pub struct ServerErrors;
    impl IntoResponses for ServerErrors {
        fn responses() -> BTreeMap<String, RefOr<Response>> {
            set(vec![
                (
                    "429",
                    error("Over a rate limit (the caller's tier rules, or the login throttle)")
                        .header("Retry-After", header("Seconds until the window ends")),
                ),
                (
                    "500",
                    error("A bug: the body carries no detail; the cause is logged with the request id"),
                ),
                (
                    "503",
                    error("The database is unavailable; retry later").header(
                        "Retry-After",
                        header("Seconds to wait before retrying"),
                    ),
                ),
            ])
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(err: IdentityError) -> Self {
        let unauthorized = |code, detail| Self::Unauthorized { code, detail };
        match err {
            IdentityError::InvalidNonce => unauthorized("invalid_nonce", "Invalid nonce"),
            IdentityError::MalformedSignature => {
                unauthorized("invalid_signature", "Invalid signature encoding")
            }
            IdentityError::MalformedAddress => {
                unauthorized("invalid_signature", "Invalid SS58 address")
            }
            IdentityError::SignatureMismatch { .. } => {
                unauthorized("invalid_signature", "Invalid request signature")
            }
            IdentityError::MissingPayload => unauthorized(
                "invalid_signature",
                "Either payload_str or purpose must be provided",
            ),
            IdentityError::Replayed => {
                unauthorized("signature_replayed", "This signature was already used")
            }
            IdentityError::UnknownHotkey(_) | IdentityError::UnknownKey => {
                unauthorized("unknown_key", "No user holds this key")
            }
            IdentityError::MissingKey => unauthorized(
                "invalid_signature",
                "You must provide either coldkey or hotkey along with a signature and nonce.",
            ),
            IdentityError::InvalidFingerprint => unauthorized(
                "invalid_fingerprint",
                "Missing or invalid fingerprint provided.",
            ),
            IdentityError::InvalidApiKey => {
                unauthorized("invalid_token", "Invalid or expired token")
            }
            IdentityError::NotFound => Self::NotFound("Not found"),
            IdentityError::Failure(f) => f.into(),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> Self {
        match err {
            WebhookError::EndpointNotFound => Self::NotFound("Webhook endpoint not found"),
            WebhookError::DeliveryNotFound => Self::NotFound("Delivery not found"),
            WebhookError::EventNotFound => Self::NotFound("Event not found"),
            WebhookError::Failure(f) => f.into(),
        }
    }
}

impl From<MeteringError> for ApiError {
    fn from(err: MeteringError) -> Self {
        match err {
            MeteringError::UserNotFound => Self::NotFound("User not found"),
            MeteringError::QuotaExceeded { resets_at } => Self::PaymentRequired {
                message: "Quota exceeded and the account balance cannot pay for this call",
                resets_at: resets_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            },
            MeteringError::Failure(f) => f.into(),
        }
    }
}
