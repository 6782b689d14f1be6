//! The Chutes-compatible account surface (seed 000) and Bittensor identities, with real sr25519
//! keys: hotkey-signed requests on every surface, fingerprints, API keys, registration and the
//! key-management endpoints, against real PostgreSQL.

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::{Method, RequestBuilder};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tessera_sr25519::Sr25519Keypair;
use tessera_testkit::TestApp;

use crate::support::{answer_as, send, send_as};

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(crate) fn ss58(key: &Sr25519Keypair) -> String {
    key.ss58(42)
}

/// Adds the three `X-Chutes-*` headers: `{hotkey}:{nonce}:{purpose or sha256(body)}`.
pub(crate) fn signed(
    request: RequestBuilder,
    key: &Sr25519Keypair,
    nonce: i64,
    purpose_or_body: Result<&str, &[u8]>,
) -> RequestBuilder {
    let hotkey = ss58(key);
    let payload = match purpose_or_body {
        Ok(purpose) => purpose.to_owned(),
        Err(body) => hex::encode(Sha256::digest(body)),
    };
    let signature = key.sign(format!("{hotkey}:{nonce}:{payload}").as_bytes());
    request
        .header("X-Chutes-Hotkey", hotkey)
        .header("X-Chutes-Signature", signature)
        .header("X-Chutes-Nonce", nonce.to_string())
}

/// Adds the three `X-Chutes-*` headers signing the request itself:
/// `{hotkey}:{nonce}:{METHOD}:{path?query}:{sha256(body)}`.
pub(crate) fn route_signed(
    request: RequestBuilder,
    key: &Sr25519Keypair,
    nonce: i64,
    method: &Method,
    target: &str,
    body: &[u8],
) -> RequestBuilder {
    let hotkey = ss58(key);
    let digest = hex::encode(Sha256::digest(body));
    let message = format!("{hotkey}:{nonce}:{}:{target}:{digest}", method.as_str());
    let signature = key.sign(message.as_bytes());
    request
        .header("X-Chutes-Hotkey", hotkey)
        .header("X-Chutes-Signature", signature)
        .header("X-Chutes-Nonce", nonce.to_string())
}

/// A request signed over itself (method, path and query, body), with an optional JSON body.
pub(crate) fn bound(
    app: &TestApp,
    method: Method,
    target: &str,
    key: &Sr25519Keypair,
    body: Option<&Value>,
) -> RequestBuilder {
    let bytes = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let mut request = app.request(method.clone(), target);
    if body.is_some() {
        request = request
            .header("content-type", "application/json")
            .body(bytes.clone());
    }
    route_signed(request, key, now(), &method, target, &bytes)
}

/// A signed JSON request: the body is sent as exactly the bytes that were hashed. Registration
/// is signed in Chutes' body form, as the published client does; every other route over the
/// request itself.
pub(crate) fn signed_json(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &Sr25519Keypair,
    body: &Value,
) -> RequestBuilder {
    if path != "/users/register" {
        return bound(app, method, path, key, Some(body));
    }
    let bytes = serde_json::to_vec(body).unwrap();
    signed(
        app.request(method, path)
            .header("content-type", "application/json")
            .body(bytes.clone()),
        key,
        now(),
        Err(&bytes),
    )
}

/// The answer to `POST /users/register` (Chutes' `RegistrationResponse`): the only time the
/// fingerprint is shown. (Mirrors the wire shape; not every field is read.)
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Registration {
    pub username: Option<String>,
    pub user_id: String,
    pub hotkey: Option<String>,
    pub coldkey: Option<String>,
    pub fingerprint: String,
    /// Issued only by an administrator's `POST /users/create_user`; never on registration.
    pub api_key: Option<IssuedApiKey>,
}

/// An API key as issued with an account; the secret is shown only then.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct IssuedApiKey {
    pub api_key_id: String,
    pub user_id: String,
    pub admin: bool,
    pub name: String,
    pub scopes: Vec<String>,
    pub secret_key: String,
}

/// Registers a Bittensor account; returns `(hotkey pair, registration)`.
pub(crate) async fn register(app: &TestApp, username: &str) -> (Sr25519Keypair, Registration) {
    let hotkey = Sr25519Keypair::generate();
    let coldkey = Sr25519Keypair::generate();
    let body = json!({"username": username, "coldkey": ss58(&coldkey)});
    let created = answer_as(
        send(signed_json(
            app,
            Method::POST,
            "/users/register",
            &hotkey,
            &body,
        ))
        .await,
        200,
    );
    (hotkey, created)
}

