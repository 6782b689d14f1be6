use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{AuditEvent, DefaultWallet, Permissions};
use crate::directory::{SearchTerm, Sort, UserFilter};

/// Where a user is in its lifecycle. Purged users do not exist at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserState {
    /// May authenticate and act.
    Active,
    /// Locked out by an administrator; data kept; reversible.
    Deactivated,
    /// Soft-deleted: hidden, cannot authenticate, restorable; names stay reserved until purge.
    Deleted,
}

impl UserState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deactivated => "deactivated",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(Self::Active),
            "deactivated" => Some(Self::Deactivated),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// A user as stored. Credentials' secrets (password hash, fingerprint hash, API-key hashes) are
/// deliberately not part of this value, so it can be shown, logged and serialised freely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    /// Absent for managed users, who have no login identity.
    pub username: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub logo_id: Option<Uuid>,
    /// Bittensor hotkey (SS58), unique.
    pub hotkey: Option<String>,
    /// Bittensor coldkey (SS58).
    pub coldkey: Option<String>,
    pub payment_address: Option<String>,
    pub permissions: Permissions,
    pub tier_id: Option<Uuid>,
    /// Chutes invoice billing: never refused for balance, may go negative.
    pub invoicing: bool,
    /// Invoice billing without a spending cap.
    pub unlimited: bool,
    pub squad_enabled: bool,
    /// Set for managed users: the user who created and controls this one.
    pub manager_id: Option<Uuid>,
    pub state: UserState,
    /// Whether a password credential is set (local login possible).
    pub has_password: bool,
    pub must_change_password: bool,
    /// Tokens issued before this instant are refused.
    pub tokens_valid_after: OffsetDateTime,
    pub created_by: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub last_login_at: Option<OffsetDateTime>,
    pub deleted_at: Option<OffsetDateTime>,
}

impl User {
    pub fn display_name(&self) -> String {
        display_name(
            self.first_name.as_deref(),
            self.last_name.as_deref(),
            self.username.as_deref(),
            self.email.as_deref(),
            self.id,
        )
    }

    pub fn is_managed(&self) -> bool {
        self.manager_id.is_some()
    }

    pub fn is_active(&self) -> bool {
        self.state == UserState::Active
    }
}

/// "first last" trimmed, else username, else email, else the id.
pub fn display_name(
    first: Option<&str>,
    last: Option<&str>,
    username: Option<&str>,
    email: Option<&str>,
    id: Uuid,
) -> String {
    let joined = format!("{} {}", first.unwrap_or(""), last.unwrap_or(""));
    let joined = joined.trim();
    if !joined.is_empty() {
        return joined.to_owned();
    }
    username
        .or(email)
        .map(str::to_owned)
        .unwrap_or_else(|| id.to_string())
}

/// Everything needed to insert a user; produced by the users service after validation.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: Uuid,
    pub username: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// An argon2id PHC string, never a plaintext.
    pub password_hash: Option<String>,
    /// Bittensor keys (SS58) and the fingerprint digest of Chutes-style accounts.
    pub hotkey: Option<String>,
    pub coldkey: Option<String>,
    pub fingerprint_digest: Option<String>,
    pub permissions: Permissions,
    pub tier_id: Option<Uuid>,
    pub manager_id: Option<Uuid>,
    pub must_change_password: bool,
    pub created_by: Option<Uuid>,
    pub now: OffsetDateTime,
    /// Every user gets a default wallet, inserted in the same transaction as the user.
    pub default_wallet: DefaultWallet,
    /// Recorded in the same transaction as the insert.
    pub audit: Option<AuditEvent>,
}

/// A partial update. `None` leaves a field alone; `Some(None)` clears a nullable field.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub username: Option<String>,
    pub email: Option<Option<String>>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub password_hash: Option<String>,
    pub must_change_password: Option<bool>,
    pub permissions: Option<Permissions>,
    pub tier_id: Option<Option<Uuid>>,
    pub state: Option<UserState>,
    pub deleted_at: Option<Option<OffsetDateTime>>,
    pub hotkey: Option<Option<String>>,
    pub coldkey: Option<Option<String>>,
    pub logo_id: Option<Option<Uuid>>,
    pub squad_enabled: Option<bool>,
    /// A new fingerprint, as its digest.
    pub fingerprint_digest: Option<String>,
    /// Moves `tokens_valid_after` forward: every token issued before is refused.
    pub tokens_valid_after: Option<OffsetDateTime>,
    /// Which stored sessions of the user to revoke in the same transaction.
    pub revoke_sessions: RevokeSessions,
    /// Recorded in the same transaction as the change.
    pub audit: Option<AuditEvent>,
}

