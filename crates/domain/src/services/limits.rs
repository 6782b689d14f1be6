//! Rate limits: each tier's `(path, limit, period)` rules per user (per client IP for anonymous
//! calls), and the login throttles. Every check is one atomic counter upsert in the store
//! (`GuardRepository::hit`), so the limits hold across server processes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::actor::Actor;
use crate::app::Deps;
use crate::error::LimitError;
use crate::model::{Permission, RateLimit};
use crate::ports::RepoError;

/// How long a tier's rules are reused before they are read again; also the longest a refusal is
/// remembered (see [`RateLimitService::count`]).
const RULES_TTL: Duration = Duration::seconds(10);

/// At most this many refused keys are remembered per service instance; past it, refusals are
/// counted in the store as usual.
const MAX_REMEMBERED_REFUSALS: usize = 10_000;

/// Login throttles: attempts per client IP and per account name, each per fixed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    pub per_ip: u32,
    pub per_account: u32,
    pub window_secs: u32,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_ip: 60,
            per_account: 10,
            window_secs: 300,
        }
    }
}

/// Rate-limit settings.
#[derive(Debug, Clone, Default)]
pub struct LimitsConfig {
    /// The tier whose rules apply to users without a tier and, per client IP, to anonymous
    /// calls. `None`: those calls are not limited.
    pub default_tier: Option<String>,
    pub login: LoginLimits,
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
    deps: Arc<Deps>,
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
    pub(crate) fn new(deps: Arc<Deps>) -> Self {
        Self {
            deps,
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
    async fn rules_of(&self, tier_id: Option<Uuid>) -> Result<Arc<Vec<RateLimit>>, LimitError> {
        let now = self.deps.ports.clock.now();
        let cached = self
            .rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&tier_id)
            .cloned();
        if let Some(hit) = cached.filter(|c| now - c.read_at < RULES_TTL) {
            return Ok(hit.rules);
        }
        let tiers = &self.deps.ports.tiers;
        let found = match tier_id {
            Some(id) => tiers.get(id).await.map(Some),
            None => match &self.deps.config.limits.default_tier {
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
            Err(RepoError::Unavailable) => return Err(LimitError::Unavailable),
            Err(other) => return Err(LimitError::Internal(other.to_string())),
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
    async fn count(&self, key: &str, limit: u32, period_secs: u32) -> Result<(), LimitError> {
        let now = self.deps.ports.clock.now();
        if let Some(retry_after_secs) = self.remembered_refusal(key, now) {
            return Err(LimitError::Limited { retry_after_secs });
        }
        let period = i64::from(period_secs.max(1));
        let start = now.unix_timestamp() - now.unix_timestamp().rem_euclid(period);
        let window_start = OffsetDateTime::from_unix_timestamp(start)
            .map_err(|e| LimitError::Internal(e.to_string()))?;
        let hits = self
            .deps
            .ports
            .guards
            .hit(key, window_start, period, now)
            .await
            .map_err(|e| match e {
                RepoError::Unavailable => LimitError::Unavailable,
                other => LimitError::Internal(other.to_string()),
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
            return Err(LimitError::Limited { retry_after_secs });
        }
        Ok(())
    }

    /// Applies the tier rules whose path prefixes `path`: per user for `Some(actor)` (its tier,
    /// else the default tier), per client IP for anonymous calls (the default tier). Users with
    /// `unlimited` are exempt.
    pub async fn check_request(
        &self,
        actor: Option<&Actor>,
        client_ip: &str,
        path: &str,
    ) -> Result<(), LimitError> {
        if actor.is_some_and(|a| a.user.permissions.has(Permission::Unlimited)) {
            return Ok(());
        }
        let tier = actor.and_then(|a| a.user.tier_id);
        let rules = self.rules_of(tier).await?;
        for rule in rules.iter().filter(|r| path.starts_with(r.path.as_str())) {
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

    /// Before a password login: at most `per_ip` attempts per client IP and `per_account`
    /// attempts per account name in each window, so guessing passwords is slow from one address
    /// and against one account from many.
    pub async fn check_login(&self, login: &str, client_ip: &str) -> Result<(), LimitError> {
        let limits = self.deps.config.limits.login;
        self.check_login_ip(client_ip).await?;
        let account = bounded(&login.trim().to_lowercase());
        self.count(
            &format!("login:account:{account}"),
            limits.per_account,
            limits.window_secs,
        )
        .await
    }
}

impl RateLimitService {
    /// Before a login by a secret that names no account (a Chutes fingerprint): the per-IP
    /// attempt limit alone, shared with password logins.
    pub async fn check_login_ip(&self, client_ip: &str) -> Result<(), LimitError> {
        let limits = self.deps.config.limits.login;
        self.count(
            &format!("login:ip:{}", bounded(client_ip)),
            limits.per_ip,
            limits.window_secs,
        )
        .await
    }
}

/// Keys stay short and storable whatever the client sends (PostgreSQL text refuses NUL).
fn bounded(raw: &str) -> String {
    raw.chars()
        .take(128)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}
