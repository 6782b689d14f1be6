//! Use cases, grouped by capability. Each takes the calling [`crate::Actor`] first and decides
//! authorization itself.

pub mod audit;
pub mod auth;
pub mod deposits;
pub mod identity;
pub mod limits;
pub mod metering;
pub mod retention;
pub mod shares;
pub mod throttle;
pub mod tiers;
pub mod users;
pub mod wallets;
pub mod webhooks;

pub use audit::{AuditPage, AuditService};
pub use auth::AuthService;
pub use deposits::{DepositInput, DepositPage, DepositService};
pub use identity::{ApiKeyInput, IdentityService, KeyChange};
pub use limits::{AnonymousLimit, LimitsConfig, RateLimitService};
pub use metering::{
    ConsumeInput, Consumed, MeteringService, QuotaUsage, UsageInput, UserQuotas,
    DEFAULT_USAGE_LIMIT, MAX_USAGE_LIMIT,
};
pub use retention::{Pruned, RetentionError, RetentionPolicy, RetentionService};
pub use shares::{DelegatedToken, ShareService, SharedUser};
pub use throttle::{AccountKey, CredentialThrottle, LoginLimits, UNKNOWN_ADDRESS};
pub use tiers::{RateLimitInput, TierInput, TierRef, TierService};
pub use users::{
    CreateUserInput, CreatedUser, GrowthPoint, ListUsersInput, NameCheck, UpdateUserInput,
    UserService, UsersPage,
};
pub use wallets::{
    AdjustmentInput, LedgerInput, TransferInput, TransferOutcome, WalletService,
    DEFAULT_LEDGER_LIMIT, MAX_LEDGER_LIMIT,
};
pub use webhooks::{
    CreatedEndpoint, DeliveriesInput, DeliveryResult, EndpointInput, FeedInput, RotatedSecret,
    WebhookConfig, WebhookService, DEFAULT_DELIVERY_LIMIT, DEFAULT_FEED_LIMIT, MAX_FEED_LIMIT,
};
