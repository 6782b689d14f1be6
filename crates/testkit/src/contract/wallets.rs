//! Contract cases of [`WalletRepository`](tessera_domain::ports::WalletRepository): default
//! wallets, exact balances with their ledger, the non-negative rule, overflow, soft delete,
//! idempotency, transfers, ledger paging, purge, and concurrency.
//!
//! Every case that moves money ends by checking the ledger invariant with
//! [`assert_ledger_matches`]: the stored balance equals the sum of the wallet's entries.

use std::collections::{BTreeMap, HashSet};

use tessera_domain::model::{
    AuditAction, AuditEvent, AuditQuery, BalanceChange, ChangeTarget, EntryKind, FieldChange,
    IdempotencyClaim, LedgerCursor, LedgerEntry, NewTransfer, NewWallet, Posted, Wallet,
};
use tessera_domain::ports::RepoError;
use tessera_domain::Conflict;
use time::Duration;
use uuid::Uuid;

use super::{create, err, new_managed_user, new_user, now, Stores};

// ---------------------------------------------------------------------------------------------
// Helpers

/// A wallet template for `user_id` in `currency`.
pub fn new_wallet(user_id: Uuid, currency: &str) -> NewWallet {
    NewWallet {
        id: Uuid::now_v7(),
        user_id,
        name: format!("{currency} wallet"),
        currency: currency.into(),
        now: now(),
    }
}

/// A change of `amount` on `wallet_id`, made by `actor`.
pub fn change(wallet_id: Uuid, amount: i64, actor: Option<Uuid>) -> BalanceChange {
    BalanceChange {
        entry_id: Uuid::now_v7(),
        target: ChangeTarget::Wallet(wallet_id),
        amount,
        kind: EntryKind::Adjustment,
        reason: format!("adjust by {amount}"),
        actor_id: actor,
        idempotency: None,
        now: now(),
        audit: None,
    }
}

/// The same change under an idempotency key of `scope`.
pub fn keyed(mut c: BalanceChange, scope: Uuid, key: &str) -> BalanceChange {
    c.idempotency = Some(IdempotencyClaim {
        scope,
        key: key.into(),
        fingerprint: format!("adjust {:?} {}", c.target, c.amount),
    });
    c
}

pub fn transfer(from: Uuid, to: Uuid, amount: i64, actor: Option<Uuid>) -> NewTransfer {
    NewTransfer {
        transfer_id: Uuid::now_v7(),
        debit_entry_id: Uuid::now_v7(),
        credit_entry_id: Uuid::now_v7(),
        from_wallet: from,
        to_wallet: to,
        amount,
        reason: "move".into(),
        actor_id: actor,
        idempotency: None,
        now: now(),
        audit: None,
    }
}

pub async fn wallet(s: &Stores, id: Uuid) -> Wallet {
    s.wallets.get(id).await.expect("get wallet")
}

/// The user's only live wallet (its default one, right after creation).
pub async fn only_wallet(s: &Stores, user_id: Uuid) -> Wallet {
    let wallets = s.wallets.list_for_user(user_id, false).await.unwrap();
    assert_eq!(wallets.len(), 1, "{wallets:?}");
    wallets.into_iter().next().unwrap()
}

pub async fn apply(s: &Stores, c: BalanceChange) -> Posted {
    s.wallets.apply(c).await.expect("apply change")
}

/// Every entry of a wallet, newest first, read page by page.
pub async fn all_entries(s: &Stores, wallet_id: Uuid) -> Vec<LedgerEntry> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = s.wallets.ledger(wallet_id, after, 100).await.unwrap();
        let done = page.len() < 100;
        after = page.last().map(LedgerCursor::after);
        out.extend(page);
        if done {
            return out;
        }
    }
}

/// The ledger invariant: the stored balance equals the sum of the wallet's entries (summed
/// without overflow). Returns the entries, newest first.
pub async fn assert_ledger_matches(s: &Stores, wallet_id: Uuid) -> Vec<LedgerEntry> {
    let stored = wallet(s, wallet_id).await.balance;
    let entries = all_entries(s, wallet_id).await;
    let sum: i128 = entries.iter().map(|e| i128::from(e.amount)).sum();
    assert_eq!(
        i128::from(stored),
        sum,
        "stored balance {stored} differs from the ledger sum {sum}"
    );
    entries
}

fn conflict(c: Conflict) -> RepoError {
    RepoError::Conflict(c)
}

/// An audit event of a wallet change by `actor` on a wallet of `owner`, with one field the
/// caller set (the store adds the rest).
pub fn money_event(actor: Option<Uuid>, owner: Uuid, action: AuditAction) -> AuditEvent {
    AuditEvent {
        id: Uuid::now_v7(),
        at: now(),
        actor_id: actor,
        target_id: Some(owner),
        action,
        changes: BTreeMap::from([(
            "reason".to_owned(),
            FieldChange {
                before: None,
                after: Some(format!("{} by the caller", action.as_str())),
            },
        )]),
    }
}

/// `event` with `fields` set to new values, as the store completes it.
pub fn completed(mut event: AuditEvent, fields: &[(&str, String)]) -> AuditEvent {
    for (field, after) in fields {
        event.changes.insert(
            (*field).to_owned(),
            FieldChange {
                before: None,
                after: Some(after.clone()),
            },
        );
    }
    event
}

/// `c` carrying `event`.
pub fn audited(c: BalanceChange, event: &AuditEvent) -> BalanceChange {
    BalanceChange {
        audit: Some(event.clone()),
        ..c
    }
}

/// Every audit event in the store, newest first.
pub async fn audit_trail(s: &Stores) -> Vec<AuditEvent> {
    s.audit
        .list(AuditQuery {
            limit: 10_000,
            ..AuditQuery::default()
        })
        .await
        .expect("list audit events")
}

/// The stored audit event with this id.
async fn stored_event(s: &Stores, id: Uuid) -> AuditEvent {
    audit_trail(s)
        .await
        .into_iter()
        .find(|e| e.id == id)
        .unwrap_or_else(|| panic!("no audit event {id}"))
}

// ---------------------------------------------------------------------------------------------
// Default wallets and creation

