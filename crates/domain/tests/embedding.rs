//! Runs the embedding example (`examples/embedded.rs`) as a test.

#[allow(dead_code)]
#[path = "../examples/embedded.rs"]
mod embedded;

#[tokio::test]
async fn the_embedding_example_registers_a_user_and_credits_her_exactly_once() {
    let summary = match embedded::run().await {
        Ok(summary) => summary,
        Err(e) => panic!("the example failed: {e}"),
    };
    assert_eq!(summary.username, "alice");
    // 12.5 credited once, then one call from the quota and one charged 0.5.
    assert_eq!(summary.balance_minor, 12_000_000);
    assert_eq!(summary.balance, "12");
    assert_eq!(summary.ledger_entries, 2);
    assert_eq!(summary.sources, ["quota", "balance"]);
}

/// The login throttle and the business counters are the domain's: a program embedding it gets
/// the same protection and the same counts as the HTTP server, with no HTTP in sight.
#[tokio::test]
async fn an_embedded_login_is_throttled_and_counted_as_over_http() {
    use tessera_domain::{AuthError, Failure, TesseraConfig};

    let mut config = TesseraConfig::default();
    config.limits.login.per_account = 3;
    let tessera = match embedded::build(config) {
        Ok(t) => t,
        Err(e) => panic!("building tessera: {e}"),
    };
    let created = tessera
        .users
        .create_superuser("owner", None, Some("the owner's password"))
        .await;
    assert!(created.is_ok(), "{created:?}");

    for _ in 0..3 {
        let wrong = tessera.auth.login("owner", "a guess", "203.0.113.9").await;
        assert!(
            matches!(wrong, Err(AuthError::InvalidCredentials)),
            "{wrong:?}"
        );
    }
    // The guessing address is held back, even with the right password ...
    let held = tessera
        .auth
        .login("owner", "the owner's password", "203.0.113.9")
        .await;
    assert!(
        matches!(held, Err(AuthError::Failure(Failure::Throttled { .. }))),
        "{held:?}"
    );
    // ... the owner at another address is not.
    let owner = tessera
        .auth
        .login("owner", "the owner's password", "198.51.100.4")
        .await;
    assert!(owner.is_ok(), "{owner:?}");

    let counted = tessera.counters();
    assert_eq!((counted.logins_failed, counted.logins_succeeded), (3, 1));
}
