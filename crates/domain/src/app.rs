//! The application object: the domain services wired over a set of ports.

use std::sync::Arc;
use std::time::Duration;

use crate::model::{Currencies, MeteringDefaults};
use crate::ports::{
    AuditRepository, Clock, IdGenerator, MeteringRepository, PasswordHasher, SecretGenerator,
    SessionRepository, ShareRepository, TierRepository, TokenCodec, UserRepository,
    WalletRepository,
};
use crate::services::{
    AuditService, AuthService, MeteringService, ShareService, TierService, UserService,
    WalletService,
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
    pub metering: Arc<dyn MeteringRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub tokens: Arc<dyn TokenCodec>,
    pub secrets: Arc<dyn SecretGenerator>,
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
    /// Server-wide quota and discount fallbacks (`metering.default_quotas`,
    /// `metering.default_discounts`).
    pub metering: MeteringDefaults,
}

impl Default for TesseraConfig {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(15 * 60),
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            password_policy: PasswordPolicy::default(),
            currencies: Currencies::default(),
            metering: MeteringDefaults::default(),
        }
    }
}

pub(crate) struct Deps {
    pub ports: Ports,
    pub config: TesseraConfig,
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
    pub metering: MeteringService,
}

impl Tessera {
    pub fn new(ports: Ports, config: TesseraConfig) -> Self {
        let deps = Arc::new(Deps { ports, config });
        Self {
            users: UserService::new(deps.clone()),
            auth: AuthService::new(deps.clone()),
            wallets: WalletService::new(deps.clone()),
            tiers: TierService::new(deps.clone()),
            shares: ShareService::new(deps.clone()),
            metering: MeteringService::new(deps.clone()),
            audit: AuditService::new(deps),
        }
    }
}
