//! The canonical REST API under `/api/v1`.

mod auth;
mod users;
mod wallets;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .configure(auth::configure)
            .configure(users::configure)
            .configure(wallets::configure),
    );
}
