//! Tessera inside another program: the domain services over the in-memory adapter, with no
//! HTTP server and no database. Run it with
//!
//! ```sh
//! cargo run -p tessera-domain --example embedded
//! ```

use std::error::Error;
use std::sync::Arc;

use tessera_domain::ports::{SystemClock, UuidV7Generator};
use tessera_domain::services::{AdjustmentInput, ConsumeInput, CreateUserInput};
use tessera_domain::values::{IdempotencyKey, UserRef};
use tessera_domain::{Ports, Tessera, TesseraConfig};
use tessera_memory::MemoryStore;
use tessera_security::{Argon2Hasher, Argon2Settings, JwtCodec, RandomSecrets};

/// What the run ends with, for the caller (and the test) to check.
pub struct Summary {
    pub username: String,
    pub balance_minor: i64,
    pub balance: String,
    pub ledger_entries: usize,
    /// Who paid for each metered call: `quota`, then `balance`.
    pub sources: Vec<&'static str>,
}

/// Tessera over one in-memory store; cheap argon2 because this is a demo.
pub fn build(config: TesseraConfig) -> Result<Tessera, Box<dyn Error>> {
    let store_port = Arc::new(MemoryStore::new());
    Ok(Tessera::new(
        Ports {
            users: store_port.clone(),
            sessions: store_port.clone(),
            tiers: store_port.clone(),
            audit: store_port.clone(),
            shares: store_port.clone(),
            api_keys: store_port.clone(),
            guards: store_port.clone(),
            metering: store_port.clone(),
            wallets: store_port.clone(),
            events: store_port.clone(),
            webhooks: store_port,
            webhook_cipher: None,
            webhook_sender: None,
            hasher: Arc::new(Argon2Hasher::new(Argon2Settings {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
                max_concurrent: 1,
            })?),
            tokens: Arc::new(JwtCodec::new(b"an embedding demo key, 32+ bytes long")?),
            secrets: Arc::new(RandomSecrets),
            signatures: Arc::new(tessera_sr25519::Sr25519Verifier::new()),
            external_tokens: None,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7Generator),
        },
        config,
    ))
}

/// Builds Tessera over memory, registers a user, credits her wallet and reads it back.
pub async fn run() -> Result<Summary, Box<dyn Error>> {
    let tessera = build(TesseraConfig::default())?;

    // The first superuser, then every call as an authenticated actor — the same rules as the
    // HTTP API.
    tessera
        .users
        .create_superuser("admin", None, Some("a long admin password"))
        .await?;
    let pair = tessera
        .auth
        .login("admin", "a long admin password", "127.0.0.1")
        .await?;
    let admin = tessera.auth.authenticate(&pair.access_token).await?;

    let alice = tessera
        .users
        .create(
            &admin,
            CreateUserInput {
                username: Some("alice".into()),
                email: Some("alice@example.com".into()),
                password: Some("correct horse battery".into()),
                ..CreateUserInput::default()
            },
        )
        .await?
        .user;

    // Every user has a default wallet in the default currency (usd, in micro-dollars).
    let wallets = tessera
        .wallets
        .list_for_user(&admin, &UserRef::Id(alice.id), false)
        .await?;
    let wallet = wallets.first().ok_or("alice has no wallet")?;
    let credit = AdjustmentInput {
        amount: 12_500_000,
        reason: "welcome credit".into(),
    };
    let key = IdempotencyKey::parse("idempotency_key", "welcome-alice")?;
    tessera
        .wallets
        .adjust(&admin, wallet.id, credit.clone(), Some(key.clone()))
        .await?;
    // A retry with the same key changes nothing.
    let replay = tessera
        .wallets
        .adjust(&admin, wallet.id, credit, Some(key))
        .await?;
    assert!(replay.replayed);

    // Metering: one free call a day, then calls are charged to the wallet. Each consumption is
    // one atomic step (quota counter, charge with its ledger entry, hourly usage bucket).
    tessera
        .metering
        .set_quotas(
            &admin,
            &UserRef::Id(alice.id),
            [("*".to_owned(), 1)].into_iter().collect(),
        )
        .await?;
    let mut sources = Vec::new();
    for _ in 0..2 {
        let call = ConsumeInput {
            user_id: alice.id,
            resource_id: "*".into(),
            count: 1,
            cost: 500_000,
            input_tokens: 100,
            output_tokens: 50,
        };
        let consumed = tessera.metering.consume(&admin, call, None).await?;
        sources.push(consumed.outcome.source.as_str());
    }

    let wallet = tessera.wallets.get(&admin, wallet.id).await?;
    let ledger = tessera
        .wallets
        .ledger(&admin, wallet.id, Default::default())
        .await?;
    let money = tessera_domain::model::Money::from_minor(
        tessera.wallets.currencies().default_currency(),
        wallet.balance,
    );
    Ok(Summary {
        username: alice.username.unwrap_or_default(),
        balance_minor: wallet.balance,
        balance: money.to_decimal_string(tessera.wallets.currencies()),
        ledger_entries: ledger.entries.len(),
        sources,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let summary = run().await?;
    println!(
        "{} holds {} usd ({} micro-dollars) after {} ledger entry(ies); metered calls paid by {:?}",
        summary.username,
        summary.balance,
        summary.balance_minor,
        summary.ledger_entries,
        summary.sources
    );
    Ok(())
}
