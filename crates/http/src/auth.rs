//! Who is calling: every credential of PRODUCT.md §2, decided in Chutes' order so its clients
//! work unchanged on every surface. The gate in front of every route calls [`identify`] once
//! per request.
//!
//! 1. Hotkey mode, when both `X-Chutes-Hotkey` and `X-Chutes-Signature` are present: sr25519
//!    over the request itself, `{hotkey}:{nonce}:{METHOD}:{path?query}:{sha256-hex of the raw
//!    body}`, or one of Chutes' two forms where a route accepts it — `{hotkey}:{nonce}:{purpose}`
//!    for reads of a route that declares a [`SigningPurpose`], `{hotkey}:{nonce}:{sha256-hex of
//!    the body}` on routes marked [`ChutesBodySignature`]. The digest is taken by
//!    [`hash_signed_bodies`] before any handler reads the body; the domain decides which form
//!    the signature is and what it allows.
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
use tessera_domain::model::{SignedRequest, WalletSummary};
use tessera_domain::services::identity::API_KEY_PREFIX;
use tessera_domain::{Actor, AuthError, IdentityError};

use crate::error::ApiError;
use crate::state::ApiState;
use crate::HttpLimits;

pub const HOTKEY_HEADER: &str = "x-chutes-hotkey";
pub const SIGNATURE_HEADER: &str = "x-chutes-signature";
pub const NONCE_HEADER: &str = "x-chutes-nonce";

/// Resource data: the purpose a route's reads may sign instead of the request (`me` for
/// `GET /users/me`). It never authorizes a state-changing method.
#[derive(Debug, Clone, Copy)]
pub struct SigningPurpose(pub &'static str);

/// Resource data: the route accepts Chutes' body form, `{hotkey}:{nonce}:{sha256 of the body}`,
/// for requests with a body — only the routes the published Chutes client signs that way.
#[derive(Debug, Clone, Copy)]
pub struct ChutesBodySignature;

/// The lowercase hex SHA-256 of a signed request's raw body, and whether it had any bytes.
#[derive(Debug, Clone)]
struct BodyDigest {
    hex: String,
    has_body: bool,
}

/// The request's path and query as the client sent them, before any normalisation rewrote the
/// request's URI (a signature covers what the client signed).
#[derive(Debug, Clone)]
pub struct OriginalTarget(pub String);

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

/// Middleware: for a signed request, reads the raw body (within the configured limit), records
/// its SHA-256 for the signature check and hands the same bytes on.
pub async fn hash_signed_bodies(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.headers().contains_key(SIGNATURE_HEADER) {
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
        req.extensions_mut().insert(BodyDigest {
            hex: hex::encode(Sha256::digest(&body)),
            has_body: !body.is_empty(),
        });
        req.set_payload(actix_web::dev::Payload::from(body));
    }
    next.call(req).await
}

/// The client's address for per-address throttles and limits. With `server.trusted_proxies`
/// = N, the proxies in front of Tessera each append the address they saw to
/// `X-Forwarded-For`, so the client is the N-th entry from the right: the rightmost address no
/// trusted proxy vouches for. Entries further left are whatever the client chose to send.
///
/// With `server.client_ip_header = "CF-Connecting-IP"` (Tessera reachable only through
/// Cloudflare), that header names the client, as Chutes reads it; a value that is not an IP
/// address is ignored.
pub fn client_ip(req: &HttpRequest) -> String {
    let limits = req.app_data::<web::Data<HttpLimits>>();
    if limits.is_some_and(|l| l.cf_connecting_ip) {
        if let Some(ip) = header_str(req, "cf-connecting-ip")
            .and_then(|v| v.trim().parse::<std::net::IpAddr>().ok())
        {
            return ip.to_string();
        }
    }
    let proxies = limits.map_or(0, |l| usize::from(l.trusted_proxies));
    if proxies > 0 {
        if let Some(hops) = header_str(req, "x-forwarded-for") {
            let hops: Vec<&str> = hops
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .collect();
            if let Some(hop) = hops
                .len()
                .checked_sub(proxies)
                .and_then(|i| hops.get(i))
                .or_else(|| hops.first())
            {
                return hop.chars().take(64).collect();
            }
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
    let (body_digest, has_body) = req.extensions().get::<BodyDigest>().map_or_else(
        || (hex::encode(Sha256::digest(b"")), false),
        |d| (d.hex.clone(), d.has_body),
    );
    let target = req.extensions().get::<OriginalTarget>().map_or_else(
        || {
            req.uri()
                .path_and_query()
                .map_or_else(|| req.path().to_owned(), |pq| pq.as_str().to_owned())
        },
        |t| t.0.clone(),
    );
    SignedRequest {
        hotkey: hotkey.trim().to_owned(),
        signature: signature.trim().to_owned(),
        nonce: header_str(req, NONCE_HEADER).map(|n| n.trim().to_owned()),
        method: req.method().as_str().to_owned(),
        target,
        body_digest,
        has_body,
        purpose: req.app_data::<SigningPurpose>().map(|p| p.0.to_owned()),
        accepts_body_form: req.app_data::<ChutesBodySignature>().is_some(),
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

/// Whether the request carries anything that could be a credential.
pub(crate) fn has_credentials(req: &HttpRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(header::AUTHORIZATION) || headers.contains_key(SIGNATURE_HEADER)
}

/// Who the credential names, without rate limits; with an access token and `with_wallets`, also
/// the caller's wallet summary.
pub(crate) async fn identify(
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