/// Session revocation that accompanies a user change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RevokeSessions {
    #[default]
    None,
    All,
    /// Every session but the one the caller is using.
    AllExcept(Uuid),
}

impl UserChanges {
    pub fn is_empty(&self) -> bool {
        self.username.is_none()
            && self.email.is_none()
            && self.first_name.is_none()
            && self.last_name.is_none()
            && self.password_hash.is_none()
            && self.must_change_password.is_none()
            && self.permissions.is_none()
            && self.tier_id.is_none()
            && self.state.is_none()
            && self.deleted_at.is_none()
            && self.hotkey.is_none()
            && self.coldkey.is_none()
            && self.logo_id.is_none()
            && self.squad_enabled.is_none()
            && self.fingerprint_digest.is_none()
            && self.tokens_valid_after.is_none()
            && self.revoke_sessions == RevokeSessions::None
    }

    /// Whether applying this change could remove an active superuser.
    pub fn may_reduce_superusers(&self) -> bool {
        self.state.is_some_and(|s| s != UserState::Active)
            || self.permissions.is_some_and(|p| !p.is_superuser())
    }
}

/// Which users a listing covers, as decided by policy, plus filters, sort and paging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserListQuery {
    /// `None`: the whole directory (admins). `Some(id)`: that user, the users it manages
    /// (`include_managed`) and the users who shared with it (`include_shared`).
    pub visible_to: Option<Uuid>,
    pub include_managed: bool,
    pub include_shared: bool,
    pub include_deleted: bool,
    /// Every condition must hold.
    pub filter: UserFilter,
    /// Case-insensitive literal substring of username, email, first or last name.
    pub search: Option<SearchTerm>,
    /// Case-insensitive literal substring of the display name.
    pub name: Option<SearchTerm>,
    /// `None`: by creation time, then id.
    pub sort: Option<Sort>,
    pub offset: u64,
    pub limit: u64,
    /// Keyset paging: only the users that sort after this position (then `offset` is 0).
    pub after: Option<crate::directory::UserCursor>,
}

impl UserListQuery {
    /// Everything visible to `visible_to`, unfiltered, first page of `limit`.
    pub fn all(visible_to: Option<Uuid>, limit: u64) -> Self {
        Self {
            visible_to,
            include_managed: true,
            include_shared: true,
            include_deleted: false,
            filter: UserFilter::default(),
            search: None,
            name: None,
            sort: None,
            offset: 0,
            limit,
            after: None,
        }
    }
}

impl UserListQuery {
    /// The states a listing covers when nothing but states restricts it (the whole directory,
    /// no search, no name, every condition a `state==…`): its total is then a sum of the
    /// per-state counts ([`StateCounts`]), exact and independent of the directory's size.
    /// `None` when anything else narrows the listing.
    pub fn counted_states(&self) -> Option<Vec<UserState>> {
        if self.visible_to.is_some() || self.search.is_some() || self.name.is_some() {
            return None;
        }
        let mut states = vec![UserState::Active, UserState::Deactivated];
        if self.include_deleted {
            states.push(UserState::Deleted);
        }
        for condition in &self.filter.conditions {
            match (&condition.field, &condition.op, &condition.value) {
                (
                    crate::directory::FilterField::State,
                    crate::directory::FilterOp::Eq,
                    crate::directory::FilterValue::State(state),
                ) => states.retain(|s| s == state),
                _ => return None,
            }
        }
        Some(states)
    }
}

/// How many users are in each state, kept exact by the store as users change (not counted on
/// demand).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub active: u64,
    pub deactivated: u64,
    pub deleted: u64,
}

impl StateCounts {
    pub fn of(&self, state: UserState) -> u64 {
        match state {
            UserState::Active => self.active,
            UserState::Deactivated => self.deactivated,
            UserState::Deleted => self.deleted,
        }
    }

    /// Every user, in any state.
    pub fn total(&self) -> u64 {
        self.active + self.deactivated + self.deleted
    }

    /// The users in any of `states` (each state counted once).
    pub fn covering(&self, states: &[UserState]) -> u64 {
        [
            UserState::Active,
            UserState::Deactivated,
            UserState::Deleted,
        ]
        .into_iter()
        .filter(|s| states.contains(s))
        .map(|s| self.of(s))
        .sum()
    }
}

/// Users created on one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyCount {
    pub day: time::Date,
    pub count: u64,
}

/// One page of users, in the listing's order, with the total matching count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPage {
    pub users: Vec<User>,
    /// Exact when `total_exact`; otherwise an estimate (never below the matches the store
    /// knows of), given for a filter matching too many users to count cheaply.
    pub total: u64,
    pub total_exact: bool,
    /// Whether more users follow this page.
    pub more: bool,
}
