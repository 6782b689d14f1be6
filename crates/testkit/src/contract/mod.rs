#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The storage contract suite: what every implementation of the storage ports must do, as
//! executable cases, one file per capability: users, the last-superuser rule, sessions, wallets
//! and their ledger ([`wallets`]), the directory, tiers, the audit trail, shares, credentials,
//! metering ([`metering`]), retention, and the event outbox with the webhook queue
//! ([`events`]). This file holds what they share: [`Stores`], the helpers and fixtures, and
//! [`contract_tests!`](crate::contract_tests), which lists every case.
//!
//! Each case is a `pub async fn` taking fresh, empty [`Stores`]. An adapter runs the whole suite
//! with [`contract_tests!`](crate::contract_tests), giving it an `async` expression that builds
//! isolated stores:
//!
//! ```ignore
//! tessera_testkit::contract_tests!(async { tessera_testkit::contract::Stores::memory() });
//! ```
//!
//! Cases assume only that the store is empty when they start; every id and name is generated,
//! and every timestamp is truncated to whole microseconds (PostgreSQL's precision).

use std::fmt::Debug;
use std::sync::Arc;

use tessera_domain::model::{
    AuditEvent, DefaultWallet, NewSession, NewUser, Permission, Permissions, RevokeSessions,
    Session, User, UserChanges, UserListQuery, UserState,
};
use tessera_domain::ports::{
    ApiKeyRepository, AuditRepository, EventRepository, GuardRepository, MeteringRepository,
    RepoError, RepoResult, SessionRepository, ShareRepository, TierRepository, UserRepository,
    WalletRepository, WebhookRepository,
};
use tessera_domain::Conflict;
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

mod audit;
pub use audit::*;

mod credentials;
pub use credentials::*;

mod deposits;
pub use deposits::*;

mod directory;
pub use directory::*;

pub mod events;
pub use events::*;

pub mod metering;
pub use metering::*;

mod retention;
pub use retention::*;

mod sessions;
pub use sessions::*;

mod shares;
pub use shares::*;

mod superusers;
pub use superusers::*;

mod tiers;
pub use tiers::*;

mod users;
pub use users::*;

pub mod wallets;
pub use wallets::*;

#[doc(hidden)]
pub use tokio as __tokio;

/// The storage ports under test, backed by one fresh, isolated store.
#[derive(Clone)]
pub struct Stores {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub tiers: Arc<dyn TierRepository>,
    pub audit: Arc<dyn AuditRepository>,
    pub wallets: Arc<dyn WalletRepository>,
    pub shares: Arc<dyn ShareRepository>,
    pub api_keys: Arc<dyn ApiKeyRepository>,
    pub guards: Arc<dyn GuardRepository>,
    pub metering: Arc<dyn MeteringRepository>,
    pub events: Arc<dyn EventRepository>,
    pub webhooks: Arc<dyn WebhookRepository>,
}

impl Stores {
    /// Every port from one store.
    pub fn of<S>(store: S) -> Self
    where
        S: UserRepository
            + SessionRepository
            + TierRepository
            + AuditRepository
            + WalletRepository
            + ShareRepository
            + ApiKeyRepository
            + GuardRepository
            + MeteringRepository
            + EventRepository
            + WebhookRepository
            + 'static,
    {
        let store = Arc::new(store);
        Self {
            users: store.clone(),
            sessions: store.clone(),
            tiers: store.clone(),
            audit: store.clone(),
            wallets: store.clone(),
            shares: store.clone(),
            api_keys: store.clone(),
            guards: store.clone(),
            metering: store.clone(),
            events: store.clone(),
            webhooks: store,
        }
    }

    /// A fresh in-memory store.
    pub fn memory() -> Self {
        Self::of(tessera_memory::MemoryStore::new())
    }
}

