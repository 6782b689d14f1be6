//! Sharing (`/me/shares`, `/me/shared-with-me`), listing with `include_shared`, and delegated
//! tokens (`/auth/delegated-token`): the real server against real PostgreSQL.

use serde_json::{json, Value};
use tessera_testkit::TestApp;

use crate::support::{assert_error, assert_invalid, assert_token_dead, get_user, me, send};

async fn share(app: &TestApp, token: &str, grantee: &str, scopes: &[&str]) -> (u16, Value) {
    send(
        app.post("/api/v1/me/shares")
            .bearer_auth(token)
            .json(&json!({"grantee": grantee, "scopes": scopes})),
    )
    .await
}

async fn managed(app: &TestApp, token: &str, first_name: &str) -> String {
    let (status, body) = send(
        app.post("/api/v1/users")
            .bearer_auth(token)
            .json(&json!({"first_name": first_name, "last_name": "Managed"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn delegated(
    app: &TestApp,
    token: &str,
    user: &str,
    scopes: Option<&[&str]>,
) -> (u16, Value) {
    let body = match scopes {
        Some(s) => json!({"user": user, "scopes": s}),
        None => json!({"user": user}),
    };
    send(
        app.post("/api/v1/auth/delegated-token")
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

async fn delegated_token(
    app: &TestApp,
    token: &str,
    user: &str,
    scopes: Option<&[&str]>,
) -> String {
    let (status, body) = delegated(app, token, user, scopes).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_are_granted_listed_changed_and_revoked() {
    let app = TestApp::spawn().await;
    let (alice_id, alice) = app.user_with_token("alice").await;
    let (bob_id, bob) = app.user_with_token("bob").await;

    let (status, body) = share(&app, &alice, "bob", &["data:read"]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["owner_id"], alice_id);
    assert_eq!(body["scopes"], json!(["data:read"]));
    // The grantee appears by the name Alice gave, nothing more of Bob's.
    assert_eq!(body["user"], json!({"username": "bob"}));
    assert!(body.get("grantee_id").is_none(), "{body}");

    // POST on an existing share replaces its scopes: 200.
    let (status, body) = share(&app, &alice, &bob_id, &["data:write", "data:read"]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scopes"], json!(["data:read", "data:write"]));

    let (status, body) = send(app.get("/api/v1/me/shares").bearer_auth(&alice)).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["user"], json!({"username": "bob"}));
    let (status, body) = send(app.get("/api/v1/me/shared-with-me").bearer_auth(&bob)).await;
    assert_eq!(status, 200);
    assert_eq!(body[0]["owner_id"], alice_id);
    assert_eq!(body[0]["grantee_id"], bob_id);
    assert_eq!(body[0]["user"]["username"], "alice");
    assert_eq!(body[0]["user"]["id"], alice_id);
    let (_, body) = send(app.get("/api/v1/me/shared-with-me").bearer_auth(&alice)).await;
    assert_eq!(body, json!([]));

    let (status, body) = send(
        app.patch("/api/v1/me/shares/bob")
            .bearer_auth(&alice)
            .json(&json!({"scopes": ["admin"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scopes"], json!(["admin"]));

    // Bob now sees Alice, but may not change or delete her.
    let (status, _) = get_user(&app, &bob, "alice").await;
    assert_eq!(status, 200);
    let (status, body) = send(
        app.patch(&format!("/api/v1/users/{alice_id}"))
            .bearer_auth(&bob)
            .json(&json!({"first_name": "Mallory"})),
    )
    .await;
    assert_error(status, &body, 403, "forbidden");

    let (status, _) = send(app.delete("/api/v1/me/shares/bob").bearer_auth(&alice)).await;
    assert_eq!(status, 204);
    let (status, _) = send(app.delete("/api/v1/me/shares/bob").bearer_auth(&alice)).await;
    assert_eq!(status, 404);
    let (status, _) = send(
        app.patch("/api/v1/me/shares/bob")
            .bearer_auth(&alice)
            .json(&json!({"scopes": ["data:read"]})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = get_user(&app, &bob, "alice").await;
    assert_eq!(status, 404, "a revoked share stops working at once");

    // Every change is audited, with Alice as actor.
    let root = app.admin_token().await;
    let (status, body) = send(
        app.get(&format!("/api/v1/audit?actor_id={alice_id}"))
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let text = body.to_string();
    for action in ["share.granted", "share.changed", "share.revoked"] {
        assert!(text.contains(action), "{action} missing from {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_requests_are_validated() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    app.user_with_token("bob").await;
    let kid = managed(&app, &alice, "Kid").await;

    let (status, body) = share(&app, &alice, "bob", &["data:read", "data:everything"]).await;
    let error = assert_invalid(status, &body, &["body", "scopes"]);
    assert!(error.msg.contains("data:everything"), "{body}");
    let (status, body) = share(&app, &alice, "bob", &[]).await;
    assert_invalid(status, &body, &["body", "scopes"]);
    let (status, body) = share(&app, &alice, "alice", &["data:read"]).await;
    assert_invalid(status, &body, &["body", "grantee"]);
    let (status, body) = share(&app, &alice, &kid, &["data:read"]).await;
    assert_invalid(status, &body, &["body", "grantee"]);
    let (status, _) = share(&app, &alice, "nobody-here", &["data:read"]).await;
    assert_eq!(status, 404);
    // Every accepted scope is stored.
    let all = [
        "data:read",
        "data:write",
        "admin",
        "openid",
        "profile",
        "offline_access",
    ];
    let (status, body) = share(&app, &alice, "bob", &all).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["scopes"], json!(all));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_share_takes_effect_at_once_on_every_server() {
    let app = TestApp::spawn().await;
    let sibling = app.spawn_sibling().await;
    let (_, alice) = app.user_with_token("alice").await;
    let (_, bob) = app.user_with_token("bob").await;
    share(&app, &alice, "bob", &["data:read"]).await;
    let token = delegated_token(&app, &bob, "alice", None).await;

    let (status, _) = get_user(&sibling, &bob, "alice").await;
    assert_eq!(status, 200);
    let (status, body) = me(&sibling, &token).await;
    assert_eq!(status, 200);
    assert_eq!(body["username"], "alice");

    let (status, _) = send(app.delete("/api/v1/me/shares/bob").bearer_auth(&alice)).await;
    assert_eq!(status, 204);
    let (status, _) = get_user(&sibling, &bob, "alice").await;
    assert_eq!(status, 404);
    assert_token_dead(&sibling, &token).await;
    assert_token_dead(&app, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_shows_self_managed_and_sharers_with_scopes() {
    let app = TestApp::spawn().await;
    let (alice_id, alice) = app.user_with_token("alice").await;
    let (_, bob) = app.user_with_token("bob").await;
    app.user_with_token("carol").await;
    let kid = managed(&app, &alice, "Kid").await;
    share(&app, &bob, "alice", &["data:read", "profile"]).await;

    let ids_and_scopes = |body: &Value| -> Vec<(String, Value, Value)> {
        let mut rows: Vec<_> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    u["display_name"].as_str().unwrap().to_owned(),
                    u["is_managed"].clone(),
                    u["scopes"].clone(),
                )
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    };
    let all = json!([
        "data:read",
        "data:write",
        "admin",
        "openid",
        "profile",
        "offline_access"
    ]);
    let (status, body) = send(app.get("/api/v1/users").bearer_auth(&alice)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_count"], 3);
    assert_eq!(
        ids_and_scopes(&body),
        vec![
            ("Kid Managed".to_owned(), json!(true), all.clone()),
            ("alice".to_owned(), json!(false), all.clone()),
            (
                "bob".to_owned(),
                json!(false),
                json!(["data:read", "profile"])
            ),
        ]
    );
    let (_, body) = send(
        app.get("/api/v1/users?include_shared=false")
            .bearer_auth(&alice),
    )
    .await;
    assert_eq!(body["total_count"], 2, "{body}");
    let (_, body) = send(
        app.get("/api/v1/users?include_managed=false&include_shared=false")
            .bearer_auth(&alice),
    )
    .await;
    assert_eq!(body["total_count"], 1, "{body}");
    assert_eq!(body["data"][0]["id"], alice_id);
    let (_, body) = send(app.get("/api/v1/users?name=bo").bearer_auth(&alice)).await;
    assert_eq!(body["total_count"], 1, "{body}");
    assert_eq!(body["data"][0]["username"], "bob");
    let (_, body) = send(app.get("/api/v1/users/count").bearer_auth(&alice)).await;
    assert_eq!(body["count"], 3);
    let _ = kid;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegated_tokens_act_as_the_subject_within_their_scopes() {
    let app = TestApp::spawn().await;
    let (alice_id, alice) = app.user_with_token("alice").await;
    let (_, bob) = app.user_with_token("bob").await;
    let kid = managed(&app, &alice, "Kid").await;

    // A manager holds every scope on a managed user.
    let (status, body) = delegated(&app, &alice, &kid, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    assert_eq!(body["user_id"], kid);
    let kid_token = body["access_token"].as_str().unwrap().to_owned();
    let claims = crate::support::claims_of(&kid_token);
    assert_eq!(claims["sub"], kid);
    assert_eq!(claims["act"], alice_id);

    let (status, body) = me(&app, &kid_token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], kid);
    let (status, body) = send(
        app.patch("/api/v1/users/me")
            .bearer_auth(&kid_token)
            .json(&json!({"first_name": "Renamed"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["first_name"], "Renamed");

    // What a delegated token may never do.
    let (status, body) = send(app.get("/api/v1/users").bearer_auth(&kid_token)).await;
    assert_error(status, &body, 403, "forbidden");
    // Account acts are refused by what the credential is, before anything is looked up.
    let (status, body) = delegated(&app, &kid_token, &kid, None).await;
    assert_error(status, &body, 403, "credential_not_allowed");
    let (status, body) = send(
        app.post("/api/v1/users")
            .bearer_auth(&kid_token)
            .json(&json!({"first_name": "Grandkid"})),
    )
    .await;
    assert_error(status, &body, 403, "credential_not_allowed");
    let (status, body) = share(&app, &kid_token, "bob", &["data:read"]).await;
    assert_error(status, &body, 403, "credential_not_allowed");
    let (status, body) = send(
        app.post("/api/v1/me/password")
            .bearer_auth(&kid_token)
            .json(&json!({"current_password": "x", "new_password": "whatever-password"})),
    )
    .await;
    assert_error(status, &body, 403, "credential_not_allowed");
    // The managed user's peers stay invisible to it.
    let peer = managed(&app, &alice, "Peer").await;
    let (status, _) = get_user(&app, &kid_token, &peer).await;
    assert_eq!(status, 404);
    // With every scope it may open a wallet for its subject.
    let (status, body) = send(
        app.post(&format!("/api/v1/users/{kid}/wallets"))
            .bearer_auth(&kid_token)
            .json(&json!({"name": "Savings", "currency": "usd"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // A grantee gets at most the share's scopes.
    share(&app, &bob, "alice", &["data:read"]).await;
    let (status, body) = delegated(&app, &alice, "bob", Some(&["data:write"])).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = delegated(&app, &alice, "bob", Some(&["data:nope"])).await;
    assert_invalid(status, &body, &["body", "scopes"]);
    let read_only = delegated_token(&app, &alice, "bob", None).await;
    assert_eq!(me(&app, &read_only).await.1["username"], "bob");
    let (status, body) = send(
        app.patch("/api/v1/users/me")
            .bearer_auth(&read_only)
            .json(&json!({"first_name": "Nope"})),
    )
    .await;
    assert_error(status, &body, 403, "credential_not_allowed");
    // Reading the subject's wallets is fine; opening one needs data:write.
    let bob_id = me(&app, &bob).await.1["id"].as_str().unwrap().to_owned();
    let (status, body) = send(
        app.get(&format!("/api/v1/users/{bob_id}/wallets"))
            .bearer_auth(&read_only),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        app.post(&format!("/api/v1/users/{bob_id}/wallets"))
            .bearer_auth(&read_only)
            .json(&json!({"name": "Nope", "currency": "usd"})),
    )
    .await;
    assert_error(status, &body, 403, "credential_not_allowed");
    // Logging out through a delegated token does not end the principal's session.
    let (status, _) = send(app.post("/api/v1/auth/logout").bearer_auth(&read_only)).await;
    assert_eq!(status, 204);
    assert_eq!(me(&app, &alice).await.0, 200);

    // Strangers cannot mint: 404 for users they cannot see.
    let (_, carol) = app.user_with_token("carol").await;
    let (status, _) = delegated(&app, &carol, "bob", None).await;
    assert_eq!(status, 404);
    let (status, _) = delegated(&app, &carol, &kid, None).await;
    assert_eq!(status, 404);

    // Narrowing the share below the token's scopes stops the token at once.
    send(
        app.patch("/api/v1/me/shares/alice")
            .bearer_auth(&bob)
            .json(&json!({"scopes": ["profile"]})),
    )
    .await;
    assert_token_dead(&app, &read_only).await;

    // The principal's logout ends every delegated token minted from that session.
    assert_eq!(me(&app, &kid_token).await.0, 200);
    let (status, _) = send(app.post("/api/v1/auth/logout").bearer_auth(&alice)).await;
    assert_eq!(status, 204);
    assert_token_dead(&app, &kid_token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_either_party_stops_delegated_tokens() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    let (_, bob) = app.user_with_token("bob").await;
    let (_, carol) = app.user_with_token("carol").await;
    share(&app, &bob, "alice", &["data:read"]).await;
    share(&app, &carol, "alice", &["data:read"]).await;
    let as_bob = delegated_token(&app, &alice, "bob", None).await;
    let as_carol = delegated_token(&app, &alice, "carol", None).await;
    let kid = managed(&app, &alice, "Kid").await;
    let as_kid = delegated_token(&app, &alice, &kid, None).await;

    // The subject deletes their account.
    let (status, _) = send(app.delete("/api/v1/users/me").bearer_auth(&bob)).await;
    assert_eq!(status, 204);
    assert_token_dead(&app, &as_bob).await;
    assert_eq!(me(&app, &as_carol).await.0, 200);
    // The managed user is purged.
    let (status, _) = send(
        app.delete(&format!("/api/v1/users/{kid}"))
            .bearer_auth(&alice),
    )
    .await;
    assert_eq!(status, 204);
    assert_token_dead(&app, &as_kid).await;
    // The principal deletes their account.
    let (status, _) = send(app.delete("/api/v1/users/me").bearer_auth(&alice)).await;
    assert_eq!(status, 204);
    assert_token_dead(&app, &as_carol).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_soft_deleted_manager_gives_back_its_managed_users() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (alice_id, alice) = app.user_with_token("alice").await;
    let kid = managed(&app, &alice, "Kid").await;
    let as_kid = delegated_token(&app, &alice, &kid, None).await;

    let (status, _) = send(app.delete("/api/v1/users/me").bearer_auth(&alice)).await;
    assert_eq!(status, 204);
    assert_token_dead(&app, &as_kid).await;
    // The managed user is kept (an administrator still reads it).
    let (status, body) = get_user(&app, &root, &kid).await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = send(
        app.post(&format!("/api/v1/users/{alice_id}/restore"))
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let alice = app.token("alice", "alice-password").await;
    let (status, body) = get_user(&app, &alice, &kid).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["is_managed"], true);
    let as_kid = delegated_token(&app, &alice, &kid, None).await;
    assert_eq!(me(&app, &as_kid).await.0, 200);
}
