//! Wallets and the ledger: open, read, soft-delete and restore wallets; adjust balances; move
//! money between wallets; read the ledger. Every balance change goes through one atomic port
//! call that moves the balance and writes its entry together.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::actor::{Access, Actor};
use crate::app::{Ports, TesseraConfig};
use crate::counters::Counters;
use crate::error::{Conflict, Failure, ValidationError, WalletError};
use crate::model::{
    AuditAction, AuditEvent, BalanceChange, ChangeTarget, Currencies, EntryKind, IdempotencyClaim,
    LedgerCursor, LedgerEntry, LedgerPage, Money, NewTransfer, NewWallet, Posted, User, Wallet,
    WalletSummary,
};
use crate::policy;
use crate::ports::{Clock, IdGenerator, UserRepository, WalletRepository};
use crate::services::audit;
use crate::values::{IdempotencyKey, Reason, UserRef, WalletName};

/// Ledger page size when the caller gives none.
pub const DEFAULT_LEDGER_LIMIT: u32 = 50;
/// Largest ledger page.
pub const MAX_LEDGER_LIMIT: u32 = 500;

/// `POST /wallets/{id}/adjustments`: a signed amount of minor units and why.
#[derive(Debug, Clone)]
pub struct AdjustmentInput {
    pub amount: i64,
    pub reason: String,
}

/// `POST /transfers`.
#[derive(Debug, Clone)]
pub struct TransferInput {
    pub from_wallet: Uuid,
    pub to_wallet: Uuid,
    /// Positive minor units.
    pub amount: i64,
    pub reason: String,
}

/// Which ledger page to read.
#[derive(Debug, Clone, Copy)]
pub struct LedgerInput {
    pub cursor: Option<LedgerCursor>,
    pub limit: u32,
}

impl Default for LedgerInput {
    fn default() -> Self {
        Self {
            cursor: None,
            limit: DEFAULT_LEDGER_LIMIT,
        }
    }
}

/// A transfer as its caller may see it: the credit side only when the caller may read the
/// recipient's wallet.
#[derive(Debug, Clone)]
pub struct TransferOutcome {
    pub transfer_id: Uuid,
    pub from_wallet: Uuid,
    pub to_wallet: Uuid,
    pub debit: LedgerEntry,
    pub credit: Option<LedgerEntry>,
    pub replayed: bool,
}

/// A transfer's destination that is missing, or that the caller may not read and that holds
/// another currency: the same 404 either way.
fn destination_not_found() -> WalletError {
    WalletError::NotFound
}

#[derive(Clone)]
pub struct WalletService {
    counters: Arc<Counters>,
    users: Arc<dyn UserRepository>,
    wallets: Arc<dyn WalletRepository>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    config: Arc<TesseraConfig>,
}

/// A value for the `after` side of an audit field.
fn shown(v: impl ToString) -> Option<String> {
    Some(v.to_string())
}

fn non_zero(field: &'static str, amount: i64) -> Result<i64, ValidationError> {
    if amount == 0 {
        Err(ValidationError::new(field, "must not be zero"))
    } else {
        Ok(amount)
    }
}

impl WalletService {
    pub(crate) fn new(
        ports: &Ports,
        config: &Arc<TesseraConfig>,
        counters: &Arc<Counters>,
    ) -> Self {
        Self {
            counters: counters.clone(),
            users: ports.users.clone(),
            wallets: ports.wallets.clone(),
            clock: ports.clock.clone(),
            ids: ports.ids.clone(),
            config: config.clone(),
        }
    }

    /// Counts a posted change's ledger entry (a replay wrote none).
    fn count(&self, posted: &Posted) {
        if !posted.replayed {
            self.counters.ledger_entries(1);
        }
    }

    /// The configured currencies and their scales.
    pub fn currencies(&self) -> &Currencies {
        &self.config.currencies
    }

    async fn resolve_user(&self, user: &UserRef) -> Result<User, WalletError> {
        let users = &self.users;
        let found = match user {
            UserRef::Id(id) => users.get(*id).await,
            UserRef::Username(name) => users.find_by_username(name).await,
        };
        found.map_err(|e| WalletError::from(crate::error::UserError::from(e)))
    }

    /// A wallet and its owner.
    async fn wallet_and_owner(&self, id: Uuid) -> Result<(Wallet, User), WalletError> {
        // A wallet's owner always exists (wallets go with their user); anything else is a
        // wallet nobody can see.
        Ok(self.wallets.get_with_owner(id).await?)
    }

    /// An audit event on a wallet of `owner`; the owner is the event's target.
    fn event(
        &self,
        actor: &Actor,
        owner: Uuid,
        action: AuditAction,
        changes: std::collections::BTreeMap<String, crate::model::FieldChange>,
    ) -> AuditEvent {
        audit::event(
            self.ids.new_id(),
            self.clock.now(),
            Some(actor),
            Some(owner),
            action,
            changes,
        )
    }

