//! Liveness and readiness probes, outside `/api/v1`.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::routes::{op, Routes};
use crate::state::ApiState;

pub fn configure(routes: &mut Routes) {
    routes
        .op(op!(healthz))
        .op(op!(readyz))
        .op(op!(ping))
        .op(op!(metrics));
}

/// A probe's answer (`/healthz`, `/readyz`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProbeView {
    /// `ok`, `ready` or `unavailable`.
    pub status: &'static str,
    /// Why the service is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    security(),
    tag = "operations",
    responses((status = 200, description = "Alive", body = ProbeView, example = json!({"status": "ok"}))),
)]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(ProbeView {
        status: "ok",
        detail: None,
    })
}

/// Readiness: the database answers and its schema is current.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    security(),
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = ProbeView, example = json!({"status": "ready"})),
        (status = 503, description = "Not ready: the database is unreachable or its schema is not current", body = ProbeView,
            headers(("Retry-After" = String, description = "Seconds to wait before retrying")),
            example = json!({"status": "unavailable", "detail": "database unreachable"})),
    ),
)]
pub(crate) async fn readyz(state: web::Data<ApiState>) -> HttpResponse {
    match state.readiness.check().await {
        Ok(()) => HttpResponse::Ok().json(ProbeView {
            status: "ready",
            detail: None,
        }),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", "1"))
                .json(ProbeView {
                    status: "unavailable",
                    detail: Some(reason),
                })
        }
    }
}

/// Chutes' `GET /ping` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PongView {
    #[schema(example = "pong")]
    pub message: &'static str,
}

/// Chutes' connectivity check (`chutes register` pings it before registering): `{"message":
/// "pong"}` when the database answers, as Chutes does; else 503 with the reason.
#[utoipa::path(
    get,
    path = "/ping",
    operation_id = "ping",
    security(),
    tag = "operations",
    responses(
        (status = 200, description = "The service and its database answer", body = PongView, example = json!({"message": "pong"})),
        (status = 503, description = "The database is unreachable or its schema is not current", body = ProbeView,
            headers(("Retry-After" = String, description = "Seconds to wait before retrying"))),
    ),
)]
pub(crate) async fn ping(state: web::Data<ApiState>) -> HttpResponse {
    match state.readiness.check().await {
        Ok(()) => HttpResponse::Ok().json(PongView { message: "pong" }),
        Err(reason) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(ProbeView {
                status: "unavailable",
                detail: Some(reason),
            }),
    }
}

/// Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    security(),
    tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)),
)]
pub(crate) async fn metrics(state: web::Data<ApiState>) -> HttpResponse {
    if state.metrics.queue_due() {
        if let Ok(queue) = state.tessera.webhooks.stats().await {
            state.metrics.set_queue(queue);
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
