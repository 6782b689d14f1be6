//! Account administration over HTTP: users created by email with a temporary password, the
//! must-change-password gate, changing one's own password, admin password resets and forced
//! logout across server processes.

use serde_json::{json, Value};
use tessera_testkit::TestApp;

use crate::support::*;

/// Creates a user by email only as `token`; returns `(created body, temporary password)`.
async fn create_by_email(app: &TestApp, token: &str, email: &str) -> (Value, String) {
    let response = app
        .post("/api/v1/users")
        .bearer_auth(token)
        .json(&json!({"email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let body: Value = response.json().await.unwrap();
    let temp = body["temp_password"]
        .as_str()
        .unwrap_or_else(|| panic!("no temp_password in {body}"))
        .to_owned();
    (body, temp)
}

/// `POST /api/v1/me/password` as `token` with a raw JSON body.
async fn change_password(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    send(
        app.post("/api/v1/me/password")
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

fn password_change_required() -> &'static str {
    "password_change_required"
}

/// `(status, body)` of `method path` as `token`, with an optional JSON body.
async fn call(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.request(method, path).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_creates_a_user_from_an_email_with_a_temporary_password() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let root_id = assert_token_works(&app, &root).await.id;
    let (created, temp) = create_by_email(&app, &root, "Jane.Doe@Example.com").await;
    assert_eq!(created["username"], "Jane.Doe@Example.com");
    assert_eq!(created["email"], "Jane.Doe@Example.com");
    assert_eq!(created["must_change_password"], true);
    assert_eq!(created["is_local"], true);
    assert_eq!(created["is_admin"], false);
    assert_eq!(created["state"], "active");
    assert_eq!(created["created_by"], root_id);
    assert_eq!(created["display_name"], "Jane.Doe@Example.com");
    assert!(
        temp.len() >= 16,
        "{temp:?} is too short for a generated password"
    );
    assert!(created.get("password").is_none() && created.get("password_hash").is_none());

    // Shown once: reading the user back never shows it.
    let stored = read_back(&app, "jane.doe@example.com").await;
    assert_eq!(stored["id"], created["id"]);
    assert!(stored.get("temp_password").is_none(), "{stored}");
    assert!(!stored.to_string().contains(&temp));

    // Every creation generates a different password.
    let (_, other) = create_by_email(&app, &root, "someone@example.com").await;
    assert_ne!(temp, other);

    // The temporary password logs in, by the email in any case.
    let token = app.token("JANE.DOE@example.com", &temp).await;
    let me = assert_token_works(&app, &token).await;
    assert!(me.must_change_password);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_email_is_409() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    app.create_user(
        &root,
        json!({"username": "alice", "email": "alice@example.com", "password": "alice-password"}),
    )
    .await;
    for email in ["alice@example.com", "ALICE@Example.COM"] {
        let (status, body) = post_user(&app, &root, json!({"email": email})).await;
        assert_error(status, &body, 409, "duplicate_email");
    }
    // A second user created by the same email alone collides too.
    create_by_email(&app, &root, "bob@example.com").await;
    let (status, body) = post_user(&app, &root, json!({"email": "Bob@example.com"})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        ["duplicate_email", "duplicate_username"].contains(&body["code"].as_str().unwrap_or("")),
        "{body}"
    );
    assert_eq!(
        all_usernames(&app).await,
        ["root", "alice", "bob@example.com"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_a_temporary_password_may_only_read_me_change_it_and_log_out() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (created, temp) = create_by_email(&app, &root, "new@example.com").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let first = app.login("new@example.com", &temp).await;
    let token = first["access_token"].as_str().unwrap().to_owned();
    let second = app.token("new@example.com", &temp).await;

    let me = assert_token_works(&app, &token).await;
    assert!(me.must_change_password);
    assert_eq!(me.id, id);

    use reqwest::Method;
    let gated: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/v1/users".into(), None),
        (Method::GET, "/api/v1/users/count".into(), None),
        (Method::GET, format!("/api/v1/users/{id}"), None),
        (Method::GET, "/api/v1/users/root".into(), None),
        (Method::GET, "/api/v1/tiers".into(), None),
        (Method::GET, format!("/api/v1/users/{id}/tier"), None),
        (Method::GET, "/api/v1/audit".into(), None),
        (
            Method::PATCH,
            "/api/v1/users/me".into(),
            Some(json!({"first_name": "Sneaky"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{id}"),
            Some(json!({"first_name": "Sneaky"})),
        ),
        (
            Method::PATCH,
            "/api/v1/users/me".into(),
            Some(
                json!({"first_name": "Sneaky", "password": "a-new-password", "current_password": temp}),
            ),
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            Some(json!({"first_name": "Managed"})),
        ),
        (Method::DELETE, "/api/v1/users/me".into(), None),
        (Method::POST, "/api/v1/users/root/logout".into(), None),
    ];
    for (method, path, body) in gated {
        let (status, answer) = call(&app, &token, method.clone(), &path, body).await;
        assert_error(status, &answer, 403, password_change_required());
        assert_eq!(
            answer["code"],
            password_change_required(),
            "{method} {path}"
        );
    }
    // Nothing happened.
    let me = assert_token_works(&app, &token).await;
    assert!(me.first_name.is_none(), "{me:?}");
    assert_eq!(me.state, "active");

    // Logging out is allowed.
    let (status, _) = send(app.post("/api/v1/auth/logout").bearer_auth(&second)).await;
    assert_eq!(status, 204);
    assert_token_dead(&app, &second).await;

    // So is changing the password; afterwards everything works with the same token.
    let (status, body) = change_password(
        &app,
        &token,
        json!({"current_password": temp, "new_password": "my-own-password"}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let me = assert_token_works(&app, &token).await;
    assert!(!me.must_change_password);
    for path in ["/api/v1/users", "/api/v1/users/count", "/api/v1/tiers"] {
        let (status, body) = send(app.get(path).bearer_auth(&token)).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, body) = patch_user(&app, &token, "me", json!({"first_name": "Jane"})).await;
    assert_eq!(status, 200, "{body}");
    assert_login_refused(&app, "new@example.com", &temp).await;
    let fresh = app.token("new@example.com", "my-own-password").await;
    assert_eq!(
        assert_token_works(&app, &fresh).await.first_name.as_deref(),
        Some("Jane")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_password_change_may_also_be_made_by_patching_me() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (_, temp) = create_by_email(&app, &root, "new@example.com").await;
    let token = app.token("new@example.com", &temp).await;
    let (status, body) = patch_user(
        &app,
        &token,
        "me",
        json!({"password": "my-own-password", "current_password": temp}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["must_change_password"], false);
    let (status, body) = send(app.get("/api/v1/users").bearer_auth(&token)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changing_ones_own_password_checks_current_and_policy_and_ends_other_sessions() {
    let app = TestApp::spawn().await;
    let (_, _) = app.user_with_token("alice").await;
    let current = app.login("alice", "alice-password").await;
    let token = current["access_token"].as_str().unwrap().to_owned();
    let other = app.login("alice", "alice-password").await;
    let other_token = other["access_token"].as_str().unwrap();
    let other_refresh = other["refresh_token"].as_str().unwrap();

    for body in [
        json!({"current_password": "wrong-password", "new_password": "a-new-password"}),
        json!({"currentPassword": "wrong-password", "newPassword": "a-new-password"}),
        json!({"new_password": "a-new-password"}),
        json!({"current_password": "", "new_password": "a-new-password"}),
    ] {
        let (status, answer) = change_password(&app, &token, body.clone()).await;
        assert_invalid(status, &answer, &["body", "current_password"]);
    }
    let too_long = "x".repeat(256);
    for new in ["short", "seven77", too_long.as_str()] {
        for body in [
            json!({"current_password": "alice-password", "new_password": new}),
            json!({"currentPassword": "alice-password", "newPassword": new}),
        ] {
            let (status, answer) = change_password(&app, &token, body).await;
            let error = assert_invalid(status, &answer, &["body", "new_password"]);
            assert!(error.msg.contains("8 to 255"), "{answer}");
        }
    }
    let (status, answer) =
        change_password(&app, &token, json!({"current_password": "alice-password"})).await;
    let error = assert_invalid(status, &answer, &["body", "new_password"]);
    assert_eq!(error.kind, "missing");
    let (status, _) = send(app.post("/api/v1/me/password").json(&json!({}))).await;
    assert_eq!(status, 401);
    // Nothing changed so far: both sessions live, the old password works.
    assert_token_works(&app, other_token).await;
    let (status, _) = try_login(&app, "alice", "alice-password").await;
    assert_eq!(status, 200);

    // The camelCase spelling changes it; the boundary lengths are accepted.
    let new_password = "x".repeat(255);
    let (status, body) = change_password(
        &app,
        &token,
        json!({"currentPassword": "alice-password", "newPassword": new_password}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    // The session in use stays; every other one ends, refresh tokens included.
    assert_token_works(&app, &token).await;
    assert_token_dead(&app, other_token).await;
    let (status, _) = try_refresh(&app, other_refresh).await;
    assert_eq!(status, 401);
    let (status, _) = try_refresh(&app, current["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_login_refused(&app, "alice", "alice-password").await;
    app.token("alice", &new_password).await;

    let (status, body) = change_password(
        &app,
        &token,
        json!({"current_password": new_password, "new_password": "eight888"}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    app.token("alice", "eight888").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_password_policy_is_configurable() {
    let app = TestApp::spawn_with(&[("auth.password_min_length", "12".to_owned())]).await;
    let (_, token) = app.user_with_token("alice-long-name").await;
    let (status, body) = change_password(
        &app,
        &token,
        json!({"current_password": "alice-long-name-password", "new_password": "elevenchars"}),
    )
    .await;
    let error = assert_invalid(status, &body, &["body", "new_password"]);
    assert!(error.msg.contains("12 to 255"), "{body}");
    let (status, body) = change_password(
        &app,
        &token,
        json!({"current_password": "alice-long-name-password", "new_password": "twelve-chars"}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_resets_a_password_to_a_temporary_one_and_every_session_ends() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (bob_id, _) = app.user_with_token("bob").await;
    let first = app.login("bob", "bob-password").await;
    let second = app.login("bob", "bob-password").await;
    let (_, carol) = app.user_with_token("carol").await;

    let response = app
        .post("/api/v1/users/bob/password")
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let body: Value = response.json().await.unwrap();
    let temp = body["temp_password"].as_str().unwrap().to_owned();
    assert_eq!(body, json!({"temp_password": temp, "tempPassword": temp}));
    assert!(temp.len() >= 16);

    for pair in [&first, &second] {
        assert_token_dead(&app, pair["access_token"].as_str().unwrap()).await;
        let (status, _) = try_refresh(&app, pair["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, 401);
    }
    assert_login_refused(&app, "bob", "bob-password").await;
    // Other users are untouched.
    assert_token_works(&app, &carol).await;
    assert_token_works(&app, &root).await;

    // The temporary password works, and gates.
    let token = app.token("bob", &temp).await;
    let me = assert_token_works(&app, &token).await;
    assert!(me.must_change_password);
    let (status, body) = send(app.get("/api/v1/users").bearer_auth(&token)).await;
    assert_error(status, &body, 403, password_change_required());
    let (status, body) = change_password(
        &app,
        &token,
        json!({"current_password": temp, "new_password": "bob-new-password"}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert!(!assert_token_works(&app, &token).await.must_change_password);

    // By id works too, and issues a different password each time.
    let (status, again) = send(
        app.post(&format!("/api/v1/users/{bob_id}/password"))
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_ne!(again["temp_password"], temp.as_str());
    assert_token_dead(&app, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_only_administrators_reset_passwords_or_force_logout() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (_, alice) = app.user_with_token("alice").await;
    let (_, bob) = app.user_with_token("bob").await;
    let (_, ops) = admin_with_token(&app, "ops").await;
    let (status, kid) = post_user(&app, &alice, json!({"first_name": "Kid"})).await;
    assert_eq!(status, 201);
    let kid_id = kid["id"].as_str().unwrap();

    for action in ["password", "logout"] {
        // Someone they cannot see: 404, the same as nobody at all.
        for target in ["bob", "nobody"] {
            let (status, body) = send(
                app.post(&format!("/api/v1/users/{target}/{action}"))
                    .bearer_auth(&alice),
            )
            .await;
            assert_error(status, &body, 404, "not_found");
        }
        // Themselves and their managed user: visible, but not theirs to administer.
        for target in ["alice", kid_id] {
            let (status, body) = send(
                app.post(&format!("/api/v1/users/{target}/{action}"))
                    .bearer_auth(&alice),
            )
            .await;
            assert_error(status, &body, 403, "forbidden");
        }
        // An administrator who is not a superuser cannot touch a superuser.
        let (status, body) = send(
            app.post(&format!("/api/v1/users/root/{action}"))
                .bearer_auth(&ops),
        )
        .await;
        assert_error(status, &body, 403, "forbidden");
        let (status, body) = send(
            app.post(&format!("/api/v1/users/nobody/{action}"))
                .bearer_auth(&root),
        )
        .await;
        assert_error(status, &body, 404, "not_found");
        let (status, _) = send(app.post(&format!("/api/v1/users/bob/{action}"))).await;
        assert_eq!(status, 401);
    }
    // Nothing happened to anyone.
    assert_token_works(&app, &alice).await;
    assert_token_works(&app, &bob).await;
    assert_token_works(&app, &root).await;
    app.token("alice", "alice-password").await;
    app.token("root", tessera_testkit::ADMIN_PASSWORD).await;

    // A managed user has no password to reset.
    let (status, body) = send(
        app.post(&format!("/api/v1/users/{kid_id}/password"))
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(status, 422, "{body}");

    // An administrator may administer plain users.
    let (status, body) = send(app.post("/api/v1/users/bob/password").bearer_auth(&ops)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(app.post("/api/v1/users/alice/logout").bearer_auth(&ops)).await;
    assert_eq!(status, 204, "{body}");
    assert_token_dead(&app, &alice).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_forced_logout_ends_every_session_on_every_server() {
    let a = TestApp::spawn().await;
    let b = a.spawn_sibling().await;
    let root = a.admin_token().await;
    let (bob_id, _) = a.user_with_token("bob").await;
    let (_, carol) = a.user_with_token("carol").await;
    let on_a = a.login("bob", "bob-password").await;
    let on_b = b.login("bob", "bob-password").await;
    let tokens = [
        on_a["access_token"].as_str().unwrap(),
        on_b["access_token"].as_str().unwrap(),
    ];
    for app in [&a, &b] {
        for token in tokens {
            assert_token_works(app, token).await;
        }
    }

    let response = a
        .post(&format!("/api/v1/users/{bob_id}/logout"))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());

    // At once, on both servers: every access token and every refresh token of bob.
    for app in [&a, &b] {
        for token in tokens {
            assert_token_dead(app, token).await;
        }
    }
    let (status, body) = try_refresh(&b, on_a["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, body), (401, invalid_token()));
    let (status, body) = try_refresh(&a, on_b["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, body), (401, invalid_token()));

    // Others are untouched; bob may log in again, anywhere.
    assert_token_works(&b, &carol).await;
    assert_token_works(&b, &root).await;
    let again = b.token("bob", "bob-password").await;
    assert_token_works(&a, &again).await;
    assert_token_works(&b, &again).await;

    // By username, from the sibling, kills the new session on both too.
    let (status, _) = send(b.post("/api/v1/users/BOB/logout").bearer_auth(&root)).await;
    assert_eq!(status, 204);
    assert_token_dead(&a, &again).await;
    assert_token_dead(&b, &again).await;
}
