//! Default wallets, balance changes (the non-negative rule, overflow, soft delete and restore),
//! purge and summaries.

use std::collections::BTreeMap;

use tessera_domain::model::{EntryKind, LedgerEntry, Posted, Wallet};
use tessera_domain::ports::RepoError;
use tessera_domain::Conflict;
use time::Duration;
use uuid::Uuid;

use super::{
    all_entries, apply, assert_ledger_matches, change, conflict, keyed, new_wallet, only_wallet,
    transfer, wallet,
};
use crate::contract::{
    create, err, new_managed_user, new_user, now, start_session, Stores, UserBuilder,
};

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
    let dup = new_user().username(user.username.clone());
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

    let (sid, _) = start_session(&s, user.id).await;
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
