//! [`WalletRepository`] on PostgreSQL.
//!
//! How balances stay exact:
//! - a balance moves only through one conditional `UPDATE … SET balance = balance + $amount
//!   WHERE id = $id AND deleted_at IS NULL AND (balance + $amount >= 0 OR allow_negative)
//!   RETURNING balance`, and the ledger entry (with that `balance_after`) is inserted in the same
//!   transaction; the row lock the UPDATE takes serialises concurrent changes of one wallet
//!   without any read-modify-write in the application;
//! - the table's `CHECK (balance >= 0 OR allow_negative)` enforces the non-negative rule again,
//!   and `bigint` arithmetic raises (SQLSTATE 22003) instead of wrapping;
//! - a plain change of a given wallet (no idempotency key) is one statement: the conditional
//!   `UPDATE`, the ledger entry and the audit event as data-modifying CTEs
//!   ([`APPLY_TO_WALLET_SQL`]); a single statement is atomic on its own, so it needs no
//!   `BEGIN`/`COMMIT` and costs one round trip instead of five;
//! - an idempotency key is claimed first in the same transaction with `INSERT … ON CONFLICT DO
//!   NOTHING`: a concurrent duplicate waits on the unique index until the first commits, then
//!   sees its row and answers with the first result;
//! - a transfer locks both wallets in id order (`SELECT … ORDER BY id FOR UPDATE`), so two
//!   opposite transfers cannot deadlock.

use std::collections::HashMap;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tessera_domain::error::Conflict;
use tessera_domain::model::{
    AuditEvent, BalanceChange, ChangeTarget, Deposit, DepositQuery, DepositStatus, EntryKind,
    IdempotencyClaim, LedgerCursor, LedgerEntry, NewDeposit, NewTransfer, NewWallet, Posted,
    Reported, Transfer, User, Wallet, WalletSummary,
};
use tessera_domain::ports::{RepoError, RepoResult, WalletRepository};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{map, TxError};
use crate::models::{DepositRow, LedgerEntryRow, UserRow, WalletRow};
use crate::prepared::Prepared;
use crate::schema::{deposits, idempotency_keys, ledger_entries, users, wallets};
use crate::PgStore;

/// Locks the user row against concurrent wallet creation and invoicing changes; returns the
/// user's `invoicing` flag. Errors: `NotFound`.
pub(crate) async fn lock_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> Result<bool, TxError> {
    users::table
        .find(user_id)
        .select(users::invoicing)
        .for_no_key_update()
        .first(conn)
        .await
        .optional()
        .map_err(map)?
        .ok_or(TxError(RepoError::NotFound))
}

/// The user's live default wallet in `currency`, other than `except`.
async fn live_default(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    currency: &str,
    except: Option<Uuid>,
) -> Result<Option<Uuid>, TxError> {
    let mut q = wallets::table
        .filter(wallets::user_id.eq(user_id))
        .filter(wallets::currency.eq(currency))
        .filter(wallets::is_default)
        .filter(wallets::deleted_at.is_null())
        .select(wallets::id)
        .into_boxed();
    if let Some(except) = except {
        q = q.filter(wallets::id.ne(except));
    }
    Ok(q.first(conn).await.optional().map_err(map)?)
}

/// Inserts a wallet inside a transaction: the default of its currency if the user has none,
/// `allow_negative` copied from the user. Errors: `NotFound` (no such user).
pub(crate) async fn insert_wallet(
    conn: &mut AsyncPgConnection,
    new: NewWallet,
) -> Result<Wallet, TxError> {
    let invoicing = lock_user(conn, new.user_id).await?;
    let has_default = live_default(conn, new.user_id, &new.currency, None)
        .await?
        .is_some();
    let row = WalletRow {
        id: new.id,
        user_id: new.user_id,
        name: new.name,
        currency: new.currency,
        is_default: !has_default,
        balance: 0,
        allow_negative: invoicing,
        created_at: new.now,
        updated_at: new.now,
        deleted_at: None,
    };
    let row: WalletRow = diesel::insert_into(wallets::table)
        .values(&row)
        .returning(WalletRow::as_returning())
        .get_result(conn)
        .await
        .map_err(map)?;
    Ok(row.into())
}

