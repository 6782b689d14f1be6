//! Metering: per-user quotas and discounts, the atomic decision of one consumption, the day's
//! quota usage, hourly usage history, and invoicing.
//!
//! The rules live here; the store only executes one decided [`Consumption`] atomically:
//! - quota: the user's row for the resource, the user's `*` row, the tier's defaults, the
//!   server default ([`MeteringRates::quota`]); its counter is the resource's own when the quota
//!   came from a row for that resource, else the user's shared `__default__` counter;
//! - discount: the user's row for the resource, the user's `*` row, the server default; the
//!   charge is `cost × (1 − discount)` rounded up to the minor unit ([`charge`]);
//! - `free_account` users are never charged nor refused (source `free`); invoiced users are
//!   never refused and may go negative (source `invoice`); everyone else uses the day's quota
//!   (source `quota`), then the balance (source `balance`), and is refused with the time the
//!   quota resets when neither can pay;
//! - days are UTC days from the `Clock` port; they roll over at 00:00 UTC.

use std::collections::BTreeMap;
use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::actor::{Access, Actor};
use crate::app::{Ports, TesseraConfig};
use crate::counters::Counters;
use crate::error::{Conflict, MeteringError, ValidationError};
use crate::model::{
    charge, day_of, hour_of, next_reset, AuditAction, Consumption, ConsumptionMode,
    ConsumptionOutcome, CounterKey, Currencies, Discount, Event, EventPayload, EventType,
    IdempotencyClaim, MeteringDefaults, Permission, QuotaPayload, ResourceId, ThresholdOwner,
    UsagePage, UsageQuery, User, MAX_THRESHOLD, MAX_THRESHOLDS,
};
use crate::policy;
use crate::ports::{
    Clock, IdGenerator, MeteringRepository, RepoError, TierRepository, UserRepository,
};
use crate::services::audit;
use crate::values::{IdempotencyKey, Paging, UserRef};

/// Most entries in one quota or discount map.
pub const MAX_METERING_ENTRIES: usize = 1000;
/// Largest daily quota.
pub const MAX_QUOTA: i64 = 1_000_000_000_000;
/// Most calls one consumption may report.
pub const MAX_COUNT: i64 = 1_000_000;
/// Largest undiscounted cost of one consumption, in minor units (10^12: a million dollars in
/// micro-dollars).
pub const MAX_COST: i64 = 1_000_000_000_000;
/// Most input (or output) tokens one consumption may report.
pub const MAX_TOKENS: i64 = 1_000_000_000_000;
/// Usage page size when the caller gives none (Chutes' default: a day of hourly buckets).
pub const DEFAULT_USAGE_LIMIT: u64 = 24;
/// Largest usage page.
pub const MAX_USAGE_LIMIT: u64 = 500;

/// `POST /api/v1/usage`: one metered call (or `count` of them) for a user.
#[derive(Debug, Clone)]
pub struct ConsumeInput {
    pub user_id: Uuid,
    pub resource_id: String,
    pub count: i64,
    /// The undiscounted price, minor units of the user's default wallet currency.
    pub cost: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// The decision of a consumption and the quota state after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub outcome: ConsumptionOutcome,
    /// The currency `amount_charged` is in.
    pub currency: String,
    pub quota: QuotaUsage,
}

/// A user's day on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaUsage {
    /// `None`: unlimited (free or invoiced users).
    pub limit: Option<u64>,
    pub used: i64,
    pub remaining: Option<u64>,
    /// The next 00:00 UTC.
    pub resets_at: OffsetDateTime,
    /// The counter the day is measured on (`None` when unlimited).
    pub counter: Option<CounterKey>,
}

/// What a user's quotas are, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuotas {
    /// The user's own rows.
    pub rows: BTreeMap<ResourceId, u64>,
    /// The defaults the user falls back to without rows: the tier's when it has any, else the
    /// server's.
    pub defaults: BTreeMap<ResourceId, u64>,
    /// Free or invoiced users have no quota at all.
    pub unlimited: bool,
}

/// Which page of usage history to read.
#[derive(Debug, Clone, Default)]
pub struct UsageInput {
    /// 0-based (Chutes' convention).
    pub page: Option<u64>,
    pub limit: Option<u64>,
    pub per_resource: bool,
    pub resource_id: Option<String>,
    pub start: Option<OffsetDateTime>,
    pub end: Option<OffsetDateTime>,
}

#[derive(Clone)]
pub struct MeteringService {
    counters: Arc<Counters>,
    users: Arc<dyn UserRepository>,
    metering: Arc<dyn MeteringRepository>,
    tiers: Arc<dyn TierRepository>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    config: Arc<TesseraConfig>,
}

