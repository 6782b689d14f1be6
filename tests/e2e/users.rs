//! Users over HTTP: creation, reading, listing, updates, the lifecycle (soft delete, restore,
//! purge, deactivation) and who may do what to whom.

use serde_json::{json, Value};
use tessera_testkit::{TestApp, ADMIN_USERNAME};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_creates_a_login_user() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let root_id = assert_token_works(&app, &root).await.id;
    let response = app
        .post("/api/v1/users")
        .bearer_auth(&root)
        .json(&json!({
            "username": "alice",
            "email": "alice@example.com",
            "password": "alice-password",
            "first_name": "Alice",
            "last_name": "Liddell",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let created: ApiUser = typed(&body);
    assert!(uuid::Uuid::parse_str(&created.id).is_ok(), "{body}");
    assert_eq!(created.username.as_deref(), Some("alice"));
    assert_eq!(created.email.as_deref(), Some("alice@example.com"));
    assert_eq!(created.first_name.as_deref(), Some("Alice"));
    assert_eq!(created.last_name.as_deref(), Some("Liddell"));
    assert_eq!(created.display_name, "Alice Liddell");
    assert_eq!(created.state, "active");
    assert!(created.is_active);
    assert!(!created.is_admin);
    assert!(!created.is_superuser);
    assert!(!created.is_managed);
    assert!(created.is_local);
    assert!(!created.must_change_password);
    assert!(created.permissions.is_empty());
    assert_eq!(created.created_by, Some(root_id));
    assert!(created.deleted_at.is_none());
    // No password in any form: absent fields, so read off the raw body.
    assert!(body.get("temp_password").is_none(), "{body}");
    assert!(body.get("password").is_none(), "{body}");
    assert!(body.get("password_hash").is_none(), "{body}");

    let stored = read_user(&app, "alice").await;
    assert_eq!(stored.id, created.id);
    assert_eq!(stored.email.as_deref(), Some("alice@example.com"));
    let token = app.token("alice", "alice-password").await;
    assert_eq!(assert_token_works(&app, &token).await.id, created.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_creates_a_local_user_by_email_alone() {
    let app = TestApp::spawn().await;
    let (_, admin) = admin_with_token(&app, "ada").await;
    let created: ApiUser = answer_as(
        post_user(
            &app,
            &admin,
            json!({"email": "Carol@Example.com", "password": "carol-password", "name": "Carol Ann Jones"}),
        )
        .await,
        201,
    );
    assert_eq!(created.username.as_deref(), Some("Carol@Example.com"));
    assert_eq!(created.email.as_deref(), Some("Carol@Example.com"));
    assert_eq!(created.first_name.as_deref(), Some("Carol"));
    assert_eq!(created.last_name.as_deref(), Some("Ann Jones"));
    assert!(!created.is_managed);
    let token = app.token("carol@example.com", "carol-password").await;
    assert_eq!(assert_token_works(&app, &token).await.id, created.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_who_is_not_a_superuser_cannot_touch_a_superuser() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (_, ada) = admin_with_token(&app, "ada").await;
    let before = read_back(&app, ADMIN_USERNAME).await;
    let attempts = [
        app.patch(&format!("/api/v1/users/{ADMIN_USERNAME}"))
            .bearer_auth(&ada)
            .json(&json!({"password": "taken-over-password"})),
        app.put(&format!("/api/v1/users/{ADMIN_USERNAME}"))
            .bearer_auth(&ada)
            .form(&[("email", "ada@example.com")]),
        app.delete(&format!("/api/v1/users/{ADMIN_USERNAME}"))
            .bearer_auth(&ada),
        app.post(&format!("/api/v1/users/{ADMIN_USERNAME}/deactivate"))
            .bearer_auth(&ada),
    ];
    for attempt in attempts {
        let (status, body) = send(attempt).await;
        assert_error(status, &body, 403, "forbidden");
    }
    assert_unchanged(&before, &read_back(&app, ADMIN_USERNAME).await);
    assert_token_works(&app, &root).await;
    let (status, _) = try_login(&app, ADMIN_USERNAME, tessera_testkit::ADMIN_PASSWORD).await;
    assert_eq!(status, 200);
}

/// Creates `n` plain users named `user1..=n` after root; returns their ids in creation order.
async fn directory_of(app: &TestApp, n: usize) -> Vec<String> {
    let root = app.admin_token().await;
    let mut ids = Vec::new();
    for i in 1..=n {
        let created = create_user_typed(
            app,
            &root,
            json!({"username": format!("user{i}"), "password": "user-password"}),
        )
        .await;
        ids.push(created.id);
    }
    ids
}

/// `GET /api/v1/users` with `query` as `token`: asserts a 200 and returns the page.
async fn list_users(app: &TestApp, token: &str, query: &str) -> UserPage {
    send_as(
        app.get(&format!("/api/v1/users{query}")).bearer_auth(token),
        200,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_users_pages_by_offset_and_limit() {
    let app = TestApp::spawn().await;
    directory_of(&app, 4).await;
    let root = app.admin_token().await;

    let all = list_users(&app, &root, "").await;
    assert_eq!(
        all.usernames(),
        ["root", "user1", "user2", "user3", "user4"]
    );
    assert_eq!(all.total_count, 5);
    assert!(!all.has_more);
    assert_eq!(all.offset, 0);
    assert_eq!(all.limit, 50);
    assert_eq!(all.page, 1);
    assert_eq!(all.items_per_page, 50);

    let page = list_users(&app, &root, "?offset=1&limit=2").await;
    assert_eq!(page.usernames(), ["user1", "user2"]);
    assert_eq!(page.total_count, 5);
    assert!(page.has_more);
    assert_eq!(page.offset, 1);
    assert_eq!(page.limit, 2);
    assert_eq!(page.items_per_page, 2);

    let last = list_users(&app, &root, "?offset=4&limit=2").await;
    assert_eq!(last.usernames(), ["user4"]);
    assert!(!last.has_more);
    assert_eq!(last.total_count, 5);

    let beyond = list_users(&app, &root, "?offset=10&limit=2").await;
    assert!(beyond.data.is_empty());
    assert_eq!(beyond.total_count, 5);
    assert!(!beyond.has_more);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_users_pages_by_page_and_items_per_page() {
    let app = TestApp::spawn().await;
    directory_of(&app, 4).await;
    let root = app.admin_token().await;

    let second = list_users(&app, &root, "?page=2&items_per_page=2").await;
    assert_eq!(second.usernames(), ["user2", "user3"]);
    assert_eq!(second.total_count, 5);
    assert!(second.has_more);
    assert_eq!(second.offset, 2);
    assert_eq!(second.limit, 2);
    assert_eq!(second.page, 2);
    assert_eq!(second.items_per_page, 2);

    let third = list_users(&app, &root, "?page=3&items_per_page=2").await;
    assert_eq!(third.usernames(), ["user4"]);
    assert!(!third.has_more);
    assert_eq!(third.offset, 4);
    assert_eq!(third.page, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_paging_is_422_naming_the_query_field() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("page=0", "page"),
        ("page=0&items_per_page=10", "page"),
        ("items_per_page=0", "items_per_page"),
        ("items_per_page=501", "items_per_page"),
        ("limit=abc", "limit"),
        ("offset=-1", "offset"),
        ("offset=10000001", "offset"),
        ("offset=99999999999999999999", "offset"),
        ("page=99999999999", "page"),
        ("offset=5&page=1", "offset"),
    ] {
        let (status, body) = send(
            app.get(&format!("/api/v1/users?{query}"))
                .bearer_auth(&root),
        )
        .await;
        assert_invalid(status, &body, &["query", field]);
    }
    // The bounds themselves are fine.
    for query in ["limit=1", "limit=500", "page=1&items_per_page=500"] {
        let (status, body) = send(
            app.get(&format!("/api/v1/users?{query}"))
                .bearer_auth(&root),
        )
        .await;
        assert_eq!(status, 200, "{query}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_user_lists_only_themselves_and_their_managed_users() {
    let app = TestApp::spawn().await;
    directory_of(&app, 2).await;
    let (bob_id, bob) = app.user_with_token("bob").await;
    let managed =
        create_user_typed(&app, &bob, json!({"first_name": "Kid", "last_name": "Bob"})).await;
    let page = list_users(&app, &bob, "").await;
    assert_eq!(page.ids(), [bob_id.as_str(), managed.id.as_str()]);
    assert_eq!(page.total_count, 2);
    // include_deleted is an administrator's option; it shows a plain user nothing more.
    let page = list_users(&app, &bob, "?include_deleted=true&include_managed=false").await;
    assert_eq!(page.total_count, 1);
    assert_eq!(page.data[0].id, bob_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_by_id_and_by_username_in_any_case() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let created = create_user_typed(
        &app,
        &root,
        json!({"username": "Alice.Smith", "password": "alice-password"}),
    )
    .await;
    let id = created.id.as_str();
    for reference in [id, "Alice.Smith", "alice.smith", "ALICE.SMITH"] {
        let (status, body) = get_user(&app, &root, reference).await;
        assert_eq!(status, 200, "{reference}: {body}");
        let user: ApiUser = typed(&body);
        assert_eq!(user.id, id, "{reference}");
        assert_eq!(user.username.as_deref(), Some("Alice.Smith"));
    }
    // A user reads themselves by name too.
    let alice = app.token("alice.smith", "alice-password").await;
    let user: ApiUser = answer_as(get_user(&app, &alice, "ALICE.smith").await, 200);
    assert_eq!(user.id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_and_put_update_partially_with_json_and_forms() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    app.create_user(
        &root,
        json!({"username": "alice", "email": "alice@example.com", "password": "alice-password",
               "first_name": "Alice", "last_name": "Liddell"}),
    )
    .await;

    let user: ApiUser = answer_as(
        patch_user(&app, &root, "alice", json!({"first_name": "Alicia"})).await,
        200,
    );
    assert_eq!(user.first_name.as_deref(), Some("Alicia"));
    assert_eq!(user.last_name.as_deref(), Some("Liddell"));
    assert_eq!(user.email.as_deref(), Some("alice@example.com"));

    let user: ApiUser = send_as(
        app.put("/api/v1/users/alice")
            .bearer_auth(&root)
            .form(&[("last_name", "Carroll"), ("email", "alicia@example.com")]),
        200,
    )
    .await;
    assert_eq!(user.first_name.as_deref(), Some("Alicia"));
    assert_eq!(user.last_name.as_deref(), Some("Carroll"));
    assert_eq!(user.email.as_deref(), Some("alicia@example.com"));

    let user: ApiUser = send_as(
        app.patch("/api/v1/users/alice")
            .bearer_auth(&root)
            .form(&[("username", "alicia")]),
        200,
    )
    .await;
    assert_eq!(user.username.as_deref(), Some("alicia"));

    let user: ApiUser = send_as(
        app.put("/api/v1/users/alicia")
            .bearer_auth(&root)
            .json(&json!({"email": null, "last_name": null})),
        200,
    )
    .await;
    assert!(user.email.is_none(), "{user:?}");
    assert!(user.last_name.is_none(), "{user:?}");
    assert_eq!(user.first_name.as_deref(), Some("Alicia"));

    let stored = read_user(&app, "alicia").await;
    assert_eq!(stored.first_name.as_deref(), Some("Alicia"));
    assert!(stored.last_name.is_none());
    assert!(stored.email.is_none());
    // The password was not touched by any of it.
    let (status, _) = try_login(&app, "alicia", "alice-password").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_update_their_own_names() {
    let app = TestApp::spawn().await;
    let (id, alice) = app.user_with_token("alice").await;
    let user: ApiUser = answer_as(
        patch_user(&app, &alice, &id, json!({"name": "Alice Liddell"})).await,
        200,
    );
    assert_eq!(user.first_name.as_deref(), Some("Alice"));
    assert_eq!(user.last_name.as_deref(), Some("Liddell"));
    assert_eq!(user.display_name, "Alice Liddell");
    assert_eq!(user.name, "Alice Liddell");

    let user: ApiUser = send_as(
        app.put("/api/v1/users/alice")
            .bearer_auth(&alice)
            .form(&[("first_name", "  Ally  ")]),
        200,
    )
    .await;
    assert_eq!(user.first_name.as_deref(), Some("Ally"));
    assert_eq!(user.last_name.as_deref(), Some("Liddell"));

    let stored = read_user(&app, &id).await;
    assert_eq!(stored.display_name, "Ally Liddell");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_ones_own_password_needs_the_current_one() {
    let app = TestApp::spawn().await;
    let (_, other_session) = app.user_with_token("alice").await;
    let current = app.token("alice", "alice-password").await;

    for body in [
        json!({"password": "brand-new-password"}),
        json!({"password": "brand-new-password", "current_password": "wrong-password"}),
    ] {
        let (status, response) = send(
            app.patch("/api/v1/users/me")
                .bearer_auth(&current)
                .json(&body),
        )
        .await;
        assert_invalid(status, &response, &["body", "current_password"]);
    }
    // Refused means unchanged: the old password works, the new one does not, sessions live.
    let (status, _) = try_login(&app, "alice", "alice-password").await;
    assert_eq!(status, 200);
    assert_login_refused(&app, "alice", "brand-new-password").await;
    assert_token_works(&app, &other_session).await;

    let (status, body) =
        send(app.patch("/api/v1/users/me").bearer_auth(&current).json(
            &json!({"password": "brand-new-password", "current_password": "alice-password"}),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_login_refused(&app, "alice", "alice-password").await;
    let (status, _) = try_login(&app, "alice", "brand-new-password").await;
    assert_eq!(status, 200);
    assert_token_works(&app, &current).await;
    assert_token_dead(&app, &other_session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_password_change_by_form_with_the_camel_case_alias_works() {
    let app = TestApp::spawn().await;
    let (id, alice) = app.user_with_token("alice").await;
    let (status, body) = send(
        app.patch(&format!("/api/v1/users/{id}"))
            .bearer_auth(&alice)
            .form(&[
                ("password", "brand-new-password"),
                ("currentPassword", "alice-password"),
            ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = try_login(&app, "alice", "brand-new-password").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_setting_a_password_ends_every_session_of_that_user() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    let alice_pair = login_pair(&app, "alice", "alice-password").await;
    let (_, admin) = admin_with_token(&app, "ada").await;

    let (status, body) = patch_user(
        &app,
        &admin,
        "alice",
        json!({"password": "chosen-by-admin"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_token_dead(&app, &alice).await;
    assert_token_dead(&app, &alice_pair.access_token).await;
    let (status, _) = try_refresh(&app, &alice_pair.refresh_token).await;
    assert_eq!(status, 401);
    assert_login_refused(&app, "alice", "alice-password").await;
    let fresh = app.token("alice", "chosen-by-admin").await;
    assert_token_works(&app, &fresh).await;
    // The administrator's own session is unaffected.
    assert_token_works(&app, &admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_user_cannot_set_another_users_password_or_reach_them() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    app.user_with_token("bob").await;
    let (status, body) = patch_user(
        &app,
        &alice,
        "bob",
        json!({"password": "hijacked-password"}),
    )
    .await;
    assert_error(status, &body, 404, "not_found");
    let (status, _) = try_login(&app, "bob", "bob-password").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_superuser_changes_admin_superuser_and_permissions() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (ada_id, ada) = admin_with_token(&app, "ada").await;
    app.user_with_token("bob").await;

    for (target, change) in [
        ("bob", json!({"is_admin": true})),
        ("bob", json!({"is_superuser": true})),
        ("bob", json!({"permissions": 1 << 20})),
        ("bob", json!({"permissions": 1 << 21})),
        ("ada", json!({"is_superuser": true})),
        ("ada", json!({"is_admin": false})),
        (ADMIN_USERNAME, json!({"is_superuser": false})),
        (ADMIN_USERNAME, json!({"first_name": "Rooty"})),
    ] {
        let (status, body) = patch_user(&app, &ada, target, change).await;
        assert_error(status, &body, 403, "forbidden");
    }
    let bob = read_user(&app, "bob").await;
    assert!(!bob.is_admin);
    assert!(!bob.is_superuser);
    assert_eq!(bob.permissions_bitmask, 0);
    let ada_now = read_user(&app, &ada_id).await;
    assert!(ada_now.is_admin);
    assert!(!ada_now.is_superuser);
    let root_now = read_user(&app, ADMIN_USERNAME).await;
    assert!(root_now.is_superuser);
    assert!(root_now.first_name.is_none());

    let bob: ApiUser = answer_as(
        patch_user(&app, &root, "bob", json!({"is_admin": true})).await,
        200,
    );
    assert!(bob.is_admin);
    assert!(!bob.is_superuser);
    let bob: ApiUser = answer_as(
        patch_user(&app, &root, "bob", json!({"is_superuser": true})).await,
        200,
    );
    assert!(bob.is_superuser);
    let bob: ApiUser = answer_as(
        patch_user(&app, &root, "bob", json!({"permissions": 1})).await,
        200,
    );
    assert_eq!(bob.permissions, ["developer"]);
    assert_eq!(bob.permissions_bitmask, 1);
    assert!(!bob.is_admin);
    assert!(!bob.is_superuser);
    assert_eq!(read_user(&app, "bob").await.permissions_bitmask, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_user_cannot_grant_themselves_anything() {
    let app = TestApp::spawn().await;
    let (id, alice) = app.user_with_token("alice").await;
    for (path, change) in [
        ("/api/v1/users/me", json!({"is_admin": true})),
        ("/api/v1/users/me", json!({"is_superuser": true})),
        ("/api/v1/users/me", json!({"permissions": 1})),
        (
            "/api/v1/users/alice",
            json!({"is_admin": true, "first_name": "Sneaky"}),
        ),
    ] {
        let (status, body) = send(app.patch(path).bearer_auth(&alice).json(&change)).await;
        assert_error(status, &body, 403, "forbidden");
    }
    let stored = read_user(&app, &id).await;
    assert!(!stored.is_admin);
    assert_eq!(stored.permissions_bitmask, 0);
    assert!(stored.first_name.is_none(), "{stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_deleted_user_is_hidden_locked_out_and_keeps_their_names() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let created = create_user_typed(
        &app,
        &root,
        json!({"username": "alice", "email": "alice@example.com", "password": "alice-password"}),
    )
    .await;
    let id = created.id.as_str();
    let alice = app.token("alice", "alice-password").await;
    let (_, bob) = app.user_with_token("bob").await;

    let response = app
        .delete("/api/v1/users/alice")
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());

    assert_token_dead(&app, &alice).await;
    assert_login_refused(&app, "alice", "alice-password").await;
    for reference in [id, "alice"] {
        let (status, body) = get_user(&app, &bob, reference).await;
        assert_error(status, &body, 404, "not_found");
    }
    // Administrators still see it, marked deleted.
    let stored = read_user(&app, id).await;
    assert_eq!(stored.state, "deleted");
    assert!(!stored.is_active);
    assert!(stored.deleted_at.is_some(), "{stored:?}");

    let (_, listed) = send_typed::<UserPage>(app.get("/api/v1/users").bearer_auth(&root)).await;
    assert!(!listed.usernames().contains(&"alice"), "{listed:?}");
    assert_eq!(listed.total_count, 2);
    let (_, listed) = send_typed::<UserPage>(
        app.get("/api/v1/users?include_deleted=true")
            .bearer_auth(&root),
    )
    .await;
    assert!(listed.usernames().contains(&"alice"), "{listed:?}");
    assert_eq!(listed.total_count, 3);

    let (status, body) = post_user(
        &app,
        &root,
        json!({"username": "ALICE", "password": "another-password"}),
    )
    .await;
    assert_error(status, &body, 409, "duplicate_username");
    let (status, body) = post_user(
        &app,
        &root,
        json!({"username": "alice2", "email": "Alice@EXAMPLE.com", "password": "another-password"}),
    )
    .await;
    assert_error(status, &body, 409, "duplicate_email");
    assert_eq!(all_usernames(&app).await, [ADMIN_USERNAME, "alice", "bob"]);

    // Deleting again changes nothing.
    let (status, _) = send(app.delete("/api/v1/users/alice").bearer_auth(&root)).await;
    assert_eq!(status, 204);
    assert_eq!(read_user(&app, id).await.deleted_at, stored.deleted_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_restores_a_soft_deleted_user() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (id, _) = app.user_with_token("alice").await;
    let (_, admin) = admin_with_token(&app, "ada").await;
    let (status, _) = send(app.delete("/api/v1/users/alice").bearer_auth(&root)).await;
    assert_eq!(status, 204);

    let restored: ApiUser = send_as(
        app.post("/api/v1/users/alice/restore").bearer_auth(&admin),
        200,
    )
    .await;
    assert_eq!(restored.id, id);
    assert_eq!(restored.state, "active");
    assert!(restored.deleted_at.is_none());
    let token = app.token("alice", "alice-password").await;
    assert_token_works(&app, &token).await;

    let (status, body) = send(app.post("/api/v1/users/alice/restore").bearer_auth(&admin)).await;
    assert_error(status, &body, 409, "invalid_state");
    assert_eq!(read_user(&app, &id).await.state, "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_user_cannot_restore_or_deactivate() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (_, alice) = app.user_with_token("alice").await;
    app.user_with_token("bob").await;
    let (status, body) = send(
        app.post("/api/v1/users/alice/deactivate")
            .bearer_auth(&alice),
    )
    .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = send(app.post("/api/v1/users/bob/deactivate").bearer_auth(&alice)).await;
    assert_error(status, &body, 404, "not_found");
    let (status, _) = send(app.delete("/api/v1/users/bob").bearer_auth(&root)).await;
    assert_eq!(status, 204);
    let (status, body) = send(app.post("/api/v1/users/bob/restore").bearer_auth(&alice)).await;
    assert_error(status, &body, 404, "not_found");
    assert_eq!(read_user(&app, "bob").await.state, "deleted");
    assert_eq!(read_user(&app, "alice").await.state, "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superuser_purges_a_user_for_good() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (id, alice) = app.user_with_token("alice").await;
    let managed = create_user_typed(&app, &alice, json!({"first_name": "Kid"})).await;
    let managed_id = managed.id.as_str();

    let (status, body) = send(app.delete("/api/v1/users/db_user/alice").bearer_auth(&root)).await;
    assert_eq!(status, 204, "{body}");
    assert_absent(&app, &id).await;
    assert_absent(&app, "alice").await;
    // Their managed users went with them.
    assert_absent(&app, managed_id).await;
    assert_token_dead(&app, &alice).await;
    let (status, _) = send(app.post("/api/v1/users/alice/restore").bearer_auth(&root)).await;
    assert_eq!(status, 404);
    // The name is free again.
    let again = create_user_typed(
        &app,
        &root,
        json!({"username": "Alice", "password": "alice-password"}),
    )
    .await;
    assert_ne!(again.id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_deleted_user_can_be_purged() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (id, _) = app.user_with_token("alice").await;
    let (status, _) = send(app.delete("/api/v1/users/alice").bearer_auth(&root)).await;
    assert_eq!(status, 204);
    let (status, _) = send(
        app.delete(&format!("/api/v1/users/db_user/{id}"))
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(status, 204);
    assert_absent(&app, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_who_is_not_a_superuser_cannot_purge() {
    let app = TestApp::spawn().await;
    let (id, alice) = app.user_with_token("alice").await;
    let (_, admin) = admin_with_token(&app, "ada").await;
    let (status, body) = send(
        app.delete("/api/v1/users/db_user/alice")
            .bearer_auth(&admin),
    )
    .await;
    assert_error(status, &body, 403, "forbidden");
    let stored = read_user(&app, &id).await;
    assert_eq!(stored.state, "active");
    assert_token_works(&app, &alice).await;
    // A plain user cannot even see whom they would purge.
    let (_, bob) = app.user_with_token("bob").await;
    let (status, body) = send(app.delete("/api/v1/users/db_user/alice").bearer_auth(&bob)).await;
    assert_error(status, &body, 404, "not_found");
    assert_eq!(read_user(&app, &id).await.state, "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivation_locks_out_at_once_and_reactivation_lets_back_in() {
    let app = TestApp::spawn().await;
    let (id, alice) = app.user_with_token("alice").await;
    let (_, admin) = admin_with_token(&app, "ada").await;

    let user: ApiUser = send_as(
        app.post("/api/v1/users/alice/deactivate")
            .bearer_auth(&admin),
        200,
    )
    .await;
    assert_eq!(user.state, "deactivated");
    assert!(!user.is_active);
    assert_token_dead(&app, &alice).await;
    assert_login_refused(&app, "alice", "alice-password").await;
    assert_eq!(read_user(&app, &id).await.state, "deactivated");

    let user: ApiUser = send_as(
        app.post("/api/v1/users/alice/reactivate")
            .bearer_auth(&admin),
        200,
    )
    .await;
    assert_eq!(user.state, "active");
    let fresh = app.token("alice", "alice-password").await;
    assert_token_works(&app, &fresh).await;
    // The token from before the lock-out stays dead.
    assert_token_dead(&app, &alice).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_user_cannot_be_deactivated_or_reactivated() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    app.user_with_token("alice").await;
    let (status, _) = send(app.delete("/api/v1/users/alice").bearer_auth(&root)).await;
    assert_eq!(status, 204);
    for action in ["deactivate", "reactivate"] {
        let (status, body) = send(
            app.post(&format!("/api/v1/users/alice/{action}"))
                .bearer_auth(&root),
        )
        .await;
        assert_error(status, &body, 409, "invalid_state");
    }
    assert_eq!(read_user(&app, "alice").await.state, "deleted");
    assert_login_refused(&app, "alice", "alice-password").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_me_reads_updates_and_deletes_the_caller() {
    let app = TestApp::spawn().await;
    let (id, alice) = app.user_with_token("alice").await;
    let user: ApiUser = answer_as(me(&app, &alice).await, 200);
    assert_eq!(user.id, id);
    assert_eq!(user.username.as_deref(), Some("alice"));

    let user: ApiUser = send_as(
        app.patch("/api/v1/users/me")
            .bearer_auth(&alice)
            .json(&json!({"first_name": "Alice", "email": "alice@example.com"})),
        200,
    )
    .await;
    assert_eq!(user.id, id);
    assert_eq!(user.first_name.as_deref(), Some("Alice"));
    assert_eq!(user.email.as_deref(), Some("alice@example.com"));
    assert_eq!(me(&app, &alice).await.1["first_name"], "Alice");

    let user: ApiUser = send_as(
        app.put("/api/v1/users/me")
            .bearer_auth(&alice)
            .form(&[("last_name", "Liddell")]),
        200,
    )
    .await;
    assert_eq!(user.display_name, "Alice Liddell");

    let (status, _) = send(app.delete("/api/v1/users/me").bearer_auth(&alice)).await;
    assert_eq!(status, 204);
    assert_token_dead(&app, &alice).await;
    assert_login_refused(&app, "alice", "alice-password").await;
    assert_eq!(read_user(&app, &id).await.state, "deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_active_superuser_cannot_remove_themselves() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    // A second superuser that is deactivated does not count.
    app.create_user(
        &root,
        json!({"username": "spare", "password": "spare-password", "is_superuser": true}),
    )
    .await;
    let (status, _) = send(
        app.post("/api/v1/users/spare/deactivate")
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(status, 200);

    let attempts = [
        app.delete("/api/v1/users/me").bearer_auth(&root),
        app.delete(&format!("/api/v1/users/{ADMIN_USERNAME}"))
            .bearer_auth(&root),
        app.post(&format!("/api/v1/users/{ADMIN_USERNAME}/deactivate"))
            .bearer_auth(&root),
        app.patch("/api/v1/users/me")
            .bearer_auth(&root)
            .json(&json!({"is_superuser": false})),
        app.patch("/api/v1/users/me")
            .bearer_auth(&root)
            .json(&json!({"permissions": 0})),
        app.delete(&format!("/api/v1/users/db_user/{ADMIN_USERNAME}"))
            .bearer_auth(&root),
    ];
    for attempt in attempts {
        let (status, body) = send(attempt).await;
        assert_error(status, &body, 409, "last_superuser");
    }
    let stored = read_user(&app, ADMIN_USERNAME).await;
    assert_eq!(stored.state, "active");
    assert!(stored.is_superuser);
    assert_token_works(&app, &root).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superuser_may_step_down_once_another_is_active() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    app.create_user(
        &root,
        json!({"username": "second", "password": "second-password", "is_superuser": true}),
    )
    .await;
    let user: ApiUser = send_as(
        app.patch("/api/v1/users/me")
            .bearer_auth(&root)
            .json(&json!({"is_superuser": false})),
        200,
    )
    .await;
    assert!(!user.is_superuser);

    // Now `second` is the last one.
    let second = app.token("second", "second-password").await;
    let (status, body) = send(app.delete("/api/v1/users/me").bearer_auth(&second)).await;
    assert_error(status, &body, 409, "last_superuser");
    // Restore root, and `second` may leave.
    let (status, _) =
        patch_user(&app, &second, ADMIN_USERNAME, json!({"is_superuser": true})).await;
    assert_eq!(status, 200);
    let (status, body) = send(app.delete("/api/v1/users/me").bearer_auth(&second)).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(read_user(&app, "second").await.state, "deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superuser_may_deactivate_themselves_once_another_is_active() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    app.create_user(
        &root,
        json!({"username": "second", "password": "second-password", "is_superuser": true}),
    )
    .await;
    let user: ApiUser = send_as(
        app.post(&format!("/api/v1/users/{ADMIN_USERNAME}/deactivate"))
            .bearer_auth(&root),
        200,
    )
    .await;
    assert_eq!(user.state, "deactivated");
    assert_token_dead(&app, &root).await;
    let second = app.token("second", "second-password").await;
    let user: ApiUser = answer_as(get_user(&app, &second, ADMIN_USERNAME).await, 200);
    assert_eq!(user.state, "deactivated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_user_gets_404_for_another_plain_user() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    let (bob_id, _) = app.user_with_token("bob").await;
    let before = read_back(&app, &bob_id).await;

    for reference in [bob_id.as_str(), "bob", "BOB"] {
        let (status, body) = get_user(&app, &alice, reference).await;
        assert_error(status, &body, 404, "not_found");
        let (status, body) =
            patch_user(&app, &alice, reference, json!({"first_name": "Pwned"})).await;
        assert_error(status, &body, 404, "not_found");
        let (status, body) = send(
            app.put(&format!("/api/v1/users/{reference}"))
                .bearer_auth(&alice)
                .form(&[("first_name", "Pwned")]),
        )
        .await;
        assert_error(status, &body, 404, "not_found");
        let (status, body) = send(
            app.delete(&format!("/api/v1/users/{reference}"))
                .bearer_auth(&alice),
        )
        .await;
        assert_error(status, &body, 404, "not_found");
    }
    // The same 404 as for somebody who does not exist.
    let (status, missing) = get_user(&app, &alice, "nobody").await;
    let (_, hidden) = get_user(&app, &alice, "bob").await;
    assert_eq!(status, 404);
    assert_eq!(missing, hidden);

    assert_unchanged(&before, &read_back(&app, &bob_id).await);
    let (status, _) = try_login(&app, "bob", "bob-password").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_user_cannot_create_login_users() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    for body in [
        json!({"username": "mallory", "password": "mallory-password"}),
        json!({"email": "mallory@example.com", "password": "mallory-password"}),
        json!({"username": "mallory", "is_superuser": true}),
    ] {
        let (status, response) = post_user(&app, &alice, body).await;
        assert_error(status, &response, 403, "forbidden");
    }
    assert_absent(&app, "mallory").await;
    assert_absent(&app, "mallory@example.com").await;
    assert_eq!(all_usernames(&app).await, [ADMIN_USERNAME, "alice"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_creates_a_user_without_a_password_who_gets_a_temporary_one() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let created: ApiUser = answer_as(
        post_user(&app, &root, json!({"username": "temp"})).await,
        201,
    );
    assert!(created.must_change_password);
    let temp = created.temp_password.as_deref().unwrap();
    assert!(temp.len() >= 8, "{created:?}");
    assert!(read_back(&app, "temp").await.get("temp_password").is_none());
    let token = app.token("temp", temp).await;
    // Only reading oneself and changing the password are allowed until then.
    assert_token_works(&app, &token).await;
    let (status, body) = send(app.get("/api/v1/users").bearer_auth(&token)).await;
    assert_error(status, &body, 403, "password_change_required");
    let user: ApiUser = send_as(
        app.patch("/api/v1/users/me")
            .bearer_auth(&token)
            .json(&json!({"password": "my-own-password", "current_password": temp})),
        200,
    )
    .await;
    assert!(!user.must_change_password);
    let (status, body) = send(app.get("/api/v1/users").bearer_auth(&token)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_user_creates_and_runs_a_managed_user() {
    let app = TestApp::spawn().await;
    let (alice_id, alice) = app.user_with_token("alice").await;
    let (_, stranger) = app.user_with_token("bob").await;

    let (status, body) = post_user(
        &app,
        &alice,
        json!({"first_name": "Junior", "last_name": "Liddell"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let managed: ApiUser = typed(&body);
    assert!(managed.is_managed);
    assert_eq!(managed.manager_id, Some(alice_id));
    assert!(managed.username.is_none());
    assert!(managed.email.is_none());
    assert!(!managed.is_local);
    assert_eq!(managed.display_name, "Junior Liddell");
    assert!(body.get("temp_password").is_none());
    let id = managed.id.as_str();

    let user: ApiUser = answer_as(get_user(&app, &alice, id).await, 200);
    assert_eq!(user.id, id);
    let user: ApiUser = answer_as(
        patch_user(&app, &alice, id, json!({"first_name": "Senior"})).await,
        200,
    );
    assert_eq!(user.first_name.as_deref(), Some("Senior"));
    let user: ApiUser = send_as(
        app.put(&format!("/api/v1/users/{id}"))
            .bearer_auth(&alice)
            .form(&[("last_name", "Hargreaves")]),
        200,
    )
    .await;
    assert_eq!(user.display_name, "Senior Hargreaves");

    // Strangers do not see it at all.
    let (status, body) = get_user(&app, &stranger, id).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = patch_user(&app, &stranger, id, json!({"first_name": "X"})).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = send(
        app.delete(&format!("/api/v1/users/{id}"))
            .bearer_auth(&stranger),
    )
    .await;
    assert_error(status, &body, 404, "not_found");
    assert_eq!(
        read_user(&app, id).await.first_name.as_deref(),
        Some("Senior")
    );

    // Managed users get no login identity.
    let (status, body) = patch_user(&app, &alice, id, json!({"username": "junior"})).await;
    assert_invalid(status, &body, &["body", "username"]);
    let (status, body) = patch_user(&app, &alice, id, json!({"password": "junior-password"})).await;
    assert_invalid(status, &body, &["body", "password"]);

    // Deleting a managed user purges it.
    let (status, _) = send(
        app.delete(&format!("/api/v1/users/{id}"))
            .bearer_auth(&alice),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = get_user(&app, &alice, id).await;
    assert_eq!(status, 404);
    assert_absent(&app, id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_a_managed_user_with_a_password_or_without_names_is_422() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    let (status, body) = post_user(
        &app,
        &alice,
        json!({"first_name": "Junior", "password": "junior-password"}),
    )
    .await;
    assert_invalid(status, &body, &["body", "password"]);
    let (status, body) = post_user(&app, &alice, json!({})).await;
    assert_invalid(status, &body, &["body", "first_name"]);
    let (status, page) = send_typed::<UserPage>(app.get("/api/v1/users").bearer_auth(&alice)).await;
    assert_eq!(status, 200);
    assert_eq!(page.total_count, 1, "{page:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_collection_answers_with_a_trailing_slash() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let created: ApiUser = send_as(
        app.post("/api/v1/users/")
            .bearer_auth(&root)
            .json(&json!({"username": "alice", "password": "alice-password"})),
        201,
    )
    .await;
    let page: UserPage = send_as(app.get("/api/v1/users/").bearer_auth(&root), 200).await;
    assert_eq!(page.usernames(), [ADMIN_USERNAME, "alice"]);
    let user: ApiUser = send_as(app.get("/api/v1/users/alice/").bearer_auth(&root), 200).await;
    assert_eq!(user.id, created.id);
    let user: ApiUser = send_as(app.get("/api/v1/users/me/").bearer_auth(&root), 200).await;
    assert_eq!(user.username.as_deref(), Some(ADMIN_USERNAME));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_demotions_on_two_servers_never_leave_no_superuser() {
    let a = TestApp::spawn().await;
    let b = a.spawn_sibling().await;
    let root = a.admin_token().await;
    for round in 0..5 {
        let other = format!("second{round}");
        a.create_user(
            &root,
            json!({"username": other, "password": "second-password", "is_superuser": true}),
        )
        .await;
        let second = b.token(&other, "second-password").await;
        // Each demotes the other at the same moment, through different servers.
        let (by_root, by_second) = tokio::join!(
            send(
                a.patch(&format!("/api/v1/users/{other}"))
                    .bearer_auth(&root)
                    .json(&json!({"is_superuser": false}))
            ),
            send(
                b.patch(&format!("/api/v1/users/{ADMIN_USERNAME}"))
                    .bearer_auth(&second)
                    .json(&json!({"is_superuser": false}))
            ),
        );
        // 200: demoted; 409: refused as the last superuser; 404: the caller's own demotion
        // committed first, so they can no longer see the other at all.
        let statuses = [by_root.0, by_second.0];
        assert!(
            statuses.iter().all(|s| matches!(*s, 200 | 404 | 409)),
            "{by_root:?} {by_second:?}"
        );
        assert!(
            statuses.contains(&200) || statuses.contains(&409),
            "{statuses:?}"
        );
        // Each reads themselves: whoever lost superuser may no longer see the other.
        let root_now = assert_token_works(&a, &root).await;
        let second_now = assert_token_works(&b, &second).await;
        let superusers = [&root_now, &second_now]
            .iter()
            .filter(|u| u.is_superuser)
            .count();
        assert!(
            superusers >= 1,
            "round {round}: nobody is a superuser any more"
        );
        if !root_now.is_superuser {
            // Put root back for the next round, and retire the other.
            let (status, _) =
                patch_user(&b, &second, ADMIN_USERNAME, json!({"is_superuser": true})).await;
            assert_eq!(status, 200);
        }
        let (status, body) = send(
            a.delete(&format!("/api/v1/users/db_user/{other}"))
                .bearer_auth(&root),
        )
        .await;
        assert_eq!(status, 204, "{body}");
    }
}

/// Housekeeping (retention.*) purges a soft-deleted user once its retention period is over,
/// with everything it owns, and records it as done by the system.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn housekeeping_purges_users_past_their_retention() {
    let app = TestApp::spawn_with(&[
        ("retention.deleted_users_secs", "1".to_owned()),
        ("retention.interval_secs", "1".to_owned()),
    ])
    .await;
    let root = app.admin_token().await;
    let (id, alice) = app.user_with_token("alice").await;
    let managed_id = create_user_typed(&app, &alice, json!({"first_name": "Kid"}))
        .await
        .id;
    app.user_with_token("bob").await;
    let (status, _) = send(app.delete("/api/v1/users/alice").bearer_auth(&root)).await;
    assert_eq!(status, 204);

    let mut waited = 0;
    loop {
        let (status, body) = get_user(&app, &root, &id).await;
        if status == 404 {
            break;
        }
        assert_eq!(body["state"], "deleted", "{body}");
        waited += 1;
        assert!(waited < 100, "alice was not purged within 10 s: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_absent(&app, "alice").await;
    assert_absent(&app, &managed_id).await;
    // Live users are never touched.
    assert_eq!(read_user(&app, "bob").await.state, "active");
    let (status, body) = send(
        app.get("/api/v1/audit")
            .bearer_auth(&root)
            .query(&[("action", "user.purged")]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let events = body["data"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0]["target_id"], id.as_str());
    assert!(events[0]["actor_id"].is_null(), "{body}");
    // The run is counted (after the purge commits: wait for it to be reported).
    let line = "tessera_housekeeping_removed_total{kind=\"users\"} 1";
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = metrics_text(&app).await;
        if metrics.contains(line) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(metrics.contains(line), "{metrics}");
    assert!(metrics.contains("tessera_housekeeping_runs_total{outcome=\"ok\"}"));
    // The name is free again.
    app.user_with_token("alice").await;
}

/// Past the retention period a soft-deleted user cannot be restored, even while housekeeping
/// has not run yet (here it never runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_past_its_retention_cannot_be_restored() {
    let app = TestApp::spawn_with(&[
        ("retention.deleted_users_secs", "1".to_owned()),
        ("retention.interval_secs", "0".to_owned()),
    ])
    .await;
    let root = app.admin_token().await;
    let (id, _) = app.user_with_token("alice").await;
    let (status, _) = send(app.delete("/api/v1/users/alice").bearer_auth(&root)).await;
    assert_eq!(status, 204);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = send(app.post("/api/v1/users/alice/restore").bearer_auth(&root)).await;
    assert_error(status, &body, 409, "retention_expired");
    assert_eq!(read_user(&app, &id).await.state, "deleted");
}