pub async fn default_wallet_is_created_with_the_user(s: Stores) {
    let new = new_user();
    let expected_wallet = new.default_wallet.clone();
    let t = new.now;
    let user = create(&s, new).await;
    let w = only_wallet(&s, user.id).await;
    assert_eq!(
        w,
        Wallet {
            id: expected_wallet.id,
            user_id: user.id,
            name: expected_wallet.name,
            currency: expected_wallet.currency,
            is_default: true,
            balance: 0,
            allow_negative: false,
            created_at: t,
            updated_at: t,
            deleted_at: None,
        }
    );
    assert_eq!(wallet(&s, w.id).await, w);

    let managed = create(&s, new_managed_user(user.id)).await;
    assert!(only_wallet(&s, managed.id).await.is_default);

    // A refused user leaves no wallet behind.
    let dup = super::NewUser {
        username: user.username.clone(),
        ..new_user()
    };
    let dup_wallet = dup.default_wallet.id;
    assert_eq!(
        err(s.users.create(dup).await),
        conflict(Conflict::DuplicateUsername)
    );
    assert_eq!(err(s.wallets.get(dup_wallet).await), RepoError::NotFound);
}

pub async fn wallets_open_as_default_only_when_none(s: Stores) {
    let user = create(&s, new_user()).await;
    let main = only_wallet(&s, user.id).await;
    let second = s
        .wallets
        .create(new_wallet(user.id, "usd"), None)
        .await
        .unwrap();
    assert!(!second.is_default);
    assert_eq!(second.balance, 0);
    let sats = s
        .wallets
        .create(new_wallet(user.id, "sat"), None)
        .await
        .unwrap();
    assert!(sats.is_default);
    assert!(!sats.allow_negative);
    let all = s.wallets.list_for_user(user.id, false).await.unwrap();
    assert_eq!(
        all.iter().map(|w| w.id).collect::<Vec<_>>(),
        vec![main.id, second.id, sats.id]
    );
    assert_eq!(
        err(s
            .wallets
            .create(new_wallet(Uuid::now_v7(), "usd"), None)
            .await),
        RepoError::NotFound
    );
    assert!(s
        .wallets
        .list_for_user(Uuid::now_v7(), true)
        .await
        .unwrap()
        .is_empty());

    // Invoiced users' wallets may go negative, including ones opened later.
    s.users
        .set_invoicing(user.id, true, false, now(), None)
        .await
        .unwrap();
    let later = s
        .wallets
        .create(new_wallet(user.id, "usd"), None)
        .await
        .unwrap();
    assert!(later.allow_negative);
    assert!(wallet(&s, main.id).await.allow_negative);
}

// ---------------------------------------------------------------------------------------------
// Balance changes

pub async fn adjustment_moves_balance_and_writes_entry(s: Stores) {
    let admin = create(&s, new_user()).await;
    let user = create(&s, new_user()).await;
    let w = only_wallet(&s, user.id).await;
    let c = change(w.id, 500, Some(admin.id));
    let expected = LedgerEntry {
        id: c.entry_id,
        wallet_id: w.id,
        amount: 500,
        balance_after: 500,
        kind: EntryKind::Adjustment,
        reason: c.reason.clone(),
        actor_id: Some(admin.id),
        transfer_id: None,
        idempotency_key: None,
        created_at: c.now,
    };
    let t = c.now;
    let posted = apply(&s, c).await;
    assert_eq!(
        posted,
        Posted {
            entry: expected.clone(),
            replayed: false
        }
    );
    let after = wallet(&s, w.id).await;
    assert_eq!(after.balance, 500);
    assert_eq!(after.updated_at, t);

    let debit = apply(&s, change(w.id, -200, None)).await;
    assert_eq!(debit.entry.balance_after, 300);
    assert_eq!(debit.entry.actor_id, None);
    assert_eq!(wallet(&s, w.id).await.balance, 300);
    let entries = assert_ledger_matches(&s, w.id).await;
    assert_eq!(entries.len(), 2);
    assert!(entries.contains(&expected));
}

pub async fn debit_below_zero_refused_unless_allow_negative(s: Stores) {
    let user = create(&s, new_user()).await;
    let w = only_wallet(&s, user.id).await;
    apply(&s, change(w.id, 100, None)).await;
    assert_eq!(
        err(s.wallets.apply(change(w.id, -101, None)).await),
        conflict(Conflict::InsufficientFunds)
    );
    assert_eq!(wallet(&s, w.id).await.balance, 100);
    assert_eq!(all_entries(&s, w.id).await.len(), 1);
    // Down to exactly zero is fine.
    apply(&s, change(w.id, -100, None)).await;

    let invoiced = s
        .users
        .set_invoicing(user.id, true, true, now(), None)
        .await
        .unwrap();
    assert!(invoiced.invoicing && invoiced.unlimited);
    assert!(wallet(&s, w.id).await.allow_negative);
    let posted = apply(&s, change(w.id, -250, None)).await;
    assert_eq!(posted.entry.balance_after, -250);

    // Invoicing cannot be turned off while a wallet is below zero.
    assert_eq!(
        err(s
            .users
            .set_invoicing(user.id, false, false, now(), None)
            .await),
        conflict(Conflict::NegativeBalance)
    );
    let still = s.users.get(user.id).await.unwrap();
    assert!(still.invoicing && still.unlimited);
    assert!(wallet(&s, w.id).await.allow_negative);

    apply(&s, change(w.id, 250, None)).await;
    let off = s
        .users
        .set_invoicing(user.id, false, false, now(), None)
        .await
        .unwrap();
    assert!(!off.invoicing);
    assert!(!wallet(&s, w.id).await.allow_negative);
    assert_eq!(
        err(s.wallets.apply(change(w.id, -1, None)).await),
        conflict(Conflict::InsufficientFunds)
    );
    assert_eq!(
        err(s
            .users
            .set_invoicing(Uuid::now_v7(), true, false, now(), None)
            .await),
        RepoError::NotFound
    );
    assert_ledger_matches(&s, w.id).await;
}

