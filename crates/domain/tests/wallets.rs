#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `WalletService` over the in-memory adapter: validation, authorization, idempotency
//! fingerprints and unit conversion, without a database.

use std::sync::Arc;

use async_trait::async_trait;
use tessera_domain::model::{AccessClaims, Permission, Permissions, User};
use tessera_domain::ports::{
    PasswordHasher, SecretGenerator, SystemClock, TokenCodec, UuidV7Generator,
};
use tessera_domain::services::{AdjustmentInput, CreateUserInput, LedgerInput, TransferInput};
use tessera_domain::values::{IdempotencyKey, UserRef};
use tessera_domain::Failure;
use tessera_domain::{Actor, Cause, Conflict, Ports, Tessera, TesseraConfig, WalletError};
use tessera_memory::MemoryStore;
use uuid::Uuid;

struct PlainHasher;

#[async_trait]
impl PasswordHasher for PlainHasher {
    async fn hash(&self, password: &str) -> Result<String, Cause> {
        Ok(format!("plain:{password}"))
    }
    async fn verify<'a>(&self, password: &str, hash: Option<&'a str>) -> Result<bool, Cause> {
        Ok(hash == Some(format!("plain:{password}").as_str()))
    }
}

struct NoTokens;

impl TokenCodec for NoTokens {
    fn encode(&self, _: &AccessClaims) -> Result<String, Cause> {
        Err(Cause::msg("not in these tests"))
    }
    fn decode(&self, _: &str) -> Option<AccessClaims> {
        None
    }
}

struct Secrets;

impl SecretGenerator for Secrets {
    fn new_token(&self) -> String {
        Uuid::new_v4().simple().to_string()
    }
    fn new_password(&self) -> String {
        Uuid::new_v4().simple().to_string()
    }
    fn digest(&self, token: &str) -> String {
        token.to_owned()
    }
    fn new_fingerprint(&self) -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }
    fn new_webhook_secret(&self) -> String {
        format!("whsec_{}", Uuid::new_v4().simple())
    }
    fn fingerprint_digest(&self, fingerprint: &str) -> String {
        fingerprint.to_owned()
    }
}

fn tessera() -> Tessera {
    let store = MemoryStore::new();
    let ports = Ports {
        users: store.users(),
        sessions: store.sessions(),
        wallets: store.wallets(),
        tiers: Arc::new(store.clone()),
        shares: Arc::new(store.clone()),
        audit: Arc::new(store.clone()),
        api_keys: Arc::new(store.clone()),
        guards: Arc::new(store.clone()),
        metering: Arc::new(store.clone()),
        events: Arc::new(store.clone()),
        webhooks: Arc::new(store.clone()),
        webhook_cipher: None,
        webhook_sender: None,
        hasher: Arc::new(PlainHasher),
        tokens: Arc::new(NoTokens),
        secrets: Arc::new(Secrets),
        signatures: Arc::new(tessera_sr25519::Sr25519Verifier::new()),
        external_tokens: None,
        clock: Arc::new(SystemClock),
        ids: Arc::new(UuidV7Generator),
    };
    Tessera::new(ports, TesseraConfig::default())
}

fn actor(user: User) -> Actor {
    Actor::direct(user, None)
}

async fn root(t: &Tessera) -> Actor {
    let created = t
        .users
        .create_superuser("root", None, Some("root-password"))
        .await
        .unwrap();
    actor(created.user)
}

async fn user(t: &Tessera, root: &Actor, name: &str, permissions: Permissions) -> Actor {
    let created = t
        .users
        .create(
            root,
            CreateUserInput {
                username: Some(name.into()),
                password: Some(format!("{name}-password")),
                is_admin: Some(permissions.granted(Permission::Admin)),
                ..CreateUserInput::default()
            },
        )
        .await
        .unwrap();
    actor(created.user)
}

async fn main_wallet(t: &Tessera, who: &Actor) -> Uuid {
    let wallets = t
        .wallets
        .list_for_user(who, &UserRef::Id(who.id()), false)
        .await
        .unwrap();
    assert_eq!(wallets.len(), 1);
    assert_eq!(wallets[0].currency, "usd");
    wallets[0].id
}

fn input(amount: i64, reason: &str) -> AdjustmentInput {
    AdjustmentInput {
        amount,
        reason: reason.into(),
    }
}

fn key(k: &str) -> Option<IdempotencyKey> {
    Some(IdempotencyKey::parse("Idempotency-Key", k).unwrap())
}

