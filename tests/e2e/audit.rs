//! The audit trail over HTTP: one event per administrative action with the right actor, target
//! and action; filters; cursor pagination; who may read it; and no secrets in it.

use std::collections::HashSet;

use serde_json::{json, Value};
use tessera_testkit::{TestApp, ADMIN_PASSWORD};

use crate::support::*;

async fn get_audit(app: &TestApp, token: &str, params: &[(&str, &str)]) -> (u16, Value) {
    send(app.get("/api/v1/audit").bearer_auth(token).query(params)).await
}

/// Every event matching `params`, walking the cursor `page` at a time; asserts each page is at
/// most `page` long and that the walk neither repeats nor skips (compared with one big page).
async fn all_events(
    app: &TestApp,
    token: &str,
    params: &[(&str, &str)],
    page: usize,
) -> Vec<Value> {
    let limit = page.to_string();
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query: Vec<(&str, &str)> = params.to_vec();
        query.push(("limit", &limit));
        if let Some(c) = &cursor {
            query.push(("cursor", c));
        }
        let (status, body) = get_audit(app, token, &query).await;
        assert_eq!(status, 200, "{query:?}: {body}");
        let data = body["data"].as_array().unwrap();
        assert!(data.len() <= page, "{body}");
        events.extend(data.iter().cloned());
        match body["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(data.len(), page, "a full page before a cursor: {body}");
                cursor = Some(next.to_owned());
            }
            None => break,
        }
        assert!(events.len() < 10_000, "the walk does not end");
    }
    let mut big: Vec<(&str, &str)> = params.to_vec();
    big.push(("limit", "500"));
    let (status, body) = get_audit(app, token, &big).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"].as_array().unwrap(),
        &events,
        "walk vs one page"
    );
    assert!(body["next_cursor"].is_null());
    let ids: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "repeated events");
    events
}

