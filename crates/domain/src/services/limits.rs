//! Rate limits: each tier's `(path, limit, period)` rules per user (per client IP for anonymous
//! calls), and the login throttles. Every check is one atomic counter upsert in the store
//! (`GuardRepository::hit`), so the limits hold across server processes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::actor::Actor;
use crate::app::{Ports, TesseraConfig};
use crate::error::Failure;
use crate::model::{Permission, RateLimit};
use crate::ports::{Clock, GuardRepository, RepoError, TierRepository};
use crate::services::throttle::{bounded, LoginLimits};

/// How long a tier's rules are reused before they are read again; also the longest a refusal is
/// remembered (see [`RateLimitService::count`]).
const RULES_TTL: Duration = Duration::seconds(10);

/// At most this many refused keys are remembered per service instance; past it, refusals are
/// counted in the store as usual.
const MAX_REMEMBERED_REFUSALS: usize = 10_000;

/// Rate-limit settings, and how much of each kind of object one user may hold.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// The tier whose rules apply to users without a tier and, per client IP, to anonymous
    /// calls. `None`: those calls are not limited.
    pub default_tier: Option<String>,
    /// Calls without credentials per client address, on every route, besides the default
    /// tier's rules. `None`: only the default tier limits them.
    pub anonymous: Option<AnonymousLimit>,
    /// Throttles of presented secrets (logins, current passwords, fingerprints).
    pub login: LoginLimits,
    /// Wallets a user may hold, soft-deleted ones included.
    pub max_wallets_per_user: usize,
    /// Managed users one manager may have.
    pub max_managed_users_per_user: u64,
}

/// At most `limit` calls without credentials per client address per fixed window of
/// `period_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnonymousLimit {
    pub limit: u32,
    pub period_secs: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            default_tier: None,
            anonymous: None,
            login: LoginLimits::default(),
            max_wallets_per_user: 100,
            max_managed_users_per_user: 1_000,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counter_keys_are_bounded_and_free_of_control_characters() {
        let key = super::bounded(&format!("a\0b\n{}", "x".repeat(500)));
        assert_eq!(key.chars().count(), 128);
        assert!(!key.chars().any(char::is_control));
    }
}

#[derive(Clone)]
struct CachedRules {
    read_at: OffsetDateTime,
    rules: Arc<Vec<RateLimit>>,
}

#[derive(Clone)]
pub struct RateLimitService {
    tiers: Arc<dyn TierRepository>,
    guards: Arc<dyn GuardRepository>,
    clock: Arc<dyn Clock>,
    config: Arc<TesseraConfig>,
    rules: Arc<Mutex<HashMap<Option<Uuid>, CachedRules>>>,
    /// Keys found over their limit, with when that answer stops being certain.
    refused: Arc<Mutex<HashMap<String, Refusal>>>,
}

#[derive(Clone, Copy)]
struct Refusal {
    /// Until when the refusal is repeated without asking the store.
    until: OffsetDateTime,
    window_end: OffsetDateTime,
}

impl RateLimitService {
    pub(crate) fn new(ports: &Ports, config: &Arc<TesseraConfig>) -> Self {
        Self {
            tiers: ports.tiers.clone(),
            guards: ports.guards.clone(),
            clock: ports.clock.clone(),
            config: config.clone(),
            rules: Arc::new(Mutex::new(HashMap::new())),
            refused: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn remembered_refusal(&self, key: &str, now: OffsetDateTime) -> Option<u64> {
        let refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        let hit = refused.get(key).filter(|r| r.until > now)?;
        let left = (hit.window_end - now).whole_seconds().max(1);
        Some(u64::try_from(left).unwrap_or(1))
    }

    fn remember_refusal(&self, key: &str, refusal: Refusal, now: OffsetDateTime) {
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        if refused.len() >= MAX_REMEMBERED_REFUSALS {
            refused.retain(|_, r| r.until > now);
            if refused.len() >= MAX_REMEMBERED_REFUSALS {
                return;
            }
        }
        refused.insert(key.to_owned(), refusal);
    }

    /// The rules of a tier (`None`: the configured default tier), from a short-lived cache.
    async fn rules_of(&self, tier_id: Option<Uuid>) -> Result<Arc<Vec<RateLimit>>, Failure> {
        let now = self.clock.now();
        let cached = self
            .rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&tier_id)
            .cloned();
        if let Some(hit) = cached.filter(|c| now - c.read_at < RULES_TTL) {
            return Ok(hit.rules);
        }
        let tiers = &self.tiers;
        let found = match tier_id {
            Some(id) => tiers.get(id).await.map(Some),
            None => match &self.config.limits.default_tier {
                Some(name) => tiers.find_by_name(name).await.map(Some),
                None => Ok(None),
            },
        };
        let rules = match found {
            Ok(Some(tier)) => tier.rate_limits,
            Ok(None) => return Ok(Arc::new(Vec::new())),
            // A tier deleted meanwhile, or a default tier not created yet, limits nothing; it is
            // looked up again next time rather than remembered as empty.
            Err(RepoError::NotFound) => return Ok(Arc::new(Vec::new())),
            Err(RepoError::Unavailable) => return Err(Failure::Unavailable),
            Err(other) => return Err(Failure::internal(format!("tier rules: {other}"))),
        };
        let rules = Arc::new(rules);
        self.rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                tier_id,
                CachedRules {
                    read_at: now,
                    rules: rules.clone(),
                },
            );
        Ok(rules)
    }

