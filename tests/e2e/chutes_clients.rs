//! What real clients send and read beyond the seeds' shapes: billing tools' float amounts,
//! Chutes' `GET /ping` and invoicing bits, Run:ai's `tempPassword` on creation.

use serde_json::json;
use tessera_testkit::TestApp;

use crate::money::{balance, member};
use crate::support::send;

/// `0.1 + 0.2` (0.30000000000000004) is credited as 0.3 USD: amounts round to the minor unit,
/// halves away from zero.
#[tokio::test]
async fn admin_balance_change_rounds_float_amounts_to_the_minor_unit() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    for (amount, expected) in [
        (0.1f64 + 0.2, 300_000),
        (-0.0000005, 299_999),
        (1.0000004, 1_299_999),
    ] {
        let (status, body) = send(
            app.post("/users/admin_balance_change")
                .bearer_auth(&root)
                .json(&json!({"user_id": alice.id, "amount": amount, "reason": "billing tool"})),
        )
        .await;
        assert_eq!(status, 200, "{amount}: {body}");
        assert_eq!(
            balance(&app, &root, &alice.wallet).await,
            expected,
            "{amount}"
        );
    }
}

#[tokio::test]
async fn ping_answers_as_chutes_does() {
    let app = TestApp::spawn().await;
    let (status, body) = send(app.get("/ping")).await;
    assert_eq!((status, body), (200, json!({"message": "pong"})));
}

/// `enable_invoicing` shows where clients look: Chutes' invoicing bit (256) and, when set, its
/// unlimited bit (32) in `permissions_bitmask` and `permissions`; a later call without
/// `unlimited` leaves it set.
#[tokio::test]
async fn enable_invoicing_is_visible_in_the_bitmask_and_never_clears_unlimited() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    let enable = format!("/users/{}/enable_invoicing", alice.id);
    let (status, body) = send(app.post(&enable).bearer_auth(&root)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["permissions_bitmask"], json!(256), "{body}");
    assert_eq!(
        body["permissions"],
        json!(["Invoice billing option"]),
        "{body}"
    );
    let (status, body) = send(
        app.post(&enable)
            .bearer_auth(&root)
            .json(&json!({"unlimited": true})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["permissions_bitmask"], json!(256 | 32), "{body}");
    assert!(
        body["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("No rate limits.")),
        "{body}"
    );
    let (status, body) = send(app.post(&enable).bearer_auth(&root)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["permissions_bitmask"], json!(256 | 32), "{body}");
    let (_, me) = send(app.get("/users/me").bearer_auth(&alice.token)).await;
    assert_eq!(me["permissions_bitmask"], json!(256 | 32), "{me}");
}

/// Run:ai clients read the generated password as `tempPassword` on creation, as on reset.
#[tokio::test]
async fn a_generated_password_is_also_temp_password_camel_on_creation() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (status, body) = send(
        app.post("/api/v1/users")
            .bearer_auth(&root)
            .json(&json!({"email": "runai@example.com"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let temp = body["temp_password"].as_str().unwrap();
    assert_eq!(body["tempPassword"], json!(temp), "{body}");
    let (status, _) = send(
        app.post("/api/v1/auth/login")
            .json(&json!({"username": "runai@example.com", "password": temp})),
    )
    .await;
    assert_eq!(status, 200);
}

/// Chutes' permission table: bit 512 (`stake_weight_quota`) is kept and shown with Chutes'
/// description, like the others.
#[tokio::test]
async fn permission_bits_and_descriptions_are_chutes() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let alice = member(&app, "alice").await;
    let (status, body) = send(
        app.patch(&format!("/api/v1/users/{}", alice.id))
            .bearer_auth(&root)
            .json(&json!({"permissions": 512 | 16 | 2})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, me) = send(app.get("/users/me").bearer_auth(&alice.token)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["permissions_bitmask"], json!(512 | 16 | 2));
    assert_eq!(
        me["permissions"],
        json!([
            "Create users -- administrator role allowing creation of users.",
            "Free invocation -- run anything, for free.",
            "Enable stake weighted quota (signed message with the coldkey)"
        ])
    );
}

/// Registering through Cloudflare: with `server.client_ip_header = "CF-Connecting-IP"` the
/// registration throttle counts per `CF-Connecting-IP`, as Chutes does; without it the header
/// chooses nothing.
#[tokio::test]
async fn registration_throttle_counts_per_cf_connecting_ip_when_configured() {
    use reqwest::Method;
    use tessera_sr25519::Sr25519Keypair;

    async fn register_from(app: &TestApp, n: usize, ip: &str) -> u16 {
        let hotkey = Sr25519Keypair::generate();
        let body = json!({"username": format!("cf_user_{n}"),
                          "coldkey": Sr25519Keypair::generate().ss58(42)});
        let request =
            crate::chutes::signed_json(app, Method::POST, "/users/register", &hotkey, &body)
                .header("CF-Connecting-IP", ip);
        send(request).await.0
    }

    let limits = [("identity.registrations_per_ip_per_day", "2".to_owned())];
    let cloudflare = TestApp::spawn_with(&[
        limits[0].clone(),
        ("server.client_ip_header", "CF-Connecting-IP".to_owned()),
    ])
    .await;
    assert_eq!(register_from(&cloudflare, 1, "203.0.113.7").await, 200);
    assert_eq!(register_from(&cloudflare, 2, "203.0.113.7").await, 200);
    assert_eq!(register_from(&cloudflare, 3, "203.0.113.7").await, 429);
    assert_eq!(register_from(&cloudflare, 4, "198.51.100.9").await, 200);

    let direct = TestApp::spawn_with(&limits).await;
    assert_eq!(register_from(&direct, 1, "203.0.113.7").await, 200);
    assert_eq!(register_from(&direct, 2, "198.51.100.9").await, 200);
    assert_eq!(register_from(&direct, 3, "192.0.2.1").await, 429);
}
