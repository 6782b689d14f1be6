//! The canonical REST API under `/api/v1`.

mod audit;
mod auth;
mod metering;
mod shares;
mod tiers;
mod users;
mod wallets;

use actix_web::web;
use tessera_domain::values::UserRef;

use crate::error::ApiError;

/// A `{user}` path segment: an id or a username. One that cannot name a user names nobody the
/// caller can see, so it is a 404 like any other invisible user.
fn user_ref(raw: &str) -> Result<UserRef, ApiError> {
    UserRef::parse(raw).map_err(|_| ApiError::NotFound("User not found"))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .configure(auth::configure)
            .configure(shares::configure)
            .configure(audit::configure)
            // Before the users routes: `/users/{user}/tier` is more specific than
            // `/users/{user}`, and both are registered as resources.
            .configure(tiers::configure)
            // `/users/{user}/quotas` and friends, before the generic `/users/{user}` resources.
            .configure(metering::configure)
            .configure(users::configure)
            .configure(wallets::configure),
    );
}
