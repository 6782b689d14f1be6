use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::RepoResult;
use crate::model::{AuditEvent, Tier, TierSpec};

/// Storage of tiers. Names are unique case-insensitively.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait TierRepository: Send + Sync {
    /// All tiers, by name. Errors: `Unavailable`.
    async fn list(&self) -> RepoResult<Vec<Tier>>;

    /// Errors: `NotFound`, `Unavailable`.
    async fn get(&self, id: Uuid) -> RepoResult<Tier>;

    /// By name, case-insensitively. Errors: `NotFound`, `Unavailable`.
    async fn find_by_name(&self, name: &str) -> RepoResult<Tier>;

    /// Inserts a tier with its quotas and rate limits in one transaction (`spec.name` is
    /// required), with its audit event. Errors: `Conflict(DuplicateTierName)`, `Unavailable`.
    async fn create(
        &self,
        id: Uuid,
        spec: TierSpec,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<Tier>;

    /// Renames and/or replaces quotas and rate limits, in one transaction.
    /// Errors: `NotFound`, `Conflict(DuplicateTierName)`, `Unavailable`.
    async fn update(
        &self,
        id: Uuid,
        spec: TierSpec,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<Tier>;

    /// Deletes a tier no user is assigned to — checked atomically by the store.
    /// Errors: `NotFound`, `Conflict(TierInUse)`, `Unavailable`.
    async fn delete(&self, id: Uuid, audit: Option<AuditEvent>) -> RepoResult<()>;
}