pub async fn overflow_is_refused(s: Stores) {
    let user = create(&s, new_user()).await;
    let w = only_wallet(&s, user.id).await;
    apply(&s, change(w.id, i64::MAX, None)).await;
    assert_eq!(
        err(s.wallets.apply(change(w.id, 1, None)).await),
        conflict(Conflict::BalanceOverflow)
    );
    assert_eq!(wallet(&s, w.id).await.balance, i64::MAX);
    assert_eq!(all_entries(&s, w.id).await.len(), 1);

    // Below i64::MIN, for a wallet that may go negative.
    s.users
        .set_invoicing(user.id, true, false, now(), None)
        .await
        .unwrap();
    let neg = s
        .wallets
        .create(new_wallet(user.id, "sat"), None)
        .await
        .unwrap();
    apply(&s, change(neg.id, i64::MIN, None)).await;
    assert_eq!(
        err(s.wallets.apply(change(neg.id, -1, None)).await),
        conflict(Conflict::BalanceOverflow)
    );
    assert_eq!(wallet(&s, neg.id).await.balance, i64::MIN);

    // The credit side of a transfer overflows too; nothing moves.
    let other = s
        .wallets
        .create(new_wallet(user.id, "usd"), None)
        .await
        .unwrap();
    apply(&s, change(other.id, 5, None)).await;
    assert_eq!(
        err(s.wallets.transfer(transfer(other.id, w.id, 1, None)).await),
        conflict(Conflict::BalanceOverflow)
    );
    assert_eq!(wallet(&s, other.id).await.balance, 5);
    for id in [w.id, neg.id, other.id] {
        assert_ledger_matches(&s, id).await;
    }
}

pub async fn wallet_comes_with_its_owner(s: Stores) {
    let owner = create(&s, new_user()).await;
    let other = create(&s, new_user()).await;
    let w = only_wallet(&s, owner.id).await;
    apply(&s, change(w.id, 75, None)).await;
    let (wallet, user) = s.wallets.get_with_owner(w.id).await.unwrap();
    assert_eq!(wallet, s.wallets.get(w.id).await.unwrap());
    assert_eq!(wallet.balance, 75);
    assert_eq!(user, s.users.get(owner.id).await.unwrap());
    assert_ne!(user.id, other.id);
    // Deleted wallets still come with their owner; unknown ones are not found.
    s.wallets
        .delete(w.id, now() + Duration::seconds(1), None)
        .await
        .unwrap();
    let (deleted, user) = s.wallets.get_with_owner(w.id).await.unwrap();
    assert!(deleted.deleted_at.is_some());
    assert_eq!(user.id, owner.id);
    assert_eq!(
        err(s.wallets.get_with_owner(Uuid::now_v7()).await),
        RepoError::NotFound
    );
}

pub async fn session_check_reads_the_wallet_summary_too(s: Stores) {
    let user = create(&s, new_user()).await;
    let main = only_wallet(&s, user.id).await;
    apply(&s, change(main.id, 30, None)).await;
    let spare = s
        .wallets
        .create(new_wallet(user.id, "usd"), None)
        .await
        .unwrap();
    apply(&s, change(spare.id, 5, None)).await;
    s.wallets
        .create(new_wallet(user.id, "sat"), None)
        .await
        .unwrap();
    let gone = s
        .wallets
        .create(new_wallet(user.id, "eur"), None)
        .await
        .unwrap();
    s.wallets.delete(gone.id, now(), None).await.unwrap();

    let (sid, _) = super::start_session(&s, user.id).await;
    let (check, summary) = s.sessions.check_with_wallets(sid, user.id).await.unwrap();
    assert_eq!(check, s.sessions.check(sid, user.id).await.unwrap());
    assert_eq!(
        summary,
        s.wallets.summaries(&[user.id]).await.unwrap()[&user.id]
    );
    assert_eq!(summary.wallet_count, 3);
    assert_eq!(
        summary.balances,
        BTreeMap::from([("usd".to_owned(), 30), ("sat".to_owned(), 0)])
    );
    let other = create(&s, new_user()).await;
    assert_eq!(
        err(s.sessions.check_with_wallets(sid, other.id).await),
        RepoError::NotFound
    );
    assert_eq!(
        err(s.sessions.check_with_wallets(Uuid::now_v7(), user.id).await),
        RepoError::NotFound
    );
}

pub async fn soft_deleted_wallet_refuses_changes(s: Stores) {
    let user = create(&s, new_user()).await;
    let w = only_wallet(&s, user.id).await;
    let spare = s
        .wallets
        .create(new_wallet(user.id, "usd"), None)
        .await
        .unwrap();
    apply(&s, change(w.id, 40, None)).await;
    apply(&s, change(spare.id, 40, None)).await;

    let t = now() + Duration::seconds(1);
    let deleted = s.wallets.delete(w.id, t, None).await.unwrap();
    assert_eq!(deleted.deleted_at, Some(t));
    assert_eq!(deleted.balance, 40);
    // Deleting again changes nothing.
    let again = s
        .wallets
        .delete(w.id, t + Duration::seconds(1), None)
        .await
        .unwrap();
    assert_eq!(again, deleted);
    assert_eq!(
        err(s.wallets.delete(Uuid::now_v7(), t, None).await),
        RepoError::NotFound
    );

    for amount in [5, -5] {
        assert_eq!(
            err(s.wallets.apply(change(w.id, amount, None)).await),
            conflict(Conflict::WalletDeleted)
        );
    }
    assert_eq!(
        err(s.wallets.transfer(transfer(w.id, spare.id, 1, None)).await),
        conflict(Conflict::WalletDeleted)
    );
    assert_eq!(
        err(s.wallets.transfer(transfer(spare.id, w.id, 1, None)).await),
        conflict(Conflict::WalletDeleted)
    );
    assert_eq!(wallet(&s, spare.id).await.balance, 40);
    assert_eq!(
        err(s.wallets.apply(change(Uuid::now_v7(), 5, None)).await),
        RepoError::NotFound
    );

    let live = s.wallets.list_for_user(user.id, false).await.unwrap();
    assert_eq!(
        live.iter().map(|w| w.id).collect::<Vec<_>>(),
        vec![spare.id]
    );
    let all = s.wallets.list_for_user(user.id, true).await.unwrap();
    assert_eq!(all.len(), 2);

    let t2 = t + Duration::seconds(5);
    let restored = s.wallets.restore(w.id, t2, None).await.unwrap();
    assert_eq!(restored.deleted_at, None);
    assert_eq!(restored.updated_at, t2);
    assert!(restored.is_default);
    assert_eq!(
        err(s.wallets.restore(w.id, t2, None).await),
        conflict(Conflict::WalletState)
    );
    assert_eq!(
        err(s.wallets.restore(Uuid::now_v7(), t2, None).await),
        RepoError::NotFound
    );
    apply(&s, change(w.id, -40, None)).await;
    assert_ledger_matches(&s, w.id).await;
    assert_ledger_matches(&s, spare.id).await;
}

