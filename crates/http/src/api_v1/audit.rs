use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use tessera_domain::error::UserError;
use tessera_domain::model::{AuditAction, AuditQuery};
use tessera_domain::services::audit::decode_cursor;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{ApiQuery, Authenticated};
use crate::state::ApiState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit", web::get().to(list));
}

#[derive(Debug, Deserialize)]
struct AuditParams {
    actor: Option<Uuid>,
    target: Option<Uuid>,
    action: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
    limit: Option<u64>,
}

fn time_param(field: &str, raw: Option<&str>) -> Result<Option<OffsetDateTime>, ApiError> {
    raw.map(|r| {
        OffsetDateTime::parse(r, &Rfc3339).map_err(|_| {
            ApiError::validation("query", field, "not an RFC 3339 date-time", "value_error")
        })
    })
    .transpose()
}

/// `GET /audit` (admins): newest first; `next_cursor` continues the listing.
async fn list(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<HttpResponse, ApiError> {
    let action = p
        .action
        .as_deref()
        .map(|a| {
            AuditAction::parse(a).ok_or_else(|| {
                ApiError::validation("query", "action", "unknown audit action", "value_error")
            })
        })
        .transpose()?;
    let after = p
        .cursor
        .as_deref()
        .map(decode_cursor)
        .transpose()
        .map_err(|e| {
            ApiError::validation("query", &e.field, e.reason.into_owned(), "value_error")
        })?;
    let query = AuditQuery {
        actor_id: p.actor,
        target_id: p.target,
        action,
        from: time_param("from", p.from.as_deref())?,
        to: time_param("to", p.to.as_deref())?,
        after,
        limit: p.limit.unwrap_or(50),
    };
    // The service checks `limit`, which came in the query string.
    let page = state
        .tessera
        .audit
        .list(&actor, query)
        .await
        .map_err(|e| match e {
            UserError::Validation(v) => {
                ApiError::validation("query", &v.field, v.reason.into_owned(), "value_error")
            }
            other => other.into(),
        })?;
    let data: Vec<_> = page
        .events
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id,
                "at": e.at.format(&Rfc3339).unwrap_or_default(),
                "actor_id": e.actor_id,
                "target_id": e.target_id,
                "action": e.action.as_str(),
                "changes": e.changes,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"data": data, "next_cursor": page.next_cursor})))
}
