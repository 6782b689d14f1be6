//! Housekeeping: what Tessera stops keeping, and when.
//!
//! Soft-deleted users are restorable for a retention period and then purged; sessions that
//! ended, idempotency keys and past days' quota counters are only needed for a while. This runs
//! as the system, not on behalf of a caller, so it is not reachable over HTTP: the server runs it
//! on a timer (`retention.interval_secs`) and `tessera prune` runs it once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Failure;
use time::OffsetDateTime;

use crate::app::{Ports, TesseraConfig};
use crate::counters::Counters;
use crate::model::{AuditAction, FieldChange};
use crate::ports::{
    Clock, EventRepository, IdGenerator, MeteringRepository, RepoError, SessionRepository,
    UserRepository, WalletRepository, WebhookRepository,
};
use crate::services::audit;

/// How long each kind of expendable data is kept. `None` keeps it until removed by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// How long a soft-deleted user stays restorable before it is purged with everything it
    /// owns.
    pub deleted_users: Option<Duration>,
    /// How long a session is kept after it expired or was revoked.
    pub ended_sessions: Option<Duration>,
    /// How long a wallet `Idempotency-Key` is honoured.
    pub idempotency_keys: Option<Duration>,
    /// How long a consumption `Idempotency-Key` is honoured.
    pub usage_keys: Option<Duration>,
    /// How long a day's quota counters are kept after the day began.
    pub quota_counters: Option<Duration>,
    /// How long events stay in the feed (and can be redelivered).
    pub events: Option<Duration>,
    /// How long finished webhook deliveries and their attempts are kept.
    pub webhook_deliveries: Option<Duration>,
    /// Rows removed per statement (users: purged per round, each in its own transaction), so
    /// no delete holds its locks for long.
    pub batch_size: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Self {
            deleted_users: Some(Duration::from_secs(30 * DAY)),
            ended_sessions: Some(Duration::from_secs(7 * DAY)),
            idempotency_keys: Some(Duration::from_secs(30 * DAY)),
            usage_keys: Some(Duration::from_secs(30 * DAY)),
            quota_counters: Some(Duration::from_secs(2 * DAY)),
            events: Some(Duration::from_secs(30 * DAY)),
            webhook_deliveries: Some(Duration::from_secs(30 * DAY)),
            batch_size: 1000,
        }
    }
}

impl RetentionPolicy {
    /// The instant before which a soft-deleted user is past its retention, if it has one.
    pub(crate) fn deleted_users_cutoff(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        cutoff(now, self.deleted_users)
    }
}

/// `now - keep`, or `None` when kept forever. A period too long to subtract keeps everything.
fn cutoff(now: OffsetDateTime, keep: Option<Duration>) -> Option<OffsetDateTime> {
    let keep = time::Duration::try_from(keep?).ok()?;
    now.checked_sub(keep)
}

/// How many rows one housekeeping run removed, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub users: u64,
    pub sessions: u64,
    pub idempotency_keys: u64,
    pub usage_keys: u64,
    pub quota_counters: u64,
    pub events: u64,
    pub webhook_deliveries: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.users
            + self.sessions
            + self.idempotency_keys
            + self.usage_keys
            + self.quota_counters
            + self.events
            + self.webhook_deliveries
    }
}

/// Housekeeping has no failure of its own: the shared ones (the store unreachable — the next
/// run catches up — or an internal failure).
pub type RetentionError = Failure;

/// Rounds per kind and run: with the default batch, a million rows. The rest waits for the
/// next run, so one run after a long outage stays bounded.
const MAX_ROUNDS: u32 = 1000;

#[derive(Clone)]
pub struct RetentionService {
    counters: Arc<Counters>,
    users: Arc<dyn UserRepository>,
    sessions: Arc<dyn SessionRepository>,
    wallets: Arc<dyn WalletRepository>,
    metering: Arc<dyn MeteringRepository>,
    events: Arc<dyn EventRepository>,
    webhooks: Arc<dyn WebhookRepository>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    config: Arc<TesseraConfig>,
}

impl RetentionService {
    pub(crate) fn new(
        ports: &Ports,
        config: &Arc<TesseraConfig>,
        counters: &Arc<Counters>,
    ) -> Self {
        Self {
            counters: counters.clone(),
            users: ports.users.clone(),
            sessions: ports.sessions.clone(),
            wallets: ports.wallets.clone(),
            metering: ports.metering.clone(),
            events: ports.events.clone(),
            webhooks: ports.webhooks.clone(),
            clock: ports.clock.clone(),
            ids: ports.ids.clone(),
            config: config.clone(),
        }
    }

