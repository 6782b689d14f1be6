//! The calling principal every use case receives first.

use uuid::Uuid;

use crate::model::{ApiKeyScope, ApiKeyScopes, Permission, ScopeSet, User};

/// How the caller proved who they are, where that limits what the request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A password or fingerprint session, a hotkey signature, or an admin API key: everything
    /// the user may do.
    Full,
    /// An API key without the admin flag: only what its scopes name, never the user's
    /// permissions.
    ScopedKey { key_id: Uuid, scopes: ApiKeyScopes },
    /// A token from the trusted external issuer (Chutes "squad"): read-only, no permissions.
    ExternalIssuer,
}

/// Who is making a request, as established by authentication.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The user the request acts as: the caller, or, with a delegated token, its subject.
    pub user: User,
    /// The session the credential belongs to, when it has one (password sessions). `None` for
    /// delegated tokens: their session is the principal's, in [`Delegation`], and logging out
    /// or changing a password through one never touches it.
    pub session_id: Option<Uuid>,
    /// Set when the request carries a delegated token.
    pub delegation: Option<Delegation>,
    pub credential: Credential,
}

/// A delegated token's principal: the user acting on the subject's behalf, and within what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delegation {
    /// The user who obtained the token (the manager, or the grantee of a share).
    pub principal_id: Uuid,
    /// The principal's session: ending it ends the token.
    pub session_id: Uuid,
    pub scopes: ScopeSet,
}

impl Actor {
    /// A caller acting as themselves.
    pub fn direct(user: User, session_id: Option<Uuid>) -> Self {
        Self {
            user,
            session_id,
            delegation: None,
            credential: Credential::Full,
        }
    }

    /// A caller whose credential limits the request (a scoped API key, an external token).
    pub fn limited(user: User, credential: Credential) -> Self {
        Self {
            user,
            session_id: None,
            delegation: None,
            credential,
        }
    }

    fn full_rights(&self) -> bool {
        self.delegation.is_none() && self.credential == Credential::Full
    }

    /// The user the request acts as (the subject of a delegated token).
    pub fn id(&self) -> Uuid {
        self.user.id
    }

    /// The user actually making the request (recorded in the audit trail).
    pub fn principal_id(&self) -> Uuid {
        self.delegation.map_or(self.user.id, |d| d.principal_id)
    }

    pub fn is_delegated(&self) -> bool {
        self.delegation.is_some()
    }

    /// Whether the credential may read the subject's data (always, without delegation).
    pub fn may_read(&self) -> bool {
        let credential_reads = match self.credential {
            Credential::Full | Credential::ExternalIssuer => true,
            Credential::ScopedKey { scopes, .. } => scopes.may_read(),
        };
        credential_reads && self.delegation.is_none_or(|d| d.scopes.may_read())
    }

    /// Whether the credential may change the subject's data (always, without delegation).
    pub fn may_write(&self) -> bool {
        self.credential == Credential::Full && self.delegation.is_none_or(|d| d.scopes.may_write())
    }

    /// Permissions are never delegated: a delegated token holds none of its subject's, nor do
    /// scoped API keys and external tokens.
    pub fn has(&self, p: Permission) -> bool {
        self.full_rights() && self.user.permissions.has(p)
    }

    pub fn is_admin(&self) -> bool {
        self.full_rights() && self.user.permissions.is_admin()
    }

    pub fn is_superuser(&self) -> bool {
        self.full_rights() && self.user.permissions.is_superuser()
    }

    /// Whether the credential is a scoped API key carrying `scope`.
    pub fn key_has_scope(&self, scope: ApiKeyScope) -> bool {
        matches!(self.credential, Credential::ScopedKey { scopes, .. } if scopes.contains(scope))
    }
}
