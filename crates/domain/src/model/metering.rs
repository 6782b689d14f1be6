//! Metering (PRODUCT.md §1 "Tiers, quotas, discounts, usage"): daily quotas per resource,
//! discounts, the decision of one consumption, and hourly usage buckets.
//!
//! Nothing here is a float: costs and charges are minor units of the user's default wallet,
//! discounts are parts per million, and the discounted charge is rounded up (in the platform's
//! favour) with integer arithmetic.

use std::collections::BTreeMap;
use std::fmt;

use time::{Date, OffsetDateTime, Time, UtcOffset};
use uuid::Uuid;

use super::{IdempotencyClaim, NewWallet, ResourceId, DEFAULT_WALLET_NAME};
use crate::error::ValidationError;

/// One whole, in parts per million.
pub const PPM: u32 = 1_000_000;

/// A discount strictly between 0 and 1, held exactly as parts per million (1..=999_999).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Discount(u32);

impl Discount {
    fn out_of_range(field: &str) -> ValidationError {
        ValidationError::new(
            field.to_owned(),
            "a discount must be strictly between 0 and 1",
        )
    }

    /// From parts per million; 0 and 1_000_000 (and beyond) are refused.
    pub fn from_ppm(field: &str, ppm: i64) -> Result<Self, ValidationError> {
        if ppm <= 0 || ppm >= i64::from(PPM) {
            return Err(Self::out_of_range(field));
        }
        u32::try_from(ppm)
            .map(Self)
            .map_err(|_| Self::out_of_range(field))
    }

    /// From a decimal fraction such as `"0.15"` (at most six decimal places, no exponent),
    /// converted exactly. A JSON number is passed as its shortest decimal form
    /// (`f64::to_string`), which is the literal the client wrote for any realistic discount.
    pub fn parse_decimal(field: &str, raw: &str) -> Result<Self, ValidationError> {
        let raw = raw.trim();
        let invalid = || {
            ValidationError::new(
                field.to_owned(),
                "a discount must be a decimal number strictly between 0 and 1",
            )
        };
        let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
        if whole.is_empty() && fraction.is_empty()
            || whole.len() > 20
            || !whole.chars().all(|c| c.is_ascii_digit())
            || !fraction.chars().all(|c| c.is_ascii_digit())
        {
            return Err(invalid());
        }
        let fraction = fraction.trim_end_matches('0');
        if fraction.len() > 6 {
            return Err(ValidationError::new(
                field.to_owned(),
                "a discount has at most 6 decimal places",
            ));
        }
        if !whole.chars().all(|c| c == '0') {
            return Err(Self::out_of_range(field));
        }
        let ppm = format!("{fraction:0<6}")
            .parse::<i64>()
            .map_err(|_| invalid())?;
        Self::from_ppm(field, ppm)
    }

    pub fn ppm(self) -> u32 {
        self.0
    }

    /// The fraction as an exact decimal string (`150000` → `"0.15"`).
    pub fn to_decimal_string(self) -> String {
        let digits = format!("{:06}", self.0);
        format!("0.{}", digits.trim_end_matches('0'))
    }

    /// The fraction for wire formats that want a JSON number. Display only; never used in
    /// arithmetic.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / f64::from(PPM)
    }

    /// `cost × (1 − discount)`, rounded up to the minor unit (the platform's favour). Exact:
    /// 128-bit integer arithmetic, and the result never exceeds `cost`.
    pub fn apply(self, cost: i64) -> i64 {
        charge(cost, Some(self))
    }
}

impl fmt::Display for Discount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_decimal_string())
    }
}

/// What a call of `cost` minor units is charged under `discount`, rounded up.
pub fn charge(cost: i64, discount: Option<Discount>) -> i64 {
    let Some(d) = discount else {
        return cost;
    };
    if cost <= 0 {
        return cost.max(0);
    }
    let kept = i128::from(PPM - d.0);
    let whole = i128::from(PPM);
    let numerator = i128::from(cost) * kept;
    // Ceiling division of non-negative numbers.
    let charged = (numerator + whole - 1) / whole;
    i64::try_from(charged).unwrap_or(cost)
}

/// Which daily counter a consumption counts against: the resource's own when the quota came
/// from a row for that resource, else one counter shared by every resource under the wildcard
/// (Chutes' `__default__`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CounterKey {
    Resource(Uuid),
    Shared,
}

impl CounterKey {
    pub const SHARED: &'static str = "__default__";

