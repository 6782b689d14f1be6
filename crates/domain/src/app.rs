//! The application object: the domain services wired over a set of ports.

use std::sync::Arc;
use std::time::Duration;

use crate::counters::{Counters, CountersSnapshot};
use crate::model::{Currencies, MeteringDefaults};
use crate::ports::{
    ApiKeyRepository, AuditRepository, Clock, EventRepository, ExternalTokenVerifier,
    GuardRepository, IdGenerator, MeteringRepository, PasswordHasher, SecretCipher,
    SecretGenerator, SessionRepository, ShareRepository, SignatureVerifier, TierRepository,
    TokenCodec, UserRepository, WalletRepository, WebhookRepository, WebhookSender,
};
use crate::services::{
    AuditService, AuthService, CredentialThrottle, IdentityService, LimitsConfig, MeteringService,
    RateLimitService, RetentionPolicy, RetentionService, ShareService, TierService, UserService,
    WalletService, WebhookConfig, WebhookService,
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
        }
    }
}

/// Tessera's use cases, ready to be served over HTTP or called from another Rust program.
#[derive(Clone)]
pub struct Tessera {
    pub users: UserService,
    pub auth: AuthService,
    pub wallets: WalletService,
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
