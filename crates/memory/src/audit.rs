//! [`AuditRepository`] over the in-memory log.

use async_trait::async_trait;
use tessera_domain::model::{AuditEvent, AuditQuery};
use tessera_domain::ports::{AuditRepository, RepoResult};

use crate::state::stored;
use crate::MemoryStore;

#[async_trait]
impl AuditRepository for MemoryStore {
    async fn list(&self, q: AuditQuery) -> RepoResult<Vec<AuditEvent>> {
        let state = self.lock();
        // Bounds are compared exactly, even when finer than the stored microseconds.
        let (from, to) = (q.from, q.to);
        let mut events: Vec<&AuditEvent> = state
            .audit
            .iter()
            .filter(|e| q.actor_id.is_none_or(|a| e.actor_id == Some(a)))
            .filter(|e| q.target_id.is_none_or(|t| e.target_id == Some(t)))
            .filter(|e| q.action.is_none_or(|a| e.action == a))
            .filter(|e| from.is_none_or(|f| e.at >= f))
            .filter(|e| to.is_none_or(|t| e.at <= t))
            .filter(|e| {
                q.after
                    .is_none_or(|(at, id)| (e.at, e.id) < (stored(at), id))
            })
            .collect();
        events.sort_by_key(|e| std::cmp::Reverse((e.at, e.id)));
        Ok(events
            .into_iter()
            .take(usize::try_from(q.limit).unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }
}