    pub fn as_string(&self) -> String {
        match self {
            Self::Resource(id) => id.to_string(),
            Self::Shared => Self::SHARED.to_owned(),
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        if raw == Self::SHARED {
            return Some(Self::Shared);
        }
        Uuid::parse_str(raw).ok().map(Self::Resource)
    }
}

/// Where a quota came from, in resolution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaOrigin {
    /// The user's row for the resource.
    User,
    /// The user's `*` row.
    UserWildcard,
    /// The tier's default for the resource.
    Tier,
    /// The tier's `*` default.
    TierWildcard,
    /// `metering.default_quotas` for the resource.
    Server,
    /// `metering.default_quotas["*"]`, or 0 when even that is absent.
    ServerWildcard,
}

/// A daily allowance and the counter it is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedQuota {
    pub limit: u64,
    pub counter: CounterKey,
    pub origin: QuotaOrigin,
}

/// What the store knows about one user and one resource, for the domain to resolve quota and
/// discount from. Absent rows are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeteringRates {
    /// The user's quota row for the resource (never filled for the wildcard itself).
    pub user_quota: Option<u64>,
    pub user_wildcard_quota: Option<u64>,
    /// The default of the user's tier for the resource.
    pub tier_quota: Option<u64>,
    pub tier_wildcard_quota: Option<u64>,
    pub user_discount: Option<Discount>,
    pub user_wildcard_discount: Option<Discount>,
}

/// Server-wide fallbacks, from configuration (`metering.default_quotas`,
/// `metering.default_discounts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeteringDefaults {
    pub quotas: BTreeMap<ResourceId, u64>,
    pub discounts: BTreeMap<ResourceId, Discount>,
}

impl Default for MeteringDefaults {
    /// No free calls (`{"*": 0}`: a new account pays for everything until given a quota, as a
    /// new Chutes account does) and no discounts.
    fn default() -> Self {
        Self {
            quotas: BTreeMap::from([(ResourceId::Any, 0)]),
            discounts: BTreeMap::new(),
        }
    }
}

impl MeteringRates {
    /// The quota for `resource`: the user's row for it, the user's `*` row, the tier's default
    /// for it, the tier's `*` default, the server default for it, the server's `*` default, 0.
    pub fn quota(&self, resource: &ResourceId, defaults: &MeteringDefaults) -> ResolvedQuota {
        let specific = |limit, origin| match resource {
            ResourceId::Id(id) => ResolvedQuota {
                limit,
                counter: CounterKey::Resource(*id),
                origin,
            },
            ResourceId::Any => ResolvedQuota {
                limit,
                counter: CounterKey::Shared,
                origin,
            },
        };
        let shared = |limit, origin| ResolvedQuota {
            limit,
            counter: CounterKey::Shared,
            origin,
        };
        let is_specific = matches!(resource, ResourceId::Id(_));
        if let (true, Some(q)) = (is_specific, self.user_quota) {
            return specific(q, QuotaOrigin::User);
        }
        if let Some(q) = self.user_wildcard_quota {
            return shared(q, QuotaOrigin::UserWildcard);
        }
        if let (true, Some(q)) = (is_specific, self.tier_quota) {
            return specific(q, QuotaOrigin::Tier);
        }
        if let Some(q) = self.tier_wildcard_quota {
            return shared(q, QuotaOrigin::TierWildcard);
        }
        if is_specific {
            if let Some(q) = defaults.quotas.get(resource) {
                return specific(*q, QuotaOrigin::Server);
            }
        }
        shared(
            defaults.quotas.get(&ResourceId::Any).copied().unwrap_or(0),
            QuotaOrigin::ServerWildcard,
        )
    }

    /// The discount for `resource`: the user's row for it, the user's `*` row, the server
    /// default for it, the server's `*` default, none.
    pub fn discount(&self, resource: &ResourceId, defaults: &MeteringDefaults) -> Option<Discount> {
        let is_specific = matches!(resource, ResourceId::Id(_));
        (if is_specific {
            self.user_discount
        } else {
            None
        })
        .or(self.user_wildcard_discount)
        .or_else(|| {
            is_specific
                .then(|| defaults.discounts.get(resource).copied())
                .flatten()
        })
        .or_else(|| defaults.discounts.get(&ResourceId::Any).copied())
    }
}

/// Who pays for a consumption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// Covered by the day's quota; nothing charged.
    Quota,
    /// Past the quota: charged to the default wallet.
    Balance,
    /// The user has the `free_account` permission: never charged nor refused.
    Free,
    /// The user is invoiced: charged, never refused, may go negative.
    Invoice,
}