    fn claim(
        actor: &Actor,
        key: Option<IdempotencyKey>,
        fingerprint: impl FnOnce() -> String,
    ) -> Option<IdempotencyClaim> {
        key.map(|key| IdempotencyClaim {
            scope: actor.id(),
            key: key.as_str().to_owned(),
            fingerprint: fingerprint(),
        })
    }

    /// A user's wallets, oldest first; soft-deleted ones too when asked.
    pub async fn list_for_user(
        &self,
        actor: &Actor,
        user: &UserRef,
        include_deleted: bool,
    ) -> Result<Vec<Wallet>, WalletError> {
        policy::authorize(actor, Access::Read)?;
        let owner = self.resolve_user(user).await?;
        policy::ensure_can_list_wallets_of(actor, &owner).map_err(WalletError::about_user)?;
        Ok(self
            .wallets
            .list_for_user(owner.id, include_deleted)
            .await?)
    }

    /// Opens a wallet for a user. It becomes the user's default in its currency if the user
    /// has none there.
    pub async fn create(
        &self,
        actor: &Actor,
        user: &UserRef,
        name: &str,
        currency: &str,
    ) -> Result<Wallet, WalletError> {
        policy::authorize(actor, Access::Write)?;
        let name = WalletName::parse("name", name)?;
        let currency = self.currencies().parse("currency", currency)?;
        let owner = self.resolve_user(user).await?;
        policy::ensure_can_create_wallet_for(actor, &owner).map_err(WalletError::about_user)?;
        let cap = self.config.limits.max_wallets_per_user;
        let held = self.wallets.list_for_user(owner.id, true).await?.len();
        if held >= cap {
            return Err(WalletError::Failure(Failure::Conflict(Conflict::TooMany)));
        }
        let wallet = NewWallet {
            id: self.ids.new_id(),
            user_id: owner.id,
            name: name.into_inner(),
            currency: currency.as_str().to_owned(),
            now: self.clock.now(),
        };
        let event = self.event(
            actor,
            owner.id,
            AuditAction::WalletCreated,
            audit::changes([
                ("wallet_id", None, shown(wallet.id)),
                ("name", None, shown(&wallet.name)),
                ("currency", None, shown(&wallet.currency)),
            ]),
        );
        self.wallets
            .create(wallet, Some(event))
            .await
            .map_err(|e| match e {
                crate::ports::RepoError::NotFound => WalletError::UserNotFound,
                other => other.into(),
            })
    }

    pub async fn get(&self, actor: &Actor, id: Uuid) -> Result<Wallet, WalletError> {
        policy::authorize(actor, Access::Read)?;
        let (wallet, owner) = self.wallet_and_owner(id).await?;
        policy::ensure_can_view_wallet(actor, &owner)?;
        Ok(wallet)
    }

    /// Soft delete: the wallet keeps its balance and ledger, and no money moves through it
    /// until it is restored. Deleting a deleted wallet changes nothing.
    pub async fn delete(&self, actor: &Actor, id: Uuid) -> Result<Wallet, WalletError> {
        policy::authorize(actor, Access::Write)?;
        let (wallet, owner) = self.wallet_and_owner(id).await?;
        policy::ensure_can_manage_wallet(actor, &owner)?;
        if wallet.is_deleted() {
            return Ok(wallet);
        }
        let event = self.event(
            actor,
            owner.id,
            AuditAction::WalletDeleted,
            audit::changes([
                ("wallet_id", None, shown(id)),
                ("state", shown("active"), shown("deleted")),
            ]),
        );
        let now = self.clock.now();
        Ok(self.wallets.delete(id, now, Some(event)).await?)
    }

    /// Undoes a soft delete.
    pub async fn restore(&self, actor: &Actor, id: Uuid) -> Result<Wallet, WalletError> {
        policy::authorize(actor, Access::Write)?;
        let (_, owner) = self.wallet_and_owner(id).await?;
        policy::ensure_can_manage_wallet(actor, &owner)?;
        let event = self.event(
            actor,
            owner.id,
            AuditAction::WalletRestored,
            audit::changes([
                ("wallet_id", None, shown(id)),
                ("state", shown("deleted"), shown("active")),
            ]),
        );
        let now = self.clock.now();
        Ok(self.wallets.restore(id, now, Some(event)).await?)
    }

    /// The event of a balance adjustment; the store adds `wallet_id` and `balance_after`.
    fn adjustment_event(
        &self,
        actor: &Actor,
        owner: Uuid,
        entry_id: Uuid,
        currency: &str,
        amount: i64,
        reason: &Reason,
    ) -> AuditEvent {
        self.event(
            actor,
            owner,
            AuditAction::WalletAdjusted,
            audit::changes([
                ("entry_id", None, shown(entry_id)),
                ("currency", None, shown(currency)),
                ("amount", None, shown(amount)),
                ("reason", None, shown(reason.as_str())),
            ]),
        )
    }

