//! Errors a caller can act on: one shared core of failures every capability can meet
//! ([`Failure`]), and one enum per capability with only the variants that capability has, each
//! wrapping the core transparently. Storage ports report [`RepoError`]; policy refuses with
//! [`Denied`]. Each converts into every capability's error in one place, here.

use std::borrow::Cow;
use std::fmt;

use thiserror::Error;

/// One input field that failed validation, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    pub field: Cow<'static, str>,
    pub reason: Cow<'static, str>,
}

impl ValidationError {
    pub fn new(field: impl Into<Cow<'static, str>>, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// What a conflict is about, so HTTP can give a precise `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// Another user holds this username (compared case-insensitively).
    DuplicateUsername,
    /// Another user holds this email (compared case-insensitively).
    DuplicateEmail,
    /// The change would leave no active superuser.
    LastSuperuser,
    /// The user is not in a state that allows this transition.
    InvalidState,
    /// The soft-deleted user's retention period is over: it can no longer be restored, and
    /// housekeeping purges it.
    RetentionExpired,
    /// The debit would take the wallet below zero and its owner is not invoiced.
    InsufficientFunds,
    /// This `Idempotency-Key` was already used for a different request.
    IdempotencyMismatch,
    /// The wallet is soft-deleted: restore it before moving money through it.
    WalletDeleted,
    /// The wallet is not in a state that allows this transition (restoring a live wallet).
    WalletState,
    /// Turning invoicing off would leave a wallet of the user below zero.
    NegativeBalance,
    /// The balance would leave the signed 64-bit range. Services report it as a validation
    /// error (422), since only the amount can cause it.
    BalanceOverflow,
    /// The two wallets of a transfer hold different currencies. Reported as a validation error.
    CurrencyMismatch,
    /// Another tier has this name (compared case-insensitively).
    DuplicateTierName,
    /// The tier is still assigned to users.
    TierInUse,
    /// Another user holds this Bittensor hotkey.
    DuplicateHotkey,
    /// The fingerprint cannot be used (another account's secret would collide).
    FingerprintTaken,
    /// The owner already holds as many of these (wallets, managed users, API keys) as a user
    /// may.
    TooMany,
    /// Webhook endpoints need `webhooks.secret_key`, which seals their signing secrets.
    WebhooksNotConfigured,
}

impl Conflict {
    pub fn code(self) -> &'static str {
        match self {
            Self::DuplicateUsername => "duplicate_username",
            Self::DuplicateEmail => "duplicate_email",
            Self::LastSuperuser => "last_superuser",
            Self::InvalidState => "invalid_state",
            Self::RetentionExpired => "retention_expired",
            Self::InsufficientFunds => "insufficient_funds",
            Self::IdempotencyMismatch => "idempotency_mismatch",
            Self::WalletDeleted => "wallet_deleted",
            Self::WalletState => "invalid_state",
            Self::NegativeBalance => "negative_balance",
            Self::BalanceOverflow => "balance_overflow",
            Self::CurrencyMismatch => "currency_mismatch",
            Self::DuplicateTierName => "duplicate_tier_name",
            Self::TierInUse => "tier_in_use",
            Self::DuplicateHotkey => "duplicate_hotkey",
            Self::FingerprintTaken => "fingerprint_taken",
            Self::TooMany => "limit_reached",
            Self::WebhooksNotConfigured => "webhooks_not_configured",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::DuplicateUsername => "a user with this username already exists",
            Self::DuplicateEmail => "a user with this email already exists",
            Self::LastSuperuser => "the last active superuser cannot be removed or demoted",
            Self::InvalidState => "the user is not in a state that allows this",
            Self::RetentionExpired => {
                "the user was deleted longer ago than the retention period and cannot be restored"
            }
            Self::InsufficientFunds => "insufficient funds: the balance cannot go below zero",
            Self::IdempotencyMismatch => {
                "this Idempotency-Key was already used with a different request"
            }
            Self::WalletDeleted => "the wallet is deleted; restore it first",
            Self::WalletState => "the wallet is not in a state that allows this",
            Self::NegativeBalance => "a wallet of the user has a negative balance",
            Self::BalanceOverflow => "the balance would exceed the representable range",
            Self::CurrencyMismatch => "the wallets hold different currencies",
            Self::DuplicateTierName => "a tier with this name already exists",
            Self::TierInUse => "the tier is still assigned to users",
            Self::DuplicateHotkey => "this hotkey is already registered to a user",
            Self::FingerprintTaken => "this fingerprint cannot be used; choose another",
            Self::TooMany => {
                "the per-user limit for this kind of object is reached; remove one first"
            }
            Self::WebhooksNotConfigured => {
                "webhook endpoints need the server setting webhooks.secret_key"
            }
        }
    }
}

