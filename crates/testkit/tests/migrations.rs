#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The SQL migrations themselves, applied one by one to an empty database: the wallets
//! migration backfills a default wallet for every existing user and is reversible.

use diesel::sql_types::{Bool, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use tessera_testkit::TestDatabase;

const MIGRATIONS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");

fn migration_sql(prefix: &str, file: &str) -> String {
    let mut dirs: Vec<_> = std::fs::read_dir(MIGRATIONS_DIR)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    assert_eq!(dirs.len(), 1, "one migration starting with {prefix}");
    std::fs::read_to_string(dirs.remove(0).join(file)).unwrap()
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Row {
    #[diesel(sql_type = Text)]
    username: String,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = Bool)]
    is_default: bool,
    #[diesel(sql_type = Bool)]
    allow_negative: bool,
}

async fn wallets(conn: &mut AsyncPgConnection) -> Vec<Row> {
    diesel::sql_query(
        "SELECT u.username, w.currency, w.is_default, w.allow_negative \
         FROM wallets w JOIN users u ON u.id = w.user_id \
         WHERE w.balance = 0 AND w.deleted_at IS NULL ORDER BY u.username",
    )
    .load(conn)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallets_migration_backfills_default_wallets_and_is_reversible() {
    let db = TestDatabase::empty().await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    conn.batch_execute(&migration_sql("2026-11-22-000001", "up.sql"))
        .await
        .unwrap();
    conn.batch_execute(
        "INSERT INTO users (id, username, invoicing) VALUES \
         (gen_random_uuid(), 'plain', false), (gen_random_uuid(), 'invoiced', true)",
    )
    .await
    .unwrap();

    let up = migration_sql("2026-11-23-000001", "up.sql");
    let down = migration_sql("2026-11-23-000001", "down.sql");
    conn.batch_execute(&up).await.unwrap();
    let expected = vec![
        Row {
            username: "invoiced".into(),
            currency: "usd".into(),
            is_default: true,
            allow_negative: true,
        },
        Row {
            username: "plain".into(),
            currency: "usd".into(),
            is_default: true,
            allow_negative: false,
        },
    ];
    assert_eq!(wallets(&mut conn).await, expected);

    // Down and up again: the same result, no duplicate defaults.
    conn.batch_execute(&down).await.unwrap();
    conn.batch_execute(&up).await.unwrap();
    assert_eq!(wallets(&mut conn).await, expected);

    // The database itself refuses an overdraft for a user without invoicing.
    let refused = conn
        .batch_execute(
            "UPDATE wallets SET balance = -1 \
             WHERE user_id = (SELECT id FROM users WHERE username = 'plain')",
        )
        .await;
    let message = refused.unwrap_err().to_string();
    assert!(
        message.contains("wallets_balance_non_negative"),
        "{message}"
    );
    drop(conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_migration_enforces_its_rules_and_is_reversible() {
    let db = TestDatabase::empty().await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    for prefix in [
        "2026-11-22-000001",
        "2026-11-22-000002",
        "2026-11-23-000001",
    ] {
        conn.batch_execute(&migration_sql(prefix, "up.sql"))
            .await
            .unwrap();
    }
    let up = migration_sql("2026-11-24-000001", "up.sql");
    let down = migration_sql("2026-11-24-000001", "down.sql");
    conn.batch_execute(&up).await.unwrap();
    conn.batch_execute(
        "INSERT INTO users (id, username) VALUES \
         ('00000000-0000-0000-0000-00000000000a', 'owner'), \
         ('00000000-0000-0000-0000-00000000000b', 'grantee')",
    )
    .await
    .unwrap();
    let insert = |owner: &str, grantee: &str, scopes: i32| {
        format!("INSERT INTO shares VALUES ('{owner}', '{grantee}', {scopes}, now(), now())")
    };
    let a = "00000000-0000-0000-0000-00000000000a";
    let b = "00000000-0000-0000-0000-00000000000b";
    conn.batch_execute(&insert(a, b, 1)).await.unwrap();
    for (sql, constraint) in [
        (insert(a, a, 1), "shares_not_self"),
        (insert(b, a, 0), "shares_scopes_check"),
        (insert(b, a, 64), "shares_scopes_check"),
        (insert(a, b, 2), "shares_pkey"),
    ] {
        let message = conn.batch_execute(&sql).await.unwrap_err().to_string();
        assert!(message.contains(constraint), "{sql}: {message}");
    }
    // Purging either user removes the share.
    conn.batch_execute(&format!("DELETE FROM users WHERE id = '{b}'"))
        .await
        .unwrap();
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let count: Count = diesel::sql_query("SELECT count(*) AS n FROM shares")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(count.n, 0);
    conn.batch_execute(&down).await.unwrap();
    conn.batch_execute(&up).await.unwrap();
    drop(conn);
}
