//! Wallets and the ledger over the canonical API, against real PostgreSQL: the endpoints,
//! concurrency across two server processes, idempotency, and bad input (each refused with a
//! clear 4xx and nothing changed, as read back).

use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Value};
use tessera_testkit::TestApp;

use crate::money::{
    adjust, adjust_raw, assert_ledger_matches, balance, json_of, ledger, member, storm_client,
    wallet,
};
use crate::support::{
    answer_as, create_user_typed, send_as, send_typed, typed, ApiUser, FieldError, Invalid,
    LedgerEntry, LedgerPage, Transfer, UserPage, Wallet, WalletList,
};

/// A user's `balances` holding only `usd`.
fn usd(balance: i64) -> BTreeMap<String, i64> {
    BTreeMap::from([("usd".to_owned(), balance)])
}

// ---------------------------------------------------------------------------------------------
// Endpoints

#[tokio::test]
async fn every_user_has_a_default_wallet_and_views_show_balances() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    let client = storm_client();

    let (status, me) =
        send_typed::<ApiUser>(app.get("/api/v1/users/me").bearer_auth(&alice.token)).await;
    assert_eq!(status, 200);
    assert_eq!(me.balances, usd(0));
    assert_eq!(me.wallet_count, 1);

    let (status, _) = adjust(&app, &client, &root, &alice.wallet, 12_500_000, None).await;
    assert_eq!(status, 201);
    let (_, me) =
        send_typed::<ApiUser>(app.get("/api/v1/users/me").bearer_auth(&alice.token)).await;
    assert_eq!(me.balances, usd(12_500_000));

    // The same in the admin's views of the user and of the directory.
    let (_, seen) = send_typed::<ApiUser>(
        app.get(&format!("/api/v1/users/{}", alice.id))
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(seen.balances, usd(12_500_000));
    let (_, list) = send_typed::<UserPage>(app.get("/api/v1/users").bearer_auth(&root)).await;
    let row = list.data.iter().find(|u| u.id == alice.id).unwrap();
    assert_eq!(row.balances, usd(12_500_000));
    assert_eq!(row.wallet_count, 1);

    // Managed users get one too.
    let managed: ApiUser = send_as(
        app.post("/api/v1/users")
            .bearer_auth(&alice.token)
            .json(&json!({"first_name": "Kid"})),
        201,
    )
    .await;
    assert_eq!(managed.balances, usd(0));
    assert_eq!(managed.wallet_count, 1);
}

