//! Contract cases of deposit addresses (`UserRepository::assign_payment_address`) and deposits
//! (`WalletRepository::record_deposit`, `deposits`): a transfer is recorded once per chain
//! identity and credited once, whatever the concurrency; dust is ignored, unknown addresses are
//! unmatched; a purge keeps the record.

use std::collections::BTreeMap;

use tessera_domain::model::{
    AuditAction, AuditEvent, ChainRef, DepositQuery, DepositStatus, EntryKind, NewDeposit,
    DEFAULT_WALLET_NAME,
};
use uuid::Uuid;

use super::wallets::{all_entries, assert_ledger_matches, audit_trail, only_wallet};
use super::{create, new_user, now, Stores};

fn address(n: u8) -> String {
    // Any text does for the store; the service checks SS58.
    format!("5Deposit{n:02}Address")
}

/// A report of `amount_rao` worth `value` to `address`, in block `block`, extrinsic 1.
pub fn new_deposit(address: &str, block: &str, value: i64, reporter: Option<Uuid>) -> NewDeposit {
    NewDeposit {
        id: Uuid::now_v7(),
        chain: ChainRef {
            block: block.to_owned(),
            extrinsic_index: 1,
        },
        address: address.to_owned(),
        amount_rao: 1_000_000_000,
        rate_micros: 400_000_000,
        value,
        currency: "usd".to_owned(),
        dust: false,
        entry_id: Uuid::now_v7(),
        wallet_id: Uuid::now_v7(),
        wallet_name: DEFAULT_WALLET_NAME.to_owned(),
        reported_by: reporter,
        now: now(),
        audit: Some(AuditEvent {
            id: Uuid::now_v7(),
            at: now(),
            actor_id: reporter,
            target_id: None,
            action: AuditAction::DepositReported,
            changes: BTreeMap::new(),
        }),
    }
}

fn query(user_id: Option<Uuid>, status: Option<DepositStatus>) -> DepositQuery {
    DepositQuery {
        user_id,
        status,
        offset: 0,
        limit: 100,
    }
}

/// A user keeps the first address assigned; users without one are listed; two users cannot
/// hold one address.
pub async fn payment_addresses_are_assigned_once_and_unique(s: Stores) {
    let a = create(&s, new_user()).await;
    let b = create(&s, new_user()).await;
    let pending = s.users.without_payment_address(10).await.unwrap();
    assert!(pending.contains(&a.id) && pending.contains(&b.id));
    assert_eq!(
        s.users
            .assign_payment_address(a.id, &address(1))
            .await
            .unwrap(),
        address(1)
    );
    assert_eq!(
        s.users
            .assign_payment_address(a.id, &address(2))
            .await
            .unwrap(),
        address(1),
        "the first address stays"
    );
    assert_eq!(
        s.users.get(a.id).await.unwrap().payment_address,
        Some(address(1))
    );
    assert_eq!(
        s.users.without_payment_address(10).await.unwrap(),
        vec![b.id]
    );
    assert!(s
        .users
        .assign_payment_address(b.id, &address(1))
        .await
        .is_err());
    assert_eq!(s.users.get(b.id).await.unwrap().payment_address, None);
    assert!(s
        .users
        .assign_payment_address(Uuid::now_v7(), &address(3))
        .await
        .is_err());
}

