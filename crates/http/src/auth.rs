//! Who is calling: every credential of PRODUCT.md §2, decided in Chutes' order so its clients
//! work unchanged on every surface.
//!
//! 1. Hotkey mode, when both `X-Chutes-Hotkey` and `X-Chutes-Signature` are present: sr25519
//!    over `{hotkey}:{nonce}:{purpose}` (routes that declare a [`SigningPurpose`]) or over
//!    `{hotkey}:{nonce}:{sha256-hex of the raw body}` (POST, PUT, PATCH; the digest is taken by
//!    [`hash_signed_bodies`] before any handler reads the body).
//! 2. `Authorization: Bearer <JWT>`: a Tessera access token, else (when configured) a token of
//!    the trusted external issuer, for read-only requests.
//! 3. Any other `Authorization` value, or a bearer value starting `cpk_`: an API key.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tessera_domain::model::{SignedPayload, SignedRequest, WalletSummary};
use tessera_domain::services::identity::API_KEY_PREFIX;
use tessera_domain::{Actor, AuthError, IdentityError, LimitError};

use crate::error::ApiError;
use crate::state::ApiState;
use crate::HttpLimits;

pub const HOTKEY_HEADER: &str = "x-chutes-hotkey";
pub const SIGNATURE_HEADER: &str = "x-chutes-signature";
pub const NONCE_HEADER: &str = "x-chutes-nonce";

/// The purpose a route signs instead of a body digest (`me` for `GET /users/me`).
#[derive(Debug, Clone, Copy)]
pub struct SigningPurpose(pub &'static str);

/// The lowercase hex SHA-256 of a signed request's raw body.
#[derive(Debug, Clone)]
struct BodyDigest(String);

/// Why authentication failed, kept apart so each surface can word it its own way.
#[derive(Debug)]
pub enum AuthFailure {
    /// No usable credential at all.
    Missing,
    /// An access token that does not verify or no longer works.
    Token(AuthError),
    /// A signature, API key or external-token failure.
    Identity(IdentityError),
    /// A token of the external issuer on a request that changes state.
    ExternalWrite,
    /// Authenticated, but over the caller's rate limit.
    Limited(LimitError),
    Internal(String),
}

impl From<AuthFailure> for ApiError {
    fn from(failure: AuthFailure) -> Self {
        match failure {
            AuthFailure::Missing => ApiError::not_authenticated(),
            AuthFailure::Token(e) => e.into(),
            AuthFailure::Identity(e) => e.into(),
            AuthFailure::ExternalWrite => ApiError::Forbidden {
                code: "read_only_credential",
                detail: "Only read requests are allowed with this token".to_owned(),
            },
            AuthFailure::Limited(e) => e.into(),
            AuthFailure::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name)?.to_str().ok()
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Middleware: for a signed POST, PUT or PATCH, reads the raw body (within the configured
/// limit), records its SHA-256 for the signature check and hands the same bytes on.
pub async fn hash_signed_bodies(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let signed = req.headers().contains_key(SIGNATURE_HEADER);
    let with_body = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    if signed && with_body {
        let limit = req
            .app_data::<web::Data<HttpLimits>>()
            .map_or(HttpLimits::default().max_body_bytes, |l| l.max_body_bytes);
        let mut payload = req.take_payload();
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge.into());
            }
            body.extend_from_slice(&chunk);
        }
        let body = body.freeze();
        req.extensions_mut()
            .insert(BodyDigest(hex::encode(Sha256::digest(&body))));
        req.set_payload(actix_web::dev::Payload::from(body));
    }
    next.call(req).await
}

/// The client's address for per-IP throttles: the peer, or the first `X-Forwarded-For` entry
/// when the deployment says a trusted proxy sets it.
pub fn client_ip(req: &HttpRequest) -> String {
    let trust = req
        .app_data::<web::Data<HttpLimits>>()
        .is_some_and(|l| l.trust_forwarded_for);
    if trust {
        if let Some(first) = header_str(req, "x-forwarded-for")
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            return first.chars().take(64).collect();
        }
    }
    req.peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string())
}

/// The hotkey-signature headers of a request, with what was signed.
pub fn signed_request(req: &HttpRequest) -> Option<SignedRequest> {
    let hotkey = header_str(req, HOTKEY_HEADER)?;
    let signature = header_str(req, SIGNATURE_HEADER)?;
    Some(signed_request_with(req, hotkey, signature))
}