    /// Credits (positive) or debits (negative) a wallet by `amount` minor units, as a billing
    /// administrator. With an idempotency key, a repeat of the same request returns the first
    /// entry; the same key with another request is `Conflict(IdempotencyMismatch)`.
    pub async fn adjust(
        &self,
        actor: &Actor,
        wallet_id: Uuid,
        input: AdjustmentInput,
        key: Option<IdempotencyKey>,
    ) -> Result<Posted, WalletError> {
        policy::authorize(actor, Access::Write)?;
        let amount = non_zero("amount", input.amount)?;
        let reason = Reason::parse("reason", &input.reason)?;
        let (wallet, owner) = self.wallet_and_owner(wallet_id).await?;
        policy::ensure_can_adjust(actor, &owner)?;
        let idempotency = Self::claim(actor, key, || {
            format!(
                "POST adjustment\nwallet={wallet_id}\namount={amount}\nreason={}",
                reason.as_str()
            )
        });
        let entry_id = self.ids.new_id();
        let event =
            self.adjustment_event(actor, owner.id, entry_id, &wallet.currency, amount, &reason);
        let change = BalanceChange {
            entry_id,
            target: ChangeTarget::Wallet(wallet_id),
            amount,
            kind: EntryKind::Adjustment,
            reason: reason.into_inner(),
            actor_id: Some(actor.id()),
            idempotency,
            now: self.clock.now(),
            audit: Some(event),
        };
        let posted = self.wallets.apply(change).await?;
        self.count(&posted);
        Ok(posted)
    }

    /// Credits or debits a user's default wallet in `currency` by whole major units (LNbits:
    /// whole sats), scaled exactly to minor units. A missing default wallet is opened in the
    /// same transaction as the change, and only if the change is applied.
    pub async fn adjust_default_in_major_units(
        &self,
        actor: &Actor,
        user: &UserRef,
        currency: &str,
        major: i64,
        reason: &str,
        key: Option<IdempotencyKey>,
    ) -> Result<Posted, WalletError> {
        policy::authorize(actor, Access::Write)?;
        let currency = self.currencies().parse("currency", currency)?;
        let money = Money::from_major(self.currencies(), currency, major, "amount")?;
        self.adjust_default(actor, user, money, reason, key).await
    }

    /// Credits or debits a user's default wallet in `currency` by a decimal number of major
    /// units (Chutes: USD such as `"12.5"`), converted exactly: more decimal places than the
    /// currency's scale, or an amount beyond the `i64` range after scaling, is a validation
    /// error on `amount`, never rounded.
    pub async fn adjust_default_by_decimal(
        &self,
        actor: &Actor,
        user: &UserRef,
        currency: &str,
        decimal: &str,
        reason: &str,
        key: Option<IdempotencyKey>,
    ) -> Result<Posted, WalletError> {
        policy::authorize(actor, Access::Write)?;
        let currency = self.currencies().parse("currency", currency)?;
        let money = Money::from_decimal(self.currencies(), currency, decimal, "amount")?;
        self.adjust_default(actor, user, money, reason, key).await
    }

    async fn adjust_default(
        &self,
        actor: &Actor,
        user: &UserRef,
        money: Money,
        reason: &str,
        key: Option<IdempotencyKey>,
    ) -> Result<Posted, WalletError> {
        let amount = non_zero("amount", money.minor())?;
        let reason = Reason::parse("reason", reason)?;
        let owner = self.resolve_user(user).await?;
        policy::ensure_can_adjust(actor, &owner).map_err(WalletError::about_user)?;
        let currency = money.currency().as_str().to_owned();
        let idempotency = Self::claim(actor, key, || {
            format!(
                "PUT default-wallet-balance\nuser={}\ncurrency={currency}\namount={amount}\nreason={}",
                owner.id,
                reason.as_str()
            )
        });
        let now = self.clock.now();
        let entry_id = self.ids.new_id();
        let event = self.adjustment_event(actor, owner.id, entry_id, &currency, amount, &reason);
        let change = BalanceChange {
            entry_id,
            target: ChangeTarget::DefaultOf(NewWallet {
                id: self.ids.new_id(),
                user_id: owner.id,
                name: crate::model::DEFAULT_WALLET_NAME.to_owned(),
                currency,
                now,
            }),
            amount,
            kind: EntryKind::Adjustment,
            reason: reason.into_inner(),
            actor_id: Some(actor.id()),
            idempotency,
            now,
            audit: Some(event),
        };
        let posted = self.wallets.apply(change).await.map_err(|e| match e {
            crate::ports::RepoError::NotFound => WalletError::UserNotFound,
            other => other.into(),
        })?;
        self.count(&posted);
        Ok(posted)
    }

