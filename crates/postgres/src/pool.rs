use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use deadpool::managed::{Hook, HookError};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::AsyncPgConnection;

pub type PgPool = Pool<AsyncPgConnection>;
pub(crate) type PgConn = Object<AsyncPgConnection>;

/// Pool sizing and time-outs. Short time-outs make an outage a fast 503, not a hung request.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_size: usize,
    /// How long a request waits for a free connection.
    pub wait_timeout: Duration,
    /// How long opening a new connection may take.
    pub connect_timeout: Duration,
    /// A connection older than this is closed when it would next be handed out, and a new one
    /// opened in its place; `None` keeps connections for the life of the process. Each
    /// connection caches its prepared statements' query plans, and PostgreSQL re-plans them
    /// only when it re-analyzes a table: a plan chosen while a table was small (a sequential
    /// scan of an empty `sessions`) would otherwise outlive the table's growth for as long as
    /// the connection lives.
    pub max_lifetime: Option<Duration>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_size: 16,
            wait_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            max_lifetime: Some(Duration::from_secs(30 * 60)),
        }
    }
}

impl PoolSettings {
    /// Builds the pool. Connections are opened lazily, so this succeeds while the database is
    /// down and the pool heals by itself when it returns.
    pub fn build(&self, database_url: &str) -> Result<PgPool, String> {
        let mut config = ManagerConfig::default();
        // `Fast` skips a round trip per checkout; a dead connection surfaces as an error on use
        // and deadpool discards it.
        config.recycling_method = RecyclingMethod::Fast;
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
            database_url,
            config,
        );
        let mut builder = Pool::builder(manager)
            .max_size(self.max_size)
            .wait_timeout(Some(self.wait_timeout))
            .create_timeout(Some(self.connect_timeout))
            .recycle_timeout(Some(self.connect_timeout))
            .runtime(deadpool::Runtime::Tokio1);
        if let Some(lifetime) = self.max_lifetime {
            // A failing pre-recycle hook makes deadpool drop the connection and hand out
            // another (or a new) one; the caller never sees the error.
            builder = builder.pre_recycle(Hook::sync_fn(move |_, metrics| {
                if outlived(metrics.created, lifetime, Instant::now()) {
                    Err(HookError::message(
                        "connection reached its maximum lifetime",
                    ))
                } else {
                    Ok(())
                }
            }));
        }
        builder
            .build()
            .map_err(|e| format!("cannot build the database pool: {e}"))
    }
}

/// Whether a connection opened at `created` has outlived `lifetime` at `now`. Each connection
/// gets up to an eighth more, fixed per connection, so that connections opened together (at
/// start-up, or after an outage) are not all replaced in the same instant.
fn outlived(created: Instant, lifetime: Duration, now: Instant) -> bool {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    created.hash(&mut hasher);
    let spread = lifetime / 8;
    let extra = if spread.is_zero() {
        Duration::ZERO
    } else {
        let nanos = u64::try_from(spread.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(hasher.finish() % nanos)
    };
    now.saturating_duration_since(created) >= lifetime.saturating_add(extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_lives_between_its_lifetime_and_an_eighth_more() {
        let lifetime = Duration::from_secs(800);
        let start = Instant::now();
        for offset_ms in 0..200u64 {
            let created = start + Duration::from_millis(offset_ms);
            assert!(!outlived(
                created,
                lifetime,
                created + lifetime - Duration::from_secs(1)
            ));
            assert!(outlived(
                created,
                lifetime,
                created + Duration::from_secs(900)
            ));
        }
    }

    #[test]
    fn connections_opened_together_are_not_all_retired_together() {
        let lifetime = Duration::from_secs(800);
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        // 50 s past the lifetime: the jitter (0-100 s) has retired some but not all.
        let retired = (0..64u64)
            .filter(|&i| outlived(at(i), lifetime, at(i) + lifetime + Duration::from_secs(50)))
            .count();
        assert!(
            retired > 0 && retired < 64,
            "{retired} of 64 retired at once"
        );
    }

    #[test]
    fn a_zero_lifetime_retires_at_once() {
        let now = Instant::now();
        assert!(outlived(now, Duration::ZERO, now));
    }
}
