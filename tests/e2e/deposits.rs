//! Deposit addresses and deposits over HTTP against PostgreSQL: the address every view shows is
//! the one derived from the master public key; a reported transfer is credited once across two
//! server processes and concurrent reports; dust is ignored, unknown addresses are unmatched
//! (404, recorded); the `deposits` scope allows reporting and nothing else.

use reqwest::Method;
use serde_json::{json, Value};
use tessera_domain::ports::PaymentAddresses;
use tessera_sr25519::{Sr25519Keypair, Sr25519PaymentAddresses};
use tessera_testkit::TestApp;
use uuid::Uuid;

use crate::chutes::{now, signed, signed_json};
use crate::money::{default_wallet, id_of, ledger};
use crate::support::{patch_user, send};

fn master() -> Sr25519Keypair {
    Sr25519Keypair::from_seed(&[7u8; 32])
}

fn addresses() -> Sr25519PaymentAddresses {
    Sr25519PaymentAddresses::from_ss58(&master().ss58(42), 42).unwrap()
}

fn settings(rate: &str) -> Vec<(&'static str, String)> {
    vec![
        ("deposits.master_public_key", master().ss58(42)),
        ("deposits.tao_usd_rate", rate.to_owned()),
    ]
}

fn address_of(id: &str) -> String {
    addresses().address_of(Uuid::parse_str(id).unwrap())
}

