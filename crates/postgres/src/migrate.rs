use diesel::Connection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
/// The SQL migrations in the repository's `migrations/`, embedded into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Why migrations could not run or be inspected.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MigrationError(String);

type Wrapper = AsyncConnectionWrapper<AsyncPgConnection>;

async fn with_blocking_connection<T: Send + 'static>(
    database_url: &str,
    work: impl FnOnce(&mut Wrapper) -> Result<T, String> + Send + 'static,
) -> Result<T, MigrationError> {
    let url = database_url.to_owned();
    // The wrapper blocks on async I/O, so it must run on a blocking thread, not a runtime
    // worker (and `AsyncMigrationHarness` panics on current-thread runtimes).
    tokio::task::spawn_blocking(move || {
        let mut conn =
            Wrapper::establish(&url).map_err(|e| format!("cannot connect to the database: {e}"))?;
        work(&mut conn)
    })
    .await
    .map_err(|e| MigrationError(format!("migration task failed: {e}")))?
    .map_err(MigrationError)
}

/// Applies every pending migration; returns the versions applied.
pub async fn run_migrations(database_url: &str) -> Result<Vec<String>, MigrationError> {
    with_blocking_connection(database_url, |conn| {
        conn.run_pending_migrations(MIGRATIONS)
            .map(|done| done.iter().map(ToString::to_string).collect())
            .map_err(|e| format!("migration failed: {e}"))
    })
    .await
}

/// The versions of migrations not yet applied (readiness: the schema must be current).
pub async fn pending_migrations(database_url: &str) -> Result<Vec<String>, MigrationError> {
    with_blocking_connection(database_url, |conn| {
        conn.pending_migrations(MIGRATIONS)
            .map(|pending| pending.iter().map(|m| m.name().to_string()).collect())
            .map_err(|e| format!("cannot read migration state: {e}"))
    })
    .await
}

/// The versions of the embedded migrations (the leading timestamp of each folder name, as
/// diesel records them).
pub(crate) fn embedded_versions() -> Result<Vec<String>, String> {
    use diesel::migration::MigrationSource;
    MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
        .map(|all| all.iter().map(|m| m.name().version().to_string()).collect())
        .map_err(|e| format!("cannot read the embedded migrations: {e}"))
}