/// The cause of an internal failure, kept for the logs with its whole source chain; no response
/// ever shows it.
pub struct Cause(Box<dyn std::error::Error + Send + Sync + 'static>);

impl Cause {
    /// A cause that is an error of its own (its sources are kept).
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }

    /// A cause described in words.
    pub fn msg(message: impl Into<String>) -> Self {
        Self(message.into().into())
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)?;
        let mut source = self.0.source();
        while let Some(inner) = source {
            write!(f, ": {inner}")?;
            source = inner.source();
        }
        Ok(())
    }
}

impl std::error::Error for Cause {}

impl From<String> for Cause {
    fn from(message: String) -> Self {
        Self::msg(message)
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Self {
        Self::msg(message)
    }
}

/// What a storage adapter may report. Adapters translate their own failures into these:
/// unique violations by constraint name become [`RepoError::Conflict`], pool time-outs and lost
/// connections become [`RepoError::Unavailable`].
#[derive(Debug, Error)]
pub enum RepoError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    #[error("storage unavailable")]
    Unavailable,
    /// A statement ran past the time limit set for its kind (directory queries): the request
    /// is too expensive as asked.
    #[error("statement timeout")]
    Timeout,
    #[error("storage failure: {0}")]
    Internal(Cause),
}

impl RepoError {
    pub fn internal(cause: impl Into<Cause>) -> Self {
        Self::Internal(cause.into())
    }
}

impl PartialEq for RepoError {
    /// Internal failures compare equal to each other whatever their cause (tests compare
    /// outcomes, not messages).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Conflict(a), Self::Conflict(b)) => a == b,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl Eq for RepoError {}

/// Why policy refused. Every capability's error converts from it, so a refusal means the same on
/// every surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Denied {
    /// The caller may not know the object exists: answered as not found (404).
    #[error("not found")]
    NotFound,
    /// The caller can see the object (or the operation announces itself) but may not do this
    /// (403).
    #[error("{message}")]
    Forbidden {
        code: &'static str,
        message: &'static str,
    },
}

impl Denied {
    pub const fn forbidden(message: &'static str) -> Self {
        Self::Forbidden {
            code: "forbidden",
            message,
        }
    }
}

/// The failures every capability shares.
#[derive(Debug, Error)]
pub enum Failure {
    /// The caller may not do this (an object it can already see, or an operation that
    /// announces itself).
    #[error("{message}")]
    Forbidden {
        code: &'static str,
        message: &'static str,
    },
    #[error("{}", .0.message())]
    Conflict(Conflict),
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// Too many attempts (a rate limit, a throttle of presented secrets); retry after the given
    /// number of seconds.
    #[error("too many attempts")]
    Throttled { retry_after_secs: u64 },
    /// The store is unreachable; the request can be retried.
    #[error("storage unavailable")]
    Unavailable,
    /// A directory statement ran past its time limit: narrow the filter or the sort.
    #[error("statement timeout")]
    Timeout,
    /// A bug or an unexpected state; the cause is for the logs only.
    #[error("internal error: {0}")]
    Internal(Cause),
}

impl Failure {
    pub fn internal(cause: impl Into<Cause>) -> Self {
        Self::Internal(cause.into())
    }

    pub const fn forbidden(message: &'static str) -> Self {
        Self::Forbidden {
            code: "forbidden",
            message,
        }
    }