    /// Moves `amount` minor units between two wallets of one currency, atomically.
    pub async fn transfer(
        &self,
        actor: &Actor,
        input: TransferInput,
        key: Option<IdempotencyKey>,
    ) -> Result<TransferOutcome, WalletError> {
        policy::authorize(actor, Access::Write)?;
        if input.amount <= 0 {
            return Err(ValidationError::new("amount", "must be greater than zero").into());
        }
        let reason = Reason::parse("reason", &input.reason)?;
        if input.from_wallet == input.to_wallet {
            return Err(ValidationError::new(
                "to_wallet",
                "must be a different wallet than from_wallet",
            )
            .into());
        }
        let (source, owner) = self.wallet_and_owner(input.from_wallet).await?;
        // A destination the caller may not read answers alike whether it is missing or holds
        // another currency, and the caller sees only the debit side of the transfer.
        let (destination, recipient) = match self.wallet_and_owner(input.to_wallet).await {
            Ok(found) => found,
            Err(WalletError::NotFound) => return Err(destination_not_found()),
            Err(other) => return Err(other),
        };
        policy::ensure_can_transfer(actor, &owner, &recipient)?;
        let recipient_visible = policy::can_view_wallet(actor, &recipient);
        if source.currency != destination.currency {
            if !recipient_visible {
                return Err(destination_not_found());
            }
            return Err(ValidationError::new(
                "to_wallet",
                format!(
                    "holds {} but from_wallet holds {}; transfers need one currency",
                    destination.currency, source.currency
                ),
            )
            .into());
        }
        let (from, to, amount) = (input.from_wallet, input.to_wallet, input.amount);
        let idempotency = Self::claim(actor, key, || {
            format!(
                "POST transfer\nfrom={from}\nto={to}\namount={amount}\nreason={}",
                reason.as_str()
            )
        });
        let transfer_id = self.ids.new_id();
        let event = self.event(
            actor,
            owner.id,
            AuditAction::WalletTransferred,
            audit::changes([
                ("transfer_id", None, shown(transfer_id)),
                ("from_wallet", None, shown(from)),
                ("to_wallet", None, shown(to)),
                ("to_user_id", None, shown(destination.user_id)),
                ("currency", None, shown(&source.currency)),
                ("amount", None, shown(amount)),
                ("reason", None, shown(reason.as_str())),
            ]),
        );
        let transfer = NewTransfer {
            transfer_id,
            debit_entry_id: self.ids.new_id(),
            credit_entry_id: self.ids.new_id(),
            from_wallet: from,
            to_wallet: to,
            amount,
            reason: reason.into_inner(),
            actor_id: Some(actor.id()),
            idempotency,
            now: self.clock.now(),
            audit: Some(event),
        };
        let done = self.wallets.transfer(transfer).await?;
        if !done.replayed {
            self.counters.ledger_entries(2);
        }
        Ok(TransferOutcome {
            transfer_id: done.transfer_id,
            from_wallet: from,
            to_wallet: to,
            debit: done.debit,
            credit: recipient_visible.then_some(done.credit),
            replayed: done.replayed,
        })
    }

    /// One page of a wallet's ledger, newest first.
    pub async fn ledger(
        &self,
        actor: &Actor,
        wallet_id: Uuid,
        input: LedgerInput,
    ) -> Result<LedgerPage, WalletError> {
        policy::authorize(actor, Access::Read)?;
        if !(1..=MAX_LEDGER_LIMIT).contains(&input.limit) {
            return Err(ValidationError::new("limit", "must be between 1 and 500").into());
        }
        let (_, owner) = self.wallet_and_owner(wallet_id).await?;
        policy::ensure_can_view_wallet(actor, &owner)?;
        let limit = input.limit as usize;
        let mut entries = self
            .wallets
            .ledger(wallet_id, input.cursor, input.limit + 1)
            .await?;
        let next = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(LedgerCursor::after)
        } else {
            None
        };
        Ok(LedgerPage { entries, next })
    }

    /// Wallet counts and default-wallet balances of users the caller has already been shown,
    /// in one store round trip. Users whose wallets the caller may not see get an empty summary.
    /// Allowed while a password change is pending (the own profile shows balances).
    pub async fn summaries(
        &self,
        actor: &Actor,
        users: &[User],
    ) -> Result<HashMap<Uuid, WalletSummary>, WalletError> {
        let visible: Vec<Uuid> = users
            .iter()
            .filter(|u| policy::ensure_can_list_wallets_of(actor, u).is_ok())
            .map(|u| u.id)
            .collect();
        if visible.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(self.wallets.summaries(&visible).await?)
    }
}