impl Source {
    pub const ALL: [Source; 4] = [Self::Quota, Self::Balance, Self::Free, Self::Invoice];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quota => "quota",
            Self::Balance => "balance",
            Self::Free => "free",
            Self::Invoice => "invoice",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// How the store must treat a consumption, as decided by the domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumptionMode {
    /// Record usage only.
    Free,
    /// Charge `charge` even below zero (the wallet's `allow_negative` mirrors invoicing).
    Invoice,
    /// Count against the quota if `count` still fits in it; otherwise charge `charge`,
    /// refusing (`Conflict(InsufficientFunds)`) when the balance cannot cover it or is not
    /// positive.
    Metered(ResolvedQuota),
}

/// One metered call (or batch of `count` calls) to record atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumption {
    pub user_id: Uuid,
    pub resource: ResourceId,
    /// At least 1.
    pub count: i64,
    /// The undiscounted price, minor units of `currency`.
    pub cost: i64,
    /// What is charged when the call is paid from the balance: the discounted cost, rounded up.
    pub charge: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub mode: ConsumptionMode,
    /// The currency of the wallet that pays (the user's default wallet in it).
    pub currency: String,
    /// The UTC day the quota counter belongs to.
    pub day: Date,
    /// The start of the UTC hour of the usage bucket.
    pub bucket: OffsetDateTime,
    /// The id of the ledger entry, if one is written.
    pub entry_id: Uuid,
    /// The id of the default wallet, if an invoiced user has none and one must be opened.
    pub new_wallet_id: Uuid,
    pub reason: String,
    pub actor_id: Option<Uuid>,
    pub idempotency: Option<IdempotencyClaim>,
    pub now: OffsetDateTime,
    /// The `quota.exhausted` event of a metered call with a quota: the store writes it with
    /// the call when this is the first call of the day on the counter that the quota does not
    /// cover, and never again for that counter and day.
    pub exhaustion: Option<super::Event>,
}

/// Whose balance thresholds (`balance.below_threshold`): a user's own override a tier's, per
/// currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThresholdOwner {
    User(Uuid),
    Tier(Uuid),
}

/// Most currencies one threshold map may name.
pub const MAX_THRESHOLDS: usize = 64;
/// The largest threshold, either sign (10^15 minor units).
pub const MAX_THRESHOLD: i64 = 1_000_000_000_000_000;

impl Consumption {
    /// The default wallet to open for an invoiced user who has none.
    pub fn new_default_wallet(&self) -> NewWallet {
        NewWallet {
            id: self.new_wallet_id,
            user_id: self.user_id,
            name: DEFAULT_WALLET_NAME.to_owned(),
            currency: self.currency.clone(),
            now: self.now,
        }
    }
}

/// What a consumption did (or, for a replay, what it first did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumptionOutcome {
    pub source: Source,
    /// Minor units taken from the wallet (0 for `quota` and `free`).
    pub amount_charged: i64,
    /// The ledger entry of the charge, when there was one.
    pub entry_id: Option<Uuid>,
    /// The wallet's balance after the charge, when there was one.
    pub balance_after: Option<i64>,
    /// The day's counter after the call (`Metered` only; 0 otherwise).
    pub quota_used: i64,
    pub replayed: bool,
}

/// One page of hourly usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    /// Break buckets down by resource (else sum every resource of a bucket).
    pub per_resource: bool,
    pub resource: Option<ResourceId>,
    /// Inclusive bounds on the bucket start.
    pub start: Option<OffsetDateTime>,
    pub end: Option<OffsetDateTime>,
    pub offset: u64,
    pub limit: u64,
}

/// One hourly bucket (of one resource, or of all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageItem {
    pub bucket: OffsetDateTime,
    /// `None` when the page sums every resource.
    pub resource: Option<ResourceId>,
    pub count: i64,
    /// Minor units charged.
    pub amount: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsagePage {
    /// Rows (or distinct buckets, when summed) matching the query.
    pub total: u64,
    /// Newest bucket first; per resource, larger amounts first within a bucket.
    pub items: Vec<UsageItem>,
}

/// The start of the UTC hour `t` falls in.
pub fn hour_of(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    t.replace_time(Time::MIDNIGHT)
        .replace_hour(t.hour())
        .unwrap_or(t)
}

/// The UTC day `t` falls in.
pub fn day_of(t: OffsetDateTime) -> Date {
    t.to_offset(UtcOffset::UTC).date()
}

