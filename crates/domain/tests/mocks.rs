#![cfg(feature = "mock")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The services over mockall mocks of the ports (the `mock` feature): store failures the memory
//! adapter cannot produce, and exactly what a service hands to a port.
//!
//! Run with `cargo test -p tessera-domain --features mock`. A mock without expectations panics
//! when called, so each test also shows which ports a use case touches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tessera_domain::model::{
    AuditAction, ChangeTarget, EntryKind, Permission, Permissions, User, UserState, Wallet,
};
use tessera_domain::ports::{
    Clock, MockApiKeyRepository, MockAuditRepository, MockEventRepository, MockGuardRepository,
    MockMeteringRepository, MockPasswordHasher, MockSecretGenerator, MockSessionRepository,
    MockShareRepository, MockSignatureVerifier, MockTierRepository, MockTokenCodec,
    MockUserRepository, MockWalletRepository, MockWebhookRepository, RepoError, SystemClock,
    UuidV7Generator,
};
use tessera_domain::services::{
    AdjustmentInput, CreateUserInput, CredentialThrottle, LoginLimits, RetentionError,
    RetentionPolicy,
};
use tessera_domain::values::UserRef;
use tessera_domain::Failure;
use tessera_domain::{Actor, Ports, Tessera, TesseraConfig, UserError, WalletError};
use time::OffsetDateTime;
use uuid::Uuid;

/// The ports a test sets expectations on; every other port is a mock that must not be called.
#[derive(Default)]
struct Mocks {
    users: MockUserRepository,
    wallets: MockWalletRepository,
    hasher: MockPasswordHasher,
    guards: MockGuardRepository,
}

fn tessera(m: Mocks) -> Tessera {
    tessera_with(m, Arc::new(SystemClock), TesseraConfig::default())
}

fn tessera_with(m: Mocks, clock: Arc<dyn Clock>, config: TesseraConfig) -> Tessera {
    let ports = Ports {
        users: Arc::new(m.users),
        sessions: Arc::new(MockSessionRepository::new()),
        wallets: Arc::new(m.wallets),
        tiers: Arc::new(MockTierRepository::new()),
        audit: Arc::new(MockAuditRepository::new()),
        shares: Arc::new(MockShareRepository::new()),
        api_keys: Arc::new(MockApiKeyRepository::new()),
        guards: Arc::new(m.guards),
        metering: Arc::new(MockMeteringRepository::new()),
        events: Arc::new(MockEventRepository::new()),
        webhooks: Arc::new(MockWebhookRepository::new()),
        webhook_cipher: None,
        webhook_sender: None,
        hasher: Arc::new(m.hasher),
        tokens: Arc::new(MockTokenCodec::new()),
        secrets: Arc::new(MockSecretGenerator::new()),
        signatures: Arc::new(MockSignatureVerifier::new()),
        external_tokens: None,
        clock,
        ids: Arc::new(UuidV7Generator),
    };
    Tessera::new(ports, config)
}

/// A clock the test moves by hand.
struct ManualClock(Mutex<OffsetDateTime>);

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

fn user(name: &str, permissions: Permissions) -> User {
    let now = OffsetDateTime::now_utc();
    User {
        id: Uuid::now_v7(),
        username: Some(name.to_owned()),
        email: None,
        first_name: None,
        last_name: None,
        logo_id: None,
        hotkey: None,
        coldkey: None,
        payment_address: None,
        permissions,
        tier_id: None,
        invoicing: false,
        unlimited: false,
        squad_enabled: false,
        manager_id: None,
        state: UserState::Active,
        has_password: true,
        must_change_password: false,
        tokens_valid_after: now,
        created_by: None,
        created_at: now,
        updated_at: now,
        last_login_at: None,
        deleted_at: None,
    }
}

fn superuser() -> Actor {
    Actor {
        user: user("root", Permissions::NONE.with(Permission::Superuser)),
        session_id: None,
        delegation: None,
        credential: tessera_domain::actor::Credential::Full,
        client_ip: None,
    }
}

#[tokio::test]
async fn a_store_outage_is_unavailable_to_the_users_service() {
    let mut m = Mocks::default();
    m.users
        .expect_get()
        .times(1)
        .returning(|_| Err(RepoError::Unavailable));
    m.users
        .expect_find_by_username()
        .times(1)
        .returning(|_| Err(RepoError::Unavailable));
    let t = tessera(m);
    let root = superuser();
    let by_id = t.users.get(&root, &UserRef::Id(Uuid::now_v7())).await;
    assert!(
        matches!(by_id, Err(UserError::Failure(Failure::Unavailable))),
        "{by_id:?}"
    );
    let by_name = t.users.get(&root, &UserRef::Username("alice".into())).await;
    assert!(
        matches!(by_name, Err(UserError::Failure(Failure::Unavailable))),
        "{by_name:?}"
    );
}