    /// A storage error whose `NotFound` the capability did not expect.
    fn from_repo(err: RepoError, unexpected_not_found: &'static str) -> Self {
        match err {
            RepoError::NotFound => Self::internal(unexpected_not_found),
            RepoError::Conflict(c) => Self::Conflict(c),
            RepoError::Unavailable => Self::Unavailable,
            RepoError::Timeout => Self::Timeout,
            RepoError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<RepoError> for Failure {
    /// For operations that look nothing up by id (housekeeping): a `NotFound` is a bug.
    fn from(err: RepoError) -> Self {
        Self::from_repo(err, "not found")
    }
}

impl From<Cause> for Failure {
    fn from(cause: Cause) -> Self {
        Self::Internal(cause)
    }
}

impl From<Denied> for Failure {
    /// A `NotFound` denial where the capability has no object to be absent is a bug.
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::NotFound => Self::internal("a not-found denial without an object"),
            Denied::Forbidden { code, message } => Self::Forbidden { code, message },
        }
    }
}

/// Declares how a capability error takes the shared errors: its own variant for a storage or
/// policy `NotFound`, the core for everything else.
macro_rules! capability_error {
    ($name:ident, not_found: $not_found:expr) => {
        impl From<RepoError> for $name {
            fn from(err: RepoError) -> Self {
                match err {
                    RepoError::NotFound => $not_found,
                    other => Self::Failure(Failure::from_repo(other, "not found")),
                }
            }
        }

        impl From<Denied> for $name {
            fn from(denied: Denied) -> Self {
                match denied {
                    Denied::NotFound => $not_found,
                    forbidden => Self::Failure(forbidden.into()),
                }
            }
        }

        impl From<ValidationError> for $name {
            fn from(err: ValidationError) -> Self {
                Self::Failure(Failure::Validation(err))
            }
        }

        impl $name {
            /// The shared failure, if this is one.
            pub fn failure(&self) -> Option<&Failure> {
                match self {
                    Self::Failure(f) => Some(f),
                    _ => None,
                }
            }
        }
    };
}

/// Errors of the user-administration use cases.
#[derive(Debug, Error)]
pub enum UserError {
    /// The user does not exist, or the caller may not see it.
    #[error("user not found")]
    NotFound,
    /// A `tier_id` given to create a user names no tier.
    #[error("tier not found")]
    TierNotFound,
    #[error(transparent)]
    Failure(#[from] Failure),
}

capability_error!(UserError, not_found: UserError::NotFound);

/// Errors of the wallet and ledger use cases.
#[derive(Debug, Error)]
pub enum WalletError {
    /// The wallet does not exist, or the caller may not see it.
    #[error("wallet not found")]
    NotFound,
    /// The user named in the request does not exist, or the caller may not see it.
    #[error("user not found")]
    UserNotFound,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl From<RepoError> for WalletError {
    fn from(err: RepoError) -> Self {
        match err {
            RepoError::NotFound => Self::NotFound,
            // Only the amount can take a balance out of range, and only two wallets can differ in
            // currency: both are the request's fault.
            RepoError::Conflict(Conflict::BalanceOverflow) => {
                ValidationError::new("amount", "the resulting balance would be out of range").into()
            }
            RepoError::Conflict(Conflict::CurrencyMismatch) => {
                ValidationError::new("to_wallet", "the wallets hold different currencies").into()
            }
            other => Self::Failure(Failure::from_repo(other, "not found")),
        }
    }
}

impl From<Denied> for WalletError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::NotFound => Self::NotFound,
            forbidden => Self::Failure(forbidden.into()),
        }
    }
}

impl From<ValidationError> for WalletError {
    fn from(err: ValidationError) -> Self {
        Self::Failure(Failure::Validation(err))
    }
}

impl WalletError {
    /// A refusal about a user (listing or opening its wallets): absent means the user.
    pub fn about_user(denied: Denied) -> Self {
        match denied {
            Denied::NotFound => Self::UserNotFound,
            forbidden => Self::Failure(forbidden.into()),
        }
    }
}

