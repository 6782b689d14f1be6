//! Helpers for the money tests: wallet requests, storms of concurrent requests, read-backs.

use std::time::Duration;

use reqwest::{Client, Response};
use serde_json::{json, Value};
use tessera_testkit::{status_and_json, TestApp};

use crate::support::{answer_as, LedgerEntry, LedgerPage, Wallet, WalletList};

/// A client for storms of concurrent requests: enough idle connections for all of them.
pub fn storm_client() -> Client {
    Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("reqwest client")
}

pub async fn json_of(response: Response) -> (u16, Value) {
    status_and_json(response).await
}

/// The user's default wallet in `currency`.
pub async fn default_wallet(app: &TestApp, token: &str, user: &str, currency: &str) -> Wallet {
    let list: WalletList = answer_as(
        json_of(
            app.get(&format!("/api/v1/users/{user}/wallets"))
                .bearer_auth(token)
                .send()
                .await
                .expect("list wallets"),
        )
        .await,
        200,
    );
    list.data
        .iter()
        .find(|w| w.currency == currency && w.is_default)
        .cloned()
        .unwrap_or_else(|| panic!("no default {currency} wallet in {list:?}"))
}

pub fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

/// `POST /wallets/{id}/adjustments` through `app`.
pub async fn adjust(
    app: &TestApp,
    client: &Client,
    token: &str,
    wallet: &str,
    amount: i64,
    key: Option<&str>,
) -> (u16, Value) {
    let mut request = client
        .post(app.url(&format!("/api/v1/wallets/{wallet}/adjustments")))
        .bearer_auth(token)
        .json(&json!({"amount": amount, "reason": format!("adjust {amount}")}));
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    json_of(request.send().await.expect("adjustment request")).await
}

/// Sends a raw JSON body to the adjustments endpoint.
pub async fn adjust_raw(app: &TestApp, token: &str, wallet: &str, body: &str) -> (u16, Value) {
    json_of(
        app.post(&format!("/api/v1/wallets/{wallet}/adjustments"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("adjustment request"),
    )
    .await
}

pub async fn wallet(app: &TestApp, token: &str, wallet: &str) -> Wallet {
    answer_as(
        json_of(
            app.get(&format!("/api/v1/wallets/{wallet}"))
                .bearer_auth(token)
                .send()
                .await
                .expect("get wallet"),
        )
        .await,
        200,
    )
}

pub async fn balance(app: &TestApp, token: &str, wallet_id: &str) -> i64 {
    wallet(app, token, wallet_id).await.balance
}

/// Every ledger entry of a wallet, newest first, following `next_cursor`.
pub async fn ledger(app: &TestApp, token: &str, wallet: &str) -> Vec<LedgerEntry> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/wallets/{wallet}/ledger?limit=500");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: LedgerPage = answer_as(
            json_of(
                app.get(&path)
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("ledger"),
            )
            .await,
            200,
        );
        out.extend(page.data);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// The ledger invariant over HTTP: the stored balance equals the sum of the wallet's entries.
/// Returns the entries, newest first.
pub async fn assert_ledger_matches(
    app: &TestApp,
    token: &str,
    wallet_id: &str,
) -> Vec<LedgerEntry> {
    let stored = balance(app, token, wallet_id).await;
    let entries = ledger(app, token, wallet_id).await;
    let sum: i128 = entries.iter().map(|e| i128::from(e.amount)).sum();
    assert_eq!(i128::from(stored), sum, "stored balance vs ledger sum");
    entries
}

/// A user with a password, its id, token and default `usd` wallet id.
pub struct Member {
    pub id: String,
    pub token: String,
    pub wallet: String,
}

pub async fn member(app: &TestApp, username: &str) -> Member {
    let (id, token) = app.user_with_token(username).await;
    let wallet = default_wallet(app, &token, &id, "usd").await.id;
    Member { id, token, wallet }
}
