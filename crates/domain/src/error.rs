//! Errors a caller can act on. One enum per capability; each has an `Internal` variant carrying
//! the cause for logs, which HTTP never shows.

use std::borrow::Cow;

use thiserror::Error;

use crate::policy::Denied;
use crate::ports::RepoError;

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
        }
    }
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
    /// The caller can see the user but may not do this.
    #[error("{message}")]
    Forbidden {
        code: &'static str,
        message: &'static str,
    },
    #[error("{}", .0.message())]
    Conflict(Conflict),
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// Too many wrong secrets (a current password) for this account from this address.
    #[error("too many attempts")]
    Throttled { retry_after_secs: u64 },
    /// A directory query ran past its time limit: narrow the filter or the sort.
    #[error("query timeout")]
    Timeout,
    /// The store is unreachable; the request can be retried.
    #[error("storage unavailable")]
    Unavailable,
    #[error("internal error: {0}")]
    Internal(String),
}

impl UserError {
    pub(crate) fn forbidden(message: &'static str) -> Self {
        Self::Forbidden {
            code: "forbidden",
            message,
        }
    }
}

/// Errors of the wallet and ledger use cases.
#[derive(Debug, Error)]
pub enum WalletError {
    /// The wallet does not exist, or the caller may not see it.
    #[error("wallet not found")]
    NotFound,
    /// The user named in the request does not exist, or the caller may not see it.
    #[error("user not found")]
    UserNotFound,
    /// The caller can see the wallet (or user) but may not do this.
    #[error("{message}")]
    Forbidden {
        code: &'static str,
        message: &'static str,
    },
    /// `InsufficientFunds`, `IdempotencyMismatch`, `WalletDeleted`, `WalletState`.
    #[error("{}", .0.message())]
    Conflict(Conflict),
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("storage unavailable")]
    Unavailable,
    #[error("internal error: {0}")]
    Internal(String),
}

impl WalletError {
    pub(crate) fn forbidden(message: &'static str) -> Self {
        Self::Forbidden {
            code: "forbidden",
            message,
        }
    }
}

impl From<RepoError> for WalletError {
    fn from(err: RepoError) -> Self {
        match err {
            RepoError::NotFound => Self::NotFound,
            RepoError::Conflict(Conflict::BalanceOverflow) => Self::Validation(
                ValidationError::new("amount", "the resulting balance would be out of range"),
            ),
            RepoError::Conflict(Conflict::CurrencyMismatch) => Self::Validation(
                ValidationError::new("to_wallet", "the wallets hold different currencies"),
            ),
            RepoError::Conflict(c) => Self::Conflict(c),
            RepoError::Unavailable | RepoError::Timeout => Self::Unavailable,
            RepoError::Internal(cause) => Self::Internal(cause),
        }
    }
}

