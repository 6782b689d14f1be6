//! [`TierRepository`] over the in-memory tables.

use async_trait::async_trait;
use tessera_domain::model::{AuditEvent, Tier, TierSpec};
use tessera_domain::ports::{RepoError, RepoResult, TierRepository};
use tessera_domain::Conflict;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::{same_name, stored, State};
use crate::MemoryStore;

impl State {
    fn tier_name_taken(&self, name: &str, except: Option<Uuid>) -> bool {
        self.tiers
            .values()
            .any(|t| Some(t.id) != except && same_name(&t.name, name))
    }
}

fn sorted(mut tier: Tier) -> Tier {
    // The database returns rate limits ordered by path.
    tier.rate_limits.sort_by(|a, b| a.path.cmp(&b.path));
    tier
}

#[async_trait]
impl TierRepository for MemoryStore {
    async fn list(&self) -> RepoResult<Vec<Tier>> {
        let state = self.lock();
        let mut tiers: Vec<Tier> = state.tiers.values().cloned().collect();
        tiers.sort_by(|a, b| {
            a.name
                .to_lowercase()
                .as_bytes()
                .cmp(b.name.to_lowercase().as_bytes())
                .then(a.id.cmp(&b.id))
        });
        Ok(tiers)
    }

    async fn get(&self, id: Uuid) -> RepoResult<Tier> {
        self.lock()
            .tiers
            .get(&id)
            .cloned()
            .ok_or(RepoError::NotFound)
    }

    async fn find_by_name(&self, name: &str) -> RepoResult<Tier> {
        self.lock()
            .tiers
            .values()
            .find(|t| same_name(&t.name, name))
            .cloned()
            .ok_or(RepoError::NotFound)
    }

    async fn create(
        &self,
        id: Uuid,
        spec: TierSpec,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<Tier> {
        let mut state = self.lock();
        let name = spec
            .name
            .ok_or_else(|| RepoError::internal("null value in column \"name\""))?;
        if state.tier_name_taken(&name, None) {
            return Err(RepoError::Conflict(Conflict::DuplicateTierName));
        }
        let now = stored(now);
        let tier = sorted(Tier {
            id,
            name,
            quotas: spec.quotas.unwrap_or_default(),
            rate_limits: spec.rate_limits.unwrap_or_default(),
            created_at: now,
            updated_at: now,
        });
        state.tiers.insert(id, tier.clone());
        state.record(audit);
        Ok(tier)
    }

    async fn update(
        &self,
        id: Uuid,
        spec: TierSpec,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<Tier> {
        let mut state = self.lock();
        let mut tier = state.tiers.get(&id).cloned().ok_or(RepoError::NotFound)?;
        if let Some(name) = spec.name {
            if state.tier_name_taken(&name, Some(id)) {
                return Err(RepoError::Conflict(Conflict::DuplicateTierName));
            }
            tier.name = name;
        }
        if let Some(quotas) = spec.quotas {
            tier.quotas = quotas;
        }
        if let Some(limits) = spec.rate_limits {
            tier.rate_limits = limits;
        }
        tier.updated_at = stored(now);
        let tier = sorted(tier);
        state.tiers.insert(id, tier.clone());
        state.record(audit);
        Ok(tier)
    }

    async fn delete(&self, id: Uuid, audit: Option<AuditEvent>) -> RepoResult<()> {
        let mut state = self.lock();
        if !state.tiers.contains_key(&id) {
            return Err(RepoError::NotFound);
        }
        if state.users.values().any(|row| row.user.tier_id == Some(id)) {
            return Err(RepoError::Conflict(Conflict::TierInUse));
        }
        state.tiers.remove(&id);
        state
            .balance_thresholds
            .remove(&tessera_domain::model::ThresholdOwner::Tier(id));
        state.record(audit);
        Ok(())
    }
}