async fn signed_me(app: &TestApp, key: &Sr25519Keypair, path: &str) -> (u16, Value) {
    send(signed(app.get(path), key, now(), Ok("me"))).await
}

#[tokio::test]
async fn registration_returns_the_fingerprint_once_and_the_hotkey_signs_me_on_every_surface() {
    let app = TestApp::spawn().await;
    let (hotkey, created) = register(&app, "miner_1").await;
    let fingerprint = created.fingerprint.as_str();
    assert_eq!(fingerprint.len(), 32);
    assert!(fingerprint.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(created.hotkey, Some(ss58(&hotkey)));
    assert!(created.api_key.is_none());

    let (status, me) = signed_me(&app, &hotkey, "/users/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["username"], "miner_1");
    assert_eq!(me["user_id"], created.user_id);
    assert_eq!(me["balance"], 0.0);
    assert_eq!(me["permissions_bitmask"], 0);
    assert_eq!(me["permissions"], json!([]));
    assert!(
        me.get("fingerprint").is_none(),
        "the fingerprint is shown only once"
    );

    // The canonical surface accepts the same signature scheme.
    let (status, canonical) = signed_me(&app, &hotkey, "/api/v1/users/me").await;
    assert_eq!(status, 200, "{canonical}");
    assert_eq!(canonical["id"], created.user_id);

    // The fingerprint logs in; its token works on both surfaces.
    let (status, login) = send(
        app.post("/users/login")
            .json(&json!({"fingerprint": fingerprint})),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let token = login["token"].as_str().unwrap();
    let (status, _) = send(app.get("/users/me").bearer_auth(token)).await;
    assert_eq!(status, 200);
    let (status, _) = send(app.get("/api/v1/users/me").bearer_auth(token)).await;
    assert_eq!(status, 200);

    let (status, body) = send(
        app.post("/users/login")
            .json(&json!({"fingerprint": "x".repeat(32)})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"detail": "Missing or invalid fingerprint provided."})
        )
    );
}

#[tokio::test]
async fn signatures_by_another_key_stale_nonces_and_missing_purposes_are_refused() {
    let app = TestApp::spawn().await;
    let (hotkey, _) = register(&app, "miner_2").await;
    let other = Sr25519Keypair::generate();

    // Signed by another key but claiming this hotkey.
    let nonce = now();
    let message = format!("{}:{nonce}:me", ss58(&hotkey));
    let forged = other.sign(message.as_bytes());
    let (status, body) = send(
        app.get("/users/me")
            .header("X-Chutes-Hotkey", ss58(&hotkey))
            .header("X-Chutes-Signature", forged)
            .header("X-Chutes-Nonce", nonce.to_string()),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body["detail"],
        format!(
            "Invalid request signature for hotkey {}. Message: {message}",
            ss58(&hotkey)
        )
    );

    for stale in [now() - 601, now() + 601] {
        let (status, body) = send(signed(app.get("/users/me"), &hotkey, stale, Ok("me"))).await;
        assert_eq!((status, body), (401, json!({"detail": "Invalid nonce!"})));
    }

    // Signature not hex.
    let (status, body) = send(
        app.get("/users/me")
            .header("X-Chutes-Hotkey", ss58(&hotkey))
            .header("X-Chutes-Signature", "zz")
            .header("X-Chutes-Nonce", now().to_string()),
    )
    .await;
    assert_eq!(status, 401);
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .starts_with("Invalid signature"));

    // A GET without a purpose takes no purpose signature: only one over the request itself,
    // whose message the refusal shows.
    let (status, body) = send(signed(
        app.get("/users/user_id_lookup?username=x"),
        &hotkey,
        now(),
        Ok("me"),
    ))
    .await;
    assert_eq!(status, 401);
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("Invalid request signature")
            && detail.contains(":GET:/users/user_id_lookup?username=x:"),
        "{detail}"
    );

    // The purpose of /me does not sign another route's body.
    let (status, _) = send(signed(
        app.put("/users/squad_access")
            .json(&json!({"enable": true})),
        &hotkey,
        now(),
        Ok("me"),
    ))
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_signed_state_change_cannot_be_replayed_nor_its_body_changed() {
    let app = TestApp::spawn().await;
    let (hotkey, _) = register(&app, "miner_3").await;
    let body = serde_json::to_vec(&json!({"enable": true})).unwrap();
    let nonce = now();
    // sr25519 signatures are randomised: a replay re-sends the very same signature.
    let signature = hotkey.sign(
        format!(
            "{}:{nonce}:PUT:/users/squad_access:{}",
            ss58(&hotkey),
            hex::encode(Sha256::digest(&body))
        )
        .as_bytes(),
    );
    let replay_with = |server: &TestApp, signature: String| {
        server
            .put("/users/squad_access")
            .header("content-type", "application/json")
            .header("X-Chutes-Hotkey", ss58(&hotkey))
            .header("X-Chutes-Signature", signature)
            .header("X-Chutes-Nonce", nonce.to_string())
            .body(body.clone())
    };
    let replay_on = |server: &TestApp| replay_with(server, signature.clone());
    let (status, first) = send(replay_on(&app)).await;
    assert_eq!((status, first), (200, json!({"squad_enabled": true})));
    let (status, replay) = send(replay_on(&app)).await;
    assert_eq!(
        (status, replay),
        (401, json!({"detail": "Signature already used"}))
    );
    // Upper-case hex is the same signature.
    let shouted = replay_with(&app, signature.to_uppercase());
    assert_eq!(send(shouted).await.0, 401);

    // A sibling server (its own pool and workers) sees the same record.
    let sibling = app.spawn_sibling().await;
    assert_eq!(send(replay_on(&sibling)).await.0, 401);

    // Signed over one body, sent with another.
    let signed_body = serde_json::to_vec(&json!({"enable": false})).unwrap();
    let tampered = signed(
        app.put("/users/squad_access")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&json!({"enable": true})).unwrap()),
        &hotkey,
        now(),
        Err(&signed_body),
    );
    let (status, body) = send(tampered).await;
    assert_eq!(status, 401);
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .starts_with("Invalid request signature"));
    let (_, me) = signed_me(&app, &hotkey, "/users/me").await;
    assert_eq!(me["username"], "miner_3");
}

