//! Prometheus metrics: requests by route template and status with a latency histogram, the
//! database pool, and the domain's business counters (login outcomes, ledger entries, metering
//! decisions, housekeeping), which the domain keeps itself (`Tessera::counters`) and this module
//! only exports. Served at `/metrics`.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use tessera_domain::counters::{
    CountersSnapshot, HOUSEKEEPING_KINDS, METERING_SOURCES, WEBHOOK_OUTCOMES,
};
use tessera_domain::model::DeliveryStats;

/// A connection pool's state at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

/// Reads the pool's state at scrape time. The server implements it over the real pool; storage
/// without a pool answers `None`.
pub trait PoolStats: Send + Sync {
    fn status(&self) -> Option<PoolStatus>;
}

/// The domain's business counters at scrape time: the server sums those of every application
/// object it runs (one per HTTP worker, and the one housekeeping uses).
pub trait CounterSource: Send + Sync {
    fn snapshot(&self) -> CountersSnapshot;
}

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    logins: IntCounterVec,
    ledger_entries: IntCounter,
    metering: IntCounterVec,
    housekeeping_runs: IntCounterVec,
    housekeeping_removed: IntCounterVec,
    webhook_deliveries: IntCounterVec,
    webhook_endpoints_disabled: IntCounter,
    events_written: IntGauge,
    webhook_queue_depth: IntGauge,
    webhook_oldest_pending: IntGauge,
    pool_max: IntGauge,
    pool_size: IntGauge,
    pool_in_use: IntGauge,
    pool_waiting: IntGauge,
    pool: Arc<dyn PoolStats>,
    counters: Arc<dyn CounterSource>,
    /// The counters as last exported; a scrape adds what they grew by since.
    exported: Mutex<CountersSnapshot>,
    /// When the queue gauges were last read from the store.
    queue_read_at: Mutex<Option<std::time::Instant>>,
}

/// How stale the event queue gauges may be: reading them counts pending deliveries, which
/// every scrape of every scraper should not repeat.
pub const QUEUE_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

