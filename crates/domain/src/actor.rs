//! The calling principal every use case receives first.

use uuid::Uuid;

use crate::model::{ApiKeyScope, ApiKeyScopes, Permission, ScopeSet, User};

/// How the caller proved who they are, where that limits what the request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A password or fingerprint session, a hotkey signature bound to its request (its body
    /// digest, or its method, path and query), or an admin API key: everything the user may do.
    Full,
    /// A hotkey signature over a route's purpose (`{hotkey}:{nonce}:me`, Chutes' `GET /users/me`):
    /// the same message signs every read of that purpose and is never claimed, so it reads only.
    PurposeSignature,
    /// An API key without the admin flag: only what its scopes name, never the user's
    /// permissions.
    ScopedKey { key_id: Uuid, scopes: ApiKeyScopes },
    /// A token from the trusted external issuer (Chutes "squad"): read-only, no permissions.
    ExternalIssuer,
}

/// What an operation asks of the caller's credential, whoever the caller is. Policy checks this
/// first, on every operation, reads included; then the caller's roles decide whom it may act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Reading data the caller may see.
    Read,
    /// Changing data: the caller's own, or others' as the caller's permissions allow.
    Write,
    /// Changing how the account itself is reached or who else may act for it: passwords,
    /// fingerprints, Bittensor keys, API keys, shares, delegated tokens, managed users, deleting
    /// the account. Only a credential that is the user in full (never a scoped key, a purpose
    /// signature, an external token or a delegated token).
    Account,
    /// Recording metered consumption (`POST /api/v1/usage`).
    Meter,
    /// Reporting confirmed TAO deposits (`POST /api/v1/deposits`).
    Deposit,
}

impl Access {
    /// The least an HTTP method needs: reads for safe methods, writes for everything else.
    /// Routes that need something else say so (recording usage is `Meter`).
    pub fn for_method(safe: bool) -> Self {
        if safe {
            Self::Read
        } else {
            Self::Write
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Account => "account",
            Self::Meter => "meter",
            Self::Deposit => "deposit",
        }
    }
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
    /// The address the request came from, as the HTTP surface established it (the peer, or the
    /// rightmost untrusted proxy hop). Throttles of secrets presented inside a request (a
    /// current password) count per address; `None` outside HTTP.
    pub client_ip: Option<String>,
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
            client_ip: None,
        }
    }

    /// A caller whose credential limits the request (a scoped API key, an external token).
    pub fn limited(user: User, credential: Credential) -> Self {
        Self {
            user,
            session_id: None,
            delegation: None,
            credential,
            client_ip: None,
        }
    }

    /// The same actor, seen coming from `client_ip`.
    pub fn from_address(mut self, client_ip: impl Into<String>) -> Self {
        self.client_ip = Some(client_ip.into());
        self
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

    /// Whether the credential may read the subject's data: full credentials, purpose
    /// signatures and external tokens read; a scoped key needs `read`; a delegated token needs a
    /// reading scope of its share.
    pub fn may_read(&self) -> bool {
        let credential_reads = match self.credential {
            Credential::Full | Credential::PurposeSignature | Credential::ExternalIssuer => true,
            Credential::ScopedKey { scopes, .. } => scopes.may_read(),
        };
        credential_reads && self.delegation.is_none_or(|d| d.scopes.may_read())
    }

    /// Whether this credential allows `access` at all, before anyone asks whom it is for.
    pub fn allows(&self, access: Access) -> bool {
        match access {
            Access::Read => self.may_read(),
            Access::Write => self.may_write(),
            Access::Account => self.full_rights(),
            Access::Meter => {
                self.full_rights()
                    || (self.delegation.is_none() && self.key_has_scope(ApiKeyScope::Metering))
            }
            Access::Deposit => {
                self.full_rights()
                    || (self.delegation.is_none() && self.key_has_scope(ApiKeyScope::Deposits))
            }
        }
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
