//! The tables of the store and the checks shared by the repository methods.

use std::collections::{HashMap, HashSet};

use std::collections::BTreeMap;

use tessera_domain::model::{
    is_currency_code, ledger_events, AuditEvent, ChainRef, ConsumptionOutcome, CounterKey, Deposit,
    Discount, Event, LedgerEntry, ResourceId, Session, Share, ThresholdOwner, Tier, User,
    UserState, Wallet,
};
use tessera_domain::ports::RepoError;
use tessera_domain::Conflict;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

/// A user row: the domain value plus the secret that is deliberately not part of it.
#[derive(Clone)]
pub(crate) struct UserRow {
    pub user: User,
    pub password_hash: Option<String>,
    pub fingerprint_digest: Option<String>,
}

/// An API key row: the key and the digest of its secret.
#[derive(Clone)]
pub(crate) struct ApiKeyRow {
    pub key: tessera_domain::model::ApiKey,
    pub digest: String,
}

/// A refresh-token row, keyed by its digest.
#[derive(Clone, Copy)]
pub(crate) struct RefreshTokenRow {
    pub session_id: Uuid,
    pub spent: bool,
}

/// A claimed `Idempotency-Key`, keyed by `(scope, key)`.
#[derive(Clone)]
pub(crate) struct IdempotencyRow {
    pub fingerprint: String,
    pub entry_id: Uuid,
    pub created_at: OffsetDateTime,
}

