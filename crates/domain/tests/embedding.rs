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