fn actions(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

fn id_of(body: &Value) -> String {
    body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {body}"))
        .to_owned()
}

async fn ok(status_body: (u16, Value), want: u16) -> Value {
    let (status, body) = status_body;
    assert_eq!(status, want, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_every_administrative_action() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let root_id = assert_token_works(&app, &root).await.id;
    let (ops_id, ops) = admin_with_token(&app, "ops").await;

    // The bootstrap superuser was created by the system.
    let (_, body) = get_audit(&app, &root, &[("target", &root_id)]).await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["data"][0]["action"], "user.created");
    assert!(body["data"][0]["actor_id"].is_null());

    // Every action on bob, by root.
    let bob = app
        .create_user(
            &root,
            json!({"username": "bob", "password": "bob-password"}),
        )
        .await;
    let bob_id = id_of(&bob);
    ok(
        patch_user(&app, &root, "bob", json!({"first_name": "Bobby"})).await,
        200,
    )
    .await;
    ok(
        patch_user(&app, &root, "bob", json!({"is_admin": true})).await,
        200,
    )
    .await;
    ok(
        send(app.post("/api/v1/users/bob/password").bearer_auth(&root)).await,
        200,
    )
    .await;
    ok(
        send(app.post("/api/v1/users/bob/logout").bearer_auth(&root)).await,
        204,
    )
    .await;
    ok(
        send(app.post("/api/v1/users/bob/deactivate").bearer_auth(&root)).await,
        200,
    )
    .await;
    ok(
        send(app.post("/api/v1/users/bob/reactivate").bearer_auth(&root)).await,
        200,
    )
    .await;
    ok(
        send(app.delete("/api/v1/users/bob").bearer_auth(&root)).await,
        204,
    )
    .await;
    ok(
        send(app.post("/api/v1/users/bob/restore").bearer_auth(&root)).await,
        200,
    )
    .await;
    let tier = ok(
        send(
            app.post("/api/v1/tiers")
                .bearer_auth(&root)
                .json(&json!({"name": "Gold", "quotas": {"*": 5}})),
        )
        .await,
        201,
    )
    .await;
    let tier_id = id_of(&tier);
    ok(
        send(
            app.patch("/api/v1/tiers/gold")
                .bearer_auth(&root)
                .json(&json!({"name": "Platinum"})),
        )
        .await,
        200,
    )
    .await;
    ok(
        send(
            app.patch("/api/v1/users/bob/tier")
                .bearer_auth(&root)
                .json(&json!({"tier_id": tier_id})),
        )
        .await,
        200,
    )
    .await;
    ok(
        send(
            app.patch("/api/v1/users/bob/tier")
                .bearer_auth(&root)
                .json(&json!({"tier_id": null})),
        )
        .await,
        200,
    )
    .await;
    ok(
        send(
            app.delete(&format!("/api/v1/tiers/{tier_id}"))
                .bearer_auth(&root),
        )
        .await,
        204,
    )
    .await;
    ok(
        send(app.delete("/api/v1/users/db_user/bob").bearer_auth(&root)).await,
        204,
    )
    .await;

    // Newest first, each with root as actor and bob as target.
    let on_bob = all_events(&app, &root, &[("target", &bob_id)], 500).await;
    assert_eq!(
        actions(&on_bob),
        [
            "user.purged",
            "user.tier_assigned",
            "user.tier_assigned",
            "user.restored",
            "user.deleted",
            "user.reactivated",
            "user.deactivated",
            "user.logged_out",
            "user.password_reset",
            "user.permissions_changed",
            "user.updated",
            "user.created",
        ]
    );
    for event in &on_bob {
        assert_eq!(event["actor_id"], root_id.as_str(), "{event}");
        assert_eq!(event["target_id"], bob_id.as_str(), "{event}");
        assert!(uuid::Uuid::parse_str(event["id"].as_str().unwrap()).is_ok());
        assert!(event["at"].as_str().unwrap().ends_with('Z'), "{event}");
    }
    // Times never go backwards down the list.
    let times: Vec<&str> = on_bob.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);

    // Before/after summaries.
    let find = |events: &[Value], action: &str| -> Value {
        events
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action}"))
            .clone()
    };
    let created = find(&on_bob, "user.created");
    assert_eq!(
        created["changes"]["username"],
        json!({"before": null, "after": "bob"})
    );
    let updated = find(&on_bob, "user.updated");
    assert_eq!(
        updated["changes"],
        json!({"first_name": {"before": null, "after": "Bobby"}})
    );
    let promoted = find(&on_bob, "user.permissions_changed");
    assert_eq!(promoted["changes"]["permissions"]["before"], "");
    assert_eq!(promoted["changes"]["permissions"]["after"], "admin");
    let reset = find(&on_bob, "user.password_reset");
    assert_eq!(
        reset["changes"]["password"],
        json!({"before": null, "after": "(changed)"})
    );
    assert_eq!(
        reset["changes"]["must_change_password"],
        json!({"before": "false", "after": "true"})
    );
    let deactivated = find(&on_bob, "user.deactivated");
    assert_eq!(
        deactivated["changes"]["state"],
        json!({"before": "active", "after": "deactivated"})
    );
    let assigned = &on_bob[2];
    assert_eq!(
        assigned["changes"]["tier_id"],
        json!({"before": null, "after": tier_id})
    );
    assert_eq!(
        on_bob[1]["changes"]["tier_id"],
        json!({"before": tier_id, "after": null})
    );

    // Tier events name the tier as their target.
    let on_tier = all_events(&app, &root, &[("target", &tier_id)], 500).await;
    assert_eq!(
        actions(&on_tier),
        ["tier.deleted", "tier.updated", "tier.created"]
    );
    for event in &on_tier {
        assert_eq!(event["actor_id"], root_id.as_str(), "{event}");
    }
    assert_eq!(
        on_tier[1]["changes"]["name"],
        json!({"before": "Gold", "after": "Platinum"})
    );

    // The actor is whoever acted.
    let carol = app
        .create_user(
            &ops,
            json!({"username": "carol", "password": "carol-password"}),
        )
        .await;
    let carol_id = id_of(&carol);
    ok(
        send(app.post("/api/v1/users/carol/deactivate").bearer_auth(&ops)).await,
        200,
    )
    .await;
    let by_ops = all_events(&app, &root, &[("actor", &ops_id)], 500).await;
    assert_eq!(actions(&by_ops), ["user.deactivated", "user.created"]);
    for event in &by_ops {
        assert_eq!(event["target_id"], carol_id.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_filters_by_actor_target_action_and_time_range() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let root_id = assert_token_works(&app, &root).await.id;
    let (ops_id, ops) = admin_with_token(&app, "ops").await;
    for name in ["u1", "u2", "u3"] {
        app.create_user(&ops, json!({"username": name, "password": "user-password"}))
            .await;
    }
    for name in ["u1", "u2"] {
        ok(
            send(
                app.post(&format!("/api/v1/users/{name}/deactivate"))
                    .bearer_auth(&root),
            )
            .await,
            200,
        )
        .await;
    }
    ok(
        send(app.post("/api/v1/users/u3/deactivate").bearer_auth(&ops)).await,
        200,
    )
    .await;
    let u1_id = id_of(&read_back(&app, "u1").await);

    let everything = all_events(&app, &root, &[], 500).await;
    // root (bootstrap), ops, u1..u3 created; three deactivations.
    assert_eq!(everything.len(), 8, "{everything:?}");

    let by_root = all_events(&app, &root, &[("actor", &root_id)], 500).await;
    assert_eq!(
        actions(&by_root),
        ["user.deactivated", "user.deactivated", "user.created"]
    );
    let by_ops = all_events(&app, &root, &[("actor", &ops_id)], 500).await;
    assert_eq!(
        actions(&by_ops),
        [
            "user.deactivated",
            "user.created",
            "user.created",
            "user.created"
        ]
    );
    let on_u1 = all_events(&app, &root, &[("target", &u1_id)], 500).await;
    assert_eq!(actions(&on_u1), ["user.deactivated", "user.created"]);
    let deactivations = all_events(&app, &root, &[("action", "user.deactivated")], 500).await;
    assert_eq!(deactivations.len(), 3);
    let combined = all_events(
        &app,
        &root,
        &[
            ("actor", &root_id),
            ("action", "user.deactivated"),
            ("target", &u1_id),
        ],
        500,
    )
    .await;
    assert_eq!(combined.len(), 1);
    assert_eq!(combined[0]["target_id"], u1_id.as_str());
    let none = all_events(
        &app,
        &root,
        &[("actor", &ops_id), ("action", "user.purged")],
        500,
    )
    .await;
    assert!(none.is_empty());

    // Time range: both bounds inclusive, newest first.
    let at = |i: usize| everything[i]["at"].as_str().unwrap().to_owned();
    let (newest, third, oldest) = (at(0), at(2), at(7));
    let from_third = all_events(&app, &root, &[("from", &third)], 500).await;
    assert_eq!(from_third, everything[..3].to_vec());
    let to_third = all_events(&app, &root, &[("to", &third)], 500).await;
    assert_eq!(to_third, everything[2..].to_vec());
    let between = all_events(&app, &root, &[("from", &at(5)), ("to", &third)], 500).await;
    assert_eq!(between, everything[2..=5].to_vec());
    let all = all_events(&app, &root, &[("from", &oldest), ("to", &newest)], 500).await;
    assert_eq!(all, everything);
    let empty = all_events(&app, &root, &[("from", &newest), ("to", &oldest)], 500).await;
    assert!(empty.is_empty());
    let later = all_events(&app, &root, &[("from", "2999-01-01T00:00:00Z")], 500).await;
    assert!(later.is_empty());
    let with_offset = all_events(&app, &root, &[("to", "2999-01-01T02:00:00+02:00")], 500).await;
    assert_eq!(with_offset, everything);

    for (params, field) in [
        (vec![("action", "user.exploded")], "action"),
        (vec![("action", "USER.CREATED")], "action"),
        (vec![("from", "yesterday")], "from"),
        (vec![("to", "2024-01-01")], "to"),
        (vec![("actor", "not-a-uuid")], "actor"),
        (vec![("target", "root")], "target"),
        (vec![("cursor", "garbage")], "cursor"),
        (vec![("cursor", "1_notauuid")], "cursor"),
        (vec![("limit", "0")], "limit"),
        (vec![("limit", "501")], "limit"),
        (vec![("limit", "-1")], "limit"),
        (vec![("limit", "many")], "limit"),
    ] {
        let (status, body) = get_audit(&app, &root, &params).await;
        assert_invalid(status, &body, &["query", field]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_cursor_pagination_walks_every_event_once() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    for i in 0..6 {
        let name = format!("user{i}");
        app.create_user(
            &root,
            json!({"username": name, "password": "user-password"}),
        )
        .await;
        ok(
            patch_user(&app, &root, &name, json!({"last_name": "Changed"})).await,
            200,
        )
        .await;
    }
    // 1 bootstrap + 12 events.
    let full = all_events(&app, &root, &[], 500).await;
    assert_eq!(full.len(), 13);
    for page in [1, 2, 3, 5, 12, 13, 14] {
        assert_eq!(
            all_events(&app, &root, &[], page).await,
            full,
            "pages of {page}"
        );
    }
    // With a filter, too.
    let updates = all_events(&app, &root, &[("action", "user.updated")], 4).await;
    assert_eq!(updates.len(), 6);
    assert_eq!(
        updates,
        full.iter()
            .filter(|e| e["action"] == "user.updated")
            .cloned()
            .collect::<Vec<_>>()
    );

    // The default page is 50; the last page has no cursor.
    let (status, body) = get_audit(&app, &root, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 13);
    assert!(body["next_cursor"].is_null());
    // A cursor keeps its place while newer events arrive.
    let (_, first) = get_audit(&app, &root, &[("limit", "5")]).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    app.create_user(
        &root,
        json!({"username": "late", "password": "user-password"}),
    )
    .await;
    let (_, second) = get_audit(&app, &root, &[("limit", "5"), ("cursor", &cursor)]).await;
    assert_eq!(second["data"].as_array().unwrap(), &full[5..10].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_is_for_administrators_only() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (_, alice) = app.user_with_token("alice").await;
    let (_, ops) = admin_with_token(&app, "ops").await;
    let (status, body) = get_audit(&app, &alice, &[]).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = get_audit(&app, &alice, &[("limit", "0")]).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = send(app.get("/api/v1/audit")).await;
    assert_eq!((status, body), (401, not_authenticated()));
    for token in [&root, &ops] {
        let (status, body) = get_audit(&app, token, &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"].as_array().unwrap().len(), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_events_never_contain_passwords() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let mut secrets = vec![ADMIN_PASSWORD.to_owned()];

    // Created with a password; created by email with a temporary one.
    app.create_user(
        &root,
        json!({"username": "alice", "password": "alice-initial-secret"}),
    )
    .await;
    secrets.push("alice-initial-secret".into());
    let created = app
        .create_user(&root, json!({"email": "carol@example.com"}))
        .await;
    let carol_temp = created["temp_password"].as_str().unwrap().to_owned();
    secrets.push(carol_temp.clone());

    // An admin sets a password outright, then issues a temporary one.
    ok(
        patch_user(
            &app,
            &root,
            "alice",
            json!({"password": "alice-admin-set-secret"}),
        )
        .await,
        200,
    )
    .await;
    secrets.push("alice-admin-set-secret".into());
    let reset = ok(
        send(app.post("/api/v1/users/alice/password").bearer_auth(&root)).await,
        200,
    )
    .await;
    let alice_temp = reset["temp_password"].as_str().unwrap().to_owned();
    secrets.push(alice_temp.clone());

    // Users change their own, by /me/password and by PATCH /users/me.
    let alice = app.token("alice", &alice_temp).await;
    ok(
        send(
            app.post("/api/v1/me/password")
                .bearer_auth(&alice)
                .json(&json!({"current_password": alice_temp, "new_password": "alice-own-secret"})),
        )
        .await,
        204,
    )
    .await;
    secrets.push("alice-own-secret".into());
    ok(
        patch_user(
            &app,
            &alice,
            "me",
            json!({"password": "alice-second-secret", "current_password": "alice-own-secret"}),
        )
        .await,
        200,
    )
    .await;
    secrets.push("alice-second-secret".into());
    let carol = app.token("carol@example.com", &carol_temp).await;
    ok(
        send(
            app.post("/api/v1/me/password")
                .bearer_auth(&carol)
                .json(&json!({"currentPassword": carol_temp, "newPassword": "carol-own-secret"})),
        )
        .await,
        204,
    )
    .await;
    secrets.push("carol-own-secret".into());
    // A failed change leaves no trace either.
    let (status, _) = send(app.post("/api/v1/me/password").bearer_auth(&carol).json(
        &json!({"current_password": "wrong-guess-secret", "new_password": "never-set-secret"}),
    ))
    .await;
    assert_eq!(status, 422);
    secrets.push("wrong-guess-secret".into());
    secrets.push("never-set-secret".into());

    let events = all_events(&app, &root, &[], 500).await;
    // Every password change is recorded, as "(changed)".
    let password_events: Vec<&Value> = events
        .iter()
        .filter(|e| e["changes"].get("password").is_some())
        .collect();
    assert_eq!(password_events.len(), 5, "{events:?}");
    for event in &password_events {
        assert_eq!(event["changes"]["password"]["after"], "(changed)");
    }
    let own: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "user.password_changed" && e["actor_id"] == e["target_id"])
        .collect();
    assert_eq!(own.len(), 3, "{events:?}");

    let dump = serde_json::to_string(&events).unwrap();
    for secret in &secrets {
        assert!(
            !dump.contains(secret.as_str()),
            "an audit event contains {secret:?}"
        );
    }
    assert!(!dump.contains("$argon2"), "an audit event contains a hash");
    assert!(!dump.to_lowercase().contains("temp_password"));
}

/// Money is audited like every other change: adjustments (canonical and LNbits), transfers and
/// wallet administration, each once, with the actor, the wallet's owner as target and the
/// wallet in `changes`; replays and refusals add nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_changes_are_audited_with_the_owner_as_target() {
    use crate::money::{adjust, member, storm_client};

    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let root_id = assert_token_works(&app, &root).await.id;
    let (ops_id, ops) = admin_with_token(&app, "ops").await;
    let alice = member(&app, "alice").await;
    let bob = member(&app, "bob").await;
    let client = storm_client();

    // One adjustment, replayed twice under its key; a refused debit.
    for _ in 0..3 {
        let (status, entry) = adjust(&app, &client, &root, &alice.wallet, 1_500, Some("k1")).await;
        assert_eq!(status, 201, "{entry}");
    }
    let (status, _) = adjust(&app, &client, &root, &alice.wallet, -9_999, None).await;
    assert_eq!(status, 409);
    let (status, _) = adjust(&app, &client, &root, &alice.wallet, 7, Some("k1")).await;
    assert_eq!(status, 409);

    let adjusted = all_events(&app, &root, &[("action", "wallet.adjusted")], 500).await;
    assert_eq!(adjusted.len(), 1, "{adjusted:?}");
    let event = &adjusted[0];
    assert_eq!(event["actor_id"], root_id.as_str());
    assert_eq!(event["target_id"], alice.id.as_str());
    let after = |e: &Value, field: &str| e["changes"][field]["after"].clone();
    assert_eq!(after(event, "wallet_id"), alice.wallet.as_str());
    assert_eq!(after(event, "amount"), "1500");
    assert_eq!(after(event, "balance_after"), "1500");
    assert_eq!(after(event, "reason"), "adjust 1500");
    assert_eq!(after(event, "currency"), "usd");
    assert!(after(event, "entry_id").is_string(), "{event}");

    // The LNbits balance endpoint, by a plain administrator, on a wallet it opens.
    let (status, body) = send(
        app.put(&format!("/users/api/v1/user/{}/balance", bob.id))
            .bearer_auth(&ops)
            .json(&json!({"amount": 21})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(
        app.put(&format!("/users/api/v1/user/{}/balance", bob.id))
            .bearer_auth(&ops)
            .json(&json!({"amount": -1000})),
    )
    .await;
    assert_eq!(status, 409);
    let by_ops = all_events(&app, &root, &[("actor", &ops_id)], 500).await;
    assert_eq!(actions(&by_ops), ["wallet.adjusted"]);
    assert_eq!(by_ops[0]["target_id"], bob.id.as_str());
    assert_eq!(after(&by_ops[0], "currency"), "sat");
    assert_eq!(after(&by_ops[0], "amount"), "21000");
    assert_eq!(after(&by_ops[0], "balance_after"), "21000");
    assert_ne!(after(&by_ops[0], "wallet_id"), bob.wallet.as_str());

    // A transfer by the owner, recorded on the source's owner; replays add nothing.
    for _ in 0..2 {
        let (status, t) = send(
            app.post("/api/v1/transfers")
                .bearer_auth(&alice.token)
                .header("Idempotency-Key", "t1")
                .json(&json!({
                    "from_wallet": alice.wallet,
                    "to_wallet": bob.wallet,
                    "amount": 500,
                    "reason": "rent",
                })),
        )
        .await;
        assert_eq!(status, 201, "{t}");
    }
    let transfers = all_events(&app, &root, &[("action", "wallet.transferred")], 500).await;
    assert_eq!(transfers.len(), 1, "{transfers:?}");
    let t = &transfers[0];
    assert_eq!(t["actor_id"], alice.id.as_str());
    assert_eq!(t["target_id"], alice.id.as_str());
    assert_eq!(after(t, "from_wallet"), alice.wallet.as_str());
    assert_eq!(after(t, "to_wallet"), bob.wallet.as_str());
    assert_eq!(after(t, "to_user_id"), bob.id.as_str());
    assert_eq!(after(t, "amount"), "500");
    assert_eq!(after(t, "from_balance_after"), "1000");
    assert_eq!(after(t, "to_balance_after"), "500");

    // Opening, deleting and restoring a wallet.
    let (status, spare) = send(
        app.post(&format!("/api/v1/users/{}/wallets", alice.id))
            .bearer_auth(&alice.token)
            .json(&json!({"name": "Spare", "currency": "usd"})),
    )
    .await;
    assert_eq!(status, 201, "{spare}");
    let spare_id = id_of(&spare);
    for _ in 0..2 {
        let (status, _) = send(
            app.delete(&format!("/api/v1/wallets/{spare_id}"))
                .bearer_auth(&alice.token),
        )
        .await;
        assert_eq!(status, 204);
    }
    let (status, _) = send(
        app.post(&format!("/api/v1/wallets/{spare_id}/restore"))
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(status, 200);

    // Everything on alice, newest first; the user events are still there.
    let on_alice = all_events(&app, &root, &[("target", &alice.id)], 500).await;
    assert_eq!(
        actions(&on_alice),
        [
            "wallet.restored",
            "wallet.deleted",
            "wallet.created",
            "wallet.transferred",
            "wallet.adjusted",
            "user.created",
        ]
    );
    for e in &on_alice[..3] {
        assert_eq!(after(e, "wallet_id"), spare_id.as_str(), "{e}");
    }
    assert_eq!(on_alice[0]["actor_id"], root_id.as_str());
    assert_eq!(on_alice[1]["actor_id"], alice.id.as_str());
    assert_eq!(
        on_alice[1]["changes"]["state"],
        json!({"before": "active", "after": "deleted"})
    );
    assert_eq!(after(&on_alice[2], "name"), "Spare");
}
