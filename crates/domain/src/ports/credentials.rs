use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::RepoResult;
use crate::model::{ApiKey, AuditEvent, NewApiKey, User};

/// API keys. Secrets are never stored: keys are found by the digest of the presented secret.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ApiKeyRepository: Send + Sync {
    /// Stores a key with its audit event, in one transaction. `NotFound` when the owner does not
    /// exist.
    async fn create(&self, key: NewApiKey) -> RepoResult<ApiKey>;

    /// The owner's keys, oldest first.
    async fn list(&self, user_id: Uuid) -> RepoResult<Vec<ApiKey>>;

    /// Deletes one of the owner's keys, with its audit event, in one transaction; it stops
    /// working at once. `NotFound` (and no event) when the owner has no such key.
    async fn revoke(
        &self,
        user_id: Uuid,
        key_id: Uuid,
        audit: Option<AuditEvent>,
    ) -> RepoResult<()>;

    /// The key with this digest and its owner, in one read. `NotFound` for unknown digests.
    async fn find(&self, digest: &str) -> RepoResult<(ApiKey, User)>;

    /// Records a use at `now` unless the recorded one is younger than
    /// [`crate::model::API_KEY_TOUCH_INTERVAL`].
    async fn touch(&self, key_id: Uuid, now: OffsetDateTime) -> RepoResult<()>;
}

/// Shared abuse guards: single-use signatures and fixed-window counters, held in the store so
/// every server process sees the same state.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait GuardRepository: Send + Sync {
    /// Records a signature as used until `expires_at`. `false` when it was already recorded
    /// (a replay). Expired records may be pruned by the same call.
    async fn claim_signature(
        &self,
        signature: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> RepoResult<bool>;

    /// Counts one hit against `key` in the window starting at `window_start` and lasting
    /// `window_secs`, atomically, and returns the count including this hit.
    async fn hit(
        &self,
        key: &str,
        window_start: OffsetDateTime,
        window_secs: i64,
        now: OffsetDateTime,
    ) -> RepoResult<u64>;

    /// The hits counted so far against `key` in the window starting at `window_start` (0 when
    /// none), without counting one.
    async fn count(&self, key: &str, window_start: OffsetDateTime) -> RepoResult<u64>;
}
