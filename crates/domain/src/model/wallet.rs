//! Wallets and their ledger. A wallet's balance is a signed count of its currency's minor unit;
//! every change to it is an immutable [`LedgerEntry`], and the stored balance always equals the
//! sum of its entries.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{AuditEvent, FieldChange};

/// The name given to the wallet every user gets with their account.
pub const DEFAULT_WALLET_NAME: &str = "Main";

/// A wallet as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// A configured currency code (`usd`, `sat`).
    pub currency: String,
    /// The user's default wallet in this currency (at most one live one per user and currency).
    pub is_default: bool,
    /// Minor units of `currency`.
    pub balance: i64,
    /// Mirrors the owner's `invoicing` flag: only then may the balance go below zero.
    pub allow_negative: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Set while the wallet is soft-deleted: it keeps its balance and ledger but no money moves.
    pub deleted_at: Option<OffsetDateTime>,
}

impl Wallet {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// A wallet to insert. Whether it becomes the default, and whether it may go negative, the
/// store decides atomically (see `WalletRepository::create`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWallet {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub currency: String,
    pub now: OffsetDateTime,
}

/// The default wallet created together with a user, in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultWallet {
    pub id: Uuid,
    pub name: String,
    pub currency: String,
}

/// What user views show about a user's wallets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalletSummary {
    /// Live (not deleted) wallets.
    pub wallet_count: u64,
    /// The balance of the live default wallet of each currency.
    pub balances: BTreeMap<String, i64>,
}

impl WalletSummary {
    /// Counts one live wallet; a default wallet also shows its balance.
    pub fn add(&mut self, currency: String, is_default: bool, balance: i64) {
        self.wallet_count += 1;
        if is_default {
            self.balances.insert(currency, balance);
        }
    }
}

/// Why a ledger entry exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A `billing_admin` credited or debited the wallet.
    Adjustment,
    /// The credit half of a transfer.
    TransferIn,
    /// The debit half of a transfer.
    TransferOut,
    /// A metered call past the quota, charged by `MeteringRepository::consume`.
    Usage,
    /// A TAO transfer to the owner's deposit address, reported by the operator's chain watcher
    /// (`WalletRepository::record_deposit`).
    Deposit,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Adjustment => "adjustment",
            Self::TransferIn => "transfer_in",
            Self::TransferOut => "transfer_out",
            Self::Usage => "usage",
            Self::Deposit => "deposit",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "adjustment" => Some(Self::Adjustment),
            "transfer_in" => Some(Self::TransferIn),
            "transfer_out" => Some(Self::TransferOut),
            "usage" => Some(Self::Usage),
            "deposit" => Some(Self::Deposit),
            _ => None,
        }
    }
}

/// One immutable balance change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: Uuid,
    pub wallet_id: Uuid,
    /// Signed minor units; never zero.
    pub amount: i64,
    /// The wallet's balance right after this entry was applied.
    pub balance_after: i64,
    pub kind: EntryKind,
    pub reason: String,
    /// Who made the change; cleared when that user is purged.
    pub actor_id: Option<Uuid>,
    /// Shared by the two entries of one transfer.
    pub transfer_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub created_at: OffsetDateTime,
}

/// The claim on an `Idempotency-Key`: the key is unique per `scope` (the acting user), and
/// `fingerprint` is the canonical form of the request it was first used for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    pub scope: Uuid,
    pub key: String,
    pub fingerprint: String,
}

/// Which wallet a balance change goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeTarget {
    /// This wallet.
    Wallet(Uuid),
    /// The user's live default wallet in the template's currency, created from the template
    /// (in the same transaction as the change) when the user has none.
    DefaultOf(NewWallet),
}

/// One balance change to apply with its ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceChange {
    /// The id of the entry to write (and the result an idempotent replay points at).
    pub entry_id: Uuid,
    pub target: ChangeTarget,
    /// Signed minor units, never zero.
    pub amount: i64,
    pub kind: EntryKind,
    pub reason: String,
    pub actor_id: Option<Uuid>,
    pub idempotency: Option<IdempotencyClaim>,
    pub now: OffsetDateTime,
    /// The event the store writes with the change, in the same transaction, completed by
    /// [`BalanceChange::audit_with`]. Nothing is written on a replay or a refusal.
    pub audit: Option<AuditEvent>,
}

