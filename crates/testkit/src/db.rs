//! Real PostgreSQL for tests: one database per test, cloned from a template that holds the
//! migrated schema. Tests run in parallel (nextest runs each in its own process) without
//! sharing state.
//!
//! The server comes from `TESSERA_TEST_DATABASE_URL` (what `make test` sets through
//! `scripts/dev-postgres`), defaulting to the local server on 127.0.0.1:5432.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const MIGRATIONS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
/// Serialises template builds across test processes.
const TEMPLATE_LOCK: i64 = 0x7e55_e7a0;
/// Test databases older than this are leftovers of killed runs and get swept.
const STALE_AFTER_SECS: u64 = 3600;

/// A database that exists for one test and is dropped after it.
pub struct TestDatabase {
    pub url: String,
    name: String,
    admin_url: String,
}

fn server_url() -> String {
    std::env::var("TESSERA_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// The URL of another database on the same server (the path segment replaced).
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{database}?{q}"),
        None => format!("{root}/{database}"),
    }
}

/// A fingerprint of the migrations, so a changed schema gets a fresh template.
fn migrations_fingerprint() -> String {
    let mut files = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(MIGRATIONS_DIR)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(content) = std::fs::read(&path) {
                files.push((path, content));
            }
        }
    }
    files.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for (path, content) in &files {
        path.file_name().hash(&mut hasher);
        content.hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    datname: String,
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn admin_connection(admin_url: &str) -> AsyncPgConnection {
    match AsyncPgConnection::establish(admin_url).await {
        Ok(conn) => conn,
        Err(e) => panic!(
            "cannot reach the test PostgreSQL at {admin_url}: {e}\n\
             run the tests with `make test` (it finds or provisions a server), or set \
             TESSERA_TEST_DATABASE_URL"
        ),
    }
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    if let Err(e) = diesel::sql_query(sql).execute(conn).await {
        panic!("test database setup failed on `{sql}`: {e}");
    }
}

async fn ensure_template(admin_url: &str) -> String {
    let template = format!("tessera_tmpl_{}", migrations_fingerprint());
    let mut conn = admin_connection(admin_url).await;
    exec(
        &mut conn,
        &format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"),
    )
    .await;
    let exists: Found =
        diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
            .bind::<Text, _>(&template)
            .get_result(&mut conn)
            .await
            .unwrap_or(Found { n: 0 });
    if exists.n == 0 {
        let building = format!("{template}_building");
        exec(
            &mut conn,
            &format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
        )
        .await;
        exec(&mut conn, &format!("CREATE DATABASE {building}")).await;
        if let Err(e) = tessera_postgres::run_migrations(&with_database(admin_url, &building)).await
        {
            panic!("migrating the test template failed: {e}");
        }
        exec(
            &mut conn,
            &format!("ALTER DATABASE {building} RENAME TO {template}"),
        )
        .await;
        // Templates of older schemas and leftovers of killed runs.
        let stale: Vec<Name> = diesel::sql_query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'tessera\\_tmpl\\_%' AND datname <> $1",
        )
        .bind::<Text, _>(&template)
        .load(&mut conn)
        .await
        .unwrap_or_default();
        for old in stale {
            exec(
                &mut conn,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", old.datname),
            )
            .await;
        }
    }
    sweep_stale(&mut conn).await;
    exec(
        &mut conn,
        &format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"),
    )
    .await;
    template
}

async fn sweep_stale(conn: &mut AsyncPgConnection) {
    let names: Vec<Name> = diesel::sql_query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'tessera\\_test\\_%'",
    )
    .load(conn)
    .await
    .unwrap_or_default();
    let cutoff = now_secs().saturating_sub(STALE_AFTER_SECS);
    for name in names {
        let created = name
            .datname
            .strip_prefix("tessera_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|c| c < cutoff) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                name.datname
            ))
            .execute(conn)
            .await;
        }
    }
}

