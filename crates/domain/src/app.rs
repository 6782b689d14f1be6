//! The application object: the domain services wired over a set of ports.

use std::sync::Arc;
use std::time::Duration;

use crate::counters::{Counters, CountersSnapshot};
use crate::model::{Currencies, MeteringDefaults};
use crate::ports::{
    ApiKeyRepository, AuditRepository, Clock, EventRepository, ExternalTokenVerifier,
    GuardRepository, IdGenerator, MeteringRepository, PasswordHasher, PaymentAddresses,
    SecretCipher, SecretGenerator, SessionRepository, ShareRepository, SignatureVerifier,
    TierRepository, TokenCodec, UserRepository, WalletRepository, WebhookRepository, WebhookSender,
};
use crate::services::{
    AuditService, AuthService, CredentialThrottle, DepositService, IdentityService, LimitsConfig,
    MeteringService, RateLimitService, RetentionPolicy, RetentionService, ShareService,
    TierService, UserService, WalletService, WebhookConfig, WebhookService,
};
use crate::values::PasswordPolicy;

/// Every port the domain needs. Build it from adapters (see `tessera-memory`,
/// `tessera-postgres`, `tessera-security`).
#[derive(Clone)]
pub struct Ports {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub wallets: Arc<dyn WalletRepository>,
    pub tiers: Arc<dyn TierRepository>,
    pub shares: Arc<dyn ShareRepository>,
    pub audit: Arc<dyn AuditRepository>,
    pub api_keys: Arc<dyn ApiKeyRepository>,
    pub guards: Arc<dyn GuardRepository>,
    pub metering: Arc<dyn MeteringRepository>,
    /// The event feed (events are written by the other stores, with their changes).
    pub events: Arc<dyn EventRepository>,
    pub webhooks: Arc<dyn WebhookRepository>,
    /// Seals webhook signing secrets; without it endpoints cannot be registered (409
    /// `webhooks_not_configured`).
    pub webhook_cipher: Option<Arc<dyn SecretCipher>>,
    /// Sends webhook requests; without it nothing is delivered.
    pub webhook_sender: Option<Arc<dyn WebhookSender>>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub tokens: Arc<dyn TokenCodec>,
    pub secrets: Arc<dyn SecretGenerator>,
    /// sr25519 verification of Bittensor hotkey and coldkey signatures.
    pub signatures: Arc<dyn SignatureVerifier>,
    /// The trusted external issuer (Chutes "squad" tokens), when one is configured.
    pub external_tokens: Option<Arc<dyn ExternalTokenVerifier>>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
}

/// Domain settings, independent of where they were read from.
#[derive(Debug, Clone)]
pub struct TesseraConfig {
    /// Lifetime of an access token.
    pub access_token_ttl: Duration,
    /// Lifetime of a session (and so of its refresh tokens) since login.
    pub session_ttl: Duration,
    pub password_policy: PasswordPolicy,
    /// The configured currencies, their scales, and the currency of every user's first wallet.
    pub currencies: Currencies,
    pub identity: IdentityConfig,
    pub limits: LimitsConfig,
    /// Server-wide quota and discount fallbacks (`metering.default_quotas`,
    /// `metering.default_discounts`).
    pub metering: MeteringDefaults,
    /// What housekeeping removes, and after how long (`retention.*`).
    pub retention: RetentionPolicy,
    /// Webhook URLs, retries and limits (`webhooks.*`).
    pub webhooks: WebhookConfig,
    /// Deposit addresses and the crediting of reported deposits (`deposits.*`).
    pub deposits: DepositConfig,
}

/// Deposit addresses and deposits (`deposits.*`).
#[derive(Clone)]
pub struct DepositConfig {
    /// Derives each user's deposit address from the operator's master public key; `None`
    /// without a configured key (users then have no `payment_address`).
    pub addresses: Option<Arc<dyn PaymentAddresses>>,
    /// Transfers below this many rao are recorded as `ignored` and not credited (Chutes:
    /// 0.007 TAO).
    pub minimum_rao: u64,
    /// The TAO→USD rate applied when a report brings none, in millionths of a dollar per TAO.
    pub tao_usd_rate_micros: Option<u64>,
    /// The currency deposits are credited in (the rate is per USD, so a USD currency).
    pub currency: String,
}

