//! The LNbits-compatible admin surface (seed 001): `/users/api/v1/user*`, with LNbits' field
//! names, shapes and status codes.
//!
//! Admin = the `admin` permission (or `superuser`); super user = `superuser`. Every handler
//! checks the caller's permission before it reads its input or touches anything (LNbits
//! soft-deletes a user's wallets before it checks who is asking; Tessera does not). The work is
//! done by the same domain services as the canonical API.

pub(crate) mod users;

use crate::routes::Routes;

pub fn configure(routes: &mut Routes) {
    routes.scope_with(
        "/users/api/v1",
        |scope| {
            scope.wrap(actix_web::middleware::from_fn(
                crate::auth::hash_signed_bodies,
            ))
        },
        users::configure,
    );
}
