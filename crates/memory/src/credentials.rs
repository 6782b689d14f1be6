//! [`ApiKeyRepository`] and [`GuardRepository`] over the in-memory tables.

use async_trait::async_trait;
use tessera_domain::model::{ApiKey, AuditEvent, NewApiKey, User, API_KEY_TOUCH_INTERVAL};
use tessera_domain::ports::{ApiKeyRepository, GuardRepository, RepoError, RepoResult};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::{stored, ApiKeyRow};
use crate::MemoryStore;

/// Expired signature records pruned per claim, as the PostgreSQL adapter does.
const PRUNE_BATCH: usize = 16;

#[async_trait]
impl ApiKeyRepository for MemoryStore {
    async fn create(&self, new: NewApiKey) -> RepoResult<ApiKey> {
        let mut state = self.lock();
        if !state.users.contains_key(&new.user_id) {
            return Err(RepoError::NotFound);
        }
        if state.api_keys.contains_key(&new.id)
            || state.api_keys.values().any(|r| r.digest == new.digest)
        {
            return Err(RepoError::internal(
                "duplicate key value violates unique constraint \"api_keys_pkey\"",
            ));
        }
        let key = ApiKey {
            id: new.id,
            user_id: new.user_id,
            name: new.name,
            admin: new.admin,
            scopes: new.scopes,
            created_at: stored(new.now),
            last_used_at: None,
        };
        state.record(new.audit);
        state.api_keys.insert(
            key.id,
            ApiKeyRow {
                key: key.clone(),
                digest: new.digest,
            },
        );
        Ok(key)
    }

    async fn list(&self, user_id: Uuid) -> RepoResult<Vec<ApiKey>> {
        let state = self.lock();
        let mut keys: Vec<ApiKey> = state
            .api_keys
            .values()
            .filter(|r| r.key.user_id == user_id)
            .map(|r| r.key.clone())
            .collect();
        keys.sort_by_key(|k| (k.created_at, k.id));
        Ok(keys)
    }

    async fn revoke(
        &self,
        user_id: Uuid,
        key_id: Uuid,
        audit: Option<AuditEvent>,
    ) -> RepoResult<()> {
        let mut state = self.lock();
        match state.api_keys.get(&key_id) {
            Some(row) if row.key.user_id == user_id => {
                state.api_keys.remove(&key_id);
                state.record(audit);
                Ok(())
            }
            _ => Err(RepoError::NotFound),
        }
    }

    async fn find(&self, digest: &str) -> RepoResult<(ApiKey, User)> {
        let state = self.lock();
        let row = state
            .api_keys
            .values()
            .find(|r| r.digest == digest)
            .ok_or(RepoError::NotFound)?;
        let user = state
            .users
            .get(&row.key.user_id)
            .ok_or(RepoError::NotFound)?;
        Ok((row.key.clone(), user.user.clone()))
    }

    async fn touch(&self, key_id: Uuid, now: OffsetDateTime) -> RepoResult<()> {
        let now = stored(now);
        let mut state = self.lock();
        if let Some(row) = state.api_keys.get_mut(&key_id) {
            if row
                .key
                .last_used_at
                .is_none_or(|at| now - at >= API_KEY_TOUCH_INTERVAL)
            {
                row.key.last_used_at = Some(now);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl GuardRepository for MemoryStore {
    async fn claim_signature(
        &self,
        signature: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> RepoResult<bool> {
        let mut state = self.lock();
        let expired: Vec<String> = state
            .used_signatures
            .iter()
            .filter(|(_, until)| **until < now)
            .take(PRUNE_BATCH)
            .map(|(s, _)| s.clone())
            .collect();
        for s in expired {
            state.used_signatures.remove(&s);
        }
        if state.used_signatures.contains_key(signature) {
            return Ok(false);
        }
        state
            .used_signatures
            .insert(signature.to_owned(), stored(expires_at));
        Ok(true)
    }

    async fn hit(
        &self,
        key: &str,
        window_start: OffsetDateTime,
        window_secs: i64,
        now: OffsetDateTime,
    ) -> RepoResult<u64> {
        let mut state = self.lock();
        state.counters.retain(|_, (_, until)| *until >= now);
        let until = window_start + time::Duration::seconds(window_secs);
        let entry = state
            .counters
            .entry((key.to_owned(), stored(window_start)))
            .or_insert((0, stored(until)));
        entry.0 += 1;
        Ok(entry.0)
    }

    async fn count(&self, key: &str, window_start: OffsetDateTime) -> RepoResult<u64> {
        let state = self.lock();
        Ok(state
            .counters
            .get(&(key.to_owned(), stored(window_start)))
            .map_or(0, |(hits, _)| *hits))
    }
}
