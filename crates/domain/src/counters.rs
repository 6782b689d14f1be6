//! Business counters the domain keeps as it works: logins, ledger entries, metering decisions,
//! housekeeping. They live here, not in an HTTP handler, so that an embedding program counts
//! exactly what the server exports as metrics (`Tessera::counters`).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::Source as ChargeSource;
use crate::services::{DeliveryResult, Pruned};

/// The counters of one application object. Monotonic; read with [`Counters::snapshot`].
#[derive(Debug, Default)]
pub struct Counters {
    logins_succeeded: AtomicU64,
    logins_failed: AtomicU64,
    ledger_entries: AtomicU64,
    /// Indexed by [`METERING_SOURCES`].
    metering: [AtomicU64; 5],
    housekeeping_ok: AtomicU64,
    housekeeping_failed: AtomicU64,
    /// Indexed by [`HOUSEKEEPING_KINDS`].
    removed: [AtomicU64; 7],
    /// Indexed by [`WEBHOOK_OUTCOMES`].
    webhook_deliveries: [AtomicU64; 3],
    webhook_endpoints_disabled: AtomicU64,
}

/// What became of a webhook delivery attempt: the labels of its counter.
pub const WEBHOOK_OUTCOMES: [&str; 3] = ["delivered", "retry_scheduled", "gave_up"];

/// Who paid for a consumption, or `refused` (402): the labels of the metering counter.
pub const METERING_SOURCES: [&str; 5] = ["quota", "balance", "free", "invoice", "refused"];

/// What housekeeping removes: the labels of its counter.
pub const HOUSEKEEPING_KINDS: [&str; 7] = [
    "users",
    "sessions",
    "idempotency_keys",
    "usage_keys",
    "quota_counters",
    "events",
    "webhook_deliveries",
];

/// The counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub logins_succeeded: u64,
    pub logins_failed: u64,
    /// Ledger entries written (replays of an idempotent request excluded).
    pub ledger_entries: u64,
    /// Consumption decisions, in the order of [`METERING_SOURCES`] (replays excluded).
    pub metering: [u64; 5],
    pub housekeeping_ok: u64,
    pub housekeeping_failed: u64,
    /// Rows housekeeping removed, in the order of [`HOUSEKEEPING_KINDS`].
    pub removed: [u64; 7],
    /// Webhook attempts by what became of them, in the order of [`WEBHOOK_OUTCOMES`].
    pub webhook_deliveries: [u64; 3],
    pub webhook_endpoints_disabled: u64,
}

impl CountersSnapshot {
    /// The sum of several snapshots (one per HTTP worker's application object).
    pub fn sum<'a>(snapshots: impl IntoIterator<Item = &'a CountersSnapshot>) -> Self {
        snapshots.into_iter().fold(Self::default(), |mut acc, s| {
            acc.logins_succeeded += s.logins_succeeded;
            acc.logins_failed += s.logins_failed;
            acc.ledger_entries += s.ledger_entries;
            for (a, b) in acc.metering.iter_mut().zip(s.metering) {
                *a += b;
            }
            acc.housekeeping_ok += s.housekeeping_ok;
            acc.housekeeping_failed += s.housekeeping_failed;
            for (a, b) in acc.removed.iter_mut().zip(s.removed) {
                *a += b;
            }
            for (a, b) in acc.webhook_deliveries.iter_mut().zip(s.webhook_deliveries) {
                *a += b;
            }
            acc.webhook_endpoints_disabled += s.webhook_endpoints_disabled;
            acc
        })
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Counters {
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            logins_succeeded: read(&self.logins_succeeded),
            logins_failed: read(&self.logins_failed),
            ledger_entries: read(&self.ledger_entries),
            metering: self.metering.each_ref().map(read),
            housekeeping_ok: read(&self.housekeeping_ok),
            housekeeping_failed: read(&self.housekeeping_failed),
            removed: self.removed.each_ref().map(read),
            webhook_deliveries: self.webhook_deliveries.each_ref().map(read),
            webhook_endpoints_disabled: read(&self.webhook_endpoints_disabled),
        }
    }

    pub(crate) fn login(&self, succeeded: bool) {
        add(
            if succeeded {
                &self.logins_succeeded
            } else {
                &self.logins_failed
            },
            1,
        );
    }

    pub(crate) fn ledger_entries(&self, written: u64) {
        add(&self.ledger_entries, written);
    }

    pub(crate) fn metering(&self, source: Option<ChargeSource>) {
        let index = match source {
            Some(ChargeSource::Quota) => 0,
            Some(ChargeSource::Balance) => 1,
            Some(ChargeSource::Free) => 2,
            Some(ChargeSource::Invoice) => 3,
            None => 4,
        };
        add(&self.metering[index], 1);
    }

    pub(crate) fn webhook_delivery(&self, result: DeliveryResult, disabled_endpoint: bool) {
        let index = match result {
            DeliveryResult::Delivered => 0,
            DeliveryResult::RetryScheduled => 1,
            DeliveryResult::GaveUp => 2,
            DeliveryResult::Superseded => return,
        };
        add(&self.webhook_deliveries[index], 1);
        if disabled_endpoint {
            add(&self.webhook_endpoints_disabled, 1);
        }
    }

    pub(crate) fn housekeeping(&self, removed: Option<&Pruned>) {
        let Some(p) = removed else {
            add(&self.housekeeping_failed, 1);
            return;
        };
        add(&self.housekeeping_ok, 1);
        let kinds = [
            p.users,
            p.sessions,
            p.idempotency_keys,
            p.usage_keys,
            p.quota_counters,
            p.events,
            p.webhook_deliveries,
        ];
        for (counter, n) in self.removed.iter().zip(kinds) {
            add(counter, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_add_up() {
        let a = Counters::default();
        a.login(true);
        a.login(false);
        a.ledger_entries(2);
        a.metering(Some(ChargeSource::Balance));
        a.metering(None);
        let b = Counters::default();
        b.login(true);
        let sum = CountersSnapshot::sum([&a.snapshot(), &b.snapshot()]);
        assert_eq!(sum.logins_succeeded, 2);
        assert_eq!(sum.logins_failed, 1);
        assert_eq!(sum.ledger_entries, 2);
        assert_eq!(sum.metering, [0, 1, 0, 0, 1]);
    }
}
