#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The storage contract suite: what every implementation of [`UserRepository`],
//! [`SessionRepository`] and [`WalletRepository`] must do, as executable cases (the wallet and
//! ledger cases live in [`wallets`]).
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
    DefaultWallet, NewSession, NewUser, Permission, Permissions, RefreshOutcome, RevokeSessions,
    Session, User, UserChanges, UserListQuery, UserState,
};
use tessera_domain::ports::{
    ApiKeyRepository, AuditRepository, GuardRepository, MeteringRepository, RepoError, RepoResult,
    SessionRepository, ShareRepository, TierRepository, UserRepository, WalletRepository,
};
use tessera_domain::Conflict;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

pub mod wallets;
pub use wallets::*;

#[doc(hidden)]
pub use tokio as __tokio;

mod directory;
pub use directory::*;

mod shares;
pub use shares::*;

mod credentials;
pub use credentials::*;
pub mod metering;
pub use metering::*;

mod retention;
pub use retention::*;

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
            metering: store,
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
            last_superuser_cannot_be_demoted,
            one_of_two_superusers_can_be_demoted,
            last_superuser_cannot_be_deleted_or_deactivated,
            last_superuser_cannot_be_purged,
            inactive_superusers_do_not_count,
            users_are_unconstrained_without_superusers,
            concurrent_demotions_keep_one_superuser,
            list_orders_pages_and_counts,
            list_visible_to_self_and_managed,
            purge_cascades_to_managed_users_and_sessions,
            any_exists_reflects_any_user,
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
            concurrent_creates_of_one_username,
            concurrent_refresh_rotates_once,
            default_wallet_is_created_with_the_user,
            wallets_open_as_default_only_when_none,
            adjustment_moves_balance_and_writes_entry,
            debit_below_zero_refused_unless_allow_negative,
            overflow_is_refused,
            wallet_comes_with_its_owner,
            session_check_reads_the_wallet_summary_too,
            soft_deleted_wallet_refuses_changes,
            restore_keeps_one_default,
            idempotent_replay_returns_the_same_entry,
            idempotency_mismatch_is_detected,
            default_target_opens_wallet_only_with_the_change,
            transfer_moves_both_and_conserves,
            transfer_across_currencies_is_refused,
            ledger_is_newest_first_and_pages_by_cursor,
            purge_removes_wallets_and_ledger,
            summaries_show_default_balances_and_counts,
            wallet_changes_record_their_audit_event,
            replays_and_refusals_record_no_wallet_event,
            concurrent_adjustments_keep_the_balance_exact,
            concurrent_replays_create_one_entry,
            concurrent_opposite_transfers_conserve,
            filter_username_and_email_by_each_operator,
            filter_created_by_by_username_id_and_contains,
            filter_dates_with_inclusive_bounds,
            filter_is_local_and_state,
            filter_tier_by_name_id_and_contains,
            filter_conditions_are_anded,
            search_covers_username_email_first_and_last_name,
            search_filters_and_name_match_metacharacters_literally,
            name_matches_the_display_name,
            sort_by_every_field_nulls_last_ties_by_id,
            paging_through_ties_never_repeats_or_skips,
            filters_matching_thousands_page_like_filters_matching_few,
            count_equals_list_total_for_every_query,
            growth_counts_users_per_utc_day_newest_first,
            tiers_round_trip_with_quotas_and_rate_limits,
            tier_names_are_unique_in_any_case,
            tier_update_replaces_contents_and_renames,
            tiers_are_listed_by_name_case_insensitively,
            tier_in_use_cannot_be_deleted,
            unknown_tier_on_user_create_or_update_is_not_found,
            audit_events_of_every_store_operation_are_listed,
            audit_filters_by_actor_target_action_and_time,
            audit_cursor_pages_are_stable_over_equal_times,
            failed_changes_record_no_audit_event,
            date_bounds_compare_at_full_precision,
            shares_upsert_change_list_and_revoke,
            shares_need_existing_users,
            shares_go_with_a_purged_user,
            list_visible_to_includes_users_who_shared,
            check_delegated_reads_both_parties_and_the_share,
            concurrent_puts_of_one_share_create_it_once,
            api_keys_round_trip_find_touch_and_revoke,
            api_key_changes_record_their_audit_event,
            api_keys_go_with_a_purged_user,
            signatures_are_claimed_once_even_concurrently,
            hits_count_per_key_and_window_atomically,
            hotkeys_and_fingerprints_are_unique,
            quotas_and_discounts_replace_all,
            rates_read_user_rows_and_tier_defaults,
            consumption_uses_quota_then_balance_then_refuses,
            invoiced_consumption_goes_negative_and_free_is_never_charged,
            invoiced_consumption_opens_a_missing_default_wallet,
            keyed_consumption_replays_its_first_decision,
            usage_pages_group_and_filter,
            purge_removes_metering_rows,
            concurrent_consumption_is_exact,
            users_deleted_before_the_cutoff_are_purged_once,
            ended_sessions_are_pruned_and_live_ones_kept,
            old_idempotency_keys_are_forgotten_and_recent_ones_kept,
            old_usage_keys_and_past_quota_counters_are_pruned,
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
    NewUser {
        permissions: superuser(),
        ..new_user()
    }
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

