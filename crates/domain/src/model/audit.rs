use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// What an administrative change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum AuditAction {
    UserCreated,
    UserUpdated,
    PermissionsChanged,
    PasswordChanged,
    PasswordReset,
    UserDeleted,
    UserRestored,
    UserPurged,
    UserDeactivated,
    UserReactivated,
    ForcedLogout,
    TierAssigned,
    TierCreated,
    TierUpdated,
    TierDeleted,
    ShareGranted,
    ShareChanged,
    ShareRevoked,
}

impl AuditAction {
    pub const ALL: [AuditAction; 18] = [
        Self::UserCreated,
        Self::UserUpdated,
        Self::PermissionsChanged,
        Self::PasswordChanged,
        Self::PasswordReset,
        Self::UserDeleted,
        Self::UserRestored,
        Self::UserPurged,
        Self::UserDeactivated,
        Self::UserReactivated,
        Self::ForcedLogout,
        Self::TierAssigned,
        Self::TierCreated,
        Self::TierUpdated,
        Self::TierDeleted,
        Self::ShareGranted,
        Self::ShareChanged,
        Self::ShareRevoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserCreated => "user.created",
            Self::UserUpdated => "user.updated",
            Self::PermissionsChanged => "user.permissions_changed",
            Self::PasswordChanged => "user.password_changed",
            Self::PasswordReset => "user.password_reset",
            Self::UserDeleted => "user.deleted",
            Self::UserRestored => "user.restored",
            Self::UserPurged => "user.purged",
            Self::UserDeactivated => "user.deactivated",
            Self::UserReactivated => "user.reactivated",
            Self::ForcedLogout => "user.logged_out",
            Self::TierAssigned => "user.tier_assigned",
            Self::TierCreated => "tier.created",
            Self::TierUpdated => "tier.updated",
            Self::TierDeleted => "tier.deleted",
            Self::ShareGranted => "share.granted",
            Self::ShareChanged => "share.changed",
            Self::ShareRevoked => "share.revoked",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == raw)
    }
}

/// One field's before and after, as display strings. Secrets are recorded as `"(changed)"`,
/// never by value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub before: Option<String>,
    pub after: Option<String>,
}

/// An audit event, written by the store in the same transaction as the change it records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: Uuid,
    pub at: OffsetDateTime,
    /// `None` for changes made by the system (bootstrap, `tessera create-admin`).
    pub actor_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub action: AuditAction,
    pub changes: BTreeMap<String, FieldChange>,
}

/// Which events a listing covers; newest first, after `cursor` when given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub actor_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub action: Option<AuditAction>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    /// The `(at, id)` of the last event of the previous page.
    pub after: Option<(OffsetDateTime, Uuid)>,
    pub limit: u64,
}