    /// The policy this service applies (`TesseraConfig::retention`).
    pub fn policy(&self) -> &RetentionPolicy {
        &self.config.retention
    }

    /// One housekeeping run: purges users past their retention (each in its own transaction,
    /// audited as `user.purged` by the system) and removes ended sessions, old idempotency keys
    /// and past quota counters, a batch at a time until none is left. Safe to run from several
    /// processes at once: every removal re-checks its condition as it deletes.
    pub async fn prune(&self) -> Result<Pruned, RetentionError> {
        let result = self.prune_all().await;
        self.counters.housekeeping(result.as_ref().ok());
        result
    }

    async fn prune_all(&self) -> Result<Pruned, RetentionError> {
        let policy = &self.config.retention;
        let now = self.clock.now();
        let limit = policy.batch_size.max(1);
        let mut pruned = Pruned::default();

        if let Some(cutoff) = policy.deleted_users_cutoff(now) {
            pruned.users = self.purge_deleted_users(cutoff, limit).await?;
        }
        if let Some(cutoff) = cutoff(now, policy.ended_sessions) {
            pruned.sessions = drain(limit, || self.sessions.prune_ended(cutoff, limit)).await?;
        }
        if let Some(cutoff) = cutoff(now, policy.idempotency_keys) {
            pruned.idempotency_keys =
                drain(limit, || self.wallets.prune_idempotency_keys(cutoff, limit)).await?;
        }
        if let Some(cutoff) = cutoff(now, policy.usage_keys) {
            pruned.usage_keys =
                drain(limit, || self.metering.prune_usage_keys(cutoff, limit)).await?;
        }
        if let Some(cutoff) = cutoff(now, policy.quota_counters) {
            // Counters are per UTC day: a day goes once all of it is older than the period.
            let day = cutoff.to_offset(time::UtcOffset::UTC).date();
            pruned.quota_counters =
                drain(limit, || self.metering.prune_quota_counters(day, limit)).await?;
        }
        if let Some(cutoff) = cutoff(now, policy.webhook_deliveries) {
            pruned.webhook_deliveries =
                drain(limit, || self.webhooks.prune_deliveries(cutoff, limit)).await?;
        }
        if let Some(cutoff) = cutoff(now, policy.events) {
            pruned.events = drain(limit, || self.events.prune_events(cutoff, limit)).await?;
        }
        Ok(pruned)
    }

    async fn purge_deleted_users(
        &self,
        cutoff: OffsetDateTime,
        limit: u32,
    ) -> Result<u64, RetentionError> {
        let users = &self.users;
        let mut purged = 0;
        for _ in 0..MAX_ROUNDS {
            let due = users.deleted_before(cutoff, limit).await?;
            let mut gone_this_round = 0;
            for id in &due {
                let mut details = BTreeMap::new();
                details.insert(
                    "state".to_owned(),
                    FieldChange {
                        before: Some("deleted".to_owned()),
                        after: None,
                    },
                );
                let event = audit::event(
                    self.ids.new_id(),
                    self.clock.now(),
                    None,
                    Some(*id),
                    AuditAction::UserPurged,
                    details,
                );
                if users.purge_deleted(*id, cutoff, Some(event)).await? {
                    gone_this_round += 1;
                }
            }
            purged += gone_this_round;
            // A short list is the last one; a full list of users that all stayed (restored
            // meanwhile) would come back the same, so stop rather than spin.
            if due.len() < limit as usize || gone_this_round == 0 {
                break;
            }
        }
        Ok(purged)
    }
}

/// Calls `round` (one batch delete of at most `limit` rows) until a batch comes back short.
async fn drain<F, Fut>(limit: u32, mut round: F) -> Result<u64, RetentionError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, RepoError>>,
{
    let mut total = 0;
    for _ in 0..MAX_ROUNDS {
        let removed = round().await?;
        total += removed;
        if removed < u64::from(limit) {
            break;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_subtracts_the_period_and_none_keeps_forever() {
        let now = time::macros::datetime!(2026-11-23 12:00 UTC);
        assert_eq!(
            cutoff(now, Some(Duration::from_secs(3600))),
            Some(time::macros::datetime!(2026-11-23 11:00 UTC))
        );
        assert_eq!(cutoff(now, None), None);
        // Longer than time can go back: nothing is old enough.
        assert_eq!(cutoff(now, Some(Duration::MAX)), None);
    }

    #[test]
    fn pruned_total_adds_every_kind() {
        let pruned = Pruned {
            users: 1,
            sessions: 2,
            idempotency_keys: 3,
            usage_keys: 4,
            quota_counters: 5,
            events: 6,
            webhook_deliveries: 7,
        };
        assert_eq!(pruned.total(), 28);
    }
}
