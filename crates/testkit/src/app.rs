//! Spawns the real server in-process on port 0 against a fresh database, and talks to it over
//! HTTP like any client.

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{json, Value};
use tessera_server::Settings;

use crate::db::TestDatabase;

const CONFIG_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config");

/// The bootstrap superuser every test app starts with.
pub const ADMIN_USERNAME: &str = "root";
pub const ADMIN_PASSWORD: &str = "root-password-1";

/// Settings as the tests use them (`config/test.toml`), pointed at `database_url`.
pub fn test_settings(database_url: &str, extra: &[(&str, String)]) -> Settings {
    let mut overrides = vec![
        ("database.url", database_url.to_owned()),
        ("server.host", "127.0.0.1".to_owned()),
        ("server.port", "0".to_owned()),
        ("bootstrap.admin_username", ADMIN_USERNAME.to_owned()),
        ("bootstrap.admin_password", ADMIN_PASSWORD.to_owned()),
    ];
    overrides.extend(extra.iter().cloned());
    match Settings::load_with(CONFIG_DIR, "test", &overrides) {
        Ok(settings) => settings,
        Err(e) => panic!("test settings: {e}"),
    }
}

/// A running Tessera and an HTTP client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    pub handle: ServerHandle,
    /// Kept so the database outlives the server; dropped (and the database with it) last.
    pub db: Option<TestDatabase>,
}

impl TestApp {
    /// Tessera on a fresh PostgreSQL database.
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Tessera on a fresh PostgreSQL database, with extra settings overrides.
    pub async fn spawn_with(extra: &[(&str, String)]) -> Self {
        let db = TestDatabase::new().await;
        let settings = test_settings(&db.url, extra);
        Self::start(settings, Some(db)).await
    }

    /// Another server process' worth of Tessera on the same database as `self`.
    pub async fn spawn_sibling(&self) -> Self {
        let url = match &self.db {
            Some(db) => db.url.clone(),
            None => panic!("a sibling needs a database-backed app"),
        };
        Self::start(test_settings(&url, &[]), None).await
    }

    /// Tessera on a database the caller provides (and owns), with extra settings.
    pub async fn spawn_on(database_url: &str, extra: &[(&str, String)]) -> Self {
        Self::start(test_settings(database_url, extra), None).await
    }

    /// Tessera on the in-memory adapter.
    pub async fn spawn_memory() -> Self {
        Self::start(test_settings("memory://", &[]), None).await
    }

    async fn start(settings: Settings, db: Option<TestDatabase>) -> Self {
        let server = match tessera_server::start(&settings).await {
            Ok(server) => server,
            Err(e) => panic!("cannot start tessera: {e}"),
        };
        let (addr, handle, _) = server.spawn();
        Self {
            addr,
            client: Client::new(),
            handle,
            db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    pub fn patch(&self, path: &str) -> RequestBuilder {
        self.request(Method::PATCH, path)
    }

    pub fn put(&self, path: &str) -> RequestBuilder {
        self.request(Method::PUT, path)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.request(Method::DELETE, path)
    }

    /// Logs in; returns the token body (`access_token`, `refresh_token`, …).
    pub async fn login(&self, username: &str, password: &str) -> Value {
        let response = self
            .post("/api/v1/auth/login")
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("login request failed: {e}"));
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "login of {username} failed: {body}");
        body
    }

    /// An access token for `username`.
    pub async fn token(&self, username: &str, password: &str) -> String {
        let body = self.login(username, password).await;
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {body}"))
            .to_owned()
    }

    /// An access token of the bootstrap superuser.
    pub async fn admin_token(&self) -> String {
        self.token(ADMIN_USERNAME, ADMIN_PASSWORD).await
    }

    /// Creates a login user as `token`'s holder; returns the created user's body.
    pub async fn create_user(&self, token: &str, body: Value) -> Value {
        let response = self
            .post("/api/v1/users")
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create user failed: {e}"));
        let status = response.status();
        let created: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 201, "creating {body} failed: {created}");
        created
    }

    /// Creates a plain user with a password and returns `(id, access token)`.
    pub async fn user_with_token(&self, username: &str) -> (String, String) {
        let admin = self.admin_token().await;
        let password = format!("{username}-password");
        let created = self
            .create_user(&admin, json!({"username": username, "password": password}))
            .await;
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        (id, self.token(username, &password).await)
    }
}

/// Reads a response as `(status, json body)`; a body that is not JSON becomes `Null`.
pub async fn status_and_json(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop accepting at once; the database (if any) is dropped right after.
        let handle = self.handle.clone();
        drop(handle.stop(false));
    }
}
