//! Entities of the domain.

mod audit;
mod credentials;
mod metering;
mod money;
mod permissions;
mod session;
mod share;
mod tier;
mod user;
mod wallet;

pub use audit::{AuditAction, AuditEvent, AuditQuery, FieldChange};
pub use credentials::{
    ApiKey, ApiKeyScope, ApiKeyScopes, CreatedAccount, FingerprintRotation, IssuedApiKey,
    NewApiKey, Registration, SignedRequest, API_KEY_TOUCH_INTERVAL,
};
pub use metering::{
    charge, day_of, hour_of, next_reset, Consumption, ConsumptionMode, ConsumptionOutcome,
    CounterKey, Discount, MeteringDefaults, MeteringRates, QuotaOrigin, ResolvedQuota, Source,
    UsageItem, UsagePage, UsageQuery, PPM,
};
pub use money::{is_currency_code, Currencies, Currency, Money};
pub use permissions::{Permission, Permissions};
pub use session::{
    AccessClaims, DelegatedCheck, NewSession, RefreshOutcome, Session, SessionCheck, TokenPair,
};
pub use share::{NewShare, Scope, ScopeSet, Share};
pub use tier::{RateLimit, ResourceId, Tier, TierSpec};
pub use user::{
    display_name, DailyCount, NewUser, RevokeSessions, StateCounts, User, UserChanges,
    UserListQuery, UserPage, UserState,
};
pub use wallet::{
    BalanceChange, ChangeTarget, DefaultWallet, EntryKind, IdempotencyClaim, LedgerCursor,
    LedgerEntry, LedgerPage, NewTransfer, NewWallet, Posted, Transfer, Wallet, WalletSummary,
    DEFAULT_WALLET_NAME,
};
