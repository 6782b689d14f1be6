//! [`ShareRepository`] over the in-memory tables.

use async_trait::async_trait;
use tessera_domain::model::{AuditEvent, NewShare, Share};
use tessera_domain::ports::{RepoError, RepoResult, ShareRepository};
use uuid::Uuid;

use crate::state::{stored, State};
use crate::MemoryStore;

impl State {
    /// The foreign keys and CHECK of a `shares` row.
    fn check_share(&self, share: &NewShare) -> RepoResult<()> {
        if share.owner_id == share.grantee_id {
            return Err(RepoError::internal(
                "new row for relation \"shares\" violates check constraint \"shares_not_self\"",
            ));
        }
        if !self.users.contains_key(&share.owner_id) || !self.users.contains_key(&share.grantee_id)
        {
            return Err(RepoError::NotFound);
        }
        Ok(())
    }
}

fn ordered(mut shares: Vec<Share>, other: impl Fn(&Share) -> Uuid) -> Vec<Share> {
    shares.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then(other(a).cmp(&other(b)))
    });
    shares
}

#[async_trait]
impl ShareRepository for MemoryStore {
    async fn put(&self, share: NewShare) -> RepoResult<(Share, bool)> {
        let mut state = self.lock();
        state.check_share(&share)?;
        let now = stored(share.now);
        let key = (share.owner_id, share.grantee_id);
        let (stored_share, created) = match state.shares.get(&key) {
            Some(existing) => (
                Share {
                    scopes: share.scopes,
                    updated_at: now,
                    ..existing.clone()
                },
                false,
            ),
            None => (
                Share {
                    owner_id: share.owner_id,
                    grantee_id: share.grantee_id,
                    scopes: share.scopes,
                    created_at: now,
                    updated_at: now,
                },
                true,
            ),
        };
        state.shares.insert(key, stored_share.clone());
        state.record(share.audit);
        Ok((stored_share, created))
    }

    async fn get(&self, owner_id: Uuid, grantee_id: Uuid) -> RepoResult<Share> {
        self.lock()
            .shares
            .get(&(owner_id, grantee_id))
            .cloned()
            .ok_or(RepoError::NotFound)
    }

    async fn update(&self, share: NewShare) -> RepoResult<Share> {
        let mut state = self.lock();
        let key = (share.owner_id, share.grantee_id);
        let existing = state.shares.get_mut(&key).ok_or(RepoError::NotFound)?;
        existing.scopes = share.scopes;
        existing.updated_at = stored(share.now);
        let updated = existing.clone();
        state.record(share.audit);
        Ok(updated)
    }

    async fn delete(
        &self,
        owner_id: Uuid,
        grantee_id: Uuid,
        audit: Option<AuditEvent>,
    ) -> RepoResult<()> {
        let mut state = self.lock();
        if state.shares.remove(&(owner_id, grantee_id)).is_none() {
            return Err(RepoError::NotFound);
        }
        state.record(audit);
        Ok(())
    }

    async fn granted_by(&self, owner_id: Uuid) -> RepoResult<Vec<Share>> {
        let state = self.lock();
        let shares = state
            .shares
            .values()
            .filter(|s| s.owner_id == owner_id)
            .cloned()
            .collect();
        Ok(ordered(shares, |s| s.grantee_id))
    }

    async fn granted_to(&self, grantee_id: Uuid) -> RepoResult<Vec<Share>> {
        let state = self.lock();
        let shares = state
            .shares
            .values()
            .filter(|s| s.grantee_id == grantee_id)
            .cloned()
            .collect();
        Ok(ordered(shares, |s| s.owner_id))
    }
}
