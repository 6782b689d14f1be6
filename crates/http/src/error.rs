//! One error type for every surface, built from each domain error. 5xx bodies never carry
//! internal detail; the cause is logged instead.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use tessera_domain::error::{
    AuthError, MeteringError, TierError, UserError, ValidationError, WalletError,
};

/// One entry of a FastAPI-shaped validation error.
#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
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
    /// 422 in FastAPI's shape.
    Validation(Vec<FieldError>),
    Unavailable,
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    detail: &'a str,
    code: &'a str,
}

#[derive(Serialize)]
struct ValidationBody<'a> {
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
            Self::Unavailable => "Service temporarily unavailable".to_owned(),
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
            Self::Validation(errors) => write!(f, "validation failed: {errors:?}"),
            Self::Unavailable => f.write_str("service unavailable"),
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
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
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
                return response.json(serde_json::json!({
                    "detail": {"message": message, "quota_reset_timestamp": resets_at},
                    "code": "quota_exceeded",
                }));
            }
            Self::Conflict { code, detail } => (detail, code),
            Self::PayloadTooLarge => ("Request body too large", "payload_too_large"),
            Self::Unavailable => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
                ("Service temporarily unavailable", "unavailable")
            }
            Self::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                ("Internal server error", "internal_error")
            }
        };
        response.json(ErrorBody { detail, code })
    }
}

impl From<UserError> for ApiError {
    fn from(err: UserError) -> Self {
        match err {
            UserError::NotFound => Self::NotFound("User not found"),
            UserError::TierNotFound => Self::NotFound("Tier not found"),
            UserError::Forbidden { code, message } => Self::Forbidden {
                code,
                detail: message.to_owned(),
            },
            UserError::Conflict(c) => Self::Conflict {
                code: c.code(),
                detail: c.message().to_owned(),
            },
            UserError::Validation(v) => Self::from_validation(v),
            UserError::Unavailable => Self::Unavailable,
            UserError::Internal(cause) => Self::Internal(cause),
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
            AuthError::PasswordChangeRequired => Self::Forbidden {
                code: "password_change_required",
                detail: "You must change your password first".to_owned(),
            },
            AuthError::Validation(v) => Self::from_validation(v),
            AuthError::Unavailable => Self::Unavailable,
            AuthError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<WalletError> for ApiError {
    fn from(err: WalletError) -> Self {
        match err {
            WalletError::NotFound => Self::NotFound("Wallet not found"),
            WalletError::UserNotFound => Self::NotFound("User not found"),
            WalletError::Forbidden { code, message } => Self::Forbidden {
                code,
                detail: message.to_owned(),
            },
            WalletError::Conflict(c) => Self::Conflict {
                code: c.code(),
                detail: c.message().to_owned(),
            },
            WalletError::Validation(v) => Self::from_validation(v),
            WalletError::Unavailable => Self::Unavailable,
            WalletError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<TierError> for ApiError {
    fn from(err: TierError) -> Self {
        match err {
            TierError::NotFound => Self::NotFound("Tier not found"),
            TierError::UserNotFound => Self::NotFound("User not found"),
            TierError::Forbidden { code, message } => Self::Forbidden {
                code,
                detail: message.to_owned(),
            },
            TierError::Conflict(c) => Self::Conflict {
                code: c.code(),
                detail: c.message().to_owned(),
            },
            TierError::Validation(v) => Self::from_validation(v),
            TierError::Unavailable => Self::Unavailable,
            TierError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<MeteringError> for ApiError {
    fn from(err: MeteringError) -> Self {
        match err {
            MeteringError::UserNotFound => Self::NotFound("User not found"),
            MeteringError::Forbidden { code, message } => Self::Forbidden {
                code,
                detail: message.to_owned(),
            },
            MeteringError::QuotaExceeded { resets_at } => Self::PaymentRequired {
                message: "Quota exceeded and the account balance cannot pay for this call",
                resets_at: resets_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            },
            MeteringError::Conflict(c) => Self::Conflict {
                code: c.code(),
                detail: c.message().to_owned(),
            },
            MeteringError::Validation(v) => Self::from_validation(v),
            MeteringError::Unavailable => Self::Unavailable,
            MeteringError::Internal(cause) => Self::Internal(cause),
        }
    }
}
