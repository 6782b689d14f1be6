//! Helpers shared by the end-to-end tests: sending requests, typed views of the bodies they
//! read most, reading users back, checking tokens, and forging JWTs with the test key.

#![allow(dead_code)]

use std::collections::BTreeMap;

use reqwest::RequestBuilder;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_testkit::{status_and_json, TestApp};

// ---------------------------------------------------------------------------------------------
// Typed views of response bodies
//
// Each mirrors a wire shape of the canonical API (`crates/http/src/dto.rs`, `error.rs`) with
// the types a test compares against: ids and timestamps stay strings, as the tests pass them
// back into paths and filters. Unknown fields are ignored; a body that lacks a field or has
// one of another type does not deserialize, and the test fails showing the body.

/// A user as the canonical API returns it (`UserView`); `temp_password` only in the answer to
/// a creation that generated one.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiUser {
    pub id: String,
    pub username: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: String,
    pub name: String,
    pub logo_id: Option<String>,
    pub hotkey: Option<String>,
    pub coldkey: Option<String>,
    pub permissions: Vec<String>,
    pub permissions_bitmask: i64,
    pub is_admin: bool,
    pub admin: bool,
    pub is_superuser: bool,
    pub is_active: bool,
    pub is_managed: bool,
    pub is_local: bool,
    pub manager_id: Option<String>,
    pub state: String,
    pub tier_id: Option<String>,
    pub invoicing: bool,
    pub unlimited: bool,
    pub squad_enabled: bool,
    pub must_change_password: bool,
    pub created_by: Option<String>,
    pub created_at: String,
    pub registered_at: String,
    pub updated_at: String,
    pub last_login_at: Option<String>,
    pub deleted_at: Option<String>,
    pub balances: BTreeMap<String, i64>,
    pub wallet_count: u64,
    pub scopes: Option<Vec<String>>,
    pub temp_password: Option<String>,
}

/// A page of `GET /api/v1/users`.
#[derive(Debug, Clone, Deserialize)]
pub struct UserPage {
    pub data: Vec<ApiUser>,
    pub total_count: u64,
    #[serde(default)]
    pub total_is_estimate: bool,
    pub has_more: bool,
    #[serde(default)]
    pub next_cursor: Option<String>,
    pub offset: u64,
    pub limit: u64,
    pub page: u64,
    pub items_per_page: u64,
}

impl UserPage {
    /// The usernames on the page, in order (panics on a user without one).
    pub fn usernames(&self) -> Vec<&str> {
        self.data
            .iter()
            .map(|u| u.username.as_deref().expect("a username"))
            .collect()
    }

    /// The ids on the page, in order.
    pub fn ids(&self) -> Vec<&str> {
        self.data.iter().map(|u| u.id.as_str()).collect()
    }
}

/// The answer to a login or a refresh.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub refresh_token: String,
}

/// Every error that is not a validation failure: `{detail, code}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiError {
    pub detail: String,
    pub code: String,
}

/// A 422: every failing field, in FastAPI's shape.
#[derive(Debug, Clone, Deserialize)]
pub struct Invalid {
    pub detail: Vec<FieldError>,
}

/// One failing field of a 422.
#[derive(Debug, Clone, Deserialize)]
pub struct FieldError {
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// A wallet (`WalletView`).
#[derive(Debug, Clone, Deserialize)]
pub struct Wallet {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub currency: String,
    pub is_default: bool,
    pub balance: i64,
    pub allow_negative: bool,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
}

/// `GET /api/v1/users/{user}/wallets`.
#[derive(Debug, Clone, Deserialize)]
pub struct WalletList {
    pub data: Vec<Wallet>,
}

/// One ledger entry (`LedgerEntryView`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LedgerEntry {
    pub id: String,
    pub wallet_id: String,
    pub amount: i64,
    pub balance_after: i64,
    pub kind: String,
    pub reason: String,
    pub actor_id: Option<String>,
    pub transfer_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: String,
}

/// A page of a wallet's ledger, newest first.
#[derive(Debug, Clone, Deserialize)]
pub struct LedgerPage {
    pub data: Vec<LedgerEntry>,
    pub next_cursor: Option<String>,
    pub limit: u32,
}

