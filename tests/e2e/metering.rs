//! Metering over HTTP against PostgreSQL: quotas, discounts, the consumption decision and its
//! exactness under concurrency across two servers, usage history, invoicing, the Chutes billing
//! routes, and bad input that changes nothing.

use std::collections::HashMap;

use reqwest::Client;
use serde_json::{json, Value};
use tessera_testkit::TestApp;

use crate::money::{assert_ledger_matches, balance, json_of, member, storm_client, Member};
use crate::support::{metrics_text, send, LedgerEntry};

const CHUTE: &str = "0191f1a2-0000-7000-8000-00000000c0de";
const OTHER_CHUTE: &str = "0191f1a2-0000-7000-8000-00000000beef";

async fn put(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    send(app.put(path).bearer_auth(token).json(&body)).await
}

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    send(app.get(path).bearer_auth(token)).await
}

async fn credit(app: &TestApp, token: &str, wallet: &str, amount: i64) {
    let (status, body) = send(
        app.post(&format!("/api/v1/wallets/{wallet}/adjustments"))
            .bearer_auth(token)
            .json(&json!({"amount": amount, "reason": "top-up"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

async fn consume_on(
    app: &TestApp,
    client: &Client,
    token: &str,
    body: &Value,
    key: Option<&str>,
) -> (u16, Value) {
    let mut request = client
        .post(app.url("/api/v1/usage"))
        .bearer_auth(token)
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    json_of(request.send().await.expect("usage request")).await
}

async fn consume(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    consume_on(app, &app.client, token, &body, None).await
}

fn call(user: &str, cost: i64) -> Value {
    json!({"user_id": user, "resource_id": CHUTE, "count": 1, "cost": cost,
           "input_tokens": 10, "output_tokens": 20})
}

/// Sum of `count` over every usage bucket of the user.
async fn usage_count(app: &TestApp, token: &str, user: &str) -> i64 {
    let (status, body) = get(app, token, &format!("/api/v1/users/{user}/usage?limit=500")).await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["count"].as_i64().expect("count"))
        .sum()
}

async fn setup(app: &TestApp) -> (String, Member) {
    let root = app.admin_token().await;
    let alice = member(app, "alice").await;
    (root, alice)
}

/// The decision of the issue: quota first, then the (discounted, rounded-up) balance, then
/// 402 with the reset time and nothing changed.
#[tokio::test]
async fn quota_then_balance_then_402() {
    let app = TestApp::spawn().await;
    let (root, alice) = setup(&app).await;
    let (status, body) = put(
        &app,
        &root,
        &format!("/api/v1/users/{}/quotas", alice.id),
        json!({"*": 2}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["quotas"], json!({"*": 2}));
    let (status, body) = put(
        &app,
        &root,
        &format!("/api/v1/users/{}/discounts", alice.id),
        json!({CHUTE: 0.1}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["discounts"], json!({CHUTE: 0.1}));
    credit(&app, &root, &alice.wallet, 10).await;

    for used in 1..=2 {
        let (status, body) = consume(&app, &root, call(&alice.id, 7)).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["source"], "quota");
        assert_eq!(body["amount_charged"], 0);
        assert_eq!(body["quota"]["quota"], 2);
        assert_eq!(body["quota"]["used"], used);
    }
    // 7 × 0.9 = 6.3 → 7 (rounded in the platform's favour).
    let (status, body) = consume(&app, &root, call(&alice.id, 7)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["source"], "balance");
    assert_eq!(body["amount_charged"], 7);
    assert_eq!(body["balance_after"], 3);
    assert_eq!(body["quota"]["remaining"], 0);
    let (status, body) = consume(&app, &root, call(&alice.id, 7)).await;
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["code"], "quota_exceeded");
    let reset = body["detail"]["quota_reset_timestamp"].as_str().unwrap();
    assert!(reset.ends_with("T00:00:00Z"), "{reset}");
    assert!(body["detail"]["message"]
        .as_str()
        .unwrap()
        .contains("Quota"));
    assert_eq!(balance(&app, &root, &alice.wallet).await, 3);
    let entries = assert_ledger_matches(&app, &root, &alice.wallet).await;
    assert_eq!(entries[0].kind, "usage");
    assert_eq!(entries[0].amount, -7);
    assert_eq!(usage_count(&app, &root, &alice.id).await, 3);

    // The day on that resource, read by the user.
    let (status, body) = get(
        &app,
        &alice.token,
        &format!("/api/v1/users/{}/quota-usage/{CHUTE}", alice.id),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["quota"], 2);
    assert_eq!(body["used"], 2);
    assert_eq!(body["remaining"], 0);
    assert_eq!(body["resets_at"].as_str(), Some(reset));

    let text = metrics_text(&app).await;
    assert!(text.contains(r#"tessera_metering_decisions_total{source="quota"} 2"#));
    assert!(text.contains(r#"tessera_metering_decisions_total{source="refused"} 1"#));
}

/// A per-resource quota row gets its own counter; the wildcard counter is shared.
#[tokio::test]
async fn per_resource_quotas_have_their_own_counter() {
    let app = TestApp::spawn().await;
    let (root, alice) = setup(&app).await;
    put(
        &app,
        &root,
        &format!("/api/v1/users/{}/quotas", alice.id),
        json!({"*": 1, CHUTE: 1}),
    )
    .await;
    let on = |r: &str| json!({"user_id": alice.id, "resource_id": r, "cost": 5});
    assert_eq!(consume(&app, &root, on(CHUTE)).await.1["source"], "quota");
    assert_eq!(
        consume(&app, &root, on(OTHER_CHUTE)).await.1["source"],
        "quota"
    );
    // Both counters are used up and there is no money.
    assert_eq!(consume(&app, &root, on(CHUTE)).await.0, 402);
    assert_eq!(consume(&app, &root, on("*")).await.0, 402);
    let (_, body) = get(
        &app,
        &alice.token,
        &format!("/api/v1/users/{}/quota-usage/*", alice.id),
    )
    .await;
    assert_eq!(body["used"], 1);
}

/// Free accounts are never charged nor refused; invoiced users go negative and can be turned
/// back only once they are not.
#[tokio::test]
async fn free_and_invoiced_users() {
    let app = TestApp::spawn().await;
    let (root, alice) = setup(&app).await;
    let bob = member(&app, "bob").await;
    let (status, body) = send(
        app.patch(&format!("/api/v1/users/{}", alice.id))
            .bearer_auth(&root)
            .json(&json!({"permissions": 16})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = consume(&app, &root, call(&alice.id, 1_000)).await;
    assert_eq!((status, &body["source"]), (201, &json!("free")), "{body}");
    assert_eq!(body["quota"]["quota"], "unlimited");
    assert_eq!(balance(&app, &root, &alice.wallet).await, 0);

    let (status, body) = put(
        &app,
        &root,
        &format!("/api/v1/users/{}/invoicing", bob.id),
        json!({"enabled": true, "unlimited": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"user_id": bob.id, "invoicing": true, "unlimited": true})
    );
    let (status, body) = consume(&app, &root, call(&bob.id, 1_000)).await;
    assert_eq!(
        (status, &body["source"]),
        (201, &json!("invoice")),
        "{body}"
    );
    assert_eq!(body["balance_after"], -1_000);
    let (status, body) = get(
        &app,
        &bob.token,
        &format!("/api/v1/users/{}/quota-usage/{CHUTE}", bob.id),
    )
    .await;
    assert_eq!((status, &body["quota"]), (200, &json!("unlimited")));
    let (status, body) = put(
        &app,
        &root,
        &format!("/api/v1/users/{}/invoicing", bob.id),
        json!({"enabled": false}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "negative_balance");
    credit(&app, &root, &bob.wallet, 1_000).await;
    let (status, body) = put(
        &app,
        &root,
        &format!("/api/v1/users/{}/invoicing", bob.id),
        json!({"enabled": false}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(
        &app,
        &root,
        &format!(
            "/api/v1/audit?target_id={}&action=user.invoicing_changed",
            bob.id
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(2), "{body}");
}

/// Who may do what: billing administrators write and meter; users read their own; strangers
/// get 404.
#[tokio::test]
async fn metering_access_model() {
    let app = TestApp::spawn().await;
    let (root, alice) = setup(&app).await;
    let mallory = member(&app, "mallory").await;
    let quotas = format!("/api/v1/users/{}/quotas", alice.id);
    assert_eq!(get(&app, &alice.token, &quotas).await.0, 200);
    assert_eq!(get(&app, &mallory.token, &quotas).await.0, 404);
    let (status, body) = put(&app, &alice.token, &quotas, json!({"*": 100})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["detail"],
        "This action can only be performed by billing admin accounts."
    );
    assert_eq!(put(&app, &mallory.token, &quotas, json!({})).await.0, 404);
    let (status, _) = consume(&app, &alice.token, call(&alice.id, 1)).await;
    assert_eq!(status, 403);
    for path in ["usage", "discounts", "quota-usage/*"] {
        let path = format!("/api/v1/users/{}/{path}", alice.id);
        assert_eq!(get(&app, &mallory.token, &path).await.0, 404, "{path}");
        assert_eq!(get(&app, &alice.token, &path).await.0, 200, "{path}");
    }
    let (status, _) = get(&app, &root, &quotas).await;
    assert_eq!(status, 200);
}

async fn quotas_of(app: &TestApp, root: &str, user: &str) -> Value {
    get(app, root, &format!("/api/v1/users/{user}/quotas"))
        .await
        .1["quotas"]
        .clone()
}

/// Every kind of bad input is refused with the failing field and changes nothing.
#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (root, alice) = setup(&app).await;
    let quotas = format!("/api/v1/users/{}/quotas", alice.id);
    let discounts = format!("/api/v1/users/{}/discounts", alice.id);
    put(&app, &root, &quotas, json!({"*": 5})).await;
    credit(&app, &root, &alice.wallet, 100).await;

    for (body, field) in [
        (json!({"*": 1.5}), "*"),
        (json!({"*": true}), "*"),
        (json!({"*": -1}), "quotas.*"),
        (json!({"*": 9_223_372_036_854_775_808u64}), "*"),
        (json!({"*": 1_000_000_000_001i64}), "quotas.*"),
        (json!({"not-a-uuid": 1}), "quotas.not-a-uuid"),
    ] {
        let (status, resp) = put(&app, &root, &quotas, body.clone()).await;
        assert_eq!(status, 422, "{body}: {resp}");
        let loc = resp["detail"][0]["loc"].as_array().unwrap();
        let loc: Vec<&str> = loc.iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(loc[1..].join("."), field, "{body}: {resp}");
    }
    let too_many: serde_json::Map<String, Value> = (0..1001)
        .map(|i| (format!("0191f1a2-0000-7000-8000-{i:012}"), json!(1)))
        .collect();
    assert_eq!(
        put(&app, &root, &quotas, Value::Object(too_many)).await.0,
        422
    );
    assert_eq!(quotas_of(&app, &root, &alice.id).await, json!({"*": 5}));

    for d in [
        json!(0),
        json!(1),
        json!(1.5),
        json!(0.0),
        json!(-0.2),
        json!(0.0000001),
        json!("x"),
    ] {
        let (status, resp) = put(&app, &root, &discounts, json!({"*": d})).await;
        assert_eq!(status, 422, "{d}: {resp}");
    }
    assert_eq!(get(&app, &root, &discounts).await.1["discounts"], json!({}));

    let unknown = "0191f1a2-0000-7000-8000-000000000000";
    for (body, status, field) in [
        (
            json!({"user_id": alice.id, "resource_id": CHUTE, "count": -1, "cost": 1}),
            422,
            "count",
        ),
        (
            json!({"user_id": alice.id, "resource_id": CHUTE, "count": 0, "cost": 1}),
            422,
            "count",
        ),
        (
            json!({"user_id": alice.id, "resource_id": CHUTE, "cost": -1}),
            422,
            "cost",
        ),
        (
            json!({"user_id": alice.id, "resource_id": "chute-1", "cost": 1}),
            422,
            "resource_id",
        ),
        (
            json!({"user_id": alice.id, "resource_id": CHUTE, "cost": 1.5}),
            422,
            "cost",
        ),
        (
            json!({"user_id": alice.id, "resource_id": CHUTE, "cost": 1_000_000_000_001i64}),
            422,
            "cost",
        ),
        (
            json!({"user_id": alice.id, "resource_id": CHUTE, "count": 1_000_001, "cost": 1}),
            422,
            "count",
        ),
        (
            json!({"user_id": alice.id, "resource_id": CHUTE, "cost": 1, "input_tokens": -5}),
            422,
            "input_tokens",
        ),
        (
            json!({"user_id": alice.id, "resource_id": CHUTE, "cost": 1, "output_tokens": 1e30}),
            422,
            "output_tokens",
        ),
        (
            json!({"user_id": "nobody", "resource_id": CHUTE, "cost": 1}),
            422,
            "user_id",
        ),
        (
            json!({"user_id": unknown, "resource_id": CHUTE, "cost": 1}),
            404,
            "",
        ),
    ] {
        let (got, resp) = consume(&app, &root, body.clone()).await;
        assert_eq!(got, status, "{body}: {resp}");
        if status == 422 {
            let loc = resp["detail"][0]["loc"].as_array().unwrap();
            assert_eq!(loc.last().unwrap(), field, "{body}: {resp}");
        }
    }
    assert_eq!(usage_count(&app, &root, &alice.id).await, 0);
    assert_eq!(balance(&app, &root, &alice.wallet).await, 100);
    let (status, resp) = get(
        &app,
        &root,
        &format!("/api/v1/users/{}/usage?limit=501", alice.id),
    )
    .await;
    assert_eq!(status, 422, "{resp}");
    assert_eq!(resp["detail"][0]["loc"], json!(["query", "limit"]));
    let (status, _) = get(
        &app,
        &root,
        &format!("/api/v1/users/{}/quota-usage/nope", alice.id),
    )
    .await;
    assert_eq!(status, 422);
}

/// Hourly buckets, per resource or summed, with paging and filters.
#[tokio::test]
async fn usage_history_is_paged_and_filtered() {
    let app = TestApp::spawn().await;
    let (root, alice) = setup(&app).await;
    put(
        &app,
        &root,
        &format!("/api/v1/users/{}/quotas", alice.id),
        json!({"*": 100}),
    )
    .await;
    for (r, n) in [(CHUTE, 3), (OTHER_CHUTE, 2)] {
        for _ in 0..n {
            let (status, body) = consume(
                &app,
                &root,
                json!({"user_id": alice.id, "resource_id": r, "cost": 1, "input_tokens": 5}),
            )
            .await;
            assert_eq!(status, 201, "{body}");
        }
    }
    let base = format!("/api/v1/users/{}/usage", alice.id);
    let (_, body) = get(&app, &alice.token, &format!("{base}?per_resource=true")).await;
    let items = body["items"].as_array().unwrap();
    let per: HashMap<&str, i64> = items
        .iter()
        .map(|i| {
            (
                i["resource_id"].as_str().unwrap(),
                i["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(per.values().sum::<i64>(), 5);
    assert_eq!(body["total"].as_u64(), Some(items.len() as u64));
    let (_, body) = get(
        &app,
        &alice.token,
        &format!("{base}?resource_id={CHUTE}&per_resource=true"),
    )
    .await;
    assert!(body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["resource_id"] == CHUTE));
    let (_, body) = get(&app, &alice.token, &format!("{base}?limit=1&page=0")).await;
    assert_eq!(body["limit"], 1);
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert!(body["items"][0].get("resource_id").is_none());
    let (_, body) = get(
        &app,
        &alice.token,
        &format!("{base}?start_date=2999-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(body["total"], 0);
}

/// The issue's storm: quota 100, money for exactly 50 paid calls, 500 concurrent calls split
/// across two servers on one database.
#[tokio::test]
async fn consumption_storm_across_two_servers_is_exact() {
    let app = TestApp::spawn().await;
    let sibling = app.spawn_sibling().await;
    let (root, alice) = setup(&app).await;
    put(
        &app,
        &root,
        &format!("/api/v1/users/{}/quotas", alice.id),
        json!({"*": 100}),
    )
    .await;
    credit(&app, &root, &alice.wallet, 50 * 1_000).await;
    let client = storm_client();
    let apps = [&app, &sibling];
    let body = call(&alice.id, 1_000);
    let requests = (0..500usize).map(|i| {
        let (target, client, root, body) = (apps[i % 2], &client, &root, &body);
        async move { consume_on(target, client, root, body, None).await }
    });
    let results = futures::future::join_all(requests).await;
    let mut by: HashMap<String, usize> = HashMap::new();
    for (status, body) in &results {
        let key = match status {
            201 => body["source"].as_str().unwrap().to_owned(),
            402 => "402".to_owned(),
            other => panic!("unexpected {other}: {body}"),
        };
        *by.entry(key).or_default() += 1;
    }
    assert_eq!(by.get("quota"), Some(&100), "{by:?}");
    assert_eq!(by.get("balance"), Some(&50), "{by:?}");
    assert_eq!(by.get("402"), Some(&350), "{by:?}");
    assert_eq!(balance(&sibling, &root, &alice.wallet).await, 0);
    let entries = assert_ledger_matches(&app, &root, &alice.wallet).await;
    let usage: Vec<&LedgerEntry> = entries.iter().filter(|e| e.kind == "usage").collect();
    assert_eq!(usage.len(), 50);
    assert!(entries.iter().all(|e| e.balance_after >= 0));
    assert_eq!(usage_count(&sibling, &root, &alice.id).await, 150);
}

/// Concurrent replays of one keyed consumption through both servers count once.
#[tokio::test]
async fn concurrent_replays_of_one_consumption_count_once() {
    let app = TestApp::spawn().await;
    let sibling = app.spawn_sibling().await;
    let (root, alice) = setup(&app).await;
    credit(&app, &root, &alice.wallet, 10_000).await;
    let client = storm_client();
    let apps = [&app, &sibling];
    let body = call(&alice.id, 300);
    let requests = (0..50usize).map(|i| {
        let (target, client, root, body) = (apps[i % 2], &client, &root, &body);
        async move { consume_on(target, client, root, body, Some("call-42")).await }
    });
    let results = futures::future::join_all(requests).await;
    let first = &results[0].1;
    for (status, body) in &results {
        assert_eq!(*status, 201, "{body}");
        assert_eq!(body, first);
    }
    assert_eq!(first["source"], "balance");
    assert_eq!(balance(&app, &root, &alice.wallet).await, 10_000 - 300);
    assert_eq!(usage_count(&app, &root, &alice.id).await, 1);
    // The same key for another request is a conflict.
    let (status, body) =
        consume_on(&app, &client, &root, &call(&alice.id, 301), Some("call-42")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "idempotency_mismatch");
}

// ---------------------------------------------------------------------------------------------
// The Chutes surface.

#[tokio::test]
async fn chutes_admin_balance_change() {
    let app = TestApp::spawn().await;
    let (root, alice) = setup(&app).await;
    let (status, body) = send(
        app.post("/users/admin_balance_change")
            .bearer_auth(&root)
            .json(&json!({"user_id": alice.id, "amount": 12.5, "reason": "web-topup"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["new_balance"], 12.5);
    assert!(body["event_id"].is_string());
    assert_eq!(balance(&app, &root, &alice.wallet).await, 12_500_000);
    let (status, body) = send(
        app.post("/users/admin_balance_change")
            .bearer_auth(&root)
            .json(&json!({"user_id": alice.id, "amount": -0.000001, "reason": "fix"})),
    )
    .await;
    assert_eq!(
        (status, &body["new_balance"]),
        (200, &json!(12.499999)),
        "{body}"
    );
    for (amount, status) in [
        (json!(0.0000001), 422),
        (json!(1e300), 422),
        (json!(0), 422),
    ] {
        let (got, resp) = send(
            app.post("/users/admin_balance_change")
                .bearer_auth(&root)
                .json(&json!({"user_id": alice.id, "amount": amount, "reason": "x"})),
        )
        .await;
        assert_eq!(got, status, "{amount}: {resp}");
        assert!(
            resp.get("code").is_none(),
            "Chutes bodies carry only detail: {resp}"
        );
    }
    let (status, body) = send(
        app.post("/users/admin_balance_change")
            .bearer_auth(&alice.token)
            .json(&json!({"user_id": alice.id, "amount": 1.0, "reason": "me"})),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"detail": "This action can only be performed by billing admin accounts."})
    );
    let ghost = "0191f1a2-0000-7000-8000-000000000000";
    let (status, body) = send(
        app.post("/users/admin_balance_change")
            .bearer_auth(&root)
            .json(&json!({"user_id": ghost, "amount": 1.0, "reason": "x"})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"detail": format!("User not found: {ghost}")}));
    assert_eq!(balance(&app, &root, &alice.wallet).await, 12_499_999);
}

#[tokio::test]
async fn chutes_quotas_discounts_and_me_routes() {
    let app = TestApp::spawn().await;
    let (root, alice) = setup(&app).await;
    // Without rows: the defaults object.
    assert_eq!(
        get(&app, &alice.token, "/users/me/quotas").await.1,
        json!({"*": 0})
    );
    assert_eq!(
        get(&app, &alice.token, "/users/me/discounts").await.1,
        json!([])
    );

    let quotas = format!("/users/{}/quotas", alice.id);
    let post = |path: String, token: String, body: Value| {
        let app = &app;
        async move { send(app.post(&path).bearer_auth(token).json(&body)).await }
    };
    for (body, detail) in [
        (json!({"*": true}), "Invalid quota value key=* value=true"),
        (json!({"*": 1.5}), "Invalid quota value key=* value=1.5"),
        (json!({"*": -1}), "Invalid quota value key=* value=-1"),
        (json!({"chute": 1}), "Invalid chute_id specified: chute"),
    ] {
        let (status, resp) = post(quotas.clone(), root.clone(), body.clone()).await;
        assert_eq!((status, resp), (400, json!({"detail": detail})), "{body}");
    }
    let (status, resp) = post(quotas.clone(), alice.token.clone(), json!({"*": 1})).await;
    assert_eq!(status, 403, "{resp}");
    let ghost = "0191f1a2-0000-7000-8000-000000000000";
    let (status, resp) = post(
        format!("/users/{ghost}/quotas"),
        root.clone(),
        json!({"*": 1}),
    )
    .await;
    assert_eq!(
        (status, resp),
        (404, json!({"detail": format!("User not found: {ghost}")}))
    );
    let (status, resp) = post(quotas.clone(), root.clone(), json!({"*": 3, CHUTE: 1})).await;
    assert_eq!((status, &resp), (200, &json!({"*": 3, CHUTE: 1})));

    let discounts = format!("/users/{}/discounts", alice.id);
    for value in [
        json!(0),
        json!(1),
        json!(1.0),
        json!(0.0),
        json!(true),
        json!(1.5),
    ] {
        let (status, resp) = post(discounts.clone(), root.clone(), json!({"*": value})).await;
        assert_eq!(status, 400, "{value}: {resp}");
        assert_eq!(
            resp["detail"],
            format!("Invalid discount value key=* value={value}")
        );
    }
    let (status, resp) = post(discounts.clone(), root.clone(), json!({CHUTE: 0.25})).await;
    assert_eq!((status, &resp), (200, &json!({CHUTE: 0.25})));

    let (_, rows) = get(&app, &alice.token, "/users/me/quotas").await;
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .all(|r| r["user_id"] == alice.id && r["is_default"] == true));
    let (_, rows) = get(&app, &alice.token, "/users/me/discounts").await;
    assert_eq!(
        rows,
        json!([{"user_id": alice.id, "chute_id": CHUTE, "discount": 0.25}])
    );

    consume(&app, &root, call(&alice.id, 0)).await;
    let (status, body) = get(
        &app,
        &alice.token,
        &format!("/users/me/quota_usage/{CHUTE}"),
    )
    .await;
    assert_eq!((status, body), (200, json!({"quota": 1, "used": 1})));
    let (_, body) = get(&app, &alice.token, "/users/me/quota_usage/me").await;
    assert_eq!(body, json!({"quota": 3, "used": 0}));
    let (status, body) = get(&app, &alice.token, "/users/me/quota_usage/garbage").await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"detail": "Invalid chute_id specified: garbage"})
        )
    );

    let (status, body) = get(&app, &alice.token, "/users/me/usage?per_chute=true").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["total"].clone(),
            body["page"].clone(),
            body["limit"].clone()
        ),
        (json!(1), json!(0), json!(24))
    );
    let item = &body["items"][0];
    assert_eq!(item["chute_id"], CHUTE);
    assert_eq!(item["count"], 1);
    assert_eq!(item["amount"], 0.0);
    let bucket = item["bucket"].as_str().unwrap();
    assert!(bucket.len() == 19 && bucket.ends_with(":00:00"), "{bucket}");
    let (status, _) = get(&app, &alice.token, "/users/me/usage?start_date=yesterday").await;
    assert_eq!(status, 422);

    // Invoiced users are unlimited on the Chutes surface too.
    put(
        &app,
        &root,
        &format!("/api/v1/users/{}/invoicing", alice.id),
        json!({"enabled": true}),
    )
    .await;
    assert_eq!(
        get(&app, &alice.token, "/users/me/quotas").await.1,
        json!({})
    );
    assert_eq!(
        get(&app, &alice.token, "/users/me/quota_usage/me").await.1,
        json!({"quota": "unlimited", "used": 0})
    );
}

/// `POST /users/{user_id}/enable_invoicing`: billing administrators turn invoice billing on
/// (with `unlimited` when a truthy body asks for it; a missing or bad body is ignored) and get
/// the target's SelfResponse; others get Chutes' 403, unknown users Chutes' 404.
#[tokio::test]
async fn chutes_enable_invoicing() {
    let app = TestApp::spawn().await;
    let (root, alice) = setup(&app).await;
    let bob = member(&app, "bob").await;
    let enable = |user: &str| format!("/users/{user}/enable_invoicing");

    let (status, body) = send(app.post(&enable(&bob.id)).bearer_auth(&alice.token)).await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({"detail": "This action can only be performed by billing admin accounts."})
        )
    );
    let (status, body) = send(app.post(&enable(&bob.id))).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.get("code").is_none(), "Chutes bodies: {body}");
    let ghost = "0191f1a2-0000-7000-8000-000000000000";
    for user in [ghost, "not-a-uuid"] {
        let (status, body) = send(app.post(&enable(user)).bearer_auth(&root)).await;
        assert_eq!(
            (status, body),
            (404, json!({"detail": format!("User not found: {user}")}))
        );
    }

    // No body: invoicing on, not unlimited; the answer is the target's SelfResponse.
    let (status, body) = send(app.post(&enable(&alice.id)).bearer_auth(&root)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], alice.id);
    assert_eq!(body["username"], "alice");
    assert_eq!(body["balance"], 0.0);
    assert!(body["permissions_bitmask"].is_i64(), "{body}");
    let (_, user) = get(&app, &root, &format!("/api/v1/users/{}", alice.id)).await;
    assert_eq!(
        (&user["invoicing"], &user["unlimited"]),
        (&json!(true), &json!(false))
    );
    let (status, consumed) = consume(&app, &root, call(&alice.id, 2_000)).await;
    assert_eq!(
        (status, &consumed["source"]),
        (201, &json!("invoice")),
        "{consumed}"
    );
    assert_eq!(balance(&app, &root, &alice.wallet).await, -2_000);

    // A bad body is ignored; a truthy `unlimited` sets it.
    for (content_type, raw) in [
        ("application/json", "{not json"),
        ("text/plain", "unlimited"),
        ("application/json", r#"{"unlimited": 0}"#),
    ] {
        let (status, body) = send(
            app.post(&enable(&bob.id))
                .bearer_auth(&root)
                .header("Content-Type", content_type)
                .body(raw),
        )
        .await;
        assert_eq!(status, 200, "{raw}: {body}");
        let (_, user) = get(&app, &root, &format!("/api/v1/users/{}", bob.id)).await;
        assert_eq!(
            (&user["invoicing"], &user["unlimited"]),
            (&json!(true), &json!(false))
        );
    }
    let (status, body) = send(
        app.post(&enable(&bob.id))
            .bearer_auth(&root)
            .json(&json!({"unlimited": "yes"})),
    )
    .await;
    assert_eq!((status, &body["user_id"]), (200, &json!(bob.id)), "{body}");
    let (_, user) = get(&app, &root, &format!("/api/v1/users/{}", bob.id)).await;
    assert_eq!(
        (&user["invoicing"], &user["unlimited"]),
        (&json!(true), &json!(true))
    );
}

/// API keys with the `metering` scope: a billing administrator's key records consumption and
/// does nothing else its owner could; a `read` key cannot meter; a plain user cannot mint one.
#[tokio::test]
async fn metering_api_keys() {
    let app = TestApp::spawn().await;
    let (root, alice) = setup(&app).await;
    let biller = member(&app, "biller").await;
    let (status, body) = send(
        app.patch(&format!("/api/v1/users/{}", biller.id))
            .bearer_auth(&root)
            .json(&json!({"permissions": 64})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mint = |token: String, body: Value| {
        let app = &app;
        async move {
            send(
                app.post("/api/v1/me/api-keys")
                    .bearer_auth(token)
                    .json(&body),
            )
            .await
        }
    };
    let (status, body) = mint(
        alice.token.clone(),
        json!({"name": "meter", "scopes": ["metering"]}),
    )
    .await;
    assert_eq!(
        status, 403,
        "a plain user cannot mint a metering key: {body}"
    );
    let (status, created) = mint(
        biller.token.clone(),
        json!({"name": "meter", "scopes": ["metering"]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["scopes"], json!(["metering"]));
    let meter = created["secret_key"].as_str().expect("secret").to_owned();
    let (status, created) = mint(
        biller.token.clone(),
        json!({"name": "reader", "scopes": ["read"]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let reader = created["secret_key"].as_str().expect("secret").to_owned();

    let quotas = format!("/api/v1/users/{}/quotas", alice.id);
    assert_eq!(put(&app, &root, &quotas, json!({"*": 5})).await.0, 200);
    let (status, body) = consume(&app, &meter, call(&alice.id, 100)).await;
    assert_eq!((status, &body["source"]), (201, &json!("quota")), "{body}");
    // Bare (Chutes-style) key too, and with an idempotency key.
    let (status, body) = send(
        app.post("/api/v1/usage")
            .header("Authorization", &meter)
            .header("Idempotency-Key", "meter-1")
            .json(&call(&alice.id, 100)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(usage_count(&app, &root, &alice.id).await, 2);

    let (status, body) = consume(&app, &reader, call(&alice.id, 100)).await;
    assert_eq!(status, 403, "a read key cannot meter: {body}");
    assert_eq!(usage_count(&app, &root, &alice.id).await, 2);

    // Nothing else: the metering key holds none of its owner's billing rights.
    assert_ne!(put(&app, &meter, &quotas, json!({"*": 100})).await.0, 200);
    assert_ne!(
        put(
            &app,
            &meter,
            &format!("/api/v1/users/{}/invoicing", alice.id),
            json!({"enabled": true}),
        )
        .await
        .0,
        200
    );
    let (status, body) = send(
        app.post("/users/admin_balance_change")
            .header("Authorization", &meter)
            .json(&json!({"user_id": alice.id, "amount": 1.0, "reason": "x"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = send(
        app.post(&format!("/users/{}/enable_invoicing", alice.id))
            .header("Authorization", &meter),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = mint(meter.clone(), json!({"name": "more", "admin": true})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(quotas_of(&app, &root, &alice.id).await, json!({"*": 5}));
    // The owner themself still meters with their session.
    let (status, body) = consume(&app, &biller.token, call(&alice.id, 100)).await;
    assert_eq!(status, 201, "{body}");
}