/// One hourly usage bucket's sums.
#[derive(Clone, Copy, Default)]
pub(crate) struct BucketRow {
    pub count: i64,
    pub amount: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// A claimed consumption `Idempotency-Key` with the decision it produced.
#[derive(Clone)]
pub(crate) struct UsageKeyRow {
    pub fingerprint: String,
    pub user_id: Uuid,
    pub outcome: ConsumptionOutcome,
    pub created_at: OffsetDateTime,
}

#[derive(Default)]
pub(crate) struct State {
    pub users: HashMap<Uuid, UserRow>,
    pub sessions: HashMap<Uuid, Session>,
    pub refresh_tokens: HashMap<String, RefreshTokenRow>,
    pub wallets: HashMap<Uuid, Wallet>,
    /// Every ledger entry, by id.
    pub ledger: HashMap<Uuid, LedgerEntry>,
    pub idempotency: HashMap<(Uuid, String), IdempotencyRow>,
    pub tiers: HashMap<Uuid, Tier>,
    /// Shares by `(owner_id, grantee_id)`.
    pub shares: HashMap<(Uuid, Uuid), Share>,
    /// Append-only, in insertion order.
    pub audit: Vec<AuditEvent>,
    pub api_keys: HashMap<Uuid, ApiKeyRow>,
    /// Used signatures and when their record may go.
    pub used_signatures: HashMap<String, OffsetDateTime>,
    /// Fixed-window counters by `(key, window start)`.
    pub counters: HashMap<(String, OffsetDateTime), (u64, OffsetDateTime)>,
    pub user_quotas: HashMap<Uuid, BTreeMap<ResourceId, u64>>,
    pub user_discounts: HashMap<Uuid, BTreeMap<ResourceId, Discount>>,
    /// Day counters by `(user, counter, day)`.
    pub quota_counters: HashMap<(Uuid, CounterKey, time::Date), i64>,
    /// Hourly buckets by `(user, resource, bucket start)`.
    pub usage_buckets: BTreeMap<(Uuid, ResourceId, OffsetDateTime), BucketRow>,
    /// Consumption keys by `(scope, key)`.
    pub usage_keys: HashMap<(Uuid, String), UsageKeyRow>,
    /// Counters whose `quota.exhausted` event was written, by `(user, counter, day)`.
    pub quota_exhausted: HashSet<(Uuid, CounterKey, time::Date)>,
    pub balance_thresholds: HashMap<ThresholdOwner, BTreeMap<String, i64>>,
    /// The event feed, in commit order (one lock: commit order is write order).
    pub events: Vec<(i64, Event)>,
    /// Events ever written (the sequence of the last one).
    pub event_seq: i64,
    pub webhooks: crate::events::Webhooks,
    /// Recorded deposits by their chain identity (the unique key).
    pub deposits: HashMap<ChainRef, Deposit>,
}

/// A timestamp as PostgreSQL (`timestamptz`, through diesel) gives it back: in UTC, truncated to
/// whole microseconds.
pub(crate) fn stored(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    let micros_only = t.nanosecond() - t.nanosecond() % 1_000;
    t.replace_nanosecond(micros_only).unwrap_or(t)
}

/// Case-insensitive equality, as the `lower(...)` unique indexes compare.
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

pub(crate) fn is_active_superuser(user: &User) -> bool {
    user.state == UserState::Active && user.permissions.is_superuser()
}

/// The row-level CHECK constraints of the `users` table.
pub(crate) fn check_row(row: &UserRow) -> Result<(), RepoError> {
    let user = &row.user;
    let violated = |name: &str| {
        Err(RepoError::internal(format!(
            "new row for relation \"users\" violates check constraint \"{name}\""
        )))
    };
    let chars = |s: &Option<String>| s.as_deref().map_or(0, |s| s.chars().count());
    if user
        .username
        .as_ref()
        .is_some_and(|u| !(2..=254).contains(&u.chars().count()))
    {
        return violated("users_username_check");
    }
    if chars(&user.email) > 254 {
        return violated("users_email_check");
    }
    if chars(&user.first_name) > 400 {
        return violated("users_first_name_check");
    }
    if chars(&user.last_name) > 400 {
        return violated("users_last_name_check");
    }
    if chars(&user.hotkey) > 64 {
        return violated("users_hotkey_check");
    }
    if chars(&user.coldkey) > 64 {
        return violated("users_coldkey_check");
    }
    if user.manager_id.is_some()
        && (user.username.is_some()
            || user.email.is_some()
            || row.password_hash.is_some()
            || user.hotkey.is_some()
            || row.fingerprint_digest.is_some())
    {
        return violated("users_managed_without_credentials");
    }
    if user.username.as_deref().is_some_and(|u| {
        u.contains('@') && user.email.as_deref().map(str::to_lowercase) != Some(u.to_lowercase())
    }) {
        return violated("users_email_username_is_own_email");
    }
    if (user.state == UserState::Deleted) != user.deleted_at.is_some() {
        return violated("users_deleted_at_matches_state");
    }
    Ok(())
}

/// The row-level CHECK constraints of the `wallets` table.
pub(crate) fn check_wallet(wallet: &Wallet) -> Result<(), RepoError> {
    let violated = |name: &str| {
        Err(RepoError::internal(format!(
            "new row for relation \"wallets\" violates check constraint \"{name}\""
        )))
    };
    if !(1..=100).contains(&wallet.name.chars().count()) {
        return violated("wallets_name_check");
    }
    if !is_currency_code(&wallet.currency) {
        return violated("wallets_currency_check");
    }
    if wallet.balance < 0 && !wallet.allow_negative {
        return violated("wallets_balance_non_negative");
    }
    Ok(())
}

/// The row-level CHECK constraints of the `ledger_entries` table.
pub(crate) fn check_entry(entry: &LedgerEntry) -> Result<(), RepoError> {
    let violated = |name: &str| {
        Err(RepoError::internal(format!(
            "new row for relation \"ledger_entries\" violates check constraint \"{name}\""
        )))
    };
    if entry.amount == 0 {
        return violated("ledger_entries_amount_check");
    }
    if !(1..=500).contains(&entry.reason.chars().count()) {
        return violated("ledger_entries_reason_check");
    }
    if entry
        .idempotency_key
        .as_ref()
        .is_some_and(|k| !(1..=255).contains(&k.len()))
    {
        return violated("ledger_entries_idempotency_key_check");
    }
    Ok(())
}

impl State {
    /// The user's live default wallet in `currency`, other than `except`.
    pub fn live_default(
        &self,
        user_id: Uuid,
        currency: &str,
        except: Option<Uuid>,
    ) -> Option<Uuid> {
        self.wallets
            .values()
            .find(|w| {
                w.user_id == user_id
                    && w.currency == currency
                    && w.is_default
                    && w.deleted_at.is_none()
                    && Some(w.id) != except
            })
            .map(|w| w.id)
    }

    /// The foreign keys of a user row (`manager_id`, `created_by`) name existing users.
    pub fn check_references(&self, user: &User) -> Result<(), RepoError> {
        for (column, target) in [
            ("manager_id", user.manager_id),
            ("created_by", user.created_by),
        ] {
            if let Some(target) = target {
                if !self.users.contains_key(&target) {
                    return Err(RepoError::internal(format!(
                        "insert or update on table \"users\" violates foreign key constraint \"users_{column}_fkey\""
                    )));
                }
            }
        }
        Ok(())
    }

    /// A `tier_id` names an existing tier (the foreign key; violations read as `NotFound`).
    pub fn check_tier(&self, tier_id: Option<Uuid>) -> Result<(), RepoError> {
        match tier_id {
            Some(id) if !self.tiers.contains_key(&id) => Err(RepoError::NotFound),
            _ => Ok(()),
        }
    }