/// Like [`signed_request`] for routes where only the hotkey header is mandatory.
pub fn signed_request_with(req: &HttpRequest, hotkey: &str, signature: &str) -> SignedRequest {
    let payload = if let Some(purpose) = req.app_data::<SigningPurpose>() {
        SignedPayload::Purpose(purpose.0.to_owned())
    } else if let Some(digest) = req.extensions().get::<BodyDigest>() {
        SignedPayload::BodyDigest(digest.0.clone())
    } else {
        SignedPayload::Missing
    };
    SignedRequest {
        hotkey: hotkey.trim().to_owned(),
        signature: signature.trim().to_owned(),
        nonce: header_str(req, NONCE_HEADER).map(|n| n.trim().to_owned()),
        payload,
        state_changing: changes_state(req.method()),
    }
}

/// The `Authorization` credential: `(is_bearer, last space-separated token)`. A scheme with no
/// token (`Bearer`) is no credential at all.
fn authorization(req: &HttpRequest) -> Option<(bool, String)> {
    let value = header_str(req, header::AUTHORIZATION.as_str())?.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or(("", value));
    let is_bearer = scheme.eq_ignore_ascii_case("bearer");
    let token = rest.rsplit(' ').next().unwrap_or(rest).trim();
    if token.is_empty() || (!is_bearer && value.eq_ignore_ascii_case("bearer")) {
        return None;
    }
    Some((is_bearer, token.to_owned()))
}

/// Authenticates a request with whichever credential it carries, then applies the caller's
/// tier rate limits to its path.
pub async fn authenticate(req: &HttpRequest) -> Result<Actor, AuthFailure> {
    Ok(authenticate_reading(req, false).await?.0)
}

/// [`authenticate`], also reading the caller's wallet summary in the session look-up when the
/// credential is an access token (`None` otherwise: read it separately).
pub async fn authenticate_with_wallets(
    req: &HttpRequest,
) -> Result<(Actor, Option<WalletSummary>), AuthFailure> {
    authenticate_reading(req, true).await
}

async fn authenticate_reading(
    req: &HttpRequest,
    with_wallets: bool,
) -> Result<(Actor, Option<WalletSummary>), AuthFailure> {
    let (actor, wallets) = identify(req, with_wallets).await?;
    if let Some(state) = req.app_data::<web::Data<ApiState>>() {
        state
            .tessera
            .limits
            .check_request(Some(&actor), &client_ip(req), req.path())
            .await
            .map_err(AuthFailure::Limited)?;
    }
    Ok((actor, wallets))
}

fn has_credentials(req: &HttpRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(header::AUTHORIZATION) || headers.contains_key(SIGNATURE_HEADER)
}

/// Middleware: calls that carry no credential count against the default tier's rules per client
/// IP (authenticated calls are counted per user once their credential is checked).
pub async fn limit_anonymous_calls(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !has_credentials(req.request()) {
        if let Some(state) = req.app_data::<web::Data<ApiState>>() {
            let ip = client_ip(req.request());
            state
                .tessera
                .limits
                .check_request(None, &ip, req.path())
                .await
                .map_err(ApiError::from)?;
        }
    }
    next.call(req).await
}

/// Who the credential names, without rate limits; with an access token and `with_wallets`, also
/// the caller's wallet summary.
async fn identify(
    req: &HttpRequest,
    with_wallets: bool,
) -> Result<(Actor, Option<WalletSummary>), AuthFailure> {
    let state = req
        .app_data::<web::Data<ApiState>>()
        .cloned()
        .ok_or_else(|| AuthFailure::Internal("API state missing".into()))?;
    let identity = &state.tessera.identity;
    if let Some(signed) = signed_request(req) {
        return identity
            .authenticate_signed(&signed)
            .await
            .map(|actor| (actor, None))
            .map_err(AuthFailure::Identity);
    }
    let (is_bearer, token) = authorization(req).ok_or(AuthFailure::Missing)?;
    // Keys are recognised by their prefix, bare or as a bearer value (as Chutes does); any
    // other scheme (`Basic …`, `Token …`) carries nothing Tessera accepts.
    if !is_bearer && !token.starts_with(API_KEY_PREFIX) {
        return Err(AuthFailure::Missing);
    }
    if token.starts_with(API_KEY_PREFIX) {
        return identity
            .authenticate_api_key(&token)
            .await
            .map(|actor| (actor, None))
            .map_err(AuthFailure::Identity);
    }
    let auth = &state.tessera.auth;
    let checked = if with_wallets {
        auth.authenticate_with_wallets(&token).await
    } else {
        auth.authenticate(&token).await.map(|actor| (actor, None))
    };
    match checked {
        Ok(found) => Ok(found),
        Err(AuthError::InvalidToken) if identity.accepts_external_tokens() => {
            let actor = identity
                .authenticate_external(&token)
                .await
                .map_err(|_| AuthFailure::Token(AuthError::InvalidToken))?;
            if changes_state(req.method()) {
                return Err(AuthFailure::ExternalWrite);
            }
            Ok((actor, None))
        }
        Err(e) => Err(AuthFailure::Token(e)),
    }
}
