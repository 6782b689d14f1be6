//! [`MeteringRepository`] over the in-memory tables. A consumption checks everything under the
//! one lock before it mutates anything, so the counter, the charge with its entry, the bucket
//! and the key land together or not at all, like the PostgreSQL transaction.

use std::collections::BTreeMap;

use async_trait::async_trait;
use tessera_domain::model::{
    AuditEvent, Consumption, ConsumptionMode, ConsumptionOutcome, CounterKey, Discount, EntryKind,
    LedgerEntry, MeteringRates, ResourceId, Source, ThresholdOwner, UsageItem, UsagePage,
    UsageQuery, User,
};
use tessera_domain::ports::{MeteringRepository, RepoError, RepoResult};
use tessera_domain::Conflict;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::state::{check_entry, check_wallet, stored, BucketRow, State, UsageKeyRow};
use crate::wallets::{new_wallet, remove_created_before};
use crate::MemoryStore;

fn overflow() -> RepoError {
    RepoError::Conflict(Conflict::BalanceOverflow)
}

impl State {
    fn tier_quota(&self, user_id: Uuid, resource: &ResourceId) -> Option<u64> {
        let tier_id = self.users.get(&user_id)?.user.tier_id?;
        self.tiers.get(&tier_id)?.quotas.get(resource).copied()
    }

    fn rates(&self, user_id: Uuid, resource: &ResourceId) -> MeteringRates {
        let quotas = self.user_quotas.get(&user_id);
        let discounts = self.user_discounts.get(&user_id);
        MeteringRates {
            user_quota: quotas.and_then(|q| q.get(resource)).copied(),
            user_wildcard_quota: quotas.and_then(|q| q.get(&ResourceId::Any)).copied(),
            tier_quota: self.tier_quota(user_id, resource),
            tier_wildcard_quota: self.tier_quota(user_id, &ResourceId::Any),
            user_discount: discounts.and_then(|d| d.get(resource)).copied(),
            user_wildcard_discount: discounts.and_then(|d| d.get(&ResourceId::Any)).copied(),
        }
    }
}

#[async_trait]
impl MeteringRepository for MemoryStore {
    async fn quotas(&self, user_id: Uuid) -> RepoResult<BTreeMap<ResourceId, u64>> {
        let state = self.lock();
        Ok(state.user_quotas.get(&user_id).cloned().unwrap_or_default())
    }

