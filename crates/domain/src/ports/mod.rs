//! The traits the domain needs from the outside world. Adapters implement them; services hold
//! them as `Arc<dyn Port>`.
//!
//! Every storage method is one atomic unit: where a use case must change several things
//! together, the port has one method that promises exactly that.

mod audit;
mod clock;
mod credentials;
mod events;
mod metering;
mod payments;
mod security;
mod sessions;
mod shares;
mod signatures;
mod tiers;
mod users;
mod wallets;

pub use audit::AuditRepository;
pub use clock::{Clock, IdGenerator, SystemClock, UuidV7Generator};
pub use credentials::{ApiKeyRepository, GuardRepository};
pub use events::{EventRepository, SecretCipher, WebhookRepository, WebhookSender};
pub use metering::MeteringRepository;
pub use payments::PaymentAddresses;
pub use security::{ExternalTokenVerifier, PasswordHasher, SecretGenerator, TokenCodec};
pub use sessions::SessionRepository;
pub use shares::ShareRepository;
pub use signatures::{SignatureCheck, SignatureVerifier};
pub use tiers::TierRepository;
pub use users::UserRepository;
pub use wallets::WalletRepository;

#[cfg(feature = "mock")]
pub use audit::MockAuditRepository;
#[cfg(feature = "mock")]
pub use clock::{MockClock, MockIdGenerator};
#[cfg(feature = "mock")]
pub use credentials::{MockApiKeyRepository, MockGuardRepository};
#[cfg(feature = "mock")]
pub use events::{MockEventRepository, MockSecretCipher, MockWebhookRepository, MockWebhookSender};
#[cfg(feature = "mock")]
pub use metering::MockMeteringRepository;
#[cfg(feature = "mock")]
pub use payments::MockPaymentAddresses;
#[cfg(feature = "mock")]
pub use security::{
    MockExternalTokenVerifier, MockPasswordHasher, MockSecretGenerator, MockTokenCodec,
};
#[cfg(feature = "mock")]
pub use sessions::MockSessionRepository;
#[cfg(feature = "mock")]
pub use shares::MockShareRepository;
#[cfg(feature = "mock")]
pub use signatures::MockSignatureVerifier;
#[cfg(feature = "mock")]
pub use tiers::MockTierRepository;
#[cfg(feature = "mock")]
pub use users::MockUserRepository;
#[cfg(feature = "mock")]
pub use wallets::MockWalletRepository;

pub use crate::error::RepoError;

pub type RepoResult<T> = Result<T, RepoError>;