/// `UserRepository::create` answers `NotFound` only for an unknown tier; the service names it.
#[tokio::test]
async fn creating_a_user_with_an_unknown_tier_is_tier_not_found() {
    let tier = Uuid::now_v7();
    let mut m = Mocks::default();
    m.hasher
        .expect_hash()
        .returning(|p| Ok(format!("hashed:{p}")));
    m.users
        .expect_create()
        .withf(move |new| {
            new.tier_id == Some(tier)
                && new.audit.as_ref().is_some_and(|e| {
                    e.action == AuditAction::UserCreated
                        && e.changes["tier_id"].after == Some(tier.to_string())
                })
        })
        .times(1)
        .returning(|_| Err(RepoError::NotFound));
    m.users
        .expect_create()
        .withf(|new| new.tier_id.is_none())
        .times(1)
        .returning(|_| Err(RepoError::Unavailable));
    let t = tessera(m);
    let input = |tier_id| CreateUserInput {
        username: Some("alice".into()),
        password: Some("alice-password".into()),
        tier_id,
        ..CreateUserInput::default()
    };
    let root = superuser();
    let unknown = t.users.create(&root, input(Some(tier))).await;
    assert!(
        matches!(unknown, Err(UserError::TierNotFound)),
        "{unknown:?}"
    );
    let outage = t.users.create(&root, input(None)).await;
    assert!(
        matches!(outage, Err(UserError::Failure(Failure::Unavailable))),
        "{outage:?}"
    );

    // Only a superuser gives a tier; nothing reaches the store otherwise.
    let admin = Actor {
        user: user("ops", Permissions::NONE.with(Permission::Admin)),
        session_id: None,
        delegation: None,
        credential: tessera_domain::actor::Credential::Full,
        client_ip: None,
    };
    let refused = t.users.create(&admin, input(Some(tier))).await;
    assert!(
        matches!(refused, Err(UserError::Failure(Failure::Forbidden { .. }))),
        "{refused:?}"
    );
}