/// A deleted default is replaced by the next wallet of its currency; restoring it then does
/// not make a second default.
pub async fn restore_keeps_one_default(s: Stores) {
    let user = create(&s, new_user()).await;
    let first = only_wallet(&s, user.id).await;
    s.wallets.delete(first.id, now(), None).await.unwrap();
    let second = s
        .wallets
        .create(new_wallet(user.id, "usd"), None)
        .await
        .unwrap();
    assert!(second.is_default);
    let restored = s.wallets.restore(first.id, now(), None).await.unwrap();
    assert!(!restored.is_default);
    let defaults: Vec<_> = s
        .wallets
        .list_for_user(user.id, false)
        .await
        .unwrap()
        .into_iter()
        .filter(|w| w.is_default)
        .map(|w| w.id)
        .collect();
    assert_eq!(defaults, vec![second.id]);
}

// ---------------------------------------------------------------------------------------------
// Idempotency

pub async fn idempotent_replay_returns_the_same_entry(s: Stores) {
    let admin = create(&s, new_user()).await;
    let other_admin = create(&s, new_user()).await;
    let user = create(&s, new_user()).await;
    let w = only_wallet(&s, user.id).await;

    let first = apply(&s, keyed(change(w.id, 70, Some(admin.id)), admin.id, "k-1")).await;
    assert!(!first.replayed);
    assert_eq!(first.entry.idempotency_key.as_deref(), Some("k-1"));
    // A replay has a new entry id and time, but the same request: the first entry comes back.
    let mut replay = keyed(change(w.id, 70, Some(admin.id)), admin.id, "k-1");
    replay.now = now() + Duration::seconds(3);
    let second = apply(&s, replay).await;
    assert_eq!(
        second,
        Posted {
            entry: first.entry.clone(),
            replayed: true
        }
    );
    assert_eq!(wallet(&s, w.id).await.balance, 70);
    assert_eq!(all_entries(&s, w.id).await.len(), 1);

    // Keys are per scope: another actor's "k-1" is a new request.
    let theirs = apply(
        &s,
        keyed(
            change(w.id, 70, Some(other_admin.id)),
            other_admin.id,
            "k-1",
        ),
    )
    .await;
    assert!(!theirs.replayed);
    assert_ne!(theirs.entry.id, first.entry.id);

    // A refused change leaves no claim: the key can be used again.
    let refused = keyed(change(w.id, -1_000, None), admin.id, "k-2");
    assert_eq!(
        err(s.wallets.apply(refused).await),
        conflict(Conflict::InsufficientFunds)
    );
    let retried = apply(&s, keyed(change(w.id, 10, None), admin.id, "k-2")).await;
    assert!(!retried.replayed);

    // Transfers replay both halves.
    let spare = s
        .wallets
        .create(new_wallet(user.id, "usd"), None)
        .await
        .unwrap();
    let mut t = transfer(w.id, spare.id, 15, Some(admin.id));
    t.idempotency = Some(IdempotencyClaim {
        scope: admin.id,
        key: "t-1".into(),
        fingerprint: "transfer 15".into(),
    });
    let moved = s.wallets.transfer(t.clone()).await.unwrap();
    assert!(!moved.replayed);
    let again = NewTransfer {
        transfer_id: Uuid::now_v7(),
        debit_entry_id: Uuid::now_v7(),
        credit_entry_id: Uuid::now_v7(),
        ..t
    };
    let replayed = s.wallets.transfer(again).await.unwrap();
    assert!(replayed.replayed);
    assert_eq!(replayed.transfer_id, moved.transfer_id);
    assert_eq!(replayed.debit, moved.debit);
    assert_eq!(replayed.credit, moved.credit);
    assert_eq!(wallet(&s, spare.id).await.balance, 15);
    assert_ledger_matches(&s, w.id).await;
    assert_ledger_matches(&s, spare.id).await;
}

pub async fn idempotency_mismatch_is_detected(s: Stores) {
    let admin = create(&s, new_user()).await;
    let user = create(&s, new_user()).await;
    let w = only_wallet(&s, user.id).await;
    apply(&s, keyed(change(w.id, 70, None), admin.id, "same")).await;
    let different = keyed(change(w.id, 71, None), admin.id, "same");
    assert_eq!(
        err(s.wallets.apply(different).await),
        conflict(Conflict::IdempotencyMismatch)
    );
    let mut t = transfer(w.id, w.id, 1, None);
    t.to_wallet = s
        .wallets
        .create(new_wallet(user.id, "usd"), None)
        .await
        .unwrap()
        .id;
    t.idempotency = Some(IdempotencyClaim {
        scope: admin.id,
        key: "same".into(),
        fingerprint: "a transfer".into(),
    });
    assert_eq!(
        err(s.wallets.transfer(t).await),
        conflict(Conflict::IdempotencyMismatch)
    );
    assert_eq!(wallet(&s, w.id).await.balance, 70);
    assert_eq!(assert_ledger_matches(&s, w.id).await.len(), 1);
}

/// `ChangeTarget::DefaultOf` opens the default wallet in the same transaction as the change,
/// and not at all when the change is refused.
pub async fn default_target_opens_wallet_only_with_the_change(s: Stores) {
    let user = create(&s, new_user()).await;
    let refused = BalanceChange {
        target: ChangeTarget::DefaultOf(new_wallet(user.id, "sat")),
        ..change(Uuid::nil(), -5, None)
    };
    assert_eq!(
        err(s.wallets.apply(refused).await),
        conflict(Conflict::InsufficientFunds)
    );
    assert_eq!(
        s.wallets.list_for_user(user.id, true).await.unwrap().len(),
        1
    );

    let template = new_wallet(user.id, "sat");
    let opened = apply(
        &s,
        BalanceChange {
            target: ChangeTarget::DefaultOf(template.clone()),
            ..change(Uuid::nil(), 5_000, None)
        },
    )
    .await;
    assert_eq!(opened.entry.wallet_id, template.id);
    let sats = wallet(&s, template.id).await;
    assert!(sats.is_default);
    assert_eq!(sats.currency, "sat");
    assert_eq!(sats.balance, 5_000);

    // The existing default is used from now on.
    let reused = apply(
        &s,
        BalanceChange {
            target: ChangeTarget::DefaultOf(new_wallet(user.id, "sat")),
            ..change(Uuid::nil(), -1_000, None)
        },
    )
    .await;
    assert_eq!(reused.entry.wallet_id, template.id);
    assert_eq!(reused.entry.balance_after, 4_000);
    assert_eq!(
        s.wallets.list_for_user(user.id, true).await.unwrap().len(),
        2
    );

    assert_eq!(
        err(s
            .wallets
            .apply(BalanceChange {
                target: ChangeTarget::DefaultOf(new_wallet(Uuid::now_v7(), "sat")),
                ..change(Uuid::nil(), 5, None)
            })
            .await),
        RepoError::NotFound
    );
    assert_ledger_matches(&s, template.id).await;
}

