//! The canonical REST API under `/api/v1`.

pub(crate) mod api_keys;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod deposits;
pub mod dto;
pub(crate) mod events;
pub(crate) mod metering;
pub(crate) mod shares;
pub(crate) mod tiers;
pub(crate) mod users;
pub(crate) mod wallets;

use tessera_domain::values::UserRef;

use crate::error::ApiError;
use crate::routes::Routes;

/// A `{user}` path segment: an id or a username. One that cannot name a user names nobody the
/// caller can see, so it is a 404 like any other invisible user.
fn user_ref(raw: &str) -> Result<UserRef, ApiError> {
    UserRef::parse(raw).map_err(|_| ApiError::NotFound("User not found"))
}

pub fn configure(routes: &mut Routes) {
    routes.scope_with(
        "/api/v1",
        |scope| {
            scope.wrap(actix_web::middleware::from_fn(
                crate::auth::hash_signed_bodies,
            ))
        },
        |routes| {
            // actix tries routes in this order and matches each pattern with parameters by a
            // regex, so the hottest paths come first: `/users/me` (after the literal `/users`
            // routes), then adjustments, then consumption. The order is otherwise free: a
            // parameter never spans a `/`, so `/users/{user}` cannot take `/users/{user}/tier`.
            users::configure(routes);
            wallets::configure(routes);
            metering::configure(routes);
            deposits::configure(routes);
            tiers::configure(routes);
            auth::configure(routes);
            shares::configure(routes);
            api_keys::configure(routes);
            audit::configure(routes);
            events::configure(routes);
        },
    );
}