#[tokio::test]
async fn wallets_are_created_read_deleted_and_restored() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    let bob = member(&app, "bob").await;
    let client = storm_client();

    let sats: Wallet = send_as(
        app.post(&format!("/api/v1/users/{}/wallets", alice.id))
            .bearer_auth(&alice.token)
            .json(&json!({"name": "Lightning", "currency": "SAT"})),
        201,
    )
    .await;
    assert_eq!(sats.currency, "sat");
    assert!(sats.is_default);
    assert_eq!(sats.balance, 0);
    let sats_id = sats.id;

    // By username too; strangers see nothing.
    let (status, list) = send_typed::<WalletList>(
        app.get("/api/v1/users/alice/wallets")
            .bearer_auth(&alice.token),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list.data.len(), 2);
    for path in [
        format!("/api/v1/users/{}/wallets", alice.id),
        format!("/api/v1/wallets/{sats_id}"),
        format!("/api/v1/wallets/{sats_id}/ledger"),
    ] {
        let (status, body) =
            json_of(app.get(&path).bearer_auth(&bob.token).send().await.unwrap()).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = json_of(
        app.post(&format!("/api/v1/users/{}/wallets", alice.id))
            .bearer_auth(&bob.token)
            .json(&json!({"name": "Mine now", "currency": "usd"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);

    adjust(&app, &client, &root, &sats_id, 5_000, None).await;
    let (status, _) = json_of(
        app.delete(&format!("/api/v1/wallets/{sats_id}"))
            .bearer_auth(&bob.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    let response = app
        .delete(&format!("/api/v1/wallets/{sats_id}"))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let gone = wallet(&app, &alice.token, &sats_id).await;
    assert!(gone.deleted_at.is_some());
    assert_eq!(gone.balance, 5_000);
    let (_, list) = send_typed::<WalletList>(
        app.get(&format!("/api/v1/users/{}/wallets", alice.id))
            .bearer_auth(&alice.token),
    )
    .await;
    assert_eq!(list.data.len(), 1);
    let (_, all) = send_typed::<WalletList>(
        app.get(&format!(
            "/api/v1/users/{}/wallets?include_deleted=true",
            alice.id
        ))
        .bearer_auth(&alice.token),
    )
    .await;
    assert_eq!(all.data.len(), 2);

    let restored: Wallet = send_as(
        app.post(&format!("/api/v1/wallets/{sats_id}/restore"))
            .bearer_auth(&alice.token),
        200,
    )
    .await;
    assert!(restored.deleted_at.is_none());
    assert_eq!(restored.balance, 5_000);
    let (status, body) = json_of(
        app.post(&format!("/api/v1/wallets/{sats_id}/restore"))
            .bearer_auth(&alice.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "invalid_state");
}

#[tokio::test]
async fn adjustments_need_billing_admin_and_refuse_overdrafts() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    let bob = member(&app, "bob").await;
    let client = storm_client();

    let (status, body) = adjust(&app, &client, &alice.token, &alice.wallet, 100, None).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = adjust(&app, &client, &bob.token, &alice.wallet, 100, None).await;
    assert_eq!(status, 404);

    let entry: LedgerEntry = answer_as(
        adjust(&app, &client, &root, &alice.wallet, 100, None).await,
        201,
    );
    assert_eq!(entry.amount, 100);
    assert_eq!(entry.balance_after, 100);
    assert_eq!(entry.kind, "adjustment");
    assert_eq!(entry.wallet_id, alice.wallet);
    assert_eq!(entry.reason, "adjust 100");
    assert!(entry.actor_id.is_some());

    let (status, body) = adjust(&app, &client, &root, &alice.wallet, -101, None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "insufficient_funds");
    assert_eq!(balance(&app, &alice.token, &alice.wallet).await, 100);

    // An administrator without superuser is a billing administrator too.
    let admin = create_user_typed(
        &app,
        &root,
        json!({"username": "ops", "password": "ops-password", "is_admin": true}),
    )
    .await;
    assert!(admin.is_admin);
    let ops = app.token("ops", "ops-password").await;
    let (status, _) = adjust(&app, &client, &ops, &alice.wallet, -100, None).await;
    assert_eq!(status, 201);
    assert_eq!(
        assert_ledger_matches(&app, &alice.token, &alice.wallet)
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn transfers_move_money_between_wallets_of_one_currency() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    let bob = member(&app, "bob").await;
    let client = storm_client();
    adjust(&app, &client, &root, &alice.wallet, 1_000, None).await;

    let send = |token: String, body: Value| {
        let request = app.post("/api/v1/transfers").bearer_auth(token).json(&body);
        async move { json_of(request.send().await.unwrap()).await }
    };
    let body = |from: &str, to: &str, amount: i64| json!({"from_wallet": from, "to_wallet": to, "amount": amount, "reason": "rent"});

    let (status, answer) = send(alice.token.clone(), body(&alice.wallet, &bob.wallet, 300)).await;
    assert_eq!(status, 201, "{answer}");
    let t: Transfer = typed(&answer);
    assert_eq!(t.amount, 300);
    assert_eq!(t.from_wallet, alice.wallet);
    assert_eq!(t.to_wallet, bob.wallet);
    assert_eq!(t.debit.amount, -300);
    assert_eq!(t.debit.balance_after, 700);
    assert_eq!(t.debit.kind, "transfer_out");
    assert_eq!(t.debit.transfer_id.as_ref(), Some(&t.transfer_id));
    // Alice may not read Bob's wallet: she sees her side only, not his balance.
    assert!(answer.get("credit").is_none(), "{answer}");
    // Bob's ledger shows the credit.
    let (_, ledger) = send_typed::<LedgerPage>(
        app.get(&format!("/api/v1/wallets/{}/ledger", bob.wallet))
            .bearer_auth(&bob.token),
    )
    .await;
    let credit = &ledger.data[0];
    assert_eq!(credit.amount, 300);
    assert_eq!(credit.kind, "transfer_in");
    assert_eq!(credit.transfer_id.as_ref(), Some(&t.transfer_id));

    // Not from someone else's wallet; not to the same wallet; not across currencies; not
    // more than there is; never zero or negative.
    let (status, _) = send(bob.token.clone(), body(&alice.wallet, &bob.wallet, 1)).await;
    assert_eq!(status, 404);
    let (status, b) = send(alice.token.clone(), body(&alice.wallet, &alice.wallet, 1)).await;
    assert_eq!(status, 422, "{b}");
    let (_, sats) = send_typed::<Wallet>(
        app.post(&format!("/api/v1/users/{}/wallets", bob.id))
            .bearer_auth(&bob.token)
            .json(&json!({"name": "sats", "currency": "sat"})),
    )
    .await;
    // Bob's sats wallet holds another currency, but Alice may not read it: the same 404 as
    // for a wallet that does not exist. Bob, who may, learns why.
    let (status, b) = send(alice.token.clone(), body(&alice.wallet, &sats.id, 1)).await;
    assert_eq!(status, 404, "{b}");
    let (status, b) = send(bob.token.clone(), body(&bob.wallet, &sats.id, 1)).await;
    assert_eq!(status, 422, "{b}");
    let (status, b) = send(alice.token.clone(), body(&alice.wallet, &bob.wallet, 701)).await;
    assert_eq!(status, 409, "{b}");
    assert_eq!(b["code"], "insufficient_funds");
    for amount in [0, -5] {
        let (status, b) = send(
            alice.token.clone(),
            body(&alice.wallet, &bob.wallet, amount),
        )
        .await;
        assert_eq!(status, 422, "{b}");
    }
    // A billing administrator may move anyone's money.
    let (status, _) = send(root.clone(), body(&bob.wallet, &alice.wallet, 100)).await;
    assert_eq!(status, 201);

    assert_eq!(balance(&app, &alice.token, &alice.wallet).await, 800);
    assert_eq!(balance(&app, &bob.token, &bob.wallet).await, 200);
    assert_ledger_matches(&app, &alice.token, &alice.wallet).await;
    assert_ledger_matches(&app, &bob.token, &bob.wallet).await;
}

#[tokio::test]
async fn ledger_is_newest_first_with_cursor_pagination() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    let client = storm_client();
    for amount in 1..=7 {
        let (status, _) = adjust(&app, &client, &root, &alice.wallet, amount, None).await;
        assert_eq!(status, 201);
    }
    let mut seen: Vec<i64> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/wallets/{}/ledger?limit=3&cursor={c}", alice.wallet),
            None => format!("/api/v1/wallets/{}/ledger?limit=3", alice.wallet),
        };
        let page: LedgerPage = send_as(app.get(&path).bearer_auth(&alice.token), 200).await;
        pages += 1;
        seen.extend(page.data.iter().map(|e| e.amount));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, vec![7, 6, 5, 4, 3, 2, 1]);

    for bad in ["limit=0", "limit=501", "limit=x", "cursor=nonsense"] {
        let (status, body) = json_of(
            app.get(&format!("/api/v1/wallets/{}/ledger?{bad}", alice.wallet))
                .bearer_auth(&alice.token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 422, "{bad}: {body}");
        let invalid: Invalid = typed(&body);
        assert_eq!(invalid.detail[0].loc[0], "query", "{body}");
    }
}

// ---------------------------------------------------------------------------------------------
// Concurrency

/// 200 concurrent adjustments, credits and debits, on one wallet, half through each of two
/// server processes on one database: the balance is exactly the sum of the accepted ones, the
/// ledger holds exactly them, every refusal is 409 `insufficient_funds`, and no entry ever saw
/// the balance below zero.
#[tokio::test]
async fn concurrent_adjustments_across_two_servers_are_exact() {
    let app = TestApp::spawn().await;
    let sibling = app.spawn_sibling().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    let client = storm_client();
    let (status, first) = adjust(&app, &client, &root, &alice.wallet, 1_000, None).await;
    assert_eq!(status, 201);
    let first: LedgerEntry = typed(&first);

    let apps = [&app, &sibling];
    let requests = (0..200i64).map(|i| {
        let amount = if i % 4 == 0 { 300 } else { -(100 + i % 50) };
        let (target, client, root, wallet) =
            (apps[(i % 2) as usize], &client, &root, &alice.wallet);
        async move {
            (
                amount,
                adjust(target, client, root, wallet, amount, None).await,
            )
        }
    });
    let results = futures::future::join_all(requests).await;

    let mut accepted_ids: HashSet<String> = HashSet::from([first.id]);
    let mut accepted_sum = 1_000i64;
    let mut refused = 0;
    for (amount, (status, body)) in results {
        match status {
            201 => {
                let entry: LedgerEntry = typed(&body);
                assert_eq!(entry.amount, amount);
                accepted_sum += amount;
                accepted_ids.insert(entry.id);
            }
            409 => {
                assert!(amount < 0, "a credit was refused: {body}");
                assert_eq!(body["code"], "insufficient_funds", "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(refused > 0, "the storm never ran out of money");
    assert!(accepted_ids.len() > 60, "too few debits got through");

    let entries = assert_ledger_matches(&sibling, &root, &alice.wallet).await;
    assert_eq!(balance(&app, &root, &alice.wallet).await, accepted_sum);
    let ledger_ids: HashSet<String> = entries.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ledger_ids, accepted_ids);
    assert_eq!(entries.len(), accepted_ids.len());
    for e in &entries {
        assert!(e.balance_after >= 0, "{e:?}");
    }
}

/// 50 concurrent replays of one request under one `Idempotency-Key`, through two servers:
/// exactly one entry, and every caller gets the same answer.
#[tokio::test]
async fn concurrent_idempotent_replays_create_one_entry() {
    let app = TestApp::spawn().await;
    let sibling = app.spawn_sibling().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    let client = storm_client();
    let apps = [&app, &sibling];
    let requests = (0..50usize).map(|i| {
        let (target, client, root, wallet) = (apps[i % 2], &client, &root, &alice.wallet);
        async move { adjust(target, client, root, wallet, 2_500, Some("invoice-42")).await }
    });
    let results = futures::future::join_all(requests).await;
    let (status, first) = &results[0];
    assert_eq!(*status, 201, "{first}");
    for (status, body) in &results {
        assert_eq!(*status, 201, "{body}");
        assert_eq!(body, first);
    }
    assert_eq!(first["idempotency_key"], "invoice-42");
    assert_eq!(balance(&app, &root, &alice.wallet).await, 2_500);
    assert_eq!(
        assert_ledger_matches(&app, &root, &alice.wallet)
            .await
            .len(),
        1
    );

    // A replay after the storm is marked as one.
    let response = client
        .post(app.url(&format!("/api/v1/wallets/{}/adjustments", alice.wallet)))
        .bearer_auth(&root)
        .header("Idempotency-Key", "invoice-42")
        .json(&json!({"amount": 2_500, "reason": "adjust 2500"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(
        response
            .headers()
            .get("Idempotent-Replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(&body, first);
}

/// 100 concurrent transfers back and forth between two wallets, through two servers: the
/// total is conserved, both ledgers match their balances, and nothing deadlocks.
#[tokio::test]
async fn concurrent_transfers_conserve_the_total() {
    let app = TestApp::spawn().await;
    let sibling = app.spawn_sibling().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    let bob = member(&app, "bob").await;
    let client = storm_client();
    adjust(&app, &client, &root, &alice.wallet, 500, None).await;
    adjust(&app, &client, &root, &bob.wallet, 500, None).await;

    let apps = [&app, &sibling];
    let requests = (0..100i64).map(|i| {
        let (from, to) = if i % 2 == 0 {
            (&alice.wallet, &bob.wallet)
        } else {
            (&bob.wallet, &alice.wallet)
        };
        let request = client
            .post(apps[(i % 2) as usize].url("/api/v1/transfers"))
            .bearer_auth(&root)
            .json(&json!({"from_wallet": from, "to_wallet": to, "amount": 10 + i % 40, "reason": "ping-pong"}));
        async move { json_of(request.send().await.unwrap()).await }
    });
    let mut moved = 0;
    for (status, body) in futures::future::join_all(requests).await {
        match status {
            201 => moved += 1,
            409 => assert_eq!(body["code"], "insufficient_funds", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(moved > 50, "only {moved} transfers went through");
    let a = balance(&app, &root, &alice.wallet).await;
    let b = balance(&app, &root, &bob.wallet).await;
    assert_eq!(a + b, 1_000);
    assert!(a >= 0 && b >= 0);
    let ea = assert_ledger_matches(&app, &root, &alice.wallet).await;
    let eb = assert_ledger_matches(&sibling, &root, &bob.wallet).await;
    // Every transfer left exactly one entry on each side.
    let transfers =
        |entries: &[LedgerEntry]| entries.iter().filter(|e| e.transfer_id.is_some()).count();
    assert_eq!(transfers(&ea), moved);
    assert_eq!(transfers(&eb), moved);
}

// ---------------------------------------------------------------------------------------------
// Bad input: a clear 4xx, and nothing changed.

/// A wallet with 500 in it and one entry, for the bad-input cases.
async fn funded(app: &TestApp) -> (String, String) {
    let root = app.admin_token().await;
    let alice = crate::money::member(app, "alice").await;
    let (status, _) = adjust(app, &storm_client(), &root, &alice.wallet, 500, None).await;
    assert_eq!(status, 201);
    (root, alice.wallet)
}

async fn assert_unchanged(app: &TestApp, token: &str, wallet: &str) {
    assert_eq!(balance(app, token, wallet).await, 500);
    assert_eq!(ledger(app, token, wallet).await.len(), 1);
}

fn assert_422_on(body: &Value, loc: &[&str]) {
    let first: FieldError = typed(&body["detail"][0]);
    assert_eq!(first.loc, loc, "{body}");
}

#[tokio::test]
async fn amount_zero_is_rejected() {
    let app = TestApp::spawn().await;
    let (root, w) = funded(&app).await;
    let (status, body) = adjust_raw(&app, &root, &w, r#"{"amount": 0, "reason": "nothing"}"#).await;
    assert_eq!(status, 422, "{body}");
    assert_422_on(&body, &["body", "amount"]);
    assert_unchanged(&app, &root, &w).await;
}

#[tokio::test]
async fn non_integer_amount_is_rejected() {
    let app = TestApp::spawn().await;
    let (root, w) = funded(&app).await;
    for raw in [
        r#"{"amount": 1.5, "reason": "half"}"#,
        r#"{"amount": "10", "reason": "text"}"#,
        r#"{"amount": 10.0, "reason": "float"}"#,
    ] {
        let (status, body) = adjust_raw(&app, &root, &w, raw).await;
        assert_eq!(status, 422, "{raw}: {body}");
        assert_422_on(&body, &["body", "amount"]);
    }
    assert_unchanged(&app, &root, &w).await;
}

#[tokio::test]
async fn amount_beyond_i64_is_rejected() {
    let app = TestApp::spawn().await;
    let (root, w) = funded(&app).await;
    for raw in [
        r#"{"amount": 9223372036854775808, "reason": "too much"}"#,
        r#"{"amount": -9223372036854775809, "reason": "too little"}"#,
        r#"{"amount": 1e30, "reason": "way too much"}"#,
    ] {
        let (status, body) = adjust_raw(&app, &root, &w, raw).await;
        assert_eq!(status, 422, "{raw}: {body}");
        assert_422_on(&body, &["body", "amount"]);
    }
    // In range, but the balance would leave i64.
    let (status, body) = adjust_raw(
        &app,
        &root,
        &w,
        r#"{"amount": 9223372036854775807, "reason": "overflow"}"#,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_422_on(&body, &["body", "amount"]);
    assert_unchanged(&app, &root, &w).await;
}

#[tokio::test]
async fn unknown_currency_is_rejected() {
    let app = TestApp::spawn().await;
    let alice = member(&app, "alice").await;
    for currency in ["eur", "", "u$d"] {
        let (status, body) = json_of(
            app.post(&format!("/api/v1/users/{}/wallets", alice.id))
                .bearer_auth(&alice.token)
                .json(&json!({"name": "Euro", "currency": currency}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 422, "{currency}: {body}");
        assert_422_on(&body, &["body", "currency"]);
    }
    let (_, list) = send_typed::<WalletList>(
        app.get(&format!(
            "/api/v1/users/{}/wallets?include_deleted=true",
            alice.id
        ))
        .bearer_auth(&alice.token),
    )
    .await;
    assert_eq!(list.data.len(), 1);
}

#[tokio::test]
async fn unknown_or_deleted_wallet_is_refused() {
    let app = TestApp::spawn().await;
    let (root, w) = funded(&app).await;
    let client = storm_client();
    let unknown = uuid::Uuid::now_v7().to_string();
    for target in [unknown.as_str(), "not-a-uuid"] {
        let (status, body) = adjust(&app, &client, &root, target, 5, None).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["detail"], "Wallet not found");
    }
    let (status, body) = json_of(
        app.post("/api/v1/transfers")
            .bearer_auth(&root)
            .json(&json!({"from_wallet": w, "to_wallet": unknown, "amount": 5, "reason": "void"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    let response = app
        .delete(&format!("/api/v1/wallets/{w}"))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    for amount in [5, -5] {
        let (status, body) = adjust(&app, &client, &root, &w, amount, None).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["code"], "wallet_deleted");
    }
    assert_unchanged(&app, &root, &w).await;
}

#[tokio::test]
async fn reason_longer_than_the_bound_is_rejected() {
    let app = TestApp::spawn().await;
    let (root, w) = funded(&app).await;
    for reason in ["x".repeat(501), "   ".to_owned(), "line\nbreak".to_owned()] {
        let body = json!({"amount": 5, "reason": reason}).to_string();
        let (status, body) = adjust_raw(&app, &root, &w, &body).await;
        assert_eq!(status, 422, "{body}");
        assert_422_on(&body, &["body", "reason"]);
    }
    // 500 characters is fine.
    let body = json!({"amount": 5, "reason": "é".repeat(500)}).to_string();
    let (status, _) = adjust_raw(&app, &root, &w, &body).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn idempotency_key_longer_than_the_bound_is_rejected() {
    let app = TestApp::spawn().await;
    let (root, w) = funded(&app).await;
    let client = storm_client();
    let long = "k".repeat(256);
    for key in [long.as_str(), "", "tab\there"] {
        let (status, body) = adjust(&app, &client, &root, &w, 5, Some(key)).await;
        assert_eq!(status, 422, "{key:?}: {body}");
        assert_422_on(&body, &["header", "Idempotency-Key"]);
    }
    assert_unchanged(&app, &root, &w).await;
    let ok = "k".repeat(255);
    let (status, _) = adjust(&app, &client, &root, &w, 5, Some(&ok)).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn idempotency_key_reused_for_another_request_conflicts() {
    let app = TestApp::spawn().await;
    let (root, w) = funded(&app).await;
    let client = storm_client();
    let (status, _) = adjust(&app, &client, &root, &w, 5, Some("once")).await;
    assert_eq!(status, 201);
    let (status, body) = adjust(&app, &client, &root, &w, 6, Some("once")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "idempotency_mismatch");
    assert_eq!(balance(&app, &root, &w).await, 505);
    assert_eq!(ledger(&app, &root, &w).await.len(), 2);
}