// ---------------------------------------------------------------------------------------------
// Transfers

pub async fn transfer_moves_both_and_conserves(s: Stores) {
    let alice = create(&s, new_user()).await;
    let bob = create(&s, new_user()).await;
    let a = only_wallet(&s, alice.id).await;
    let b = only_wallet(&s, bob.id).await;
    apply(&s, change(a.id, 1_000, None)).await;

    let t = transfer(a.id, b.id, 300, Some(alice.id));
    let moved = s.wallets.transfer(t.clone()).await.unwrap();
    assert_eq!(moved.transfer_id, t.transfer_id);
    assert!(!moved.replayed);
    let expected_debit = LedgerEntry {
        id: t.debit_entry_id,
        wallet_id: a.id,
        amount: -300,
        balance_after: 700,
        kind: EntryKind::TransferOut,
        reason: "move".into(),
        actor_id: Some(alice.id),
        transfer_id: Some(t.transfer_id),
        idempotency_key: None,
        created_at: t.now,
    };
    assert_eq!(moved.debit, expected_debit);
    assert_eq!(
        moved.credit,
        LedgerEntry {
            id: t.credit_entry_id,
            wallet_id: b.id,
            amount: 300,
            balance_after: 300,
            kind: EntryKind::TransferIn,
            ..expected_debit
        }
    );
    assert_eq!(wallet(&s, a.id).await.balance, 700);
    assert_eq!(wallet(&s, b.id).await.balance, 300);

    assert_eq!(
        err(s.wallets.transfer(transfer(a.id, b.id, 701, None)).await),
        conflict(Conflict::InsufficientFunds)
    );
    assert_eq!(
        err(s
            .wallets
            .transfer(transfer(a.id, Uuid::now_v7(), 1, None))
            .await),
        RepoError::NotFound
    );
    assert_eq!(
        err(s
            .wallets
            .transfer(transfer(Uuid::now_v7(), b.id, 1, None))
            .await),
        RepoError::NotFound
    );
    // An invoiced source may go below zero.
    s.users
        .set_invoicing(alice.id, true, false, now(), None)
        .await
        .unwrap();
    s.wallets
        .transfer(transfer(a.id, b.id, 900, None))
        .await
        .unwrap();
    assert_eq!(wallet(&s, a.id).await.balance, -200);
    assert_eq!(wallet(&s, b.id).await.balance, 1_200);
    assert_ledger_matches(&s, a.id).await;
    assert_ledger_matches(&s, b.id).await;
}