/// Expands to one `#[tokio::test]` per contract case. `$make` is an expression whose `.await`
/// gives fresh, isolated [`Stores`]; it is evaluated once per test.
#[macro_export]
macro_rules! contract_tests {
    ($make:expr) => {
        $crate::__contract_cases! {
            $make;
            // users.rs
            create_and_get_roundtrip,
            duplicate_username_in_other_case_conflicts,
            duplicate_email_in_other_case_conflicts,
            username_conflict_is_reported_before_email,
            soft_deleted_users_keep_their_names,
            update_to_taken_name_conflicts_and_changes_nothing,
            update_own_name_in_other_case_is_fine,
            find_by_username_ignores_case,
            find_login_by_username_or_email,
            email_shaped_usernames_are_the_users_own_email,
            missing_users_are_not_found,
            partial_update_leaves_other_fields_alone,
            update_applies_every_field,
            update_sets_updated_at,
            purge_cascades_to_managed_users_and_sessions,
            any_exists_reflects_any_user,
            concurrent_creates_of_one_username,
            // superusers.rs
            last_superuser_cannot_be_demoted,
            one_of_two_superusers_can_be_demoted,
            last_superuser_cannot_be_deleted_or_deactivated,
            last_superuser_cannot_be_purged,
            inactive_superusers_do_not_count,
            users_are_unconstrained_without_superusers,
            concurrent_demotions_keep_one_superuser,
            // sessions.rs
            session_start_records_login,
            check_returns_revoked_and_expired_sessions,
            revoke_is_idempotent,
            revoke_all_spares_kept_session,
            update_revokes_sessions,
            refresh_tokens_rotate_in_a_chain,
            reused_refresh_token_revokes_session,
            unknown_refresh_token_is_invalid,
            expired_session_refresh_is_invalid,
            revoked_session_refresh_is_invalid,
            concurrent_refresh_rotates_once,
            // wallets/balances.rs
            default_wallet_is_created_with_the_user,
            wallets_open_as_default_only_when_none,
            adjustment_moves_balance_and_writes_entry,
            debit_below_zero_refused_unless_allow_negative,
            overflow_is_refused,
            wallet_comes_with_its_owner,
            session_check_reads_the_wallet_summary_too,
            soft_deleted_wallet_refuses_changes,
            restore_keeps_one_default,
            purge_removes_wallets_and_ledger,
            summaries_show_default_balances_and_counts,
            // wallets/ledger.rs
            idempotent_replay_returns_the_same_entry,
            idempotency_mismatch_is_detected,
            default_target_opens_wallet_only_with_the_change,
            transfer_moves_both_and_conserves,
            transfer_across_currencies_is_refused,
            ledger_is_newest_first_and_pages_by_cursor,
            concurrent_adjustments_keep_the_balance_exact,
            concurrent_replays_create_one_entry,
            concurrent_opposite_transfers_conserve,
            // wallets/audit.rs
            wallet_changes_record_their_audit_event,
            replays_and_refusals_record_no_wallet_event,
            // directory/filters.rs
            filter_username_and_email_by_each_operator,
            filter_created_by_by_username_id_and_contains,
            filter_dates_with_inclusive_bounds,
            filter_is_local_and_state,
            filter_tier_by_name_id_and_contains,
            filter_conditions_are_anded,
            // directory/search.rs
            search_covers_username_email_first_and_last_name,
            search_filters_and_name_match_metacharacters_literally,
            name_matches_the_display_name,
            // directory/listing.rs
            list_orders_pages_and_counts,
            list_visible_to_self_and_managed,
            sort_by_every_field_nulls_last_ties_by_id,
            paging_through_ties_never_repeats_or_skips,
            filters_matching_thousands_page_like_filters_matching_few,
            cursor_pages_keep_their_order_under_concurrent_inserts,
            cursor_pages_agree_with_offset_pages_past_thousands,
            creator_order_follows_renames_and_purges_past_thousands,
            // directory/counts.rs
            count_equals_list_total_for_every_query,
            growth_counts_users_per_utc_day_newest_first,
            state_counts_move_with_every_change,
            state_counts_stay_exact_under_concurrent_changes,
            // tiers.rs
            tiers_round_trip_with_quotas_and_rate_limits,
            tier_names_are_unique_in_any_case,
            tier_update_replaces_contents_and_renames,
            tiers_are_listed_by_name_case_insensitively,
            tier_in_use_cannot_be_deleted,
            unknown_tier_on_user_create_or_update_is_not_found,
            // audit.rs
            audit_events_of_every_store_operation_are_listed,
            audit_filters_by_actor_target_action_and_time,
            audit_cursor_pages_are_stable_over_equal_times,
            failed_changes_record_no_audit_event,
            date_bounds_compare_at_full_precision,
            // shares.rs
            shares_upsert_change_list_and_revoke,
            shares_need_existing_users,
            shares_go_with_a_purged_user,
            list_visible_to_includes_users_who_shared,
            check_delegated_reads_both_parties_and_the_share,
            concurrent_puts_of_one_share_create_it_once,
            // credentials.rs
            api_keys_round_trip_find_touch_and_revoke,
            api_key_changes_record_their_audit_event,
            api_keys_go_with_a_purged_user,
            signatures_are_claimed_once_even_concurrently,
            hits_count_per_key_and_window_atomically,
            hotkeys_and_fingerprints_are_unique,
            // metering.rs
            quotas_and_discounts_replace_all,
            rates_read_user_rows_and_tier_defaults,
            consumption_uses_quota_then_balance_then_refuses,
            invoiced_consumption_goes_negative_and_free_is_never_charged,
            invoiced_consumption_opens_a_missing_default_wallet,
            keyed_consumption_replays_its_first_decision,
            usage_pages_group_and_filter,
            purge_removes_metering_rows,
            concurrent_consumption_is_exact,
            // retention.rs
            users_deleted_before_the_cutoff_are_purged_once,
            ended_sessions_are_pruned_and_live_ones_kept,
            old_idempotency_keys_are_forgotten_and_recent_ones_kept,
            old_usage_keys_and_past_quota_counters_are_pruned,
            // events.rs
            changes_write_their_events_and_failed_changes_none,
            ledger_entries_write_wallet_events_with_the_balance,
            balance_thresholds_fire_once_per_crossing,
            quota_exhaustion_is_written_once_per_counter_and_day,
            a_stored_cursor_reads_every_event_once_while_writers_run,
            fan_out_follows_subscriptions_and_claims_are_exclusive,
            leases_stale_records_retries_and_disabling,
            // deposits.rs
            payment_addresses_are_assigned_once_and_unique,
            a_deposit_is_credited_once,
            dust_is_ignored_and_unknown_addresses_are_unmatched,
            concurrent_reports_of_one_transfer_credit_once,
            purge_keeps_deposit_records,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __contract_cases {
    ($make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[$crate::contract::__tokio::test(
                flavor = "multi_thread",
                worker_threads = 2,
                crate = "tessera_testkit::contract::__tokio"
            )]
            async fn $case() {
                // The guard (a test database, say) lives until the case is over.
                let (stores, _guard) = $crate::contract::IntoStores::into_parts($make.await);
                $crate::contract::$case(stores).await;
            }
        )+
    };
}

/// What a `contract_tests!` factory may produce: bare [`Stores`], or stores with a guard that
/// must outlive the case (for example the test database behind them).
pub trait IntoStores {
    fn into_parts(self) -> (Stores, Box<dyn std::any::Any>);
}

impl IntoStores for Stores {
    fn into_parts(self) -> (Stores, Box<dyn std::any::Any>) {
        (self, Box::new(()))
    }
}

impl<G: 'static> IntoStores for (Stores, G) {
    fn into_parts(self) -> (Stores, Box<dyn std::any::Any>) {
        (self.0, Box::new(self.1))
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Now, in UTC, truncated to whole microseconds so it survives a PostgreSQL round trip.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .expect("a valid nanosecond")
}

/// A random lower-case username (letters and digits, 24 characters).
pub fn unique_username() -> String {
    format!("user{}", &Uuid::new_v4().simple().to_string()[..20])
}

/// A random string shaped like a stored argon2id hash.
pub fn fake_hash() -> String {
    format!("$argon2id$v=19$m=19456,t=2,p=1${}", Uuid::new_v4().simple())
}

/// A random refresh-token digest, shaped like hex SHA-256.
pub fn digest() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

pub fn superuser() -> Permissions {
    Permissions::NONE.with(Permission::Superuser)
}

/// The default wallet every new user gets: a fresh id, `usd`.
pub fn default_wallet() -> DefaultWallet {
    DefaultWallet {
        id: Uuid::now_v7(),
        name: "Main".into(),
        currency: "usd".into(),
    }
}

/// A login user with a random username, `<username>@example.com` and a password.
pub fn new_user() -> NewUser {
    let username = unique_username();
    NewUser {
        id: Uuid::now_v7(),
        email: Some(format!("{username}@example.com")),
        username: Some(username),
        first_name: None,
        last_name: None,
        password_hash: Some(fake_hash()),
        hotkey: None,
        coldkey: None,
        fingerprint_digest: None,
        permissions: Permissions::NONE,
        tier_id: None,
        manager_id: None,
        must_change_password: false,
        created_by: None,
        now: now(),
        default_wallet: default_wallet(),
        audit: None,
    }
}

pub fn new_superuser() -> NewUser {
    new_user().permissions(superuser())
}

/// A managed user: no login identity, no credentials.
pub fn new_managed_user(manager: Uuid) -> NewUser {
    NewUser {
        id: Uuid::now_v7(),
        username: None,
        email: None,
        first_name: Some("Managed".into()),
        last_name: None,
        password_hash: None,
        hotkey: None,
        coldkey: None,
        fingerprint_digest: None,
        permissions: Permissions::NONE,
        tier_id: None,
        manager_id: Some(manager),
        must_change_password: false,
        created_by: Some(manager),
        now: now(),
        default_wallet: default_wallet(),
        audit: None,
    }
}

/// Chained setters on a [`NewUser`]: a case starts from [`new_user`], [`new_superuser`] or
/// [`new_managed_user`] and changes only the fields it is about.
///
/// ```ignore
/// let ada = create(&s, new_user().username("ada").email(None).created_at(t)).await;
/// let member = new_user().tier_id(gold.id).created_by(root.id).password_hash(None);
/// ```
///
/// Text fields take a string (`&str` or `String`: set) or an `Option<String>` (as is, so `None`
/// clears); id fields take a [`Uuid`] or an `Option<Uuid>`.
pub trait UserBuilder: Sized {
    fn id(self, id: Uuid) -> Self;
    fn username(self, username: impl Text) -> Self;
    fn email(self, email: impl Text) -> Self;
    fn first_name(self, first_name: impl Text) -> Self;
    fn last_name(self, last_name: impl Text) -> Self;
    fn password_hash(self, hash: impl Text) -> Self;
    fn hotkey(self, hotkey: impl Text) -> Self;
    fn coldkey(self, coldkey: impl Text) -> Self;
    fn fingerprint_digest(self, digest: impl Text) -> Self;
    fn permissions(self, permissions: Permissions) -> Self;
    fn tier_id(self, tier: impl Into<Option<Uuid>>) -> Self;
    fn manager_id(self, manager: impl Into<Option<Uuid>>) -> Self;
    fn created_by(self, creator: impl Into<Option<Uuid>>) -> Self;
    fn must_change_password(self, must: bool) -> Self;
    /// The creation time (`NewUser::now`).
    fn created_at(self, at: OffsetDateTime) -> Self;
    /// The audit event recorded with the insert.
    fn audit(self, event: AuditEvent) -> Self;
}

impl UserBuilder for NewUser {
    fn id(self, id: Uuid) -> Self {
        Self { id, ..self }
    }
    fn username(self, username: impl Text) -> Self {
        Self {
            username: username.into_text(),
            ..self
        }
    }
    fn email(self, email: impl Text) -> Self {
        Self {
            email: email.into_text(),
            ..self
        }
    }
    fn first_name(self, first_name: impl Text) -> Self {
        Self {
            first_name: first_name.into_text(),
            ..self
        }
    }
    fn last_name(self, last_name: impl Text) -> Self {
        Self {
            last_name: last_name.into_text(),
            ..self
        }
    }
    fn password_hash(self, hash: impl Text) -> Self {
        Self {
            password_hash: hash.into_text(),
            ..self
        }
    }
    fn hotkey(self, hotkey: impl Text) -> Self {
        Self {
            hotkey: hotkey.into_text(),
            ..self
        }
    }
    fn coldkey(self, coldkey: impl Text) -> Self {
        Self {
            coldkey: coldkey.into_text(),
            ..self
        }
    }
    fn fingerprint_digest(self, digest: impl Text) -> Self {
        Self {
            fingerprint_digest: digest.into_text(),
            ..self
        }
    }
    fn permissions(self, permissions: Permissions) -> Self {
        Self {
            permissions,
            ..self
        }
    }
    fn tier_id(self, tier: impl Into<Option<Uuid>>) -> Self {
        Self {
            tier_id: tier.into(),
            ..self
        }
    }
    fn manager_id(self, manager: impl Into<Option<Uuid>>) -> Self {
        Self {
            manager_id: manager.into(),
            ..self
        }
    }
    fn created_by(self, creator: impl Into<Option<Uuid>>) -> Self {
        Self {
            created_by: creator.into(),
            ..self
        }
    }
    fn must_change_password(self, must_change_password: bool) -> Self {
        Self {
            must_change_password,
            ..self
        }
    }
    fn created_at(self, at: OffsetDateTime) -> Self {
        Self { now: at, ..self }
    }
    fn audit(self, event: AuditEvent) -> Self {
        Self {
            audit: Some(event),
            ..self
        }
    }
}

/// A value for a text field of [`UserBuilder`]: a string sets it, an `Option<String>` is taken
/// as is.
pub trait Text {
    fn into_text(self) -> Option<String>;
}

impl Text for &str {
    fn into_text(self) -> Option<String> {
        Some(self.to_owned())
    }
}

impl Text for String {
    fn into_text(self) -> Option<String> {
        Some(self)
    }
}

impl Text for Option<String> {
    fn into_text(self) -> Option<String> {
        self
    }
}

pub async fn create(s: &Stores, user: NewUser) -> User {
    s.users.create(user).await.expect("create user")
}

/// The change the users service makes for a soft delete.
pub fn soft_delete(at: OffsetDateTime) -> UserChanges {
    UserChanges {
        state: Some(UserState::Deleted),
        deleted_at: Some(Some(at)),
        tokens_valid_after: Some(at),
        revoke_sessions: RevokeSessions::All,
        ..UserChanges::default()
    }
}

pub fn with_state(state: UserState) -> UserChanges {
    UserChanges {
        state: Some(state),
        ..UserChanges::default()
    }
}

pub fn with_permissions(permissions: Permissions) -> UserChanges {
    UserChanges {
        permissions: Some(permissions),
        ..UserChanges::default()
    }
}

fn with_tier(tier: Option<Uuid>) -> UserChanges {
    UserChanges {
        tier_id: Some(tier),
        ..UserChanges::default()
    }
}

fn renamed(first_name: &str) -> UserChanges {
    UserChanges {
        first_name: Some(some(first_name)),
        ..UserChanges::default()
    }
}

/// Starts a session (created now, expiring in a day); returns its id and first token digest.
pub async fn start_session(s: &Stores, user_id: Uuid) -> (Uuid, String) {
    let t = now();
    start_session_at(s, user_id, t, t + Duration::days(1)).await
}

pub async fn start_session_at(
    s: &Stores,
    user_id: Uuid,
    at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> (Uuid, String) {
    let id = Uuid::now_v7();
    let first = digest();
    s.sessions
        .start(NewSession {
            id,
            user_id,
            refresh_token_digest: first.clone(),
            now: at,
            expires_at,
        })
        .await
        .expect("start session");
    (id, first)
}

pub async fn session(s: &Stores, session_id: Uuid, user_id: Uuid) -> Session {
    s.sessions
        .check(session_id, user_id)
        .await
        .expect("check session")
        .session
}

pub fn err<T: Debug>(result: RepoResult<T>) -> RepoError {
    result.expect_err("expected an error")
}

fn conflict(c: Conflict) -> RepoError {
    RepoError::Conflict(c)
}

fn query(visible_to: Option<Uuid>, include_managed: bool, include_deleted: bool) -> UserListQuery {
    UserListQuery {
        include_managed,
        include_deleted,
        ..UserListQuery::all(visible_to, 100)
    }
}

fn ids(users: &[User]) -> Vec<Uuid> {
    users.iter().map(|u| u.id).collect()
}

// ---------------------------------------------------------------------------------------------
// Fixtures at fixed instants

/// The fixed instant every directory, tier and audit fixture is built around.
fn t0() -> OffsetDateTime {
    datetime!(2024-05-01 12:00:00 UTC)
}

/// `t0` plus `secs` seconds.
fn at(secs: i64) -> OffsetDateTime {
    t0() + Duration::seconds(secs)
}

fn rfc(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("an RFC 3339 time")
}

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

/// A login user `username` (email `<username>@example.com`, a password), created at `at(secs)`.
fn named(username: &str, secs: i64) -> NewUser {
    new_user()
        .username(username)
        .email(format!("{username}@example.com"))
        .created_at(at(secs))
}