    /// Records an audit event with its time as the database would store it, and the domain
    /// event it produces.
    pub fn record(&mut self, event: Option<AuditEvent>) {
        if let Some(mut event) = event {
            event.at = stored(event.at);
            if let Some(domain_event) = Event::from_audit(&event) {
                self.emit(domain_event);
            }
            self.audit.push(event);
        }
    }

    /// Appends an event to the feed.
    pub fn emit(&mut self, mut event: Event) {
        event.occurred_at = stored(event.occurred_at);
        self.event_seq += 1;
        self.events.push((self.event_seq, event));
    }

    /// The threshold in force for a user's wallets in `currency`: the user's own, else their
    /// tier's.
    pub fn balance_threshold(&self, user_id: Uuid, currency: &str) -> Option<i64> {
        let own = self
            .balance_thresholds
            .get(&ThresholdOwner::User(user_id))
            .and_then(|m| m.get(currency));
        own.or_else(|| {
            let tier = self.users.get(&user_id)?.user.tier_id?;
            self.balance_thresholds
                .get(&ThresholdOwner::Tier(tier))?
                .get(currency)
        })
        .copied()
    }

    /// Stores a ledger entry (its wallet already updated) with the events it produces, as the
    /// database's trigger on `ledger_entries` does.
    pub fn post_entry(&mut self, entry: LedgerEntry) {
        if let Some(wallet) = self.wallets.get(&entry.wallet_id) {
            let (owner, currency) = (wallet.user_id, wallet.currency.clone());
            let threshold = self.balance_threshold(owner, &currency);
            let at = stored(entry.created_at);
            let ids = || {
                let nanos =
                    u32::try_from(at.unix_timestamp_nanos().rem_euclid(1_000_000_000)).unwrap_or(0);
                let secs = u64::try_from(at.unix_timestamp()).unwrap_or(0);
                Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, secs, nanos))
            };
            for event in ledger_events(&entry, owner, &currency, threshold, ids) {
                self.emit(event);
            }
        }
        self.ledger.insert(entry.id, entry);
    }

    /// The user other than `except` holding this username, case-insensitively.
    pub fn username_taken(&self, username: &str, except: Option<Uuid>) -> bool {
        self.users.values().any(|row| {
            Some(row.user.id) != except
                && row
                    .user
                    .username
                    .as_deref()
                    .is_some_and(|u| same_name(u, username))
        })
    }

    /// The user other than `except` holding this email, case-insensitively.
    pub fn email_taken(&self, email: &str, except: Option<Uuid>) -> bool {
        self.users.values().any(|row| {
            Some(row.user.id) != except
                && row
                    .user
                    .email
                    .as_deref()
                    .is_some_and(|e| same_name(e, email))
        })
    }

    /// The unique hotkey and fingerprint indexes.
    pub fn check_credentials(&self, row: &UserRow, except: Option<Uuid>) -> Result<(), RepoError> {
        let others = || {
            self.users
                .values()
                .filter(move |r| Some(r.user.id) != except)
        };
        if let Some(hotkey) = row.user.hotkey.as_deref() {
            if others().any(|r| r.user.hotkey.as_deref() == Some(hotkey)) {
                return Err(RepoError::Conflict(Conflict::DuplicateHotkey));
            }
        }
        if let Some(digest) = row.fingerprint_digest.as_deref() {
            if others().any(|r| r.fingerprint_digest.as_deref() == Some(digest)) {
                return Err(RepoError::Conflict(Conflict::FingerprintTaken));
            }
        }
        Ok(())
    }

    pub fn active_superusers(&self) -> usize {
        self.users
            .values()
            .filter(|row| is_active_superuser(&row.user))
            .count()
    }

    /// The user and, transitively, every user it manages.
    pub fn managed_tree(&self, root: Uuid) -> HashSet<Uuid> {
        let mut tree = HashSet::from([root]);
        let mut frontier = vec![root];
        while let Some(manager) = frontier.pop() {
            for row in self.users.values() {
                if row.user.manager_id == Some(manager) && tree.insert(row.user.id) {
                    frontier.push(row.user.id);
                }
            }
        }
        tree
    }

    /// Revokes, at `now`, every live session of `user_id` but `keep`.
    pub fn revoke_sessions_of(&mut self, user_id: Uuid, keep: Option<Uuid>, now: OffsetDateTime) {
        for session in self.sessions.values_mut() {
            if session.user_id == user_id
                && Some(session.id) != keep
                && session.revoked_at.is_none()
            {
                session.revoked_at = Some(now);
            }
        }
    }
}