/// Claims an idempotency key for `entry_id`. `None`: the key is ours, go ahead. `Some(id)`: the
/// key already produced entry `id` for the same request. A different request under the key is
/// `Conflict(IdempotencyMismatch)`.
async fn claim(
    conn: &mut AsyncPgConnection,
    claim: &IdempotencyClaim,
    entry_id: Uuid,
    now: OffsetDateTime,
) -> Result<Option<Uuid>, TxError> {
    // A concurrent claim of the same key blocks here until its transaction ends.
    let inserted = diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::scope.eq(claim.scope),
            idempotency_keys::key.eq(&claim.key),
            idempotency_keys::fingerprint.eq(&claim.fingerprint),
            idempotency_keys::entry_id.eq(entry_id),
            idempotency_keys::created_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map_err(map)?;
    if inserted == 1 {
        return Ok(None);
    }
    // Read committed: this statement sees the row the winner committed.
    let (fingerprint, first): (String, Uuid) = idempotency_keys::table
        .find((claim.scope, &claim.key))
        .select((idempotency_keys::fingerprint, idempotency_keys::entry_id))
        .first(conn)
        .await
        .map_err(map)?;
    if fingerprint != claim.fingerprint {
        return Err(RepoError::Conflict(Conflict::IdempotencyMismatch).into());
    }
    Ok(Some(first))
}

async fn load_entry(conn: &mut AsyncPgConnection, id: Uuid) -> Result<LedgerEntry, TxError> {
    let row: LedgerEntryRow = ledger_entries::table
        .find(id)
        .select(LedgerEntryRow::as_select())
        .first(conn)
        .await
        .map_err(map)?;
    Ok(row.try_into()?)
}

pub(crate) async fn insert_entry(
    conn: &mut AsyncPgConnection,
    entry: &LedgerEntry,
) -> Result<LedgerEntry, TxError> {
    let row: LedgerEntryRow = diesel::insert_into(ledger_entries::table)
        .values(LedgerEntryRow::from(entry))
        .returning(LedgerEntryRow::as_returning())
        .get_result(conn)
        .await
        .map_err(map)?;
    Ok(row.try_into()?)
}

/// Moves a live wallet's balance by `amount` if the result is allowed; returns the new
/// balance, or `None` when the conditional update matched no row.
async fn move_balance(
    conn: &mut AsyncPgConnection,
    wallet_id: Uuid,
    amount: i64,
    now: OffsetDateTime,
) -> Result<Option<i64>, TxError> {
    Ok(diesel::update(
        wallets::table
            .find(wallet_id)
            .filter(wallets::deleted_at.is_null())
            .filter(
                (wallets::balance + amount)
                    .ge(0)
                    .or(wallets::allow_negative),
            ),
    )
    .set((
        wallets::balance.eq(wallets::balance + amount),
        wallets::updated_at.eq(now),
    ))
    .returning(wallets::balance)
    .get_result(conn)
    .await
    .optional()
    .map_err(map)?)
}

/// A change of one wallet in one statement: the conditional update, its ledger entry and, when
/// `$8` is set, its audit event (whose `balance_after` only the update knows; `||` lets it
/// replace the provisional value).
const APPLY_TO_WALLET_SQL: &str = "\
WITH moved AS (
    UPDATE wallets SET balance = balance + $3, updated_at = $7
    WHERE id = $2 AND deleted_at IS NULL AND (balance + $3 >= 0 OR allow_negative)
    RETURNING balance
), entry AS (
    INSERT INTO ledger_entries (id, wallet_id, amount, balance_after, kind, reason, actor_id,
                                transfer_id, idempotency_key, created_at)
    SELECT $1, $2, $3, moved.balance, $4, $5, $6, NULL, NULL, $7 FROM moved
    RETURNING id, wallet_id, amount, balance_after, kind, reason, actor_id, transfer_id,
              idempotency_key, created_at
), event AS (
    INSERT INTO audit_events (id, at, actor_id, target_id, action, changes)
    SELECT $8, $9, $10, $11, $12, $13 || jsonb_build_object('balance_after',
           jsonb_build_object('before', NULL::text, 'after', entry.balance_after::text))
    FROM entry WHERE $8 IS NOT NULL
)
SELECT id, wallet_id, amount, balance_after, kind, reason, actor_id, transfer_id,
       idempotency_key, created_at FROM entry";

