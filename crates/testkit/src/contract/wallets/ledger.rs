//! The ledger: idempotent entries, transfers, paging by cursor, and exact balances under
//! concurrent adjustments, replays and transfers.

use std::collections::HashSet;

use tessera_domain::model::{
    AuditAction, AuditEvent, BalanceChange, ChangeTarget, EntryKind, IdempotencyClaim,
    LedgerCursor, LedgerEntry, NewTransfer, Posted,
};
use tessera_domain::ports::RepoError;
use tessera_domain::Conflict;
use time::Duration;
use uuid::Uuid;

use super::{
    all_entries, apply, assert_ledger_matches, audit_trail, audited, change, conflict, keyed,
    money_event, new_wallet, only_wallet, transfer, wallet,
};
use crate::contract::{create, err, new_user, now, Stores};

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
