//! The LNbits-compatible admin surface (seed 001) against real PostgreSQL: each endpoint's
//! exact shapes and status codes, permission checks before any side effect, and balances in
//! sats reported in millisats.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use tessera_testkit::TestApp;

use crate::money::{assert_ledger_matches, default_wallet, id_of, json_of, member};

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// A plain administrator (not a superuser) and their token.
async fn plain_admin(app: &TestApp, root: &str) -> String {
    app.create_user(
        root,
        json!({"username": "ops", "password": "ops-password", "is_admin": true}),
    )
    .await;
    app.token("ops", "ops-password").await
}

async fn put_balance(app: &TestApp, token: &str, user: &str, body: Value) -> (u16, Value) {
    json_of(
        app.put(&format!("/users/api/v1/user/{user}/balance"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn wallets_of(app: &TestApp, root: &str, user: &str) -> Vec<Value> {
    let (status, body) = json_of(
        app.get(&format!(
            "/api/v1/users/{user}/wallets?include_deleted=true"
        ))
        .bearer_auth(root)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn list_users_is_an_array_of_the_seed_shape() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    for name in ["bob", "carol"] {
        member(&app, name).await;
    }
    let (status, body) = json_of(
        app.get("/users/api/v1/user")
            .bearer_auth(&root)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let users = body.as_array().expect("a JSON array");
    assert_eq!(users.len(), 4);
    for u in users {
        assert_eq!(
            keys(u),
            set(&[
                "id",
                "username",
                "email",
                "is_admin",
                "wallet_count",
                "created_at"
            ])
        );
    }
    let root_row = users.iter().find(|u| u["username"] == "root").unwrap();
    assert_eq!(root_row["is_admin"], true);
    let alice_row = users.iter().find(|u| u["id"] == alice.id.as_str()).unwrap();
    assert_eq!(alice_row["is_admin"], false);
    assert_eq!(alice_row["wallet_count"], 1);
    assert!(alice_row["created_at"].as_str().unwrap().ends_with('Z'));

    let (status, page) = json_of(
        app.get("/users/api/v1/user?limit=2&offset=1")
            .bearer_auth(&root)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let page = page.as_array().unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["id"], users[1]["id"]);
    assert_eq!(page[1]["id"], users[2]["id"]);

    let (status, body) = json_of(
        app.get("/users/api/v1/user?limit=0")
            .bearer_auth(&root)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn list_users_defaults_to_twenty() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    for i in 0..21 {
        app.create_user(
            &root,
            json!({"username": format!("user{i:02}"), "password": "long-enough"}),
        )
        .await;
    }
    let (_, body) = json_of(
        app.get("/users/api/v1/user")
            .bearer_auth(&root)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body.as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn get_user_has_the_seed_shape() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    let (status, body) = json_of(
        app.get(&format!("/users/api/v1/user/{}", alice.id))
            .bearer_auth(&root)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        keys(&body),
        set(&[
            "id",
            "username",
            "email",
            "is_admin",
            "wallet_count",
            "created_at"
        ])
    );
    assert_eq!(body["id"], alice.id.as_str());
    assert_eq!(body["username"], "alice");
    assert_eq!(body["wallet_count"], 1);

    for missing in [uuid::Uuid::now_v7().to_string(), "alice".to_owned()] {
        let (status, body) = json_of(
            app.get(&format!("/users/api/v1/user/{missing}"))
                .bearer_auth(&root)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["detail"], "User not found");
    }
}

#[tokio::test]
async fn create_user_answers_201_with_id_username_email() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (status, body) = json_of(
        app.post("/users/api/v1/user")
            .bearer_auth(&root)
            .json(&json!({"username": "satoshi", "password": "hodl-hodl-hodl", "email": "satoshi@example.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(keys(&body), set(&["id", "username", "email"]));
    assert_eq!(body["username"], "satoshi");
    assert_eq!(body["email"], "satoshi@example.com");
    // The new user logs in with that password and has a default wallet.
    let token = app.token("satoshi", "hodl-hodl-hodl").await;
    default_wallet(&app, &token, &id_of(&body), "usd").await;

    let cases = [
        (json!({"username": "nopass"}), 422),
        (json!({"username": "x", "password": "hodl-hodl-hodl"}), 422),
        (
            json!({"username": "mismatch", "password": "hodl-hodl-hodl", "password_repeat": "other-one"}),
            422,
        ),
        (
            json!({"username": "SATOSHI", "password": "hodl-hodl-hodl"}),
            409,
        ),
    ];
    for (request, expected) in cases {
        let (status, body) = json_of(
            app.post("/users/api/v1/user")
                .bearer_auth(&root)
                .json(&request)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, expected, "{request}: {body}");
    }
}

#[tokio::test]
async fn update_user_changes_username_email_and_admin() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    let (status, body) = json_of(
        app.put(&format!("/users/api/v1/user/{}", alice.id))
            .bearer_auth(&root)
            .json(&json!({"username": "alice2", "email": "alice@example.com", "is_admin": true}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"id": alice.id, "username": "alice2", "email": "alice@example.com", "is_admin": true})
    );

    // A plain administrator may edit, but not grant admin.
    let ops = plain_admin(&app, &root).await;
    let bob = member(&app, "bob").await;
    let (status, body) = json_of(
        app.put(&format!("/users/api/v1/user/{}", bob.id))
            .bearer_auth(&ops)
            .json(&json!({"email": "bob@example.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "bob");
    assert_eq!(body["email"], "bob@example.com");
    let (status, body) = json_of(
        app.put(&format!("/users/api/v1/user/{}", bob.id))
            .bearer_auth(&ops)
            .json(&json!({"is_admin": true}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
}

/// A non-admin gets 403 from every endpoint, and nothing changes.
#[tokio::test]
async fn non_admin_is_forbidden_everywhere_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let mallory = member(&app, "mallory").await;
    let victim = member(&app, "victim").await;
    let v = &victim.id;
    let requests = [
        app.get("/users/api/v1/user"),
        app.get(&format!("/users/api/v1/user/{v}")),
        app.post("/users/api/v1/user")
            .json(&json!({"username": "sneaky", "password": "sneaky-password"})),
        app.put(&format!("/users/api/v1/user/{v}"))
            .json(&json!({"username": "renamed", "is_admin": true})),
        app.delete(&format!("/users/api/v1/user/{v}")),
        app.put(&format!("/users/api/v1/user/{v}/balance"))
            .json(&json!({"amount": 1000})),
        // Even with input that would be invalid, the permission check comes first.
        app.put(&format!("/users/api/v1/user/{v}/balance"))
            .header("Idempotency-Key", "x".repeat(300))
            .json(&json!({"amount": 0})),
    ];
    for request in requests {
        let (status, body) =
            json_of(request.bearer_auth(&mallory.token).send().await.unwrap()).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["detail"], "User not authorized. No admin privileges.");
    }
    // Unauthenticated callers are 401.
    let (status, _) = json_of(app.get("/users/api/v1/user").send().await.unwrap()).await;
    assert_eq!(status, 401);

    // Nothing changed: no new user, the victim as it was, no sat wallet, no entry.
    let (_, list) = json_of(
        app.get("/users/api/v1/user")
            .bearer_auth(&root)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let names: BTreeSet<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, set(&["mallory", "root", "victim"]));
    let wallets = wallets_of(&app, &root, v).await;
    assert_eq!(wallets.len(), 1);
    assert_eq!(wallets[0]["currency"], "usd");
    assert_eq!(wallets[0]["balance"], 0);
    assert!(assert_ledger_matches(&app, &root, &victim.wallet)
        .await
        .is_empty());
}

#[tokio::test]
async fn delete_by_an_admin_who_is_not_superuser_is_forbidden() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let ops = plain_admin(&app, &root).await;
    let alice = member(&app, "alice").await;
    let (status, body) = json_of(
        app.delete(&format!("/users/api/v1/user/{}", alice.id))
            .bearer_auth(&ops)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["detail"],
        "User not authorized. No super user privileges."
    );
    // Still there, wallets and all.
    let (status, _) = json_of(
        app.get(&format!("/users/api/v1/user/{}", alice.id))
            .bearer_auth(&ops)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let wallets = wallets_of(&app, &root, &alice.id).await;
    assert_eq!(wallets.len(), 1);
    assert!(wallets[0]["deleted_at"].is_null());
}

#[tokio::test]
async fn delete_by_superuser_removes_user_wallets_and_ledger() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    let (status, _) = put_balance(&app, &root, &alice.id, json!({"amount": 60})).await;
    assert_eq!(status, 200);
    let sat_wallet = default_wallet(&app, &root, &alice.id, "sat").await.id;

    let (status, body) = json_of(
        app.delete(&format!("/users/api/v1/user/{}", alice.id))
            .bearer_auth(&root)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"detail": "User deleted"}));

    let (status, _) = json_of(
        app.get(&format!("/users/api/v1/user/{}", alice.id))
            .bearer_auth(&root)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    for w in [&alice.wallet, &sat_wallet] {
        for path in [
            format!("/api/v1/wallets/{w}"),
            format!("/api/v1/wallets/{w}/ledger"),
        ] {
            let (status, body) =
                json_of(app.get(&path).bearer_auth(&root).send().await.unwrap()).await;
            assert_eq!(status, 404, "{path}: {body}");
        }
    }
    let (status, _) = json_of(
        app.delete(&format!("/users/api/v1/user/{}", alice.id))
            .bearer_auth(&root)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn balance_in_sats_reports_millisats() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    let (status, body) = put_balance(&app, &root, &alice.id, json!({"amount": 60})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"user_id": alice.id, "new_balance": 60_000}));
    let (status, body) = put_balance(&app, &root, &alice.id, json!({"amount": -10})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["new_balance"], 50_000);

    // A plain administrator may adjust too.
    let ops = plain_admin(&app, &root).await;
    let (status, body) = put_balance(&app, &ops, &alice.id, json!({"amount": 1})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["new_balance"], 51_000);

    // Refusals change nothing.
    let (status, body) = put_balance(&app, &root, &alice.id, json!({"amount": -52})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "insufficient_funds");
    for bad in [
        json!({"amount": 0}),
        json!({"amount": 1.5}),
        json!({"amount": "5"}),
        json!({}),
        // Fits in i64 as sats, not as millisats.
        json!({"amount": 9_223_372_036_854_776i64}),
        json!({"amount": i64::MIN}),
    ] {
        let (status, body) = put_balance(&app, &root, &alice.id, bad.clone()).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(
            body["detail"][0]["loc"],
            json!(["body", "amount"]),
            "{body}"
        );
    }
    let (status, _) = put_balance(
        &app,
        &root,
        &uuid::Uuid::now_v7().to_string(),
        json!({"amount": 5}),
    )
    .await;
    assert_eq!(status, 404);

    let sats = default_wallet(&app, &root, &alice.id, "sat").await;
    assert_eq!(sats.balance, 51_000);
    let entries = assert_ledger_matches(&app, &root, &sats.id).await;
    let reasons: Vec<&str> = entries.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, vec!["Admin credit", "Admin debit", "Admin credit"]);

    // Idempotency-Key is honoured here too.
    for _ in 0..3 {
        let (status, body) = json_of(
            app.put(&format!("/users/api/v1/user/{}/balance", alice.id))
                .bearer_auth(&root)
                .header("Idempotency-Key", "topup-1")
                .json(&json!({"amount": 9}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["new_balance"], 60_000);
    }
}

#[tokio::test]
async fn balance_on_a_user_without_a_sat_wallet_opens_one() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    let before = wallets_of(&app, &root, &alice.id).await;
    assert_eq!(before.len(), 1);
    assert_eq!(before[0]["currency"], "usd");

    // A refused debit opens nothing.
    let (status, _) = put_balance(&app, &root, &alice.id, json!({"amount": -1})).await;
    assert_eq!(status, 409);
    assert_eq!(wallets_of(&app, &root, &alice.id).await.len(), 1);

    let (status, body) = put_balance(&app, &root, &alice.id, json!({"amount": 21})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["new_balance"], 21_000);
    let after = wallets_of(&app, &root, &alice.id).await;
    assert_eq!(after.len(), 2);
    let sats = default_wallet(&app, &root, &alice.id, "sat").await;
    assert_eq!(sats.balance, 21_000);
    assert!(sats.is_default);
    // The usd wallet is untouched; LNbits' wallet_count sees both.
    assert_eq!(
        default_wallet(&app, &root, &alice.id, "usd").await.balance,
        0
    );
    let (_, user) = json_of(
        app.get(&format!("/users/api/v1/user/{}", alice.id))
            .bearer_auth(&root)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(user["wallet_count"], 2);
}