impl TestDatabase {
    /// A fresh database with no schema at all, for testing migrations themselves.
    pub async fn empty() -> Self {
        let admin_url = server_url();
        let name = format!(
            "tessera_test_{}_{}",
            now_secs(),
            uuid::Uuid::new_v4().simple()
        );
        let mut conn = admin_connection(&admin_url).await;
        exec(&mut conn, &format!("CREATE DATABASE {name}")).await;
        Self {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }

    /// A fresh, migrated, empty database.
    pub async fn new() -> Self {
        let admin_url = server_url();
        let template = ensure_template(&admin_url).await;
        let name = format!(
            "tessera_test_{}_{}",
            now_secs(),
            uuid::Uuid::new_v4().simple()
        );
        let mut conn = admin_connection(&admin_url).await;
        exec(
            &mut conn,
            &format!("CREATE DATABASE {name} TEMPLATE {template}"),
        )
        .await;
        Self {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }
}

/// Tables whose rows a *refused* request may legitimately change, left out of
/// [`state_digests`]:
///
/// - `rate_counters`: the fixed-window counters of tier rate limits, anonymous per-address
///   limits and the throttles of presented secrets (passwords, fingerprints). Counting refused
///   requests is their whole purpose: a guess that fails must still cost the guesser.
/// - `used_signatures`: a state-changing hotkey signature is claimed as soon as it verifies,
///   before the operation decides whether the caller may proceed, so that a refused request's
///   signature cannot be replayed against another server process either.
/// - `__diesel_schema_migrations`: the migration runner's bookkeeping, not application state;
///   no request writes it, and it says nothing about what a request did.
/// - `event_consumers`: the webhook worker's position in the event feed, which moves in the
///   background whenever events become readable, whatever the requests do (the events
///   themselves are digested).
pub const VOLATILE_TABLES: &[&str] = &[
    "rate_counters",
    "used_signatures",
    "__diesel_schema_migrations",
    "event_consumers",
];

/// Columns left out of [`state_digests`], as `(table, column)`:
///
/// - `api_keys.last_used_at`: stamped whenever a key authenticates, before the route decides
///   what the key may do, so a key's owner sees that it is being used (refused calls included).
pub const VOLATILE_COLUMNS: &[(&str, &str)] = &[("api_keys", "last_used_at")];

#[derive(QueryableByName)]
struct TableRow {
    #[diesel(sql_type = Text)]
    name: String,
}

fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// For every table of the `public` schema of the database at `url`, an md5 of all its rows
/// (each row as text, sorted), except [`VOLATILE_TABLES`] and [`VOLATILE_COLUMNS`]: two equal
/// results mean no request in between changed any application state. Panics when the database
/// cannot be read.
pub async fn state_digests(url: &str) -> BTreeMap<String, String> {
    StateProbe::connect(url).await.digests().await
}

/// [`state_digests`] over one connection kept open, for taking many digests in a row (one after
/// each request, to say which request changed what). The tables and columns are read once, when
/// connecting; each digest is then one query.
pub struct StateProbe {
    conn: AsyncPgConnection,
    /// One row `(name, digest)` per digested table.
    query: String,
}

#[derive(QueryableByName)]
struct NamedDigest {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    digest: String,
}

impl StateProbe {
    pub async fn connect(url: &str) -> Self {
        let mut conn = match AsyncPgConnection::establish(url).await {
            Ok(conn) => conn,
            Err(e) => panic!("cannot reach the test database {url}: {e}"),
        };
        let tables: Vec<TableRow> = match diesel::sql_query(
            "SELECT tablename::text AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
        )
        .load(&mut conn)
        .await
        {
            Ok(tables) => tables,
            Err(e) => panic!("listing the tables of {url}: {e}"),
        };
        let mut parts = Vec::new();
        for table in tables {
            if VOLATILE_TABLES.contains(&table.name.as_str()) {
                continue;
            }
            let skipped: Vec<&str> = VOLATILE_COLUMNS
                .iter()
                .filter(|(t, _)| *t == table.name)
                .map(|(_, c)| *c)
                .collect();
            let source = if skipped.is_empty() {
                quoted(&table.name)
            } else {
                let columns: Vec<TableRow> = match diesel::sql_query(
                    "SELECT column_name::text AS name FROM information_schema.columns \
                     WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                )
                .bind::<Text, _>(&table.name)
                .load(&mut conn)
                .await
                {
                    Ok(columns) => columns,
                    Err(e) => panic!("listing the columns of {}: {e}", table.name),
                };
                let kept: Vec<String> = columns
                    .iter()
                    .filter(|c| !skipped.contains(&c.name.as_str()))
                    .map(|c| quoted(&c.name))
                    .collect();
                format!("(SELECT {} FROM {})", kept.join(", "), quoted(&table.name))
            };
            parts.push(format!(
                "SELECT '{}'::text AS name, \
                 (SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) \
                  FROM {source} t) AS digest",
                table.name.replace('\'', "''")
            ));
        }
        if parts.is_empty() {
            panic!("no tables to digest in {url}");
        }
        Self {
            conn,
            query: parts.join(" UNION ALL "),
        }
    }

    /// See [`state_digests`].
    pub async fn digests(&mut self) -> BTreeMap<String, String> {
        let rows: Vec<NamedDigest> = match diesel::sql_query(&self.query).load(&mut self.conn).await
        {
            Ok(rows) => rows,
            Err(e) => panic!("digesting the tables: {e}"),
        };
        rows.into_iter().map(|r| (r.name, r.digest)).collect()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (name, admin_url) = (self.name.clone(), self.admin_url.clone());
        // Drop runs inside the test's runtime, which cannot block on itself: use a thread with
        // its own small runtime.
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = AsyncPgConnection::establish(&admin_url).await {
                    let _ =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                }
            });
        });
        let _ = done.join();
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_names_are_swapped_in_urls() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "y"),
            "postgres://u@h/y?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:1", "z"), "postgres://u@h:1/z");
    }
}
