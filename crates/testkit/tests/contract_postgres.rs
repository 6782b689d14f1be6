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