/// The answer to `POST /api/v1/transfers`: the credit only when the caller may read the
/// recipient's wallet.
#[derive(Debug, Clone, Deserialize)]
pub struct Transfer {
    pub transfer_id: String,
    pub from_wallet: String,
    pub to_wallet: String,
    pub amount: i64,
    pub reason: String,
    pub created_at: String,
    pub debit: LedgerEntry,
    pub credit: Option<LedgerEntry>,
}

/// Reads a JSON body as `T`; panics, showing the body, when it is not one.
pub fn typed<T: DeserializeOwned>(body: &Value) -> T {
    T::deserialize(body)
        .unwrap_or_else(|e| panic!("not a {}: {e}: {body}", std::any::type_name::<T>()))
}

/// Sends a request; returns the status and the body read as `T` (panics, showing both, when
/// the body is not a `T`).
pub async fn send_typed<T: DeserializeOwned>(request: RequestBuilder) -> (u16, T) {
    let (status, body) = send(request).await;
    let typed = T::deserialize(&body).unwrap_or_else(|e| {
        panic!(
            "the {status} body is not a {}: {e}: {body}",
            std::any::type_name::<T>()
        )
    });
    (status, typed)
}

/// Asserts a `(status, body)` answer has status `expected` (showing the body if not), and
/// reads the body as `T`.
pub fn answer_as<T: DeserializeOwned>((status, body): (u16, Value), expected: u16) -> T {
    assert_eq!(status, expected, "{body}");
    typed(&body)
}

/// Sends a request, asserts its status is `expected`, and reads the body as `T`.
pub async fn send_as<T: DeserializeOwned>(request: RequestBuilder, expected: u16) -> T {
    answer_as(send(request).await, expected)
}

// ---------------------------------------------------------------------------------------------
// Requests

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
pub async fn assert_token_works(app: &TestApp, token: &str) -> ApiUser {
    let (status, body) = me(app, token).await;
    assert_eq!(status, 200, "token should work: {body}");
    typed(&body)
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

/// [`read_back`], typed.
pub async fn read_user(app: &TestApp, user: &str) -> ApiUser {
    typed(&read_back(app, user).await)
}

/// `app.create_user` (asserts the 201), typed.
pub async fn create_user_typed(app: &TestApp, token: &str, body: Value) -> ApiUser {
    typed(&app.create_user(token, body).await)
}

/// `app.login` (asserts the 200), typed.
pub async fn login_pair(app: &TestApp, username: &str, password: &str) -> TokenPair {
    typed(&app.login(username, password).await)
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
    let page: UserPage = send_as(
        app.get("/api/v1/users?include_deleted=true&limit=500")
            .bearer_auth(&root),
        200,
    )
    .await;
    page.data.into_iter().filter_map(|u| u.username).collect()
}

/// Creates a (non-superuser) administrator; returns `(id, access token)`.
pub async fn admin_with_token(app: &TestApp, username: &str) -> (String, String) {
    let root = app.admin_token().await;
    let password = format!("{username}-password");
    let created = create_user_typed(
        app,
        &root,
        json!({"username": username, "password": password, "is_admin": true}),
    )
    .await;
    assert!(created.is_admin);
    assert!(!created.is_superuser);
    (created.id, app.token(username, &password).await)
}

/// Asserts a 422 whose first error is at `loc` (with a message and a type), and returns that
/// error.
pub fn assert_invalid(status: u16, body: &Value, loc: &[&str]) -> FieldError {
    assert_eq!(status, 422, "expected 422 at {loc:?}: {body}");
    let first: FieldError = typed(&body["detail"][0]);
    assert_eq!(first.loc, loc, "{body}");
    assert!(!first.msg.is_empty(), "{body}");
    first
}

/// Asserts an error body `{detail, code}` with the given status and code (and a detail).
pub fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    let error: ApiError = typed(body);
    assert_eq!(error.code, code, "{body}");
    assert!(!error.detail.is_empty(), "{body}");
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
