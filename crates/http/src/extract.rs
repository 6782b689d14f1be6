//! Request extractors shared by every surface: authentication, and JSON / form / query parsing
//! that answers like FastAPI (400 for malformed bodies, 422 naming the failing field).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use tessera_domain::model::WalletSummary;
use tessera_domain::values::IdempotencyKey;
use tessera_domain::Actor;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::error::{ApiError, FieldError};

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

/// The caller, authenticated by any credential (see [`crate::auth`]) and let through by
/// [`crate::gate`].
pub struct Authenticated(pub Actor);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            crate::gate::authenticate(req)
                .map(Authenticated)
                .map_err(ApiError::from),
        )
    }
}

/// The caller, as [`Authenticated`], with its wallet summary when the session look-up could read
/// it at no extra cost (an access token); `None` means it is still to be read.
pub struct AuthenticatedWithWallets(pub Actor, pub Option<WalletSummary>);

impl FromRequest for AuthenticatedWithWallets {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            crate::gate::authenticate_with_wallets(req)
                .map(|(actor, wallets)| AuthenticatedWithWallets(actor, wallets))
                .map_err(ApiError::from),
        )
    }
}

/// Strips serde_json's " at line L column C" suffix: positions mean nothing to API clients.
fn clean_message(message: String) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message,
    }
}

/// Where a deserialisation error sits, as `loc` segments: field names and map keys as they are,
/// sequence indices as numbers (`rate_limits[0].limit` is `rate_limits`, `0`, `limit`, like the
/// domain's own `rate_limits.0.limit`).
fn path_segments(path: &serde_path_to_error::Path) -> Vec<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect()
}

/// Turns a path-tracking deserialisation error into a 422 naming the field.
fn data_error(location: &str, mut path: Vec<String>, message: String) -> ApiError {
    let message = clean_message(message);
    // serde reports a missing field at its parent's path, naming it in the message.
    let (message, kind) = match message.strip_prefix("missing field `") {
        Some(rest) => {
            path.push(rest.trim_end_matches('`').to_owned());
            ("Field required".to_owned(), "missing")
        }
        None => (message, "value_error"),
    };
    let mut loc = vec![location.to_owned()];
    loc.extend(path);
    ApiError::Validation(vec![FieldError {
        loc,
        msg: message,
        kind: kind.to_owned(),
    }])
}

fn malformed_json(err: &serde_json::Error) -> ApiError {
    ApiError::BadRequest(format!(
        "Malformed JSON body: {}",
        clean_message(err.to_string())
    ))
}

pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // The whole document first: malformed JSON, and JSON nested deeper than serde_json's bound
    // (128 levels), is a 400 wherever it sits, even in a field the typed parse would skip (serde
    // skips ignored values without any depth bound) or after the point where it would stop.
    let document: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| malformed_json(&e))?;
    // Request bodies are objects, as in FastAPI; serde alone would also read a struct from an
    // array (`["alice", "secret", null]`).
    if !document.is_object() {
        return Err(ApiError::validation(
            "body",
            "",
            "Input should be a valid dictionary or object",
            "model_attributes_type",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|err| {
        let path = path_segments(err.path());
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => data_error("body", path, inner.to_string()),
            _ => malformed_json(&inner),
        }
    })?;
    de.end()
        .map_err(|_| ApiError::BadRequest("Malformed JSON body: trailing characters".into()))?;
    Ok(value)
}

pub(crate) fn parse_form<T: DeserializeOwned>(location: &str, raw: &[u8]) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw));
    serde_path_to_error::deserialize::<_, T>(de).map_err(|err| {
        let path = path_segments(err.path());
        data_error(location, path, err.into_inner().to_string())
    })
}

async fn read_body(req: HttpRequest, mut payload: Payload) -> Result<web::Bytes, ApiError> {
    web::Bytes::from_request(&req, &mut payload)
        .await
        .map_err(|e| {
            if e.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE
            {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("Could not read the request body".into())
            }
        })
}

enum BodyKind {
    Json,
    Form,
    Other,
}

fn body_kind(req: &HttpRequest) -> BodyKind {
    let Some(ct) = req.headers().get(header::CONTENT_TYPE) else {
        // FastAPI parses a body without a content type as JSON; so do we.
        return BodyKind::Json;
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime == "application/json" || mime.ends_with("+json") {
        BodyKind::Json
    } else if mime == "application/x-www-form-urlencoded" {
        BodyKind::Form
    } else {
        BodyKind::Other
    }
}

/// A JSON body.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = BoxFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            if !matches!(body_kind(&req), BodyKind::Json) {
                return Err(ApiError::BadRequest(
                    "Content type must be application/json".into(),
                ));
            }
            let bytes = read_body(req, payload).await?;
            parse_json(&bytes).map(ApiJson)
        })
    }
}