    async fn replace_quotas(
        &self,
        user_id: Uuid,
        quotas: BTreeMap<ResourceId, u64>,
        _now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<()> {
        let mut state = self.lock();
        if !state.users.contains_key(&user_id) {
            return Err(RepoError::NotFound);
        }
        if quotas.is_empty() {
            state.user_quotas.remove(&user_id);
        } else {
            state.user_quotas.insert(user_id, quotas);
        }
        state.record(audit);
        Ok(())
    }

    async fn balance_thresholds(&self, owner: ThresholdOwner) -> RepoResult<BTreeMap<String, i64>> {
        let state = self.lock();
        Ok(state
            .balance_thresholds
            .get(&owner)
            .cloned()
            .unwrap_or_default())
    }

    async fn replace_balance_thresholds(
        &self,
        owner: ThresholdOwner,
        thresholds: BTreeMap<String, i64>,
        audit: Option<AuditEvent>,
    ) -> RepoResult<()> {
        let mut state = self.lock();
        let exists = match owner {
            ThresholdOwner::User(id) => state.users.contains_key(&id),
            ThresholdOwner::Tier(id) => state.tiers.contains_key(&id),
        };
        if !exists {
            return Err(RepoError::NotFound);
        }
        if thresholds.is_empty() {
            state.balance_thresholds.remove(&owner);
        } else {
            state.balance_thresholds.insert(owner, thresholds);
        }
        state.record(audit);
        Ok(())
    }

    async fn discounts(&self, user_id: Uuid) -> RepoResult<BTreeMap<ResourceId, Discount>> {
        let state = self.lock();
        Ok(state
            .user_discounts
            .get(&user_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn replace_discounts(
        &self,
        user_id: Uuid,
        discounts: BTreeMap<ResourceId, Discount>,
        _now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<()> {
        let mut state = self.lock();
        if !state.users.contains_key(&user_id) {
            return Err(RepoError::NotFound);
        }
        if discounts.is_empty() {
            state.user_discounts.remove(&user_id);
        } else {
            state.user_discounts.insert(user_id, discounts);
        }
        state.record(audit);
        Ok(())
    }

    async fn rates(&self, user_id: Uuid, resource: &ResourceId) -> RepoResult<MeteringRates> {
        Ok(self.lock().rates(user_id, resource))
    }

    async fn consumer(
        &self,
        user_id: Uuid,
        resource: &ResourceId,
    ) -> RepoResult<(User, MeteringRates)> {
        let state = self.lock();
        let user = state
            .users
            .get(&user_id)
            .map(|row| row.user.clone())
            .ok_or(RepoError::NotFound)?;
        Ok((user, state.rates(user_id, resource)))
    }

    async fn counter(&self, user_id: Uuid, counter: CounterKey, day: Date) -> RepoResult<i64> {
        let state = self.lock();
        Ok(state
            .quota_counters
            .get(&(user_id, counter, day))
            .copied()
            .unwrap_or(0))
    }

    async fn consume(&self, c: Consumption) -> RepoResult<ConsumptionOutcome> {
        let mut state = self.lock();
        if let Some(k) = &c.idempotency {
            if let Some(row) = state.usage_keys.get(&(k.scope, k.key.clone())) {
                if row.fingerprint != k.fingerprint {
                    return Err(RepoError::Conflict(Conflict::IdempotencyMismatch));
                }
                return Ok(ConsumptionOutcome {
                    replayed: true,
                    ..row.outcome.clone()
                });
            }
        }
        if !state.users.contains_key(&c.user_id) {
            return Err(RepoError::NotFound);
        }
        if c.idempotency
            .as_ref()
            .is_some_and(|k| !state.users.contains_key(&k.scope))
        {
            return Err(RepoError::NotFound);
        }
        let now = stored(c.now);
        let mut outcome = ConsumptionOutcome {
            source: Source::Free,
            amount_charged: 0,
            entry_id: None,
            balance_after: None,
            quota_used: 0,
            replayed: false,
        };
        let counter_key = match c.mode {
            ConsumptionMode::Metered(q) => Some((c.user_id, q.counter, c.day)),
            _ => None,
        };
        let mut new_counter = None;
        let paid = match c.mode {
            ConsumptionMode::Free => false,
            ConsumptionMode::Invoice => {
                outcome.source = Source::Invoice;
                c.charge > 0
            }
            ConsumptionMode::Metered(q) => {
                let key = (c.user_id, q.counter, c.day);
                let used = state.quota_counters.get(&key).copied();
                let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
                let after = used
                    .unwrap_or(0)
                    .checked_add(c.count)
                    .ok_or_else(overflow)?;
                if after <= limit {
                    outcome.source = Source::Quota;
                    outcome.quota_used = after;
                    new_counter = Some(after);
                    false
                } else {
                    outcome.source = Source::Balance;
                    outcome.quota_used = used.unwrap_or(0);
                    true
                }
            }
        };
        // The first call of the day the quota does not cover reports the quota spent, once —
        // a call the balance then refuses too, since running out is what the event reports.
        let exhausted = match (counter_key, &c.exhaustion) {
            (Some(key), Some(event)) if new_counter.is_none() => {
                (!state.quota_exhausted.contains(&key)).then(|| (key, event.clone()))
            }
            _ => None,
        };
        // The wallet that pays, as it will be stored.
        let mut paying = None;
        let refused = || RepoError::Conflict(Conflict::InsufficientFunds);
        let mut refusal = None;
        if paid {
            let invoice = outcome.source == Source::Invoice;
            let wallet = match state.live_default(c.user_id, &c.currency, None) {
                Some(id) => state.wallets.get(&id).cloned(),
                None if invoice => Some(new_wallet(&state, c.new_default_wallet())?),
                None => None,
            }
            .ok_or_else(refused);
            match wallet {
                Ok(wallet) => {
                    let after = wallet.balance.checked_sub(c.charge).ok_or_else(overflow)?;
                    let covered = after >= 0 && wallet.balance > 0;
                    if !(covered || wallet.allow_negative) {
                        refusal = Some(refused());
                    }
                    paying = Some((wallet, after));
                }
                Err(e) => refusal = Some(e),
            }
        }
        if let Some(refusal) = refusal {
            if let Some((key, event)) = exhausted {
                state.quota_exhausted.insert(key);
                state.emit(event);
            }
            return Err(refusal);
        }
        let paying = match paying {
            None => None,
            Some((mut wallet, after)) => {
                wallet.balance = after;
                wallet.updated_at = now;
                check_wallet(&wallet)?;
                let entry = (c.charge != 0).then(|| LedgerEntry {
                    id: c.entry_id,
                    wallet_id: wallet.id,
                    amount: -c.charge,
                    balance_after: after,
                    kind: EntryKind::Usage,
                    reason: c.reason.clone(),
                    actor_id: c.actor_id,
                    transfer_id: None,
                    idempotency_key: c.idempotency.as_ref().map(|k| k.key.clone()),
                    created_at: now,
                });
                if let Some(entry) = &entry {
                    check_entry(entry)?;
                    if state.ledger.contains_key(&entry.id) {
                        return Err(RepoError::internal("duplicate ledger entry id"));
                    }
                }
                outcome.amount_charged = c.charge;
                outcome.balance_after = Some(after);
                outcome.entry_id = entry.as_ref().map(|e| e.id);
                Some((wallet, entry))
            }
        };
        let bucket_key = (c.user_id, c.resource.clone(), stored(c.bucket));
        let mut bucket = state
            .usage_buckets
            .get(&bucket_key)
            .copied()
            .unwrap_or_default();
        let add = |a: i64, b: i64| a.checked_add(b).ok_or_else(overflow);
        bucket = BucketRow {
            count: add(bucket.count, c.count)?,
            amount: add(bucket.amount, outcome.amount_charged)?,
            input_tokens: add(bucket.input_tokens, c.input_tokens)?,
            output_tokens: add(bucket.output_tokens, c.output_tokens)?,
        };

        // Everything checked: apply.
        if let (Some(key), Some(value)) = (counter_key, new_counter) {
            state.quota_counters.insert(key, value);
        }
        if let Some((wallet, entry)) = paying {
            state.wallets.insert(wallet.id, wallet);
            if let Some(entry) = entry {
                state.post_entry(entry);
            }
        }
        // The first call of the day the quota does not cover reports the quota spent, once.
        if let Some((key, event)) = exhausted {
            state.quota_exhausted.insert(key);
            state.emit(event);
        }
        state.usage_buckets.insert(bucket_key, bucket);
        if let Some(k) = c.idempotency {
            state.usage_keys.insert(
                (k.scope, k.key),
                UsageKeyRow {
                    fingerprint: k.fingerprint,
                    user_id: c.user_id,
                    outcome: outcome.clone(),
                    created_at: stored(c.now),
                },
            );
        }
        Ok(outcome)
    }

    async fn usage(&self, user_id: Uuid, q: UsageQuery) -> RepoResult<UsagePage> {
        let state = self.lock();
        let rows = state
            .usage_buckets
            .iter()
            .filter(|((user, resource, bucket), _)| {
                *user == user_id
                    && q.resource.as_ref().is_none_or(|r| r == resource)
                    && q.start.is_none_or(|s| *bucket >= s)
                    && q.end.is_none_or(|e| *bucket <= e)
            })
            .map(|((_, resource, bucket), row)| (resource.clone(), *bucket, *row));
        let mut items: Vec<UsageItem> = if q.per_resource {
            rows.map(|(resource, bucket, row)| UsageItem {
                bucket,
                resource: Some(resource),
                count: row.count,
                amount: row.amount,
                input_tokens: row.input_tokens,
                output_tokens: row.output_tokens,
            })
            .collect()
        } else {
            let mut grouped: BTreeMap<OffsetDateTime, UsageItem> = BTreeMap::new();
            for (_, bucket, row) in rows {
                let item = grouped.entry(bucket).or_insert(UsageItem {
                    bucket,
                    resource: None,
                    count: 0,
                    amount: 0,
                    input_tokens: 0,
                    output_tokens: 0,
                });
                item.count = item.count.saturating_add(row.count);
                item.amount = item.amount.saturating_add(row.amount);
                item.input_tokens = item.input_tokens.saturating_add(row.input_tokens);
                item.output_tokens = item.output_tokens.saturating_add(row.output_tokens);
            }
            grouped.into_values().collect()
        };
        // Newest bucket first; per resource, larger amounts first, then by resource id text.
        items.sort_by(|a, b| {
            b.bucket
                .cmp(&a.bucket)
                .then(b.amount.cmp(&a.amount))
                .then_with(|| {
                    let text = |r: &Option<ResourceId>| r.as_ref().map(ToString::to_string);
                    text(&a.resource).cmp(&text(&b.resource))
                })
        });
        let total = items.len() as u64;
        let offset = usize::try_from(q.offset).unwrap_or(usize::MAX);
        let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
        Ok(UsagePage {
            total,
            items: items.into_iter().skip(offset).take(limit).collect(),
        })
    }

    async fn prune_usage_keys(&self, cutoff: OffsetDateTime, limit: u32) -> RepoResult<u64> {
        let mut state = self.lock();
        Ok(remove_created_before(
            &mut state.usage_keys,
            |row| row.created_at,
            cutoff,
            limit,
        ))
    }

    async fn prune_quota_counters(&self, day: Date, limit: u32) -> RepoResult<u64> {
        let mut state = self.lock();
        let mut old: Vec<(Date, Uuid, CounterKey)> = state
            .quota_counters
            .keys()
            .filter(|(_, _, d)| *d < day)
            .map(|(user, counter, d)| (*d, *user, *counter))
            .collect();
        old.sort_unstable();
        old.truncate(limit as usize);
        for (d, user, counter) in &old {
            state.quota_counters.remove(&(*user, *counter, *d));
            state.quota_exhausted.remove(&(*user, *counter, *d));
        }
        if (old.len() as u64) < u64::from(limit) {
            // Markers of counters that never held a covered call.
            state.quota_exhausted.retain(|(_, _, d)| *d >= day);
        }
        Ok(old.len() as u64)
    }
}