/// A user look-up inside a wallet use case: a missing user is `UserNotFound`.
impl From<UserError> for WalletError {
    fn from(err: UserError) -> Self {
        match err {
            UserError::NotFound => Self::UserNotFound,
            // No wallet use case names a tier.
            UserError::TierNotFound => Self::Internal("tier look-up in a wallet operation".into()),
            UserError::Forbidden { code, message } => Self::Forbidden { code, message },
            UserError::Conflict(c) => Self::Conflict(c),
            UserError::Validation(v) => Self::Validation(v),
            UserError::Throttled { .. } => {
                Self::Internal("throttle inside a wallet operation".into())
            }
            UserError::Unavailable | UserError::Timeout => Self::Unavailable,
            UserError::Internal(cause) => Self::Internal(cause),
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
    #[error("{message}")]
    Forbidden {
        code: &'static str,
        message: &'static str,
    },
    #[error("{}", .0.message())]
    Conflict(Conflict),
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("storage unavailable")]
    Unavailable,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<RepoError> for TierError {
    fn from(err: RepoError) -> Self {
        match err {
            RepoError::NotFound => Self::NotFound,
            RepoError::Conflict(c) => Self::Conflict(c),
            RepoError::Unavailable | RepoError::Timeout => Self::Unavailable,
            RepoError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<UserError> for TierError {
    fn from(err: UserError) -> Self {
        match err {
            UserError::NotFound => Self::UserNotFound,
            UserError::TierNotFound => Self::NotFound,
            UserError::Forbidden { code, message } => Self::Forbidden { code, message },
            UserError::Conflict(c) => Self::Conflict(c),
            UserError::Validation(v) => Self::Validation(v),
            UserError::Throttled { .. } => {
                Self::Internal("throttle inside a tier operation".into())
            }
            UserError::Unavailable | UserError::Timeout => Self::Unavailable,
            UserError::Internal(cause) => Self::Internal(cause),
        }
    }
}

/// Errors of metering: quotas, discounts, consumption, usage, invoicing.
#[derive(Debug, Error)]
pub enum MeteringError {
    /// The user does not exist, or the caller may not see it.
    #[error("user not found")]
    UserNotFound,
    /// The caller can see the user but may not do this.
    #[error("{message}")]
    Forbidden {
        code: &'static str,
        message: &'static str,
    },
    /// The day's quota is used up and the balance cannot pay: nothing changed. The quota
    /// resets at `resets_at` (the next 00:00 UTC).
    #[error("quota exceeded and the balance cannot pay for the call")]
    QuotaExceeded { resets_at: time::OffsetDateTime },
    /// `IdempotencyMismatch`, `NegativeBalance`.
    #[error("{}", .0.message())]
    Conflict(Conflict),
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("storage unavailable")]
    Unavailable,
    #[error("internal error: {0}")]
    Internal(String),
}

impl MeteringError {
    pub(crate) fn forbidden(message: &'static str) -> Self {
        Self::Forbidden {
            code: "forbidden",
            message,
        }
    }
}

impl From<RepoError> for MeteringError {
    fn from(err: RepoError) -> Self {
        match err {
            RepoError::NotFound => Self::UserNotFound,
            RepoError::Conflict(Conflict::BalanceOverflow) => Self::Validation(
                ValidationError::new("cost", "the resulting totals would be out of range"),
            ),
            RepoError::Conflict(c) => Self::Conflict(c),
            RepoError::Unavailable | RepoError::Timeout => Self::Unavailable,
            RepoError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<UserError> for MeteringError {
    fn from(err: UserError) -> Self {
        match err {
            UserError::NotFound => Self::UserNotFound,
            UserError::TierNotFound => {
                Self::Internal("tier look-up in a metering operation".into())
            }
            UserError::Forbidden { code, message } => Self::Forbidden { code, message },
            UserError::Conflict(c) => Self::Conflict(c),
            UserError::Validation(v) => Self::Validation(v),
            UserError::Throttled { .. } => {
                Self::Internal("throttle inside a metering operation".into())
            }
            UserError::Unavailable | UserError::Timeout => Self::Unavailable,
            UserError::Internal(cause) => Self::Internal(cause),
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
    /// The user must change their (temporary) password before doing anything else.
    #[error("password change required")]
    PasswordChangeRequired,
    /// The credential may not do this (a scoped key logging out, a delegated token minting
    /// another).
    #[error("{message}")]
    Forbidden {
        code: &'static str,
        message: &'static str,
    },
    /// Too many failed attempts for this account from this address, or from this address;
    /// retry after the given number of seconds.
    #[error("too many attempts")]
    Throttled { retry_after_secs: u64 },
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("storage unavailable")]
    Unavailable,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<RepoError> for UserError {
    fn from(err: RepoError) -> Self {
        match err {
            RepoError::NotFound => Self::NotFound,
            RepoError::Conflict(c) => Self::Conflict(c),
            RepoError::Timeout => Self::Timeout,
            RepoError::Unavailable => Self::Unavailable,
            RepoError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<RepoError> for AuthError {
    fn from(err: RepoError) -> Self {
        match err {
            RepoError::NotFound => Self::InvalidToken,
            RepoError::Conflict(c) => Self::Internal(format!("unexpected conflict: {c:?}")),
            RepoError::Unavailable | RepoError::Timeout => Self::Unavailable,
            RepoError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<AuthError> for UserError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Validation(v) => Self::Validation(v),
            AuthError::Unavailable => Self::Unavailable,
            AuthError::Internal(cause) => Self::Internal(cause),
            AuthError::InvalidCredentials | AuthError::InvalidToken => {
                Self::Internal("authentication failure inside a user operation".into())
            }
            AuthError::PasswordChangeRequired => Self::Forbidden {
                code: "password_change_required",
                message: "you must change your password first",
            },
            AuthError::Forbidden { code, message } => Self::Forbidden { code, message },
            AuthError::Throttled { retry_after_secs } => Self::Throttled { retry_after_secs },
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
    /// A GET or DELETE of a route without a purpose: nothing to sign.
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
    /// Too many attempts from this client; retry after the given number of seconds.
    #[error("too many requests")]
    Throttled { retry_after_secs: u64 },
    #[error("{message}")]
    Forbidden {
        code: &'static str,
        message: &'static str,
    },
    #[error("not found")]
    NotFound,
    #[error("{}", .0.message())]
    Conflict(Conflict),
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("storage unavailable")]
    Unavailable,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<RepoError> for IdentityError {
    fn from(err: RepoError) -> Self {
        match err {
            RepoError::NotFound => Self::NotFound,
            RepoError::Conflict(c) => Self::Conflict(c),
            RepoError::Unavailable | RepoError::Timeout => Self::Unavailable,
            RepoError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<UserError> for IdentityError {
    fn from(err: UserError) -> Self {
        match err {
            UserError::NotFound | UserError::TierNotFound => Self::NotFound,
            UserError::Forbidden { code, message } => Self::Forbidden { code, message },
            UserError::Conflict(c) => Self::Conflict(c),
            UserError::Validation(v) => Self::Validation(v),
            UserError::Throttled { retry_after_secs } => Self::Throttled { retry_after_secs },
            UserError::Unavailable | UserError::Timeout => Self::Unavailable,
            UserError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<AuthError> for IdentityError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidCredentials | AuthError::InvalidToken => Self::InvalidFingerprint,
            AuthError::PasswordChangeRequired => Self::Forbidden {
                code: "password_change_required",
                message: "You must change your password first",
            },
            AuthError::Forbidden { code, message } => Self::Forbidden { code, message },
            AuthError::Throttled { retry_after_secs } => Self::Throttled { retry_after_secs },
            AuthError::Validation(v) => Self::Validation(v),
            AuthError::Unavailable => Self::Unavailable,
            AuthError::Internal(cause) => Self::Internal(cause),
        }
    }
}

/// A rate limit refused the call.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LimitError {
    #[error("rate limit exceeded")]
    Limited { retry_after_secs: u64 },
    #[error("storage unavailable")]
    Unavailable,
    #[error("internal error: {0}")]
    Internal(String),
}

// Policy refusals, in each capability's words.

impl From<Denied> for UserError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::NotFound => Self::NotFound,
            Denied::Forbidden { code, message } => Self::Forbidden { code, message },
        }
    }
}

impl From<Denied> for WalletError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::NotFound => Self::NotFound,
            Denied::Forbidden { code, message } => Self::Forbidden { code, message },
        }
    }
}

impl From<Denied> for TierError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::NotFound => Self::UserNotFound,
            Denied::Forbidden { code, message } => Self::Forbidden { code, message },
        }
    }
}

impl From<Denied> for MeteringError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::NotFound => Self::UserNotFound,
            Denied::Forbidden { code, message } => Self::Forbidden { code, message },
        }
    }
}

impl From<Denied> for IdentityError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::NotFound => Self::NotFound,
            Denied::Forbidden { code, message } => Self::Forbidden { code, message },
        }
    }
}

impl From<Denied> for AuthError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::NotFound => Self::InvalidToken,
            Denied::Forbidden { code, message } => Self::Forbidden { code, message },
        }
    }
}
