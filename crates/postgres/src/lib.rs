//! PostgreSQL implementation of Tessera's storage ports, on diesel + diesel-async with a
//! deadpool connection pool.
//!
//! Every port method is one transaction (or one statement). Constraint violations are mapped to
//! domain errors by constraint name; pool time-outs and lost connections become
//! `RepoError::Unavailable` so HTTP can answer 503.

mod audit;
mod credentials;
mod error;
mod events;
mod metering;
mod migrate;
mod models;
mod pool;
mod precision;
mod prepared;
pub mod schema;
mod sessions;
mod shares;
mod tiers;
mod users;
mod wallets;

pub use migrate::{pending_migrations, run_migrations, MigrationError};
pub use pool::{PgPool, PoolSettings};

use tessera_domain::ports::{RepoError, RepoResult};

/// The Postgres adapter: one pool behind every storage port.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The longest a directory statement (listing, count) may run; `None`: no limit.
    directory_timeout: Option<std::time::Duration>,
}

/// [`PgStore::new`]'s limit for directory statements.
pub const DEFAULT_DIRECTORY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

impl PgStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            directory_timeout: Some(DEFAULT_DIRECTORY_TIMEOUT),
        }
    }

    /// Limits how long one directory statement (a listing or a count, whose filters callers
    /// choose) may run; past it the call fails with `RepoError::Timeout` and holds its
    /// connection no longer. `None` lifts the limit.
    pub fn with_directory_timeout(mut self, limit: Option<std::time::Duration>) -> Self {
        self.directory_timeout = limit.filter(|d| !d.is_zero());
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn conn(&self) -> RepoResult<pool::PgConn> {
        self.pool.get().await.map_err(|e| {
            tracing::warn!(error = %e, "database pool could not provide a connection");
            RepoError::Unavailable
        })
    }

    /// One housekeeping batch: `sql` deletes at most `$2` rows older than `$1` (selected
    /// `FOR UPDATE SKIP LOCKED`, so processes pruning at once split the work instead of
    /// queueing), and the number deleted comes back.
    async fn delete_batch(
        &self,
        sql: &'static str,
        cutoff: time::OffsetDateTime,
        limit: u32,
    ) -> RepoResult<u64> {
        use diesel::sql_types::{BigInt, Timestamptz};
        use diesel_async::RunQueryDsl;
        let mut conn = self.conn().await?;
        let deleted = diesel::sql_query(sql)
            .bind::<Timestamptz, _>(cutoff)
            .bind::<BigInt, _>(i64::from(limit))
            .execute(&mut conn)
            .await
            .map_err(error::map)?;
        Ok(deleted as u64)
    }

    /// Whether the database answers a trivial query (readiness probes).
    pub async fn ping(&self) -> RepoResult<()> {
        use diesel_async::RunQueryDsl;
        let mut conn = self.conn().await?;
        diesel::sql_query("SELECT 1")
            .execute(&mut conn)
            .await
            .map_err(error::map)?;
        Ok(())
    }
}

impl PgStore {
    /// Whether every embedded migration has been applied. One cheap query, for readiness.
    pub async fn schema_is_current(&self) -> RepoResult<bool> {
        use diesel::sql_types::BigInt;
        use diesel_async::RunQueryDsl;

        #[derive(diesel::QueryableByName)]
        struct Applied {
            #[diesel(sql_type = BigInt)]
            count: i64,
        }
        // Never "current" by default: an unreadable list is an error, not an empty one.
        let expected = migrate::embedded_versions().map_err(RepoError::internal)?;
        let mut conn = self.conn().await?;
        let applied: Applied = diesel::sql_query(
            "SELECT count(*) AS count FROM __diesel_schema_migrations WHERE version = ANY($1)",
        )
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(&expected)
        .get_result(&mut conn)
        .await
        .map_err(error::map)?;
        Ok(usize::try_from(applied.count).unwrap_or(0) == expected.len())
    }

    /// Whether PostgreSQL will vacuum and re-analyze Tessera's tables by itself: `autovacuum`
    /// and `track_counts` (which autovacuum needs to see that a table changed), as this
    /// database's connections see them. Without it, tables keep the statistics of their last
    /// manual `ANALYZE`, and the plans chosen from them stay in every pooled connection.
    pub async fn autovacuum_enabled(&self) -> RepoResult<bool> {
        use diesel::sql_types::Bool;
        use diesel_async::RunQueryDsl;

        #[derive(diesel::QueryableByName)]
        struct Enabled {
            #[diesel(sql_type = Bool)]
            enabled: bool,
        }
        let mut conn = self.conn().await?;
        let row: Enabled = diesel::sql_query(
            "SELECT current_setting('autovacuum')::bool \
             AND current_setting('track_counts')::bool AS enabled",
        )
        .get_result(&mut conn)
        .await
        .map_err(error::map)?;
        Ok(row.enabled)
    }
}
