#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The storage contract, run against the PostgreSQL adapter on a fresh database per case.

use std::sync::Arc;

use tessera_postgres::{PgStore, PoolSettings};
use tessera_testkit::contract::Stores;
use tessera_testkit::TestDatabase;

/// The stores keep the database alive: it is dropped when the last clone goes.
async fn postgres_stores() -> (Stores, TestDatabase) {
    let db = TestDatabase::new().await;
    let pool = PoolSettings::default()
        .build(&db.url)
        .expect("pool for the test database");
    let store = PgStore::new(pool);
    (
        Stores {
            users: Arc::new(store.clone()),
            sessions: Arc::new(store.clone()),
            wallets: Arc::new(store),
        },
        db,
    )
}

tessera_testkit::contract_tests!(postgres_stores());