/// A billing administrator's API key with only the given scopes.
async fn billing_key(app: &TestApp, name: &str, scopes: &[&str]) -> (String, String) {
    let root = app.admin_token().await;
    let (id, _) = app.user_with_token(name).await;
    let (status, body) = patch_user(app, &root, &id, json!({"permissions": 64})).await;
    assert_eq!(status, 200, "{body}");
    let token = app.token(name, &format!("{name}-password")).await;
    let (status, key) = send(
        app.post("/api/v1/me/api-keys")
            .bearer_auth(&token)
            .json(&json!({"name": "watcher", "admin": false, "scopes": scopes})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    (id, key["secret_key"].as_str().unwrap().to_owned())
}

/// `POST /users/register` with a fresh hotkey; the raw response body.
async fn register(app: &TestApp, username: &str) -> (Sr25519Keypair, Value) {
    let hotkey = Sr25519Keypair::generate();
    let coldkey = Sr25519Keypair::generate().ss58(42);
    let body = json!({"username": username, "coldkey": coldkey});
    let (status, created) = send(signed_json(
        app,
        Method::POST,
        "/users/register",
        &hotkey,
        &body,
    ))
    .await;
    assert_eq!(status, 200, "{created}");
    (hotkey, created)
}

async fn report(app: &TestApp, key: &str, body: Value) -> (u16, Value) {
    send(app.post("/api/v1/deposits").bearer_auth(key).json(&body)).await
}

#[tokio::test]
async fn every_view_shows_the_address_derived_from_the_master_public_key() {
    let app = TestApp::spawn_with(&settings("400")).await;
    let (hotkey, created) = register(&app, "depositor").await;
    let user_id = created["user_id"].as_str().unwrap().to_owned();
    let expected = address_of(&user_id);
    assert_eq!(created["payment_address"], json!(expected));
    let (status, me) = send(signed(app.get("/users/me"), &hotkey, now(), Ok("me"))).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["payment_address"], json!(expected));
    let root = app.admin_token().await;
    let (status, view) = send(
        app.get(&format!("/api/v1/users/{user_id}"))
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["payment_address"], json!(expected));
    // Canonical creation too; each user its own address.
    let other = app
        .create_user(
            &root,
            json!({"username": "other", "password": "other-password"}),
        )
        .await;
    assert_eq!(other["payment_address"], json!(address_of(&id_of(&other))));
    assert_ne!(other["payment_address"], view["payment_address"]);
}

#[tokio::test]
async fn without_a_master_key_there_is_no_payment_address() {
    let app = TestApp::spawn().await;
    let (_, created) = register(&app, "nokey").await;
    assert_eq!(created["payment_address"], Value::Null);
    let root = app.admin_token().await;
    let (_, view) = send(
        app.get(&format!(
            "/api/v1/users/{}",
            created["user_id"].as_str().unwrap()
        ))
        .bearer_auth(&root),
    )
    .await;
    assert!(view.get("payment_address").is_none(), "{view}");
}

#[tokio::test]
async fn a_transfer_is_credited_once_across_processes_and_concurrent_reports() {
    let app = TestApp::spawn_with(&settings("400")).await;
    let url = app.db.as_ref().unwrap().url.clone();
    let sibling = TestApp::spawn_on(&url, &settings("400")).await;
    let (reporter_id, key) = billing_key(&app, "watcher", &["deposits"]).await;
    let (owner_id, owner_token) = app.user_with_token("owner").await;
    let address = address_of(&owner_id);
    let body = json!({"address": address, "block": 4_123_456, "extrinsic_index": 3,
                      "amount_rao": 2_500_000_000u64});

    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let target = if i % 2 == 0 {
                app.url("")
            } else {
                sibling.url("")
            };
            let client = app.client.clone();
            let key = key.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let response = client
                    .post(format!("{target}/api/v1/deposits"))
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut created = 0;
    let mut ids = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            201 => created += 1,
            200 => assert_eq!(body["duplicate"], json!(true), "{body}"),
            other => panic!("{other}: {body}"),
        }
        ids.push(body["deposit"]["id"].clone());
    }
    assert_eq!(created, 1);
    assert!(ids.iter().all(|id| *id == ids[0]));

    // 2.5 TAO at $400 = $1000 = 10^9 micro-dollars, in one `deposit` entry naming the transfer.
    let wallet = default_wallet(&app, &owner_token, &owner_id, "usd").await;
    assert_eq!(wallet.balance, 1_000_000_000);
    let entries = ledger(&app, &owner_token, &wallet.id).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].kind, "deposit");
    assert!(entries[0].reason.contains("block 4123456 extrinsic 3"));

    // A rate in the report wins over the configured one; dust is recorded, not credited.
    let (status, more) = report(
        &sibling,
        &key,
        json!({"address": address, "block": "4123457", "extrinsic_index": 0,
               "amount_rao": 1_000_000_000u64, "tao_usd_rate": 250.5}),
    )
    .await;
    assert_eq!(status, 201, "{more}");
    assert_eq!(more["deposit"]["credited"], json!(250_500_000));
    let (status, dust) = report(
        &app,
        &key,
        json!({"address": address, "block": "4123458", "extrinsic_index": 0,
               "amount_rao": 6_999_999}),
    )
    .await;
    assert_eq!(status, 201, "{dust}");
    assert_eq!(dust["deposit"]["status"], json!("ignored"));
    assert_eq!(
        default_wallet(&app, &owner_token, &owner_id, "usd")
            .await
            .balance,
        1_250_500_000
    );

    // Unknown address: 404, recorded, also on a repeat.
    let stray = json!({"address": master().ss58(42), "block": format!("0x{}", "AB".repeat(32)),
                       "extrinsic_index": 1, "amount_rao": 9_000_000_000u64});
    let (status, unmatched) = report(&app, &key, stray.clone()).await;
    assert_eq!(status, 404, "{unmatched}");
    assert_eq!(unmatched["code"], json!("unmatched_deposit"));
    assert_eq!(unmatched["deposit"]["status"], json!("unmatched"));
    assert_eq!(
        unmatched["deposit"]["block"],
        json!(format!("0x{}", "ab".repeat(32)))
    );
    let (status, again) = report(&sibling, &key, stray).await;
    assert_eq!((status, &again["duplicate"]), (404, &json!(true)));

    // Listings: the owner sees theirs; billing administrators see everything, by status; the
    // audit trail names the reporter.
    let (status, mine) = send(
        app.get("/api/v1/users/me/deposits")
            .bearer_auth(&owner_token),
    )
    .await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["items"].as_array().unwrap().len(), 3);
    let root = app.admin_token().await;
    let (status, unmatched) = send(
        app.get("/api/v1/deposits?status=unmatched")
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(status, 200, "{unmatched}");
    assert_eq!(unmatched["items"].as_array().unwrap().len(), 1);
    let (status, forbidden) = send(app.get("/api/v1/deposits").bearer_auth(&owner_token)).await;
    assert_eq!(status, 403, "{forbidden}");
    let (_, trail) = send(
        app.get("/api/v1/audit?action=wallet.deposit_reported&limit=100")
            .bearer_auth(&root),
    )
    .await;
    let events = trail["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), 4, "{trail}");
    assert!(
        events.iter().all(|e| e["actor_id"] == json!(reporter_id)),
        "{trail}"
    );
}

#[tokio::test]
async fn only_billing_deposit_credentials_report_and_bad_input_is_422() {
    let app = TestApp::spawn_with(&[("deposits.master_public_key", master().ss58(42))]).await;
    let (_, deposit_key) = billing_key(&app, "watcher", &["deposits"]).await;
    let (_, metering_key) = billing_key(&app, "meterer", &["metering"]).await;
    let (owner_id, owner_token) = app.user_with_token("owner").await;
    let body = json!({"address": address_of(&owner_id), "block": 1, "extrinsic_index": 0,
                      "amount_rao": 10_000_000, "tao_usd_rate": 1});
    for token in [&metering_key, &owner_token] {
        let (status, refused) = report(&app, token, body.clone()).await;
        assert_eq!(status, 403, "{refused}");
    }
    // The deposits scope allows nothing else.
    let (status, _) = send(app.get("/api/v1/users/me").bearer_auth(&deposit_key)).await;
    assert_eq!(status, 403);
    // No rate configured and none given: 422 naming it; each bad field named.
    let mut no_rate = body.clone();
    no_rate.as_object_mut().unwrap().remove("tao_usd_rate");
    for (bad, field) in [
        (no_rate, "tao_usd_rate"),
        (
            json!({"address": "nope", "block": 1, "extrinsic_index": 0, "amount_rao": 1, "tao_usd_rate": 1}),
            "address",
        ),
        (
            json!({"address": address_of(&owner_id), "block": "0x12", "extrinsic_index": 0, "amount_rao": 1, "tao_usd_rate": 1}),
            "block",
        ),
        (
            json!({"address": address_of(&owner_id), "block": 1, "extrinsic_index": 0, "amount_rao": 0, "tao_usd_rate": 1}),
            "amount_rao",
        ),
        (
            json!({"address": address_of(&owner_id), "block": 1, "extrinsic_index": 0, "amount_rao": 1, "tao_usd_rate": -3}),
            "tao_usd_rate",
        ),
        (
            json!({"address": address_of(&owner_id), "block": 1, "extrinsic_index": -1, "amount_rao": 1}),
            "extrinsic_index",
        ),
    ] {
        let (status, error) = report(&app, &deposit_key, bad.clone()).await;
        assert_eq!(status, 422, "{bad}: {error}");
        assert!(error.to_string().contains(field), "{bad}: {error}");
    }
    let (status, ok) = report(&app, &deposit_key, body).await;
    assert_eq!(status, 201, "{ok}");
}
