//! Tiers (FastAPI-boilerplate): named bundles of default quotas and rate limits, and which
//! tier a user has.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::actor::{Access, Actor};
use crate::app::{Ports, TesseraConfig};
use crate::error::{Failure, TierError, ValidationError};
use crate::model::{
    AuditAction, Currencies, FieldChange, RateLimit, ResourceId, ThresholdOwner, Tier, TierSpec,
    UserChanges,
};
use crate::policy;
use crate::ports::{
    Clock, IdGenerator, MeteringRepository, RepoError, TierRepository, UserRepository,
};
use crate::services::audit;
use crate::values::UserRef;

pub const MAX_TIER_NAME: usize = 64;
pub const MAX_QUOTAS: usize = 1000;
pub const MAX_RATE_LIMITS: usize = 100;
pub const MAX_PATH_LEN: usize = 200;
pub const MAX_PERIOD_SECS: u32 = 31 * 24 * 3600;

/// A rate limit as submitted.
#[derive(Debug, Clone)]
pub struct RateLimitInput {
    pub path: String,
    pub limit: u32,
    pub period_secs: u32,
}

/// A tier as submitted; on update, absent parts are left alone and present ones replace.
#[derive(Debug, Clone, Default)]
pub struct TierInput {
    pub name: Option<String>,
    pub quotas: Option<BTreeMap<String, u64>>,
    pub rate_limits: Option<Vec<RateLimitInput>>,
}

/// How a path names a tier: by id or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TierRef {
    Id(Uuid),
    Name(String),
}

impl TierRef {
    pub fn parse(raw: &str) -> Self {
        match Uuid::parse_str(raw) {
            Ok(id) => Self::Id(id),
            Err(_) => Self::Name(raw.to_owned()),
        }
    }
}