/// Sets `field` of an event's changes to a value that only exists after the change.
fn note(event: &mut AuditEvent, field: &str, after: String) {
    event.changes.insert(
        field.to_owned(),
        FieldChange {
            before: None,
            after: Some(after),
        },
    );
}

impl BalanceChange {
    /// The audit event to write together with `entry`: `audit` with what only the store knows
    /// added to its changes — `wallet_id` (a `DefaultOf` change may open the wallet) and
    /// `balance_after`.
    pub fn audit_with(&self, entry: &LedgerEntry) -> Option<AuditEvent> {
        self.audit.clone().map(|mut event| {
            note(&mut event, "wallet_id", entry.wallet_id.to_string());
            note(&mut event, "balance_after", entry.balance_after.to_string());
            event
        })
    }
}

/// A balance change as applied, or as first applied when this was a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub entry: LedgerEntry,
    /// The request repeated an `Idempotency-Key` and nothing new happened.
    pub replayed: bool,
}

/// A move of `amount` from one wallet to another of the same currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTransfer {
    pub transfer_id: Uuid,
    /// The id of the debit entry (the result an idempotent replay points at).
    pub debit_entry_id: Uuid,
    pub credit_entry_id: Uuid,
    pub from_wallet: Uuid,
    pub to_wallet: Uuid,
    /// Positive minor units.
    pub amount: i64,
    pub reason: String,
    pub actor_id: Option<Uuid>,
    pub idempotency: Option<IdempotencyClaim>,
    pub now: OffsetDateTime,
    /// The event the store writes with the transfer, in the same transaction, completed by
    /// [`NewTransfer::audit_with`]. Nothing is written on a replay or a refusal.
    pub audit: Option<AuditEvent>,
}

impl NewTransfer {
    /// The audit event to write together with the two entries: `audit` with the balances after
    /// the transfer (`from_balance_after`, `to_balance_after`) added to its changes.
    pub fn audit_with(&self, debit: &LedgerEntry, credit: &LedgerEntry) -> Option<AuditEvent> {
        self.audit.clone().map(|mut event| {
            note(
                &mut event,
                "from_balance_after",
                debit.balance_after.to_string(),
            );
            note(
                &mut event,
                "to_balance_after",
                credit.balance_after.to_string(),
            );
            event
        })
    }
}

/// Both halves of a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub transfer_id: Uuid,
    pub debit: LedgerEntry,
    pub credit: LedgerEntry,
    pub replayed: bool,
}

/// Where a ledger page starts: strictly after this entry in newest-first order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerCursor {
    pub created_at: OffsetDateTime,
    pub id: Uuid,
}

impl LedgerCursor {
    pub fn after(entry: &LedgerEntry) -> Self {
        Self {
            created_at: entry.created_at,
            id: entry.id,
        }
    }

    /// An opaque token for the wire: 48 hex digits (microseconds since the epoch, then the id).
    pub fn encode(&self) -> String {
        let micros = (self.created_at.unix_timestamp_nanos() / 1_000) as i64;
        let mut out = String::with_capacity(48);
        for byte in micros.to_be_bytes().iter().chain(self.id.as_bytes()) {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }

    /// The inverse of [`Self::encode`]; `None` for anything it did not produce.
    pub fn decode(raw: &str) -> Option<Self> {
        if raw.len() != 48 || !raw.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 24];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(raw.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        let (micros, id) = bytes.split_at(8);
        let micros = i64::from_be_bytes(micros.try_into().ok()?);
        let created_at =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()?;
        Some(Self {
            created_at,
            id: Uuid::from_slice(id).ok()?,
        })
    }
}

/// One page of a wallet's ledger, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerPage {
    pub entries: Vec<LedgerEntry>,
    /// Where the next page starts, when there is one.
    pub next: Option<LedgerCursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = LedgerCursor {
            created_at: OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            id: Uuid::now_v7(),
        };
        let encoded = cursor.encode();
        assert_eq!(encoded.len(), 48);
        assert_eq!(LedgerCursor::decode(&encoded), Some(cursor));
        for bad in [
            "",
            "zz",
            &"g".repeat(48),
            &encoded[..46],
            "é".repeat(24).as_str(),
        ] {
            assert_eq!(LedgerCursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn kinds_round_trip() {
        for kind in [
            EntryKind::Adjustment,
            EntryKind::TransferIn,
            EntryKind::TransferOut,
            EntryKind::Usage,
        ] {
            assert_eq!(EntryKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EntryKind::parse("charge"), None);
    }
}