/// An adjustment hands the store one change carrying its audit event: the actor, the wallet's
/// owner as target, and the amount, currency, reason and entry id (the store adds the wallet
/// and the balance after). A store outage is `Unavailable`.
#[tokio::test]
async fn an_adjustment_hands_its_audit_event_to_the_store() {
    let root = superuser();
    let root_id = root.id();
    let owner = user("alice", Permissions::NONE);
    let owner_id = owner.id;
    let now = OffsetDateTime::now_utc();
    let wallet = Wallet {
        id: Uuid::now_v7(),
        user_id: owner_id,
        name: "Main".into(),
        currency: "usd".into(),
        is_default: true,
        balance: 0,
        allow_negative: false,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
    let wallet_id = wallet.id;
    let mut m = Mocks::default();
    m.wallets
        .expect_get_with_owner()
        .returning(move |_| Ok((wallet.clone(), owner.clone())));
    m.wallets
        .expect_apply()
        .withf(move |c| {
            let Some(e) = &c.audit else { return false };
            let field = |k: &str| e.changes.get(k).and_then(|f| f.after.clone());
            c.target == ChangeTarget::Wallet(wallet_id)
                && c.kind == EntryKind::Adjustment
                && e.action == AuditAction::WalletAdjusted
                && e.actor_id == Some(root_id)
                && e.target_id == Some(owner_id)
                && field("amount").as_deref() == Some("-250")
                && field("currency").as_deref() == Some("usd")
                && field("reason").as_deref() == Some("refund")
                && field("entry_id") == Some(c.entry_id.to_string())
                && e.changes.values().all(|f| f.before.is_none())
        })
        .times(1)
        .returning(|_| Err(RepoError::Unavailable));
    let t = tessera(m);
    let result = t
        .wallets
        .adjust(
            &root,
            wallet_id,
            AdjustmentInput {
                amount: -250,
                reason: "refund".into(),
            },
            None,
        )
        .await;
    assert!(
        matches!(result, Err(WalletError::Failure(Failure::Unavailable))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_refused_address_is_not_counted_again_until_its_window_ends() {
    // 100 s into a 300 s attempt window (1 800 000 000 is a multiple of 300).
    let window_start = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let clock = Arc::new(ManualClock(Mutex::new(
        window_start + time::Duration::seconds(100),
    )));
    let hits = Arc::new(AtomicU64::new(0));
    let mut guards = MockGuardRepository::new();
    let counted = hits.clone();
    guards
        .expect_hit()
        .withf(move |key, start, secs, _| {
            key == "secret:ip:10.0.0.1" && *start == window_start && *secs == 300
        })
        .times(3)
        .returning(move |_, _, _, _| Ok(counted.fetch_add(1, Ordering::SeqCst) + 1));
    let limits = LoginLimits {
        per_ip: 2,
        ..LoginLimits::default()
    };
    let throttle = CredentialThrottle::new(Arc::new(guards), clock.clone(), limits);

    assert!(throttle.before_anonymous_attempt("10.0.0.1").await.is_ok());
    assert!(throttle.before_anonymous_attempt("10.0.0.1").await.is_ok());
    // The third hit is over the limit; the next ones are refused without asking the store,
    // until the window ends (a window's count only grows).
    for _ in 0..5 {
        let refused = throttle.before_anonymous_attempt("10.0.0.1").await;
        assert!(
            matches!(
                refused,
                Err(Failure::Throttled {
                    retry_after_secs: 200
                })
            ),
            "{refused:?}"
        );
    }
    *clock.0.lock().unwrap() += time::Duration::seconds(150);
    let refused = throttle.before_anonymous_attempt("10.0.0.1").await;
    assert!(
        matches!(
            refused,
            Err(Failure::Throttled {
                retry_after_secs: 50
            })
        ),
        "{refused:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

fn deleted_days_ago(days: i64, now: OffsetDateTime) -> User {
    User {
        state: UserState::Deleted,
        deleted_at: Some(now - time::Duration::days(days)),
        ..user("gone", Permissions::NONE)
    }
}

/// Past the retention period a soft-deleted user cannot come back, even before housekeeping
/// has purged it; the store is not asked to change anything.
#[tokio::test]
async fn restoring_a_user_past_its_retention_is_a_conflict() {
    let now = OffsetDateTime::now_utc();
    let target = deleted_days_ago(31, now);
    let mut m = Mocks::default();
    let found = target.clone();
    m.users
        .expect_get()
        .times(1)
        .returning(move |_| Ok(found.clone()));
    let t = tessera_with(
        m,
        Arc::new(ManualClock(Mutex::new(now))),
        TesseraConfig::default(),
    );
    let result = t.users.restore(&superuser(), &UserRef::Id(target.id)).await;
    assert!(
        matches!(
            result,
            Err(UserError::Failure(Failure::Conflict(
                tessera_domain::Conflict::RetentionExpired
            )))
        ),
        "{result:?}"
    );
}

fn only(policy: RetentionPolicy) -> TesseraConfig {
    TesseraConfig {
        retention: policy,
        ..TesseraConfig::default()
    }
}

/// Housekeeping purges the due users round by round, each with a system `user.purged` event;
/// a user restored between the listing and its purge is skipped, and the next round runs only
/// while a round came back full.
#[tokio::test]
async fn housekeeping_purges_due_users_in_rounds_as_the_system() {
    let now = OffsetDateTime::now_utc();
    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let mut m = Mocks::default();
    let mut rounds = vec![vec![c], vec![a, b]];
    m.users
        .expect_deleted_before()
        .times(2)
        .withf(move |cutoff, limit| *cutoff == now - time::Duration::days(30) && *limit == 2)
        .returning(move |_, _| Ok(rounds.pop().unwrap_or_default()));
    m.users
        .expect_purge_deleted()
        .times(3)
        .withf(move |id, _, audit| {
            audit.as_ref().is_some_and(|e| {
                e.actor_id.is_none()
                    && e.target_id == Some(*id)
                    && e.action == AuditAction::UserPurged
            })
        })
        // b was restored meanwhile.
        .returning(move |id, _, _| Ok(id != b));
    let policy = RetentionPolicy {
        deleted_users: Some(std::time::Duration::from_secs(30 * 24 * 3600)),
        ended_sessions: None,
        idempotency_keys: None,
        usage_keys: None,
        quota_counters: None,
        events: None,
        webhook_deliveries: None,
        batch_size: 2,
    };
    let t = tessera_with(m, Arc::new(ManualClock(Mutex::new(now))), only(policy));
    let pruned = t.retention.prune().await.unwrap();
    assert_eq!(pruned.users, 2);
    assert_eq!(pruned.total(), 2);
}

/// Batch deletes repeat until one removes fewer rows than the batch; an outage stops the run
/// as `Unavailable` (the next run catches up).
#[tokio::test]
async fn housekeeping_deletes_in_batches_until_one_comes_back_short() {
    let mut m = Mocks::default();
    let mut removed = vec![1, 2, 2];
    m.wallets
        .expect_prune_idempotency_keys()
        .times(3)
        .returning(move |_, _| Ok(removed.pop().unwrap_or(0)));
    let policy = RetentionPolicy {
        deleted_users: None,
        ended_sessions: None,
        idempotency_keys: Some(std::time::Duration::from_secs(60)),
        usage_keys: None,
        quota_counters: None,
        events: None,
        webhook_deliveries: None,
        batch_size: 2,
    };
    let t = tessera_with(m, Arc::new(SystemClock), only(policy.clone()));
    assert_eq!(t.retention.prune().await.unwrap().idempotency_keys, 5);

    let mut m = Mocks::default();
    m.wallets
        .expect_prune_idempotency_keys()
        .times(1)
        .returning(|_, _| Err(RepoError::Unavailable));
    let t = tessera_with(m, Arc::new(SystemClock), only(policy));
    let result = t.retention.prune().await;
    assert!(
        matches!(result, Err(RetentionError::Unavailable)),
        "{result:?}"
    );
}