impl Default for DepositConfig {
    fn default() -> Self {
        Self {
            addresses: None,
            minimum_rao: 7_000_000,
            tao_usd_rate_micros: None,
            currency: "usd".to_owned(),
        }
    }
}

impl std::fmt::Debug for DepositConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DepositConfig")
            .field("addresses", &self.addresses.is_some())
            .field("minimum_rao", &self.minimum_rao)
            .field("tao_usd_rate_micros", &self.tao_usd_rate_micros)
            .field("currency", &self.currency)
            .finish()
    }
}

/// Bittensor signatures, fingerprints and Chutes-style registration.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// How far a signed request's nonce may be from now, in seconds (Chutes: 600).
    pub signature_window_secs: i64,
    /// The same for fingerprint rotations (Chutes: 300, inclusive).
    pub rotation_window_secs: i64,
    /// Lifetime of the token `POST /users/login` issues for a fingerprint (Chutes: 7 days).
    /// It is still checked against its session and the user on every request.
    pub fingerprint_token_ttl: Duration,
    /// Registrations (`POST /users/register`) allowed per client IP per day (Chutes: 3).
    pub registrations_per_ip_per_day: u64,
    /// Admin-created accounts (`POST /users/create_user`) per client IP per day (Chutes: 2).
    pub created_accounts_per_ip_per_day: u64,
    /// Every new Chutes account gets `free_account` (Chutes' `ALL_ACCOUNTS_FREE`).
    pub all_accounts_free: bool,
    /// API keys a user may hold at once.
    pub max_api_keys_per_user: usize,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            signature_window_secs: 600,
            rotation_window_secs: 300,
            fingerprint_token_ttl: Duration::from_secs(7 * 24 * 3600),
            registrations_per_ip_per_day: 3,
            created_accounts_per_ip_per_day: 2,
            all_accounts_free: false,
            max_api_keys_per_user: 100,
        }
    }
}

impl Default for TesseraConfig {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(15 * 60),
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            password_policy: PasswordPolicy::default(),
            currencies: Currencies::default(),
            identity: IdentityConfig::default(),
            limits: LimitsConfig::default(),
            metering: MeteringDefaults::default(),
            retention: RetentionPolicy::default(),
            webhooks: WebhookConfig::default(),
            deposits: DepositConfig::default(),
        }
    }
}

/// Tessera's use cases, ready to be served over HTTP or called from another Rust program.
#[derive(Clone)]
pub struct Tessera {
    pub users: UserService,
    pub auth: AuthService,
    pub wallets: WalletService,
    pub deposits: DepositService,
    pub tiers: TierService,
    pub shares: ShareService,
    pub audit: AuditService,
    pub identity: IdentityService,
    pub limits: RateLimitService,
    pub metering: MeteringService,
    pub retention: RetentionService,
    pub webhooks: WebhookService,
    counters: Arc<Counters>,
}

impl Tessera {
    pub fn new(ports: Ports, config: TesseraConfig) -> Self {
        // One throttle for the application, so a refusal it remembers holds for every service.
        let throttle = CredentialThrottle::new(
            ports.guards.clone(),
            ports.clock.clone(),
            config.limits.login,
        );
        let config = Arc::new(config);
        let counters = Arc::new(Counters::default());
        let (p, c, t, n) = (&ports, &config, &throttle, &counters);
        Self {
            users: UserService::new(p, c, t),
            auth: AuthService::new(p, c, t, n),
            wallets: WalletService::new(p, c, n),
            deposits: DepositService::new(p, c, n),
            tiers: TierService::new(p, c),
            shares: ShareService::new(p, c),
            metering: MeteringService::new(p, c, n),
            audit: AuditService::new(p),
            identity: IdentityService::new(p, c, t, n),
            retention: RetentionService::new(p, c, n),
            limits: RateLimitService::new(p, c),
            webhooks: WebhookService::new(p, c, n),
            counters,
        }
    }

    /// Logins, ledger entries, metering decisions and housekeeping, as counted by this object's
    /// services (the server exports the sum over its workers at `/metrics`).
    pub fn counters(&self) -> CountersSnapshot {
        self.counters.snapshot()
    }
}