fn bounded(field: &'static str, value: i64, min: i64, max: i64) -> Result<i64, ValidationError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ValidationError::new(
            field,
            format!("must be between {min} and {max}"),
        ))
    }
}

fn entries<V>(field: &'static str, map: &BTreeMap<String, V>) -> Result<(), ValidationError> {
    if map.len() > MAX_METERING_ENTRIES {
        return Err(ValidationError::new(
            field,
            format!("at most {MAX_METERING_ENTRIES} entries"),
        ));
    }
    Ok(())
}

/// Validates a quota map: keys `*` or a UUID, values 0..=[`MAX_QUOTA`].
pub fn parse_quotas(
    raw: BTreeMap<String, i64>,
) -> Result<BTreeMap<ResourceId, u64>, ValidationError> {
    entries("quotas", &raw)?;
    raw.into_iter()
        .map(|(key, limit)| {
            let field = format!("quotas.{key}");
            let id = ResourceId::parse(field.clone(), &key)?;
            if !(0..=MAX_QUOTA).contains(&limit) {
                return Err(ValidationError::new(
                    field,
                    format!("must be an integer between 0 and {MAX_QUOTA}"),
                ));
            }
            Ok((id, limit.unsigned_abs()))
        })
        .collect()
}

/// Validates a discount map: keys `*` or a UUID, values decimal fractions strictly between 0
/// and 1 with at most six decimal places.
pub fn parse_discounts(
    raw: BTreeMap<String, String>,
) -> Result<BTreeMap<ResourceId, Discount>, ValidationError> {
    entries("discounts", &raw)?;
    raw.into_iter()
        .map(|(key, value)| {
            let field = format!("discounts.{key}");
            let id = ResourceId::parse(field.clone(), &key)?;
            Ok((id, Discount::parse_decimal(&field, &value)?))
        })
        .collect()
}

/// Validates a threshold map: keys configured currencies, values within ±[`MAX_THRESHOLD`]
/// minor units.
pub fn parse_thresholds(
    currencies: &Currencies,
    raw: BTreeMap<String, i64>,
) -> Result<BTreeMap<String, i64>, ValidationError> {
    if raw.len() > MAX_THRESHOLDS {
        return Err(ValidationError::new(
            "thresholds",
            format!("must name at most {MAX_THRESHOLDS} currencies"),
        ));
    }
    let mut out = BTreeMap::new();
    for (code, value) in raw {
        let field = format!("thresholds.{code}");
        let currency = currencies
            .parse("thresholds", &code)
            .map_err(|_| ValidationError::new(field.clone(), "is not a configured currency"))?;
        if !(-MAX_THRESHOLD..=MAX_THRESHOLD).contains(&value) {
            return Err(ValidationError::new(
                field,
                format!("must be an integer between -{MAX_THRESHOLD} and {MAX_THRESHOLD}"),
            ));
        }
        out.insert(currency.as_str().to_owned(), value);
    }
    Ok(out)
}