#[tokio::test]
async fn registration_conflicts_rules_and_the_per_ip_throttle() {
    let app = TestApp::spawn_with(&[("identity.registrations_per_ip_per_day", "2".into())]).await;
    let (hotkey, _) = register(&app, "taken_name").await;

    // Same hotkey again.
    let body = json!({"username": "another", "coldkey": ss58(&Sr25519Keypair::generate())});
    let (status, detail) = send(signed_json(
        &app,
        Method::POST,
        "/users/register",
        &hotkey,
        &body,
    ))
    .await;
    assert_eq!(
        (status, detail),
        (
            409,
            json!({"detail": "This hotkey is already registered to a user!"})
        )
    );

    // Same name, any case.
    let fresh = Sr25519Keypair::generate();
    let body = json!({"username": "TAKEN_name", "coldkey": ss58(&Sr25519Keypair::generate())});
    let (status, detail) = send(signed_json(
        &app,
        Method::POST,
        "/users/register",
        &fresh,
        &body,
    ))
    .await;
    assert_eq!(
        (status, detail),
        (
            409,
            json!({"detail": "Username TAKEN_name already exists, sorry! Please choose another."})
        )
    );

    // Chutes' 3-15 rule.
    for bad in ["ab", "way_too_long_name", "dots.are.bad"] {
        let body = json!({"username": bad, "coldkey": ss58(&Sr25519Keypair::generate())});
        let (status, detail) = send(signed_json(
            &app,
            Method::POST,
            "/users/register",
            &Sr25519Keypair::generate(),
            &body,
        ))
        .await;
        assert_eq!(status, 400, "{bad}: {detail}");
        assert_eq!(
            detail["detail"],
            "Username must be 3-15 characters and contain only alphanumeric/underscore/dash characters"
        );
    }

    // An unsigned registration proves nothing and is refused; no hotkey header is a 422.
    let body = json!({"username": "unsigned", "coldkey": ss58(&Sr25519Keypair::generate())});
    let (status, _) = send(
        app.post("/users/register")
            .header("X-Chutes-Hotkey", ss58(&Sr25519Keypair::generate()))
            .json(&body),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(send(app.post("/users/register").json(&body)).await.0, 422);

    // A coldkey that is not SS58.
    let body = json!({"username": "badcold", "coldkey": "not-an-address"});
    let (status, _) = send(signed_json(
        &app,
        Method::POST,
        "/users/register",
        &Sr25519Keypair::generate(),
        &body,
    ))
    .await;
    assert_eq!(status, 422);

    // The second successful registration from this address is the last one today.
    register(&app, "second").await;
    let body = json!({"username": "third", "coldkey": ss58(&Sr25519Keypair::generate())});
    let response = signed_json(
        &app,
        Method::POST,
        "/users/register",
        &Sr25519Keypair::generate(),
        &body,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let (status, _) = send(app.get("/users/name_check?username=third")).await;
    assert_eq!(status, 200);
    let (_, check) = send(app.get("/users/name_check?username=third")).await;
    assert_eq!(
        check,
        json!({"valid": true, "available": true}),
        "nothing was created"
    );
}

#[tokio::test]
async fn rotating_the_fingerprint_ends_old_tokens_and_the_old_fingerprint() {
    let app = TestApp::spawn().await;
    let (hotkey, created) = register(&app, "rotator").await;
    let old = created.fingerprint.clone();
    let (_, login) = send(app.post("/users/login").json(&json!({"fingerprint": old}))).await;
    let token = login["token"].as_str().unwrap().to_owned();
    // Tokens are compared in whole seconds.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let new = "N3wF1ngerpr1ntN3wF1ngerpr1ntXYZ0";
    let nonce = now();
    let signature = hotkey.sign(format!("{}:{new}:{nonce}", ss58(&hotkey)).as_bytes());
    let rotate = || {
        app.post("/users/change_fingerprint")
            .header("X-Chutes-Hotkey", ss58(&hotkey))
            .header("X-Chutes-Signature", signature.clone())
            .header("X-Chutes-Nonce", nonce.to_string())
            .json(&json!({"fingerprint": new}))
    };
    let (status, body) = send(rotate()).await;
    assert_eq!(
        (status, body),
        (200, json!({"status": "Fingerprint updated"}))
    );
    assert_eq!(send(rotate()).await.0, 401, "a rotation cannot be replayed");

    let (status, _) = send(app.get("/users/me").bearer_auth(&token)).await;
    assert_eq!(status, 401, "a token issued before the rotation");
    let (status, _) = send(app.post("/users/login").json(&json!({"fingerprint": old}))).await;
    assert_eq!(status, 401, "the old fingerprint");
    let (status, _) = send(app.post("/users/login").json(&json!({"fingerprint": new}))).await;
    assert_eq!(status, 200);

    // Signed by a key of nobody.
    let stranger = Sr25519Keypair::generate();
    let nonce = now();
    let (status, body) = send(
        app.post("/users/change_fingerprint")
            .header("X-Chutes-Hotkey", ss58(&stranger))
            .header(
                "X-Chutes-Signature",
                stranger.sign(format!("{}:{new}x:{nonce}", ss58(&stranger)).as_bytes()),
            )
            .header("X-Chutes-Nonce", nonce.to_string())
            .json(&json!({"fingerprint": format!("{new}x")})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"detail": "No user found with the provided hotkey/coldkey"})
        )
    );

    // A coldkey signs for itself (Chutes verified it against the hotkey header).
    let coldkey = Sr25519Keypair::generate();
    let body = json!({"username": "coldsigner", "coldkey": ss58(&coldkey)});
    let (status, _) = send(signed_json(
        &app,
        Method::POST,
        "/users/register",
        &Sr25519Keypair::generate(),
        &body,
    ))
    .await;
    assert_eq!(status, 200);
    let fresh = "ColdkeyChosenFingerprint12345678";
    let nonce = now();
    let (status, body) = send(
        app.post("/users/change_fingerprint")
            .header("X-Chutes-Coldkey", ss58(&coldkey))
            .header(
                "X-Chutes-Signature",
                coldkey.sign(format!("{}:{fresh}:{nonce}", ss58(&coldkey)).as_bytes()),
            )
            .header("X-Chutes-Nonce", nonce.to_string())
            .json(&json!({"fingerprint": fresh})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(
        app.post("/users/login")
            .json(&json!({"fingerprint": fresh})),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn deleting_by_fingerprint_purges_and_the_hotkey_stops_working() {
    let app = TestApp::spawn().await;
    let (hotkey, created) = register(&app, "leaver").await;
    let fingerprint = created.fingerprint.as_str();

    assert_eq!(
        send(app.delete("/users/me")).await.0,
        422,
        "Authorization is required"
    );
    let (status, body) = send(
        app.delete("/users/me")
            .header("Authorization", "wrong-fingerprint"),
    )
    .await;
    assert_eq!((status, body), (401, json!({"detail": "Not authorized"})));

    let (status, body) = send(
        app.delete("/users/me")
            .header("Authorization", format!("Bearer {fingerprint}")),
    )
    .await;
    assert_eq!((status, body), (200, json!({"deleted": true})));

    let (status, body) = signed_me(&app, &hotkey, "/users/me").await;
    assert_eq!(status, 401);
    assert_eq!(
        body["detail"],
        format!("Could not find user with hotkey: {}", ss58(&hotkey))
    );
    let root = app.admin_token().await;
    let (status, _) = send(
        app.get(&format!("/api/v1/users/{}", created.user_id))
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(status, 404, "purged, not soft-deleted");
}

#[tokio::test]
async fn api_keys_are_shown_once_work_bare_or_bearer_and_stop_when_revoked() {
    let app = TestApp::spawn().await;
    let (_, token) = app.user_with_token("keyholder").await;
    let (status, created) = send(
        app.post("/api/v1/me/api-keys")
            .bearer_auth(&token)
            .json(&json!({"name": "ci", "admin": true})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret_key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("cpk_"));
    assert_eq!(created["last_used_at"], Value::Null);

    let (status, me) = send(app.get("/users/me").header("Authorization", &secret)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["username"], "keyholder");
    let (status, _) = send(app.get("/api/v1/users/me").bearer_auth(&secret)).await;
    assert_eq!(status, 200);

    let (_, keys) = send(app.get("/api/v1/me/api-keys").bearer_auth(&token)).await;
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert!(keys[0]["last_used_at"].is_string(), "{keys}");
    assert!(
        keys[0].get("secret_key").is_none(),
        "secrets are never listed"
    );

    // A read-only key reads but cannot write, and holds no permissions.
    let (status, read_only) = send(
        app.post("/api/v1/me/api-keys")
            .bearer_auth(&token)
            .json(&json!({"name": "reader", "scopes": ["read"]})),
    )
    .await;
    assert_eq!(status, 201);
    let reader = read_only["secret_key"].as_str().unwrap();
    assert_eq!(
        send(app.get("/api/v1/users/me").bearer_auth(reader))
            .await
            .0,
        200
    );
    let (status, _) = send(
        app.patch("/api/v1/users/me")
            .bearer_auth(reader)
            .json(&json!({"first_name": "X"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(
        app.post("/api/v1/me/api-keys")
            .bearer_auth(reader)
            .json(&json!({"name": "escalate", "admin": true})),
    )
    .await;
    assert_eq!(status, 403);
    // A plain user cannot mint metering keys; unknown scopes are a 422.
    let (status, _) = send(
        app.post("/api/v1/me/api-keys")
            .bearer_auth(&token)
            .json(&json!({"name": "m", "scopes": ["metering"]})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = send(
        app.post("/api/v1/me/api-keys")
            .bearer_auth(&token)
            .json(&json!({"name": "m", "scopes": ["root"]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");

    let id = created["id"].as_str().unwrap();
    assert_eq!(
        send(
            app.delete(&format!("/api/v1/me/api-keys/{id}"))
                .bearer_auth(&token)
        )
        .await
        .0,
        204
    );
    let (status, body) = send(app.get("/users/me").header("Authorization", &secret)).await;
    assert_eq!(
        (status, body),
        (401, json!({"detail": "Invalid token or user not found"}))
    );
    assert_eq!(
        send(app.get("/api/v1/users/me").bearer_auth(&secret))
            .await
            .0,
        401
    );
    assert_eq!(
        send(
            app.delete(&format!("/api/v1/me/api-keys/{id}"))
                .bearer_auth(&token)
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn create_user_needs_the_permission_and_returns_a_fingerprint_and_an_admin_key() {
    let app = TestApp::spawn().await;
    let (_, plain) = app.user_with_token("plainuser").await;
    let (status, body) = send(
        app.post("/users/create_user")
            .bearer_auth(&plain)
            .json(&json!({"username": "webuser"})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({"detail": "This action can only be performed by user admin accounts."})
        )
    );

    let root = app.admin_token().await;
    let created: Registration = send_as(
        app.post("/users/create_user")
            .bearer_auth(&root)
            .json(&json!({"username": "webuser"})),
        200,
    )
    .await;
    assert_eq!(created.fingerprint.len(), 32);
    let api_key = created.api_key.as_ref().expect("an API key");
    assert_eq!(api_key.name, "default");
    assert!(api_key.admin);
    let key = api_key.secret_key.as_str();
    let (status, me) = send(app.get("/users/me").bearer_auth(key)).await;
    assert_eq!(status, 200);
    assert_eq!(me["hotkey"], Value::Null);

    // The web user attaches Bittensor keys with its fingerprint; each new key signs that it
    // is attached to this account.
    let fingerprint = created.fingerprint.as_str();
    let hotkey = Sr25519Keypair::generate();
    let nonce = now().to_string();
    let proof = hotkey.sign(
        format!(
            "{}:{nonce}:change_bt_auth:{}",
            ss58(&hotkey),
            created.username.as_deref().unwrap()
        )
        .as_bytes(),
    );
    let (status, me) = send(
        app.post("/users/change_bt_auth")
            .header("Authorization", fingerprint)
            .json(&json!({
                "hotkey": ss58(&hotkey),
                "coldkey": "garbage",
                "nonce": nonce,
                "hotkey_signature": proof,
            })),
    )
    .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["hotkey"], ss58(&hotkey));
    assert_eq!(me["coldkey"], Value::Null, "the invalid coldkey is ignored");
    let (status, _) = signed_me(&app, &hotkey, "/users/me").await;
    assert_eq!(status, 200);

    // Another account cannot take that hotkey: not without its signature ...
    let (_, other) = register(&app, "othermin").await;
    let (status, body) = send(
        app.post("/users/change_bt_auth")
            .header("Authorization", &other.fingerprint)
            .json(&json!({"hotkey": ss58(&hotkey)})),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    // ... nor with it, while another account holds it.
    let nonce = now().to_string();
    let proof =
        hotkey.sign(format!("{}:{nonce}:change_bt_auth:othermin", ss58(&hotkey)).as_bytes());
    let (status, body) = send(
        app.post("/users/change_bt_auth")
            .header("Authorization", &other.fingerprint)
            .json(&json!({"hotkey": ss58(&hotkey), "nonce": nonce, "hotkey_signature": proof})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            409,
            json!({"detail": format!("Hotkey already associated with another user: {}", ss58(&hotkey))})
        )
    );
    let (status, _) = send(
        app.post("/users/change_bt_auth")
            .header("Authorization", "nope")
            .json(&json!({"hotkey": ss58(&hotkey)})),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = send(
        app.post("/users/change_bt_auth")
            .header("Authorization", fingerprint)
            .json(&json!({"coldkey": "bad"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn lookups_logos_squad_access_names_and_growth() {
    let app = TestApp::spawn().await;
    let (hotkey, created) = register(&app, "Lookup_Me").await;
    let (_, plain) = app.user_with_token("nobody").await;
    let root = app.admin_token().await;

    let (status, body) = send(
        app.get("/users/user_id_lookup?username=Lookup_Me")
            .bearer_auth(&plain),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({"detail": "This action can only be performed by billing admin accounts."})
        )
    );
    let (status, body) = send(
        app.get("/users/user_id_lookup?username=Lookup_Me")
            .bearer_auth(&root),
    )
    .await;
    assert_eq!((status, body), (200, json!({"user_id": created.user_id})));
    let (status, body) = send(
        app.get("/users/user_id_lookup?username=lookup_me")
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "User not found: lookup_me"})),
        "exact match"
    );
    // Found by the fuzzer: a NUL byte was a 500 (PostgreSQL refuses it in text).
    let (status, _) = send(
        app.get("/users/user_id_lookup?username=a%00b")
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(status, 404);

    let (_, login) = send(
        app.post("/users/login")
            .json(&json!({"fingerprint": created.fingerprint})),
    )
    .await;
    let token = login["token"].as_str().unwrap();
    let logo = uuid::Uuid::new_v4();
    let (status, me) = send(
        app.get(&format!("/users/set_logo?logo_id={logo}"))
            .bearer_auth(token),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(me["logo_id"], logo.to_string());
    assert_eq!(
        me["logo"],
        format!("https://logos.chutes.ai/logos/{logo}.webp")
    );
    assert_eq!(
        send(
            app.get("/users/set_logo?logo_id=not-a-uuid")
                .bearer_auth(token)
        )
        .await
        .0,
        422
    );

    let (status, body) = send(
        app.put("/users/squad_access")
            .bearer_auth(token)
            .json(&json!({"nope": 1})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"detail": "Invalid request, payload should be {\"enable\": true|false}"})
        )
    );
    let (_, body) = send(
        app.put("/users/squad_access")
            .bearer_auth(token)
            .json(&json!({"enable": "True"})),
    )
    .await;
    assert_eq!(body, json!({"squad_enabled": true}));
    let (_, body) = send(signed_json(
        &app,
        Method::PUT,
        "/users/squad_access",
        &hotkey,
        &json!({"enable": "no"}),
    ))
    .await;
    assert_eq!(body, json!({"squad_enabled": false}));

    for (name, expected) in [
        ("lookup_me", json!({"valid": true, "available": false})),
        ("ab_", json!({"valid": true, "available": true})),
        ("a", json!({"valid": false, "available": false})),
    ] {
        let (status, body) = send(app.get(&format!("/users/name_check?username={name}"))).await;
        assert_eq!((status, body), (200, expected), "{name}");
    }

    let (status, growth) = send(app.get("/users/growth")).await;
    assert_eq!(status, 200);
    let today = &growth[0];
    assert!(today["daily_count"].as_u64().unwrap() >= 3, "{growth}");
    assert!(today["date"].is_string() && today["cumulative_count"].is_u64());

    let (status, body) = send(app.get("/users/me")).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"detail": "Can't find a user with that api key in our db :("})
        )
    );
}

/// Tokens of the trusted external issuer read the data of users who opted in, and nothing more.
#[tokio::test]
async fn squad_tokens_read_for_users_who_opted_in_only() {
    let dir = std::env::temp_dir().join(format!("tessera-squad-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let private = dir.join("squad.pem");
    let generated = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&private)
        .status();
    if !generated.is_ok_and(|s| s.success()) {
        panic!("openssl is needed to make a test issuer key");
    }
    let public = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .output()
        .unwrap();
    let public_pem = String::from_utf8(public.stdout).unwrap();
    let private_pem = std::fs::read(&private).unwrap();
    std::fs::remove_dir_all(&dir).ok();

    let app = TestApp::spawn_with(&[("identity.external_issuer_public_key", public_pem)]).await;
    let (hotkey, created) = register(&app, "squaduser").await;
    let user_id = created.user_id.as_str();
    let key = jsonwebtoken::EncodingKey::from_ed_pem(&private_pem).unwrap();
    let squad_token = |iss: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
            &json!({"sub": user_id, "iss": iss, "iat": now(), "exp": now() + 300}),
            &key,
        )
        .unwrap()
    };
    let token = squad_token("squad");
    let (status, _) = send(app.get("/users/me").bearer_auth(&token)).await;
    assert_eq!(status, 401, "not opted in");

    let (_, body) = send(signed_json(
        &app,
        Method::PUT,
        "/users/squad_access",
        &hotkey,
        &json!({"enable": true}),
    ))
    .await;
    assert_eq!(body, json!({"squad_enabled": true}));
    let (status, me) = send(app.get("/users/me").bearer_auth(&token)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user_id"], user_id);
    let (status, body) = send(
        app.put("/users/squad_access")
            .bearer_auth(&token)
            .json(&json!({"enable": false})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"detail": "Only invocations and read/GET requests are allowed with squad auth (for now)."})
        )
    );
    assert_eq!(
        send(app.get("/users/me").bearer_auth(squad_token("other")))
            .await
            .0,
        401,
        "wrong issuer"
    );
}
