//! Tessera's HTTP surfaces on actix-web. Handlers are thin: parse the request into domain
//! types, call one service method, map the result to a wire shape. Authorization lives in the
//! domain.
//!
//! This crate never names a storage adapter: it receives a ready [`ApiState`].

mod api_v1;
pub mod auth;
pub mod chutes;
pub mod deadline;
pub mod dto;
pub mod error;
pub mod extract;
mod health;
mod lnbits;
pub mod metrics;
pub mod request_id;
mod state;

use actix_web::{web, HttpResponse};

pub use error::ApiError;
pub use state::{ApiState, Readiness};

/// Request-level limits.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest accepted request body, in bytes (default 64 KiB).
    pub max_body_bytes: usize,
    /// Take the client address from `X-Forwarded-For` (behind a trusted proxy only).
    pub trust_forwarded_for: bool,
    /// How long a whole request body may take to arrive (zero: no limit); see [`deadline`].
    pub body_read_timeout: std::time::Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            trust_forwarded_for: false,
            body_read_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// Registers every surface and the probes on an actix `App`.
pub fn configure(
    state: web::Data<ApiState>,
    limits: HttpLimits,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(state)
            .app_data(web::PayloadConfig::new(limits.max_body_bytes))
            .app_data(web::Data::new(limits))
            .configure(health::configure)
            .configure(api_v1::configure)
            .configure(lnbits::configure)
            // After LNbits: its `/users/api/v1` scope must win over Chutes' `/users`.
            .configure(chutes::configure)
            .default_service(web::to(not_found));
    }
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({"detail": "Not Found", "code": "not_found"}))
}
