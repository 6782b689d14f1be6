//! The audit trail: building events for the stores to write with each change, and reading them
//! back for administrators.

use std::collections::BTreeMap;
use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::actor::Actor;
use crate::app::Ports;
use crate::error::{Failure, UserError, ValidationError};
use crate::model::{
    AuditAction, AuditEvent, AuditQuery, FieldChange, RevokeSessions, User, UserChanges,
};
use crate::ports::AuditRepository;

/// Largest page of audit events.
pub const MAX_AUDIT_PAGE: u64 = 500;

/// An event with its id and time (from the `IdGenerator` and `Clock` ports of the service that
/// makes it), recording `actor`'s principal.
pub(crate) fn event(
    id: Uuid,
    at: OffsetDateTime,
    actor: Option<&Actor>,
    target: Option<Uuid>,
    action: AuditAction,
    changes: BTreeMap<String, FieldChange>,
) -> AuditEvent {
    AuditEvent {
        id,
        at,
        actor_id: actor.map(Actor::principal_id),
        target_id: target,
        action,
        changes,
    }
}

fn change(before: Option<String>, after: Option<String>) -> FieldChange {
    FieldChange { before, after }
}

/// Builds the `changes` of an event from `(field, before, after)` triples.
pub(crate) fn changes<const N: usize>(
    fields: [(&str, Option<String>, Option<String>); N],
) -> BTreeMap<String, FieldChange> {
    fields
        .into_iter()
        .map(|(field, before, after)| (field.to_owned(), change(before, after)))
        .collect()
}

/// What a user change does, field by field, for the audit trail. Secrets appear only as
/// "(changed)".
pub(crate) fn user_changes(before: &User, c: &UserChanges) -> BTreeMap<String, FieldChange> {
    let mut out = BTreeMap::new();
    if let Some(v) = &c.username {
        out.insert(
            "username".into(),
            change(before.username.clone(), Some(v.clone())),
        );
    }
    if let Some(v) = &c.email {
        out.insert("email".into(), change(before.email.clone(), v.clone()));
    }
    if let Some(v) = &c.first_name {
        out.insert(
            "first_name".into(),
            change(before.first_name.clone(), v.clone()),
        );
    }
    if let Some(v) = &c.last_name {
        out.insert(
            "last_name".into(),
            change(before.last_name.clone(), v.clone()),
        );
    }
    if c.password_hash.is_some() {
        out.insert("password".into(), change(None, Some("(changed)".into())));
    }
    if c.fingerprint_digest.is_some() {
        out.insert("fingerprint".into(), change(None, Some("(changed)".into())));
    }
    if let Some(v) = &c.hotkey {
        out.insert("hotkey".into(), change(before.hotkey.clone(), v.clone()));
    }
    if let Some(v) = &c.coldkey {
        out.insert("coldkey".into(), change(before.coldkey.clone(), v.clone()));
    }
    if let Some(v) = c.logo_id {
        out.insert(
            "logo_id".into(),
            change(
                before.logo_id.map(|l| l.to_string()),
                v.map(|l| l.to_string()),
            ),
        );
    }
    if let Some(v) = c.squad_enabled {
        out.insert(
            "squad_enabled".into(),
            change(Some(before.squad_enabled.to_string()), Some(v.to_string())),
        );
    }
    if let Some(v) = c.must_change_password {
        out.insert(
            "must_change_password".into(),
            change(
                Some(before.must_change_password.to_string()),
                Some(v.to_string()),
            ),
        );
    }
    if let Some(p) = c.permissions {
        out.insert(
            "permissions".into(),
            change(
                Some(before.permissions.names().join(",")),
                Some(p.names().join(",")),
            ),
        );
    }
    if let Some(t) = c.tier_id {
        out.insert(
            "tier_id".into(),
            change(
                before.tier_id.map(|t| t.to_string()),
                t.map(|t| t.to_string()),
            ),
        );
    }
    if let Some(s) = c.state {
        out.insert(
            "state".into(),
            change(Some(before.state.as_str().into()), Some(s.as_str().into())),
        );
    }
    match c.revoke_sessions {
        RevokeSessions::None => {}
        RevokeSessions::All => {
            out.insert("sessions".into(), change(None, Some("all revoked".into())));
        }
        RevokeSessions::AllExcept(_) => {
            out.insert(
                "sessions".into(),
                change(None, Some("other sessions revoked".into())),
            );
        }
    }
    out
}

/// A position in the audit trail: the `(at, id)` of the last event seen, as an opaque string.
pub fn encode_cursor(at: OffsetDateTime, id: Uuid) -> String {
    format!("{}_{}", at.unix_timestamp_nanos(), id.simple())
}

pub fn decode_cursor(raw: &str) -> Result<(OffsetDateTime, Uuid), ValidationError> {
    let bad = || ValidationError::new("cursor", "not a cursor returned by this endpoint");
    let (nanos, id) = raw.split_once('_').ok_or_else(bad)?;
    let nanos: i128 = nanos.parse().map_err(|_| bad())?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| bad())?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok((at, id))
}

/// One page of the audit trail.
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Pass back as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Clone)]
pub struct AuditService {
    audit: Arc<dyn AuditRepository>,
}

impl AuditService {
    pub(crate) fn new(ports: &Ports) -> Self {
        Self {
            audit: ports.audit.clone(),
        }
    }

    /// Administrators read the trail, newest first.
    pub async fn list(&self, actor: &Actor, mut query: AuditQuery) -> Result<AuditPage, UserError> {
        crate::policy::authorize(actor, crate::actor::Access::Read)?;
        if !actor.is_admin() {
            return Err(UserError::Failure(Failure::Forbidden {
                code: "forbidden",
                message: "administrator permission required",
            }));
        }
        if !(1..=MAX_AUDIT_PAGE).contains(&query.limit) {
            return Err(ValidationError::new("limit", "must be between 1 and 500").into());
        }
        let limit = query.limit;
        // One extra row tells whether another page exists.
        query.limit += 1;
        let mut events = self.audit.list(query).await?;
        let more = events.len() as u64 > limit;
        events.truncate(limit as usize);
        let next_cursor = match (more, events.last()) {
            (true, Some(last)) => Some(encode_cursor(last.at, last.id)),
            _ => None,
        };
        Ok(AuditPage {
            events,
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(at, id)), Ok((at, id)));
        for bad in [
            "",
            "x",
            "1_",
            "_abc",
            "12_notauuid",
            "999999999999999999999999999_x",
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
