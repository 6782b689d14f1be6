//! The storage contract, run against the PostgreSQL adapter on a fresh database per case.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tessera_postgres::{PgStore, PoolSettings};
use tessera_testkit::contract::Stores;
use tessera_testkit::TestDatabase;

/// The stores keep the database alive: it is dropped after the case.
async fn postgres_stores() -> (Stores, TestDatabase) {
    let db = TestDatabase::new().await;
    let pool = PoolSettings::default()
        .build(&db.url)
        .expect("pool for the test database");
    (Stores::of(PgStore::new(pool)), db)
}

tessera_testkit::contract_tests!(postgres_stores());

/// The last-superuser guard locks the active superusers `FOR NO KEY UPDATE`, which leaves
/// foreign-key checks alone: a transaction that is inserting a row referencing a superuser (a
/// session, here; a ledger entry by a superuser alike) holds `FOR KEY SHARE` on that user, and
/// a demotion of another superuser must not queue behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superuser_guard_does_not_wait_for_foreign_key_references() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    use tessera_domain::model::{Permissions, UserChanges};
    use tessera_testkit::contract::{create, new_superuser, now};

    let (s, db) = postgres_stores().await;
    let root = create(&s, new_superuser()).await;
    let other = create(&s, new_superuser()).await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    conn.batch_execute(&format!(
        "BEGIN; INSERT INTO sessions (id, user_id, created_at, expires_at) \
         VALUES ('{}', '{}', now(), now() + interval '1 hour')",
        uuid::Uuid::now_v7(),
        root.id
    ))
    .await
    .unwrap();

    let demotion = s.users.update(
        other.id,
        UserChanges {
            permissions: Some(Permissions::NONE),
            ..UserChanges::default()
        },
        now(),
    );
    let demoted = tokio::time::timeout(std::time::Duration::from_secs(5), demotion)
        .await
        .expect("the demotion waited for a foreign-key check on another superuser")
        .unwrap();
    assert!(!demoted.permissions.is_superuser());
    // The guard still counted root: it is the last one now.
    let last = s
        .users
        .update(
            root.id,
            UserChanges {
                permissions: Some(Permissions::NONE),
                ..UserChanges::default()
            },
            now(),
        )
        .await;
    assert_eq!(
        last.unwrap_err(),
        tessera_domain::ports::RepoError::Conflict(tessera_domain::Conflict::LastSuperuser)
    );
    conn.batch_execute("COMMIT").await.unwrap();
}

#[derive(diesel::QueryableByName)]
struct BackendPid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

/// The PostgreSQL backend serving the pool's next connection (the pool holds one).
async fn backend_pid(pool: &tessera_postgres::PgPool) -> i32 {
    use diesel_async::RunQueryDsl;
    let mut conn = pool.get().await.unwrap();
    let row: BackendPid = diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result(&mut *conn)
        .await
        .unwrap();
    row.pid
}

/// A connection past `max_lifetime` is replaced when it would next be handed out; until then,
/// and without a lifetime, the pool keeps handing out the same one.
#[tokio::test]
async fn pool_replaces_connections_past_their_lifetime() {
    let db = TestDatabase::new().await;
    let lifetime = std::time::Duration::from_millis(100);
    let settings = |max_lifetime| PoolSettings {
        max_size: 1,
        max_lifetime,
        ..PoolSettings::default()
    };
    let ageing = settings(Some(lifetime)).build(&db.url).unwrap();
    let forever = settings(None).build(&db.url).unwrap();
    let (first, kept) = (backend_pid(&ageing).await, backend_pid(&forever).await);
    assert_eq!(
        backend_pid(&ageing).await,
        first,
        "replaced before its time"
    );

    // Past the lifetime and the largest spread (an eighth more).
    tokio::time::sleep(lifetime * 2).await;
    let second = backend_pid(&ageing).await;
    assert_ne!(second, first, "the old connection was handed out again");
    assert_eq!(backend_pid(&ageing).await, second);
    assert_eq!(
        backend_pid(&forever).await,
        kept,
        "a lifetime-less pool replaced its connection"
    );
    assert_eq!(
        ageing.status().size,
        1,
        "the replaced connection is still counted"
    );
}

/// `autovacuum_enabled` reads the settings as the database's own sessions see them:
/// `track_counts` off (settable per database, unlike `autovacuum`) means no autovacuum.
#[tokio::test]
async fn autovacuum_check_sees_track_counts_off() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let db = TestDatabase::new().await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    conn.batch_execute(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET track_counts = off', \
         current_database()); END $$",
    )
    .await
    .unwrap();
    let pool = PoolSettings::default().build(&db.url).unwrap();
    assert!(!PgStore::new(pool).autovacuum_enabled().await.unwrap());
}
