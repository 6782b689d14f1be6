use std::collections::BTreeMap;

use async_trait::async_trait;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::RepoResult;
use crate::model::{
    AuditEvent, Consumption, ConsumptionOutcome, CounterKey, Discount, MeteringRates, ResourceId,
    ThresholdOwner, UsagePage, UsageQuery, User,
};

/// Storage of metering: per-user quotas and discounts, daily quota counters, hourly usage
/// buckets, and the one atomic step of a consumption.
///
/// Invariants every implementation keeps, whatever the concurrency:
/// - a day's counter never exceeds the quota the consumption was checked against: the check
///   and the increment are one atomic step;
/// - a charge moves the default wallet with its ledger entry (kind `usage`) exactly as
///   `WalletRepository::apply` would (never below zero unless the wallet may go negative);
/// - the counter, the charge, the usage bucket and the idempotency key of one consumption
///   commit together or not at all; a refusal changes nothing;
/// - an `Idempotency-Key` is used once per scope: a repeat with the same fingerprint returns the
///   first outcome (`replayed`) and changes nothing; with another fingerprint it is
///   `Conflict(IdempotencyMismatch)`.
///
/// Quotas, discounts, counters, buckets and keys go with a purged user.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait MeteringRepository: Send + Sync {
    /// The user's quota rows. Errors: `Unavailable` (an unknown user has none).
    async fn quotas(&self, user_id: Uuid) -> RepoResult<BTreeMap<ResourceId, u64>>;

    /// Replaces every quota row of the user with `quotas` and records `audit`, in one
    /// transaction. Errors: `NotFound` (no such user), `Unavailable`.
    async fn replace_quotas(
        &self,
        user_id: Uuid,
        quotas: BTreeMap<ResourceId, u64>,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<()>;

    /// The balance thresholds of a user or a tier, by currency. Errors: `Unavailable`.
    async fn balance_thresholds(&self, owner: ThresholdOwner) -> RepoResult<BTreeMap<String, i64>>;

    /// Replaces every balance threshold of the owner and records `audit`, in one transaction.
    /// Errors: `NotFound` (no such user or tier), `Unavailable`.
    async fn replace_balance_thresholds(
        &self,
        owner: ThresholdOwner,
        thresholds: BTreeMap<String, i64>,
        audit: Option<AuditEvent>,
    ) -> RepoResult<()>;

    /// The user's discount rows. Errors: `Unavailable`.
    async fn discounts(&self, user_id: Uuid) -> RepoResult<BTreeMap<ResourceId, Discount>>;

    /// Replaces every discount row of the user and records `audit`, in one transaction.
    /// Errors: `NotFound` (no such user), `Unavailable`.
    async fn replace_discounts(
        &self,
        user_id: Uuid,
        discounts: BTreeMap<ResourceId, Discount>,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<()>;

    /// The rows quota and discount resolution needs for one user and one resource, including
    /// the defaults of the user's tier, in one round trip. Errors: `Unavailable`.
    async fn rates(&self, user_id: Uuid, resource: &ResourceId) -> RepoResult<MeteringRates>;

    /// The user a consumption is for, with its rates for `resource` (as [`Self::rates`]), in
    /// one round trip: what the domain needs to decide a consumption. Soft-deleted users are
    /// returned (the policy refuses them). Errors: `NotFound` (no such user), `Unavailable`.
    async fn consumer(
        &self,
        user_id: Uuid,
        resource: &ResourceId,
    ) -> RepoResult<(User, MeteringRates)>;

    /// A day's counter (0 when there is none). Errors: `Unavailable`.
    async fn counter(&self, user_id: Uuid, counter: CounterKey, day: Date) -> RepoResult<i64>;

    /// Records one consumption atomically (see the trait's invariants). In `Metered` mode the
    /// counter is incremented by `count` only if the result stays within the quota; otherwise
    /// `charge` is taken from the user's live default wallet in `currency` with a `usage`
    /// ledger entry, refused unless the balance covers it and is positive. In `Invoice` mode
    /// the charge is taken even below zero (a missing default wallet is opened for it). The
    /// hourly bucket gets `count`, the amount charged and the tokens in every mode.
    /// Errors: `NotFound` (no such user), `Conflict(InsufficientFunds)` (refused: nothing
    /// changed), `Conflict(IdempotencyMismatch)`, `Conflict(BalanceOverflow)`, `Unavailable`.
    async fn consume(&self, consumption: Consumption) -> RepoResult<ConsumptionOutcome>;

    /// One page of the user's hourly usage. Errors: `Unavailable`.
    async fn usage(&self, user_id: Uuid, query: UsageQuery) -> RepoResult<UsagePage>;

    /// Forgets up to `limit` consumption `Idempotency-Key`s claimed before `cutoff`, and says how
    /// many went. Errors: `Unavailable`.
    async fn prune_usage_keys(&self, cutoff: OffsetDateTime, limit: u32) -> RepoResult<u64>;

    /// Removes up to `limit` quota counters of days before `day` (no consumption reads a past
    /// day's counter), and says how many went. Errors: `Unavailable`.
    async fn prune_quota_counters(&self, day: Date, limit: u32) -> RepoResult<u64>;
}
