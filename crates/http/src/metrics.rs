//! Prometheus metrics: requests by route template and status with a latency histogram, the
//! database pool, login outcomes, ledger entries, metering decisions and housekeeping. Served at
//! `/metrics`.

use std::sync::Arc;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use tessera_domain::services::Pruned;

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

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    logins: IntCounterVec,
    ledger_entries: IntCounter,
    metering: IntCounterVec,
    housekeeping_runs: IntCounterVec,
    housekeeping_removed: IntCounterVec,
    pool_max: IntGauge,
    pool_size: IntGauge,
    pool_in_use: IntGauge,
    pool_waiting: IntGauge,
    pool: Arc<dyn PoolStats>,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
    let g = IntGauge::new(name, help)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn as_gauge(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Metrics {
    pub fn new(pool: Arc<dyn PoolStats>) -> Result<Self, String> {
        Self::build(pool).map_err(|e| format!("cannot register metrics: {e}"))
    }

    fn build(pool: Arc<dyn PoolStats>) -> Result<Self, prometheus::Error> {
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
        Ok(Self {
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

    pub fn login(&self, succeeded: bool) {
        let outcome = if succeeded { "success" } else { "failure" };
        self.logins.with_label_values(&[outcome]).inc();
    }

    pub fn ledger_entries(&self, written: u64) {
        self.ledger_entries.inc_by(written);
    }

    /// One consumption decision: `quota`, `balance`, `free`, `invoice`, or `refused`.
    pub fn metering_decision(&self, source: &str) {
        self.metering.with_label_values(&[source]).inc();
    }

    /// One housekeeping run: what it removed, or `None` if it failed.
    pub fn housekeeping_run(&self, removed: Option<&Pruned>) {
        let Some(p) = removed else {
            self.housekeeping_runs.with_label_values(&["failed"]).inc();
            return;
        };
        self.housekeeping_runs.with_label_values(&["ok"]).inc();
        for (kind, n) in [
            ("users", p.users),
            ("sessions", p.sessions),
            ("idempotency_keys", p.idempotency_keys),
            ("usage_keys", p.usage_keys),
            ("quota_counters", p.quota_counters),
        ] {
            self.housekeeping_removed
                .with_label_values(&[kind])
                .inc_by(n);
        }
    }

    /// The text exposition, with the pool read now.
    pub fn render(&self) -> String {
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

    #[test]
    fn renders_requests_logins_ledger_and_pool() {
        let m = Metrics::new(Arc::new(FixedPool)).map_err(|e| e.to_string());
        let Ok(m) = m else {
            panic!("metrics");
        };
        m.observe_request("GET", "/api/v1/users/{user}", 200, 0.002);
        m.login(false);
        m.ledger_entries(2);
        m.metering_decision("quota");
        m.metering_decision("refused");
        let text = m.render();
        assert!(text.contains(r#"tessera_metering_decisions_total{source="quota"} 1"#));
        assert!(text.contains(r#"tessera_metering_decisions_total{source="refused"} 1"#));
        assert!(text.contains(
            r#"tessera_http_requests_total{method="GET",route="/api/v1/users/{user}",status="200"} 1"#
        ));
        assert!(text.contains(r#"tessera_logins_total{outcome="failure"} 1"#));
        assert!(text.contains("tessera_ledger_entries_total 2"));
        assert!(text.contains("tessera_db_pool_in_use 2"));
    }
}
