//! The Chutes-compatible surface (seed 000): `/users/*`, with Chutes' paths, field names, status
//! codes and `{"detail": …}` error bodies. Deliberate fixes over the original are listed in
//! `docs/api.md`.
//!
//! Route order matters in actix: within the scope, literal segments (`/me/...`) are registered
//! before any `{user_id}` parameter, so `/users/me/discounts` can never be shadowed by an admin
//! route (a bug of the original).

pub(crate) mod account;
pub(crate) mod billing;
pub(crate) mod error;

pub use account::{self_response, SelfResponse};
pub use error::{ChutesError, ChutesErrorBody};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use tessera_domain::Failure;
use tessera_domain::{Actor, AuthError, IdentityError};

use crate::auth::AuthFailure;
use crate::gate::{authenticate, SurfaceErrors};
use crate::routes::Routes;

pub fn configure(routes: &mut Routes) {
    routes.scope_with(
        "/users",
        |scope| {
            scope
                .app_data(CHUTES_ERRORS)
                .wrap(actix_web::middleware::from_fn(
                    crate::auth::hash_signed_bodies,
                ))
        },
        |routes| {
            // `/me` (GET, DELETE) and the other literal account routes, then billing's
            // `/me/...` literals, then the `/{user_id}/...` routes.
            account::configure(routes);
            billing::configure(routes);
        },
    );
}

/// The caller, authenticated by any credential and let through by [`crate::gate`].
pub struct ChutesAuth(pub Actor);

impl FromRequest for ChutesAuth {
    type Error = ChutesError;
    type Future = std::future::Ready<Result<Self, ChutesError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(authenticate(req).map(ChutesAuth).map_err(auth_failure))
    }
}

/// The gate's refusals in Chutes' words (`{"detail": …}`).
const CHUTES_ERRORS: SurfaceErrors = SurfaceErrors {
    unauthenticated: |failure| auth_failure(failure).into(),
    limited: |failure| match failure {
        Failure::Throttled { retry_after_secs } => {
            ChutesError::throttled("Too many requests.", retry_after_secs).into()
        }
        other => crate::error::ApiError::from(other).into(),
    },
    denied: |denied| match denied {
        tessera_domain::Denied::Forbidden { message, .. } => ChutesError::forbidden(message).into(),
        not_found => (SurfaceErrors::CANONICAL.denied)(not_found),
    },
};

/// An authentication failure in Chutes' words.
pub(crate) fn auth_failure(failure: AuthFailure) -> ChutesError {
    match failure {
        AuthFailure::Missing => {
            ChutesError::unauthorized("Can't find a user with that api key in our db :(")
        }
        AuthFailure::Token(AuthError::InvalidToken | AuthError::InvalidCredentials) => {
            ChutesError::unauthorized("Invalid token.")
        }
        AuthFailure::Token(other) => other.into(),
        AuthFailure::Identity(e) => identity_error(e),
        AuthFailure::ExternalWrite => ChutesError::unauthorized(
            "Only invocations and read/GET requests are allowed with squad auth (for now).",
        ),
        AuthFailure::Internal(cause) => crate::error::ApiError::Internal(cause).into(),
    }
}

/// Identity errors in Chutes' words.
pub(crate) fn identity_error(e: IdentityError) -> ChutesError {
    match e {
        IdentityError::InvalidNonce => ChutesError::unauthorized("Invalid nonce!"),
        IdentityError::MalformedSignature => {
            ChutesError::unauthorized("Invalid signature: not a hex-encoded sr25519 signature")
        }
        IdentityError::MalformedAddress => ChutesError::unauthorized("Invalid SS58 address"),
        IdentityError::SignatureMismatch { hotkey, message } => ChutesError::unauthorized(format!(
            "Invalid request signature for hotkey {hotkey}. Message: {message}"
        )),
        IdentityError::MissingPayload => {
            ChutesError::unauthorized("Either payload_str or purpose must be provided")
        }
        IdentityError::Replayed => ChutesError::unauthorized("Signature already used"),
        IdentityError::UnknownHotkey(hotkey) => {
            ChutesError::unauthorized(format!("Could not find user with hotkey: {hotkey}"))
        }
        IdentityError::UnknownKey => {
            ChutesError::unauthorized("No user found with the provided hotkey/coldkey")
        }
        IdentityError::MissingKey => ChutesError::unauthorized(
            "You must provide either coldkey or hotkey along with a signature and nonce.",
        ),
        IdentityError::InvalidFingerprint => {
            ChutesError::unauthorized("Missing or invalid fingerprint provided.")
        }
        IdentityError::InvalidApiKey => {
            ChutesError::unauthorized("Invalid token or user not found")
        }
        IdentityError::Failure(Failure::Throttled { retry_after_secs }) => {
            ChutesError::throttled("Too many requests.", retry_after_secs)
        }
        IdentityError::Failure(Failure::Forbidden { message, .. }) => {
            ChutesError::forbidden(message)
        }
        IdentityError::NotFound => ChutesError::not_found("Not found"),
        other => crate::error::ApiError::from(other).into(),
    }
}
