use time::OffsetDateTime;
use uuid::Uuid;

use super::User;

/// A stored login session. Access tokens name it (`sid`); refresh tokens belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

/// What the auth service stores when a login succeeds.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub user_id: Uuid,
    /// Digest of the first refresh token (never the token itself).
    pub refresh_token_digest: String,
    pub now: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// The result of checking an access token's session and user in one look-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCheck {
    pub user: User,
    pub session: Session,
}

/// What checking a delegated token needs, from one store call: the acting principal's session
/// and user, the subject, and the share the subject granted the principal (if any).
#[derive(Debug, Clone)]
pub struct DelegatedCheck {
    pub session: Session,
    pub principal: User,
    pub subject: User,
    /// The scopes of the subject's share with the principal; `None` when there is no share.
    pub share: Option<super::ScopeSet>,
}

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was current: it is now spent and the new digest is the session's current token.
    Rotated { session: Session, user: Box<User> },
    /// The token had already been spent: the whole session has just been revoked (theft).
    Reused { session_id: Uuid },
    /// No such token, or its session is revoked or expired.
    Invalid,
}

/// The claims of an access token, independent of how it is encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub subject: Uuid,
    pub session_id: Uuid,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub scope: String,
    /// For delegated tokens: the user acting on the subject's behalf (`act` claim). The
    /// session (`sid`) is then the actor's.
    pub actor: Option<Uuid>,
}

/// What a successful login or refresh hands back. The refresh token is shown only here.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
    pub user_id: Uuid,
}