#[tokio::test]
async fn bad_adjustments_are_validation_errors() {
    let t = tessera();
    let root = root(&t).await;
    let alice = user(&t, &root, "alice", Permissions::NONE).await;
    let w = main_wallet(&t, &alice).await;
    let long = "r".repeat(501);
    for (amount, reason, field) in [
        (0, "zero", "amount"),
        (5, "", "reason"),
        (5, long.as_str(), "reason"),
    ] {
        match t
            .wallets
            .adjust(&root, w, input(amount, reason), None)
            .await
        {
            Err(WalletError::Failure(Failure::Validation(v))) => assert_eq!(v.field, field),
            other => panic!("{other:?}"),
        }
    }
    // Validation does not depend on the wallet: an unknown one gives the same answer.
    assert!(matches!(
        t.wallets
            .adjust(&root, Uuid::now_v7(), input(0, "zero"), None)
            .await,
        Err(WalletError::Failure(Failure::Validation(_)))
    ));
    assert!(matches!(
        t.wallets
            .adjust(&root, Uuid::now_v7(), input(1, "one"), None)
            .await,
        Err(WalletError::NotFound)
    ));
    assert_eq!(t.wallets.get(&alice, w).await.unwrap().balance, 0);
}

#[tokio::test]
async fn idempotency_fingerprints_cover_the_whole_request() {
    let t = tessera();
    let root = root(&t).await;
    let alice = user(&t, &root, "alice", Permissions::NONE).await;
    let w = main_wallet(&t, &alice).await;

    let first = t
        .wallets
        .adjust(&root, w, input(10, "top up"), key("k"))
        .await
        .unwrap();
    assert!(!first.replayed);
    let again = t
        .wallets
        .adjust(&root, w, input(10, "top up"), key("k"))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.entry, first.entry);
    for changed in [input(11, "top up"), input(10, "top up!")] {
        assert!(matches!(
            t.wallets.adjust(&root, w, changed, key("k")).await,
            Err(WalletError::Failure(Failure::Conflict(
                Conflict::IdempotencyMismatch
            )))
        ));
    }
    // The same key on another endpoint is another request.
    assert!(matches!(
        t.wallets
            .adjust_default_in_major_units(
                &root,
                &UserRef::Id(alice.id()),
                "usd",
                10,
                "top up",
                key("k")
            )
            .await,
        Err(WalletError::Failure(Failure::Conflict(
            Conflict::IdempotencyMismatch
        )))
    ));
    // Keys belong to the caller.
    let ops = user(&t, &root, "ops", Permissions::NONE.with(Permission::Admin)).await;
    let theirs = t
        .wallets
        .adjust(&ops, w, input(10, "top up"), key("k"))
        .await
        .unwrap();
    assert!(!theirs.replayed);
    assert_eq!(t.wallets.get(&alice, w).await.unwrap().balance, 20);
}

