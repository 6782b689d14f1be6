//! The Chutes-compatible surface (seed 000): `/users/*`, with Chutes' paths, field names, status
//! codes and `{"detail": …}` error bodies. Deliberate fixes over the original are listed in
//! `docs/api.md`.
//!
//! Route order matters in actix: within the scope, literal segments (`/me/...`) are registered
//! before any `{user_id}` parameter, so `/users/me/discounts` can never be shadowed by an admin
//! route (a bug of the original).

mod error;

pub use error::{ChutesError, ChutesErrorBody};

use crate::routes::Routes;

pub fn configure(routes: &mut Routes) {
    routes.scope("/users", |_routes| {});
}
