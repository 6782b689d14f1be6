//! TAO deposits: the operator's chain watcher reports confirmed transfers to users' deposit
//! addresses, and each transfer is credited exactly once (the store keys it by its chain
//! identity); listings per user and for billing administrators.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::actor::{Access, Actor};
use crate::app::{Ports, TesseraConfig};
use crate::counters::Counters;
use crate::error::{Failure, ValidationError, WalletError};
use crate::model::{
    deposit_value, AuditAction, ChainRef, Deposit, DepositQuery, DepositStatus, FieldChange,
    NewDeposit, Reported, User, DEFAULT_WALLET_NAME, RATE_MICROS_PER_USD,
};
use crate::policy;
use crate::ports::{Clock, IdGenerator, SignatureVerifier, UserRepository, WalletRepository};
use crate::services::audit;
use crate::values::{Paging, UserRef};

/// Largest rate accepted, in dollars per TAO (a guard against unit mistakes, not a forecast).
pub const MAX_TAO_USD_RATE: f64 = 1_000_000.0;

/// `POST /api/v1/deposits`: one confirmed transfer, as the watcher saw it on chain.
#[derive(Debug, Clone)]
pub struct DepositInput {
    /// The destination SS58 address.
    pub address: String,
    /// The block: its number in decimal, or its hash as `0x` and 64 hex digits.
    pub block: String,
    pub extrinsic_index: u32,
    /// The amount transferred, in rao (10^-9 TAO).
    pub amount_rao: u64,
    /// Dollars per TAO to apply; else the configured rate.
    pub tao_usd_rate: Option<f64>,
}

/// A page of deposits.
#[derive(Debug, Clone)]
pub struct DepositPage {
    pub deposits: Vec<Deposit>,
    pub has_more: bool,
    pub paging: Paging,
}

#[derive(Clone)]
pub struct DepositService {
    counters: Arc<Counters>,
    users: Arc<dyn UserRepository>,
    wallets: Arc<dyn WalletRepository>,
    signatures: Arc<dyn SignatureVerifier>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    config: Arc<TesseraConfig>,
}

/// The block as the chain identity keys it: a decimal number without leading zeros, or a
/// lower-case `0x` hash of 32 bytes.
pub fn normalize_block(raw: &str) -> Result<String, ValidationError> {
    let raw = raw.trim();
    let invalid = || {
        ValidationError::new(
            "block",
            "must be a block number in decimal or a block hash (0x and 64 hex digits)",
        )
    };
    if let Some(hex) = raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")) {
        if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(format!("0x{}", hex.to_ascii_lowercase()));
        }
        return Err(invalid());
    }
    if raw.is_empty() || raw.len() > 20 || !raw.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid());
    }
    let number: u64 = raw.parse().map_err(|_| invalid())?;
    Ok(number.to_string())
}

/// Dollars per TAO as millionths of a dollar (rounded to the nearest).
pub fn rate_micros(field: &'static str, rate: f64) -> Result<u64, ValidationError> {
    if !rate.is_finite() || rate <= 0.0 || rate > MAX_TAO_USD_RATE {
        return Err(ValidationError::new(
            field,
            format!("must be a number of dollars per TAO above 0 and at most {MAX_TAO_USD_RATE}"),
        ));
    }
    let micros = (rate * RATE_MICROS_PER_USD as f64).round();
    if micros < 1.0 {
        return Err(ValidationError::new(
            field,
            "must be at least 0.000001 dollars per TAO",
        ));
    }
    // In range: at most 10^12.
    Ok(micros as u64)
}

fn shown(v: impl ToString) -> Option<String> {
    Some(v.to_string())
}

impl DepositService {
    pub(crate) fn new(
        ports: &Ports,
        config: &Arc<TesseraConfig>,
        counters: &Arc<Counters>,
    ) -> Self {
        Self {
            counters: counters.clone(),
            users: ports.users.clone(),
            wallets: ports.wallets.clone(),
            signatures: ports.signatures.clone(),
            clock: ports.clock.clone(),
            ids: ports.ids.clone(),
            config: config.clone(),
        }
    }

