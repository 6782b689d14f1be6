//! The security suite of issue 9 (PRODUCT.md §2, §3, §7): forged and dead tokens, hotkey
//! signatures, privilege, enumeration, and hostile input — over HTTP against real PostgreSQL.
//!
//! Cases covered elsewhere, not repeated here:
//!
//! | case | test |
//! |---|---|
//! | `alg: none` | `auth::an_unsigned_alg_none_token_is_401` |
//! | HS256 with another key (and HS384/HS512 with the right one) | `auth::a_token_signed_with_another_key_or_algorithm_is_401` |
//! | tampered payload | `auth::a_token_with_a_tampered_payload_is_401` |
//! | expired | `auth::an_expired_token_is_401` |
//! | a token after logout | `auth::logout_ends_the_session_at_once` |
//! | a token after a password change | `users::changing_ones_own_password_needs_the_current_one`, `admin::admin_changing_ones_own_password_checks_current_and_policy_and_ends_other_sessions`, `users::an_admin_setting_a_password_ends_every_session_of_that_user` |
//! | a token after a forced logout | `admin::admin_forced_logout_ends_every_session_on_every_server` |
//! | a token after deactivation | `users::deactivation_locks_out_at_once_and_reactivation_lets_back_in` |
//! | a token after soft delete | `users::a_soft_deleted_user_is_hidden_locked_out_and_keeps_their_names` |
//! | an access token used as a refresh token | `auth::unknown_and_malformed_refresh_tokens_are_refused` |
//! | another key's signature, stale and future nonces | `chutes::signatures_by_another_key_stale_nonces_and_missing_purposes_are_refused` |
//! | a replayed state-changing request, a body altered after signing | `chutes::a_signed_state_change_cannot_be_replayed_nor_its_body_changed` |
//! | the user/target access matrix (manager, grantee, delegated, admin, superuser) | `policy_matrix::*` |
//! | admin and superuser bits by an admin or by oneself | `users::only_a_superuser_changes_admin_superuser_and_permissions`, `users::a_plain_user_cannot_grant_themselves_anything` |
//! | the same 401 body for every refused login | `auth::every_refused_login_gets_the_same_401_body` |
//! | SQL metacharacters and NUL bytes in usernames, verbatim free text, nested JSON, 413 | `validation::*` |
//!
//! Added here: the RS256/HS256 confusion, tokens not yet valid, another issuer, a refresh token
//! used as an access token, the `<Bytes>`-wrapped signature over HTTP, every admin and
//! superuser endpoint for every kind of non-admin caller, escalation through PATCH, login
//! timing and name checks, and hostile values in every free-text field, query parameter and
//! header.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use tessera_sr25519::Sr25519Keypair;
use tessera_testkit::TestApp;

use crate::chutes::{now, register, signed, signed_json, ss58};
use crate::support::*;

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// Root's real token and its claims, after checking that re-signing the claims with the test key
/// is accepted (so each variant below fails for exactly the reason it names).
async fn resignable(app: &TestApp) -> (String, Value) {
    let token = app.admin_token().await;
    let claims = claims_of(&token);
    assert_token_works(app, &sign(&claims, test_jwt_secret().as_bytes())).await;
    (token, claims)
}

