//! The audit events of wallet changes: written with the change, completed by the store, and
//! never for a replay, a refusal or a no-op.

use tessera_domain::model::{
    AuditAction, AuditEvent, BalanceChange, ChangeTarget, IdempotencyClaim, NewTransfer,
};
use tessera_domain::ports::RepoError;
use tessera_domain::Conflict;
use uuid::Uuid;

use super::{
    apply, assert_ledger_matches, audit_trail, audited, change, completed, conflict, keyed,
    money_event, new_wallet, only_wallet, stored_event, transfer, wallet,
};
use crate::contract::{create, err, new_user, now, Stores};

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
