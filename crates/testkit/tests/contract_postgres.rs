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