pub(crate) fn show_thresholds(m: &BTreeMap<String, i64>) -> String {
    m.iter()
        .map(|(c, v)| format!("{c}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn show_map<V: std::fmt::Display>(m: &BTreeMap<ResourceId, V>) -> String {
    m.iter()
        .map(|(r, v)| format!("{r}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl MeteringService {
    pub(crate) fn new(
        ports: &Ports,
        config: &Arc<TesseraConfig>,
        counters: &Arc<Counters>,
    ) -> Self {
        Self {
            counters: counters.clone(),
            users: ports.users.clone(),
            metering: ports.metering.clone(),
            tiers: ports.tiers.clone(),
            clock: ports.clock.clone(),
            ids: ports.ids.clone(),
            config: config.clone(),
        }
    }

    /// The server-wide fallbacks in force.
    pub fn defaults(&self) -> &MeteringDefaults {
        &self.config.metering
    }

    async fn resolve(&self, user: &UserRef) -> Result<User, MeteringError> {
        Ok(crate::services::users::resolve_user(&*self.users, user).await?)
    }

    /// Refuses callers without billing administration, before anything is looked up (the
    /// Chutes admin routes answer 403 whatever they were sent).
    pub fn require_billing_admin(&self, actor: &Actor) -> Result<(), MeteringError> {
        policy::authorize(actor, Access::Read)?;
        Ok(policy::ensure_billing_admin(actor)?)
    }

    fn unlimited(user: &User) -> bool {
        user.permissions.has(Permission::FreeAccount) || user.invoicing
    }

    /// A user's quota rows and the defaults behind them.
    pub async fn quotas(&self, actor: &Actor, user: &UserRef) -> Result<UserQuotas, MeteringError> {
        policy::authorize(actor, Access::Read)?;
        let target = self.resolve(user).await?;
        policy::ensure_can_read_metering(actor, &target)?;
        let rows = self.metering.quotas(target.id).await?;
        let tier = match target.tier_id {
            Some(id) => match self.tiers.get(id).await {
                Ok(tier) => Some(tier.quotas),
                Err(RepoError::NotFound) => None,
                Err(other) => return Err(other.into()),
            },
            None => None,
        };
        let defaults = tier
            .filter(|q| !q.is_empty())
            .unwrap_or_else(|| self.defaults().quotas.clone());
        Ok(UserQuotas {
            rows,
            defaults,
            unlimited: Self::unlimited(&target),
        })
    }

    /// Replaces every quota of a user (an empty map removes them all). Billing administrators.
    pub async fn set_quotas(
        &self,
        actor: &Actor,
        user: &UserRef,
        quotas: BTreeMap<String, i64>,
    ) -> Result<BTreeMap<ResourceId, u64>, MeteringError> {
        policy::authorize(actor, Access::Write)?;
        let quotas = parse_quotas(quotas)?;
        let target = self.resolve(user).await?;
        policy::ensure_can_bill(actor, &target)?;
        let before = self.metering.quotas(target.id).await?;
        let event = audit::event(
            self.ids.new_id(),
            self.clock.now(),
            Some(actor),
            Some(target.id),
            AuditAction::QuotasChanged,
            audit::changes([("quotas", Some(show_map(&before)), Some(show_map(&quotas)))]),
        );
        let now = self.clock.now();
        self.metering
            .replace_quotas(target.id, quotas.clone(), now, Some(event))
            .await?;
        Ok(quotas)
    }

    /// A user's discount rows.
    pub async fn discounts(
        &self,
        actor: &Actor,
        user: &UserRef,
    ) -> Result<BTreeMap<ResourceId, Discount>, MeteringError> {
        policy::authorize(actor, Access::Read)?;
        let target = self.resolve(user).await?;
        policy::ensure_can_read_metering(actor, &target)?;
        Ok(self.metering.discounts(target.id).await?)
    }

    /// Replaces every discount of a user. Values are decimal fractions (`"0.15"`). Billing
    /// administrators.
    pub async fn set_discounts(
        &self,
        actor: &Actor,
        user: &UserRef,
        discounts: BTreeMap<String, String>,
    ) -> Result<BTreeMap<ResourceId, Discount>, MeteringError> {
        policy::authorize(actor, Access::Write)?;
        let discounts = parse_discounts(discounts)?;
        let target = self.resolve(user).await?;
        policy::ensure_can_bill(actor, &target)?;
        let before = self.metering.discounts(target.id).await?;
        let event = audit::event(
            self.ids.new_id(),
            self.clock.now(),
            Some(actor),
            Some(target.id),
            AuditAction::DiscountsChanged,
            audit::changes([(
                "discounts",
                Some(show_map(&before)),
                Some(show_map(&discounts)),
            )]),
        );
        let now = self.clock.now();
        self.metering
            .replace_discounts(target.id, discounts.clone(), now, Some(event))
            .await?;
        Ok(discounts)
    }

    /// A user's own balance thresholds, by currency (a tier's apply where the user has none).
    pub async fn balance_thresholds(
        &self,
        actor: &Actor,
        user: &UserRef,
    ) -> Result<BTreeMap<String, i64>, MeteringError> {
        policy::authorize(actor, Access::Read)?;
        let target = self.resolve(user).await?;
        policy::ensure_can_read_metering(actor, &target)?;
        Ok(self
            .metering
            .balance_thresholds(ThresholdOwner::User(target.id))
            .await?)
    }

    /// Replaces a user's balance thresholds (an empty map removes them). Billing
    /// administrators.
    pub async fn set_balance_thresholds(
        &self,
        actor: &Actor,
        user: &UserRef,
        thresholds: BTreeMap<String, i64>,
    ) -> Result<BTreeMap<String, i64>, MeteringError> {
        policy::authorize(actor, Access::Write)?;
        let thresholds = parse_thresholds(&self.config.currencies, thresholds)?;
        let target = self.resolve(user).await?;
        policy::ensure_can_bill(actor, &target)?;
        let owner = ThresholdOwner::User(target.id);
        let before = self.metering.balance_thresholds(owner).await?;
        let event = audit::event(
            self.ids.new_id(),
            self.clock.now(),
            Some(actor),
            Some(target.id),
            AuditAction::BalanceThresholdsChanged,
            audit::changes([(
                "balance_thresholds",
                Some(show_thresholds(&before)),
                Some(show_thresholds(&thresholds)),
            )]),
        );
        self.metering
            .replace_balance_thresholds(owner, thresholds.clone(), Some(event))
            .await?;
        Ok(thresholds)
    }

    /// The user's day on one resource (`*`: the wildcard quota and its shared counter).
    pub async fn quota_usage(
        &self,
        actor: &Actor,
        user: &UserRef,
        resource_id: &str,
    ) -> Result<QuotaUsage, MeteringError> {
        policy::authorize(actor, Access::Read)?;
        let resource = ResourceId::parse("resource_id", resource_id)?;
        let target = self.resolve(user).await?;
        policy::ensure_can_read_metering(actor, &target)?;
        let now = self.clock.now();
        let resets_at = next_reset(now);
        if Self::unlimited(&target) {
            return Ok(QuotaUsage {
                limit: None,
                used: 0,
                remaining: None,
                resets_at,
                counter: None,
            });
        }
        let rates = self.metering.rates(target.id, &resource).await?;
        let quota = rates.quota(&resource, self.defaults());
        let used = self
            .metering
            .counter(target.id, quota.counter, day_of(now))
            .await?;
        Ok(QuotaUsage {
            limit: Some(quota.limit),
            used,
            remaining: Some(quota.limit.saturating_sub(used.max(0).unsigned_abs())),
            resets_at,
            counter: Some(quota.counter),
        })
    }

    /// Records one consumption: within the day's quota it is free; past it, it is charged
    /// (discounted, rounded up) to the user's default wallet; with neither it is refused with
    /// `QuotaExceeded` and nothing changes. One atomic store call. With an idempotency key, a
    /// repeat returns the first decision.
    pub async fn consume(
        &self,
        actor: &Actor,
        input: ConsumeInput,
        key: Option<IdempotencyKey>,
    ) -> Result<Consumed, MeteringError> {
        policy::authorize(actor, Access::Meter)?;
        policy::ensure_may_meter(actor)?;
        let resource = ResourceId::parse("resource_id", &input.resource_id)?;
        let count = bounded("count", input.count, 1, MAX_COUNT)?;
        let cost = bounded("cost", input.cost, 0, MAX_COST)?;
        let input_tokens = bounded("input_tokens", input.input_tokens, 0, MAX_TOKENS)?;
        let output_tokens = bounded("output_tokens", input.output_tokens, 0, MAX_TOKENS)?;
        // The user and the rates together: one round trip fewer on every consumption.
        let (target, rates) = self.metering.consumer(input.user_id, &resource).await?;
        policy::ensure_can_meter_for(actor, &target)?;

        let now = self.clock.now();
        let resets_at = next_reset(now);
        let (mode, discount) = if target.permissions.has(Permission::FreeAccount) {
            (ConsumptionMode::Free, None)
        } else {
            let discount = rates.discount(&resource, self.defaults());
            if target.invoicing {
                (ConsumptionMode::Invoice, discount)
            } else {
                (
                    ConsumptionMode::Metered(rates.quota(&resource, self.defaults())),
                    discount,
                )
            }
        };
        let charged = match mode {
            ConsumptionMode::Free => 0,
            _ => charge(cost, discount),
        };
        let currency = self
            .config
            .currencies
            .default_currency()
            .as_str()
            .to_owned();
        let user_id = target.id;
        let idempotency = key.map(|key| IdempotencyClaim {
            scope: actor.id(),
            key: key.as_str().to_owned(),
            fingerprint: format!(
                "POST usage\nuser={user_id}\nresource={resource}\ncount={count}\ncost={cost}\n\
                 input_tokens={input_tokens}\noutput_tokens={output_tokens}"
            ),
        });
        let exhaustion = match mode {
            ConsumptionMode::Metered(q) if q.limit > 0 => Some(Event {
                id: self.ids.new_id(),
                event_type: EventType::QuotaExhausted,
                occurred_at: now,
                subject_id: Some(user_id),
                actor_id: Some(actor.id()),
                payload: EventPayload::Quota(QuotaPayload {
                    resource_id: resource.to_string(),
                    counter: q.counter.as_string(),
                    day: day_of(now).to_string(),
                    quota: q.limit,
                }),
            }),
            _ => None,
        };
        let consumption = Consumption {
            user_id,
            resource: resource.clone(),
            count,
            cost,
            charge: charged,
            input_tokens,
            output_tokens,
            mode,
            currency: currency.clone(),
            day: day_of(now),
            bucket: hour_of(now),
            entry_id: self.ids.new_id(),
            new_wallet_id: self.ids.new_id(),
            reason: format!("usage of {resource} x{count}"),
            actor_id: Some(actor.id()),
            idempotency,
            now,
            exhaustion,
        };
        let outcome = match self.metering.consume(consumption).await {
            Ok(outcome) => outcome,
            Err(RepoError::Conflict(Conflict::InsufficientFunds)) => {
                self.counters.metering(None);
                return Err(MeteringError::QuotaExceeded { resets_at });
            }
            Err(other) => return Err(other.into()),
        };
        if !outcome.replayed {
            self.counters.metering(Some(outcome.source));
            if outcome.entry_id.is_some() {
                self.counters.ledger_entries(1);
            }
        }
        let quota = match mode {
            ConsumptionMode::Metered(q) => QuotaUsage {
                limit: Some(q.limit),
                used: outcome.quota_used,
                remaining: Some(
                    q.limit
                        .saturating_sub(outcome.quota_used.max(0).unsigned_abs()),
                ),
                resets_at,
                counter: Some(q.counter),
            },
            _ => QuotaUsage {
                limit: None,
                used: 0,
                remaining: None,
                resets_at,
                counter: None,
            },
        };
        Ok(Consumed {
            outcome,
            currency,
            quota,
        })
    }

    /// One page of a user's hourly usage, newest bucket first.
    pub async fn usage(
        &self,
        actor: &Actor,
        user: &UserRef,
        input: UsageInput,
    ) -> Result<(UsagePage, u64, u64), MeteringError> {
        policy::authorize(actor, Access::Read)?;
        let limit = input.limit.unwrap_or(DEFAULT_USAGE_LIMIT);
        if !(1..=MAX_USAGE_LIMIT).contains(&limit) {
            return Err(ValidationError::new(
                "limit",
                format!("must be between 1 and {MAX_USAGE_LIMIT}"),
            )
            .into());
        }
        let page = input.page.unwrap_or(0);
        let offset = page
            .checked_mul(limit)
            .filter(|o| *o <= Paging::MAX_OFFSET)
            .ok_or_else(|| ValidationError::new("page", "is too large"))?;
        let resource = input
            .resource_id
            .as_deref()
            .map(|raw| ResourceId::parse("resource_id", raw))
            .transpose()?;
        let target = self.resolve(user).await?;
        policy::ensure_can_read_metering(actor, &target)?;
        let query = UsageQuery {
            per_resource: input.per_resource,
            resource,
            start: input.start,
            end: input.end,
            offset,
            limit,
        };
        let found = self.metering.usage(target.id, query).await?;
        Ok((found, page, limit))
    }

    /// Turns invoice billing on or off (and the `unlimited` flag with it). Billing
    /// administrators. Turning it off while a wallet is below zero is
    /// `Conflict(NegativeBalance)`.
    pub async fn set_invoicing(
        &self,
        actor: &Actor,
        user: &UserRef,
        enabled: bool,
        unlimited: bool,
    ) -> Result<User, MeteringError> {
        self.change_invoicing(actor, user, enabled, Some(unlimited))
            .await
    }

    /// Chutes' `enable_invoicing`: turns invoice billing on, and `unlimited` on when asked;
    /// without the ask, `unlimited` stays as it was (Chutes only ever sets these bits).
    pub async fn enable_invoicing(
        &self,
        actor: &Actor,
        user: &UserRef,
        unlimited: bool,
    ) -> Result<User, MeteringError> {
        self.change_invoicing(actor, user, true, unlimited.then_some(true))
            .await
    }

    /// `unlimited: None` keeps the user's current flag.
    async fn change_invoicing(
        &self,
        actor: &Actor,
        user: &UserRef,
        enabled: bool,
        unlimited: Option<bool>,
    ) -> Result<User, MeteringError> {
        policy::authorize(actor, Access::Write)?;
        let target = self.resolve(user).await?;
        policy::ensure_can_bill(actor, &target)?;
        let unlimited = unlimited.unwrap_or(target.unlimited);
        let shown = |b: bool| Some(b.to_string());
        let event = audit::event(
            self.ids.new_id(),
            self.clock.now(),
            Some(actor),
            Some(target.id),
            AuditAction::InvoicingChanged,
            audit::changes([
                ("invoicing", shown(target.invoicing), shown(enabled)),
                ("unlimited", shown(target.unlimited), shown(unlimited)),
            ]),
        );
        let now = self.clock.now();
        Ok(self
            .users
            .set_invoicing(target.id, enabled, unlimited, now, Some(event))
            .await?)
    }
}
