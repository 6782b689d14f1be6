use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tessera_domain::model::{AuditAction, AuditEvent, AuditQuery, FieldChange};
use tessera_domain::ports::{AuditRepository, RepoError, RepoResult};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::map;
use crate::precision::{ceil_micros, floor_micros};
use crate::schema::audit_events;
use crate::PgStore;

/// Writes an audit event on `conn` — inside the caller's transaction — with the domain event
/// it produces, if any.
pub(crate) async fn record(
    conn: &mut AsyncPgConnection,
    event: Option<&AuditEvent>,
) -> Result<(), RepoError> {
    let Some(e) = event else {
        return Ok(());
    };
    let changes = changes_json(e)?;
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::id.eq(e.id),
            audit_events::at.eq(e.at),
            audit_events::actor_id.eq(e.actor_id),
            audit_events::target_id.eq(e.target_id),
            audit_events::action.eq(e.action.as_str()),
            audit_events::changes.eq(changes),
        ))
        .execute(conn)
        .await
        .map_err(map)?;
    if let Some(event) = tessera_domain::model::Event::from_audit(e) {
        crate::events::insert_event(conn, &event).await?;
    }
    Ok(())
}

/// An event's changes as stored in `audit_events.changes`.
pub(crate) fn changes_json(e: &AuditEvent) -> Result<serde_json::Value, RepoError> {
    serde_json::to_value(&e.changes)
        .map_err(|err| RepoError::internal(format!("cannot encode audit changes: {err}")))
}

type Row = (
    Uuid,
    OffsetDateTime,
    Option<Uuid>,
    Option<Uuid>,
    String,
    serde_json::Value,
);

fn event_from(row: Row) -> RepoResult<AuditEvent> {
    let (id, at, actor_id, target_id, action, changes) = row;
    let action = AuditAction::parse(&action)
        .ok_or_else(|| RepoError::internal(format!("unknown audit action {action:?}")))?;
    let changes = match changes {
        serde_json::Value::Object(fields) => fields
            .into_iter()
            .map(|(field, value)| {
                let side = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                (
                    field,
                    FieldChange {
                        before: side("before"),
                        after: side("after"),
                    },
                )
            })
            .collect(),
        _ => Default::default(),
    };
    Ok(AuditEvent {
        id,
        at,
        actor_id,
        target_id,
        action,
        changes,
    })
}

#[async_trait]
impl AuditRepository for PgStore {
    async fn list(&self, q: AuditQuery) -> RepoResult<Vec<AuditEvent>> {
        let mut conn = self.conn().await?;
        let mut query = audit_events::table.into_boxed();
        if let Some(actor) = q.actor_id {
            query = query.filter(audit_events::actor_id.eq(actor));
        }
        if let Some(target) = q.target_id {
            query = query.filter(audit_events::target_id.eq(target));
        }
        if let Some(action) = q.action {
            query = query.filter(audit_events::action.eq(action.as_str()));
        }
        // Bounds finer than the stored microseconds stay exact.
        if let Some(from) = q.from {
            query = query.filter(audit_events::at.ge(ceil_micros(from)));
        }
        if let Some(to) = q.to {
            query = query.filter(audit_events::at.le(floor_micros(to)));
        }
        if let Some((at, id)) = q.after {
            // Row comparison: strictly older than the cursor, ties by id.
            query = query.filter(
                audit_events::at
                    .lt(at)
                    .or(audit_events::at.eq(at).and(audit_events::id.lt(id))),
            );
        }
        let rows: Vec<Row> = query
            .order((audit_events::at.desc(), audit_events::id.desc()))
            .limit(i64::try_from(q.limit).unwrap_or(i64::MAX))
            .select((
                audit_events::id,
                audit_events::at,
                audit_events::actor_id,
                audit_events::target_id,
                audit_events::action,
                audit_events::changes,
            ))
            .load(&mut conn)
            .await
            .map_err(map)?;
        rows.into_iter().map(event_from).collect()
    }
}
