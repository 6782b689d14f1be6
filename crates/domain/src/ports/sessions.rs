use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::RepoResult;
use crate::model::{DelegatedCheck, NewSession, RefreshOutcome, SessionCheck, WalletSummary};

/// Storage of login sessions and their refresh tokens. Sessions live in the store, so every
/// server process agrees on them.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait SessionRepository: Send + Sync {
    /// Stores a new session with its first refresh token and records the login time on the
    /// user, in one transaction. Errors: `NotFound` (no such user), `Unavailable`.
    async fn start(&self, session: NewSession) -> RepoResult<()>;

    /// The session and its user, in one look-up, for checking an access token.
    /// Errors: `NotFound` (no such session for that user), `Unavailable`.
    async fn check(&self, session_id: Uuid, user_id: Uuid) -> RepoResult<SessionCheck>;

    /// [`check`](Self::check) plus the user's wallet summary, in the same single look-up: views
    /// of the caller (`GET /users/me`) show both, and a second round trip would double their
    /// cost. Errors: as `check`.
    async fn check_with_wallets(
        &self,
        session_id: Uuid,
        user_id: Uuid,
    ) -> RepoResult<(SessionCheck, WalletSummary)>;

    /// For a delegated token, in one call: the principal's session and user, the subject, and
    /// the scopes of the subject's share with the principal (if any).
    /// Errors: `NotFound` (no such session for the principal, or no such subject), `Unavailable`.
    async fn check_delegated(
        &self,
        session_id: Uuid,
        principal_id: Uuid,
        subject_id: Uuid,
    ) -> RepoResult<DelegatedCheck>;

    /// Spends the refresh token whose digest is `presented` and makes `next` the session's
    /// current one, atomically. A token that was already spent revokes its whole session.
    /// Sessions that are revoked or expired at `now` give `Invalid`. Errors: `Unavailable`.
    async fn rotate_refresh(
        &self,
        presented: &str,
        next: &str,
        now: OffsetDateTime,
    ) -> RepoResult<RefreshOutcome>;

    /// Revokes one session. Idempotent. Errors: `Unavailable`.
    async fn revoke(&self, session_id: Uuid, now: OffsetDateTime) -> RepoResult<()>;

    /// Revokes every session of a user except `keep`. Errors: `Unavailable`.
    async fn revoke_all(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: OffsetDateTime,
    ) -> RepoResult<()>;

    /// Removes up to `limit` sessions that ended (expired or were revoked) before `cutoff`, with
    /// their refresh tokens, and says how many went. A live session is never touched.
    /// Errors: `Unavailable`.
    async fn prune_ended(&self, cutoff: OffsetDateTime, limit: u32) -> RepoResult<u64>;
}