fn b64(bytes: &[u8]) -> String {
    // URL-safe base64 without padding, as JWTs use.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// An RSA key pair made by `openssl`: `(private PEM, public PEM)`.
fn rsa_pair() -> (Vec<u8>, String) {
    let dir = std::env::temp_dir().join(format!("tessera-rsa-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let private = dir.join("issuer.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&private)
        .output()
        .expect("openssl is needed to make a test issuer key");
    assert!(made.status.success(), "openssl genpkey failed");
    let public = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .output()
        .unwrap();
    let private_pem = std::fs::read(&private).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    (private_pem, String::from_utf8(public.stdout).unwrap())
}

/// RS256/HS256 confusion: with an RSA issuer configured, a token "signed" with HS256 using the
/// issuer's public key as the HMAC secret is refused on every surface, as is a Tessera token
/// whose header claims RS256; a genuine RS256 token of the issuer works (the control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rs256_hs256_algorithm_confusion_is_401() {
    let (private_pem, public_pem) = rsa_pair();
    let app =
        TestApp::spawn_with(&[("identity.external_issuer_public_key", public_pem.clone())]).await;
    let (hotkey, created) = register(&app, "confused").await;
    let user_id = created.user_id.clone();
    let (status, body) = send(signed_json(
        &app,
        Method::PUT,
        "/users/squad_access",
        &hotkey,
        &json!({"enable": true}),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let claims = json!({"sub": user_id, "iss": "squad", "iat": now(), "exp": now() + 300});

    // The control: the issuer's real RS256 token reads.
    let genuine = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&private_pem).unwrap(),
    )
    .unwrap();
    for path in ["/users/me", "/api/v1/users/me"] {
        let (status, body) = send(app.get(path).bearer_auth(&genuine)).await;
        assert_eq!(status, 200, "genuine RS256 token on {path}: {body}");
    }

    // HS256 keyed with the public key (PEM text, and its DER-ish body without armour).
    let armourless: String = public_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for (name, secret) in [
        ("public PEM", public_pem.as_bytes()),
        ("public key body", armourless.as_bytes()),
    ] {
        let forged = sign(&claims, secret);
        for path in ["/users/me", "/api/v1/users/me"] {
            let (status, body) = send(app.get(path).bearer_auth(&forged)).await;
            assert_eq!(status, 401, "HS256 keyed with the {name} on {path}: {body}");
        }
    }

    // A Tessera token whose header says RS256 (its HS256 signature kept).
    let (token, _) = resignable(&app).await;
    let (_, rest) = token.split_once('.').unwrap();
    for header in [
        json!({"alg": "RS256", "typ": "JWT"}),
        json!({"alg": "RS256"}),
        json!({"alg": "EdDSA", "typ": "JWT"}),
    ] {
        let relabelled = format!("{}.{rest}", b64(header.to_string().as_bytes()));
        let (status, body) = me(&app, &relabelled).await;
        assert_eq!(status, 401, "header {header}: {body}");
    }
}

/// Tokens not yet valid: Tessera never issues an `iat` in the future nor an `nbf`, so the codec
/// refuses both beyond its 5 s clock-skew leeway (docs/api.md, access tokens).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_not_yet_valid_is_401() {
    let app = TestApp::spawn().await;
    let (_, claims) = resignable(&app).await;
    let secret = test_jwt_secret();
    let cases = [
        (
            "iat an hour ahead",
            json!({"iat": now_secs() + 3600, "exp": now_secs() + 7200}),
        ),
        ("iat a minute ahead", json!({"iat": now_secs() + 60})),
        ("nbf a minute ahead", json!({"nbf": now_secs() + 60})),
        ("nbf a day ahead", json!({"nbf": now_secs() + 86_400})),
    ];
    for (name, change) in cases {
        let mut forged = claims.clone();
        for (k, v) in change.as_object().unwrap() {
            forged[k] = v.clone();
        }
        let token = sign(&forged, secret.as_bytes());
        let (status, body) = me(&app, &token).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(body, invalid_token(), "{name}");
    }
    // An `nbf` already past is fine.
    let mut past = claims.clone();
    past["nbf"] = json!(now_secs() - 60);
    assert_token_works(&app, &sign(&past, secret.as_bytes())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_another_issuer_is_401() {
    let app = TestApp::spawn().await;
    let (_, claims) = resignable(&app).await;
    let secret = test_jwt_secret();
    for iss in [
        json!("squad"),
        json!("Tessera"),
        json!(""),
        json!(["tessera"]),
    ] {
        let mut forged = claims.clone();
        forged["iss"] = iss.clone();
        let (status, body) = me(&app, &sign(&forged, secret.as_bytes())).await;
        assert_eq!(status, 401, "iss {iss}: {body}");
    }
    let mut without = claims.clone();
    without.as_object_mut().unwrap().remove("iss");
    let (status, body) = me(&app, &sign(&without, secret.as_bytes())).await;
    assert_eq!(status, 401, "no iss: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_used_as_an_access_token_is_401() {
    let app = TestApp::spawn().await;
    app.user_with_token("alice").await;
    let pair = app.login("alice", "alice-password").await;
    let refresh = pair["refresh_token"].as_str().unwrap();
    for path in ["/api/v1/users/me", "/users/me"] {
        let (status, body) = send(app.get(path).bearer_auth(refresh)).await;
        assert_eq!(status, 401, "{path}: {body}");
        // Bare, as an API key would be sent.
        let (status, body) = send(app.get(path).header("Authorization", refresh)).await;
        assert_eq!(status, 401, "bare on {path}: {body}");
    }
    let (status, _) = send(
        app.patch("/api/v1/users/me")
            .bearer_auth(refresh)
            .json(&json!({"first_name": "Mallory"})),
    )
    .await;
    assert_eq!(status, 401);
    // The refresh token itself is still good: it was refused as a credential, not spent.
    let (status, body) = try_refresh(&app, refresh).await;
    assert_eq!(status, 200, "{body}");
    assert!(read_back(&app, "alice").await["first_name"].is_null());
}

// ---------------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------------

/// Signs `{hotkey}:{nonce}:{payload}` wrapped in `<Bytes>…</Bytes>`, as wallets that sign raw
/// bytes (polkadot.js) do.
fn wrapped(
    request: RequestBuilder,
    key: &Sr25519Keypair,
    nonce: i64,
    payload: &str,
) -> RequestBuilder {
    let hotkey = ss58(key);
    let signature = key.sign(format!("<Bytes>{hotkey}:{nonce}:{payload}</Bytes>").as_bytes());
    request
        .header("X-Chutes-Hotkey", hotkey)
        .header("X-Chutes-Signature", signature)
        .header("X-Chutes-Nonce", nonce.to_string())
}

/// A signature over the `<Bytes>`-wrapped message and one over the bare message both
/// authenticate, for a purpose (`me`) and for a body digest; the wrapped one is single-use too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapped_and_unwrapped_signatures_are_both_accepted() {
    let app = TestApp::spawn().await;
    let (hotkey, _) = register(&app, "wrapper").await;
    for path in ["/users/me", "/api/v1/users/me"] {
        let (status, body) = send(wrapped(app.get(path), &hotkey, now(), "me")).await;
        assert_eq!(status, 200, "wrapped `me` on {path}: {body}");
        let (status, body) = send(signed(app.get(path), &hotkey, now(), Ok("me"))).await;
        assert_eq!(status, 200, "bare `me` on {path}: {body}");
    }

    // A state change signed over the wrapped body digest.
    let body = serde_json::to_vec(&json!({"enable": true})).unwrap();
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&body))
    };
    let nonce = now();
    let hk = ss58(&hotkey);
    let signature = hotkey
        .sign(format!("<Bytes>{hk}:{nonce}:PUT:/users/squad_access:{digest}</Bytes>").as_bytes());
    let request = || {
        app.put("/users/squad_access")
            .header("content-type", "application/json")
            .header("X-Chutes-Hotkey", hk.clone())
            .header("X-Chutes-Signature", signature.clone())
            .header("X-Chutes-Nonce", nonce.to_string())
            .body(body.clone())
    };
    let (status, answer) = send(request()).await;
    assert_eq!((status, answer), (200, json!({"squad_enabled": true})));
    let (status, answer) = send(request()).await;
    assert_eq!(
        (status, answer),
        (401, json!({"detail": "Signature already used"})),
        "a wrapped signature is single-use too"
    );
    // The unwrapped form of the same change, freshly signed.
    let off = json!({"enable": false});
    let (status, answer) = send(signed_json(
        &app,
        Method::PUT,
        "/users/squad_access",
        &hotkey,
        &off,
    ))
    .await;
    assert_eq!((status, answer), (200, json!({"squad_enabled": false})));

    // Wrapped around the wrong message, or only half-wrapped: refused.
    for message in [
        format!("<Bytes>{hk}:{nonce}:you</Bytes>"),
        format!("<Bytes>{hk}:{nonce}:me"),
        format!("{hk}:{nonce}:me</Bytes>"),
        format!("<Bytes><Bytes>{hk}:{nonce}:me</Bytes></Bytes>"),
    ] {
        let (status, body) = send(
            app.get("/users/me")
                .header("X-Chutes-Hotkey", hk.clone())
                .header("X-Chutes-Signature", hotkey.sign(message.as_bytes()))
                .header("X-Chutes-Nonce", nonce.to_string()),
        )
        .await;
        assert_eq!(status, 401, "{message}: {body}");
    }
}

// ---------------------------------------------------------------------------------------------
// Privilege
// ---------------------------------------------------------------------------------------------