pub async fn transfer_across_currencies_is_refused(s: Stores) {
    let user = create(&s, new_user()).await;
    let usd = only_wallet(&s, user.id).await;
    let sat = s
        .wallets
        .create(new_wallet(user.id, "sat"), None)
        .await
        .unwrap();
    apply(&s, change(usd.id, 100, None)).await;
    apply(&s, change(sat.id, 100, None)).await;
    assert_eq!(
        err(s.wallets.transfer(transfer(usd.id, sat.id, 10, None)).await),
        conflict(Conflict::CurrencyMismatch)
    );
    assert_eq!(wallet(&s, usd.id).await.balance, 100);
    assert_eq!(wallet(&s, sat.id).await.balance, 100);
    assert_eq!(assert_ledger_matches(&s, usd.id).await.len(), 1);
    assert_eq!(assert_ledger_matches(&s, sat.id).await.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Ledger paging

pub async fn ledger_is_newest_first_and_pages_by_cursor(s: Stores) {
    let user = create(&s, new_user()).await;
    let w = only_wallet(&s, user.id).await;
    let other = s
        .wallets
        .create(new_wallet(user.id, "usd"), None)
        .await
        .unwrap();
    let t0 = now();
    let mut expected = Vec::new();
    for i in 0..7i64 {
        // Pairs share an instant: ties are broken by id, descending.
        let mut c = change(w.id, i + 1, None);
        c.now = t0 + Duration::seconds(i / 2);
        expected.push(apply(&s, c).await.entry);
    }
    apply(&s, change(other.id, 9, None)).await;
    expected.sort_by_key(|e| std::cmp::Reverse((e.created_at, e.id)));

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s.wallets.ledger(w.id, after, 3).await.unwrap();
        assert!(page.len() <= 3);
        if page.is_empty() {
            break;
        }
        after = page.last().map(LedgerCursor::after);
        seen.extend(page);
    }
    assert_eq!(seen, expected);
    assert_eq!(s.wallets.ledger(w.id, None, 100).await.unwrap(), expected);
    assert!(s
        .wallets
        .ledger(Uuid::now_v7(), None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_ledger_matches(&s, w.id).await;
}

// ---------------------------------------------------------------------------------------------
// Purge and summaries

pub async fn purge_removes_wallets_and_ledger(s: Stores) {
    let doomed = create(&s, new_user()).await;
    let keeper = create(&s, new_user()).await;
    let dw = only_wallet(&s, doomed.id).await;
    let kw = only_wallet(&s, keeper.id).await;
    let extra = s
        .wallets
        .create(new_wallet(doomed.id, "sat"), None)
        .await
        .unwrap();
    apply(&s, change(dw.id, 500, Some(doomed.id))).await;
    apply(&s, change(extra.id, 5, Some(doomed.id))).await;
    // The keeper adjusts the doomed wallet under a key; the doomed user moves money to the
    // keeper and adjusts the keeper's wallet under a key of its own.
    apply(&s, keyed(change(dw.id, 1, Some(keeper.id)), keeper.id, "k")).await;
    s.wallets
        .transfer(transfer(dw.id, kw.id, 200, Some(doomed.id)))
        .await
        .unwrap();
    let by_doomed = apply(&s, keyed(change(kw.id, 3, Some(doomed.id)), doomed.id, "d")).await;

    s.users.purge(doomed.id, None).await.unwrap();

    for id in [dw.id, extra.id] {
        assert_eq!(err(s.wallets.get(id).await), RepoError::NotFound);
        assert!(s.wallets.ledger(id, None, 10).await.unwrap().is_empty());
    }
    assert!(s
        .wallets
        .list_for_user(doomed.id, true)
        .await
        .unwrap()
        .is_empty());
    // What the doomed user did elsewhere stays, without the actor.
    let kept = assert_ledger_matches(&s, kw.id).await;
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|e| e.actor_id.is_none()));
    assert!(kept.iter().any(|e| e.id == by_doomed.entry.id));
    assert_eq!(wallet(&s, kw.id).await.balance, 203);
    // The keeper's key pointed into a purged wallet: it is gone with it, so the same request
    // now finds no wallet instead of replaying a vanished entry.
    assert_eq!(
        err(s
            .wallets
            .apply(keyed(change(dw.id, 1, Some(keeper.id)), keeper.id, "k"))
            .await),
        RepoError::NotFound
    );
}

pub async fn summaries_show_default_balances_and_counts(s: Stores) {
    let user = create(&s, new_user()).await;
    let other = create(&s, new_user()).await;
    let main = only_wallet(&s, user.id).await;
    let spare = s
        .wallets
        .create(new_wallet(user.id, "usd"), None)
        .await
        .unwrap();
    let sats = s
        .wallets
        .create(new_wallet(user.id, "sat"), None)
        .await
        .unwrap();
    let gone = s
        .wallets
        .create(new_wallet(user.id, "sat"), None)
        .await
        .unwrap();
    apply(&s, change(main.id, 12_500_000, None)).await;
    apply(&s, change(spare.id, 7, None)).await;
    apply(&s, change(sats.id, 60_000, None)).await;
    s.wallets.delete(gone.id, now(), None).await.unwrap();

    let summaries = s
        .wallets
        .summaries(&[user.id, other.id, Uuid::now_v7()])
        .await
        .unwrap();
    let mine = &summaries[&user.id];
    assert_eq!(mine.wallet_count, 3);
    assert_eq!(
        mine.balances,
        BTreeMap::from([("sat".to_owned(), 60_000), ("usd".to_owned(), 12_500_000)])
    );
    assert_eq!(summaries[&other.id].wallet_count, 1);
    assert_eq!(summaries[&other.id].balances["usd"], 0);
    assert_eq!(summaries.len(), 2);
    assert!(s.wallets.summaries(&[]).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Audit events of wallet changes

/// Each wallet change writes the event it carries, with the change: creation, soft delete,
/// restore, adjustments (completed with the wallet and the balance after, also when the change
/// opened a default wallet) and transfers (completed with both balances after).
pub async fn wallet_changes_record_their_audit_event(s: Stores) {
    let admin = create(&s, new_user()).await;
    let user = create(&s, new_user()).await;
    let other = create(&s, new_user()).await;
    let w = only_wallet(&s, user.id).await;
    assert_eq!(audit_trail(&s).await, vec![]);
    let by_admin = |owner, action| money_event(Some(admin.id), owner, action);

    // Creation, soft delete, restore.
    let created = by_admin(user.id, AuditAction::WalletCreated);
    let spare = s
        .wallets
        .create(new_wallet(user.id, "usd"), Some(created.clone()))
        .await
        .unwrap();
    assert_eq!(audit_trail(&s).await, vec![created.clone()]);
    let deleted = by_admin(user.id, AuditAction::WalletDeleted);
    s.wallets
        .delete(spare.id, now(), Some(deleted.clone()))
        .await
        .unwrap();
    assert_eq!(stored_event(&s, deleted.id).await, deleted);
    let restored = by_admin(user.id, AuditAction::WalletRestored);
    s.wallets
        .restore(spare.id, now(), Some(restored.clone()))
        .await
        .unwrap();
    assert_eq!(stored_event(&s, restored.id).await, restored);

    // An adjustment: the event gets the wallet and the balance after.
    let credit = by_admin(user.id, AuditAction::WalletAdjusted);
    let posted = apply(&s, audited(change(w.id, 700, Some(admin.id)), &credit)).await;
    assert_eq!(
        stored_event(&s, credit.id).await,
        completed(
            credit.clone(),
            &[
                ("wallet_id", w.id.to_string()),
                ("balance_after", "700".into())
            ]
        )
    );
    assert_eq!(posted.entry.balance_after, 700);
    let debit = by_admin(user.id, AuditAction::WalletAdjusted);
    apply(&s, audited(change(w.id, -200, Some(admin.id)), &debit)).await;
    assert_eq!(
        stored_event(&s, debit.id).await.changes["balance_after"].after,
        Some("500".into())
    );

    // A change to a default wallet that does not exist yet names the wallet it opened.
    let template = new_wallet(user.id, "sat");
    let opening = by_admin(user.id, AuditAction::WalletAdjusted);
    apply(
        &s,
        audited(
            BalanceChange {
                target: ChangeTarget::DefaultOf(template.clone()),
                ..change(Uuid::nil(), 3_000, Some(admin.id))
            },
            &opening,
        ),
    )
    .await;
    assert_eq!(
        stored_event(&s, opening.id).await,
        completed(
            opening.clone(),
            &[
                ("wallet_id", template.id.to_string()),
                ("balance_after", "3000".into())
            ]
        )
    );
    // And the existing default once it exists.
    let topped = by_admin(user.id, AuditAction::WalletAdjusted);
    apply(
        &s,
        audited(
            BalanceChange {
                target: ChangeTarget::DefaultOf(new_wallet(user.id, "sat")),
                ..change(Uuid::nil(), 1_000, Some(admin.id))
            },
            &topped,
        ),
    )
    .await;
    let topped_stored = stored_event(&s, topped.id).await;
    assert_eq!(
        topped_stored.changes["wallet_id"].after,
        Some(template.id.to_string())
    );
    assert_eq!(
        topped_stored.changes["balance_after"].after,
        Some("4000".into())
    );

    // A transfer to another user's wallet: one event, both balances after.
    let theirs = only_wallet(&s, other.id).await;
    let moved = by_admin(user.id, AuditAction::WalletTransferred);
    let t = NewTransfer {
        audit: Some(moved.clone()),
        ..transfer(w.id, theirs.id, 150, Some(admin.id))
    };
    s.wallets.transfer(t).await.unwrap();
    assert_eq!(
        stored_event(&s, moved.id).await,
        completed(
            moved.clone(),
            &[
                ("from_balance_after", "350".into()),
                ("to_balance_after", "150".into())
            ]
        )
    );

    // Exactly these events, each once; times and ids as given.
    let trail = audit_trail(&s).await;
    let mut ids: Vec<Uuid> = trail.iter().map(|e| e.id).collect();
    ids.sort();
    let mut want = vec![
        created.id,
        deleted.id,
        restored.id,
        credit.id,
        debit.id,
        opening.id,
        topped.id,
        moved.id,
    ];
    want.sort();
    assert_eq!(ids, want);
    for id in [w.id, spare.id, template.id, theirs.id] {
        assert_ledger_matches(&s, id).await;
    }
}

/// An idempotent replay writes no second event, and a refused or no-op change writes none.
pub async fn replays_and_refusals_record_no_wallet_event(s: Stores) {
    let admin = create(&s, new_user()).await;
    let user = create(&s, new_user()).await;
    let w = only_wallet(&s, user.id).await;
    let spare = s
        .wallets
        .create(new_wallet(user.id, "usd"), None)
        .await
        .unwrap();
    let sats = s
        .wallets
        .create(new_wallet(user.id, "sat"), None)
        .await
        .unwrap();
    let gone = s
        .wallets
        .create(new_wallet(user.id, "usd"), None)
        .await
        .unwrap();
    s.wallets.delete(gone.id, now(), None).await.unwrap();
    apply(&s, change(w.id, 100, None)).await;
    assert_eq!(audit_trail(&s).await, vec![]);
    let e = |action| money_event(Some(admin.id), user.id, action);

    // Replays: the first keyed change writes its event, the repeats (with new events) none.
    let first = e(AuditAction::WalletAdjusted);
    let original = apply(
        &s,
        audited(
            keyed(change(w.id, 10, Some(admin.id)), admin.id, "k"),
            &first,
        ),
    )
    .await;
    assert!(!original.replayed);
    for _ in 0..2 {
        let again = keyed(change(w.id, 10, Some(admin.id)), admin.id, "k");
        let replay = apply(&s, audited(again, &e(AuditAction::WalletAdjusted))).await;
        assert!(replay.replayed);
    }
    let moved = e(AuditAction::WalletTransferred);
    let claim = IdempotencyClaim {
        scope: admin.id,
        key: "t".into(),
        fingerprint: "transfer 5".into(),
    };
    let keyed_transfer = |event: &AuditEvent| NewTransfer {
        idempotency: Some(claim.clone()),
        audit: Some(event.clone()),
        ..transfer(w.id, spare.id, 5, Some(admin.id))
    };
    assert!(
        !s.wallets
            .transfer(keyed_transfer(&moved))
            .await
            .unwrap()
            .replayed
    );
    let replayed = s
        .wallets
        .transfer(keyed_transfer(&e(AuditAction::WalletTransferred)))
        .await
        .unwrap();
    assert!(replayed.replayed);
    let trail: Vec<Uuid> = audit_trail(&s).await.iter().map(|e| e.id).collect();
    assert_eq!(trail.len(), 2, "{trail:?}");
    assert!(trail.contains(&first.id) && trail.contains(&moved.id));

    // Refusals, each carrying an event.
    let adjusted = || e(AuditAction::WalletAdjusted);
    let refused_changes: Vec<(BalanceChange, RepoError)> = vec![
        (
            change(w.id, -1_000, None),
            conflict(Conflict::InsufficientFunds),
        ),
        (
            keyed(change(w.id, 11, None), admin.id, "k"),
            conflict(Conflict::IdempotencyMismatch),
        ),
        (change(gone.id, 5, None), conflict(Conflict::WalletDeleted)),
        (change(Uuid::now_v7(), 5, None), RepoError::NotFound),
        (
            change(w.id, i64::MAX, None),
            conflict(Conflict::BalanceOverflow),
        ),
        (
            BalanceChange {
                target: ChangeTarget::DefaultOf(new_wallet(user.id, "eur")),
                ..change(Uuid::nil(), -5, None)
            },
            conflict(Conflict::InsufficientFunds),
        ),
        (
            BalanceChange {
                target: ChangeTarget::DefaultOf(new_wallet(Uuid::now_v7(), "usd")),
                ..change(Uuid::nil(), 5, None)
            },
            RepoError::NotFound,
        ),
    ];
    for (c, want) in refused_changes {
        let what = format!("{c:?}");
        assert_eq!(
            err(s.wallets.apply(audited(c, &adjusted())).await),
            want,
            "{what}"
        );
    }
    let transferred = || Some(e(AuditAction::WalletTransferred));
    let refused_transfers: Vec<(NewTransfer, RepoError)> = vec![
        (
            transfer(w.id, spare.id, 1_000, None),
            conflict(Conflict::InsufficientFunds),
        ),
        (
            transfer(w.id, sats.id, 1, None),
            conflict(Conflict::CurrencyMismatch),
        ),
        (
            transfer(w.id, gone.id, 1, None),
            conflict(Conflict::WalletDeleted),
        ),
        (transfer(w.id, Uuid::now_v7(), 1, None), RepoError::NotFound),
        (
            NewTransfer {
                idempotency: Some(IdempotencyClaim {
                    fingerprint: "another transfer".into(),
                    ..claim.clone()
                }),
                ..transfer(w.id, spare.id, 1, None)
            },
            conflict(Conflict::IdempotencyMismatch),
        ),
    ];
    for (t, want) in refused_transfers {
        let t = NewTransfer {
            audit: transferred(),
            ..t
        };
        let what = format!("{t:?}");
        assert_eq!(err(s.wallets.transfer(t).await), want, "{what}");
    }
    assert_eq!(
        err(s
            .wallets
            .create(
                new_wallet(Uuid::now_v7(), "usd"),
                Some(e(AuditAction::WalletCreated))
            )
            .await),
        RepoError::NotFound
    );
    // Deleting a deleted wallet changes nothing and records nothing; so do failed restores.
    s.wallets
        .delete(gone.id, now(), Some(e(AuditAction::WalletDeleted)))
        .await
        .unwrap();
    assert_eq!(
        err(s
            .wallets
            .delete(Uuid::now_v7(), now(), Some(e(AuditAction::WalletDeleted)))
            .await),
        RepoError::NotFound
    );
    assert_eq!(
        err(s
            .wallets
            .restore(w.id, now(), Some(e(AuditAction::WalletRestored)))
            .await),
        conflict(Conflict::WalletState)
    );
    assert_eq!(
        err(s
            .wallets
            .restore(Uuid::now_v7(), now(), Some(e(AuditAction::WalletRestored)))
            .await),
        RepoError::NotFound
    );

    // Still just the two events, and nothing moved.
    assert_eq!(audit_trail(&s).await.len(), 2);
    assert_eq!(wallet(&s, w.id).await.balance, 105);
    assert_eq!(wallet(&s, spare.id).await.balance, 5);
    assert_eq!(
        s.wallets.list_for_user(user.id, true).await.unwrap().len(),
        4
    );
    for id in [w.id, spare.id, sats.id, gone.id] {
        assert_ledger_matches(&s, id).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Concurrency

/// Sixty concurrent adjustments, credits and debits, on one wallet: the balance is exactly the
/// sum of the accepted ones, each refusal is `InsufficientFunds`, and it never went negative.
pub async fn concurrent_adjustments_keep_the_balance_exact(s: Stores) {
    let user = create(&s, new_user()).await;
    let w = only_wallet(&s, user.id).await;
    apply(&s, change(w.id, 50, None)).await;
    let tasks: Vec<_> = (0..60i64)
        .map(|i| {
            let amount = if i % 3 == 0 { 40 } else { -25 - i % 7 };
            let s = s.clone();
            // Each change carries an event whose id is its entry's.
            let mut c = change(w.id, amount, None);
            c.audit = Some(AuditEvent {
                id: c.entry_id,
                ..money_event(None, user.id, AuditAction::WalletAdjusted)
            });
            tokio::spawn(async move { (amount, s.wallets.apply(c).await) })
        })
        .collect();
    let mut accepted = vec![50i64];
    let mut ids = HashSet::new();
    for task in tasks {
        match task.await.unwrap() {
            (amount, Ok(posted)) => {
                accepted.push(amount);
                ids.insert(posted.entry.id);
            }
            (amount, Err(e)) => {
                assert!(amount < 0, "a credit was refused: {e:?}");
                assert_eq!(e, conflict(Conflict::InsufficientFunds));
            }
        }
    }
    assert!(accepted.iter().any(|a| *a < 0), "no debit got through");
    assert!(accepted.len() < 61, "no debit was refused");
    let entries = assert_ledger_matches(&s, w.id).await;
    assert_eq!(wallet(&s, w.id).await.balance, accepted.iter().sum::<i64>());
    assert_eq!(entries.len(), accepted.len());
    assert!(entries.iter().all(|e| e.balance_after >= 0));
    assert!(ids.iter().all(|id| entries.iter().any(|e| e.id == *id)));
    // One event per accepted change, none for a refused one, each with its entry's balance.
    let trail = audit_trail(&s).await;
    assert_eq!(trail.len(), ids.len());
    for event in trail {
        let entry = entries
            .iter()
            .find(|e| e.id == event.id)
            .expect("an event for an applied change");
        assert_eq!(
            event.changes["balance_after"].after,
            Some(entry.balance_after.to_string())
        );
    }
}

/// Twenty concurrent replays of one keyed request: one entry, every caller gets it.
pub async fn concurrent_replays_create_one_entry(s: Stores) {
    let admin = create(&s, new_user()).await;
    let user = create(&s, new_user()).await;
    let w = only_wallet(&s, user.id).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            let c = keyed(change(w.id, 25, Some(admin.id)), admin.id, "once");
            let c = audited(
                c,
                &money_event(Some(admin.id), user.id, AuditAction::WalletAdjusted),
            );
            tokio::spawn(async move { s.wallets.apply(c).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap().unwrap());
    }
    let originals = results.iter().filter(|p| !p.replayed).count();
    assert_eq!(originals, 1);
    assert!(results.iter().all(|p| p.entry == results[0].entry));
    assert_eq!(wallet(&s, w.id).await.balance, 25);
    assert_eq!(assert_ledger_matches(&s, w.id).await.len(), 1);
    // One audit event, too.
    assert_eq!(audit_trail(&s).await.len(), 1);
}

/// Forty concurrent transfers back and forth between two wallets: the total is conserved and
/// nothing deadlocks.
pub async fn concurrent_opposite_transfers_conserve(s: Stores) {
    let alice = create(&s, new_user()).await;
    let bob = create(&s, new_user()).await;
    let a = only_wallet(&s, alice.id).await;
    let b = only_wallet(&s, bob.id).await;
    apply(&s, change(a.id, 100, None)).await;
    apply(&s, change(b.id, 100, None)).await;
    let tasks: Vec<_> = (0..40i64)
        .map(|i| {
            let s = s.clone();
            let (from, to) = if i % 2 == 0 {
                (a.id, b.id)
            } else {
                (b.id, a.id)
            };
            tokio::spawn(async move {
                s.wallets
                    .transfer(transfer(from, to, 7 + i % 5, None))
                    .await
            })
        })
        .collect();
    for task in tasks {
        match task.await.unwrap() {
            Ok(t) => assert_eq!(t.debit.amount, -t.credit.amount),
            Err(e) => assert_eq!(e, conflict(Conflict::InsufficientFunds)),
        }
    }
    let (wa, wb) = (wallet(&s, a.id).await, wallet(&s, b.id).await);
    assert_eq!(wa.balance + wb.balance, 200);
    assert!(wa.balance >= 0 && wb.balance >= 0);
    assert_ledger_matches(&s, a.id).await;
    assert_ledger_matches(&s, b.id).await;
}
