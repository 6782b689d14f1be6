use std::collections::HashMap;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::RepoResult;
use crate::model::{
    AuditEvent, BalanceChange, Deposit, DepositQuery, LedgerCursor, LedgerEntry, NewDeposit,
    NewTransfer, NewWallet, Posted, Reported, Transfer, User, Wallet, WalletSummary,
};

/// Storage of wallets and their ledger.
///
/// Invariants every implementation keeps, whatever the concurrency:
/// - a wallet's stored balance equals the sum of its ledger entries' amounts, and a balance
///   change commits together with its entry or not at all;
/// - a balance is below zero only if the wallet's `allow_negative` is set (it mirrors the
///   owner's `invoicing` flag);
/// - a user has at most one live default wallet per currency;
/// - an `Idempotency-Key` is used once per scope: a repeat with the same fingerprint returns
///   the first result (`replayed`) and changes nothing; with another fingerprint it is
///   `Conflict(IdempotencyMismatch)`. A change that fails leaves no claim behind.
///
/// Every method that changes something takes the audit event of the change and writes it in
/// the same transaction, only when the change happens: a refusal, a replay and a no-op (deleting
/// a deleted wallet) write none.
///
/// Purging a user (`UserRepository::purge`) removes its wallets, their ledger and the
/// idempotency keys it used.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait WalletRepository: Send + Sync {
    /// Inserts a wallet for an existing user. It becomes the user's default in its currency when
    /// the user has no live default there; `allow_negative` is copied from the user's
    /// `invoicing` flag. Records `audit` with it. Errors: `NotFound` (no such user),
    /// `Unavailable`.
    async fn create(&self, wallet: NewWallet, audit: Option<AuditEvent>) -> RepoResult<Wallet>;

    /// A wallet, deleted or not. Errors: `NotFound`, `Unavailable`.
    async fn get(&self, id: Uuid) -> RepoResult<Wallet>;

    /// A wallet, deleted or not, with its owner, in one round trip (every money request needs
    /// both to decide who may act). Errors: `NotFound`, `Unavailable`.
    async fn get_with_owner(&self, id: Uuid) -> RepoResult<(Wallet, User)>;

    /// The user's wallets, oldest first (ties by id); soft-deleted ones only when asked.
    /// Errors: `Unavailable`.
    async fn list_for_user(&self, user_id: Uuid, include_deleted: bool) -> RepoResult<Vec<Wallet>>;

    /// For each given user that has wallets: how many live wallets it has and the balance of
    /// each live default wallet. One round trip. Errors: `Unavailable`.
    async fn summaries(&self, user_ids: &[Uuid]) -> RepoResult<HashMap<Uuid, WalletSummary>>;

    /// Soft-deletes a live wallet and records `audit` (idempotent on a deleted one, which
    /// records nothing). The balance and ledger stay. Errors: `NotFound`, `Unavailable`.
    async fn delete(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<Wallet>;

    /// Restores a soft-deleted wallet and records `audit`. It stays the default only if the
    /// user has no other live default in its currency by now. Errors: `NotFound`,
    /// `Conflict(WalletState)` (it is not deleted), `Unavailable`.
    async fn restore(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<Wallet>;

    /// Applies one balance change and writes its ledger entry, atomically: the balance moves by
    /// `amount` only if the wallet is live and the result is not below zero (or the wallet may
    /// go negative). With `ChangeTarget::DefaultOf`, a missing default wallet is created in the
    /// same transaction (and not at all if the change is refused). With an idempotency claim,
    /// a repeat returns the first entry. Writes `change.audit_with(&entry)` with the entry (not on
    /// a replay).
    /// Errors: `NotFound` (wallet, or user for `DefaultOf`), `Conflict(WalletDeleted |
    /// InsufficientFunds | IdempotencyMismatch | BalanceOverflow)`, `Unavailable`.
    async fn apply(&self, change: BalanceChange) -> RepoResult<Posted>;

    /// Moves `amount` between two live wallets of one currency in one transaction, locking
    /// them in id order, and writes a debit and a credit entry sharing `transfer_id`, and
    /// `transfer.audit_with(&debit, &credit)` (not on a replay).
    /// Errors: `NotFound` (either wallet), `Conflict(WalletDeleted | CurrencyMismatch |
    /// InsufficientFunds | BalanceOverflow | IdempotencyMismatch)`, `Unavailable`.
    async fn transfer(&self, transfer: NewTransfer) -> RepoResult<Transfer>;

    /// Up to `limit` entries of a wallet, newest first (`created_at`, then id, descending),
    /// strictly after `after`. Errors: `Unavailable` (an unknown wallet has no entries).
    async fn ledger(
        &self,
        wallet_id: Uuid,
        after: Option<LedgerCursor>,
        limit: u32,
    ) -> RepoResult<Vec<LedgerEntry>>;

    /// Forgets up to `limit` `Idempotency-Key`s claimed before `cutoff` (a later request with
    /// such a key counts as new), and says how many went. The entries they produced stay.
    /// Errors: `Unavailable`.
    async fn prune_idempotency_keys(&self, cutoff: OffsetDateTime, limit: u32) -> RepoResult<u64>;

    /// Records a reported transfer once per chain identity (`deposit.chain`), atomically with
    /// its effect, whatever the concurrency (two reports at once, two server processes):
    /// - already recorded: nothing changes, and the first record comes back with `duplicate`;
    /// - no user holds `deposit.address`: recorded as `Unmatched`;
    /// - `deposit.dust`, or a value of zero: recorded as `Ignored` for the owner;
    /// - else the owner's live default wallet in `deposit.currency` (opened from the template if
    ///   it has none) is credited `deposit.value` with a `Deposit` ledger entry whose reason
    ///   names the transfer, whose actor is the reporter, recorded as `Credited`.
    ///
    /// A new record writes `deposit.audit` with the owner as target and `status`, `deposit_id`
    /// (and for a credit `wallet_id`, `entry_id`, `balance_after`) added to its changes.
    /// Errors: `Conflict(BalanceOverflow)`, `Unavailable`.
    async fn record_deposit(&self, deposit: NewDeposit) -> RepoResult<Reported>;

    /// Recorded deposits matching the query, newest first (`created_at`, then id).
    /// Errors: `Unavailable`.
    async fn deposits(&self, query: DepositQuery) -> RepoResult<Vec<Deposit>>;
}