/// A world for the privilege tests: every kind of non-admin caller, each with the user it is
/// related to (and so may see), plus a stranger nobody but admins sees.
struct PrivilegeWorld {
    app: TestApp,
    root: String,
    ids: BTreeMap<&'static str, String>,
    /// The default wallet of each user.
    wallets: BTreeMap<&'static str, String>,
    tier: String,
    /// `(caller name, token, the user it is related to)`.
    callers: Vec<(&'static str, String, &'static str)>,
}

async fn default_wallet(app: &TestApp, root: &str, user: &str) -> String {
    let (status, body) = send(
        app.get(&format!("/api/v1/users/{user}/wallets"))
            .bearer_auth(root),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"][0]["id"].as_str().unwrap().to_owned()
}

async fn privilege_world() -> PrivilegeWorld {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let mut ids = BTreeMap::new();
    let (id, plain) = app.user_with_token("plain").await;
    ids.insert("plain", id);
    let (id, _) = app.user_with_token("victim").await;
    ids.insert("victim", id);
    let (id, manager) = app.user_with_token("manager").await;
    ids.insert("manager", id);
    let (status, kid) = send(
        app.post("/api/v1/users")
            .bearer_auth(&manager)
            .json(&json!({"first_name": "Kid", "last_name": "Managed"})),
    )
    .await;
    assert_eq!(status, 201, "{kid}");
    ids.insert("kid", kid["id"].as_str().unwrap().to_owned());
    let (id, sharer) = app.user_with_token("sharer").await;
    ids.insert("sharer", id);
    let (id, grantee) = app.user_with_token("grantee").await;
    ids.insert("grantee", id);
    let (status, body) = send(
        app.post("/api/v1/me/shares")
            .bearer_auth(&sharer)
            .json(&json!({"grantee": "grantee", "scopes": ["data:read", "data:write", "admin"]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(
        app.post("/api/v1/auth/delegated-token")
            .bearer_auth(&manager)
            .json(&json!({"user": ids["kid"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let delegated = body["access_token"].as_str().unwrap().to_owned();
    let (id, keyholder) = app.user_with_token("keyholder").await;
    ids.insert("keyholder", id);
    let (status, body) = send(
        app.post("/api/v1/me/api-keys")
            .bearer_auth(&keyholder)
            .json(&json!({"name": "reader", "scopes": ["read"]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let read_key = body["secret_key"].as_str().unwrap().to_owned();
    let (status, tier) = send(
        app.post("/api/v1/tiers")
            .bearer_auth(&root)
            .json(&json!({"name": "gold"})),
    )
    .await;
    assert_eq!(status, 201, "{tier}");
    let mut wallets = BTreeMap::new();
    for who in ["plain", "victim", "kid", "sharer", "keyholder"] {
        wallets.insert(who, default_wallet(&app, &root, &ids[who]).await);
    }
    PrivilegeWorld {
        app,
        root,
        ids,
        wallets,
        tier: tier["id"].as_str().unwrap().to_owned(),
        callers: vec![
            ("plain user", plain, "plain"),
            ("manager", manager, "kid"),
            ("grantee", grantee, "sharer"),
            ("delegated token", delegated, "kid"),
            ("read-only API key", read_key, "keyholder"),
        ],
    }
}

/// Everything an administrator could observe changing: the directory (deleted users included;
/// logins only move `last_login_at`), the audit trail, the tiers and every default wallet.
async fn observable_state(w: &PrivilegeWorld) -> Value {
    let app = &w.app;
    let (_, mut users) = send(
        app.get("/api/v1/users?include_deleted=true&limit=500")
            .bearer_auth(&w.root),
    )
    .await;
    for user in users["data"].as_array_mut().unwrap() {
        user.as_object_mut().unwrap().remove("last_login_at");
    }
    let (_, audit) = send(app.get("/api/v1/audit?limit=500").bearer_auth(&w.root)).await;
    let (_, tiers) = send(app.get("/api/v1/tiers").bearer_auth(&w.root)).await;
    let mut wallets = Vec::new();
    for id in w.wallets.values() {
        let (_, wallet) = send(
            app.get(&format!("/api/v1/wallets/{id}"))
                .bearer_auth(&w.root),
        )
        .await;
        wallets.push(wallet);
    }
    json!({"users": users["data"], "audit": audit["data"], "tiers": tiers, "wallets": wallets})
}

/// One admin or superuser operation: its name, and the request for a target user id and that
/// user's wallet id.
type Operation = (
    &'static str,
    Box<dyn Fn(&TestApp, &str, &str) -> RequestBuilder>,
);

fn admin_operations(tier: &str) -> Vec<Operation> {
    let tier = tier.to_owned();
    let t1 = tier.clone();
    let t2 = tier.clone();
    let t3 = tier;
    vec![
        (
            "POST /api/v1/users (login user)",
            Box::new(|app, _, _| {
                app.post("/api/v1/users")
                    .json(&json!({"username": "intruder", "password": "intruder-password"}))
            }),
        ),
        (
            "POST /api/v1/users (admin)",
            Box::new(|app, _, _| {
                app.post("/api/v1/users").json(
                &json!({"username": "intruder2", "password": "intruder-password", "is_admin": true}),
            )
            }),
        ),
        (
            "GET /api/v1/audit",
            Box::new(|app, _, _| app.get("/api/v1/audit")),
        ),
        (
            "POST /api/v1/tiers",
            Box::new(|app, _, _| app.post("/api/v1/tiers").json(&json!({"name": "stolen"}))),
        ),
        (
            "PATCH /api/v1/tiers/{tier}",
            Box::new(move |app, _, _| {
                app.patch(&format!("/api/v1/tiers/{t1}"))
                    .json(&json!({"name": "renamed"}))
            }),
        ),
        (
            "DELETE /api/v1/tiers/{tier}",
            Box::new(move |app, _, _| app.delete(&format!("/api/v1/tiers/{t2}"))),
        ),
        (
            "PATCH /api/v1/users/{user}/tier",
            Box::new(move |app, user, _| {
                app.patch(&format!("/api/v1/users/{user}/tier"))
                    .json(&json!({"tier_id": t3}))
            }),
        ),
        (
            "POST /api/v1/users/{user}/restore",
            Box::new(|app, user, _| app.post(&format!("/api/v1/users/{user}/restore"))),
        ),
        (
            "DELETE /api/v1/users/db_user/{user}",
            Box::new(|app, user, _| app.delete(&format!("/api/v1/users/db_user/{user}"))),
        ),
        (
            "POST /api/v1/users/{user}/password",
            Box::new(|app, user, _| app.post(&format!("/api/v1/users/{user}/password"))),
        ),
        (
            "POST /api/v1/users/{user}/logout",
            Box::new(|app, user, _| app.post(&format!("/api/v1/users/{user}/logout"))),
        ),
        (
            "POST /api/v1/users/{user}/deactivate",
            Box::new(|app, user, _| app.post(&format!("/api/v1/users/{user}/deactivate"))),
        ),
        (
            "POST /api/v1/users/{user}/reactivate",
            Box::new(|app, user, _| app.post(&format!("/api/v1/users/{user}/reactivate"))),
        ),
        (
            "POST /api/v1/wallets/{wallet}/adjustments",
            Box::new(|app, _, wallet| {
                app.post(&format!("/api/v1/wallets/{wallet}/adjustments"))
                    .json(&json!({"amount": 1000, "reason": "free money"}))
            }),
        ),
        (
            "GET /users/api/v1/user",
            Box::new(|app, _, _| app.get("/users/api/v1/user")),
        ),
        (
            "GET /users/api/v1/user/{user}",
            Box::new(|app, user, _| app.get(&format!("/users/api/v1/user/{user}"))),
        ),
        (
            "POST /users/api/v1/user",
            Box::new(|app, _, _| {
                app.post("/users/api/v1/user")
                    .json(&json!({"username": "intruder3", "password": "intruder-password"}))
            }),
        ),
        (
            "PUT /users/api/v1/user/{user}",
            Box::new(|app, user, _| {
                app.put(&format!("/users/api/v1/user/{user}"))
                    .json(&json!({"is_admin": true}))
            }),
        ),
        (
            "DELETE /users/api/v1/user/{user}",
            Box::new(|app, user, _| app.delete(&format!("/users/api/v1/user/{user}"))),
        ),
        (
            "PUT /users/api/v1/user/{user}/balance",
            Box::new(|app, user, _| {
                app.put(&format!("/users/api/v1/user/{user}/balance"))
                    .json(&json!({"amount": 1000}))
            }),
        ),
        (
            "POST /users/create_user",
            Box::new(|app, _, _| {
                app.post("/users/create_user")
                    .json(&json!({"username": "intruder4"}))
            }),
        ),
        (
            "GET /users/user_id_lookup",
            Box::new(|app, _, _| app.get("/users/user_id_lookup?username=victim")),
        ),
    ]
}

/// Whether `token`'s holder can see `user` (`GET /api/v1/users/{user}` answers 200).
async fn sees(app: &TestApp, token: &str, user: &str) -> bool {
    get_user(app, token, user).await.0 == 200
}

/// Every admin and superuser endpoint (canonical, LNbits, Chutes), called by a plain user, a
/// manager, a grantee (with every scope), a delegated token and a read-only API key, each on the
/// user it is related to and on a stranger: always 403 or 404 — 403 only where the caller
/// already sees the target or no target is named, and on a stranger exactly what a user that
/// does not exist gets, so nothing leaks — and nothing observable changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_refuse_every_non_admin_caller_and_change_nothing() {
    let w = privilege_world().await;
    let app = &w.app;
    let before = observable_state(&w).await;
    let ghost = uuid::Uuid::now_v7().to_string();
    let ghost_wallet = uuid::Uuid::now_v7().to_string();
    let mut failures = Vec::new();
    for (caller, token, related) in &w.callers {
        for target in [*related, "victim"] {
            let user = &w.ids[target];
            let wallet = &w.wallets[target];
            let visible = sees(app, token, user).await;
            for (name, operation) in admin_operations(&w.tier) {
                let (status, body) = send(operation(app, user, wallet).bearer_auth(token)).await;
                let case = format!("{caller} → {name} on {target}");
                if status != 403 && status != 404 {
                    failures.push(format!("{case}: {status} {body}"));
                    continue;
                }
                // Administrative operations judge visibility without shares (docs/api.md): a
                // grantee gets 404 for the sharer there, which tells it nothing it did not know.
                if status == 404 && visible && name.contains("{user}") && *caller != "grantee" {
                    failures.push(format!("{case}: 404 for a user the caller sees: {body}"));
                }
                if !visible {
                    let (ghost_status, ghost_body) =
                        send(operation(app, &ghost, &ghost_wallet).bearer_auth(token)).await;
                    if ghost_status != status {
                        failures.push(format!(
                            "{case}: {status} {body}, but {ghost_status} {ghost_body} for a user \
                             that does not exist (existence leaks)"
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let after = observable_state(&w).await;
    assert_eq!(before, after, "a refused call changed something");
}

/// Escalation through PATCH by callers who are not superusers: the permission bits, `is_admin`,
/// `is_superuser` and `manager_id` (not an updatable field: ignored) never change, whichever way
/// it is attempted, as the superuser reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_through_patch_is_refused_or_ignored() {
    let w = privilege_world().await;
    let app = &w.app;
    let (admin_id, admin) = admin_with_token(app, "ops").await;
    let mut ids = w.ids.clone();
    ids.insert("ops", admin_id);
    let sensitive = |user: &Value| {
        json!({
            "is_admin": user["is_admin"],
            "is_superuser": user["is_superuser"],
            "permissions_bitmask": user["permissions_bitmask"],
            "manager_id": user["manager_id"],
        })
    };
    let mut before = BTreeMap::new();
    for (who, id) in &ids {
        before.insert(*who, sensitive(&read_back(app, id).await));
    }
    let mut attempts: Vec<(String, String, String)> = Vec::new();
    for (caller, token, related) in &w.callers {
        for path in [
            "/api/v1/users/me".to_owned(),
            format!("/api/v1/users/{}", w.ids[*related]),
        ] {
            attempts.push((caller.to_string(), token.clone(), path));
        }
    }
    attempts.push(("admin".into(), admin.clone(), "/api/v1/users/me".into()));
    attempts.push((
        "admin".into(),
        admin.clone(),
        format!("/api/v1/users/{}", w.ids["kid"]),
    ));
    let manager = &w.ids["manager"];
    let victim = &w.ids["victim"];
    let mut failures = Vec::new();
    for (caller, token, path) in &attempts {
        let is_admin = caller == "admin";
        let mut bodies = vec![
            json!({"manager_id": victim}),
            json!({"manager_id": null}),
            json!({"manager_id": manager, "first_name": "Moved"}),
        ];
        if !is_admin {
            bodies.extend([
                json!({"is_admin": true}),
                json!({"is_superuser": true}),
                json!({"permissions": 1 << 20}),
                json!({"permissions": 1 << 21}),
                json!({"permissions": 64}),
                json!({"permissions": (1 << 22) - 1}),
                json!({"is_admin": true, "first_name": "Sneaky"}),
            ]);
        } else {
            bodies.push(json!({"is_superuser": true}));
            bodies.push(json!({"permissions": 1 << 21}));
        }
        for body in bodies {
            for method in [Method::PATCH, Method::PUT] {
                let (status, answer) = send(
                    app.request(method.clone(), path)
                        .bearer_auth(token)
                        .json(&body),
                )
                .await;
                let case = format!("{caller}: {method} {path} {body}");
                if status >= 500 {
                    failures.push(format!("{case}: {status} {answer}"));
                }
            }
        }
    }
    // LNbits' update by an admin who is not a superuser.
    let (status, body) = send(
        app.put(&format!("/users/api/v1/user/{}", w.ids["plain"]))
            .bearer_auth(&admin)
            .json(&json!({"is_admin": true})),
    )
    .await;
    assert_eq!(status, 403, "LNbits is_admin by a plain admin: {body}");
    for (who, id) in &ids {
        let now = sensitive(&read_back(app, id).await);
        if now != before[who] {
            failures.push(format!("{who} changed: {} → {now}", before[who]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Enumeration
// ---------------------------------------------------------------------------------------------

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Unknown users cost the same argon2 verification as known ones (against a dummy hash). With
/// production-grade argon2 parameters a login that skipped it would be many times faster, so
/// the medians of 20 sequential logins of each kind must be within 3× of each other. This is a
/// ratio of two measurements taken side by side, not a bound on absolute speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_known_users_take_comparable_time_to_refuse() {
    let app = TestApp::spawn_with(&[
        ("password_hashing.memory_kib", "19456".to_owned()),
        ("password_hashing.iterations", "2".to_owned()),
    ])
    .await;
    app.user_with_token("alice").await;
    // Warm-up: connections opened, code paths touched.
    for _ in 0..3 {
        try_login(&app, "alice", "wrong-password").await;
        try_login(&app, "nobody-at-all", "wrong-password").await;
    }
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..20 {
        // Interleaved, so a burst of load from elsewhere hits both kinds alike.
        let start = Instant::now();
        let (status, body) = try_login(&app, "alice", &format!("wrong-{i}")).await;
        known.push(start.elapsed());
        assert_eq!((status, body), (401, invalid_credentials()));
        let start = Instant::now();
        let (status, body) = try_login(&app, &format!("ghost{i}"), &format!("wrong-{i}")).await;
        unknown.push(start.elapsed());
        assert_eq!((status, body), (401, invalid_credentials()));
    }
    let (k, u) = (median(known), median(unknown));
    let ratio = k.as_secs_f64() / u.as_secs_f64().max(1e-6);
    assert!(
        (1.0 / 3.0..=3.0).contains(&ratio),
        "median login time: known user {k:?}, unknown user {u:?} (ratio {ratio:.2})"
    );
}

/// The name checks answer `{valid, available}` and nothing else; a soft-deleted user's name looks
/// exactly like an active user's (taken), and an unknown one like any free name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_checks_answer_only_validity_and_availability() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    app.user_with_token("present").await;
    app.user_with_token("departed").await;
    let (status, _) = send(app.delete("/api/v1/users/departed").bearer_auth(&root)).await;
    assert_eq!(status, 204);
    for path in ["/api/v1/users/name-check", "/users/name_check"] {
        let mut answers = BTreeMap::new();
        for name in [
            "present",
            "PRESENT",
            "departed",
            "absent",
            "also-absent",
            "a",
        ] {
            let response = app
                .get(&format!("{path}?username={name}"))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, 200, "{path} {name}: {body}");
            let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["available", "valid"], "{path} {name}: {body}");
            answers.insert(name, body);
        }
        assert_eq!(
            answers["present"],
            json!({"valid": true, "available": false})
        );
        assert_eq!(answers["PRESENT"], answers["present"], "{path}");
        assert_eq!(
            answers["departed"], answers["present"],
            "{path}: deleted looks taken"
        );
        assert_eq!(answers["absent"], json!({"valid": true, "available": true}));
        assert_eq!(answers["also-absent"], answers["absent"], "{path}");
        assert_eq!(
            answers["a"],
            json!({"valid": false, "available": false}),
            "{path}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Injection and encoding
// ---------------------------------------------------------------------------------------------

/// What an administrator would see grow if something were stored: users (deleted included),
/// audit events (every user, wallet, tier, share and money change writes one), and the API keys
/// and shares of the caller.
async fn stored(app: &TestApp, root: &str, caller: &str) -> Value {
    let (_, users) = send(
        app.get("/api/v1/users/count?include_deleted=true")
            .bearer_auth(root),
    )
    .await;
    let (_, audit) = send(app.get("/api/v1/audit?limit=500").bearer_auth(root)).await;
    let (_, keys) = send(app.get("/api/v1/me/api-keys").bearer_auth(caller)).await;
    let (_, shares) = send(app.get("/api/v1/me/shares").bearer_auth(caller)).await;
    json!({
        "users": users["count"],
        "audit": audit["data"].as_array().map(Vec::len),
        "keys": keys.as_array().map(Vec::len),
        "shares": shares.as_array().map(Vec::len),
    })
}

/// Hostile values for text fields: `(name, value, whether a field of free text may accept it
/// verbatim)`.
fn hostile_values() -> Vec<(&'static str, Value, bool)> {
    let mut nested = json!("deep");
    for _ in 0..200 {
        nested = json!([nested]);
    }
    vec![
        ("SQL tautology", json!("' OR 1=1 --"), true),
        ("SQL drop", json!("\"; DROP TABLE users; --"), true),
        ("NUL byte", json!("a\u{0}b"), false),
        ("only NUL", json!("\u{0}"), false),
        ("1 MB string", json!("x".repeat(1 << 20)), false),
        ("nested JSON value", nested, false),
        ("object value", json!({"$ne": null}), false),
        ("array value", json!(["admin"]), false),
    ]
}

/// A JSON endpoint taking free text: name, method, path (with `{wallet}` for the caller's
/// wallet), a valid body, and the fields to poison.
struct FreeText {
    name: &'static str,
    method: Method,
    path: &'static str,
    body: Value,
    fields: &'static [&'static str],
    as_root: bool,
}

fn free_text_endpoints() -> Vec<FreeText> {
    vec![
        FreeText {
            name: "create user",
            method: Method::POST,
            path: "/api/v1/users",
            body: json!({"username": "newbie", "email": "newbie@example.com",
                "password": "newbie-password", "first_name": "New", "last_name": "Bie"}),
            fields: &[
                "username",
                "email",
                "first_name",
                "last_name",
                "name",
                "password",
            ],
            as_root: true,
        },
        FreeText {
            name: "create managed user",
            method: Method::POST,
            path: "/api/v1/users",
            body: json!({"first_name": "Kid", "last_name": "Managed"}),
            fields: &["first_name", "last_name", "name"],
            as_root: false,
        },
        FreeText {
            name: "update me",
            method: Method::PATCH,
            path: "/api/v1/users/me",
            body: json!({"first_name": "Mal"}),
            fields: &["username", "email", "first_name", "last_name", "name"],
            as_root: false,
        },
        FreeText {
            name: "change password",
            method: Method::POST,
            path: "/api/v1/me/password",
            body: json!({"current_password": "mallory-password", "new_password": "another-password"}),
            fields: &["current_password", "new_password"],
            as_root: false,
        },
        FreeText {
            name: "create wallet",
            method: Method::POST,
            path: "/api/v1/users/mallory/wallets",
            body: json!({"name": "savings", "currency": "usd"}),
            fields: &["name", "currency"],
            as_root: false,
        },
        FreeText {
            name: "adjust wallet",
            method: Method::POST,
            path: "/api/v1/wallets/{wallet}/adjustments",
            body: json!({"amount": 5, "reason": "bonus"}),
            fields: &["reason"],
            as_root: true,
        },
        FreeText {
            name: "create tier",
            method: Method::POST,
            path: "/api/v1/tiers",
            body: json!({"name": "platinum"}),
            fields: &["name"],
            as_root: true,
        },
        FreeText {
            name: "create API key",
            method: Method::POST,
            path: "/api/v1/me/api-keys",
            body: json!({"name": "ci"}),
            fields: &["name"],
            as_root: false,
        },
        FreeText {
            name: "share",
            method: Method::POST,
            path: "/api/v1/me/shares",
            body: json!({"grantee": "root", "scopes": ["data:read"]}),
            fields: &["grantee"],
            as_root: false,
        },
        FreeText {
            name: "LNbits create user",
            method: Method::POST,
            path: "/users/api/v1/user",
            body: json!({"username": "lnuser", "password": "lnuser-password", "email": "ln@example.com"}),
            fields: &["username", "email", "password"],
            as_root: true,
        },
        FreeText {
            name: "Chutes create user",
            method: Method::POST,
            path: "/users/create_user",
            body: json!({"username": "chuter"}),
            fields: &["username"],
            as_root: true,
        },
        FreeText {
            name: "login",
            method: Method::POST,
            path: "/api/v1/auth/login",
            body: json!({"username": "mallory", "password": "mallory-password"}),
            fields: &["username", "password"],
            as_root: false,
        },
        FreeText {
            name: "fingerprint login",
            method: Method::POST,
            path: "/users/login",
            body: json!({"fingerprint": "abcdefghijklmnopqrstuvwxyz012345"}),
            fields: &["fingerprint"],
            as_root: false,
        },
    ]
}

/// Whether a 2xx answer may store the value as is: SQL metacharacters are legitimate text in
/// names, reasons and passwords (bound parameters keep them inert), never in usernames, emails
/// or currency codes.
fn verbatim_field(field: &str) -> bool {
    !matches!(field, "username" | "email" | "currency" | "grantee")
}

/// Every free-text field of every JSON endpoint gets each hostile value: the answer is a clean
/// 4xx with a JSON error body, and nothing is stored — except SQL metacharacters in fields of
/// free text, which may be accepted and are then stored exactly as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_in_every_free_text_field_are_clean_4xx_and_store_nothing() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (_, mallory) = app.user_with_token("mallory").await;
    let wallet = default_wallet(&app, &root, "mallory").await;
    let mut failures = Vec::new();
    let mut n = 0;
    for endpoint in free_text_endpoints() {
        let token = if endpoint.as_root { &root } else { &mallory };
        let path = endpoint.path.replace("{wallet}", &wallet);
        for field in endpoint.fields {
            for (value_name, value, free_text_ok) in hostile_values() {
                let case = format!("{}: {field} = {value_name}", endpoint.name);
                let mut body = endpoint.body.clone();
                // Unique names, so an accepted case never turns the next into a duplicate.
                n += 1;
                for key in ["username", "email"] {
                    if let Some(v) = body.get(key).and_then(Value::as_str) {
                        body[key] = json!(format!("n{n}{v}"));
                    }
                }
                if endpoint.name == "create tier" {
                    body["name"] = json!(format!("platinum{n}"));
                }
                if *field == "name" {
                    // `name` is split into first and last name, which win when also sent.
                    let object = body.as_object_mut().unwrap();
                    object.remove("first_name");
                    object.remove("last_name");
                }
                body[*field] = value.clone();
                let before = stored(&app, &root, &mallory).await;
                let bytes = serde_json::to_vec(&body).unwrap();
                let response = app
                    .request(endpoint.method.clone(), &path)
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(bytes)
                    .send()
                    .await;
                let Ok(response) = response else {
                    failures.push(format!("{case}: no answer"));
                    continue;
                };
                let status = response.status().as_u16();
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                let accepted_verbatim = free_text_ok && verbatim_field(field);
                if (200..300).contains(&status) && accepted_verbatim {
                    let echoed = answer
                        .get(*field)
                        .or_else(|| answer.get("user").and_then(|u| u.get(*field)));
                    if let Some(echoed) = echoed {
                        if echoed != &value {
                            failures.push(format!("{case}: stored as {echoed}"));
                        }
                    }
                    continue;
                }
                if !(400..500).contains(&status) {
                    failures.push(format!("{case}: {status} {answer}"));
                    continue;
                }
                if answer.get("detail").is_none() {
                    failures.push(format!("{case}: {status} without an error body: {answer}"));
                }
                let after = stored(&app, &root, &mallory).await;
                if before != after {
                    failures.push(format!("{case}: {status}, but {before} → {after}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Overlong UTF-8 (`/` as `C0 AF`, `E0 80 AF`), a lone continuation byte and a NUL escape, as
/// raw bytes inside JSON strings: 400 (not valid JSON text) or 422, never 5xx, nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_utf8_in_json_bodies_is_a_clean_4xx() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (_, mallory) = app.user_with_token("mallory").await;
    let sequences: [(&str, &[u8]); 4] = [
        ("overlong 2-byte slash", &[0xC0, 0xAF]),
        ("overlong 3-byte slash", &[0xE0, 0x80, 0xAF]),
        ("overlong NUL", &[0xC0, 0x80]),
        ("lone continuation byte", &[0x80]),
    ];
    let before = stored(&app, &root, &mallory).await;
    for (name, bytes) in sequences {
        for (path, token, template) in [
            (
                "/api/v1/users",
                &root,
                r#"{"username": "ab#", "password": "long-enough-1"}"#,
            ),
            ("/api/v1/users/me", &mallory, r#"{"first_name": "ab#"}"#),
            ("/api/v1/me/api-keys", &mallory, r##"{"name": "ab#"}"##),
            (
                "/api/v1/auth/login",
                &mallory,
                r#"{"username": "ab#", "password": "x"}"#,
            ),
            (
                "/users/api/v1/user",
                &root,
                r#"{"username": "ab#", "password": "long-enough-1"}"#,
            ),
        ] {
            let (head, tail) = template.split_once('#').unwrap();
            let mut body = head.as_bytes().to_vec();
            body.extend_from_slice(bytes);
            body.extend_from_slice(tail.as_bytes());
            let method = if path == "/api/v1/users/me" {
                Method::PATCH
            } else {
                Method::POST
            };
            let (status, answer) = send(
                app.request(method, path)
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
            assert!(
                status == 400 || status == 422,
                "{name} in {path}: {status} {answer}"
            );
        }
    }
    assert_eq!(before, stored(&app, &root, &mallory).await);
    assert!(read_back(&app, "mallory").await["first_name"].is_null());
}

/// Percent-encodes every byte.
fn encode_all(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

/// Hostile query parameters on every listing and lookup: never a 5xx; a search never matches
/// more than a literal search would (the tautology matches nobody); bad cursors are 422.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_query_parameters_are_clean_and_literal() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (_, mallory) = app.user_with_token("mallory").await;
    let wallet = default_wallet(&app, &root, "mallory").await;
    let before = stored(&app, &root, &mallory).await;
    let values: Vec<(&str, String)> = vec![
        ("SQL tautology", encode_all(b"' OR 1=1 --")),
        ("SQL drop", encode_all(b"\"; DROP TABLE users; --")),
        ("NUL", "a%00b".to_owned()),
        ("overlong slash", "%C0%AF".to_owned()),
        ("overlong 3-byte", "%E0%80%AF".to_owned()),
        ("lone continuation", "%80".to_owned()),
        ("16 KiB", "x".repeat(16 * 1024)),
        ("JSON", encode_all(br#"{"$gt": ""}"#)),
    ];
    let endpoints: Vec<(&str, String, &String)> = vec![
        ("filterBy", "/api/v1/users?filterBy=".to_owned(), &root),
        (
            "filterBy username",
            "/api/v1/users?filterBy=username%3D%3D".to_owned(),
            &root,
        ),
        ("search", "/api/v1/users?search=".to_owned(), &root),
        ("name", "/api/v1/users?name=".to_owned(), &root),
        ("sortBy", "/api/v1/users?sortBy=".to_owned(), &root),
        ("sortOrder", "/api/v1/users?sortOrder=".to_owned(), &root),
        (
            "count search",
            "/api/v1/users/count?search=".to_owned(),
            &root,
        ),
        ("limit", "/api/v1/users?limit=".to_owned(), &root),
        (
            "ledger cursor",
            format!("/api/v1/wallets/{wallet}/ledger?cursor="),
            &root,
        ),
        ("audit cursor", "/api/v1/audit?cursor=".to_owned(), &root),
        ("audit action", "/api/v1/audit?action=".to_owned(), &root),
        ("audit actor", "/api/v1/audit?actor=".to_owned(), &root),
        (
            "name-check",
            "/api/v1/users/name-check?username=".to_owned(),
            &root,
        ),
        (
            "name_check",
            "/users/name_check?username=".to_owned(),
            &root,
        ),
        (
            "user_id_lookup",
            "/users/user_id_lookup?username=".to_owned(),
            &root,
        ),
        ("set_logo", "/users/set_logo?logo_id=".to_owned(), &mallory),
        (
            "LNbits limit",
            "/users/api/v1/user?limit=".to_owned(),
            &root,
        ),
        (
            "growth days",
            "/api/v1/stats/growth?days=".to_owned(),
            &root,
        ),
        ("user path", "/api/v1/users/".to_owned(), &root),
        ("tier path", "/api/v1/tiers/".to_owned(), &root),
    ];
    let mut failures = Vec::new();
    for (param, prefix, token) in &endpoints {
        for (name, value) in &values {
            let case = format!("{param} = {name}");
            let url = app.url(&format!("{prefix}{value}"));
            let response = app
                .client
                .get(&url)
                .bearer_auth(token.as_str())
                .send()
                .await;
            let Ok(response) = response else {
                failures.push(format!("{case}: no answer"));
                continue;
            };
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if status >= 500 {
                failures.push(format!("{case}: {status} {body}"));
            }
            if (*param == "search" || *param == "name") && status == 200 {
                let hits = body["data"].as_array().map_or(0, Vec::len);
                if hits != 0 {
                    failures.push(format!("{case}: matched {hits} users: {body}"));
                }
            }
            if param.contains("cursor") && status != 422 {
                failures.push(format!("{case}: a bad cursor is {status}, not 422: {body}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(before, stored(&app, &root, &mallory).await);
}

/// Hostile header values (Authorization, X-Request-Id, Idempotency-Key, X-Chutes-*): a clean
/// 4xx for credentials and keys, an X-Request-Id that is replaced (never echoed), nothing
/// stored, never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_headers_are_clean_4xx_and_store_nothing() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (_, mallory) = app.user_with_token("mallory").await;
    let (hotkey, _) = register(&app, "signer").await;
    let wallet = default_wallet(&app, &root, "mallory").await;
    let before = stored(&app, &root, &mallory).await;
    let values: Vec<(&str, HeaderValue)> = vec![
        ("SQL tautology", HeaderValue::from_static("' OR 1=1 --")),
        (
            "SQL drop",
            HeaderValue::from_static("\"; DROP TABLE users; --"),
        ),
        (
            "overlong UTF-8",
            HeaderValue::from_bytes(&[0x61, 0xC0, 0xAF, 0x62]).unwrap(),
        ),
        (
            "Latin-1 bytes",
            HeaderValue::from_bytes(&[0xE9, 0xFF]).unwrap(),
        ),
        (
            "16 KiB",
            HeaderValue::from_str(&"y".repeat(16 * 1024)).unwrap(),
        ),
        ("JSON", HeaderValue::from_static(r#"{"admin": true}"#)),
    ];
    let mut failures = Vec::new();
    let mut accepted_keys = 0;
    for (name, value) in &values {
        let hk = ss58(&hotkey);
        let cases: Vec<(String, RequestBuilder, &[u16])> = vec![
            (
                "Authorization".into(),
                app.get("/api/v1/users/me")
                    .header("Authorization", value.clone()),
                &[401, 431],
            ),
            (
                "Authorization: Bearer".into(),
                app.get("/api/v1/users/me").header(
                    "Authorization",
                    HeaderValue::from_bytes(&[b"Bearer ".as_slice(), value.as_bytes()].concat())
                        .unwrap(),
                ),
                &[401, 431],
            ),
            (
                "Authorization on Chutes".into(),
                app.get("/users/me").header("Authorization", value.clone()),
                &[401, 431],
            ),
            (
                "X-Chutes-Signature".into(),
                app.get("/users/me")
                    .header("X-Chutes-Hotkey", hk.clone())
                    .header("X-Chutes-Nonce", now().to_string())
                    .header("X-Chutes-Signature", value.clone()),
                &[401, 431],
            ),
            (
                "X-Chutes-Hotkey".into(),
                app.get("/users/me")
                    .header("X-Chutes-Hotkey", value.clone())
                    .header("X-Chutes-Nonce", now().to_string())
                    .header("X-Chutes-Signature", hotkey.sign(b"whatever")),
                &[401, 431],
            ),
            (
                "X-Chutes-Nonce".into(),
                app.get("/users/me")
                    .header("X-Chutes-Hotkey", hk.clone())
                    .header("X-Chutes-Nonce", value.clone())
                    .header(
                        "X-Chutes-Signature",
                        hotkey.sign(format!("{hk}:{}:me", now()).as_bytes()),
                    ),
                &[401, 431],
            ),
            (
                "X-Chutes-Coldkey".into(),
                app.post("/users/change_fingerprint")
                    .header("X-Chutes-Coldkey", value.clone())
                    .header("X-Chutes-Nonce", now().to_string())
                    .header("X-Chutes-Signature", hotkey.sign(b"whatever"))
                    .json(&json!({"fingerprint": "abcdefghijklmnopqrstuvwxyz012345"})),
                &[401, 422, 431],
            ),
            (
                "X-Chutes-Hotkey on register".into(),
                app.post("/users/register")
                    .header("X-Chutes-Hotkey", value.clone())
                    .header("X-Chutes-Nonce", now().to_string())
                    .header("X-Chutes-Signature", hotkey.sign(b"whatever"))
                    .json(&json!({"username": "hostile", "coldkey": hk})),
                &[401, 422, 431],
            ),
        ];
        for (header, request, allowed) in cases {
            let case = format!("{header} = {name}");
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    if !allowed.contains(&status) {
                        failures.push(format!("{case}: {status} {body}"));
                    }
                }
                Err(e) => failures.push(format!("{case}: no answer: {e}")),
            }
        }
        // Idempotency-Key: 1–255 printable ASCII characters (SQL text included) are a key like
        // any other, kept verbatim; anything else is a 422 at the header.
        let (status, body) = send(
            app.post(&format!("/api/v1/wallets/{wallet}/adjustments"))
                .bearer_auth(&root)
                .header("Idempotency-Key", value.clone())
                .json(&json!({"amount": 5, "reason": "keyed"})),
        )
        .await;
        let bytes = value.as_bytes();
        let valid_key = bytes.len() <= 255 && bytes.iter().all(|b| (0x20..0x7f).contains(b));
        if valid_key {
            accepted_keys += 1;
            if status != 201 || body["idempotency_key"].as_str().map(str::as_bytes) != Some(bytes) {
                failures.push(format!("Idempotency-Key = {name}: {status} {body}"));
            }
        } else if status != 422 || body["detail"][0]["loc"] != json!(["header", "Idempotency-Key"])
        {
            failures.push(format!("Idempotency-Key = {name}: {status} {body}"));
        }
        // X-Request-Id is never echoed unless it is a short plain token.
        let response = app
            .get("/api/v1/users/me")
            .bearer_auth(&mallory)
            .header("X-Request-Id", value.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let echoed = response.headers()["x-request-id"].clone();
        if status != 200 && status != 431 {
            failures.push(format!("X-Request-Id = {name}: {status}"));
        }
        if echoed == value {
            failures.push(format!("X-Request-Id = {name}: echoed back"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Only the validly keyed adjustments were stored, each with its one audit event.
    let mut expected = before.clone();
    expected["audit"] = json!(before["audit"].as_u64().unwrap() + accepted_keys);
    assert_eq!(expected, stored(&app, &root, &mallory).await);
    let (_, ledger) = send(
        app.get(&format!("/api/v1/wallets/{wallet}/ledger"))
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(
        ledger["data"].as_array().unwrap().len() as u64,
        accepted_keys,
        "{ledger}"
    );
}

/// A NUL byte or a bare CR inside a header is not HTTP: the server answers 400 on the raw
/// connection rather than passing it on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_bytes_in_headers_are_400() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    for (name, header) in [
        (
            "NUL in Authorization",
            &b"Authorization: Bearer a\0b\r\n"[..],
        ),
        ("NUL in X-Request-Id", &b"X-Request-Id: a\0b\r\n"[..]),
        ("NUL in Idempotency-Key", &b"Idempotency-Key: k\0\r\n"[..]),
    ] {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let mut request = b"GET /api/v1/users/me HTTP/1.1\r\nHost: x\r\n".to_vec();
        request.extend_from_slice(header);
        request.extend_from_slice(b"Connection: close\r\n\r\n");
        stream.write_all(&request).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("an answer, not a hang");
        let _ = read;
        let text = String::from_utf8_lossy(&answer);
        let status_line = text.lines().next().unwrap_or("");
        assert!(
            status_line.starts_with("HTTP/1.1 4"),
            "{name}: {status_line:?}"
        );
    }
}
