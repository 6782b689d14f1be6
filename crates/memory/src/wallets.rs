//! [`WalletRepository`] over the in-memory tables. Each method checks everything under the one
//! lock before it mutates anything, so a balance change and its entry (and a transfer's two
//! halves) land together or not at all, exactly like the Postgres transaction.

use std::collections::HashMap;

use async_trait::async_trait;
use tessera_domain::model::{
    AuditEvent, BalanceChange, ChangeTarget, Deposit, DepositQuery, DepositStatus, EntryKind,
    IdempotencyClaim, LedgerCursor, LedgerEntry, NewDeposit, NewTransfer, NewWallet, Posted,
    Reported, Transfer, User, Wallet, WalletSummary,
};
use tessera_domain::ports::{RepoError, RepoResult, WalletRepository};
use tessera_domain::Conflict;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::{check_entry, check_wallet, stored, IdempotencyRow, State};
use crate::MemoryStore;

pub(crate) fn new_wallet(state: &State, new: NewWallet) -> RepoResult<Wallet> {
    let owner = state.users.get(&new.user_id).ok_or(RepoError::NotFound)?;
    let now = stored(new.now);
    let wallet = Wallet {
        id: new.id,
        user_id: new.user_id,
        is_default: state
            .live_default(new.user_id, &new.currency, None)
            .is_none(),
        name: new.name,
        currency: new.currency,
        balance: 0,
        allow_negative: owner.user.invoicing,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
    check_wallet(&wallet)?;
    if state.wallets.contains_key(&wallet.id) {
        return Err(RepoError::internal(format!(
            "duplicate key value violates unique constraint \"wallets_pkey\": {}",
            wallet.id
        )));
    }
    Ok(wallet)
}

/// What a claim finds: nothing yet (go ahead), or the entry the key already produced.
fn replayed(state: &State, claim: Option<&IdempotencyClaim>) -> RepoResult<Option<LedgerEntry>> {
    let Some(claim) = claim else {
        return Ok(None);
    };
    let Some(row) = state.idempotency.get(&(claim.scope, claim.key.clone())) else {
        return Ok(None);
    };
    if row.fingerprint != claim.fingerprint {
        return Err(RepoError::Conflict(Conflict::IdempotencyMismatch));
    }
    state
        .ledger
        .get(&row.entry_id)
        .cloned()
        .map(Some)
        .ok_or_else(|| RepoError::internal("idempotency key without its entry"))
}

fn check_claim_scope(state: &State, claim: Option<&IdempotencyClaim>) -> RepoResult<()> {
    if let Some(claim) = claim {
        if !state.users.contains_key(&claim.scope) {
            return Err(RepoError::internal(
                "insert or update on table \"idempotency_keys\" violates foreign key constraint \"idempotency_keys_scope_fkey\"",
            ));
        }
    }
    Ok(())
}

fn actor_reference(state: &State, actor_id: Option<Uuid>) -> RepoResult<()> {
    if actor_id.is_some_and(|a| !state.users.contains_key(&a)) {
        return Err(RepoError::internal(
            "insert or update on table \"ledger_entries\" violates foreign key constraint \"ledger_entries_actor_id_fkey\"",
        ));
    }
    Ok(())
}

/// The balance after adding `amount`, or why it is refused.
fn moved(wallet: &Wallet, amount: i64) -> RepoResult<i64> {
    if wallet.deleted_at.is_some() {
        return Err(RepoError::Conflict(Conflict::WalletDeleted));
    }
    let after = wallet
        .balance
        .checked_add(amount)
        .ok_or(RepoError::Conflict(Conflict::BalanceOverflow))?;
    if after < 0 && !wallet.allow_negative {
        return Err(RepoError::Conflict(Conflict::InsufficientFunds));
    }
    Ok(after)
}

fn claim_row(
    state: &mut State,
    claim: Option<IdempotencyClaim>,
    entry_id: Uuid,
    now: OffsetDateTime,
) {
    if let Some(claim) = claim {
        state.idempotency.insert(
            (claim.scope, claim.key),
            IdempotencyRow {
                fingerprint: claim.fingerprint,
                entry_id,
                created_at: stored(now),
            },
        );
    }
}

/// One balance change with its entry, under the lock (`WalletRepository::apply`, and the credit
/// of a deposit).
pub(crate) fn apply_locked(state: &mut State, change: BalanceChange) -> RepoResult<Posted> {
    if let Some(entry) = replayed(&*state, change.idempotency.as_ref())? {
        return Ok(Posted {
            entry,
            replayed: true,
        });
    }
    check_claim_scope(&*state, change.idempotency.as_ref())?;
    actor_reference(&*state, change.actor_id)?;
    // A default wallet created here is only stored if the change is applied.
    let mut wallet = match &change.target {
        ChangeTarget::Wallet(id) => state.wallets.get(id).cloned().ok_or(RepoError::NotFound)?,
        ChangeTarget::DefaultOf(template) => {
            match state.live_default(template.user_id, &template.currency, None) {
                Some(id) => state.wallets.get(&id).cloned().ok_or(RepoError::NotFound)?,
                None => new_wallet(&*state, template.clone())?,
            }
        }
    };
    let now = stored(change.now);
    wallet.balance = moved(&wallet, change.amount)?;
    wallet.updated_at = now;
    let entry = LedgerEntry {
        id: change.entry_id,
        wallet_id: wallet.id,
        amount: change.amount,
        balance_after: wallet.balance,
        kind: change.kind,
        reason: change.reason.clone(),
        actor_id: change.actor_id,
        transfer_id: None,
        idempotency_key: change.idempotency.as_ref().map(|c| c.key.clone()),
        created_at: now,
    };
    check_entry(&entry)?;
    if state.ledger.contains_key(&entry.id) {
        return Err(RepoError::internal("duplicate ledger entry id"));
    }
    let event = change.audit_with(&entry);
    claim_row(state, change.idempotency, entry.id, change.now);
    state.wallets.insert(wallet.id, wallet);
    state.post_entry(entry.clone());
    state.record(event);
    Ok(Posted {
        entry,
        replayed: false,
    })
}

#[async_trait]
impl WalletRepository for MemoryStore {
    async fn create(&self, wallet: NewWallet, audit: Option<AuditEvent>) -> RepoResult<Wallet> {
        let mut state = self.lock();
        let wallet = new_wallet(&state, wallet)?;
        state.wallets.insert(wallet.id, wallet.clone());
        state.record(audit);
        Ok(wallet)
    }

    async fn get(&self, id: Uuid) -> RepoResult<Wallet> {
        self.lock()
            .wallets
            .get(&id)
            .cloned()
            .ok_or(RepoError::NotFound)
    }

    async fn get_with_owner(&self, id: Uuid) -> RepoResult<(Wallet, User)> {
        let state = self.lock();
        let wallet = state.wallets.get(&id).ok_or(RepoError::NotFound)?;
        let owner = state
            .users
            .get(&wallet.user_id)
            .ok_or(RepoError::NotFound)?;
        Ok((wallet.clone(), owner.user.clone()))
    }

    async fn list_for_user(&self, user_id: Uuid, include_deleted: bool) -> RepoResult<Vec<Wallet>> {
        let state = self.lock();
        let mut wallets: Vec<Wallet> = state
            .wallets
            .values()
            .filter(|w| w.user_id == user_id && (include_deleted || w.deleted_at.is_none()))
            .cloned()
            .collect();
        wallets.sort_by_key(|w| (w.created_at, w.id));
        Ok(wallets)
    }

    async fn summaries(&self, user_ids: &[Uuid]) -> RepoResult<HashMap<Uuid, WalletSummary>> {
        let state = self.lock();
        let mut out: HashMap<Uuid, WalletSummary> = HashMap::new();
        for wallet in state.wallets.values() {
            if wallet.deleted_at.is_some() || !user_ids.contains(&wallet.user_id) {
                continue;
            }
            out.entry(wallet.user_id).or_default().add(
                wallet.currency.clone(),
                wallet.is_default,
                wallet.balance,
            );
        }
        Ok(out)
    }

    async fn delete(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<Wallet> {
        let mut state = self.lock();
        let wallet = state.wallets.get_mut(&id).ok_or(RepoError::NotFound)?;
        if wallet.deleted_at.is_some() {
            // Already deleted: nothing changes, nothing is recorded.
            return Ok(wallet.clone());
        }
        let now = stored(now);
        wallet.deleted_at = Some(now);
        wallet.updated_at = now;
        let wallet = wallet.clone();
        state.record(audit);
        Ok(wallet)
    }

    async fn restore(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<Wallet> {
        let mut state = self.lock();
        let current = state.wallets.get(&id).ok_or(RepoError::NotFound)?;
        if current.deleted_at.is_none() {
            return Err(RepoError::Conflict(Conflict::WalletState));
        }
        let other_default = state
            .live_default(current.user_id, &current.currency, Some(id))
            .is_some();
        let wallet = state.wallets.get_mut(&id).ok_or(RepoError::NotFound)?;
        let now = stored(now);
        wallet.deleted_at = None;
        wallet.updated_at = now;
        wallet.is_default = wallet.is_default && !other_default;
        let wallet = wallet.clone();
        state.record(audit);
        Ok(wallet)
    }

    async fn apply(&self, change: BalanceChange) -> RepoResult<Posted> {
        let mut state = self.lock();
        apply_locked(&mut state, change)
    }

    async fn transfer(&self, t: NewTransfer) -> RepoResult<Transfer> {
        let mut state = self.lock();
        if let Some(debit) = replayed(&state, t.idempotency.as_ref())? {
            let credit = debit
                .transfer_id
                .and_then(|tid| {
                    state
                        .ledger
                        .values()
                        .find(|e| e.transfer_id == Some(tid) && e.kind == EntryKind::TransferIn)
                })
                .cloned()
                .ok_or_else(|| RepoError::internal("transfer without its credit"))?;
            return Ok(Transfer {
                transfer_id: credit.transfer_id.unwrap_or(t.transfer_id),
                debit,
                credit,
                replayed: true,
            });
        }
        if t.from_wallet == t.to_wallet {
            return Err(RepoError::internal("a transfer needs two wallets"));
        }
        check_claim_scope(&state, t.idempotency.as_ref())?;
        actor_reference(&state, t.actor_id)?;
        let mut from = state
            .wallets
            .get(&t.from_wallet)
            .cloned()
            .ok_or(RepoError::NotFound)?;
        let mut to = state
            .wallets
            .get(&t.to_wallet)
            .cloned()
            .ok_or(RepoError::NotFound)?;
        if from.deleted_at.is_some() || to.deleted_at.is_some() {
            return Err(RepoError::Conflict(Conflict::WalletDeleted));
        }
        if from.currency != to.currency {
            return Err(RepoError::Conflict(Conflict::CurrencyMismatch));
        }
        let debit_amount = t
            .amount
            .checked_neg()
            .ok_or(RepoError::Conflict(Conflict::BalanceOverflow))?;
        from.balance = moved(&from, debit_amount)?;
        to.balance = moved(&to, t.amount)?;
        let now = stored(t.now);
        from.updated_at = now;
        to.updated_at = now;
        let key = t.idempotency.as_ref().map(|c| c.key.clone());
        let entry = |id, wallet: &Wallet, amount, kind| LedgerEntry {
            id,
            wallet_id: wallet.id,
            amount,
            balance_after: wallet.balance,
            kind,
            reason: t.reason.clone(),
            actor_id: t.actor_id,
            transfer_id: Some(t.transfer_id),
            idempotency_key: key.clone(),
            created_at: now,
        };
        let debit = entry(
            t.debit_entry_id,
            &from,
            debit_amount,
            EntryKind::TransferOut,
        );
        let credit = entry(t.credit_entry_id, &to, t.amount, EntryKind::TransferIn);
        check_entry(&debit)?;
        check_entry(&credit)?;
        if debit.id == credit.id
            || state.ledger.contains_key(&debit.id)
            || state.ledger.contains_key(&credit.id)
        {
            return Err(RepoError::internal("duplicate ledger entry id"));
        }
        let event = t.audit_with(&debit, &credit);
        claim_row(&mut state, t.idempotency, debit.id, t.now);
        state.wallets.insert(from.id, from);
        state.wallets.insert(to.id, to);
        state.post_entry(debit.clone());
        state.post_entry(credit.clone());
        state.record(event);
        Ok(Transfer {
            transfer_id: t.transfer_id,
            debit,
            credit,
            replayed: false,
        })
    }

    async fn ledger(
        &self,
        wallet_id: Uuid,
        after: Option<LedgerCursor>,
        limit: u32,
    ) -> RepoResult<Vec<LedgerEntry>> {
        let state = self.lock();
        let mut entries: Vec<LedgerEntry> = state
            .ledger
            .values()
            .filter(|e| e.wallet_id == wallet_id)
            .filter(|e| after.is_none_or(|c| (e.created_at, e.id) < (c.created_at, c.id)))
            .cloned()
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse((e.created_at, e.id)));
        entries.truncate(limit as usize);
        Ok(entries)
    }

    async fn prune_idempotency_keys(&self, cutoff: OffsetDateTime, limit: u32) -> RepoResult<u64> {
        let mut state = self.lock();
        Ok(remove_created_before(
            &mut state.idempotency,
            |row| row.created_at,
            cutoff,
            limit,
        ))
    }

    async fn record_deposit(&self, new: NewDeposit) -> RepoResult<Reported> {
        let mut state = self.lock();
        if let Some(first) = state.deposits.get(&new.chain) {
            return Ok(Reported {
                deposit: first.clone(),
                duplicate: true,
            });
        }
        if new
            .reported_by
            .is_some_and(|r| !state.users.contains_key(&r))
        {
            return Err(RepoError::internal(
                "insert or update on table \"deposits\" violates foreign key constraint \"deposits_reported_by_fkey\"",
            ));
        }
        let mut deposit = new.unmatched();
        deposit.created_at = stored(new.now);
        let owner = state
            .users
            .values()
            .find(|row| row.user.payment_address.as_deref() == Some(new.address.as_str()))
            .map(|row| row.user.id);
        let mut balance_after = None;
        if let Some(user_id) = owner {
            deposit.user_id = Some(user_id);
            deposit.status = DepositStatus::Ignored;
            if new.creditable() {
                let posted = apply_locked(&mut state, new.credit(user_id))?;
                deposit.status = DepositStatus::Credited;
                deposit.credited = posted.entry.amount;
                deposit.wallet_id = Some(posted.entry.wallet_id);
                deposit.entry_id = Some(posted.entry.id);
                balance_after = Some(posted.entry.balance_after);
            }
        }
        let event = new.audit_with(&deposit, balance_after);
        state.deposits.insert(new.chain.clone(), deposit.clone());
        state.record(event);
        Ok(Reported {
            deposit,
            duplicate: false,
        })
    }

    async fn deposits(&self, query: DepositQuery) -> RepoResult<Vec<Deposit>> {
        let state = self.lock();
        let mut found: Vec<&Deposit> = state
            .deposits
            .values()
            .filter(|d| query.user_id.is_none() || d.user_id == query.user_id)
            .filter(|d| query.status.is_none_or(|s| d.status == s))
            .collect();
        found.sort_unstable_by_key(|d| std::cmp::Reverse((d.created_at, d.id)));
        Ok(found
            .into_iter()
            .skip(usize::try_from(query.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(query.limit).unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }
}

/// Removes up to `limit` rows created before `cutoff`, oldest first, and says how many went.
pub(crate) fn remove_created_before<K: std::hash::Hash + Eq + Ord + Clone, V>(
    rows: &mut HashMap<K, V>,
    created_at: impl Fn(&V) -> OffsetDateTime,
    cutoff: OffsetDateTime,
    limit: u32,
) -> u64 {
    let mut old: Vec<(OffsetDateTime, K)> = rows
        .iter()
        .map(|(k, row)| (created_at(row), k))
        .filter(|(at, _)| *at < cutoff)
        .map(|(at, k)| (at, k.clone()))
        .collect();
    old.sort_unstable();
    old.truncate(limit as usize);
    for (_, key) in &old {
        rows.remove(key);
    }
    old.len() as u64
}
