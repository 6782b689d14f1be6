//! The Chutes-compatible surface (seed 000): `/users/*`, with Chutes' paths, field names, status
//! codes and `{"detail": …}` error bodies. Deliberate fixes over the original are listed in
//! `docs/api.md`.
//!
//! Route order matters in actix: within the scope, literal segments (`/me/...`) are registered
//! before any `{user_id}` parameter, so `/users/me/discounts` can never be shadowed by an admin
//! route (a bug of the original).

mod billing;
mod error;

pub use error::ChutesError;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::scope("/users").configure(billing::configure));
}
