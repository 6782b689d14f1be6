//! Tessera's HTTP surfaces on actix-web. Handlers are thin: parse the request into domain
//! types, call one service method, map the result to a wire shape. Authorization lives in the
//! domain.
//!
//! This crate never names a storage adapter: it receives a ready [`ApiState`].

mod api_v1;
pub mod auth;
pub mod chutes;
pub mod deadline;
mod docs;
pub mod error;
pub mod extract;
pub mod gate;
mod health;
mod lnbits;
pub mod metrics;
pub mod normalize;
pub mod openapi;
pub mod request_id;
pub mod routes;
mod state;
pub mod vocabulary;

use actix_web::{web, HttpResponse};

pub use error::ApiError;
use routes::{RegisteredRoute, RouteLog, Routes};
pub use state::{ApiState, Readiness};

/// Request-level limits.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest accepted request body, in bytes (default 64 KiB).
    pub max_body_bytes: usize,
    /// How many proxies in front of Tessera append to `X-Forwarded-For`: the client address is
    /// that many entries from the right (0: the peer's address, `X-Forwarded-For` ignored).
    pub trusted_proxies: u8,
    /// Read the client address from Cloudflare's `CF-Connecting-IP` (as Chutes does), when
    /// Tessera is reachable only through Cloudflare; else the header is ignored.
    pub cf_connecting_ip: bool,
    /// How long a whole request body may take to arrive (zero: no limit); see [`deadline`].
    pub body_read_timeout: std::time::Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            trusted_proxies: 0,
            cf_connecting_ip: false,
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
            .default_service(web::to(not_found));
        // The log is only read by `registered_routes` and the document; serving discards it.
        let log = RouteLog::default();
        register_routes(&mut Routes::new(cfg, &log));
    }
}

/// Every operation of every surface, in matching order: the one list the server serves and
/// the OpenAPI document describes (see [`routes`]).
fn register_routes(routes: &mut Routes) {
    health::configure(routes);
    docs::configure(routes);
    api_v1::configure(routes);
    lnbits::configure(routes);
    // After LNbits: its `/users/api/v1` scope must win over Chutes' `/users`.
    chutes::configure(routes);
}

/// Replays the registration into a log (no state is needed: actix runs the configuration
/// eagerly).
fn registration() -> RouteLog {
    let log = RouteLog::default();
    let _app = actix_web::App::new().configure(|cfg| register_routes(&mut Routes::new(cfg, &log)));
    log
}

/// The `(method, actix path template)` of every route [`configure`] registers.
pub fn registered_routes() -> Vec<RegisteredRoute> {
    registration().routes()
}

/// Every registered operation with its documentation, in registration order.
pub(crate) fn registered_operations() -> Vec<routes::LoggedOperation> {
    registration().into_operations()
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({"detail": "Not Found", "code": "not_found"}))
}
