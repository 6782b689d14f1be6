//! Tiers over HTTP: the collection, one tier by id or by name, who may write, validation of
//! quotas and rate limits, tiers in use, and a user's tier.

use serde_json::{json, Value};
use tessera_testkit::TestApp;

use crate::support::*;

async fn post_tier(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    send(app.post("/api/v1/tiers").bearer_auth(token).json(&body)).await
}

async fn get_tier(app: &TestApp, token: &str, tier: &str) -> (u16, Value) {
    send(app.get(&format!("/api/v1/tiers/{tier}")).bearer_auth(token)).await
}

async fn patch_tier(app: &TestApp, token: &str, tier: &str, body: Value) -> (u16, Value) {
    send(
        app.patch(&format!("/api/v1/tiers/{tier}"))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

async fn delete_tier(app: &TestApp, token: &str, tier: &str) -> (u16, Value) {
    send(
        app.delete(&format!("/api/v1/tiers/{tier}"))
            .bearer_auth(token),
    )
    .await
}

async fn list_tiers(app: &TestApp, token: &str) -> Value {
    let (status, body) = send(app.get("/api/v1/tiers").bearer_auth(token)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Creates a tier as `token`; returns its body.
async fn new_tier(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, tier) = post_tier(app, token, body).await;
    assert_eq!(status, 201, "{tier}");
    tier
}

async fn user_tier(app: &TestApp, token: &str, user: &str) -> (u16, Value) {
    send(
        app.get(&format!("/api/v1/users/{user}/tier"))
            .bearer_auth(token),
    )
    .await
}

async fn assign(app: &TestApp, token: &str, user: &str, body: Value) -> (u16, Value) {
    send(
        app.patch(&format!("/api/v1/users/{user}/tier"))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

fn tier_not_found() -> Value {
    json!({"detail": "Tier not found", "code": "not_found"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_are_created_read_updated_and_deleted_by_id_and_by_name() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    assert_eq!(list_tiers(&app, &root).await, json!([]));
    let resource = "0191f1a2-0000-7000-8000-000000000001";
    let gold = new_tier(
        &app,
        &root,
        json!({
            "name": "Gold",
            "quotas": {"*": 1000, resource: 5, "0191f1a2-0000-7000-8000-000000000002": 0},
            "rate_limits": [
                {"path": "/v1/chat", "limit": 60, "period_secs": 60},
                {"path": "/v1/A", "limit": 1, "period_secs": 1},
            ],
        }),
    )
    .await;
    let id = gold["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{gold}");
    assert_eq!(gold["tier_id"], id.as_str());
    assert_eq!(gold["name"], "Gold");
    assert_eq!(
        gold["quotas"],
        json!({"*": 1000, resource: 5, "0191f1a2-0000-7000-8000-000000000002": 0})
    );
    // Rate limits come back ordered by path.
    assert_eq!(
        gold["rate_limits"],
        json!([
            {"path": "/v1/A", "limit": 1, "period_secs": 1},
            {"path": "/v1/chat", "limit": 60, "period_secs": 60},
        ])
    );
    assert!(gold["created_at"].is_string());
    assert_eq!(gold["created_at"], gold["updated_at"]);

    // Read by id and by name in any case, by anyone signed in.
    let (_, alice) = app.user_with_token("alice").await;
    for reference in [id.as_str(), "Gold", "gold", "GOLD"] {
        for token in [&root, &alice] {
            let (status, body) = get_tier(&app, token, reference).await;
            assert_eq!(status, 200, "{reference}: {body}");
            assert_eq!(body, gold, "{reference}");
        }
    }
    let silver = new_tier(&app, &root, json!({"name": "silver"})).await;
    assert_eq!(silver["quotas"], json!({}));
    assert_eq!(silver["rate_limits"], json!([]));
    // Listed by name, case-insensitively.
    assert_eq!(list_tiers(&app, &alice).await, json!([gold, silver]));

    // PATCH by name: a new name only; quotas and rate limits stay.
    let (status, renamed) = patch_tier(&app, &root, "GOLD", json!({"name": "Platinum"})).await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["id"], id.as_str());
    assert_eq!(renamed["name"], "Platinum");
    assert_eq!(renamed["quotas"], gold["quotas"]);
    assert_eq!(renamed["rate_limits"], gold["rate_limits"]);
    assert_eq!(renamed["created_at"], gold["created_at"]);
    let (status, body) = get_tier(&app, &root, "gold").await;
    assert_eq!((status, body), (404, tier_not_found()));
    let (status, body) = get_tier(&app, &root, "platinum").await;
    assert_eq!((status, &body), (200, &renamed));

    // PATCH by id: quotas replace all quotas; rate limits replace all rate limits.
    let (status, body) = patch_tier(&app, &root, &id, json!({"quotas": {"*": 7}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["quotas"], json!({"*": 7}));
    assert_eq!(body["rate_limits"], gold["rate_limits"]);
    let (status, body) = patch_tier(
        &app,
        &root,
        &id,
        json!({"rate_limits": [{"path": "/v2", "limit": 2, "period_secs": 3600}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["quotas"], json!({"*": 7}));
    assert_eq!(
        body["rate_limits"],
        json!([{"path": "/v2", "limit": 2, "period_secs": 3600}])
    );
    let (status, body) =
        patch_tier(&app, &root, &id, json!({"quotas": {}, "rate_limits": []})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["quotas"], &body["rate_limits"]),
        (&json!({}), &json!([]))
    );
    let (_, read) = get_tier(&app, &root, &id).await;
    assert_eq!(read, body);
    // An empty PATCH changes nothing but is fine.
    let (status, body) = patch_tier(&app, &root, &id, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Platinum");

    // DELETE by name, then by id.
    let (status, body) = delete_tier(&app, &root, "PLATINUM").await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = get_tier(&app, &root, &id).await;
    assert_eq!((status, body), (404, tier_not_found()));
    let (status, body) = delete_tier(&app, &root, &id).await;
    assert_eq!((status, body), (404, tier_not_found()));
    let silver_id = silver["id"].as_str().unwrap();
    let (status, _) = delete_tier(&app, &root, silver_id).await;
    assert_eq!(status, 204);
    assert_eq!(list_tiers(&app, &root).await, json!([]));

    for (method, path) in [
        ("GET", "/api/v1/tiers/nope"),
        ("PATCH", "/api/v1/tiers/nope"),
        ("DELETE", "/api/v1/tiers/nope"),
        ("GET", "/api/v1/tiers/0191f1a2-0000-7000-8000-0000000000ff"),
    ] {
        let method: reqwest::Method = method.parse().unwrap();
        let (status, body) = send(
            app.request(method, path)
                .bearer_auth(&root)
                .json(&json!({})),
        )
        .await;
        assert_eq!((status, body), (404, tier_not_found()), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_are_read_by_anyone_signed_in_and_written_by_superusers_only() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (_, alice) = app.user_with_token("alice").await;
    let (_, ops) = admin_with_token(&app, "ops").await;
    let gold = new_tier(&app, &root, json!({"name": "Gold", "quotas": {"*": 1}})).await;

    for token in [&alice, &ops] {
        assert_eq!(list_tiers(&app, token).await, json!([gold]));
        let (status, body) = post_tier(&app, token, json!({"name": "Mine"})).await;
        assert_error(status, &body, 403, "forbidden");
        let (status, body) = patch_tier(&app, token, "gold", json!({"name": "Mine"})).await;
        assert_error(status, &body, 403, "forbidden");
        let (status, body) = delete_tier(&app, token, "gold").await;
        assert_error(status, &body, 403, "forbidden");
    }
    assert_eq!(list_tiers(&app, &root).await, json!([gold]));

    for (method, path) in [
        ("GET", "/api/v1/tiers"),
        ("POST", "/api/v1/tiers"),
        ("GET", "/api/v1/tiers/gold"),
        ("PATCH", "/api/v1/tiers/gold"),
        ("DELETE", "/api/v1/tiers/gold"),
    ] {
        let method: reqwest::Method = method.parse().unwrap();
        let (status, body) = send(app.request(method, path).json(&json!({"name": "x"}))).await;
        assert_eq!((status, body), (401, not_authenticated()), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_duplicate_names_in_any_case_are_409() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    new_tier(&app, &root, json!({"name": "Gold"})).await;
    let silver = new_tier(&app, &root, json!({"name": "Silver", "quotas": {"*": 3}})).await;
    for name in ["Gold", "gold", "GOLD", "  gold  "] {
        let (status, body) = post_tier(&app, &root, json!({"name": name})).await;
        assert_error(status, &body, 409, "duplicate_tier_name");
    }
    let (status, body) =
        patch_tier(&app, &root, "silver", json!({"name": "gOLD", "quotas": {}})).await;
    assert_error(status, &body, 409, "duplicate_tier_name");
    // Nothing changed.
    let (_, read) = get_tier(&app, &root, "silver").await;
    assert_eq!(read, silver);
    assert_eq!(list_tiers(&app, &root).await.as_array().unwrap().len(), 2);
    // A tier may take its own name in another case.
    let (status, body) = patch_tier(&app, &root, "silver", json!({"name": "SILVER"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "SILVER");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_with_bad_quotas_rate_limits_or_names_are_422() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let id = "0191f1a2-0000-7000-8000-000000000001";
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"name": "t", "quotas": {"*": 1.5}}),
            vec!["body", "quotas", "*"],
        ),
        (
            json!({"name": "t", "quotas": {"*": true}}),
            vec!["body", "quotas", "*"],
        ),
        (
            json!({"name": "t", "quotas": {"*": -1}}),
            vec!["body", "quotas", "*"],
        ),
        (
            json!({"name": "t", "quotas": {"*": "10"}}),
            vec!["body", "quotas", "*"],
        ),
        (
            json!({"name": "t", "quotas": {"*": null}}),
            vec!["body", "quotas", "*"],
        ),
        (
            json!({"name": "t", "quotas": {id: 1e3}}),
            vec!["body", "quotas", id],
        ),
        (
            json!({"name": "t", "quotas": {"*": 18_446_744_073_709_551_615u64}}),
            vec!["body", "quotas", "*"],
        ),
        (
            json!({"name": "t", "quotas": {"chute-1": 5}}),
            vec!["body", "quotas", "chute-1"],
        ),
        (
            json!({"name": "t", "quotas": {"": 5}}),
            vec!["body", "quotas", ""],
        ),
        (
            json!({"name": "t", "quotas": [1, 2]}),
            vec!["body", "quotas"],
        ),
        (
            json!({"name": "t", "rate_limits": {}}),
            vec!["body", "rate_limits"],
        ),
        (
            json!({"name": "t", "rate_limits": [{"path": "v1", "limit": 1, "period_secs": 1}]}),
            vec!["body", "rate_limits", "0", "path"],
        ),
        (
            json!({"name": "t", "rate_limits": [{"path": "/a b", "limit": 1, "period_secs": 1}]}),
            vec!["body", "rate_limits", "0", "path"],
        ),
        (
            json!({"name": "t", "rate_limits": [{"path": "/a", "limit": 0, "period_secs": 1}]}),
            vec!["body", "rate_limits", "0", "limit"],
        ),
        (
            json!({"name": "t", "rate_limits": [{"path": "/a", "limit": -1, "period_secs": 1}]}),
            vec!["body", "rate_limits", "0", "limit"],
        ),
        (
            json!({"name": "t", "rate_limits": [{"path": "/a", "limit": 1.5, "period_secs": 1}]}),
            vec!["body", "rate_limits", "0", "limit"],
        ),
        (
            json!({"name": "t", "rate_limits": [{"path": "/a", "limit": 1, "period_secs": 0}]}),
            vec!["body", "rate_limits", "0", "period_secs"],
        ),
        (
            json!({"name": "t", "rate_limits": [{"path": "/a", "limit": 1}]}),
            vec!["body", "rate_limits", "0", "period_secs"],
        ),
        (
            json!({"name": "t", "rate_limits": [
                {"path": "/a", "limit": 1, "period_secs": 1},
                {"path": "/a", "limit": 2, "period_secs": 2},
            ]}),
            vec!["body", "rate_limits", "1", "path"],
        ),
        (json!({"quotas": {"*": 1}}), vec!["body", "name"]),
        (json!({"name": ""}), vec!["body", "name"]),
        (json!({"name": "   "}), vec!["body", "name"]),
        (json!({"name": "x".repeat(65)}), vec!["body", "name"]),
        (json!({"name": "tab\there"}), vec!["body", "name"]),
        (json!({"name": 5}), vec!["body", "name"]),
    ];
    for (body, loc) in &cases {
        let (status, answer) = post_tier(&app, &root, body.clone()).await;
        assert_invalid(status, &answer, loc);
    }
    assert_eq!(list_tiers(&app, &root).await, json!([]));

    // The same rules on update; the tier is left as it was.
    let tier = new_tier(&app, &root, json!({"name": "t", "quotas": {"*": 1}})).await;
    for (body, loc) in &cases {
        if body.get("name").is_none() {
            continue;
        }
        let (status, answer) = patch_tier(&app, &root, "t", body.clone()).await;
        assert_invalid(status, &answer, loc);
    }
    let (_, read) = get_tier(&app, &root, "t").await;
    assert_eq!(read, tier);
    // The extremes that are allowed.
    let (status, body) = patch_tier(
        &app,
        &root,
        "t",
        json!({"quotas": {"*": 9_223_372_036_854_775_807u64, id: 0},
               "rate_limits": [{"path": "/", "limit": 1_000_000, "period_secs": 2_678_400}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["quotas"]["*"], 9_223_372_036_854_775_807u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_in_use_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    app.user_with_token("alice").await;
    let gold = new_tier(&app, &root, json!({"name": "Gold"})).await;
    let gold_id = gold["id"].as_str().unwrap();
    let (status, body) = assign(&app, &root, "alice", json!({"tier_id": gold_id})).await;
    assert_eq!(status, 200, "{body}");

    for reference in ["gold", gold_id] {
        let (status, body) = delete_tier(&app, &root, reference).await;
        assert_error(status, &body, 409, "tier_in_use");
    }
    assert_eq!(list_tiers(&app, &root).await, json!([gold]));
    // A soft-deleted user still holds it.
    let (status, _) = send(app.delete("/api/v1/users/alice").bearer_auth(&root)).await;
    assert_eq!(status, 204);
    let (status, body) = delete_tier(&app, &root, "gold").await;
    assert_error(status, &body, 409, "tier_in_use");

    let (status, body) = assign(&app, &root, "alice", json!({"tier_id": null})).await;
    assert_eq!((status, body), (200, Value::Null));
    let (status, _) = delete_tier(&app, &root, "gold").await;
    assert_eq!(status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_of_users_are_read_by_who_sees_them_and_set_by_superusers() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (alice_id, alice) = app.user_with_token("alice").await;
    let (_, bob) = app.user_with_token("bob").await;
    let (_, ops) = admin_with_token(&app, "ops").await;
    let gold = new_tier(&app, &root, json!({"name": "Gold", "quotas": {"*": 10}})).await;
    let gold_id = gold["id"].as_str().unwrap();

    // None yet: null.
    let (status, body) = user_tier(&app, &alice, "alice").await;
    assert_eq!((status, body), (200, Value::Null));

    let (status, body) = assign(&app, &root, "alice", json!({"tier_id": gold_id})).await;
    assert_eq!((status, &body), (200, &gold));
    for (token, user) in [
        (&alice, "alice"),
        (&alice, alice_id.as_str()),
        (&root, "ALICE"),
        (&ops, "alice"),
    ] {
        let (status, body) = user_tier(&app, token, user).await;
        assert_eq!((status, &body), (200, &gold), "{user}");
    }
    assert_eq!(
        assert_token_works(&app, &alice).await.tier_id.as_deref(),
        Some(gold_id)
    );
    // Someone who cannot see alice gets 404.
    let (status, body) = user_tier(&app, &bob, "alice").await;
    assert_error(status, &body, 404, "not_found");
    assert_eq!(body["detail"], "User not found");

    // Only superusers assign; a plain user sees 404 for others, 403 for themselves.
    let (status, body) = assign(&app, &alice, "alice", json!({"tier_id": null})).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = assign(&app, &bob, "alice", json!({"tier_id": null})).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = assign(&app, &ops, "alice", json!({"tier_id": null})).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = assign(
        &app,
        &root,
        "alice",
        json!({"tier_id": "0191f1a2-0000-7000-8000-0000000000ff"}),
    )
    .await;
    assert_eq!((status, body), (404, tier_not_found()));
    let (status, body) = assign(&app, &root, "nobody", json!({"tier_id": gold_id})).await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"detail": "User not found", "code": "not_found"})
        )
    );
    for (bad, loc) in [
        (json!({}), vec!["body", "tier_id"]),
        (json!({"tier_id": "gold"}), vec!["body", "tier_id"]),
        (json!({"tier_id": 5}), vec!["body", "tier_id"]),
    ] {
        let (status, body) = assign(&app, &root, "alice", bad).await;
        assert_invalid(status, &body, &loc);
    }
    let (_, body) = user_tier(&app, &alice, "alice").await;
    assert_eq!(body, gold);

    // Null clears.
    let (status, body) = assign(&app, &root, alice_id.as_str(), json!({"tier_id": null})).await;
    assert_eq!((status, body), (200, Value::Null));
    let (_, body) = user_tier(&app, &alice, "alice").await;
    assert_eq!(body, Value::Null);
    assert!(assert_token_works(&app, &alice).await.tier_id.is_none());
    let (status, _) = send(app.get("/api/v1/users/alice/tier")).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_created_with_a_tier_by_superusers_only() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (_, ops) = admin_with_token(&app, "ops").await;
    let (_, alice) = app.user_with_token("alice").await;
    let gold = new_tier(&app, &root, json!({"name": "Gold", "quotas": {"*": 10}})).await;
    let gold_id = gold["id"].as_str().unwrap();

    // A superuser gives the tier at creation; it is stored and recorded.
    let (status, created) = post_user(
        &app,
        &root,
        json!({"username": "bob", "password": "bob-password", "tier_id": gold_id}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["tier_id"], gold_id);
    let bob_id = created["id"].as_str().unwrap().to_owned();
    let (status, body) = user_tier(&app, &root, "bob").await;
    assert_eq!((status, &body), (200, &gold));
    assert_eq!(read_back(&app, "bob").await["tier_id"], gold_id);
    let (status, audit) = send(
        app.get("/api/v1/audit")
            .bearer_auth(&root)
            .query(&[("target", bob_id.as_str()), ("action", "user.created")]),
    )
    .await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(
        audit["data"][0]["changes"]["tier_id"],
        json!({"before": null, "after": gold_id}),
        "{audit}"
    );
    // The tier is in use now.
    let (status, body) = delete_tier(&app, &root, "gold").await;
    assert_error(status, &body, 409, "tier_in_use");
    // Managed users too, and null means no tier.
    let (status, managed) = post_user(
        &app,
        &root,
        json!({"first_name": "Kid", "tier_id": gold_id}),
    )
    .await;
    assert_eq!(status, 201, "{managed}");
    assert_eq!(managed["tier_id"], gold_id);
    let (status, plain) = post_user(
        &app,
        &root,
        json!({"username": "dora", "password": "dora-password", "tier_id": null}),
    )
    .await;
    assert_eq!(status, 201, "{plain}");
    assert!(plain["tier_id"].is_null(), "{plain}");

    // An administrator who is not a superuser may not; nor may a plain user for a managed one.
    let (status, body) = post_user(
        &app,
        &ops,
        json!({"username": "carol", "password": "carol-password", "tier_id": gold_id}),
    )
    .await;
    assert_error(status, &body, 403, "forbidden");
    assert_absent(&app, "carol").await;
    let (status, body) = post_user(
        &app,
        &alice,
        json!({"first_name": "Kid", "tier_id": gold_id}),
    )
    .await;
    assert_error(status, &body, 403, "forbidden");
    // Without a tier, both still work.
    let (status, _) = post_user(
        &app,
        &ops,
        json!({"username": "carol", "password": "carol-password"}),
    )
    .await;
    assert_eq!(status, 201);

    // An unknown tier is 404 and creates nobody; a malformed one is 422.
    let (status, body) = post_user(
        &app,
        &root,
        json!({
            "username": "erin",
            "password": "erin-password",
            "tier_id": "0191f1a2-0000-7000-8000-0000000000ff",
        }),
    )
    .await;
    assert_eq!((status, body), (404, tier_not_found()));
    assert_absent(&app, "erin").await;
    let (status, body) = post_user(
        &app,
        &root,
        json!({"first_name": "Ghost", "tier_id": "0191f1a2-0000-7000-8000-0000000000ff"}),
    )
    .await;
    assert_eq!((status, body), (404, tier_not_found()));
    for bad in [json!("gold"), json!(5)] {
        let (status, body) = post_user(
            &app,
            &root,
            json!({"username": "erin", "password": "erin-password", "tier_id": bad}),
        )
        .await;
        assert_invalid(status, &body, &["body", "tier_id"]);
    }
    assert_absent(&app, "erin").await;
    // Nobody but root, ops, alice, bob, root's managed kid, dora and carol exists.
    let (status, count) = send(app.get("/api/v1/users/count").bearer_auth(&root)).await;
    assert_eq!((status, count), (200, json!({"count": 7})));
}
