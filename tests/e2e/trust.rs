//! Regression tests of the trust findings (commit 1e48cff, "Trust (1/n)"): one test per finding
//! (several for findings with several parts), named after it. Each asserts the refusal AND that
//! nothing changed, read back with the credentials of someone who may read it, and most end with
//! a control showing the refused act is possible for whoever may do it, so a refusal cannot pass
//! for the wrong reason. Finding 14 (directory cost) is pinned by its owner elsewhere.

use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tessera_sr25519::Sr25519Keypair;
use tessera_testkit::TestApp;

use crate::chutes::{bound, now, register, signed, ss58};
use crate::money::{balance, default_wallet, id_of, ledger, member};
use crate::support::{
    admin_with_token, assert_error, assert_unchanged, me, patch_user, read_back, send, try_login,
};

const CHUTE: &str = "0191f1a2-0000-7000-8000-00000000c0de";

/// Settings overrides for a throttle test, with throttle windows of a day: fixed windows start
/// on multiples of their length, so no window boundary falls inside a test in practice.
fn throttled(extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut settings: Vec<(&'static str, String)> =
        extra.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    settings.push(("rate_limits.login_window_secs", "86400".into()));
    settings.push(("rate_limits.login_account_window_secs", "86400".into()));
    settings
}

/// `request` as if it came from `address` through one trusted proxy (`server.trusted_proxies`
/// = 1 takes the rightmost `X-Forwarded-For` entry).
fn from(request: RequestBuilder, address: &str) -> RequestBuilder {
    request.header("X-Forwarded-For", address)
}

/// A password login of `username` from `address`; its status.
async fn login_from(app: &TestApp, address: &str, username: &str, password: &str) -> u16 {
    send(from(
        app.post("/api/v1/auth/login")
            .json(&json!({"username": username, "password": password})),
        address,
    ))
    .await
    .0
}

/// A non-admin API key of `token`'s holder with `scopes`: `(key id, secret)`.
async fn api_key(app: &TestApp, token: &str, scopes: &[&str]) -> (String, String) {
    let (status, body) = send(
        app.post("/api/v1/me/api-keys")
            .bearer_auth(token)
            .json(&json!({"name": "k", "admin": false, "scopes": scopes})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["secret_key"].as_str().unwrap().to_owned(),
    )
}

/// Credits `wallet` with `amount` minor units as the bootstrap superuser.
async fn credit(app: &TestApp, root: &str, wallet: &str, amount: i64) {
    let (status, body) = send(
        app.post(&format!("/api/v1/wallets/{wallet}/adjustments"))
            .bearer_auth(root)
            .json(&json!({"amount": amount, "reason": "top-up"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// A random 32-character fingerprint nobody holds.
fn random_fingerprint() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Asserts the refusal of a credential that does not allow the operation.
fn assert_credential_refused(status: u16, body: &Value, what: &str) {
    assert_eq!(status, 403, "{what}: {body}");
    assert_eq!(body["code"], "credential_not_allowed", "{what}: {body}");
}

// ---- 1. Scoped API keys ----------------------------------------------------------------------

#[tokio::test]
async fn finding_01a_read_only_key_cannot_share_create_change_password_delete_or_transfer() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    let bob = member(&app, "bob").await;
    credit(&app, &root, &alice.wallet, 1_000).await;
    let (_, reader) = api_key(&app, &alice.token, &["read"]).await;
    let before = read_back(&app, &alice.id).await;

    let attempts = [
        (
            app.post("/api/v1/me/shares")
                .json(&json!({"grantee": "bob", "scopes": ["data:read"]})),
            "share",
        ),
        (
            app.post("/api/v1/users").json(&json!({"first_name": "X"})),
            "managed user",
        ),
        (
            app.post("/api/v1/me/password").json(&json!({
                "current_password": "alice-password",
                "new_password": "taken-over-password",
            })),
            "password",
        ),
        (app.delete("/api/v1/users/me"), "delete account"),
        (
            app.post("/api/v1/transfers").json(&json!({
                "from_wallet": alice.wallet, "to_wallet": bob.wallet,
                "amount": 500, "reason": "drain",
            })),
            "transfer",
        ),
    ];
    for (request, what) in attempts {
        let (status, body) = send(request.bearer_auth(&reader)).await;
        assert_credential_refused(status, &body, what);
    }

    // It still reads.
    let (status, body) = me(&app, &reader).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], alice.id.as_str());

    // Nothing changed: no share, no managed user, the password, the account, the money.
    let (_, shares) = send(app.get("/api/v1/me/shares").bearer_auth(&alice.token)).await;
    assert_eq!(shares, json!([]));
    let (status, users) = send(
        app.get("/api/v1/users?include_managed=true&include_deleted=true&limit=500")
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(status, 200, "{users}");
    assert!(
        !users["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["manager_id"] == alice.id.as_str()),
        "{users}"
    );
    assert_eq!(try_login(&app, "alice", "alice-password").await.0, 200);
    assert_eq!(try_login(&app, "alice", "taken-over-password").await.0, 401);
    assert_unchanged(&before, &read_back(&app, &alice.id).await);
    assert_eq!(balance(&app, &root, &alice.wallet).await, 1_000);
    assert_eq!(balance(&app, &root, &bob.wallet).await, 0);
}

#[tokio::test]
async fn finding_01b_metering_key_meters_and_does_nothing_else() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    credit(&app, &root, &alice.wallet, 1_000).await;
    let (_, meter) = api_key(&app, &root, &["metering"]).await;

    let (status, body) = send(
        app.post("/api/v1/me/shares")
            .bearer_auth(&meter)
            .json(&json!({"grantee": "alice", "scopes": ["data:read"]})),
    )
    .await;
    assert_credential_refused(status, &body, "share");
    let (status, body) = me(&app, &meter).await;
    assert_credential_refused(status, &body, "read");

    // What it is for.
    let (status, body) = send(app.post("/api/v1/usage").bearer_auth(&meter).json(&json!({
        "user_id": alice.id, "resource_id": CHUTE, "count": 1, "cost": 10,
        "input_tokens": 1, "output_tokens": 1,
    })))
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(balance(&app, &root, &alice.wallet).await, 990);

    let (_, shares) = send(app.get("/api/v1/me/shares").bearer_auth(&root)).await;
    assert_eq!(shares, json!([]), "the refused share was not made");
}

#[tokio::test]
async fn finding_01c_current_password_guesses_are_throttled_per_account_and_address() {
    let app = TestApp::spawn_with(&throttled(&[
        ("rate_limits.login_per_account", "3"),
        ("server.trusted_proxies", "1"),
    ]))
    .await;
    let (_, token) = app.user_with_token("carol").await;
    let change = |current: String| {
        from(
            app.post("/api/v1/me/password")
                .bearer_auth(&token)
                .json(&json!({
                    "current_password": current,
                    "new_password": "carol-new-password",
                })),
            "10.1.0.1",
        )
    };
    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(send(change(format!("wrong-{i}"))).await.0);
    }
    assert_eq!(statuses[..3], [422, 422, 422], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    // The right one too, from that address: the guessing is over there.
    assert_eq!(send(change("carol-password".into())).await.0, 429);

    // Nothing changed; the owner still signs in from an address that has not failed.
    assert_eq!(
        login_from(&app, "10.1.0.2", "carol", "carol-password").await,
        200
    );
    assert_eq!(
        login_from(&app, "10.1.0.2", "carol", "carol-new-password").await,
        401
    );
}

// ---- 2. Purpose signatures ------------------------------------------------------------------

#[tokio::test]
async fn finding_02_purpose_signature_reads_me_but_cannot_update_or_delete() {
    let app = TestApp::spawn().await;
    let (hotkey, created) = register(&app, "signer").await;
    let id = created.user_id.clone();
    let before = read_back(&app, &id).await;
    // One signature of `{hotkey}:{nonce}:me`, as a client sends it for its reads.
    let nonce = now();
    let signature = hotkey.sign(format!("{}:{nonce}:me", ss58(&hotkey)).as_bytes());
    let with = |request: RequestBuilder| {
        request
            .header("X-Chutes-Hotkey", ss58(&hotkey))
            .header("X-Chutes-Signature", signature.clone())
            .header("X-Chutes-Nonce", nonce.to_string())
    };

    let (status, body) = send(with(app.get("/api/v1/users/me"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], id.as_str());
    let (status, body) = send(with(app.get("/users/me"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], id.as_str());

    let (status, body) = send(with(
        app.patch("/api/v1/users/me")
            .json(&json!({"email": "x@example.com"})),
    ))
    .await;
    assert_eq!(status, 401, "PATCH with a purpose signature: {body}");
    let (status, body) = send(with(app.delete("/api/v1/users/me"))).await;
    assert_eq!(status, 401, "DELETE with a purpose signature: {body}");

    let after = read_back(&app, &id).await;
    assert_eq!(after["email"], Value::Null);
    assert_eq!(after["state"], "active");
    assert_unchanged(&before, &after);
    assert_eq!(send(with(app.get("/users/me"))).await.0, 200);
}

// ---- 3. Request-bound signatures ------------------------------------------------------------

#[tokio::test]
async fn finding_03_signature_bound_to_one_route_is_refused_on_another_and_digest_only_form_on_writes(
) {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (hotkey, created) = register(&app, "relay").await;
    let admin_id = created.user_id.clone();
    let (status, body) = patch_user(&app, &root, &admin_id, json!({"is_admin": true})).await;
    assert_eq!(status, 200, "{body}");
    let victim = app
        .create_user(
            &root,
            json!({"username": "victim", "password": "victim-password"}),
        )
        .await;
    let victim_id = id_of(&victim);
    let before = read_back(&app, &victim_id).await;
    let empty = hex::encode(Sha256::digest(b""));

    // Signed for `POST /api/v1/auth/logout`, relayed to a password reset.
    let nonce = now();
    let signature = hotkey
        .sign(format!("{}:{nonce}:POST:/api/v1/auth/logout:{empty}", ss58(&hotkey)).as_bytes());
    let with = |request: RequestBuilder| {
        request
            .header("X-Chutes-Hotkey", ss58(&hotkey))
            .header("X-Chutes-Signature", signature.clone())
            .header("X-Chutes-Nonce", nonce.to_string())
    };
    let (status, body) = send(with(
        app.post(&format!("/api/v1/users/{victim_id}/password")),
    ))
    .await;
    assert_eq!(status, 401, "relayed signature: {body}");

    // Chutes' digest-only form, `{hotkey}:{nonce}:{sha256 of the (empty) body}`, names no
    // route: refused on every state-changing route.
    for (method, path) in [
        (Method::POST, format!("/api/v1/users/{victim_id}/password")),
        (
            Method::POST,
            format!("/api/v1/users/{victim_id}/deactivate"),
        ),
        (Method::POST, format!("/api/v1/users/{victim_id}/logout")),
        (Method::DELETE, format!("/api/v1/users/{victim_id}")),
        (Method::POST, "/api/v1/auth/logout".to_owned()),
    ] {
        let (status, body) = send(signed(
            app.request(method.clone(), &path),
            &hotkey,
            now(),
            Err(b""),
        ))
        .await;
        assert_eq!(
            status, 401,
            "{method} {path} with a digest-only signature: {body}"
        );
    }

    // Nothing changed.
    assert_eq!(try_login(&app, "victim", "victim-password").await.0, 200);
    assert_unchanged(&before, &read_back(&app, &victim_id).await);

    // Controls: the logout signature is good where it was meant, and the admin signing the
    // reset itself may reset.
    let (status, body) = send(with(app.post("/api/v1/auth/logout"))).await;
    assert!((200..300).contains(&status), "{status} {body}");
    let path = format!("/api/v1/users/{victim_id}/password");
    let (status, body) = send(bound(&app, Method::POST, &path, &hotkey, None)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(try_login(&app, "victim", "victim-password").await.0, 401);
}

// ---- 4. Fingerprints ------------------------------------------------------------------------

#[tokio::test]
async fn finding_04a_fingerprint_guesses_are_throttled_on_change_bt_auth_and_delete() {
    let app = TestApp::spawn_with(&throttled(&[
        ("rate_limits.login_per_ip", "5"),
        ("server.trusted_proxies", "1"),
    ]))
    .await;
    let (_, created) = register(&app, "fpowner").await;
    let id = created.user_id.clone();
    let fingerprint = created.fingerprint.clone();
    let before = read_back(&app, &id).await;

    let bt_auth = |fingerprint: &str| {
        from(
            app.post("/users/change_bt_auth")
                .header("Authorization", fingerprint)
                .json(&json!({"coldkey": ss58(&Sr25519Keypair::generate())})),
            "10.4.0.1",
        )
    };
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(send(bt_auth(&random_fingerprint())).await.0);
    }
    assert_eq!(statuses[..5], [401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(send(bt_auth(&fingerprint)).await.0, 429);

    let delete = |fingerprint: &str| {
        from(
            app.delete("/users/me").header("Authorization", fingerprint),
            "10.4.0.2",
        )
    };
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(send(delete(&random_fingerprint())).await.0);
    }
    assert_eq!(statuses[..5], [401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // Even the right fingerprint deletes nothing from there now.
    assert_eq!(send(delete(&fingerprint)).await.0, 429);

    assert_unchanged(&before, &read_back(&app, &id).await);
    // From an address that did not guess, the fingerprint still works.
    let (status, body) = send(from(
        app.post("/users/login")
            .json(&json!({"fingerprint": fingerprint})),
        "10.4.0.3",
    ))
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn finding_04b_change_bt_auth_needs_each_new_key_to_sign() {
    let app = TestApp::spawn().await;
    let (old_hotkey, created) = register(&app, "keyowner").await;
    let id = created.user_id.clone();
    let fingerprint = created.fingerprint.clone();
    let before = read_back(&app, &id).await;
    let new_hotkey = Sr25519Keypair::generate();
    let new_coldkey = Sr25519Keypair::generate();
    let attacker = Sr25519Keypair::generate();
    let change = |body: Value| {
        app.post("/users/change_bt_auth")
            .header("Authorization", fingerprint.as_str())
            .json(&body)
    };
    let proof = |key: &Sr25519Keypair, nonce: &str, username: &str| {
        key.sign(format!("{}:{nonce}:change_bt_auth:{username}", ss58(&new_hotkey)).as_bytes())
    };

    // No proof at all (as Chutes' own client sends it).
    let (status, body) = send(change(json!({"hotkey": ss58(&new_hotkey)}))).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = send(change(json!({"coldkey": ss58(&new_coldkey)}))).await;
    assert_eq!(status, 401, "{body}");
    // A nonce but no signature: refused as a bad request (400, not 401) naming the message to
    // sign.
    let nonce = now().to_string();
    let (status, body) = send(change(
        json!({"coldkey": ss58(&new_coldkey), "nonce": nonce}),
    ))
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains(":change_bt_auth:")),
        "{body}"
    );
    // Signed by another key, or for another account.
    for signature in [
        proof(&attacker, &nonce, "keyowner"),
        proof(&new_hotkey, &nonce, "someone_else"),
    ] {
        let (status, body) = send(change(json!({
            "hotkey": ss58(&new_hotkey), "nonce": nonce, "hotkey_signature": signature,
        })))
        .await;
        assert_eq!(status, 401, "{body}");
    }

    let after = read_back(&app, &id).await;
    assert_eq!(after["hotkey"], ss58(&old_hotkey));
    assert_eq!(after["coldkey"], before["coldkey"]);
    assert_unchanged(&before, &after);

    // Signed by the new key for this account: attached.
    let (status, body) = send(change(json!({
        "hotkey": ss58(&new_hotkey), "nonce": nonce,
        "hotkey_signature": proof(&new_hotkey, &nonce, "keyowner"),
    })))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(read_back(&app, &id).await["hotkey"], ss58(&new_hotkey));
}

#[tokio::test]
async fn finding_04c_chosen_fingerprints_need_16_characters_and_8_distinct() {
    let app = TestApp::spawn().await;
    let (hotkey, created) = register(&app, "chooser").await;
    let id = created.user_id.clone();
    let old = created.fingerprint.clone();
    let before = read_back(&app, &id).await;
    let rotate = |fingerprint: &str| {
        let nonce = now();
        let signature = hotkey.sign(format!("{}:{fingerprint}:{nonce}", ss58(&hotkey)).as_bytes());
        app.post("/users/change_fingerprint")
            .header("X-Chutes-Hotkey", ss58(&hotkey))
            .header("X-Chutes-Signature", signature)
            .header("X-Chutes-Nonce", nonce.to_string())
            .json(&json!({"fingerprint": fingerprint}))
    };
    for weak in [
        "Abcdefgh123456",   // 14 characters
        "Abcdefgh1234567",  // 15 characters
        "abababababababab", // 16 characters, 2 distinct
        "aabbccddeeffggaa", // 16 characters, 7 distinct
    ] {
        let (status, body) = send(rotate(weak)).await;
        assert_eq!(status, 422, "{weak}: {body}");
        assert!(
            body.to_string().contains("fingerprint must be 16"),
            "{weak}: {body}"
        );
        let (status, _) = send(app.post("/users/login").json(&json!({"fingerprint": weak}))).await;
        assert_eq!(status, 401, "{weak} must not log in");
    }
    let (status, _) = send(app.post("/users/login").json(&json!({"fingerprint": old}))).await;
    assert_eq!(status, 200, "the old fingerprint still works");
    assert_unchanged(&before, &read_back(&app, &id).await);

    // 16 characters, 8 distinct: accepted.
    let strong = "abcdefghabcdefgh";
    let (status, body) = send(rotate(strong)).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(
        app.post("/users/login")
            .json(&json!({"fingerprint": strong})),
    )
    .await;
    assert_eq!(status, 200);
}

// ---- 5. Rate limits -------------------------------------------------------------------------

/// A tier limiting `path` to `limit` calls a (UTC) day, as `root`; its id. Fixed windows start
/// on multiples of their period: a day's boundary does not fall inside a test in practice.
async fn tier(app: &TestApp, root: &str, name: &str, path: &str, limit: u32) -> String {
    let (status, tier) = send(app.post("/api/v1/tiers").bearer_auth(root).json(&json!({
        "name": name,
        "rate_limits": [{"path": path, "limit": limit, "period_secs": 86_400}],
    })))
    .await;
    assert_eq!(status, 201, "{tier}");
    tier["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn finding_05a_tier_limit_holds_for_another_spelling_of_the_path() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let tier_id = tier(&app, &root, "three", "/api/v1/users/me", 3).await;
    let (id, token) = app.user_with_token("limited").await;
    let (status, body) = send(
        app.patch(&format!("/api/v1/users/{id}/tier"))
            .bearer_auth(&root)
            .json(&json!({"tier_id": tier_id})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The percent-encoded spelling is the same operation: it is served...
    let (status, body) = send(app.get("/api/v1/users/%6De").bearer_auth(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], id.as_str());
    // ... and counted with it.
    for _ in 0..2 {
        assert_eq!(me(&app, &token).await.0, 200);
    }
    assert_eq!(me(&app, &token).await.0, 429);
    let (status, body) = send(app.get("/api/v1/users/%6De").bearer_auth(&token)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "too_many_requests");
}

#[tokio::test]
async fn finding_05b_garbage_authorization_does_not_escape_the_anonymous_limit() {
    let app = TestApp::spawn_with(&[("rate_limits.default_tier", "anonymous".into())]).await;
    let root = app.admin_token().await;
    tier(&app, &root, "anonymous", "/users/name_check", 3).await;
    let garbage = [
        "Bearer garbage",
        "Bearer cpk_not_a_key",
        "Basic Zm9vOmJhcg==",
        "cpk_bare_garbage",
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x",
    ];
    let mut statuses = Vec::new();
    for value in garbage {
        statuses.push(
            send(
                app.get("/users/name_check?username=someone")
                    .header("Authorization", value),
            )
            .await
            .0,
        );
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(
        send(app.get("/users/name_check?username=someone")).await.0,
        429
    );
}

#[tokio::test]
async fn finding_05c_invalid_tokens_count_against_the_address() {
    let app = TestApp::spawn_with(&[("rate_limits.default_tier", "anonymous".into())]).await;
    let root = app.admin_token().await;
    tier(&app, &root, "anonymous", "/api/v1/users/me", 3).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(me(&app, &format!("not-a-token-{i}")).await.0);
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429]);
    assert_eq!(send(app.get("/api/v1/users/me")).await.0, 429);
}

// ---- 6. Granting permissions ----------------------------------------------------------------

#[tokio::test]
async fn finding_06_update_user_holder_cannot_grant_billing_admin_nor_credit_itself() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let editor = member(&app, "editor").await;
    let (status, body) = patch_user(&app, &root, &editor.id, json!({"permissions": 4})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["permissions_bitmask"], 4);
    let other = member(&app, "other").await;

    for (target, bits) in [
        ("me", 68),
        (editor.id.as_str(), 68),
        (editor.id.as_str(), 64),
    ] {
        let (status, body) =
            patch_user(&app, &editor.token, target, json!({"permissions": bits})).await;
        assert_error(status, &body, 403, "forbidden");
    }
    // Another user: one it manages (which it can see: 403), and a stranger (which it cannot
    // even see without `admin`: 404, as for any invisible user).
    let (status, kid) = send(
        app.post("/api/v1/users")
            .bearer_auth(&editor.token)
            .json(&json!({"first_name": "Kid"})),
    )
    .await;
    assert_eq!(status, 201, "{kid}");
    let kid_id = id_of(&kid);
    let (status, body) = patch_user(&app, &editor.token, &kid_id, json!({"permissions": 64})).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) =
        patch_user(&app, &editor.token, &other.id, json!({"permissions": 64})).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = send(
        app.post(&format!("/api/v1/wallets/{}/adjustments", editor.wallet))
            .bearer_auth(&editor.token)
            .json(&json!({"amount": 1_000_000, "reason": "raise"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = send(
        app.post("/users/admin_balance_change")
            .bearer_auth(&editor.token)
            .json(&json!({"user_id": editor.id, "amount": 100.0, "reason": "raise"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");

    assert_eq!(read_back(&app, &editor.id).await["permissions_bitmask"], 4);
    assert_eq!(read_back(&app, &other.id).await["permissions_bitmask"], 0);
    assert_eq!(read_back(&app, &kid_id).await["permissions_bitmask"], 0);
    assert_eq!(balance(&app, &root, &editor.wallet).await, 0);
    assert!(ledger(&app, &root, &editor.wallet).await.is_empty());

    // Control: a bit it holds itself it may give.
    let (status, body) = patch_user(&app, &editor.token, &kid_id, json!({"permissions": 4})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["permissions_bitmask"], 4);
}

// ---- 7. Login throttles ---------------------------------------------------------------------

fn login_throttle_settings(total: &str) -> Vec<(&'static str, String)> {
    throttled(&[
        ("rate_limits.login_per_account", "3"),
        ("rate_limits.login_per_account_total", total),
        ("server.trusted_proxies", "1"),
    ])
}

#[tokio::test]
async fn finding_07a_an_attacker_address_cannot_lock_the_owner_out() {
    let app = TestApp::spawn_with(&login_throttle_settings("1000000")).await;
    let root = app.admin_token().await;
    app.create_user(
        &root,
        json!({"username": "owner", "password": "owner-password"}),
    )
    .await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(login_from(&app, "10.7.0.66", "owner", &format!("guess-{i}")).await);
    }
    assert_eq!(statuses[..3], [401; 3], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(
        login_from(&app, "10.7.0.66", "owner", "owner-password").await,
        429
    );
    assert_eq!(
        login_from(&app, "10.7.0.1", "owner", "owner-password").await,
        200,
        "the owner, elsewhere"
    );
}

#[tokio::test]
async fn finding_07b_username_and_email_share_one_failure_count() {
    let app = TestApp::spawn_with(&login_throttle_settings("1000000")).await;
    let root = app.admin_token().await;
    app.create_user(
        &root,
        json!({"username": "bee", "email": "bee@example.com", "password": "bee-password"}),
    )
    .await;
    let address = "10.7.1.66";
    assert_eq!(login_from(&app, address, "bee", "wrong-1").await, 401);
    assert_eq!(login_from(&app, address, "bee", "wrong-2").await, 401);
    assert_eq!(
        login_from(&app, address, "bee@example.com", "wrong-3").await,
        401
    );
    assert_eq!(
        login_from(&app, address, "BEE@example.com", "wrong-4").await,
        429
    );
    assert_eq!(
        login_from(&app, address, "bee@example.com", "bee-password").await,
        429
    );
    assert_eq!(login_from(&app, address, "bee", "bee-password").await, 429);
    assert_eq!(
        login_from(&app, "10.7.1.1", "bee@example.com", "bee-password").await,
        200
    );
}

#[tokio::test]
async fn finding_07c_many_addresses_are_capped_overall_but_fresh_addresses_keep_an_attempt() {
    let app = TestApp::spawn_with(&login_throttle_settings("5")).await;
    let root = app.admin_token().await;
    app.create_user(
        &root,
        json!({"username": "target", "password": "target-password"}),
    )
    .await;
    for i in 1..=5 {
        assert_eq!(
            login_from(&app, &format!("10.7.2.{i}"), "target", "guess").await,
            401,
            "address {i}"
        );
    }
    // Every address that failed is now refused for the account, even with the password.
    for i in 1..=5 {
        assert_eq!(
            login_from(&app, &format!("10.7.2.{i}"), "target", "target-password").await,
            429,
            "address {i}"
        );
    }
    // A fresh address still gets its attempt (and only one wrong guess each).
    assert_eq!(login_from(&app, "10.7.2.100", "target", "guess").await, 401);
    assert_eq!(login_from(&app, "10.7.2.100", "target", "guess").await, 429);
    // The owner's address never failed: it signs in.
    assert_eq!(
        login_from(&app, "10.7.9.9", "target", "target-password").await,
        200
    );
}

// ---- 8. Delegation, shares, addresses -------------------------------------------------------

async fn delegated_token(app: &TestApp, token: &str, user: &str, scopes: &[&str]) -> String {
    let (status, body) = send(
        app.post("/api/v1/auth/delegated-token")
            .bearer_auth(token)
            .json(&json!({"user": user, "scopes": scopes})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn finding_08a_delegated_token_with_only_openid_cannot_read() {
    let app = TestApp::spawn().await;
    let (alice_id, alice) = app.user_with_token("alice").await;
    let (_, bob) = app.user_with_token("bob").await;

    // Manager → managed user.
    let (status, kid) = send(
        app.post("/api/v1/users")
            .bearer_auth(&alice)
            .json(&json!({"first_name": "Kid"})),
    )
    .await;
    assert_eq!(status, 201, "{kid}");
    let kid_id = id_of(&kid);
    let token = delegated_token(&app, &alice, &kid_id, &["openid"]).await;
    let (status, body) = me(&app, &token).await;
    assert_credential_refused(status, &body, "openid as managed user");
    let (status, body) = send(
        app.get(&format!("/api/v1/users/{kid_id}"))
            .bearer_auth(&token),
    )
    .await;
    assert_credential_refused(status, &body, "openid reading the managed user");

    // Grantee → sharer.
    let (status, body) = send(
        app.post("/api/v1/me/shares")
            .bearer_auth(&alice)
            .json(&json!({"grantee": "bob", "scopes": ["openid", "data:read"]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let token = delegated_token(&app, &bob, "alice", &["openid"]).await;
    let (status, body) = me(&app, &token).await;
    assert_credential_refused(status, &body, "openid as sharer");

    // Control: a reading scope reads.
    let token = delegated_token(&app, &bob, "alice", &["data:read"]).await;
    let (status, body) = me(&app, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], alice_id.as_str());
}

/// Depends on main's next commit (the share views), being written there now.
#[tokio::test]
async fn finding_08b_share_response_shows_the_grantee_by_username_only() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    let root = app.admin_token().await;
    app.create_user(
        &root,
        json!({"username": "bob", "password": "bob-password",
               "first_name": "Robert", "last_name": "Secret", "email": "bob@example.com"}),
    )
    .await;
    let (status, body) = send(
        app.post("/api/v1/me/shares")
            .bearer_auth(&alice)
            .json(&json!({"grantee": "bob", "scopes": ["data:read"]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(body.get("grantee_id").is_none(), "{body}");
    assert_eq!(body["user"], json!({"username": "bob"}), "{body}");
    let text = body.to_string();
    for secret in ["Robert", "Secret", "bob@example.com"] {
        assert!(!text.contains(secret), "{secret} leaked: {body}");
    }
}

#[tokio::test]
async fn finding_08c_client_chosen_forwarded_for_entries_do_not_choose_the_address() {
    let app = TestApp::spawn_with(&throttled(&[
        ("rate_limits.login_per_ip", "2"),
        ("server.trusted_proxies", "1"),
    ]))
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let forwarded = format!("{}, 10.0.0.9", uuid::Uuid::new_v4().simple());
        statuses.push(login_from(&app, &forwarded, "nobody", "guess").await);
    }
    assert_eq!(statuses, [401, 401, 429, 429, 429]);
    // Another address (as the proxy saw it) is not affected.
    assert_eq!(
        login_from(&app, "192.0.2.1, 10.0.0.10", "nobody", "guess").await,
        401
    );
}

// ---- 9. Billing administrators --------------------------------------------------------------

#[tokio::test]
async fn finding_09_billing_admin_acts_neither_on_superusers_nor_on_itself() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let root_id = id_of(&me(&app, &root).await.1);
    let root_wallet = default_wallet(&app, &root, &root_id, "usd").await.id;
    let biller = member(&app, "biller").await;
    let (status, body) = patch_user(&app, &root, &biller.id, json!({"permissions": 64})).await;
    assert_eq!(status, 200, "{body}");
    let payee = member(&app, "payee").await;
    let root_before = read_back(&app, &root_id).await;
    let biller_before = read_back(&app, &biller.id).await;

    let attempts = [
        (
            app.put(&format!("/api/v1/users/{root_id}/invoicing"))
                .json(&json!({"enabled": true})),
            "invoicing of a superuser",
        ),
        (
            app.post("/users/admin_balance_change")
                .json(&json!({"user_id": root_id, "amount": 5.0, "reason": "x"})),
            "balance of a superuser",
        ),
        (
            app.put(&format!("/api/v1/users/{}/quotas", biller.id))
                .json(&json!({"*": 1_000_000_000_000_i64})),
            "own quotas",
        ),
        (
            app.post(&format!("/users/{}/quotas", biller.id))
                .json(&json!({"*": 1_000_000_000_000_i64})),
            "own quotas (Chutes)",
        ),
        (
            app.put(&format!("/api/v1/users/{}/discounts", biller.id))
                .json(&json!({"*": 0.99})),
            "own discounts",
        ),
        (
            app.put(&format!("/api/v1/users/{}/invoicing", biller.id))
                .json(&json!({"enabled": true})),
            "own invoicing",
        ),
        (
            app.post("/users/admin_balance_change")
                .json(&json!({"user_id": biller.id, "amount": 5.0, "reason": "x"})),
            "own balance",
        ),
        (
            app.post(&format!("/api/v1/wallets/{}/adjustments", biller.wallet))
                .json(&json!({"amount": 5_000_000, "reason": "x"})),
            "own wallet",
        ),
    ];
    for (request, what) in attempts {
        let (status, body) = send(request.bearer_auth(&biller.token)).await;
        assert_eq!(status, 403, "{what}: {body}");
    }

    assert_unchanged(&root_before, &read_back(&app, &root_id).await);
    assert_unchanged(&biller_before, &read_back(&app, &biller.id).await);
    assert_eq!(balance(&app, &root, &root_wallet).await, 0);
    assert_eq!(balance(&app, &root, &biller.wallet).await, 0);
    let (_, quotas) = send(
        app.get(&format!("/api/v1/users/{}/quotas", biller.id))
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(quotas["quotas"], json!({}), "{quotas}");
    let (_, discounts) = send(
        app.get(&format!("/api/v1/users/{}/discounts", biller.id))
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(discounts["discounts"], json!({}), "{discounts}");

    // Control: on an ordinary user it does its job.
    let (status, body) = send(
        app.put(&format!("/api/v1/users/{}/quotas", payee.id))
            .bearer_auth(&biller.token)
            .json(&json!({"*": 1000})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        app.post("/users/admin_balance_change")
            .bearer_auth(&biller.token)
            .json(&json!({"user_id": payee.id, "amount": 1.0, "reason": "x"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

// ---- 10. Administrators' credentials ---------------------------------------------------------

#[tokio::test]
async fn finding_10_only_superusers_change_another_administrators_credentials() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (_, ops1) = admin_with_token(&app, "ops1").await;
    let ops2 = app
        .create_user(
            &root,
            json!({"username": "ops2", "password": "ops2-password",
                   "email": "ops2@example.com", "is_admin": true}),
        )
        .await;
    let ops2_id = id_of(&ops2);
    let before = read_back(&app, &ops2_id).await;

    let (status, body) = send(
        app.post(&format!("/api/v1/users/{ops2_id}/password"))
            .bearer_auth(&ops1),
    )
    .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = send(
        app.put(&format!("/users/api/v1/user/{ops2_id}"))
            .bearer_auth(&ops1)
            .json(&json!({"email": "ops1-controls@example.com"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    for change in [
        json!({"email": "ops1-controls@example.com"}),
        json!({"password": "chosen-by-ops1"}),
    ] {
        let (status, body) = patch_user(&app, &ops1, &ops2_id, change.clone()).await;
        assert_eq!(status, 403, "{change}: {body}");
    }

    assert_eq!(try_login(&app, "ops2", "ops2-password").await.0, 200);
    let after = read_back(&app, &ops2_id).await;
    assert_eq!(after["email"], "ops2@example.com");
    assert_unchanged(&before, &after);

    // Control: an administrator still resets an ordinary user's password ...
    let plain = app
        .create_user(
            &root,
            json!({"username": "plain", "password": "plain-password"}),
        )
        .await;
    let (status, body) = send(
        app.post(&format!("/api/v1/users/{}/password", id_of(&plain)))
            .bearer_auth(&ops1),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // ... and a superuser an administrator's.
    let (status, body) = send(
        app.put(&format!("/users/api/v1/user/{ops2_id}"))
            .bearer_auth(&root)
            .json(&json!({"email": "ops2-new@example.com"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        read_back(&app, &ops2_id).await["email"],
        "ops2-new@example.com"
    );
    let (status, body) = send(
        app.post(&format!("/api/v1/users/{ops2_id}/password"))
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(try_login(&app, "ops2", "ops2-password").await.0, 401);
}

// ---- 11. Transfers --------------------------------------------------------------------------

#[tokio::test]
async fn finding_11_transfers_hide_the_recipient_and_unreadable_destinations_look_alike() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    let bob = member(&app, "bob").await;
    credit(&app, &root, &alice.wallet, 1_000).await;
    let transfer = |to: &str| {
        app.post("/api/v1/transfers")
            .bearer_auth(&alice.token)
            .json(&json!({"from_wallet": alice.wallet, "to_wallet": to, "amount": 100, "reason": "rent"}))
    };

    let (status, body) = send(transfer(&bob.wallet)).await;
    assert_eq!(status, 201, "{body}");
    assert!(body.get("credit").is_none(), "Bob's side leaked: {body}");
    assert!(!body.to_string().contains(&bob.id), "{body}");

    let (status, sats) = send(
        app.post(&format!("/api/v1/users/{}/wallets", bob.id))
            .bearer_auth(&bob.token)
            .json(&json!({"name": "sats", "currency": "sat"})),
    )
    .await;
    assert_eq!(status, 201, "{sats}");
    let unknown = uuid::Uuid::now_v7().to_string();
    let (status_unknown, body_unknown) = send(transfer(&unknown)).await;
    let (status_sats, body_sats) = send(transfer(&id_of(&sats))).await;
    assert_eq!(status_unknown, 404, "{body_unknown}");
    assert_eq!(
        (status_sats, body_sats),
        (status_unknown, body_unknown),
        "another currency of an unreadable wallet answers as an unknown wallet"
    );

    assert_eq!(balance(&app, &root, &alice.wallet).await, 900);
    assert_eq!(balance(&app, &root, &bob.wallet).await, 100);
    assert_eq!(balance(&app, &root, &id_of(&sats)).await, 0);
}

// ---- 12. Audit and allowances ---------------------------------------------------------------

#[tokio::test]
async fn finding_12a_api_key_creation_and_revocation_are_audited() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (alice_id, alice) = app.user_with_token("alice").await;
    let (key_id, _) = api_key(&app, &alice, &["read"]).await;
    let (status, _) = send(
        app.delete(&format!("/api/v1/me/api-keys/{key_id}"))
            .bearer_auth(&alice),
    )
    .await;
    assert_eq!(status, 204);

    let (status, body) = send(app.get("/api/v1/audit?limit=50").bearer_auth(&root)).await;
    assert_eq!(status, 200, "{body}");
    let events = body["data"].as_array().unwrap();
    for action in ["api_key.created", "api_key.revoked"] {
        let event = events
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in {body}"));
        assert_eq!(event["actor_id"], alice_id.as_str(), "{event}");
        assert_eq!(event["target_id"], alice_id.as_str(), "{event}");
        assert!(!event.to_string().contains("cpk_"), "a secret in {event}");
    }
}

#[tokio::test]
async fn finding_12b_refused_create_user_calls_do_not_spend_the_admins_allowance() {
    let app =
        TestApp::spawn_with(&[("identity.created_accounts_per_ip_per_day", "2".into())]).await;
    let root = app.admin_token().await;
    let (_, plain) = app.user_with_token("plain").await;
    for i in 0..6 {
        let (status, body) = send(
            app.post("/users/create_user")
                .bearer_auth(&plain)
                .json(&json!({"username": format!("spam{i}")})),
        )
        .await;
        assert_eq!(status, 403, "{body}");
    }
    for name in ["made1", "made2"] {
        let (status, body) = send(
            app.post("/users/create_user")
                .bearer_auth(&root)
                .json(&json!({"username": name})),
        )
        .await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    let (status, body) = send(
        app.post("/users/create_user")
            .bearer_auth(&root)
            .json(&json!({"username": "made3"})),
    )
    .await;
    assert_eq!(status, 429, "{body}");
}

// ---- 13. Metrics ----------------------------------------------------------------------------

/// The series of an exposition: every sample line without its value.
fn series(exposition: &str) -> std::collections::BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(name, _)| name.to_owned()))
        .collect()
}

async fn invented_methods(app: &TestApp, n: usize) -> Vec<String> {
    let mut sent = Vec::new();
    for i in 0..n {
        let method = format!("XYZ{}", uuid::Uuid::new_v4().simple()).to_uppercase();
        let path = if i % 2 == 0 {
            "/healthz"
        } else {
            "/api/v1/users/me"
        };
        let response = app
            .request(Method::from_bytes(method.as_bytes()).unwrap(), path)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_client_error(),
            "{method} {path}: {}",
            response.status()
        );
        sent.push(method);
    }
    sent
}

#[tokio::test]
async fn finding_13_invented_methods_do_not_grow_the_metrics() {
    let app = TestApp::spawn().await;
    let mut sent = invented_methods(&app, 20).await;
    let _ = crate::support::metrics_text(&app).await; // counts itself once
    let after_20 = crate::support::metrics_text(&app).await;
    sent.extend(invented_methods(&app, 200).await);
    let after_220 = crate::support::metrics_text(&app).await;

    for text in [&after_20, &after_220] {
        assert!(text.contains("method=\"OTHER\""), "{text}");
        for method in &sent {
            assert!(!text.contains(method.as_str()), "{method} in the metrics");
        }
        assert!(!text.contains("XYZ"), "an invented method in the metrics");
    }
    assert_eq!(
        series(&after_20),
        series(&after_220),
        "200 more invented methods added series"
    );
}

// ---- 15. Caps -------------------------------------------------------------------------------

#[tokio::test]
async fn finding_15a_managed_users_are_capped_per_manager() {
    let app = TestApp::spawn_with(&[("rate_limits.max_managed_users_per_user", "3".into())]).await;
    let root = app.admin_token().await;
    let (alice_id, alice) = app.user_with_token("alice").await;
    let create = || {
        app.post("/api/v1/users")
            .bearer_auth(&alice)
            .json(&json!({"first_name": "Kid"}))
    };
    for _ in 0..3 {
        let (status, body) = send(create()).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = send(create()).await;
    assert_error(status, &body, 409, "limit_reached");
    let (_, users) = send(
        app.get("/api/v1/users?include_managed=true&limit=500")
            .bearer_auth(&root),
    )
    .await;
    let managed = users["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["manager_id"] == alice_id.as_str())
        .count();
    assert_eq!(managed, 3, "{users}");
}

#[tokio::test]
async fn finding_15b_wallets_are_capped_per_user() {
    let app = TestApp::spawn_with(&[("rate_limits.max_wallets_per_user", "2".into())]).await;
    let (id, token) = app.user_with_token("alice").await;
    let create = |name: &str| {
        app.post(&format!("/api/v1/users/{id}/wallets"))
            .bearer_auth(&token)
            .json(&json!({"name": name, "currency": "sat"}))
    };
    let (status, body) = send(create("first")).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(create("second")).await;
    assert_error(status, &body, 409, "limit_reached");
    let (_, wallets) = send(
        app.get(&format!("/api/v1/users/{id}/wallets?include_deleted=true"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(wallets["data"].as_array().unwrap().len(), 2, "{wallets}");
}

// ---- 16. Ids --------------------------------------------------------------------------------

#[tokio::test]
async fn finding_16_a_default_wallet_id_does_not_give_away_its_users_id() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    for i in 0..8 {
        let user = app
            .create_user(
                &root,
                json!({"username": format!("idcheck{i}"), "password": "idcheck-password"}),
            )
            .await;
        let user_id = uuid::Uuid::parse_str(&id_of(&user)).unwrap();
        let wallet = default_wallet(&app, &root, &user_id.to_string(), "usd").await;
        let wallet_id = uuid::Uuid::parse_str(&wallet.id).unwrap();
        // As in crates/domain/src/ports/clock.rs: the 48-bit millisecond, the version and
        // variant bits may match; two random strings share 32 more leading bits with
        // probability 2^-32, while ids from one counter share 92.
        let shared = (user_id.as_u128() ^ wallet_id.as_u128()).leading_zeros();
        assert!(
            shared < 48 + 4 + 2 + 32,
            "user {user_id} and its wallet {wallet_id} share {shared} leading bits"
        );
    }
}