/// A report credits the owner's default wallet with a `deposit` entry naming the transfer, and
/// writes its audit event (reporter as actor, owner as target); a second report of the same
/// transfer changes nothing and returns the first record.
pub async fn a_deposit_is_credited_once(s: Stores) {
    let reporter = create(&s, new_user()).await;
    let owner = create(&s, new_user()).await;
    s.users
        .assign_payment_address(owner.id, &address(1))
        .await
        .unwrap();
    let first = s
        .wallets
        .record_deposit(new_deposit(
            &address(1),
            "100",
            400_000_000,
            Some(reporter.id),
        ))
        .await
        .unwrap();
    assert!(!first.duplicate);
    let d = &first.deposit;
    assert_eq!(d.status, DepositStatus::Credited);
    assert_eq!(d.credited, 400_000_000);
    assert_eq!(d.user_id, Some(owner.id));
    assert_eq!(d.reported_by, Some(reporter.id));
    let w = only_wallet(&s, owner.id).await;
    assert_eq!(d.wallet_id, Some(w.id));
    assert_eq!(w.balance, 400_000_000);
    let entries = assert_ledger_matches(&s, w.id).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(Some(entries[0].id), d.entry_id);
    assert_eq!(entries[0].kind, EntryKind::Deposit);
    assert_eq!(entries[0].actor_id, Some(reporter.id));
    assert!(
        entries[0].reason.contains("block 100 extrinsic 1"),
        "{}",
        entries[0].reason
    );

    let again = s
        .wallets
        .record_deposit(new_deposit(&address(1), "100", 400_000_000, Some(owner.id)))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.deposit, first.deposit);
    assert_eq!(only_wallet(&s, owner.id).await.balance, 400_000_000);
    assert_eq!(all_entries(&s, w.id).await.len(), 1);

    let events: Vec<_> = audit_trail(&s)
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::DepositReported)
        .collect();
    assert_eq!(events.len(), 1, "one event, none for the duplicate");
    assert_eq!(events[0].actor_id, Some(reporter.id));
    assert_eq!(events[0].target_id, Some(owner.id));
    assert_eq!(
        events[0].changes["status"].after.as_deref(),
        Some("credited")
    );
    assert_eq!(
        events[0].changes["balance_after"].after.as_deref(),
        Some("400000000")
    );
    // The credit is in the event feed like any other ledger entry, once.
    let feed = crate::contract::all_events(&s).await;
    let credited: Vec<_> = feed
        .iter()
        .filter(|e| e.event_type == tessera_domain::model::EventType::WalletCredited)
        .collect();
    assert_eq!(credited.len(), 1, "{credited:?}");
    match &credited[0].payload {
        tessera_domain::model::EventPayload::Ledger(l) => {
            assert_eq!(l.kind, "deposit");
            assert_eq!(Some(l.entry_id), d.entry_id);
            assert_eq!((l.amount, l.balance_after), (400_000_000, 400_000_000));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(credited[0].subject_id, Some(owner.id));

    // Another extrinsic of the same block is another transfer.
    let mut other = new_deposit(&address(1), "100", 5, Some(reporter.id));
    other.chain.extrinsic_index = 2;
    let other = s.wallets.record_deposit(other).await.unwrap();
    assert!(!other.duplicate);
    assert_eq!(only_wallet(&s, owner.id).await.balance, 400_000_005);
}

/// Dust is recorded as `ignored` for its owner and credits nothing; an address nobody holds is
/// recorded as `unmatched`; listings filter by user and status, newest first.
pub async fn dust_is_ignored_and_unknown_addresses_are_unmatched(s: Stores) {
    let owner = create(&s, new_user()).await;
    s.users
        .assign_payment_address(owner.id, &address(1))
        .await
        .unwrap();
    let mut dust = new_deposit(&address(1), "7", 1, None);
    dust.dust = true;
    let dust = s.wallets.record_deposit(dust).await.unwrap();
    assert_eq!(dust.deposit.status, DepositStatus::Ignored);
    assert_eq!(dust.deposit.user_id, Some(owner.id));
    assert_eq!(dust.deposit.credited, 0);
    assert_eq!(dust.deposit.entry_id, None);
    // Worth nothing at this rate: ignored too.
    let zero = s
        .wallets
        .record_deposit(new_deposit(&address(1), "8", 0, None))
        .await
        .unwrap();
    assert_eq!(zero.deposit.status, DepositStatus::Ignored);
    let w = only_wallet(&s, owner.id).await;
    assert_eq!(w.balance, 0);
    assert!(all_entries(&s, w.id).await.is_empty());

    let stray = s
        .wallets
        .record_deposit(new_deposit(&address(9), "9", 10, None))
        .await
        .unwrap();
    assert_eq!(stray.deposit.status, DepositStatus::Unmatched);
    assert_eq!(stray.deposit.user_id, None);
    assert_eq!(stray.deposit.credited, 0);
    let again = s
        .wallets
        .record_deposit(new_deposit(&address(9), "9", 10, None))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.deposit.id, stray.deposit.id);

    let all = s.wallets.deposits(query(None, None)).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all
        .windows(2)
        .all(|p| (p[0].created_at, p[0].id) > (p[1].created_at, p[1].id)));
    let mine = s
        .wallets
        .deposits(query(Some(owner.id), None))
        .await
        .unwrap();
    assert_eq!(mine.len(), 2);
    let unmatched = s
        .wallets
        .deposits(query(None, Some(DepositStatus::Unmatched)))
        .await
        .unwrap();
    assert_eq!(unmatched.len(), 1);
    assert_eq!(unmatched[0].id, stray.deposit.id);
    let page = s
        .wallets
        .deposits(DepositQuery {
            offset: 1,
            limit: 1,
            ..query(None, None)
        })
        .await
        .unwrap();
    assert_eq!(page, vec![all[1].clone()]);
}

/// Twenty concurrent reports of one transfer: one credit, one entry, one event; every other
/// report is a duplicate returning that record.
pub async fn concurrent_reports_of_one_transfer_credit_once(s: Stores) {
    let owner = create(&s, new_user()).await;
    s.users
        .assign_payment_address(owner.id, &address(1))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            let d = new_deposit(&address(1), &format!("0x{}", "ab".repeat(32)), 1_234, None);
            tokio::spawn(async move { s.wallets.record_deposit(d).await })
        })
        .collect();
    let mut firsts = Vec::new();
    let mut records = Vec::new();
    for task in tasks {
        let reported = task.await.unwrap().unwrap();
        if !reported.duplicate {
            firsts.push(reported.deposit.id);
        }
        records.push(reported.deposit);
    }
    assert_eq!(firsts.len(), 1, "exactly one report is new");
    assert!(records.iter().all(|r| r.id == firsts[0]));
    let w = only_wallet(&s, owner.id).await;
    assert_eq!(w.balance, 1_234);
    assert_eq!(assert_ledger_matches(&s, w.id).await.len(), 1);
    let events = audit_trail(&s)
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::DepositReported)
        .count();
    assert_eq!(events, 1);
}

/// Purging the owner keeps the deposit's record (without its references), so the transfer
/// still cannot be credited again.
pub async fn purge_keeps_deposit_records(s: Stores) {
    let owner = create(&s, new_user()).await;
    s.users
        .assign_payment_address(owner.id, &address(1))
        .await
        .unwrap();
    let first = s
        .wallets
        .record_deposit(new_deposit(&address(1), "5", 10, Some(owner.id)))
        .await
        .unwrap();
    s.users.purge(owner.id, None).await.unwrap();
    let kept = s.wallets.deposits(query(None, None)).await.unwrap();
    assert_eq!(kept.len(), 1);
    let kept = &kept[0];
    assert_eq!(kept.id, first.deposit.id);
    assert_eq!(kept.status, DepositStatus::Credited);
    assert_eq!(
        (
            kept.user_id,
            kept.wallet_id,
            kept.entry_id,
            kept.reported_by
        ),
        (None, None, None, None)
    );
    let again = s
        .wallets
        .record_deposit(new_deposit(&address(1), "5", 10, None))
        .await
        .unwrap();
    assert!(again.duplicate);
}
