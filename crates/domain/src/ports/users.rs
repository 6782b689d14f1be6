use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::RepoResult;
use crate::model::{
    AuditEvent, DailyCount, NewUser, StateCounts, User, UserChanges, UserListQuery, UserPage,
};

/// Storage of users.
///
/// Username and email are unique case-insensitively, among all users including soft-deleted
/// ones. Every method that can take away an active superuser (state or permission changes, soft
/// delete, purge) refuses atomically with `Conflict(LastSuperuser)` when it would leave none
/// where there was one.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Inserts a user together with its default wallet (`user.default_wallet`, empty, the
    /// default of its currency) and records its audit event, in one transaction. A `tier_id`
    /// that names no tier gives `NotFound`.
    /// Errors: `NotFound`, `Conflict(DuplicateUsername | DuplicateEmail)`, `Unavailable`.
    async fn create(&self, user: NewUser) -> RepoResult<User>;

    /// Errors: `NotFound`, `Unavailable`.
    async fn get(&self, id: Uuid) -> RepoResult<User>;

    /// By username, case-insensitively. Errors: `NotFound`, `Unavailable`.
    async fn find_by_username(&self, username: &str) -> RepoResult<User>;

    /// The user whose username or email equals `login` case-insensitively, with its password
    /// hash if it has one. When one user's username and another's email both match (usernames
    /// may be email addresses), the username match wins. Errors: `NotFound`, `Unavailable`.
    /// The user holding this hotkey (exact match), in any state. `NotFound` when none does.
    async fn find_by_hotkey(&self, hotkey: &str) -> RepoResult<User>;

    /// Up to `limit` users holding this coldkey (exact match), in any state.
    async fn find_by_coldkey(&self, coldkey: &str, limit: u32) -> RepoResult<Vec<User>>;

    /// The user whose fingerprint hashes to `digest`, in any state. `NotFound` when none does.
    async fn find_by_fingerprint(&self, digest: &str) -> RepoResult<User>;

    async fn find_login(&self, login: &str) -> RepoResult<(User, Option<String>)>;

    /// The stored password hash of a user (`None` when it has no password).
    /// Errors: `NotFound`, `Unavailable`.
    async fn password_hash(&self, id: Uuid) -> RepoResult<Option<String>>;

    /// Applies a partial change (and, if asked, revokes sessions of the user and records the
    /// change's audit event) in one transaction, and sets `updated_at = now`. Setting a
    /// `tier_id` that names no tier gives `NotFound`.
    /// Errors: `NotFound`, `Conflict(DuplicateUsername | DuplicateEmail | LastSuperuser)`,
    /// `Unavailable`.
    async fn update(&self, id: Uuid, changes: UserChanges, now: OffsetDateTime)
        -> RepoResult<User>;

    /// Sets the user's invoice billing flags and, in the same transaction, `allow_negative` on
    /// every wallet of the user (the database's non-negative CHECK reads that copy), and
    /// records `audit`.
    /// Errors: `NotFound`, `Conflict(NegativeBalance)` (turning invoicing off while a wallet is
    /// below zero), `Unavailable`.
    async fn set_invoicing(
        &self,
        id: Uuid,
        invoicing: bool,
        unlimited: bool,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<User>;

    /// One page of the users the query covers and their total. Order: the query's sort (nulls
    /// last, ties by id in the same direction), else creation time then id.
    /// Errors: `Unavailable`.
    async fn list(&self, query: UserListQuery) -> RepoResult<UserPage>;

    /// How many users the query covers (paging ignored). Errors: `Unavailable`.
    async fn count(&self, query: UserListQuery) -> RepoResult<u64>;

    /// How many users are in each state. Kept by the store in the same transaction as every
    /// change that moves a user in or out of a state (create, state change, purge, cascades),
    /// so it is exact at every commit and reading it does not depend on the directory's size.
    /// Errors: `Unavailable`.
    async fn count_by_state(&self) -> RepoResult<StateCounts>;

    /// Users created per UTC day (all states; purged users no longer count), newest day first,
    /// at most `days` days with at least one user. Kept per day like
    /// [`count_by_state`](Self::count_by_state): the cost grows with `days`, not with the
    /// directory. Errors: `Unavailable`.
    async fn growth(&self, days: u32) -> RepoResult<Vec<DailyCount>>;

    /// Whether any user exists at all (bootstrap of the first superuser).
    async fn any_exists(&self) -> RepoResult<bool>;

    /// How many managed users `manager_id` has (an index lookup).
    async fn count_managed_by(&self, manager_id: Uuid) -> RepoResult<u64>;

    /// Removes the user and everything it owns (sessions, wallets and their ledger, idempotency
    /// keys, its managed users and theirs), and records `audit` in the same transaction.
    /// Errors: `NotFound`, `Conflict(LastSuperuser)`, `Unavailable`.
    async fn purge(&self, id: Uuid, audit: Option<AuditEvent>) -> RepoResult<()>;

    /// Up to `limit` users soft-deleted before `cutoff`, longest-deleted first (housekeeping's
    /// work list). Errors: `Unavailable`.
    async fn deleted_before(&self, cutoff: OffsetDateTime, limit: u32) -> RepoResult<Vec<Uuid>>;

    /// [`purge`](Self::purge), but only while the user is still soft-deleted since before
    /// `cutoff`: a user restored (or purged) meanwhile is left alone and gives `false`, decided
    /// atomically with the delete. `audit` is recorded only when the user goes.
    /// Errors: `Unavailable`.
    async fn purge_deleted(
        &self,
        id: Uuid,
        cutoff: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<bool>;

    /// Sets the user's deposit address if it has none yet (a user keeps its first address),
    /// and returns the address the user holds afterwards. Addresses are unique.
    /// Errors: `NotFound`, `Unavailable`.
    async fn assign_payment_address(&self, id: Uuid, address: &str) -> RepoResult<String>;

    /// Up to `limit` users (any state) without a deposit address, oldest first.
    /// Errors: `Unavailable`.
    async fn without_payment_address(&self, limit: u32) -> RepoResult<Vec<Uuid>>;
}