fn upper(s: &Option<String>) -> String {
    s.as_deref().expect("a name").to_uppercase()
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
// Users: create, get, uniqueness

pub async fn create_and_get_roundtrip(s: Stores) {
    let creator = create(&s, new_user()).await;
    let t = now();
    let username = unique_username();
    let hash = fake_hash();
    let permissions = Permissions::NONE
        .with(Permission::Developer)
        .with(Permission::Admin);
    let new = NewUser {
        id: Uuid::now_v7(),
        username: Some(username.clone()),
        email: Some(format!("{username}@Example.com")),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        password_hash: Some(hash.clone()),
        hotkey: None,
        coldkey: None,
        fingerprint_digest: None,
        permissions,
        tier_id: None,
        manager_id: None,
        must_change_password: true,
        created_by: Some(creator.id),
        now: t,
        default_wallet: default_wallet(),
        audit: None,
    };
    let expected = User {
        id: new.id,
        username: Some(username.clone()),
        email: Some(format!("{username}@Example.com")),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        logo_id: None,
        hotkey: None,
        coldkey: None,
        payment_address: None,
        permissions,
        tier_id: None,
        invoicing: false,
        unlimited: false,
        squad_enabled: false,
        manager_id: None,
        state: UserState::Active,
        has_password: true,
        must_change_password: true,
        tokens_valid_after: t,
        created_by: Some(creator.id),
        created_at: t,
        updated_at: t,
        last_login_at: None,
        deleted_at: None,
    };
    let created = s.users.create(new).await.unwrap();
    assert_eq!(created, expected);
    assert_eq!(s.users.get(expected.id).await.unwrap(), expected);
    assert_eq!(
        s.users.password_hash(expected.id).await.unwrap(),
        Some(hash)
    );

    let managed_new = new_managed_user(creator.id);
    let managed = s.users.create(managed_new.clone()).await.unwrap();
    let expected_managed = User {
        id: managed_new.id,
        username: None,
        email: None,
        first_name: Some("Managed".into()),
        last_name: None,
        permissions: Permissions::NONE,
        manager_id: Some(creator.id),
        has_password: false,
        must_change_password: false,
        tokens_valid_after: managed_new.now,
        created_by: Some(creator.id),
        created_at: managed_new.now,
        updated_at: managed_new.now,
        ..expected
    };
    assert_eq!(managed, expected_managed);
    assert_eq!(s.users.get(managed.id).await.unwrap(), expected_managed);
    assert_eq!(s.users.password_hash(managed.id).await.unwrap(), None);
}

pub async fn duplicate_username_in_other_case_conflicts(s: Stores) {
    let a = create(&s, new_user()).await;
    let b = NewUser {
        username: Some(upper(&a.username)),
        ..new_user()
    };
    let b_id = b.id;
    assert_eq!(
        err(s.users.create(b).await),
        conflict(Conflict::DuplicateUsername)
    );
    assert_eq!(err(s.users.get(b_id).await), RepoError::NotFound);
}

pub async fn duplicate_email_in_other_case_conflicts(s: Stores) {
    let a = create(&s, new_user()).await;
    let b = NewUser {
        email: Some(upper(&a.email)),
        ..new_user()
    };
    let b_id = b.id;
    assert_eq!(
        err(s.users.create(b).await),
        conflict(Conflict::DuplicateEmail)
    );
    assert_eq!(err(s.users.get(b_id).await), RepoError::NotFound);
    // Users without an email never conflict with each other.
    create(
        &s,
        NewUser {
            email: None,
            ..new_user()
        },
    )
    .await;
    create(
        &s,
        NewUser {
            email: None,
            ..new_user()
        },
    )
    .await;
}

pub async fn username_conflict_is_reported_before_email(s: Stores) {
    let a = create(&s, new_user()).await;
    let b = NewUser {
        username: a.username.clone(),
        email: a.email.clone(),
        ..new_user()
    };
    assert_eq!(
        err(s.users.create(b).await),
        conflict(Conflict::DuplicateUsername)
    );
}

pub async fn soft_deleted_users_keep_their_names(s: Stores) {
    let gone = create(&s, new_user()).await;
    let deleted = s.users.update(gone.id, soft_delete(now()), now()).await;
    assert_eq!(deleted.unwrap().state, UserState::Deleted);

    let same_name = NewUser {
        username: Some(upper(&gone.username)),
        ..new_user()
    };
    assert_eq!(
        err(s.users.create(same_name).await),
        conflict(Conflict::DuplicateUsername)
    );
    let same_email = NewUser {
        email: Some(upper(&gone.email)),
        ..new_user()
    };
    assert_eq!(
        err(s.users.create(same_email).await),
        conflict(Conflict::DuplicateEmail)
    );
    let other = create(&s, new_user()).await;
    let rename = UserChanges {
        username: Some(upper(&gone.username)),
        ..UserChanges::default()
    };
    assert_eq!(
        err(s.users.update(other.id, rename, now()).await),
        conflict(Conflict::DuplicateUsername)
    );
}

pub async fn update_to_taken_name_conflicts_and_changes_nothing(s: Stores) {
    let a = create(&s, new_user()).await;
    let b_new = new_user();
    let b_hash = b_new.password_hash.clone();
    let b = create(&s, b_new).await;
    let (sid, _) = start_session(&s, b.id).await;
    let before = s.users.get(b.id).await.unwrap();
    let later = now() + Duration::seconds(5);

    let rename = UserChanges {
        username: Some(upper(&a.username)),
        first_name: Some(Some("Changed".into())),
        password_hash: Some(fake_hash()),
        revoke_sessions: RevokeSessions::All,
        ..UserChanges::default()
    };
    assert_eq!(
        err(s.users.update(b.id, rename, later).await),
        conflict(Conflict::DuplicateUsername)
    );
    let re_email = UserChanges {
        email: Some(Some(upper(&a.email))),
        first_name: Some(Some("Changed".into())),
        revoke_sessions: RevokeSessions::All,
        ..UserChanges::default()
    };
    assert_eq!(
        err(s.users.update(b.id, re_email, later).await),
        conflict(Conflict::DuplicateEmail)
    );

    assert_eq!(s.users.get(b.id).await.unwrap(), before);
    assert_eq!(s.users.password_hash(b.id).await.unwrap(), b_hash);
    assert_eq!(session(&s, sid, b.id).await.revoked_at, None);
    assert_eq!(s.users.get(a.id).await.unwrap(), a);
}

pub async fn update_own_name_in_other_case_is_fine(s: Stores) {
    let a = create(&s, new_user()).await;
    let changes = UserChanges {
        username: Some(upper(&a.username)),
        email: Some(Some(upper(&a.email))),
        ..UserChanges::default()
    };
    let updated = s.users.update(a.id, changes, now()).await.unwrap();
    assert_eq!(updated.username, Some(upper(&a.username)));
    assert_eq!(updated.email, Some(upper(&a.email)));
    assert_eq!(s.users.get(a.id).await.unwrap(), updated);
    let found = s
        .users
        .find_by_username(a.username.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(found.id, a.id);
}

pub async fn find_by_username_ignores_case(s: Stores) {
    let a = create(&s, new_user()).await;
    create(&s, new_user()).await;
    let name = a.username.clone().unwrap();
    assert_eq!(s.users.find_by_username(&name).await.unwrap(), a);
    assert_eq!(
        s.users
            .find_by_username(&name.to_uppercase())
            .await
            .unwrap(),
        a
    );
    assert_eq!(
        err(s.users.find_by_username(&unique_username()).await),
        RepoError::NotFound
    );
    // The username only, never the email.
    assert_eq!(
        err(s.users.find_by_username(a.email.as_deref().unwrap()).await),
        RepoError::NotFound
    );
    // Users in any state are found; the services decide what to do with them.
    s.users
        .update(a.id, soft_delete(now()), now())
        .await
        .unwrap();
    let found = s.users.find_by_username(&name.to_uppercase()).await;
    assert_eq!(found.unwrap().state, UserState::Deleted);
}

pub async fn find_login_by_username_or_email(s: Stores) {
    let new = new_user();
    let hash = new.password_hash.clone();
    let a = create(&s, new).await;
    let by_name = s.users.find_login(&upper(&a.username)).await.unwrap();
    assert_eq!(by_name, (a.clone(), hash.clone()));
    let by_email = s.users.find_login(&upper(&a.email)).await.unwrap();
    assert_eq!(by_email, (a.clone(), hash));

    let no_password = create(
        &s,
        NewUser {
            password_hash: None,
            ..new_user()
        },
    )
    .await;
    assert!(!no_password.has_password);
    let found = s
        .users
        .find_login(no_password.email.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(found, (no_password, None));

    assert_eq!(
        err(s.users.find_login(&unique_username()).await),
        RepoError::NotFound
    );
    assert_eq!(
        err(s.users.find_login("nobody@example.com").await),
        RepoError::NotFound
    );

    let deactivated = s
        .users
        .update(a.id, with_state(UserState::Deactivated), now())
        .await
        .unwrap();
    let found = s.users.find_login(a.username.as_deref().unwrap()).await;
    assert_eq!(found.unwrap().0, deactivated);
}

/// A username may be an email address (Run:ai local users) that another user holds as their
/// email; the username match wins.
/// Usernames and emails share the login namespace: an email-shaped username must be the user's
/// own email, so no user can hold another user's email as a login name.
pub async fn email_shaped_usernames_are_the_users_own_email(s: Stores) {
    let login = format!("{}@example.org", unique_username());
    let owner = create(
        &s,
        NewUser {
            email: Some(login.to_uppercase()),
            ..new_user()
        },
    )
    .await;
    // Without the matching email: refused by the store's CHECK constraint.
    let alone = s
        .users
        .create(NewUser {
            username: Some(login.clone()),
            email: None,
            ..new_user()
        })
        .await;
    assert!(matches!(alone, Err(RepoError::Internal(_))), "{alone:?}");
    // With it: the email is taken, in any letter case.
    let both = s
        .users
        .create(NewUser {
            username: Some(login.clone()),
            email: Some(login.clone()),
            ..new_user()
        })
        .await;
    assert_eq!(err(both), RepoError::Conflict(Conflict::DuplicateEmail));
    let found = s.users.find_login(&login).await.unwrap();
    assert_eq!(found.0.id, owner.id);
    // A user whose username is their own email logs in by it.
    let other = format!("{}@example.net", unique_username());
    let local = create(
        &s,
        NewUser {
            username: Some(other.clone()),
            email: Some(other.to_uppercase()),
            ..new_user()
        },
    )
    .await;
    assert_eq!(s.users.find_login(&other).await.unwrap().0.id, local.id);
}

pub async fn missing_users_are_not_found(s: Stores) {
    let missing = Uuid::now_v7();
    let t = now();
    assert_eq!(err(s.users.get(missing).await), RepoError::NotFound);
    assert_eq!(
        err(s.users.password_hash(missing).await),
        RepoError::NotFound
    );
    let changes = UserChanges {
        first_name: Some(Some("x".into())),
        ..UserChanges::default()
    };
    assert_eq!(
        err(s.users.update(missing, changes, t).await),
        RepoError::NotFound
    );
    assert_eq!(
        err(s
            .users
            .update(missing, with_state(UserState::Deactivated), t)
            .await),
        RepoError::NotFound
    );
    assert_eq!(err(s.users.purge(missing, None).await), RepoError::NotFound);
    let start = s
        .sessions
        .start(NewSession {
            id: Uuid::now_v7(),
            user_id: missing,
            refresh_token_digest: digest(),
            now: t,
            expires_at: t + Duration::hours(1),
        })
        .await;
    assert_eq!(err(start), RepoError::NotFound);
    assert_eq!(
        err(s.sessions.check(Uuid::now_v7(), missing).await),
        RepoError::NotFound
    );
    assert!(!s.users.any_exists().await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// Users: update

pub async fn partial_update_leaves_other_fields_alone(s: Stores) {
    let t0 = now();
    let new = NewUser {
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        permissions: Permissions::NONE.with(Permission::Developer),
        must_change_password: true,
        now: t0,
        ..new_user()
    };
    let hash = new.password_hash.clone();
    let before = create(&s, new).await;
    let t1 = t0 + Duration::seconds(1);
    let changes = UserChanges {
        first_name: Some(Some("Grace".into())),
        email: Some(None),
        ..UserChanges::default()
    };
    let updated = s.users.update(before.id, changes, t1).await.unwrap();
    let expected = User {
        first_name: Some("Grace".into()),
        email: None,
        updated_at: t1,
        ..before.clone()
    };
    assert_eq!(updated, expected);
    assert_eq!(s.users.get(before.id).await.unwrap(), expected);
    assert_eq!(s.users.password_hash(before.id).await.unwrap(), hash);

    // A cleared email is free for another user.
    let reuse = NewUser {
        email: Some(upper(&before.email)),
        ..new_user()
    };
    create(&s, reuse).await;
}

pub async fn update_applies_every_field(s: Stores) {
    let t0 = now();
    let before = create(
        &s,
        NewUser {
            password_hash: None,
            now: t0,
            ..new_user()
        },
    )
    .await;
    assert!(!before.has_password);

    let (t1, t2, t3) = (
        t0 + Duration::seconds(1),
        t0 + Duration::seconds(2),
        t0 + Duration::seconds(3),
    );
    let username = unique_username();
    let hash = fake_hash();
    let permissions = Permissions::NONE
        .with(Permission::Developer)
        .with(Permission::UnlimitedDev);
    let changes = UserChanges {
        username: Some(username.clone()),
        email: Some(Some(format!("{username}@example.net"))),
        first_name: Some(Some("First".into())),
        last_name: Some(Some("Last".into())),
        password_hash: Some(hash.clone()),
        must_change_password: Some(true),
        permissions: Some(permissions),
        tier_id: None,
        state: Some(UserState::Deactivated),
        deleted_at: None,
        hotkey: Some(Some(
            "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty".into(),
        )),
        coldkey: Some(Some(
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY".into(),
        )),
        logo_id: Some(Some(Uuid::nil())),
        squad_enabled: Some(true),
        fingerprint_digest: Some("f".repeat(128)),
        tokens_valid_after: Some(t1),
        revoke_sessions: RevokeSessions::None,
        audit: None,
    };
    let expected = User {
        hotkey: Some("5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty".into()),
        coldkey: Some("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY".into()),
        logo_id: Some(Uuid::nil()),
        squad_enabled: true,
        username: Some(username.clone()),
        email: Some(format!("{username}@example.net")),
        first_name: Some("First".into()),
        last_name: Some("Last".into()),
        permissions,
        state: UserState::Deactivated,
        has_password: true,
        must_change_password: true,
        tokens_valid_after: t1,
        updated_at: t1,
        ..before.clone()
    };
    assert_eq!(
        s.users.update(before.id, changes, t1).await.unwrap(),
        expected
    );
    assert_eq!(s.users.get(before.id).await.unwrap(), expected);
    assert_eq!(
        s.users.password_hash(before.id).await.unwrap(),
        Some(hash.clone())
    );
    assert_eq!(
        s.users.find_login(&username).await.unwrap(),
        (expected.clone(), Some(hash))
    );
    assert_eq!(
        s.users
            .find_by_hotkey("5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty")
            .await
            .unwrap(),
        expected
    );
    assert_eq!(
        s.users.find_by_fingerprint(&"f".repeat(128)).await.unwrap(),
        expected
    );

    let delete = UserChanges {
        state: Some(UserState::Deleted),
        deleted_at: Some(Some(t2)),
        first_name: Some(None),
        must_change_password: Some(false),
        ..UserChanges::default()
    };
    let expected = User {
        state: UserState::Deleted,
        deleted_at: Some(t2),
        first_name: None,
        must_change_password: false,
        updated_at: t2,
        ..expected
    };
    assert_eq!(
        s.users.update(before.id, delete, t2).await.unwrap(),
        expected
    );

    let restore = UserChanges {
        state: Some(UserState::Active),
        deleted_at: Some(None),
        last_name: Some(None),
        ..UserChanges::default()
    };
    let expected = User {
        state: UserState::Active,
        deleted_at: None,
        last_name: None,
        updated_at: t3,
        ..expected
    };
    assert_eq!(
        s.users.update(before.id, restore, t3).await.unwrap(),
        expected
    );
    assert_eq!(s.users.get(before.id).await.unwrap(), expected);
}

pub async fn update_sets_updated_at(s: Stores) {
    let t0 = now();
    let before = create(
        &s,
        NewUser {
            now: t0,
            ..new_user()
        },
    )
    .await;
    let t1 = t0 + Duration::seconds(10);
    let updated = s
        .users
        .update(before.id, UserChanges::default(), t1)
        .await
        .unwrap();
    assert_eq!(
        updated,
        User {
            updated_at: t1,
            ..before.clone()
        }
    );
    let t2 = t1 + Duration::seconds(10);
    let updated = s
        .users
        .update(before.id, with_permissions(Permissions::NONE), t2)
        .await
        .unwrap();
    assert_eq!(updated.updated_at, t2);
    assert_eq!(updated.created_at, t0);
    assert_eq!(s.users.get(before.id).await.unwrap().updated_at, t2);
}

// ---------------------------------------------------------------------------------------------
// The last-superuser rule

pub async fn last_superuser_cannot_be_demoted(s: Stores) {
    let root = create(&s, new_superuser()).await;
    create(
        &s,
        NewUser {
            permissions: Permissions::NONE.with(Permission::Admin),
            ..new_user()
        },
    )
    .await;
    let demote = UserChanges {
        permissions: Some(Permissions::NONE.with(Permission::Admin)),
        first_name: Some(Some("Changed".into())),
        ..UserChanges::default()
    };
    assert_eq!(
        err(s.users.update(root.id, demote, now()).await),
        conflict(Conflict::LastSuperuser)
    );
    assert_eq!(s.users.get(root.id).await.unwrap(), root);

    // Changes that keep it an active superuser are fine.
    let keep = superuser().with(Permission::Developer);
    let updated = s
        .users
        .update(root.id, with_permissions(keep), now())
        .await
        .unwrap();
    assert_eq!(updated.permissions, keep);
    let updated = s
        .users
        .update(root.id, with_state(UserState::Active), now())
        .await
        .unwrap();
    assert!(updated.is_active());
}

pub async fn one_of_two_superusers_can_be_demoted(s: Stores) {
    let first = create(&s, new_superuser()).await;
    let second = create(&s, new_superuser()).await;
    let demoted = s
        .users
        .update(first.id, with_permissions(Permissions::NONE), now())
        .await
        .unwrap();
    assert!(!demoted.permissions.is_superuser());
    assert_eq!(
        err(s
            .users
            .update(second.id, with_permissions(Permissions::NONE), now())
            .await),
        conflict(Conflict::LastSuperuser)
    );
    assert!(s
        .users
        .get(second.id)
        .await
        .unwrap()
        .permissions
        .is_superuser());

    // Promote the first again: now the second may go.
    s.users
        .update(first.id, with_permissions(superuser()), now())
        .await
        .unwrap();
    s.users
        .update(second.id, with_permissions(Permissions::NONE), now())
        .await
        .unwrap();
}

pub async fn last_superuser_cannot_be_deleted_or_deactivated(s: Stores) {
    let root = create(&s, new_superuser()).await;
    let (sid, _) = start_session(&s, root.id).await;
    let root = s.users.get(root.id).await.unwrap();
    let t = now() + Duration::seconds(1);
    assert_eq!(
        err(s.users.update(root.id, soft_delete(t), t).await),
        conflict(Conflict::LastSuperuser)
    );
    let deactivate = UserChanges {
        state: Some(UserState::Deactivated),
        tokens_valid_after: Some(t),
        revoke_sessions: RevokeSessions::All,
        ..UserChanges::default()
    };
    assert_eq!(
        err(s.users.update(root.id, deactivate, t).await),
        conflict(Conflict::LastSuperuser)
    );
    assert_eq!(s.users.get(root.id).await.unwrap(), root);
    assert_eq!(session(&s, sid, root.id).await.revoked_at, None);
}

pub async fn last_superuser_cannot_be_purged(s: Stores) {
    let root = create(&s, new_superuser()).await;
    assert_eq!(
        err(s.users.purge(root.id, None).await),
        conflict(Conflict::LastSuperuser)
    );
    assert_eq!(s.users.get(root.id).await.unwrap(), root);

    let second = create(&s, new_superuser()).await;
    s.users.purge(root.id, None).await.unwrap();
    assert_eq!(err(s.users.get(root.id).await), RepoError::NotFound);
    assert_eq!(
        err(s.users.purge(second.id, None).await),
        conflict(Conflict::LastSuperuser)
    );
    assert!(s.users.get(second.id).await.is_ok());
}

pub async fn inactive_superusers_do_not_count(s: Stores) {
    let root = create(&s, new_superuser()).await;
    let deactivated = create(&s, new_superuser()).await;
    let deleted = create(&s, new_superuser()).await;
    s.users
        .update(deactivated.id, with_state(UserState::Deactivated), now())
        .await
        .unwrap();
    s.users
        .update(deleted.id, soft_delete(now()), now())
        .await
        .unwrap();

    // `root` is now the only *active* superuser.
    assert_eq!(
        err(s
            .users
            .update(root.id, with_permissions(Permissions::NONE), now())
            .await),
        conflict(Conflict::LastSuperuser)
    );
    assert_eq!(
        err(s
            .users
            .update(root.id, with_state(UserState::Deactivated), now())
            .await),
        conflict(Conflict::LastSuperuser)
    );
    assert_eq!(
        err(s.users.update(root.id, soft_delete(now()), now()).await),
        conflict(Conflict::LastSuperuser)
    );
    assert_eq!(
        err(s.users.purge(root.id, None).await),
        conflict(Conflict::LastSuperuser)
    );

    // Inactive superusers themselves are not protected.
    s.users
        .update(deactivated.id, with_permissions(Permissions::NONE), now())
        .await
        .unwrap();
    s.users.purge(deleted.id, None).await.unwrap();

    // Reactivating a superuser makes `root` removable again.
    let other = create(&s, new_superuser()).await;
    s.users
        .update(other.id, with_state(UserState::Deactivated), now())
        .await
        .unwrap();
    s.users
        .update(other.id, with_state(UserState::Active), now())
        .await
        .unwrap();
    s.users
        .update(root.id, with_state(UserState::Deactivated), now())
        .await
        .unwrap();
}

/// The rule only protects an active superuser that exists.
pub async fn users_are_unconstrained_without_superusers(s: Stores) {
    let a = create(&s, new_user()).await;
    let b = create(&s, new_user()).await;
    s.users
        .update(a.id, with_state(UserState::Deactivated), now())
        .await
        .unwrap();
    s.users
        .update(b.id, soft_delete(now()), now())
        .await
        .unwrap();
    s.users.purge(a.id, None).await.unwrap();
    s.users.purge(b.id, None).await.unwrap();
    assert!(!s.users.any_exists().await.unwrap());
}

/// Concurrent demotions of every superuser: exactly one must survive.
pub async fn concurrent_demotions_keep_one_superuser(s: Stores) {
    let mut roots = Vec::new();
    for _ in 0..5 {
        roots.push(create(&s, new_superuser()).await.id);
    }
    let tasks: Vec<_> = roots
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let (s, id) = (s.clone(), *id);
            tokio::spawn(async move {
                let changes = if i % 2 == 0 {
                    with_state(UserState::Deactivated)
                } else {
                    with_permissions(Permissions::NONE)
                };
                s.users.update(id, changes, now()).await
            })
        })
        .collect();
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e, conflict(Conflict::LastSuperuser));
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 1);
    let mut active = 0;
    for id in roots {
        let user = s.users.get(id).await.unwrap();
        if user.is_active() && user.permissions.is_superuser() {
            active += 1;
        }
    }
    assert_eq!(active, 1);
}

// ---------------------------------------------------------------------------------------------
// Listing, purge, existence

pub async fn list_orders_pages_and_counts(s: Stores) {
    let t = now();
    // Created out of order, and ids in the opposite order of creation time.
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let (early_id, late_id) = (a.min(b), a.max(b));
    let second = create(
        &s,
        NewUser {
            id: early_id,
            now: t + Duration::seconds(2),
            ..new_user()
        },
    )
    .await;
    let first = create(
        &s,
        NewUser {
            id: late_id,
            now: t + Duration::seconds(1),
            ..new_user()
        },
    )
    .await;
    // Same creation time: ties go by id.
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let (tie_low, tie_high) = (a.min(b), a.max(b));
    let tie_b = create(
        &s,
        NewUser {
            id: tie_high,
            now: t + Duration::seconds(3),
            ..new_user()
        },
    )
    .await;
    let tie_a = create(
        &s,
        NewUser {
            id: tie_low,
            now: t + Duration::seconds(3),
            ..new_user()
        },
    )
    .await;
    let gone = create(
        &s,
        NewUser {
            now: t + Duration::seconds(4),
            ..new_user()
        },
    )
    .await;
    let gone = s
        .users
        .update(
            gone.id,
            soft_delete(t + Duration::seconds(5)),
            t + Duration::seconds(5),
        )
        .await
        .unwrap();
    let expected = vec![first.clone(), second.clone(), tie_a.clone(), tie_b.clone()];

    let page = s.users.list(query(None, false, false)).await.unwrap();
    assert_eq!(page.total, 4);
    assert_eq!(page.users, expected);
    // Managed-ness does not matter for the whole directory.
    let page = s.users.list(query(None, true, false)).await.unwrap();
    assert_eq!(page.users, expected);

    let page = s
        .users
        .list(UserListQuery {
            offset: 1,
            limit: 2,
            ..query(None, false, false)
        })
        .await
        .unwrap();
    assert_eq!(page.total, 4);
    assert_eq!(page.users, vec![second, tie_a.clone()]);

    let page = s
        .users
        .list(UserListQuery {
            offset: 3,
            limit: 10,
            ..query(None, false, false)
        })
        .await
        .unwrap();
    assert_eq!((page.total, ids(&page.users)), (4, vec![tie_b.id]));

    let page = s
        .users
        .list(UserListQuery {
            offset: 10,
            limit: 10,
            ..query(None, false, false)
        })
        .await
        .unwrap();
    assert_eq!((page.total, page.users.len()), (4, 0));

    let page = s.users.list(query(None, false, true)).await.unwrap();
    assert_eq!(page.total, 5);
    assert_eq!(
        ids(&page.users),
        vec![first.id, early_id, tie_low, tie_high, gone.id]
    );
    assert_eq!(page.users[4], gone);
}

pub async fn list_visible_to_self_and_managed(s: Stores) {
    let t = now();
    let manager = create(
        &s,
        NewUser {
            now: t,
            ..new_user()
        },
    )
    .await;
    let at = |secs: i64, manager: Uuid| NewUser {
        now: t + Duration::seconds(secs),
        ..new_managed_user(manager)
    };
    let m1 = create(&s, at(1, manager.id)).await;
    let m2 = create(&s, at(2, manager.id)).await;
    let m2 = s
        .users
        .update(
            m2.id,
            soft_delete(t + Duration::seconds(3)),
            t + Duration::seconds(3),
        )
        .await
        .unwrap();
    let stranger = create(&s, new_user()).await;
    create(&s, at(4, stranger.id)).await;
    let m3 = create(&s, at(5, manager.id)).await;

    let mine = Some(manager.id);
    let page = s.users.list(query(mine, true, false)).await.unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(page.users, vec![manager.clone(), m1.clone(), m3.clone()]);

    let page = s.users.list(query(mine, true, true)).await.unwrap();
    assert_eq!(page.total, 4);
    assert_eq!(ids(&page.users), vec![manager.id, m1.id, m2.id, m3.id]);

    let page = s.users.list(query(mine, false, true)).await.unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.users, vec![manager.clone()]);

    let page = s
        .users
        .list(UserListQuery {
            offset: 1,
            limit: 2,
            ..query(mine, true, true)
        })
        .await
        .unwrap();
    assert_eq!((page.total, ids(&page.users)), (4, vec![m1.id, m2.id]));

    // A soft-deleted viewer is itself hidden unless deleted users are included.
    s.users
        .update(manager.id, soft_delete(now()), now())
        .await
        .unwrap();
    let page = s.users.list(query(mine, true, false)).await.unwrap();
    assert_eq!((page.total, ids(&page.users)), (2, vec![m1.id, m3.id]));
    let page = s.users.list(query(mine, false, false)).await.unwrap();
    assert_eq!((page.total, page.users.len()), (0, 0));

    let page = s
        .users
        .list(query(Some(Uuid::now_v7()), true, true))
        .await
        .unwrap();
    assert_eq!((page.total, page.users.len()), (0, 0));
}

