//! The canonical REST API under `/api/v1`.

mod audit;
mod auth;
mod shares;
mod tiers;
mod users;
mod wallets;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .configure(auth::configure)
            .configure(shares::configure)
            .configure(audit::configure)
            // Before the users routes: `/users/{user}/tier` is more specific than
            // `/users/{user}`, and both are registered as resources.
            .configure(tiers::configure)
            .configure(users::configure)
            .configure(wallets::configure),
    );
}