/// A user look-up inside a wallet use case: a missing user is `UserNotFound`.
impl From<UserError> for WalletError {
    fn from(err: UserError) -> Self {
        match err {
            UserError::NotFound => Self::UserNotFound,
            UserError::TierNotFound => {
                Failure::internal("tier look-up in a wallet operation").into()
            }
            UserError::Failure(f) => Self::Failure(f),
        }
    }
}

/// Errors of tier administration.
#[derive(Debug, Error)]
pub enum TierError {
    #[error("tier not found")]
    NotFound,
    /// The user named in a tier operation does not exist or is invisible to the caller.
    #[error("user not found")]
    UserNotFound,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl From<RepoError> for TierError {
    fn from(err: RepoError) -> Self {
        match err {
            RepoError::NotFound => Self::NotFound,
            other => Self::Failure(Failure::from_repo(other, "not found")),
        }
    }
}

impl From<Denied> for TierError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::NotFound => Self::UserNotFound,
            forbidden => Self::Failure(forbidden.into()),
        }
    }
}

impl From<ValidationError> for TierError {
    fn from(err: ValidationError) -> Self {
        Self::Failure(Failure::Validation(err))
    }
}

impl From<UserError> for TierError {
    fn from(err: UserError) -> Self {
        match err {
            UserError::NotFound => Self::UserNotFound,
            UserError::TierNotFound => Self::NotFound,
            UserError::Failure(f) => Self::Failure(f),
        }
    }
}

/// Errors of the event feed and webhook endpoints.
#[derive(Debug, Error)]
pub enum WebhookError {
    #[error("webhook endpoint not found")]
    EndpointNotFound,
    #[error("delivery not found")]
    DeliveryNotFound,
    #[error("event not found")]
    EventNotFound,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl From<RepoError> for WebhookError {
    fn from(err: RepoError) -> Self {
        match err {
            RepoError::NotFound => Self::EndpointNotFound,
            other => Self::Failure(Failure::from_repo(other, "not found")),
        }
    }
}

impl From<Denied> for WebhookError {
    fn from(denied: Denied) -> Self {
        Self::Failure(denied.into())
    }
}

impl From<ValidationError> for WebhookError {
    fn from(err: ValidationError) -> Self {
        Self::Failure(Failure::Validation(err))
    }
}

impl From<Cause> for WebhookError {
    fn from(cause: Cause) -> Self {
        Self::Failure(Failure::Internal(cause))
    }
}

/// Errors of metering: quotas, discounts, consumption, usage, invoicing.
#[derive(Debug, Error)]
pub enum MeteringError {
    /// The user does not exist, or the caller may not see it.
    #[error("user not found")]
    UserNotFound,
    /// The day's quota is used up and the balance cannot pay: nothing changed. The quota
    /// resets at `resets_at` (the next 00:00 UTC).
    #[error("quota exceeded and the balance cannot pay for the call")]
    QuotaExceeded { resets_at: time::OffsetDateTime },
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl From<RepoError> for MeteringError {
    fn from(err: RepoError) -> Self {
        match err {
            RepoError::NotFound => Self::UserNotFound,
            RepoError::Conflict(Conflict::BalanceOverflow) => {
                ValidationError::new("cost", "the resulting totals would be out of range").into()
            }
            other => Self::Failure(Failure::from_repo(other, "not found")),
        }
    }
}

impl From<Denied> for MeteringError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::NotFound => Self::UserNotFound,
            forbidden => Self::Failure(forbidden.into()),
        }
    }
}

impl From<ValidationError> for MeteringError {
    fn from(err: ValidationError) -> Self {
        Self::Failure(Failure::Validation(err))
    }
}

impl From<UserError> for MeteringError {
    fn from(err: UserError) -> Self {
        match err {
            UserError::NotFound => Self::UserNotFound,
            UserError::TierNotFound => {
                Failure::internal("tier look-up in a metering operation").into()
            }
            UserError::Failure(f) => Self::Failure(f),
        }
    }
}

