//! Helpers shared by the end-to-end tests: sending requests, reading users back, checking
//! tokens, and forging JWTs with the test key.

#![allow(dead_code)]

use reqwest::RequestBuilder;
use serde_json::{json, Value};
use tessera_testkit::{status_and_json, TestApp};

/// The HS256 key the test configuration gives the server (`config/test.toml`).
pub fn test_jwt_secret() -> String {
    const CONFIG: &str = include_str!("../../config/test.toml");
    CONFIG
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "jwt_secret").then(|| value.trim().trim_matches('"').to_owned())
        })
        .expect("config/test.toml sets auth.jwt_secret")
}

/// Sends a request; returns `(status, json body)` (`Null` when the body is not JSON).
pub async fn send(request: RequestBuilder) -> (u16, Value) {
    status_and_json(request.send().await.expect("request failed")).await
}

/// `POST /api/v1/auth/login` with a JSON body; `(status, body)`.
pub async fn try_login(app: &TestApp, username: &str, password: &str) -> (u16, Value) {
    send(
        app.post("/api/v1/auth/login")
            .json(&json!({"username": username, "password": password})),
    )
    .await
}

/// `POST /api/v1/auth/refresh`; `(status, body)`.
pub async fn try_refresh(app: &TestApp, refresh_token: &str) -> (u16, Value) {
    send(
        app.post("/api/v1/auth/refresh")
            .json(&json!({"refresh_token": refresh_token})),
    )
    .await
}

/// The one body every refused login gets.
pub fn invalid_credentials() -> Value {
    json!({"detail": "Incorrect username or password", "code": "invalid_credentials"})
}

/// The body every refused (present but unusable) access token gets.
pub fn invalid_token() -> Value {
    json!({"detail": "Invalid or expired token", "code": "invalid_token"})
}

/// The body a request without a bearer token gets.
pub fn not_authenticated() -> Value {
    json!({"detail": "Not authenticated", "code": "not_authenticated"})
}

/// Asserts the login is refused with the shared 401 body.
pub async fn assert_login_refused(app: &TestApp, username: &str, password: &str) {
    let (status, body) = try_login(app, username, password).await;
    assert_eq!(
        status, 401,
        "login of {username:?} should be refused: {body}"
    );
    assert_eq!(body, invalid_credentials(), "login of {username:?}");
}

/// `GET /api/v1/users/me` with `token`; `(status, body)`.
pub async fn me(app: &TestApp, token: &str) -> (u16, Value) {
    send(app.get("/api/v1/users/me").bearer_auth(token)).await
}

/// Asserts `token` authenticates, and returns the caller's own record.
pub async fn assert_token_works(app: &TestApp, token: &str) -> Value {
    let (status, body) = me(app, token).await;
    assert_eq!(status, 200, "token should work: {body}");
    body
}

/// Asserts `token` is refused with 401 `invalid_token`.
pub async fn assert_token_dead(app: &TestApp, token: &str) {
    let (status, body) = me(app, token).await;
    assert_eq!(status, 401, "token should be refused: {body}");
    assert_eq!(body, invalid_token());
}

/// `GET /api/v1/users/{user}` as `token`.
pub async fn get_user(app: &TestApp, token: &str, user: &str) -> (u16, Value) {
    send(app.get(&format!("/api/v1/users/{user}")).bearer_auth(token)).await
}

/// Reads a user back as the bootstrap superuser; panics unless it exists.
pub async fn read_back(app: &TestApp, user: &str) -> Value {
    let root = app.admin_token().await;
    let (status, body) = get_user(app, &root, user).await;
    assert_eq!(status, 200, "reading back {user}: {body}");
    body
}

/// Asserts a user record is unchanged between two reads (logging in, which reading back does,
/// only moves `last_login_at`).
pub fn assert_unchanged(before: &Value, after: &Value) {
    let strip = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut()
            .expect("a user object")
            .remove("last_login_at");
        v
    };
    assert_eq!(strip(before), strip(after));
}

/// Asserts no user `user` exists at all (not even soft-deleted), as the superuser sees it.
pub async fn assert_absent(app: &TestApp, user: &str) {
    let root = app.admin_token().await;
    let (status, body) = get_user(app, &root, user).await;
    assert_eq!(status, 404, "{user} should not exist: {body}");
    assert_eq!(body["code"], "not_found");
}

/// `PATCH /api/v1/users/{user}` with a JSON body as `token`.
pub async fn patch_user(app: &TestApp, token: &str, user: &str, body: Value) -> (u16, Value) {
    send(
        app.patch(&format!("/api/v1/users/{user}"))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

/// `POST /api/v1/users` with a JSON body as `token`.
pub async fn post_user(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    send(app.post("/api/v1/users").bearer_auth(token).json(&body)).await
}

/// Every username in the directory, deleted users included, as the superuser sees it.
pub async fn all_usernames(app: &TestApp) -> Vec<String> {
    let root = app.admin_token().await;
    let (status, body) = send(
        app.get("/api/v1/users?include_deleted=true&limit=500")
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"]
        .as_array()
        .expect("data is a list")
        .iter()
        .filter_map(|u| u["username"].as_str().map(str::to_owned))
        .collect()
}

/// Creates a (non-superuser) administrator; returns `(id, access token)`.
pub async fn admin_with_token(app: &TestApp, username: &str) -> (String, String) {
    let root = app.admin_token().await;
    let password = format!("{username}-password");
    let created = app
        .create_user(
            &root,
            json!({"username": username, "password": password, "is_admin": true}),
        )
        .await;
    assert_eq!(created["is_admin"], true);
    assert_eq!(created["is_superuser"], false);
    let id = created["id"].as_str().expect("id").to_owned();
    (id, app.token(username, &password).await)
}

/// Asserts a 422 whose first error is at `loc`, and returns the error entry.
pub fn assert_invalid(status: u16, body: &Value, loc: &[&str]) -> Value {
    assert_eq!(status, 422, "expected 422 at {loc:?}: {body}");
    let first = &body["detail"][0];
    assert_eq!(first["loc"], json!(loc), "{body}");
    assert!(
        first["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(first["type"].is_string(), "{body}");
    first.clone()
}

/// Asserts an error body `{detail, code}` with the given status and code.
pub fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

/// The claims of a JWT, without verifying it.
pub fn claims_of(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode_claims(token).expect("a JWT")
}

/// Signs `claims` with HS256 and `secret`.
pub fn sign(claims: &Value, secret: &[u8]) -> String {
    sign_with(jsonwebtoken::Algorithm::HS256, claims, secret)
}

/// Signs `claims` with the given HMAC algorithm and `secret`.
pub fn sign_with(alg: jsonwebtoken::Algorithm, claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("signing a test JWT")
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The `/metrics` exposition as text.
pub async fn metrics_text(app: &TestApp) -> String {
    let response = app.get("/metrics").send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}