fn tier_name(raw: &str) -> Result<String, ValidationError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_TIER_NAME {
        return Err(ValidationError::new("name", "must be 1 to 64 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

fn quotas(raw: BTreeMap<String, u64>) -> Result<BTreeMap<ResourceId, u64>, ValidationError> {
    if raw.len() > MAX_QUOTAS {
        return Err(ValidationError::new("quotas", "at most 1000 resources"));
    }
    raw.into_iter()
        .map(|(key, limit)| {
            let field = format!("quotas.{key}");
            let id = ResourceId::parse(field.clone(), &key)?;
            if limit > i64::MAX as u64 {
                return Err(ValidationError::new(field, "is too large"));
            }
            Ok((id, limit))
        })
        .collect()
}

fn rate_limits(raw: Vec<RateLimitInput>) -> Result<Vec<RateLimit>, ValidationError> {
    if raw.len() > MAX_RATE_LIMITS {
        return Err(ValidationError::new(
            "rate_limits",
            "at most 100 rate limits",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| {
            let at = |f: &str| format!("rate_limits.{i}.{f}");
            if !r.path.starts_with('/')
                || r.path.len() > MAX_PATH_LEN
                || r.path.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(ValidationError::new(
                    at("path"),
                    "must start with '/', be at most 200 characters and have no whitespace",
                ));
            }
            if r.limit == 0 || r.limit > 1_000_000 {
                return Err(ValidationError::new(
                    at("limit"),
                    "must be between 1 and 1000000",
                ));
            }
            if r.period_secs == 0 || r.period_secs > MAX_PERIOD_SECS {
                return Err(ValidationError::new(
                    at("period_secs"),
                    "must be between 1 and 2678400 (31 days)",
                ));
            }
            if !seen.insert(r.path.clone()) {
                return Err(ValidationError::new(at("path"), "duplicate path"));
            }
            Ok(RateLimit {
                path: r.path,
                limit: r.limit,
                period_secs: r.period_secs,
            })
        })
        .collect()
}

fn spec(input: TierInput) -> Result<TierSpec, ValidationError> {
    Ok(TierSpec {
        name: input.name.as_deref().map(tier_name).transpose()?,
        quotas: input.quotas.map(quotas).transpose()?,
        rate_limits: input.rate_limits.map(rate_limits).transpose()?,
    })
}

/// The audit details of a tier change: name, quota and rate-limit counts.
fn tier_changes(before: Option<&Tier>, spec: &TierSpec, id: Uuid) -> BTreeMap<String, FieldChange> {
    let mut out = BTreeMap::new();
    out.insert(
        "id".to_owned(),
        FieldChange {
            before: before.map(|t| t.id.to_string()),
            after: Some(id.to_string()),
        },
    );
    if let Some(name) = &spec.name {
        out.insert(
            "name".to_owned(),
            FieldChange {
                before: before.map(|t| t.name.clone()),
                after: Some(name.clone()),
            },
        );
    }
    if let Some(q) = &spec.quotas {
        let show = |m: &BTreeMap<ResourceId, u64>| {
            m.iter()
                .map(|(r, l)| format!("{r}={l}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        out.insert(
            "quotas".to_owned(),
            FieldChange {
                before: before.map(|t| show(&t.quotas)),
                after: Some(show(q)),
            },
        );
    }
    if let Some(r) = &spec.rate_limits {
        let show = |v: &[RateLimit]| {
            v.iter()
                .map(|r| format!("{}:{}/{}s", r.path, r.limit, r.period_secs))
                .collect::<Vec<_>>()
                .join(",")
        };
        out.insert(
            "rate_limits".to_owned(),
            FieldChange {
                before: before.map(|t| show(&t.rate_limits)),
                after: Some(show(r)),
            },
        );
    }
    out
}

#[derive(Clone)]
pub struct TierService {
    users: Arc<dyn UserRepository>,
    tiers: Arc<dyn TierRepository>,
    metering: Arc<dyn MeteringRepository>,
    currencies: Currencies,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl TierService {
    pub(crate) fn new(ports: &Ports, config: &TesseraConfig) -> Self {
        Self {
            users: ports.users.clone(),
            tiers: ports.tiers.clone(),
            metering: ports.metering.clone(),
            currencies: config.currencies.clone(),
            clock: ports.clock.clone(),
            ids: ports.ids.clone(),
        }
    }

    fn ensure_superuser(actor: &Actor) -> Result<(), TierError> {
        if actor.is_superuser() {
            Ok(())
        } else {
            Err(TierError::Failure(Failure::Forbidden {
                code: "forbidden",
                message: "superuser permission required",
            }))
        }
    }

    async fn resolve(&self, tier: &TierRef) -> Result<Tier, TierError> {
        let found = match tier {
            TierRef::Id(id) => self.tiers.get(*id).await,
            // No tier can be named so (names are validated on write): never ask the database,
            // which refuses a NUL byte in text.
            TierRef::Name(name)
                if name.chars().count() > MAX_TIER_NAME || name.chars().any(char::is_control) =>
            {
                return Err(TierError::NotFound)
            }
            TierRef::Name(name) => self.tiers.find_by_name(name).await,
        };
        Ok(found?)
    }

    /// A tier's balance thresholds, by currency: they apply to its users who have none of
    /// their own for the currency.
    pub async fn balance_thresholds(
        &self,
        actor: &Actor,
        tier: &TierRef,
    ) -> Result<BTreeMap<String, i64>, TierError> {
        policy::authorize(actor, Access::Read)?;
        let tier = self.resolve(tier).await?;
        Ok(self
            .metering
            .balance_thresholds(ThresholdOwner::Tier(tier.id))
            .await?)
    }

    /// Replaces a tier's balance thresholds. Superusers, as every tier change.
    pub async fn set_balance_thresholds(
        &self,
        actor: &Actor,
        tier: &TierRef,
        thresholds: BTreeMap<String, i64>,
    ) -> Result<BTreeMap<String, i64>, TierError> {
        policy::authorize(actor, Access::Write)?;
        Self::ensure_superuser(actor)?;
        let thresholds = crate::services::metering::parse_thresholds(&self.currencies, thresholds)?;
        let tier = self.resolve(tier).await?;
        let owner = ThresholdOwner::Tier(tier.id);
        let before = self.metering.balance_thresholds(owner).await?;
        let event = audit::event(
            self.ids.new_id(),
            self.clock.now(),
            Some(actor),
            Some(tier.id),
            AuditAction::BalanceThresholdsChanged,
            audit::changes([(
                "balance_thresholds",
                Some(crate::services::metering::show_thresholds(&before)),
                Some(crate::services::metering::show_thresholds(&thresholds)),
            )]),
        );
        self.metering
            .replace_balance_thresholds(owner, thresholds.clone(), Some(event))
            .await?;
        Ok(thresholds)
    }

    /// Any authenticated user may read tiers.
    pub async fn list(&self, actor: &Actor) -> Result<Vec<Tier>, TierError> {
        policy::authorize(actor, Access::Read)?;
        Ok(self.tiers.list().await?)
    }

    pub async fn get(&self, actor: &Actor, tier: &TierRef) -> Result<Tier, TierError> {
        policy::authorize(actor, Access::Read)?;
        self.resolve(tier).await
    }

    pub async fn create(&self, actor: &Actor, input: TierInput) -> Result<Tier, TierError> {
        policy::authorize(actor, Access::Write)?;
        Self::ensure_superuser(actor)?;
        if input.name.is_none() {
            return Err(ValidationError::new("name", "Field required").into());
        }
        let spec = spec(input)?;
        let now = self.clock.now();
        let id = self.ids.new_id();
        // Tier events name the tier as their target, so its history can be filtered.
        let event = audit::event(
            self.ids.new_id(),
            self.clock.now(),
            Some(actor),
            Some(id),
            AuditAction::TierCreated,
            tier_changes(None, &spec, id),
        );
        Ok(self.tiers.create(id, spec, now, Some(event)).await?)
    }

    pub async fn update(
        &self,
        actor: &Actor,
        tier: &TierRef,
        input: TierInput,
    ) -> Result<Tier, TierError> {
        policy::authorize(actor, Access::Write)?;
        Self::ensure_superuser(actor)?;
        let spec = spec(input)?;
        let current = self.resolve(tier).await?;
        let now = self.clock.now();
        let event = audit::event(
            self.ids.new_id(),
            self.clock.now(),
            Some(actor),
            Some(current.id),
            AuditAction::TierUpdated,
            tier_changes(Some(&current), &spec, current.id),
        );
        Ok(self
            .tiers
            .update(current.id, spec, now, Some(event))
            .await?)
    }

    /// A tier still assigned to users cannot be deleted (409 `tier_in_use`).
    pub async fn delete(&self, actor: &Actor, tier: &TierRef) -> Result<(), TierError> {
        policy::authorize(actor, Access::Write)?;
        Self::ensure_superuser(actor)?;
        let current = self.resolve(tier).await?;
        let mut details = BTreeMap::new();
        details.insert(
            "tier".to_owned(),
            FieldChange {
                before: Some(format!("{} ({})", current.name, current.id)),
                after: None,
            },
        );
        let event = audit::event(
            self.ids.new_id(),
            self.clock.now(),
            Some(actor),
            Some(current.id),
            AuditAction::TierDeleted,
            details,
        );
        Ok(self.tiers.delete(current.id, Some(event)).await?)
    }

    /// The user's tier, or `None`. Anyone who can see the user may ask.
    pub async fn of_user(&self, actor: &Actor, user: &UserRef) -> Result<Option<Tier>, TierError> {
        policy::authorize(actor, Access::Read)?;
        let target = crate::services::users::resolve_user(&*self.users, user).await?;
        policy::ensure_visible(actor, &target)?;
        match target.tier_id {
            None => Ok(None),
            Some(id) => match self.tiers.get(id).await {
                Ok(tier) => Ok(Some(tier)),
                Err(RepoError::NotFound) => Ok(None),
                Err(other) => Err(other.into()),
            },
        }
    }

    /// Assigns (or with `None` clears) a user's tier. Superusers only; an unknown tier is 404.
    pub async fn assign(
        &self,
        actor: &Actor,
        user: &UserRef,
        tier_id: Option<Uuid>,
    ) -> Result<Option<Tier>, TierError> {
        policy::authorize(actor, Access::Write)?;
        let target = crate::services::users::resolve_user(&*self.users, user).await?;
        policy::ensure_visible(actor, &target)?;
        Self::ensure_superuser(actor)?;
        let tier = match tier_id {
            Some(id) => Some(self.tiers.get(id).await?),
            None => None,
        };
        let now = self.clock.now();
        let mut changes = UserChanges {
            tier_id: Some(tier_id),
            ..UserChanges::default()
        };
        let details = audit::user_changes(&target, &changes);
        changes.audit = Some(audit::event(
            self.ids.new_id(),
            self.clock.now(),
            Some(actor),
            Some(target.id),
            AuditAction::TierAssigned,
            details,
        ));
        match self.users.update(target.id, changes, now).await {
            Ok(_) => Ok(tier),
            // The tier vanished between the check and the update (its foreign key failed).
            Err(RepoError::NotFound) => Err(TierError::NotFound),
            Err(other) => Err(other.into()),
        }
    }
}