/// When the quota of the day `t` falls in resets: the next 00:00 UTC.
pub fn next_reset(t: OffsetDateTime) -> OffsetDateTime {
    let day = day_of(t);
    let next = day.next_day().unwrap_or(day);
    next.with_time(Time::MIDNIGHT).assume_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ppm: i64) -> Discount {
        Discount::from_ppm("d", ppm).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn discounts_parse_exactly_and_refuse_the_bounds() {
        assert_eq!(Discount::parse_decimal("d", "0.15"), Ok(d(150_000)));
        assert_eq!(Discount::parse_decimal("d", "0.000001"), Ok(d(1)));
        assert_eq!(Discount::parse_decimal("d", "0.999999"), Ok(d(999_999)));
        assert_eq!(Discount::parse_decimal("d", ".5"), Ok(d(500_000)));
        for bad in [
            "0",
            "1",
            "1.0",
            "0.0",
            "2",
            "-0.5",
            "0.0000001",
            "1e-3",
            "",
            ".",
            "abc",
            "0.5.1",
            "NaN",
            "inf",
        ] {
            assert!(Discount::parse_decimal("d", bad).is_err(), "{bad}");
        }
        assert_eq!(d(150_000).to_decimal_string(), "0.15");
        assert_eq!(d(1).to_decimal_string(), "0.000001");
        assert_eq!(0.15f64.to_string(), "0.15");
    }

    #[test]
    fn charges_round_up_and_never_exceed_the_cost() {
        assert_eq!(charge(1_000, Some(d(150_000))), 850);
        // 3 × 0.9 = 2.7 → 3 (the platform's favour).
        assert_eq!(charge(3, Some(d(100_000))), 3);
        // 1 × 0.000001 = 0.000001 → 1.
        assert_eq!(charge(1, Some(d(999_999))), 1);
        assert_eq!(charge(0, Some(d(500_000))), 0);
        assert_eq!(charge(7, None), 7);
        for cost in [1, 2, 99, 1_000_003, i64::MAX] {
            for ppm in [1, 333_333, 999_999] {
                let c = charge(cost, Some(d(ppm)));
                assert!(c <= cost && c >= 0, "{cost} {ppm}");
                // Exactly the ceiling: c - 1 < cost × (1 − p) ≤ c.
                let exact = i128::from(cost) * i128::from(1_000_000 - ppm);
                assert!(i128::from(c) * 1_000_000 >= exact);
                assert!(i128::from(c - 1) * 1_000_000 < exact);
            }
        }
    }

    #[test]
    fn quotas_resolve_in_order_with_their_counter() {
        let r = Uuid::now_v7();
        let res = ResourceId::Id(r);
        let defaults = MeteringDefaults::default();
        let mut rates = MeteringRates::default();
        let q = rates.quota(&res, &defaults);
        assert_eq!((q.limit, q.counter), (0, CounterKey::Shared));
        let mut defaults2 = defaults.clone();
        defaults2.quotas.insert(res.clone(), 7);
        assert_eq!(
            rates.quota(&res, &defaults2).counter,
            CounterKey::Resource(r)
        );
        rates.tier_wildcard_quota = Some(5);
        assert_eq!(rates.quota(&res, &defaults2).limit, 5);
        rates.tier_quota = Some(6);
        assert_eq!(
            rates.quota(&res, &defaults2).counter,
            CounterKey::Resource(r)
        );
        rates.user_wildcard_quota = Some(10);
        let q = rates.quota(&res, &defaults2);
        assert_eq!((q.limit, q.counter), (10, CounterKey::Shared));
        rates.user_quota = Some(3);
        let q = rates.quota(&res, &defaults2);
        assert_eq!((q.limit, q.counter), (3, CounterKey::Resource(r)));
        // The wildcard resource never reads per-resource rows.
        let q = rates.quota(&ResourceId::Any, &defaults2);
        assert_eq!((q.limit, q.counter), (10, CounterKey::Shared));
    }

    #[test]
    fn days_and_hours_are_utc() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH); // 2023-11-14 22:13:20 UTC
        assert_eq!(hour_of(t).unix_timestamp(), 1_699_999_200);
        assert_eq!(next_reset(t).unix_timestamp(), 1_700_006_400);
        let late = t.to_offset(UtcOffset::from_hms(5, 0, 0).unwrap_or(UtcOffset::UTC));
        assert_eq!(day_of(late), day_of(t));
    }
}
