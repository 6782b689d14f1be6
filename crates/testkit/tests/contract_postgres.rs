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
    // Long enough that two back-to-back checkouts on a busy machine stay within it.
    let lifetime = std::time::Duration::from_secs(3);
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

/// Seeds `n` users straight into the database (the shape `scripts/seed-users.sql` gives the
/// benchmarks: creators among the first hundred), then analyzes.
async fn seed_users(url: &str, n: u32) {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    conn.batch_execute(&format!(
        "INSERT INTO users (id, username, email, first_name, permissions, state, \
                            tokens_valid_after, created_at, updated_at) \
         SELECT gen_random_uuid(), 'user' || lpad(i::text, 7, '0'), \
                'user' || lpad(i::text, 7, '0') || '@example.com', 'Ada', 0, 'active', \
                now(), now() - make_interval(secs => i), now() \
         FROM generate_series(1, {n}) AS i; \
         WITH creators AS (SELECT id, row_number() OVER (ORDER BY username) AS k \
                           FROM users ORDER BY username LIMIT 100) \
         UPDATE users u SET created_by = c.id FROM creators c \
         WHERE c.k = 1 + (abs(hashtext(u.username)) % 100) AND u.id <> c.id; \
         ANALYZE users; ANALYZE shares;"
    ))
    .await
    .unwrap();
}

/// Finding 14 (issue "Trust"): a user with no permissions made one listing cost 0.5–0.8 s on
/// 100 000 users with sixteen substring conditions, because the visibility sub-select defeated
/// every index. The listing of a non-admin now reads only the caller, its managed users and its
/// sharers, by primary key, whatever its filter and sort: the plan scans no part of `users`
/// sequentially.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_14_a_non_admin_listing_reads_only_what_it_may_see() {
    use tessera_domain::directory::{Sort, SortField, SortOrder, UserFilter};
    use tessera_domain::model::UserListQuery;
    use tessera_testkit::contract::{create, new_user};

    let db = TestDatabase::new().await;
    seed_users(&db.url, 20_000).await;
    let pool = PoolSettings::default().build(&db.url).unwrap();
    let store = PgStore::new(pool);
    let s = Stores::of(store.clone());
    let viewer = create(&s, new_user()).await;
    let filter =
        UserFilter::parse("email=@@,username=@user,createdBy=@user0,state==active").unwrap();
    for (managed, shared) in [(true, true), (true, false), (false, true)] {
        for sort in [
            None,
            Some(Sort {
                field: SortField::CreatedBy,
                order: SortOrder::Desc,
            }),
        ] {
            let query = UserListQuery {
                include_managed: managed,
                include_shared: shared,
                filter: filter.clone(),
                sort,
                ..UserListQuery::all(Some(viewer.id), 50)
            };
            let plan = store.explain_listing(&query).await.unwrap();
            assert!(
                !plan.contains("Seq Scan on users"),
                "a non-admin listing scans the directory:\n{plan}"
            );
            assert!(plan.contains("users_pkey"), "{plan}");
            // And it still answers: the viewer alone matches nothing of this filter.
            let page = s.users.list(query).await.unwrap();
            assert_eq!(page.total, 0);
        }
    }
}

/// Finding 14, the administrators' side: a directory statement cannot run past
/// `database.directory_statement_timeout_ms`; it fails with `Timeout` (HTTP 503
/// `query_timeout`) and frees its connection, which serves the next call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_14_directory_statements_stop_at_their_time_limit() {
    use tessera_domain::directory::{Sort, SortField, SortOrder, UserFilter};
    use tessera_domain::model::UserListQuery;
    use tessera_domain::ports::RepoError;

    let db = TestDatabase::new().await;
    seed_users(&db.url, 20_000).await;
    let pool = PoolSettings {
        max_size: 1,
        ..PoolSettings::default()
    }
    .build(&db.url)
    .unwrap();
    // A limit no statement over twenty thousand rows can meet.
    let store =
        PgStore::new(pool).with_directory_timeout(Some(std::time::Duration::from_millis(1)));
    let s = Stores::of(store.clone());
    let expensive = UserListQuery {
        filter: UserFilter::parse("createdBy=@user,email=@example").unwrap(),
        sort: Some(Sort {
            field: SortField::CreatedBy,
            order: SortOrder::Desc,
        }),
        ..UserListQuery::all(None, 50)
    };
    assert_eq!(
        s.users.list(expensive.clone()).await.unwrap_err(),
        RepoError::Timeout
    );
    assert_eq!(
        s.users.count(expensive).await.unwrap_err(),
        RepoError::Timeout
    );
    // The one connection is usable again, and other statements have no such limit.
    assert!(s.users.any_exists().await.unwrap());
    let unlimited = PgStore::new(store.pool().clone()).with_directory_timeout(None);
    let page = Stores::of(unlimited)
        .users
        .list(UserListQuery::all(None, 5))
        .await
        .unwrap();
    assert_eq!(page.total, 20_000);
}
