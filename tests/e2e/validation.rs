//! Bad input: malformed bodies, wrong types, out-of-bounds values, duplicates, oversized and
//! hostile payloads. Every refusal has an exact status and changes nothing.

use serde_json::{json, Value};
use tessera_testkit::{TestApp, ADMIN_USERNAME};

use crate::support::*;

/// Sends `body` raw with the given content type.
async fn raw(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut request = app
        .request(method, path)
        .header("Content-Type", content_type)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    send(request).await
}

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    for body in [
        r#"{"username": "alice", "password": "alice-password""#,
        r#"{"username": "alice", "password": }"#,
        r#"{username: "alice"}"#,
        r#"{"username": "alice", "password": "alice-password"} trailing"#,
        "",
        "\u{FEFF}{}",
    ] {
        let (status, response) = raw(
            &app,
            reqwest::Method::POST,
            "/api/v1/users",
            Some(&root),
            JSON,
            body,
        )
        .await;
        assert_error(status, &response, 400, "bad_request");
        let (status, response) = raw(
            &app,
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            JSON,
            body,
        )
        .await;
        assert_error(status, &response, 400, "bad_request");
        let (status, response) = raw(
            &app,
            reqwest::Method::PATCH,
            "/api/v1/users/me",
            Some(&root),
            JSON,
            body,
        )
        .await;
        assert_error(status, &response, 400, "bad_request");
    }
    assert_eq!(all_usernames(&app).await, [ADMIN_USERNAME]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_content_type_is_400() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let body = r#"{"username": "alice", "password": "alice-password", "first_name": "Alice"}"#;
    for content_type in [
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
    ] {
        let (status, response) = raw(
            &app,
            reqwest::Method::POST,
            "/api/v1/users",
            Some(&root),
            content_type,
            body,
        )
        .await;
        assert_error(status, &response, 400, "bad_request");
        let (status, response) = raw(
            &app,
            reqwest::Method::PATCH,
            "/api/v1/users/me",
            Some(&root),
            content_type,
            body,
        )
        .await;
        assert_error(status, &response, 400, "bad_request");
        let (status, response) = raw(
            &app,
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            content_type,
            r#"{"username": "root", "password": "root-password-1"}"#,
        )
        .await;
        assert_error(status, &response, 400, "bad_request");
        // A JSON body is not read as a form either.
        let (status, response) = raw(
            &app,
            reqwest::Method::POST,
            "/api/v1/users",
            Some(&root),
            FORM,
            "username=alice&password=alice-password",
        )
        .await;
        assert_error(status, &response, 400, "bad_request");
    }
    assert_eq!(all_usernames(&app).await, [ADMIN_USERNAME]);
    assert!(read_back(&app, ADMIN_USERNAME).await["first_name"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_required_field_is_422_of_type_missing() {
    let app = TestApp::spawn().await;
    let (status, body) = send(
        app.post("/api/v1/auth/login")
            .json(&json!({"username": ADMIN_USERNAME})),
    )
    .await;
    let error = assert_invalid(status, &body, &["body", "password"]);
    assert_eq!(error.kind, "missing");
    assert_eq!(body["detail"].as_array().unwrap().len(), 1, "{body}");

    let (status, body) = send(
        app.post("/api/v1/auth/login")
            .form(&[("username", ADMIN_USERNAME), ("grant_type", "password")]),
    )
    .await;
    let error = assert_invalid(status, &body, &["body", "password"]);
    assert_eq!(error.kind, "missing");

    let (status, body) = send(
        app.post("/api/v1/auth/login")
            .json(&json!({"password": "root-password-1"})),
    )
    .await;
    let error = assert_invalid(status, &body, &["body", "username"]);
    assert_eq!(error.kind, "missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_typed_field_is_422_naming_it() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (status, body) = send(
        app.post("/api/v1/auth/login")
            .json(&json!({"username": 123, "password": "root-password-1"})),
    )
    .await;
    assert_invalid(status, &body, &["body", "username"]);

    for (field, value) in [
        ("username", json!(123)),
        ("email", json!(["a@b.co"])),
        ("password", json!({"x": 1})),
        ("is_admin", json!("yes")),
        ("first_name", json!(false)),
    ] {
        let mut create = json!({"username": "alice", "password": "alice-password"});
        create[field] = value;
        let (status, body) = post_user(&app, &root, create).await;
        assert_invalid(status, &body, &["body", field]);
    }
    for (field, value) in [
        ("is_admin", json!("yes")),
        ("permissions", json!("all")),
        ("permissions", json!(1.5)),
        ("permissions", json!(1u64 << 63)),
        ("first_name", json!(7)),
    ] {
        let (status, body) = patch_user(&app, &root, "me", json!({ field: value })).await;
        assert_invalid(status, &body, &["body", field]);
    }
    let (status, body) = send(
        app.patch("/api/v1/users/me")
            .bearer_auth(&root)
            .form(&[("is_superuser", "maybe")]),
    )
    .await;
    assert_invalid(status, &body, &["body", "is_superuser"]);
    let (status, body) = patch_user(&app, &root, "me", json!({"permissions": -1})).await;
    assert_invalid(status, &body, &["body", "permissions"]);

    assert_eq!(all_usernames(&app).await, [ADMIN_USERNAME]);
    let root_now = read_back(&app, ADMIN_USERNAME).await;
    assert_eq!(root_now["is_superuser"], true);
    assert!(root_now["first_name"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_usernames_are_422() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (_, alice) = app.user_with_token("alice").await;
    let too_long = "x".repeat(33);
    let uuid = uuid::Uuid::new_v4().to_string();
    for bad in [
        "a b",
        "x",
        too_long.as_str(),
        "",
        "_alice",
        "-alice",
        ".alice",
        "ünïcode",
        "tab\there",
        uuid.as_str(),
        "bad@",
    ] {
        let (status, body) = post_user(
            &app,
            &root,
            json!({"username": bad, "password": "valid-password"}),
        )
        .await;
        assert_invalid(status, &body, &["body", "username"]);
        let (status, body) = patch_user(&app, &alice, "me", json!({"username": bad})).await;
        assert_invalid(status, &body, &["body", "username"]);
    }
    // The bounds themselves are fine.
    let ok = "y".repeat(32);
    for good in ["ab", ok.as_str(), "a.b_c-d", "9lives"] {
        app.create_user(
            &root,
            json!({"username": good, "password": "valid-password"}),
        )
        .await;
    }
    let mut expected = vec![
        ADMIN_USERNAME,
        "alice",
        "ab",
        ok.as_str(),
        "a.b_c-d",
        "9lives",
    ];
    expected.sort_unstable();
    let mut names = all_usernames(&app).await;
    names.sort_unstable();
    assert_eq!(names, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_emails_are_422() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (alice_id, alice) = app.user_with_token("alice").await;
    let long = format!("{}@example.com", "a".repeat(250));
    for bad in [
        "not-an-email",
        "a@b",
        "@example.com",
        "a@@example.com",
        "a b@example.com",
        "a@.example.com",
        "a@example..com",
        "",
        long.as_str(),
    ] {
        let (status, body) = post_user(
            &app,
            &root,
            json!({"username": "bob", "email": bad, "password": "valid-password"}),
        )
        .await;
        assert_invalid(status, &body, &["body", "email"]);
        let (status, body) = patch_user(&app, &alice, "me", json!({"email": bad})).await;
        assert_invalid(status, &body, &["body", "email"]);
    }
    assert_eq!(all_usernames(&app).await, [ADMIN_USERNAME, "alice"]);
    assert!(read_back(&app, &alice_id).await["email"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_outside_the_policy_are_422() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (_, alice) = app.user_with_token("alice").await;
    let too_long = "p".repeat(256);
    for bad in [
        "short",
        "",
        "1234567",
        too_long.as_str(),
        "nul\u{0}-password",
    ] {
        let (status, body) =
            post_user(&app, &root, json!({"username": "bob", "password": bad})).await;
        assert_invalid(status, &body, &["body", "password"]);
        let (status, body) = patch_user(
            &app,
            &alice,
            "me",
            json!({"password": bad, "current_password": "alice-password"}),
        )
        .await;
        assert_invalid(status, &body, &["body", "password"]);
        let (status, body) = patch_user(&app, &root, "alice", json!({"password": bad})).await;
        assert_invalid(status, &body, &["body", "password"]);
    }
    assert_eq!(all_usernames(&app).await, [ADMIN_USERNAME, "alice"]);
    assert_token_works(&app, &alice).await;
    let (status, _) = try_login(&app, "alice", "alice-password").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_or_empty_names_are_422() {
    let app = TestApp::spawn().await;
    let (alice_id, alice) = app.user_with_token("alice").await;
    let too_long = "n".repeat(101);
    for (field, bad) in [
        ("first_name", too_long.as_str()),
        ("last_name", too_long.as_str()),
        ("first_name", "   "),
        ("first_name", "bell\u{7}"),
    ] {
        let (status, body) = patch_user(&app, &alice, "me", json!({ field: bad })).await;
        assert_invalid(status, &body, &["body", field]);
        let (status, body) =
            post_user(&app, &alice, json!({ field: bad, "first_name": bad })).await;
        assert_invalid(status, &body, &["body", "first_name"]);
    }
    let stored = read_back(&app, &alice_id).await;
    assert!(stored["first_name"].is_null());
    assert!(stored["last_name"].is_null());
    assert_eq!(all_usernames(&app).await, [ADMIN_USERNAME, "alice"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_username_in_any_case_is_409() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (alice_id, _) = app.user_with_token("alice").await;
    let (bob_id, bob) = app.user_with_token("bob").await;
    for taken in ["alice", "ALICE", "Alice", "ROOT"] {
        let (status, body) = post_user(
            &app,
            &root,
            json!({"username": taken, "password": "valid-password"}),
        )
        .await;
        assert_error(status, &body, 409, "duplicate_username");
        let (status, body) = patch_user(&app, &bob, "me", json!({"username": taken})).await;
        assert_error(status, &body, 409, "duplicate_username");
        let (status, body) = patch_user(&app, &root, "bob", json!({"username": taken})).await;
        assert_error(status, &body, 409, "duplicate_username");
    }
    assert_eq!(all_usernames(&app).await, [ADMIN_USERNAME, "alice", "bob"]);
    assert_eq!(read_back(&app, &bob_id).await["username"], "bob");
    assert_eq!(read_back(&app, &alice_id).await["username"], "alice");
    // Renaming to one's own name in another case is not a conflict with oneself.
    let (status, body) = patch_user(&app, &bob, "me", json!({"username": "Bob"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "Bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_email_in_any_case_is_409() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    app.create_user(
        &root,
        json!({"username": "alice", "email": "Alice@Example.com", "password": "alice-password"}),
    )
    .await;
    let (bob_id, bob) = app.user_with_token("bob").await;
    for taken in [
        "Alice@Example.com",
        "alice@example.com",
        "ALICE@EXAMPLE.COM",
    ] {
        let (status, body) = post_user(
            &app,
            &root,
            json!({"username": "carol", "email": taken, "password": "valid-password"}),
        )
        .await;
        assert_error(status, &body, 409, "duplicate_email");
        let (status, body) = patch_user(&app, &bob, "me", json!({"email": taken})).await;
        assert_error(status, &body, 409, "duplicate_email");
    }
    assert_eq!(all_usernames(&app).await, [ADMIN_USERNAME, "alice", "bob"]);
    assert!(read_back(&app, &bob_id).await["email"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_64_kib_is_413() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    // Just under the limit is read (the padding is an ignored field).
    let padding = "p".repeat(60 * 1024);
    let (status, body) = post_user(
        &app,
        &root,
        json!({"username": "fits", "password": "valid-password", "padding": padding}),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let padding = "p".repeat(64 * 1024);
    let (status, body) = post_user(
        &app,
        &root,
        json!({"username": "toobig", "password": "valid-password", "padding": padding}),
    )
    .await;
    assert_error(status, &body, 413, "payload_too_large");
    let (status, body) = patch_user(
        &app,
        &root,
        "me",
        json!({"first_name": "X", "padding": padding}),
    )
    .await;
    assert_error(status, &body, 413, "payload_too_large");
    let (status, body) = send(
        app.patch("/api/v1/users/me")
            .bearer_auth(&root)
            .form(&[("first_name", "X"), ("padding", padding.as_str())]),
    )
    .await;
    assert_error(status, &body, 413, "payload_too_large");
    assert_eq!(all_usernames(&app).await, [ADMIN_USERNAME, "fits"]);
    assert!(read_back(&app, ADMIN_USERNAME).await["first_name"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_megabyte_string_field_is_413_not_500() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let huge = "x".repeat(1024 * 1024);
    let (status, body) = try_login(&app, ADMIN_USERNAME, &huge).await;
    assert_error(status, &body, 413, "payload_too_large");
    let (status, body) = try_login(&app, &huge, "whatever-password").await;
    assert_error(status, &body, 413, "payload_too_large");
    let (status, body) = post_user(
        &app,
        &root,
        json!({"username": huge, "password": "valid-password"}),
    )
    .await;
    assert_error(status, &body, 413, "payload_too_large");
    let (status, body) = send(
        app.put("/api/v1/users/me")
            .bearer_auth(&root)
            .form(&[("first_name", huge.as_str())]),
    )
    .await;
    assert_error(status, &body, 413, "payload_too_large");
    let (status, body) = try_refresh(&app, &huge).await;
    assert_error(status, &body, 413, "payload_too_large");
    assert_eq!(all_usernames(&app).await, [ADMIN_USERNAME]);
    assert_token_works(&app, &root).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_and_paths_are_404() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let nobody = uuid::Uuid::new_v4().to_string();
    for user in ["nobody", nobody.as_str(), "x", "not%20a%20name"] {
        let (status, body) = get_user(&app, &root, user).await;
        assert_error(status, &body, 404, "not_found");
        let (status, body) = patch_user(&app, &root, user, json!({"first_name": "X"})).await;
        assert_error(status, &body, 404, "not_found");
        for (method, path) in [
            (reqwest::Method::DELETE, format!("/api/v1/users/{user}")),
            (
                reqwest::Method::DELETE,
                format!("/api/v1/users/db_user/{user}"),
            ),
            (
                reqwest::Method::POST,
                format!("/api/v1/users/{user}/restore"),
            ),
            (
                reqwest::Method::POST,
                format!("/api/v1/users/{user}/deactivate"),
            ),
            (
                reqwest::Method::POST,
                format!("/api/v1/users/{user}/reactivate"),
            ),
        ] {
            let (status, body) = send(app.request(method.clone(), &path).bearer_auth(&root)).await;
            assert_error(status, &body, 404, "not_found");
        }
    }
    for path in ["/api/v1/nothing", "/api/v2/users", "/nothing"] {
        let (status, body) = send(app.get(path).bearer_auth(&root)).await;
        assert_error(status, &body, 404, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_and_sql_metacharacters_in_usernames_are_422_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    for bad in [
        "a\u{0}b",
        "\u{0}",
        "alice\u{0}",
        "x'; DROP TABLE users; --",
        "robert'); DELETE FROM users;--",
        "a' OR '1'='1",
        "a\"b",
        "a\\b",
        "a%b",
        "a/b",
        "a;b",
    ] {
        let (status, body) = post_user(
            &app,
            &root,
            json!({"username": bad, "password": "valid-password"}),
        )
        .await;
        assert_invalid(status, &body, &["body", "username"]);
        let (status, body) = patch_user(&app, &root, "me", json!({"username": bad})).await;
        assert_invalid(status, &body, &["body", "username"]);
    }
    for bad in [
        "a\u{0}@example.com",
        "a@exa\u{0}mple.com",
        "x'--@example.com'",
    ] {
        let (status, body) = post_user(
            &app,
            &root,
            json!({"username": "bob", "email": bad, "password": "valid-password"}),
        )
        .await;
        assert_invalid(status, &body, &["body", "email"]);
    }
    let (status, body) = post_user(
        &app,
        &root,
        json!({"username": "bob", "first_name": "nul\u{0}name", "password": "valid-password"}),
    )
    .await;
    assert_invalid(status, &body, &["body", "first_name"]);
    assert_eq!(all_usernames(&app).await, [ADMIN_USERNAME]);
    assert_eq!(
        read_back(&app, ADMIN_USERNAME).await["username"],
        ADMIN_USERNAME
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_metacharacters_in_free_text_are_stored_verbatim() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let first = "Robert'); DROP TABLE users;--";
    let last = "O'Brien \\ \"%_";
    let created = app
        .create_user(
            &root,
            json!({"username": "bobby", "password": "valid-password", "first_name": first, "last_name": last}),
        )
        .await;
    let stored = read_back(&app, created["id"].as_str().unwrap()).await;
    assert_eq!(stored["first_name"], first);
    assert_eq!(stored["last_name"], last);
    assert_eq!(all_usernames(&app).await, [ADMIN_USERNAME, "bobby"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_in_logins_and_lookups_are_not_server_errors() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    for (username, password) in [
        ("a\u{0}b", "valid-password"),
        ("\u{0}", "valid-password"),
        ("root\u{0}", "root-password-1"),
        ("r\u{0}@example.com", "valid-password"),
        ("root", "root-password-1\u{0}"),
        ("x' OR '1'='1", "x' OR '1'='1"),
    ] {
        assert_login_refused(&app, username, password).await;
    }
    let (status, body) = send(
        app.post("/api/v1/auth/login")
            .form(&[("username", "a\u{0}b"), ("password", "valid-password")]),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body, invalid_credentials());
    for path in [
        "/api/v1/users/a%00b",
        "/api/v1/users/%00",
        "/api/v1/users/root%00",
        "/api/v1/users/x'%20OR%20'1'='1",
    ] {
        let (status, body) = send(app.get(path).bearer_auth(&root)).await;
        assert_error(status, &body, 404, "not_found");
        let (status, body) = send(app.delete(path).bearer_auth(&root)).await;
        assert_error(status, &body, 404, "not_found");
    }
    let (status, body) = try_refresh(&app, "\u{0}").await;
    assert_eq!(status, 401, "{body}");
    assert_token_works(&app, &root).await;
}

/// `depth` nested arrays: `[[[…]]]`.
fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json_is_400_not_500() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let deep = nested_arrays(10_000);
    let bodies = [
        deep.clone(),
        format!(r#"{{"username": "alice", "password": "alice-password", "extra": {deep}}}"#),
        format!(r#"{{"first_name": "Alice", "extra": {deep}}}"#),
        format!(
            r#"{{"extra": {}}}"#,
            "{\"a\":".repeat(5_000) + "1" + &"}".repeat(5_000)
        ),
    ];
    for body in &bodies {
        let (status, response) = raw(
            &app,
            reqwest::Method::POST,
            "/api/v1/users",
            Some(&root),
            JSON,
            body.clone(),
        )
        .await;
        assert_error(status, &response, 400, "bad_request");
        let (status, response) = raw(
            &app,
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            JSON,
            body.clone(),
        )
        .await;
        assert_error(status, &response, 400, "bad_request");
        let (status, response) = raw(
            &app,
            reqwest::Method::PATCH,
            "/api/v1/users/me",
            Some(&root),
            JSON,
            body.clone(),
        )
        .await;
        assert_error(status, &response, 400, "bad_request");
    }
    assert_eq!(all_usernames(&app).await, [ADMIN_USERNAME]);
    assert!(read_back(&app, ADMIN_USERNAME).await["first_name"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_a_json_object_is_422_at_the_body() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    // Serde would read a struct from an array; the API takes objects only.
    let (status, body) = raw(
        &app,
        reqwest::Method::POST,
        "/api/v1/auth/login",
        None,
        JSON,
        r#"["root", "root-password-1", null]"#,
    )
    .await;
    let error = assert_invalid(status, &body, &["body"]);
    assert_eq!(error.kind, "model_attributes_type");
    for (method, path, token) in [
        (reqwest::Method::POST, "/api/v1/users", Some(root.as_str())),
        (
            reqwest::Method::PATCH,
            "/api/v1/users/me",
            Some(root.as_str()),
        ),
        (reqwest::Method::POST, "/api/v1/auth/refresh", None),
    ] {
        for body in [
            r#"["mallory", null, "mallory-password", null, null, null, true, true]"#,
            r#""mallory""#,
            "42",
            "null",
            "[]",
        ] {
            let (status, response) = raw(&app, method.clone(), path, token, JSON, body).await;
            assert_invalid(status, &response, &["body"]);
        }
    }
    assert_eq!(all_usernames(&app).await, [ADMIN_USERNAME]);
}

/// Usernames may be email addresses and login accepts either, so one user's username must never
/// equal another's email. The rule that prevents it: an email-shaped username is the user's own
/// email (422 otherwise), which the unique index on emails then guards (409).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_username_cannot_take_another_users_email_or_the_reverse() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    app.create_user(
        &root,
        json!({"username": "alice", "email": "alice@example.com", "password": "alice-password"}),
    )
    .await;
    app.create_user(
        &root,
        json!({"username": "erin@example.com", "password": "erin-password"}),
    )
    .await;
    let (bob_id, bob) = app.user_with_token("bob").await;

    let conflict = |status: u16, body: &Value| {
        assert_eq!(status, 409, "{body}");
        let code = body["code"].as_str().unwrap_or_default();
        assert!(
            code == "duplicate_username" || code == "duplicate_email",
            "{body}"
        );
    };
    let (status, body) =
        patch_user(&app, &bob, "me", json!({"username": "Alice@Example.com"})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["body", "username"]),
        "{body}"
    );
    let (status, body) = patch_user(
        &app,
        &bob,
        "me",
        json!({"username": "Alice@Example.com", "email": "Alice@Example.com"}),
    )
    .await;
    conflict(status, &body);
    let (status, body) = post_user(
        &app,
        &root,
        json!({"username": "ALICE@example.com", "password": "valid-password"}),
    )
    .await;
    conflict(status, &body);
    let (status, body) = patch_user(&app, &bob, "me", json!({"email": "Erin@Example.com"})).await;
    conflict(status, &body);

    let stored = read_back(&app, &bob_id).await;
    assert_eq!(stored["username"], "bob");
    assert!(stored["email"].is_null());
    let (status, _) = try_login(&app, "alice@example.com", "alice-password").await;
    assert_eq!(status, 200);
    assert_login_refused(&app, "alice@example.com", "bob-password").await;
}
