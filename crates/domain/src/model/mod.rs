//! Entities of the domain.

mod audit;
mod credentials;
mod deposit;
mod event;
mod metering;
mod money;
mod permissions;
mod session;
mod share;
mod tier;
mod user;
mod wallet;
mod webhook;

pub use audit::{AuditAction, AuditEvent, AuditQuery, FieldChange};
pub use credentials::{
    ApiKey, ApiKeyScope, ApiKeyScopes, CreatedAccount, FingerprintRotation, IssuedApiKey,
    NewApiKey, Registration, SignedRequest, API_KEY_TOUCH_INTERVAL,
};
pub use deposit::{
    deposit_value, ChainRef, Deposit, DepositQuery, DepositStatus, NewDeposit, Reported,
    RAO_PER_TAO, RATE_MICROS_PER_USD,
};
pub use event::{
    crosses_below, ledger_events, BalancePayload, ChangesPayload, EndpointPayload, Event,
    EventPayload, EventType, FeedCursor, FeedEvent, FeedPage, FeedQuery, LedgerPayload,
    PayloadKind, QuotaPayload,
};
pub use metering::{
    charge, day_of, hour_of, next_reset, Consumption, ConsumptionMode, ConsumptionOutcome,
    CounterKey, Discount, MeteringDefaults, MeteringRates, QuotaOrigin, ResolvedQuota, Source,
    ThresholdOwner, UsageItem, UsagePage, UsageQuery, MAX_THRESHOLD, MAX_THRESHOLDS, PPM,
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
pub use webhook::{
    is_public, Attempt, AttemptRecord, ClaimedDelivery, Delivery, DeliveryQuery, DeliveryStats,
    DeliveryStatus, EndpointChanges, NewEndpoint, NextStep, OutgoingWebhook, Recorded, Redelivered,
    Redelivery, RetryPolicy, SealedSecret, SendOutcome, UrlPolicy, WebhookEndpoint, WebhookUrl,
    MAX_DESCRIPTION_LEN as MAX_WEBHOOK_DESCRIPTION_LEN, MAX_URL_LEN as MAX_WEBHOOK_URL_LEN,
};