    /// Counts one hit against `key` in the current fixed window of `period_secs`; refuses past
    /// `limit` with the seconds until the window ends.
    ///
    /// A window's count only grows, so once the store has said "over the limit" the answer holds
    /// until the window ends: it is remembered (for at most [`RULES_TTL`], in case the rules
    /// change) and repeated without writing to the store. A flood of refused calls — a login
    /// storm against one account — then costs the database nothing. Other processes still ask
    /// the store, which stays the one authority.
    async fn count(&self, key: &str, limit: u32, period_secs: u32) -> Result<(), Failure> {
        let now = self.clock.now();
        if let Some(retry_after_secs) = self.remembered_refusal(key, now) {
            return Err(Failure::Throttled { retry_after_secs });
        }
        let period = i64::from(period_secs.max(1));
        let start = now.unix_timestamp() - now.unix_timestamp().rem_euclid(period);
        let window_start = OffsetDateTime::from_unix_timestamp(start)
            .map_err(|e| Failure::internal(e.to_string()))?;
        let hits = self
            .guards
            .hit(key, window_start, period, now)
            .await
            .map_err(|e| match e {
                RepoError::Unavailable => Failure::Unavailable,
                other => Failure::internal(format!("rate counter: {other}")),
            })?;
        if hits > u64::from(limit) {
            let retry = (start + period - now.unix_timestamp()).max(1);
            let retry_after_secs = u64::try_from(retry).unwrap_or(1);
            let window_end = window_start + Duration::seconds(period);
            let refusal = Refusal {
                until: window_end.min(now + RULES_TTL),
                window_end,
            };
            self.remember_refusal(key, refusal, now);
            return Err(Failure::Throttled { retry_after_secs });
        }
        Ok(())
    }

    /// Applies the tier rules whose path prefixes `route`: per user for `Some(actor)` (its tier,
    /// else the default tier), per client IP for anonymous calls (the default tier, and before
    /// it the configured anonymous limit on every route). Users with `unlimited` are exempt.
    ///
    /// `route` is the template of the operation the request was routed to
    /// (`/api/v1/users/{user}`), never its raw path: a percent-encoded or otherwise disguised
    /// path reaches the same operation, so it must meet the same rule.
    pub async fn check_request(
        &self,
        actor: Option<&Actor>,
        client_ip: &str,
        route: &str,
    ) -> Result<(), Failure> {
        if actor.is_some_and(|a| a.user.permissions.has(Permission::Unlimited)) {
            return Ok(());
        }
        if let (None, Some(anonymous)) = (actor, self.config.limits.anonymous) {
            self.count(
                &format!("rl:anon:{}", bounded(client_ip)),
                anonymous.limit,
                anonymous.period_secs,
            )
            .await?;
        }
        let tier = actor.and_then(|a| a.user.tier_id);
        let rules = self.rules_of(tier).await?;
        for rule in rules.iter().filter(|r| route.starts_with(r.path.as_str())) {
            let who = match actor {
                Some(a) => format!("u:{}", a.user.id),
                None => format!("ip:{}", bounded(client_ip)),
            };
            self.count(
                &format!("rl:{who}:{}", rule.path),
                rule.limit,
                rule.period_secs,
            )
            .await?;
        }
        Ok(())
    }
}