/// Errors of authentication: logging in, refreshing, checking a token.
#[derive(Debug, Error)]
pub enum AuthError {
    /// Wrong secret, unknown user, or a user who may not log in: deliberately indistinguishable.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The token is missing, malformed, expired, revoked, or its user can no longer act.
    #[error("invalid or expired token")]
    InvalidToken,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl From<RepoError> for AuthError {
    fn from(err: RepoError) -> Self {
        match err {
            // A session, token or user that is gone: the token no longer works.
            RepoError::NotFound => Self::InvalidToken,
            other => Self::Failure(Failure::from_repo(other, "not found")),
        }
    }
}

impl From<Denied> for AuthError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::NotFound => Self::InvalidToken,
            forbidden => Self::Failure(forbidden.into()),
        }
    }
}

impl From<ValidationError> for AuthError {
    fn from(err: ValidationError) -> Self {
        Self::Failure(Failure::Validation(err))
    }
}

impl From<AuthError> for UserError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidCredentials | AuthError::InvalidToken => {
                Failure::internal("authentication failure inside a user operation").into()
            }
            AuthError::Failure(f) => Self::Failure(f),
        }
    }
}

/// Errors of Bittensor identities, fingerprints and API keys. Each authentication failure is
/// its own variant so the Chutes surface can answer with Chutes' own messages.
#[derive(Debug, Error)]
pub enum IdentityError {
    /// The nonce is missing, not digits, or outside the window.
    #[error("invalid nonce")]
    InvalidNonce,
    /// The signature is not 64 bytes of hex.
    #[error("invalid signature encoding")]
    MalformedSignature,
    /// A key header is not a valid SS58 address.
    #[error("invalid SS58 address")]
    MalformedAddress,
    /// The signature does not verify for the key over the message.
    #[error("invalid request signature for hotkey {hotkey}")]
    SignatureMismatch { hotkey: String, message: String },
    /// A request that no message form covers (a state change signed with a purpose).
    #[error("either payload_str or purpose must be provided")]
    MissingPayload,
    /// The signature of a state-changing request was already used.
    #[error("signature already used")]
    Replayed,
    /// No live user holds the hotkey.
    #[error("no user with hotkey {0}")]
    UnknownHotkey(String),
    /// No key header was given for a fingerprint rotation.
    #[error("no key given")]
    MissingKey,
    /// No live user holds the signing hotkey or coldkey.
    #[error("no user with this hotkey or coldkey")]
    UnknownKey,
    /// Missing, empty or unknown fingerprint.
    #[error("invalid fingerprint")]
    InvalidFingerprint,
    /// Malformed, unknown or revoked API key.
    #[error("invalid api key")]
    InvalidApiKey,
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Failure(#[from] Failure),
}

capability_error!(IdentityError, not_found: IdentityError::NotFound);

impl From<UserError> for IdentityError {
    fn from(err: UserError) -> Self {
        match err {
            UserError::NotFound | UserError::TierNotFound => Self::NotFound,
            UserError::Failure(f) => Self::Failure(f),
        }
    }
}

impl From<AuthError> for IdentityError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidCredentials | AuthError::InvalidToken => Self::InvalidFingerprint,
            AuthError::Failure(f) => Self::Failure(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Error)]
    #[error("socket closed")]
    struct Io;

    #[derive(Debug, Error)]
    #[error("pool failed")]
    struct Pool(#[source] Io);

    #[test]
    fn an_internal_failure_keeps_its_cause_chain_for_the_logs() {
        let failure = UserError::from(RepoError::Internal(Cause::new(Pool(Io))));
        assert_eq!(
            failure.to_string(),
            "internal error: pool failed: socket closed"
        );
    }

    #[test]
    fn not_found_means_each_capabilitys_own_object() {
        assert!(matches!(
            WalletError::from(RepoError::NotFound),
            WalletError::NotFound
        ));
        assert!(matches!(
            WalletError::about_user(Denied::NotFound),
            WalletError::UserNotFound
        ));
        assert!(matches!(
            MeteringError::from(Denied::NotFound),
            MeteringError::UserNotFound
        ));
        assert!(matches!(
            UserError::from(Denied::forbidden("no")),
            UserError::Failure(Failure::Forbidden { message: "no", .. })
        ));
    }
}