/// [`APPLY_TO_WALLET_SQL`]: `None` when the update matched no row.
async fn apply_to_wallet(
    conn: &mut AsyncPgConnection,
    change: &BalanceChange,
    wallet_id: Uuid,
) -> Result<Option<LedgerEntry>, RepoError> {
    use diesel::sql_types::{BigInt, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
    let provisional = LedgerEntry {
        id: change.entry_id,
        wallet_id,
        amount: change.amount,
        balance_after: 0,
        kind: change.kind,
        reason: change.reason.clone(),
        actor_id: change.actor_id,
        transfer_id: None,
        idempotency_key: None,
        created_at: change.now,
    };
    let event = change.audit_with(&provisional);
    let changes = event.as_ref().map(crate::audit::changes_json).transpose()?;
    let row: Option<LedgerEntryRow> = Prepared(
        diesel::sql_query(APPLY_TO_WALLET_SQL)
            .bind::<SqlUuid, _>(change.entry_id)
            .bind::<SqlUuid, _>(wallet_id)
            .bind::<BigInt, _>(change.amount)
            .bind::<Text, _>(change.kind.as_str())
            .bind::<Text, _>(&change.reason)
            .bind::<Nullable<SqlUuid>, _>(change.actor_id)
            .bind::<Timestamptz, _>(change.now)
            .bind::<Nullable<SqlUuid>, _>(event.as_ref().map(|e| e.id))
            .bind::<Nullable<Timestamptz>, _>(event.as_ref().map(|e| e.at))
            .bind::<Nullable<SqlUuid>, _>(event.as_ref().and_then(|e| e.actor_id))
            .bind::<Nullable<SqlUuid>, _>(event.as_ref().and_then(|e| e.target_id))
            .bind::<Nullable<Text>, _>(event.as_ref().map(|e| e.action.as_str()))
            .bind::<Nullable<Jsonb>, _>(changes),
    )
    .get_result(conn)
    .await
    .optional()
    .map_err(map)?;
    row.map(LedgerEntry::try_from).transpose()
}

/// Why [`move_balance`] matched no row.
async fn refusal(conn: &mut AsyncPgConnection, wallet_id: Uuid) -> TxError {
    let found: Result<Option<Option<OffsetDateTime>>, _> = wallets::table
        .find(wallet_id)
        .select(wallets::deleted_at)
        .first(conn)
        .await
        .optional();
    TxError(match found {
        Err(e) => map(e),
        Ok(None) => RepoError::NotFound,
        Ok(Some(Some(_))) => RepoError::Conflict(Conflict::WalletDeleted),
        Ok(Some(None)) => RepoError::Conflict(Conflict::InsufficientFunds),
    })
}

/// One balance change with its entry, inside a transaction (`WalletRepository::apply`, and the
/// credit of a deposit): claims the idempotency key, opens a missing default wallet, moves the
/// balance, inserts the entry and records the change's audit event.
pub(crate) async fn apply_in_tx(
    conn: &mut AsyncPgConnection,
    change: &BalanceChange,
) -> Result<Posted, TxError> {
    if let Some(c) = &change.idempotency {
        if let Some(first) = claim(conn, c, change.entry_id, change.now).await? {
            return Ok(Posted {
                entry: load_entry(conn, first).await?,
                replayed: true,
            });
        }
    }
    let wallet_id = match &change.target {
        ChangeTarget::Wallet(id) => *id,
        // Created here, it is rolled back with the change if the change is refused.
        ChangeTarget::DefaultOf(template) => {
            lock_user(conn, template.user_id).await?;
            match live_default(conn, template.user_id, &template.currency, None).await? {
                Some(id) => id,
                None => insert_wallet(conn, template.clone()).await?.id,
            }
        }
    };
    let Some(balance_after) = move_balance(conn, wallet_id, change.amount, change.now).await?
    else {
        return Err(refusal(conn, wallet_id).await);
    };
    let entry = LedgerEntry {
        id: change.entry_id,
        wallet_id,
        amount: change.amount,
        balance_after,
        kind: change.kind,
        reason: change.reason.clone(),
        actor_id: change.actor_id,
        transfer_id: None,
        idempotency_key: change.idempotency.as_ref().map(|c| c.key.clone()),
        created_at: change.now,
    };
    let entry = insert_entry(conn, &entry).await?;
    crate::audit::record(conn, change.audit_with(&entry).as_ref()).await?;
    Ok(Posted {
        entry,
        replayed: false,
    })
}

#[async_trait]
impl WalletRepository for PgStore {
    async fn create(&self, wallet: NewWallet, audit: Option<AuditEvent>) -> RepoResult<Wallet> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            let wallet = insert_wallet(conn, wallet).await?;
            crate::audit::record(conn, audit.as_ref()).await?;
            Ok(wallet)
        })
        .await
        .map_err(RepoError::from)
    }

    async fn get(&self, id: Uuid) -> RepoResult<Wallet> {
        let mut conn = self.conn().await?;
        let row: WalletRow = wallets::table
            .find(id)
            .select(WalletRow::as_select())
            .first(&mut conn)
            .await
            .map_err(map)?;
        Ok(row.into())
    }

    async fn get_with_owner(&self, id: Uuid) -> RepoResult<(Wallet, User)> {
        let mut conn = self.conn().await?;
        let (wallet, owner): (WalletRow, UserRow) = wallets::table
            .inner_join(users::table)
            .filter(wallets::id.eq(id))
            .select((WalletRow::as_select(), UserRow::as_select()))
            .first(&mut conn)
            .await
            .map_err(map)?;
        Ok((wallet.into(), owner.try_into()?))
    }

    async fn list_for_user(&self, user_id: Uuid, include_deleted: bool) -> RepoResult<Vec<Wallet>> {
        let mut conn = self.conn().await?;
        let mut q = wallets::table
            .filter(wallets::user_id.eq(user_id))
            .into_boxed();
        if !include_deleted {
            q = q.filter(wallets::deleted_at.is_null());
        }
        let rows: Vec<WalletRow> = q
            .order((wallets::created_at.asc(), wallets::id.asc()))
            .select(WalletRow::as_select())
            .load(&mut conn)
            .await
            .map_err(map)?;
        Ok(rows.into_iter().map(Wallet::from).collect())
    }

    async fn summaries(&self, user_ids: &[Uuid]) -> RepoResult<HashMap<Uuid, WalletSummary>> {
        let mut conn = self.conn().await?;
        let rows: Vec<(Uuid, String, bool, i64)> = wallets::table
            .filter(wallets::user_id.eq_any(user_ids))
            .filter(wallets::deleted_at.is_null())
            .select((
                wallets::user_id,
                wallets::currency,
                wallets::is_default,
                wallets::balance,
            ))
            .load(&mut conn)
            .await
            .map_err(map)?;
        let mut out: HashMap<Uuid, WalletSummary> = HashMap::new();
        for (user_id, currency, is_default, balance) in rows {
            out.entry(user_id)
                .or_default()
                .add(currency, is_default, balance);
        }
        Ok(out)
    }

    async fn delete(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<Wallet> {
        let mut conn = self.conn().await?;
        let deleted: Option<WalletRow> = conn
            .transaction(async |conn| -> Result<_, TxError> {
                let deleted: Option<WalletRow> = diesel::update(
                    wallets::table
                        .find(id)
                        .filter(wallets::deleted_at.is_null()),
                )
                .set((wallets::deleted_at.eq(now), wallets::updated_at.eq(now)))
                .returning(WalletRow::as_returning())
                .get_result(conn)
                .await
                .optional()
                .map_err(map)?;
                // Only a wallet this statement deleted gets an event.
                if deleted.is_some() {
                    crate::audit::record(conn, audit.as_ref()).await?;
                }
                Ok(deleted)
            })
            .await
            .map_err(RepoError::from)?;
        match deleted {
            Some(row) => Ok(row.into()),
            // Already deleted (or missing): report it as it is.
            None => self.get(id).await,
        }
    }

    async fn restore(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<Wallet> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            let user_id: Uuid = wallets::table
                .find(id)
                .select(wallets::user_id)
                .first(conn)
                .await
                .map_err(map)?;
            // Serialises with wallet creation, which decides defaults under the same lock.
            lock_user(conn, user_id).await?;
            let current: WalletRow = wallets::table
                .find(id)
                .select(WalletRow::as_select())
                .for_update()
                .first(conn)
                .await
                .map_err(map)?;
            if current.deleted_at.is_none() {
                return Err(RepoError::Conflict(Conflict::WalletState).into());
            }
            let other_default = live_default(conn, user_id, &current.currency, Some(id))
                .await?
                .is_some();
            let row: WalletRow = diesel::update(wallets::table.find(id))
                .set((
                    wallets::deleted_at.eq(None::<OffsetDateTime>),
                    wallets::updated_at.eq(now),
                    wallets::is_default.eq(current.is_default && !other_default),
                ))
                .returning(WalletRow::as_returning())
                .get_result(conn)
                .await
                .map_err(map)?;
            crate::audit::record(conn, audit.as_ref()).await?;
            Ok(Wallet::from(row))
        })
        .await
        .map_err(RepoError::from)
    }

    async fn apply(&self, change: BalanceChange) -> RepoResult<Posted> {
        let mut conn = self.conn().await?;
        if let (ChangeTarget::Wallet(wallet_id), None) = (&change.target, &change.idempotency) {
            return match apply_to_wallet(&mut conn, &change, *wallet_id).await? {
                Some(entry) => Ok(Posted {
                    entry,
                    replayed: false,
                }),
                None => Err(refusal(&mut conn, *wallet_id).await.into()),
            };
        }
        conn.transaction(async |conn| -> Result<_, TxError> { apply_in_tx(conn, &change).await })
            .await
            .map_err(RepoError::from)
    }

    async fn transfer(&self, t: NewTransfer) -> RepoResult<Transfer> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            if let Some(c) = &t.idempotency {
                if let Some(first) = claim(conn, c, t.debit_entry_id, t.now).await? {
                    let debit = load_entry(conn, first).await?;
                    let transfer_id = debit.transfer_id.ok_or_else(|| {
                        TxError(RepoError::internal("replayed entry is no transfer"))
                    })?;
                    let credit: LedgerEntryRow = ledger_entries::table
                        .filter(ledger_entries::transfer_id.eq(transfer_id))
                        .filter(ledger_entries::kind.eq(EntryKind::TransferIn.as_str()))
                        .select(LedgerEntryRow::as_select())
                        .first(conn)
                        .await
                        .map_err(map)?;
                    return Ok(Transfer {
                        transfer_id,
                        debit,
                        credit: credit.try_into()?,
                        replayed: true,
                    });
                }
            }
            if t.from_wallet == t.to_wallet {
                return Err(RepoError::internal("a transfer needs two wallets").into());
            }
            // Both rows, locked in id order: opposite transfers cannot deadlock.
            let locked: Vec<(Uuid, String, Option<OffsetDateTime>)> = wallets::table
                .filter(wallets::id.eq_any([t.from_wallet, t.to_wallet]))
                .order(wallets::id.asc())
                .select((wallets::id, wallets::currency, wallets::deleted_at))
                .for_update()
                .load(conn)
                .await
                .map_err(map)?;
            if locked.len() != 2 {
                return Err(RepoError::NotFound.into());
            }
            if locked.iter().any(|(_, _, deleted_at)| deleted_at.is_some()) {
                return Err(RepoError::Conflict(Conflict::WalletDeleted).into());
            }
            if locked[0].1 != locked[1].1 {
                return Err(RepoError::Conflict(Conflict::CurrencyMismatch).into());
            }
            let debit_amount = t
                .amount
                .checked_neg()
                .ok_or(TxError(RepoError::Conflict(Conflict::BalanceOverflow)))?;
            let Some(from_after) = move_balance(conn, t.from_wallet, debit_amount, t.now).await?
            else {
                return Err(refusal(conn, t.from_wallet).await);
            };
            let Some(to_after) = move_balance(conn, t.to_wallet, t.amount, t.now).await? else {
                return Err(refusal(conn, t.to_wallet).await);
            };
            let key = t.idempotency.as_ref().map(|c| c.key.clone());
            let entry = |id, wallet_id, amount, balance_after, kind| LedgerEntry {
                id,
                wallet_id,
                amount,
                balance_after,
                kind,
                reason: t.reason.clone(),
                actor_id: t.actor_id,
                transfer_id: Some(t.transfer_id),
                idempotency_key: key.clone(),
                created_at: t.now,
            };
            let debit = entry(
                t.debit_entry_id,
                t.from_wallet,
                debit_amount,
                from_after,
                EntryKind::TransferOut,
            );
            let credit = entry(
                t.credit_entry_id,
                t.to_wallet,
                t.amount,
                to_after,
                EntryKind::TransferIn,
            );
            let debit = insert_entry(conn, &debit).await?;
            let credit = insert_entry(conn, &credit).await?;
            crate::audit::record(conn, t.audit_with(&debit, &credit).as_ref()).await?;
            Ok(Transfer {
                transfer_id: t.transfer_id,
                debit,
                credit,
                replayed: false,
            })
        })
        .await
        .map_err(RepoError::from)
    }

    async fn ledger(
        &self,
        wallet_id: Uuid,
        after: Option<LedgerCursor>,
        limit: u32,
    ) -> RepoResult<Vec<LedgerEntry>> {
        let mut conn = self.conn().await?;
        let mut q = ledger_entries::table
            .filter(ledger_entries::wallet_id.eq(wallet_id))
            .into_boxed();
        if let Some(c) = after {
            q = q.filter(
                ledger_entries::created_at
                    .lt(c.created_at)
                    .or(ledger_entries::created_at
                        .eq(c.created_at)
                        .and(ledger_entries::id.lt(c.id))),
            );
        }
        let rows: Vec<LedgerEntryRow> = q
            .order((ledger_entries::created_at.desc(), ledger_entries::id.desc()))
            .limit(i64::from(limit))
            .select(LedgerEntryRow::as_select())
            .load(&mut conn)
            .await
            .map_err(map)?;
        rows.into_iter().map(LedgerEntry::try_from).collect()
    }

    async fn prune_idempotency_keys(&self, cutoff: OffsetDateTime, limit: u32) -> RepoResult<u64> {
        self.delete_batch(
            "DELETE FROM idempotency_keys WHERE (scope, key) IN (
                 SELECT scope, key FROM idempotency_keys WHERE created_at < $1
                 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            cutoff,
            limit,
        )
        .await
    }

    async fn record_deposit(&self, new: NewDeposit) -> RepoResult<Reported> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            let owner: Option<Uuid> = users::table
                .filter(users::payment_address.eq(&new.address))
                .select(users::id)
                .first(conn)
                .await
                .optional()
                .map_err(map)?;
            let mut deposit = new.unmatched();
            if let Some(user_id) = owner {
                deposit.user_id = Some(user_id);
                deposit.status = DepositStatus::Ignored;
            }
            // The chain identity is claimed first: a concurrent report of the same transfer
            // (from any process) waits on the unique index until this transaction ends, then
            // inserts nothing and reads this record.
            let inserted: Option<DepositRow> = diesel::insert_into(deposits::table)
                .values(DepositRow::from(&deposit))
                .on_conflict((deposits::block, deposits::extrinsic_index))
                .do_nothing()
                .returning(DepositRow::as_returning())
                .get_result(conn)
                .await
                .optional()
                .map_err(map)?;
            let Some(inserted) = inserted else {
                let first: DepositRow = deposits::table
                    .filter(deposits::block.eq(&new.chain.block))
                    .filter(deposits::extrinsic_index.eq(i64::from(new.chain.extrinsic_index)))
                    .select(DepositRow::as_select())
                    .first(conn)
                    .await
                    .map_err(map)?;
                return Ok(Reported {
                    deposit: first.try_into()?,
                    duplicate: true,
                });
            };
            let mut deposit = Deposit::try_from(inserted)?;
            let mut balance_after = None;
            if let (Some(user_id), true) = (owner, new.creditable()) {
                let posted = apply_in_tx(conn, &new.credit(user_id)).await?;
                let row: DepositRow = diesel::update(deposits::table.find(deposit.id))
                    .set((
                        deposits::status.eq(DepositStatus::Credited.as_str()),
                        deposits::credited.eq(posted.entry.amount),
                        deposits::wallet_id.eq(posted.entry.wallet_id),
                        deposits::entry_id.eq(posted.entry.id),
                    ))
                    .returning(DepositRow::as_returning())
                    .get_result(conn)
                    .await
                    .map_err(map)?;
                deposit = Deposit::try_from(row)?;
                balance_after = Some(posted.entry.balance_after);
            }
            crate::audit::record(conn, new.audit_with(&deposit, balance_after).as_ref()).await?;
            Ok(Reported {
                deposit,
                duplicate: false,
            })
        })
        .await
        .map_err(RepoError::from)
    }

    async fn deposits(&self, query: DepositQuery) -> RepoResult<Vec<Deposit>> {
        let mut conn = self.conn().await?;
        let mut q = deposits::table.into_boxed();
        if let Some(user_id) = query.user_id {
            q = q.filter(deposits::user_id.eq(user_id));
        }
        if let Some(status) = query.status {
            q = q.filter(deposits::status.eq(status.as_str()));
        }
        let rows: Vec<DepositRow> = q
            .order((deposits::created_at.desc(), deposits::id.desc()))
            .offset(i64::try_from(query.offset).unwrap_or(i64::MAX))
            .limit(i64::try_from(query.limit).unwrap_or(i64::MAX))
            .select(DepositRow::as_select())
            .load(&mut conn)
            .await
            .map_err(map)?;
        rows.into_iter().map(Deposit::try_from).collect()
    }
}