    /// Records a reported transfer and credits the owner of the address once: a repeat of the
    /// same chain identity (however concurrent) changes nothing and returns the first record
    /// with `duplicate`. An address no user holds is recorded as `Unmatched`; an amount below
    /// `deposits.minimum_rao` as `Ignored`.
    pub async fn report(
        &self,
        actor: &Actor,
        input: DepositInput,
    ) -> Result<Reported, WalletError> {
        policy::authorize(actor, Access::Deposit)?;
        policy::ensure_may_report_deposits(actor)?;
        let address = input.address.trim().to_owned();
        if address.len() > 64 || !self.signatures.is_valid_address(&address) {
            return Err(ValidationError::new("address", "must be an SS58 address").into());
        }
        let block = normalize_block(&input.block)?;
        let amount_rao = i64::try_from(input.amount_rao)
            .ok()
            .filter(|a| *a > 0)
            .ok_or_else(|| {
                ValidationError::new("amount_rao", "must be a whole number of rao above 0")
            })?;
        let cfg = &self.config.deposits;
        let rate = match input.tao_usd_rate {
            Some(rate) => rate_micros("tao_usd_rate", rate)?,
            None => cfg.tao_usd_rate_micros.ok_or_else(|| {
                ValidationError::new(
                    "tao_usd_rate",
                    "required: no TAO to USD rate is configured (deposits.tao_usd_rate)",
                )
            })?,
        };
        let currency = self
            .config
            .currencies
            .parse("currency", &cfg.currency)
            .map_err(|_| {
                Failure::internal("deposits.currency is not one of the configured currencies")
            })?;
        let scale = self.config.currencies.scale(&currency);
        let value = deposit_value(input.amount_rao, rate, scale).ok_or_else(|| {
            ValidationError::new("amount_rao", "the deposit's value is out of range")
        })?;
        let rate = i64::try_from(rate)
            .map_err(|_| ValidationError::new("tao_usd_rate", "out of range"))?;
        let now = self.clock.now();
        let chain = ChainRef {
            block,
            extrinsic_index: input.extrinsic_index,
        };
        let mut details = BTreeMap::new();
        for (field, value) in [
            ("address", address.clone()),
            ("block", chain.block.clone()),
            ("extrinsic_index", chain.extrinsic_index.to_string()),
            ("amount_rao", amount_rao.to_string()),
            ("tao_usd_rate_micros", rate.to_string()),
            ("value", value.to_string()),
            ("currency", currency.as_str().to_owned()),
        ] {
            details.insert(
                field.to_owned(),
                FieldChange {
                    before: None,
                    after: shown(value),
                },
            );
        }
        let event = audit::event(
            self.ids.new_id(),
            now,
            Some(actor),
            None,
            AuditAction::DepositReported,
            details,
        );
        let new = NewDeposit {
            id: self.ids.new_id(),
            chain,
            address,
            amount_rao,
            rate_micros: rate,
            value,
            currency: currency.as_str().to_owned(),
            dust: input.amount_rao < cfg.minimum_rao,
            entry_id: self.ids.new_id(),
            wallet_id: self.ids.new_id(),
            wallet_name: DEFAULT_WALLET_NAME.to_owned(),
            reported_by: Some(actor.principal_id()),
            now,
            audit: Some(event),
        };
        let reported = self.wallets.record_deposit(new).await?;
        if !reported.duplicate && reported.deposit.status == DepositStatus::Credited {
            self.counters.ledger_entries(1);
        }
        Ok(reported)
    }

    /// Every recorded deposit, optionally of one status (billing administrators).
    pub async fn list_all(
        &self,
        actor: &Actor,
        status: Option<DepositStatus>,
        paging: Paging,
    ) -> Result<DepositPage, WalletError> {
        policy::authorize(actor, Access::Read)?;
        policy::ensure_can_list_all_deposits(actor)?;
        self.page(None, status, paging).await
    }

    /// A user's deposits (those that matched the user's address).
    pub async fn list_for_user(
        &self,
        actor: &Actor,
        user: &UserRef,
        status: Option<DepositStatus>,
        paging: Paging,
    ) -> Result<DepositPage, WalletError> {
        policy::authorize(actor, Access::Read)?;
        let owner = self.resolve(user).await?;
        policy::ensure_can_list_deposits_of(actor, &owner).map_err(WalletError::about_user)?;
        self.page(Some(owner.id), status, paging).await
    }

    async fn resolve(&self, user: &UserRef) -> Result<User, WalletError> {
        Ok(crate::services::users::resolve_user(&*self.users, user).await?)
    }

    async fn page(
        &self,
        user_id: Option<uuid::Uuid>,
        status: Option<DepositStatus>,
        paging: Paging,
    ) -> Result<DepositPage, WalletError> {
        let mut deposits = self
            .wallets
            .deposits(DepositQuery {
                user_id,
                status,
                offset: paging.offset,
                limit: paging.limit + 1,
            })
            .await?;
        let has_more = deposits.len() as u64 > paging.limit;
        deposits.truncate(usize::try_from(paging.limit).unwrap_or(usize::MAX));
        Ok(DepositPage {
            deposits,
            has_more,
            paging,
        })
    }
}
