//! Contract cases of [`WalletRepository`](tessera_domain::ports::WalletRepository): default
//! wallets, exact balances with their ledger, the non-negative rule, overflow, soft delete,
//! idempotency, transfers, ledger paging, purge, and concurrency (`balances.rs`, `ledger.rs`),
//! and the audit events of wallet changes (`audit.rs`). This file holds their helpers.
//!
//! Every case that moves money ends by checking the ledger invariant with
//! [`assert_ledger_matches`]: the stored balance equals the sum of the wallet's entries.

use std::collections::BTreeMap;

use tessera_domain::model::{
    AuditAction, AuditEvent, AuditQuery, BalanceChange, ChangeTarget, EntryKind, FieldChange,
    IdempotencyClaim, LedgerCursor, LedgerEntry, NewTransfer, NewWallet, Posted, Wallet,
};
use tessera_domain::ports::RepoError;
use tessera_domain::Conflict;
use uuid::Uuid;

use super::{now, Stores};

mod audit;
pub use audit::*;

mod balances;
pub use balances::*;

mod ledger;
pub use ledger::*;

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