fn gauge(registry: &Registry, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
    let g = IntGauge::new(name, help)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn as_gauge(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Metrics {
    pub fn new(pool: Arc<dyn PoolStats>, counters: Arc<dyn CounterSource>) -> Result<Self, String> {
        Self::build(pool, counters).map_err(|e| format!("cannot register metrics: {e}"))
    }

    fn build(
        pool: Arc<dyn PoolStats>,
        counters: Arc<dyn CounterSource>,
    ) -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("tessera".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route template and status",
            ),
            &["method", "route", "status"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route template",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["method", "route"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        let logins = IntCounterVec::new(
            Opts::new("logins_total", "Password logins by outcome"),
            &["outcome"],
        )?;
        registry.register(Box::new(logins.clone()))?;
        let ledger_entries = IntCounter::new(
            "ledger_entries_total",
            "Ledger entries written by this process (replays excluded)",
        )?;
        registry.register(Box::new(ledger_entries.clone()))?;
        let metering = IntCounterVec::new(
            Opts::new(
                "metering_decisions_total",
                "Consumption decisions by who paid (quota, balance, free, invoice) or refused \
                 (402); replays excluded",
            ),
            &["source"],
        )?;
        registry.register(Box::new(metering.clone()))?;
        let housekeeping_runs = IntCounterVec::new(
            Opts::new(
                "housekeeping_runs_total",
                "Housekeeping runs of this process by outcome (ok, failed)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(housekeeping_runs.clone()))?;
        let housekeeping_removed = IntCounterVec::new(
            Opts::new(
                "housekeeping_removed_total",
                "Rows housekeeping removed, by kind (users purged, sessions, idempotency_keys, \
                 usage_keys, quota_counters)",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(housekeeping_removed.clone()))?;
        let webhook_deliveries = IntCounterVec::new(
            Opts::new(
                "webhook_attempts_total",
                "Webhook delivery attempts made by this process, by what followed (delivered, \
                 retry_scheduled, gave_up)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(webhook_deliveries.clone()))?;
        let webhook_endpoints_disabled = IntCounter::new(
            "webhook_endpoints_disabled_total",
            "Endpoints this process disabled after failing for the whole retry window",
        )?;
        registry.register(Box::new(webhook_endpoints_disabled.clone()))?;
        Ok(Self {
            events_written: gauge(
                &registry,
                "events_written",
                "Events written since the database was created (the feed's sequence)",
            )?,
            webhook_queue_depth: gauge(
                &registry,
                "webhook_queue_depth",
                "Webhook deliveries waiting for an attempt",
            )?,
            webhook_oldest_pending: gauge(
                &registry,
                "webhook_oldest_pending_seconds",
                "Age of the oldest webhook delivery not yet delivered",
            )?,
            webhook_deliveries,
            webhook_endpoints_disabled,
            pool_max: gauge(&registry, "db_pool_max_size", "Largest size of the pool")?,
            pool_size: gauge(&registry, "db_pool_size", "Connections open")?,
            pool_in_use: gauge(&registry, "db_pool_in_use", "Connections checked out")?,
            pool_waiting: gauge(
                &registry,
                "db_pool_waiting",
                "Requests waiting for a connection",
            )?,
            registry,
            requests,
            latency,
            logins,
            ledger_entries,
            metering,
            housekeeping_runs,
            housekeeping_removed,
            pool,
            counters,
            exported: Mutex::new(CountersSnapshot::default()),
            queue_read_at: Mutex::new(None),
        })
    }

    /// One handled request. `route` is the matched template (bounded cardinality), never the
    /// raw path.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[method, route])
            .observe(seconds);
    }

    /// Adds to the exported counters what the domain's grew by since the last scrape.
    fn export_counters(&self) {
        let now = self.counters.snapshot();
        let mut exported = self.exported.lock().unwrap_or_else(PoisonError::into_inner);
        let grown = |now: u64, before: u64| now.saturating_sub(before);
        self.logins
            .with_label_values(&["success"])
            .inc_by(grown(now.logins_succeeded, exported.logins_succeeded));
        self.logins
            .with_label_values(&["failure"])
            .inc_by(grown(now.logins_failed, exported.logins_failed));
        self.ledger_entries
            .inc_by(grown(now.ledger_entries, exported.ledger_entries));
        for (i, source) in METERING_SOURCES.into_iter().enumerate() {
            self.metering
                .with_label_values(&[source])
                .inc_by(grown(now.metering[i], exported.metering[i]));
        }
        self.housekeeping_runs
            .with_label_values(&["ok"])
            .inc_by(grown(now.housekeeping_ok, exported.housekeeping_ok));
        self.housekeeping_runs
            .with_label_values(&["failed"])
            .inc_by(grown(now.housekeeping_failed, exported.housekeeping_failed));
        for (i, kind) in HOUSEKEEPING_KINDS.into_iter().enumerate() {
            self.housekeeping_removed
                .with_label_values(&[kind])
                .inc_by(grown(now.removed[i], exported.removed[i]));
        }
        for (i, outcome) in WEBHOOK_OUTCOMES.into_iter().enumerate() {
            self.webhook_deliveries
                .with_label_values(&[outcome])
                .inc_by(grown(
                    now.webhook_deliveries[i],
                    exported.webhook_deliveries[i],
                ));
        }
        self.webhook_endpoints_disabled.inc_by(grown(
            now.webhook_endpoints_disabled,
            exported.webhook_endpoints_disabled,
        ));
        *exported = now;
    }

    /// Whether the queue figures are older than [`QUEUE_REFRESH`]; answering `true` claims the
    /// refresh, so concurrent scrapes query the store once.
    pub fn queue_due(&self) -> bool {
        let mut last = self
            .queue_read_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let due = last.is_none_or(|at| at.elapsed() >= QUEUE_REFRESH);
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    }

    /// Sets the event queue gauges (read from the store by the caller).
    pub fn set_queue(&self, q: DeliveryStats) {
        let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.events_written.set(g(q.events_written));
        self.webhook_queue_depth.set(g(q.pending));
        self.webhook_oldest_pending.set(g(q.oldest_pending_secs));
    }

    /// The text exposition, with the pool read now.
    pub fn render(&self) -> String {
        self.export_counters();
        if let Some(s) = self.pool.status() {
            self.pool_max.set(as_gauge(s.max_size));
            self.pool_size.set(as_gauge(s.size));
            self.pool_in_use
                .set(as_gauge(s.size.saturating_sub(s.available)));
            self.pool_waiting.set(as_gauge(s.waiting));
        }
        let mut out = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FixedPool;
    impl PoolStats for FixedPool {
        fn status(&self) -> Option<PoolStatus> {
            Some(PoolStatus {
                max_size: 8,
                size: 3,
                available: 1,
                waiting: 0,
            })
        }
    }

    /// Counters that grow by a fixed step at every read.
    struct Growing(Mutex<CountersSnapshot>);
    impl CounterSource for Growing {
        fn snapshot(&self) -> CountersSnapshot {
            let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            s.logins_failed += 1;
            s.ledger_entries += 2;
            s.metering[0] += 1;
            s.metering[4] += 1;
            *s
        }
    }

    #[test]
    fn renders_requests_logins_ledger_and_pool() {
        let counters = Arc::new(Growing(Mutex::new(CountersSnapshot::default())));
        let m = Metrics::new(Arc::new(FixedPool), counters).map_err(|e| e.to_string());
        let Ok(m) = m else {
            panic!("metrics");
        };
        m.observe_request("GET", "/api/v1/users/{user}", 200, 0.002);
        let text = m.render();
        assert!(text.contains(r#"tessera_metering_decisions_total{source="quota"} 1"#));
        assert!(text.contains(r#"tessera_metering_decisions_total{source="refused"} 1"#));
        assert!(text.contains(
            r#"tessera_http_requests_total{method="GET",route="/api/v1/users/{user}",status="200"} 1"#
        ));
        assert!(text.contains(r#"tessera_logins_total{outcome="failure"} 1"#));
        assert!(text.contains("tessera_ledger_entries_total 2"));
        assert!(text.contains("tessera_db_pool_in_use 2"));
        // A second scrape exports what the counters grew by since, once.
        let text = m.render();
        assert!(text.contains(r#"tessera_logins_total{outcome="failure"} 2"#));
        assert!(text.contains("tessera_ledger_entries_total 4"));
    }
}
