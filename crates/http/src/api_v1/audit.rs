use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use tessera_domain::error::UserError;
use tessera_domain::model::{AuditAction, AuditQuery};
use tessera_domain::services::audit::decode_cursor;
use tessera_domain::Failure;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::responses::{Forbidden, InvalidInput, ServerErrors, Unauthenticated};
use crate::error::ApiError;
use crate::extract::{date_time_param, DateTimeForm};
use crate::extract::{ApiQuery, Authenticated};
use crate::routes::{op, Routes};
use crate::state::ApiState;

pub fn configure(routes: &mut Routes) {
    routes.op(op!(list));
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// Only events by this actor.
    actor: Option<Uuid>,
    /// Only events about this user.
    target: Option<Uuid>,
    /// Only this action (e.g. `user.update`).
    action: Option<String>,
    /// RFC 3339; events at or after.
    #[param(format = DateTime)]
    from: Option<String>,
    /// RFC 3339; events before.
    #[param(format = DateTime)]
    to: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size (default 50).
    limit: Option<u64>,
}

/// One field's value before and after, as display strings (secrets as `"(changed)"`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FieldChangeView {
    before: Option<String>,
    after: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditEventView {
    id: Uuid,
    /// RFC 3339.
    #[schema(format = DateTime)]
    at: String,
    /// `null` for changes made by the system.
    actor_id: Option<Uuid>,
    target_id: Option<Uuid>,
    action: &'static str,
    changes: BTreeMap<String, FieldChangeView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPageView {
    data: Vec<AuditEventView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    next_cursor: Option<String>,
}

/// The audit trail (admins): newest first; `next_cursor` continues the listing.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    operation_id = "list_audit_events",
    tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "A page of events", body = AuditPageView),
        Unauthenticated, Forbidden, InvalidInput, ServerErrors,
    ),
)]
pub(crate) async fn list(
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
        from: date_time_param("from", DateTimeForm::Rfc3339, p.from.as_deref())?,
        to: date_time_param("to", DateTimeForm::Rfc3339, p.to.as_deref())?,
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
            UserError::Failure(Failure::Validation(v)) => {
                ApiError::validation("query", &v.field, v.reason.into_owned(), "value_error")
            }
            other => other.into(),
        })?;
    let data = page
        .events
        .into_iter()
        .map(|e| AuditEventView {
            id: e.id,
            at: e.at.format(&Rfc3339).unwrap_or_default(),
            actor_id: e.actor_id,
            target_id: e.target_id,
            action: e.action.as_str(),
            changes: e
                .changes
                .into_iter()
                .map(|(field, change)| {
                    let view = FieldChangeView {
                        before: change.before,
                        after: change.after,
                    };
                    (field, view)
                })
                .collect(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(AuditPageView {
        data,
        next_cursor: page.next_cursor,
    }))
}
