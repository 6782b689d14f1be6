use async_trait::async_trait;

use super::RepoResult;
use crate::model::{AuditEvent, AuditQuery};

/// Reading the audit trail. Events are written by the other stores, in the same transaction as
/// the change they record.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AuditRepository: Send + Sync {
    /// Events matching the query, newest first (`at` then `id`, both descending), at most
    /// `query.limit`. Errors: `Unavailable`.
    async fn list(&self, query: AuditQuery) -> RepoResult<Vec<AuditEvent>>;
}