/// A JSON or `application/x-www-form-urlencoded` body (PATCH/PUT of users, OAuth2 login).
pub struct JsonOrForm<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonOrForm<T> {
    type Error = ApiError;
    type Future = BoxFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let kind = body_kind(&req);
            let bytes = read_body(req, payload).await?;
            match kind {
                BodyKind::Json => parse_json(&bytes).map(JsonOrForm),
                BodyKind::Form => parse_form("body", &bytes).map(JsonOrForm),
                BodyKind::Other => Err(ApiError::BadRequest(
                    "Content type must be application/json or application/x-www-form-urlencoded"
                        .into(),
                )),
            }
        })
    }
}

/// Query parameters, with 422 naming the parameter that failed.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiQuery<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_form("query", req.query_string().as_bytes()).map(ApiQuery))
    }
}

/// A JSON body that has been read but not parsed yet, for handlers that must check
/// permissions before they look at the input (the LNbits admin surface answers a non-admin
/// with 403 whatever it sent).
pub struct LaterJson {
    is_json: bool,
    bytes: web::Bytes,
}

impl LaterJson {
    /// Parses the body as `ApiJson` would: 400 for a wrong content type or malformed JSON, 422
    /// naming the failing field.
    pub fn parse<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        if !self.is_json {
            return Err(ApiError::BadRequest(
                "Content type must be application/json".into(),
            ));
        }
        parse_json(&self.bytes)
    }
}

impl FromRequest for LaterJson {
    type Error = ApiError;
    type Future = BoxFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let is_json = matches!(body_kind(&req), BodyKind::Json);
            let bytes = read_body(req, payload).await?;
            Ok(LaterJson { is_json, bytes })
        })
    }
}

/// The name of the idempotency header of money-moving requests.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// The optional `Idempotency-Key` header, validated (1..=255 printable ASCII characters); a
/// bad one is a 422 located in the header.
pub struct Idempotency(pub Option<IdempotencyKey>);

/// Reads and validates the optional `Idempotency-Key` header.
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = req.headers().get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .map_err(|_| "must contain only printable ASCII characters".to_owned())
        .and_then(|raw| {
            IdempotencyKey::parse(IDEMPOTENCY_HEADER, raw).map_err(|e| e.reason.into_owned())
        })
        .map(Some)
        .map_err(|msg| ApiError::validation("header", IDEMPOTENCY_HEADER, msg, "value_error"))
}

impl FromRequest for Idempotency {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(idempotency_key(req).map(Idempotency))
    }
}

/// `Some(None)` for an explicit `null`, `None` for an absent field.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// What a date-time query parameter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateTimeForm {
    /// RFC 3339 only (the canonical API).
    Rfc3339,
    /// RFC 3339, or naive (`2025-01-02T03:04:05`, taken as UTC), or a date (Chutes, FastAPI).
    Lenient,
}

/// A date-time query parameter (`None` when absent or empty); a bad one is a 422 naming it.
pub fn date_time_param(
    field: &str,
    form: DateTimeForm,
    raw: Option<&str>,
) -> Result<Option<OffsetDateTime>, ApiError> {
    // Chutes (FastAPI) takes an empty value for no value; the canonical API refuses it.
    let raw = match (form, raw) {
        (_, None) => return Ok(None),
        (DateTimeForm::Lenient, Some(r)) if r.trim().is_empty() => return Ok(None),
        (DateTimeForm::Lenient, Some(r)) => r.trim(),
        (DateTimeForm::Rfc3339, Some(r)) => r,
    };
    if raw.len() > 64 {
        return Err(ApiError::validation(
            "query",
            field,
            "is too long",
            "value_error",
        ));
    }
    if let Ok(t) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok(Some(t));
    }
    if form == DateTimeForm::Rfc3339 {
        return Err(ApiError::validation(
            "query",
            field,
            "not an RFC 3339 date-time",
            "value_error",
        ));
    }
    let naive = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let naive_frac =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]");
    let date = format_description!("[year]-[month]-[day]");
    PrimitiveDateTime::parse(raw, naive)
        .or_else(|_| PrimitiveDateTime::parse(raw, naive_frac))
        .map(PrimitiveDateTime::assume_utc)
        .or_else(|_| {
            time::Date::parse(raw, date).map(|d| d.with_time(time::Time::MIDNIGHT).assume_utc())
        })
        .map(Some)
        .map_err(|_| {
            ApiError::validation(
                "query",
                field,
                "Input should be a valid datetime",
                "datetime_parsing",
            )
        })
}