pub async fn purge_cascades_to_managed_users_and_sessions(s: Stores) {
    let manager = create(&s, new_user()).await;
    let managed = create(&s, new_managed_user(manager.id)).await;
    let nested = create(&s, new_managed_user(managed.id)).await;
    let created = create(
        &s,
        NewUser {
            created_by: Some(manager.id),
            ..new_user()
        },
    )
    .await;
    let bystander = create(&s, new_user()).await;
    let (manager_sid, manager_token) = start_session(&s, manager.id).await;
    let (managed_sid, managed_token) = start_session(&s, managed.id).await;
    let (created_sid, _) = start_session(&s, created.id).await;
    let (bystander_sid, bystander_token) = start_session(&s, bystander.id).await;

    s.users.purge(manager.id, None).await.unwrap();

    for id in [manager.id, managed.id, nested.id] {
        assert_eq!(err(s.users.get(id).await), RepoError::NotFound);
        assert_eq!(err(s.users.password_hash(id).await), RepoError::NotFound);
    }
    assert_eq!(
        err(s.sessions.check(manager_sid, manager.id).await),
        RepoError::NotFound
    );
    assert_eq!(
        err(s.sessions.check(managed_sid, managed.id).await),
        RepoError::NotFound
    );
    for token in [manager_token, managed_token] {
        let outcome = s.sessions.rotate_refresh(&token, &digest(), now()).await;
        assert_eq!(outcome.unwrap(), RefreshOutcome::Invalid);
    }

    // Users it merely created stay, without the reference.
    let created_after = s.users.get(created.id).await.unwrap();
    assert_eq!(
        created_after,
        User {
            created_by: None,
            last_login_at: created_after.last_login_at,
            ..created
        }
    );
    assert_eq!(session(&s, created_sid, created.id).await.revoked_at, None);
    assert_eq!(
        session(&s, bystander_sid, bystander.id).await.revoked_at,
        None
    );
    let outcome = s
        .sessions
        .rotate_refresh(&bystander_token, &digest(), now())
        .await;
    assert!(matches!(outcome.unwrap(), RefreshOutcome::Rotated { .. }));
    let page = s.users.list(query(None, true, true)).await.unwrap();
    assert_eq!(page.total, 2);

    // Purged names are free again.
    create(
        &s,
        NewUser {
            username: manager.username.clone(),
            email: manager.email.clone(),
            ..new_user()
        },
    )
    .await;
    assert_eq!(
        err(s.users.purge(manager.id, None).await),
        RepoError::NotFound
    );
}

