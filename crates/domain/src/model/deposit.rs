//! TAO deposits reported by the operator's chain watcher, credited exactly once.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{AuditEvent, FieldChange};

/// Rao in one TAO.
pub const RAO_PER_TAO: u64 = 1_000_000_000;
/// The rate's unit: millionths of a dollar per TAO.
pub const RATE_MICROS_PER_USD: u64 = 1_000_000;

/// What became of a reported transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DepositStatus {
    /// The owner's wallet was credited, with a ledger entry naming the transfer.
    Credited,
    /// Below the configured minimum (dust): recorded, not credited.
    Ignored,
    /// No user holds the destination address: recorded for reconciliation.
    Unmatched,
}

impl DepositStatus {
    pub const ALL: [DepositStatus; 3] = [Self::Credited, Self::Ignored, Self::Unmatched];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credited => "credited",
            Self::Ignored => "ignored",
            Self::Unmatched => "unmatched",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// Where a transfer is on chain: its block (a decimal number, or a `0x` hash in lower case)
/// and its extrinsic's index in that block. Unique per transfer, so it is the key that makes
/// reporting idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChainRef {
    pub block: String,
    pub extrinsic_index: u32,
}

impl ChainRef {
    /// `block-extrinsic`, as the ledger entry's reason names it.
    pub fn display(&self) -> String {
        format!("{}-{}", self.block, self.extrinsic_index)
    }
}

/// A reported transfer, validated, with what it is worth; the store decides (atomically) whose
/// it is and whether it is new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeposit {
    pub id: Uuid,
    pub chain: ChainRef,
    /// The destination SS58 address.
    pub address: String,
    pub amount_rao: i64,
    /// Millionths of a dollar per TAO.
    pub rate_micros: i64,
    /// Minor units of `currency` the transfer is worth (rounded down).
    pub value: i64,
    pub currency: String,
    /// Below the minimum: to be recorded as `Ignored` when it matches a user.
    pub dust: bool,
    /// The id of the ledger entry to write when credited.
    pub entry_id: Uuid,
    /// Template of the owner's default wallet, opened if the owner has none (its `user_id` is
    /// filled in by the store).
    pub wallet_id: Uuid,
    pub wallet_name: String,
    /// Who reported it.
    pub reported_by: Option<Uuid>,
    pub now: OffsetDateTime,
    /// Written with a new deposit (never with a duplicate), completed by the store with the
    /// owner as target and the outcome.
    pub audit: Option<AuditEvent>,
}

impl NewDeposit {
    /// The audit event of the new record `deposit`: the owner as target, and the outcome.
    pub fn audit_with(&self, deposit: &Deposit, balance_after: Option<i64>) -> Option<AuditEvent> {
        self.audit.clone().map(|mut event| {
            event.target_id = deposit.user_id;
            let mut note = |field: &str, after: String| {
                event.changes.insert(
                    field.to_owned(),
                    FieldChange {
                        before: None,
                        after: Some(after),
                    },
                );
            };
            note("deposit_id", deposit.id.to_string());
            note("status", deposit.status.as_str().to_owned());
            note("credited", deposit.credited.to_string());
            if let Some(wallet_id) = deposit.wallet_id {
                note("wallet_id", wallet_id.to_string());
            }
            if let Some(entry_id) = deposit.entry_id {
                note("entry_id", entry_id.to_string());
            }
            if let Some(balance_after) = balance_after {
                note("balance_after", balance_after.to_string());
            }
            event
        })
    }

    /// The record of this report before its effect is known: `Unmatched`, nothing credited.
    pub fn unmatched(&self) -> Deposit {
        Deposit {
            id: self.id,
            chain: self.chain.clone(),
            address: self.address.clone(),
            amount_rao: self.amount_rao,
            rate_micros: self.rate_micros,
            credited: 0,
            currency: self.currency.clone(),
            status: DepositStatus::Unmatched,
            user_id: None,
            wallet_id: None,
            entry_id: None,
            reported_by: self.reported_by,
            created_at: self.now,
        }
    }

    /// The balance change that credits the owner `user_id` (`value` to its default wallet).
    pub fn credit(&self, user_id: Uuid) -> super::BalanceChange {
        super::BalanceChange {
            entry_id: self.entry_id,
            target: super::ChangeTarget::DefaultOf(super::NewWallet {
                id: self.wallet_id,
                user_id,
                name: self.wallet_name.clone(),
                currency: self.currency.clone(),
                now: self.now,
            }),
            amount: self.value,
            kind: super::EntryKind::Deposit,
            reason: self.reason(),
            actor_id: self.reported_by,
            idempotency: None,
            now: self.now,
            audit: None,
        }
    }

    /// Whether a matched deposit is credited: not dust, and worth something.
    pub fn creditable(&self) -> bool {
        !self.dust && self.value > 0
    }

    /// The reason of the ledger entry of a credit: it names the transfer.
    pub fn reason(&self) -> String {
        format!(
            "deposit of {} rao in block {} extrinsic {} to {}",
            self.amount_rao, self.chain.block, self.chain.extrinsic_index, self.address
        )
    }
}

/// A deposit as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deposit {
    pub id: Uuid,
    pub chain: ChainRef,
    pub address: String,
    pub amount_rao: i64,
    pub rate_micros: i64,
    /// Minor units of `currency` credited (0 unless `Credited`).
    pub credited: i64,
    pub currency: String,
    pub status: DepositStatus,
    /// The owner of the address, when one was found.
    pub user_id: Option<Uuid>,
    pub wallet_id: Option<Uuid>,
    /// The ledger entry of the credit.
    pub entry_id: Option<Uuid>,
    /// Who reported it; cleared when that user is purged.
    pub reported_by: Option<Uuid>,
    pub created_at: OffsetDateTime,
}

/// The outcome of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub deposit: Deposit,
    /// The transfer had already been reported: nothing changed, and `deposit` is the first
    /// report's record.
    pub duplicate: bool,
}

/// Which deposits a listing covers, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepositQuery {
    pub user_id: Option<Uuid>,
    pub status: Option<DepositStatus>,
    pub offset: u64,
    pub limit: u64,
}

/// The value of `amount_rao` at `rate_micros` (millionths of a dollar per TAO) in minor units of
/// a currency of `scale` decimals, rounded down (Tessera never credits more than arrived);
/// `None` if it does not fit in an `i64`.
pub fn deposit_value(amount_rao: u64, rate_micros: u64, scale: u32) -> Option<i64> {
    let numerator = u128::from(amount_rao)
        .checked_mul(u128::from(rate_micros))?
        .checked_mul(10u128.checked_pow(scale)?)?;
    let denominator = u128::from(RAO_PER_TAO) * u128::from(RATE_MICROS_PER_USD);
    i64::try_from(numerator / denominator).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_rounds_down() {
        // 1 TAO at $400.00 in cents.
        assert_eq!(deposit_value(RAO_PER_TAO, 400_000_000, 2), Some(40_000));
        // 0.007 TAO at $333.333333 in micro-dollars: 2333.333331 → 2333333.
        assert_eq!(deposit_value(7_000_000, 333_333_333, 6), Some(2_333_333));
        // 1 rao is worth nothing in cents.
        assert_eq!(deposit_value(1, 400_000_000, 2), Some(0));
        assert_eq!(deposit_value(u64::MAX, u64::MAX, 18), None);
    }

    #[test]
    fn statuses_round_trip() {
        for s in DepositStatus::ALL {
            assert_eq!(DepositStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(DepositStatus::parse("pending"), None);
    }
}
