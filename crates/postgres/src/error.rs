use diesel::result::{DatabaseErrorKind, Error};
use tessera_domain::error::Conflict;
use tessera_domain::ports::RepoError;

/// Translates a diesel error into the domain's terms: unique violations by constraint name,
/// lost connections as `Unavailable`, everything else `Internal` (logged by the caller's edge).
pub(crate) fn map(err: Error) -> RepoError {
    match err {
        Error::NotFound => RepoError::NotFound,
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, ref info) => {
            match info.constraint_name() {
                Some("users_username_key") => RepoError::Conflict(Conflict::DuplicateUsername),
                Some("users_email_key") => RepoError::Conflict(Conflict::DuplicateEmail),
                // Two transactions raced to open a user's first wallet in a currency; the loser
                // may retry (the adapters serialise this on the user row, so it is unexpected).
                Some("wallets_one_default_key") => {
                    RepoError::internal("concurrent default wallet creation")
                }
                Some("users_hotkey_key") => RepoError::Conflict(Conflict::DuplicateHotkey),
                Some("users_fingerprint_hash_key") => {
                    RepoError::Conflict(Conflict::FingerprintTaken)
                }
                Some("tiers_name_key") => RepoError::Conflict(Conflict::DuplicateTierName),
                other => RepoError::internal(format!("unexpected unique violation on {other:?}")),
            }
        }
        Error::DatabaseError(DatabaseErrorKind::CheckViolation, ref info)
            if info.constraint_name() == Some("wallets_balance_non_negative") =>
        {
            RepoError::Conflict(Conflict::InsufficientFunds)
        }
        // SQLSTATE 22003 numeric_value_out_of_range: `balance + amount` left the bigint range.
        Error::DatabaseError(DatabaseErrorKind::Unknown, ref info)
            if info.message() == "bigint out of range" =>
        {
            RepoError::Conflict(Conflict::BalanceOverflow)
        }
        // SQLSTATE 40P01: PostgreSQL broke a lock cycle; the request can simply be retried.
        Error::DatabaseError(DatabaseErrorKind::Unknown, ref info)
            if info.message() == "deadlock detected" =>
        {
            RepoError::Unavailable
        }
        // SQLSTATE 57014 query_canceled by `statement_timeout`.
        Error::DatabaseError(DatabaseErrorKind::Unknown, ref info)
            if info.message() == "canceling statement due to statement timeout" =>
        {
            RepoError::Timeout
        }
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => RepoError::Unavailable,
        Error::DatabaseError(_, ref info) if is_connection_failure(info.message()) => {
            RepoError::Unavailable
        }
        other => RepoError::Internal(tessera_domain::Cause::new(other)),
    }
}

/// Whether the error is a foreign-key violation (the caller knows which reference it means).
pub(crate) fn is_foreign_key_violation(err: &Error) -> bool {
    matches!(
        err,
        Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)
    )
}

/// Messages tokio-postgres gives when the server went away mid-conversation, or when it is
/// shutting down (SQLSTATE 57P01 admin_shutdown, 57P03 cannot_connect_now).
fn is_connection_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("connection closed")
        || m.contains("terminating connection")
        || m.contains("the database system is shutting down")
        || m.contains("the database system is starting up")
        || m.contains("broken pipe")
        || m.contains("connection reset")
}

/// The error type of transaction closures: diesel requires `From<diesel::result::Error>`, which
/// the domain's `RepoError` rightly does not implement.
#[derive(Debug)]
pub(crate) struct TxError(pub RepoError);

impl From<Error> for TxError {
    fn from(err: Error) -> Self {
        Self(map(err))
    }
}

impl From<RepoError> for TxError {
    fn from(err: RepoError) -> Self {
        Self(err)
    }
}

impl From<TxError> for RepoError {
    fn from(err: TxError) -> Self {
        err.0
    }
}