pub async fn any_exists_reflects_any_user(s: Stores) {
    assert!(!s.users.any_exists().await.unwrap());
    let a = create(&s, new_user()).await;
    assert!(s.users.any_exists().await.unwrap());
    s.users
        .update(a.id, soft_delete(now()), now())
        .await
        .unwrap();
    assert!(s.users.any_exists().await.unwrap());
    s.users.purge(a.id, None).await.unwrap();
    assert!(!s.users.any_exists().await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// Sessions

pub async fn session_start_records_login(s: Stores) {
    let user = create(&s, new_user()).await;
    let other = create(&s, new_user()).await;
    let t = now() + Duration::seconds(1);
    let expires_at = t + Duration::hours(1);
    let (sid, _) = start_session_at(&s, user.id, t, expires_at).await;

    let after = s.users.get(user.id).await.unwrap();
    assert_eq!(after.last_login_at, Some(t));
    let check = s.sessions.check(sid, user.id).await.unwrap();
    assert_eq!(
        check.session,
        Session {
            id: sid,
            user_id: user.id,
            created_at: t,
            expires_at,
            revoked_at: None,
        }
    );
    assert_eq!(check.user, after);

    assert_eq!(
        err(s.sessions.check(sid, other.id).await),
        RepoError::NotFound
    );
    assert_eq!(
        err(s.sessions.check(Uuid::now_v7(), user.id).await),
        RepoError::NotFound
    );
    assert_eq!(s.users.get(other.id).await.unwrap().last_login_at, None);

    // The check sees the user as it is now.
    let changed = s
        .users
        .update(user.id, with_state(UserState::Deactivated), now())
        .await
        .unwrap();
    assert_eq!(s.sessions.check(sid, user.id).await.unwrap().user, changed);

    // A second login moves the time.
    let t2 = t + Duration::seconds(30);
    start_session_at(&s, user.id, t2, t2 + Duration::hours(1)).await;
    assert_eq!(s.users.get(user.id).await.unwrap().last_login_at, Some(t2));
}

pub async fn check_returns_revoked_and_expired_sessions(s: Stores) {
    let user = create(&s, new_user()).await;
    let t = now();
    let (expired, _) =
        start_session_at(&s, user.id, t - Duration::hours(2), t - Duration::hours(1)).await;
    assert_eq!(
        session(&s, expired, user.id).await.expires_at,
        t - Duration::hours(1)
    );
    let (revoked, _) = start_session(&s, user.id).await;
    s.sessions.revoke(revoked, t).await.unwrap();
    assert_eq!(session(&s, revoked, user.id).await.revoked_at, Some(t));
}

pub async fn revoke_is_idempotent(s: Stores) {
    let user = create(&s, new_user()).await;
    let (sid, _) = start_session(&s, user.id).await;
    let (other_sid, _) = start_session(&s, user.id).await;
    let t1 = now() + Duration::seconds(1);
    let t2 = t1 + Duration::seconds(1);
    s.sessions.revoke(sid, t1).await.unwrap();
    assert_eq!(session(&s, sid, user.id).await.revoked_at, Some(t1));
    s.sessions.revoke(sid, t2).await.unwrap();
    assert_eq!(session(&s, sid, user.id).await.revoked_at, Some(t1));
    s.sessions.revoke(Uuid::now_v7(), t2).await.unwrap();
    assert_eq!(session(&s, other_sid, user.id).await.revoked_at, None);
}

pub async fn revoke_all_spares_kept_session(s: Stores) {
    let user = create(&s, new_user()).await;
    let other = create(&s, new_user()).await;
    let (s1, _) = start_session(&s, user.id).await;
    let (s2, _) = start_session(&s, user.id).await;
    let (s3, _) = start_session(&s, user.id).await;
    let (so, _) = start_session(&s, other.id).await;
    let t1 = now() + Duration::seconds(1);
    let t2 = t1 + Duration::seconds(1);

    s.sessions.revoke_all(user.id, Some(s2), t1).await.unwrap();
    assert_eq!(session(&s, s1, user.id).await.revoked_at, Some(t1));
    assert_eq!(session(&s, s2, user.id).await.revoked_at, None);
    assert_eq!(session(&s, s3, user.id).await.revoked_at, Some(t1));
    assert_eq!(session(&s, so, other.id).await.revoked_at, None);

    s.sessions.revoke_all(user.id, None, t2).await.unwrap();
    assert_eq!(session(&s, s1, user.id).await.revoked_at, Some(t1));
    assert_eq!(session(&s, s2, user.id).await.revoked_at, Some(t2));
    assert_eq!(session(&s, so, other.id).await.revoked_at, None);

    s.sessions
        .revoke_all(Uuid::now_v7(), None, t2)
        .await
        .unwrap();
}

pub async fn update_revokes_sessions(s: Stores) {
    let user = create(&s, new_user()).await;
    let other = create(&s, new_user()).await;
    let (s1, _) = start_session(&s, user.id).await;
    let (s2, _) = start_session(&s, user.id).await;
    let (s3, _) = start_session(&s, user.id).await;
    let (so, _) = start_session(&s, other.id).await;
    let t0 = now();
    let (t1, t2) = (t0 + Duration::seconds(1), t0 + Duration::seconds(2));
    s.sessions.revoke(s3, t0).await.unwrap();

    let changes = UserChanges {
        password_hash: Some(fake_hash()),
        revoke_sessions: RevokeSessions::AllExcept(s2),
        ..UserChanges::default()
    };
    s.users.update(user.id, changes, t1).await.unwrap();
    assert_eq!(session(&s, s1, user.id).await.revoked_at, Some(t1));
    assert_eq!(session(&s, s2, user.id).await.revoked_at, None);
    assert_eq!(session(&s, s3, user.id).await.revoked_at, Some(t0));

    let changes = UserChanges {
        revoke_sessions: RevokeSessions::All,
        ..UserChanges::default()
    };
    s.users.update(user.id, changes, t2).await.unwrap();
    assert_eq!(session(&s, s1, user.id).await.revoked_at, Some(t1));
    assert_eq!(session(&s, s2, user.id).await.revoked_at, Some(t2));
    assert_eq!(session(&s, s3, user.id).await.revoked_at, Some(t0));
    assert_eq!(session(&s, so, other.id).await.revoked_at, None);

    // Without a revocation request, sessions are left alone.
    let (s4, _) = start_session(&s, user.id).await;
    let changes = UserChanges {
        first_name: Some(Some("Still".into())),
        ..UserChanges::default()
    };
    s.users.update(user.id, changes, t2).await.unwrap();
    assert_eq!(session(&s, s4, user.id).await.revoked_at, None);
}

// ---------------------------------------------------------------------------------------------
// Refresh tokens

pub async fn refresh_tokens_rotate_in_a_chain(s: Stores) {
    let user = create(&s, new_user()).await;
    let (sid, first) = start_session(&s, user.id).await;
    let mut current = first;
    for step in 1..=3 {
        let next = digest();
        let at = now() + Duration::seconds(step);
        let outcome = s
            .sessions
            .rotate_refresh(&current, &next, at)
            .await
            .unwrap();
        let expected = RefreshOutcome::Rotated {
            session: session(&s, sid, user.id).await,
            user: Box::new(s.users.get(user.id).await.unwrap()),
        };
        assert_eq!(outcome, expected);
        current = next;
    }
    assert_eq!(session(&s, sid, user.id).await.revoked_at, None);
}

pub async fn reused_refresh_token_revokes_session(s: Stores) {
    let user = create(&s, new_user()).await;
    let (sid, first) = start_session(&s, user.id).await;
    let (other_sid, _) = start_session(&s, user.id).await;
    let t = now();
    let second = digest();
    let outcome = s.sessions.rotate_refresh(&first, &second, t).await;
    assert!(matches!(outcome.unwrap(), RefreshOutcome::Rotated { .. }));

    let (t1, t2) = (t + Duration::seconds(1), t + Duration::seconds(2));
    let attempted = digest();
    let outcome = s.sessions.rotate_refresh(&first, &attempted, t1).await;
    assert_eq!(outcome.unwrap(), RefreshOutcome::Reused { session_id: sid });
    assert_eq!(session(&s, sid, user.id).await.revoked_at, Some(t1));

    // Everything of that session is dead now, even the newest token.
    for token in [&second, &attempted, &first] {
        let outcome = s.sessions.rotate_refresh(token, &digest(), t2).await;
        assert_eq!(outcome.unwrap(), RefreshOutcome::Invalid);
    }
    assert_eq!(session(&s, sid, user.id).await.revoked_at, Some(t1));
    assert_eq!(session(&s, other_sid, user.id).await.revoked_at, None);
}

pub async fn unknown_refresh_token_is_invalid(s: Stores) {
    let outcome = s.sessions.rotate_refresh(&digest(), &digest(), now()).await;
    assert_eq!(outcome.unwrap(), RefreshOutcome::Invalid);
    let user = create(&s, new_user()).await;
    let (sid, first) = start_session(&s, user.id).await;
    let outcome = s.sessions.rotate_refresh(&digest(), &digest(), now()).await;
    assert_eq!(outcome.unwrap(), RefreshOutcome::Invalid);
    assert_eq!(session(&s, sid, user.id).await.revoked_at, None);
    let outcome = s.sessions.rotate_refresh(&first, &digest(), now()).await;
    assert!(matches!(outcome.unwrap(), RefreshOutcome::Rotated { .. }));
}

pub async fn expired_session_refresh_is_invalid(s: Stores) {
    let user = create(&s, new_user()).await;
    let t = now();
    let expires_at = t + Duration::hours(1);
    let (sid, first) = start_session_at(&s, user.id, t, expires_at).await;

    let second = digest();
    let just_before = expires_at - Duration::microseconds(1);
    let outcome = s
        .sessions
        .rotate_refresh(&first, &second, just_before)
        .await;
    assert!(matches!(outcome.unwrap(), RefreshOutcome::Rotated { .. }));

    for at in [expires_at, expires_at + Duration::hours(1)] {
        let outcome = s.sessions.rotate_refresh(&second, &digest(), at).await;
        assert_eq!(outcome.unwrap(), RefreshOutcome::Invalid);
        // Even a spent token only gets `Invalid` once the session has expired.
        let outcome = s.sessions.rotate_refresh(&first, &digest(), at).await;
        assert_eq!(outcome.unwrap(), RefreshOutcome::Invalid);
    }
    assert_eq!(session(&s, sid, user.id).await.revoked_at, None);
}

pub async fn revoked_session_refresh_is_invalid(s: Stores) {
    let user = create(&s, new_user()).await;
    let (sid, first) = start_session(&s, user.id).await;
    let t = now();
    s.sessions.revoke(sid, t).await.unwrap();
    let outcome = s
        .sessions
        .rotate_refresh(&first, &digest(), t + Duration::seconds(1))
        .await;
    assert_eq!(outcome.unwrap(), RefreshOutcome::Invalid);
    assert_eq!(session(&s, sid, user.id).await.revoked_at, Some(t));
}

// ---------------------------------------------------------------------------------------------
// Concurrency

/// Twenty concurrent creates of one username in twenty letter cases: exactly one wins.
pub async fn concurrent_creates_of_one_username(s: Stores) {
    let suffix = &Uuid::new_v4().simple().to_string()[..12];
    let base = "concurrent";
    let tasks: Vec<_> = (0..20u32)
        .map(|i| {
            let variant: String = base
                .chars()
                .enumerate()
                .map(|(j, c)| {
                    if i & (1 << j) != 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            let user = NewUser {
                username: Some(format!("{variant}{suffix}")),
                ..new_user()
            };
            let s = s.clone();
            tokio::spawn(async move { s.users.create(user).await })
        })
        .collect();
    let mut created = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(user) => created.push(user),
            Err(e) => assert_eq!(e, conflict(Conflict::DuplicateUsername)),
        }
    }
    assert_eq!(created.len(), 1);
    let found = s
        .users
        .find_by_username(&format!("{base}{suffix}"))
        .await
        .unwrap();
    assert_eq!(found, created[0]);
    assert_eq!(
        s.users.list(query(None, true, true)).await.unwrap().total,
        1
    );
}

/// One refresh token presented ten times at once: one rotation, the rest see theft or a dead
/// session, and the session ends revoked.
pub async fn concurrent_refresh_rotates_once(s: Stores) {
    let user = create(&s, new_user()).await;
    let (sid, first) = start_session(&s, user.id).await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (s, first) = (s.clone(), first.clone());
            tokio::spawn(async move { s.sessions.rotate_refresh(&first, &digest(), now()).await })
        })
        .collect();
    let (mut rotated, mut reused, mut invalid) = (0, 0, 0);
    for task in tasks {
        match task.await.unwrap().unwrap() {
            RefreshOutcome::Rotated { session, .. } => {
                assert_eq!(session.id, sid);
                rotated += 1;
            }
            RefreshOutcome::Reused { session_id } => {
                assert_eq!(session_id, sid);
                reused += 1;
            }
            RefreshOutcome::Invalid => invalid += 1,
        }
    }
    assert_eq!(rotated, 1, "reused {reused}, invalid {invalid}");
    assert!(reused >= 1, "reused {reused}, invalid {invalid}");
    assert!(session(&s, sid, user.id).await.revoked_at.is_some());
}
