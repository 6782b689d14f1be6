use async_trait::async_trait;
use uuid::Uuid;

use super::RepoResult;
use crate::model::{AuditEvent, NewShare, Share};

/// Storage of shares: the access one user (the owner) grants another (the grantee). At most one
/// share per ordered pair; shares go with either user when it is purged.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ShareRepository: Send + Sync {
    /// Creates the share, or replaces the scopes of the existing one (keeping its
    /// `created_at`), with its audit event, in one transaction. The boolean says whether it was
    /// created. A user id that names no user gives `NotFound`.
    /// Errors: `NotFound`, `Unavailable`.
    async fn put(&self, share: NewShare) -> RepoResult<(Share, bool)>;

    /// Errors: `NotFound`, `Unavailable`.
    async fn get(&self, owner_id: Uuid, grantee_id: Uuid) -> RepoResult<Share>;

    /// Changes the scopes of an existing share, with its audit event.
    /// Errors: `NotFound` (no such share), `Unavailable`.
    async fn update(&self, share: NewShare) -> RepoResult<Share>;

    /// Removes a share, with its audit event. Errors: `NotFound`, `Unavailable`.
    async fn delete(
        &self,
        owner_id: Uuid,
        grantee_id: Uuid,
        audit: Option<AuditEvent>,
    ) -> RepoResult<()>;

    /// Shares the user granted, oldest first (then by grantee id). Errors: `Unavailable`.
    async fn granted_by(&self, owner_id: Uuid) -> RepoResult<Vec<Share>>;

    /// Shares granted to the user, oldest first (then by owner id). Errors: `Unavailable`.
    async fn granted_to(&self, grantee_id: Uuid) -> RepoResult<Vec<Share>>;
}