#[tokio::test]
async fn wallets_are_reached_by_owner_manager_and_billing_admins_only() {
    let t = tessera();
    let root = root(&t).await;
    let alice = user(&t, &root, "alice", Permissions::NONE).await;
    let bob = user(&t, &root, "bob", Permissions::NONE).await;
    let w = main_wallet(&t, &alice).await;

    assert!(matches!(
        t.wallets.get(&bob, w).await,
        Err(WalletError::NotFound)
    ));
    assert!(matches!(
        t.wallets
            .adjust(&alice, w, input(5, "self-service"), None)
            .await,
        Err(WalletError::Failure(Failure::Forbidden { .. }))
    ));
    assert!(matches!(
        t.wallets
            .list_for_user(&bob, &UserRef::Id(alice.id()), false)
            .await,
        Err(WalletError::UserNotFound)
    ));

    // A manager acts for their managed user.
    let kid = t
        .users
        .create(
            &alice,
            CreateUserInput {
                first_name: Some("Kid".into()),
                ..CreateUserInput::default()
            },
        )
        .await
        .unwrap()
        .user;
    let kid_wallet = t
        .wallets
        .list_for_user(&alice, &UserRef::Id(kid.id), false)
        .await
        .unwrap()[0]
        .id;
    t.wallets
        .adjust(&root, kid_wallet, input(50, "allowance"), None)
        .await
        .unwrap();
    let moved = t
        .wallets
        .transfer(
            &alice,
            TransferInput {
                from_wallet: kid_wallet,
                to_wallet: w,
                amount: 20,
                reason: "chores".into(),
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(moved.debit.balance_after, 30);
    assert!(matches!(
        t.wallets
            .ledger(&bob, kid_wallet, LedgerInput::default())
            .await,
        Err(WalletError::NotFound)
    ));

    // Nothing but the own profile while a password change is pending.
    let mut pending = alice.clone();
    pending.user.must_change_password = true;
    assert!(matches!(
        t.wallets.get(&pending, w).await,
        Err(WalletError::Failure(Failure::Forbidden {
            code: "password_change_required",
            ..
        }))
    ));
    let summaries = t
        .wallets
        .summaries(&pending, std::slice::from_ref(&pending.user))
        .await
        .unwrap();
    assert_eq!(summaries[&alice.id()].balances["usd"], 20);
    // Users the caller may not see get no summary.
    assert!(t
        .wallets
        .summaries(&bob, std::slice::from_ref(&alice.user))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn major_units_are_scaled_exactly_and_transfers_need_one_currency() {
    let t = tessera();
    let root = root(&t).await;
    let alice = user(&t, &root, "alice", Permissions::NONE).await;
    let target = UserRef::Id(alice.id());
    let usd = main_wallet(&t, &alice).await;
    let posted = t
        .wallets
        .adjust_default_in_major_units(&root, &target, "sat", 60, "Admin credit", None)
        .await
        .unwrap();
    assert_eq!(posted.entry.balance_after, 60_000);
    for (amount, currency, field) in [
        (i64::MAX / 1000 + 1, "sat", "amount"),
        (0, "sat", "amount"),
        (5, "eur", "currency"),
    ] {
        match t
            .wallets
            .adjust_default_in_major_units(&root, &target, currency, amount, "x", None)
            .await
        {
            Err(WalletError::Failure(Failure::Validation(v))) => assert_eq!(v.field, field),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        t.wallets
            .adjust_default_in_major_units(&root, &UserRef::Id(Uuid::now_v7()), "sat", 1, "x", None)
            .await,
        Err(WalletError::UserNotFound)
    ));

    let sat = posted.entry.wallet_id;
    for (from, to) in [(sat, usd), (sat, sat)] {
        let result = t
            .wallets
            .transfer(
                &alice,
                TransferInput {
                    from_wallet: from,
                    to_wallet: to,
                    amount: 1,
                    reason: "x".into(),
                },
                None,
            )
            .await;
        match result {
            Err(WalletError::Failure(Failure::Validation(v))) => assert_eq!(v.field, "to_wallet"),
            other => panic!("{other:?}"),
        }
    }
}

/// Every wallet use case records one audit event with the change: actor, the owner as
/// target, the wallet ids and amounts in `changes`. Replays, refusals and no-ops record none.
#[tokio::test]
async fn money_changes_are_audited_once_and_refusals_not_at_all() {
    use std::collections::BTreeMap;

    use tessera_domain::model::{AuditAction, AuditEvent, AuditQuery, FieldChange};

    async fn trail(t: &Tessera, root: &Actor) -> Vec<AuditEvent> {
        let page = t
            .audit
            .list(
                root,
                AuditQuery {
                    limit: 500,
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap();
        page.events
            .into_iter()
            .filter(|e| e.action.as_str().starts_with("wallet."))
            .collect()
    }
    fn after(e: &AuditEvent, field: &str) -> Option<String> {
        e.changes.get(field).and_then(|f| f.after.clone())
    }

    let t = tessera();
    let root = root(&t).await;
    let alice = user(&t, &root, "alice", Permissions::NONE).await;
    let bob = user(&t, &root, "bob", Permissions::NONE).await;
    let w = main_wallet(&t, &alice).await;
    let bob_wallet = main_wallet(&t, &bob).await;
    assert!(trail(&t, &root).await.is_empty());

    // An adjustment, then two replays of it.
    let posted = t
        .wallets
        .adjust(&root, w, input(1_000, "top-up"), key("once"))
        .await
        .unwrap();
    for _ in 0..2 {
        let again = t
            .wallets
            .adjust(&root, w, input(1_000, "top-up"), key("once"))
            .await
            .unwrap();
        assert!(again.replayed);
    }
    let events = trail(&t, &root).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let adjusted = &events[0];
    assert_eq!(adjusted.action, AuditAction::WalletAdjusted);
    assert_eq!(adjusted.actor_id, Some(root.id()));
    assert_eq!(adjusted.target_id, Some(alice.id()));
    let new = |v: &str| FieldChange {
        before: None,
        after: Some(v.to_owned()),
    };
    assert_eq!(
        adjusted.changes,
        BTreeMap::from([
            ("amount".to_owned(), new("1000")),
            ("balance_after".to_owned(), new("1000")),
            ("currency".to_owned(), new("usd")),
            ("entry_id".to_owned(), new(&posted.entry.id.to_string())),
            ("reason".to_owned(), new("top-up")),
            ("wallet_id".to_owned(), new(&w.to_string())),
        ])
    );

    // Refusals record nothing.
    assert!(matches!(
        t.wallets
            .adjust(&root, w, input(-5_000, "too much"), None)
            .await,
        Err(WalletError::Failure(Failure::Conflict(
            Conflict::InsufficientFunds
        )))
    ));
    assert!(matches!(
        t.wallets
            .adjust(&root, w, input(7, "other"), key("once"))
            .await,
        Err(WalletError::Failure(Failure::Conflict(
            Conflict::IdempotencyMismatch
        )))
    ));
    let overdraft = TransferInput {
        from_wallet: w,
        to_wallet: bob_wallet,
        amount: 5_000,
        reason: "rent".into(),
    };
    assert!(matches!(
        t.wallets.transfer(&alice, overdraft, None).await,
        Err(WalletError::Failure(Failure::Conflict(
            Conflict::InsufficientFunds
        )))
    ));
    assert!(matches!(
        t.wallets
            .adjust_default_in_major_units(&root, &UserRef::Id(bob.id()), "sat", -1, "x", None)
            .await,
        Err(WalletError::Failure(Failure::Conflict(
            Conflict::InsufficientFunds
        )))
    ));
    assert_eq!(trail(&t, &root).await.len(), 1);

    // A transfer by the owner: one event on the source's owner, naming the destination.
    let rent = TransferInput {
        from_wallet: w,
        to_wallet: bob_wallet,
        amount: 300,
        reason: "rent".into(),
    };
    let moved = t.wallets.transfer(&alice, rent, None).await.unwrap();
    let events = trail(&t, &root).await;
    let transferred = &events[0];
    assert_eq!(transferred.action, AuditAction::WalletTransferred);
    assert_eq!(transferred.actor_id, Some(alice.id()));
    assert_eq!(transferred.target_id, Some(alice.id()));
    for (field, value) in [
        ("transfer_id", moved.transfer_id.to_string()),
        ("from_wallet", w.to_string()),
        ("to_wallet", bob_wallet.to_string()),
        ("to_user_id", bob.id().to_string()),
        ("amount", "300".into()),
        ("currency", "usd".into()),
        ("reason", "rent".into()),
        ("from_balance_after", "700".into()),
        ("to_balance_after", "300".into()),
    ] {
        assert_eq!(after(transferred, field), Some(value), "{field}");
    }

    // LNbits-style: the default sat wallet is opened by the change and named in its event.
    let sats = t
        .wallets
        .adjust_default_in_major_units(
            &root,
            &UserRef::Id(bob.id()),
            "sat",
            2,
            "Admin credit",
            None,
        )
        .await
        .unwrap();
    let events = trail(&t, &root).await;
    assert_eq!(events[0].action, AuditAction::WalletAdjusted);
    assert_eq!(events[0].target_id, Some(bob.id()));
    assert_eq!(
        after(&events[0], "wallet_id"),
        Some(sats.entry.wallet_id.to_string())
    );
    assert_eq!(after(&events[0], "amount"), Some("2000".into()));
    assert_eq!(after(&events[0], "currency"), Some("sat".into()));

    // Opening, deleting (twice: the second changes nothing) and restoring a wallet.
    let spare = t
        .wallets
        .create(&alice, &UserRef::Id(alice.id()), "Spare", "usd")
        .await
        .unwrap();
    t.wallets.delete(&alice, spare.id).await.unwrap();
    t.wallets.delete(&alice, spare.id).await.unwrap();
    t.wallets.restore(&root, spare.id).await.unwrap();
    assert!(matches!(
        t.wallets.restore(&root, spare.id).await,
        Err(WalletError::Failure(Failure::Conflict(
            Conflict::WalletState
        )))
    ));
    let events = trail(&t, &root).await;
    let actions: Vec<AuditAction> = events.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::WalletRestored,
            AuditAction::WalletDeleted,
            AuditAction::WalletCreated,
            AuditAction::WalletAdjusted,
            AuditAction::WalletTransferred,
            AuditAction::WalletAdjusted,
        ]
    );
    for e in &events[..3] {
        assert_eq!(e.target_id, Some(alice.id()));
        assert_eq!(after(e, "wallet_id"), Some(spare.id.to_string()));
    }
    assert_eq!(events[0].actor_id, Some(root.id()));
    assert_eq!(events[1].actor_id, Some(alice.id()));
    assert_eq!(
        events[1].changes["state"],
        FieldChange {
            before: Some("active".into()),
            after: Some("deleted".into()),
        }
    );
    assert_eq!(after(&events[2], "name"), Some("Spare".into()));
}
