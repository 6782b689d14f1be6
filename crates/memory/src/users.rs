//! [`UserRepository`] over the in-memory tables.

use std::collections::BTreeMap;

use async_trait::async_trait;
use tessera_domain::model::{
    AuditEvent, DailyCount, NewUser, RevokeSessions, StateCounts, User, UserChanges, UserListQuery,
    UserPage, UserState, Wallet,
};
use tessera_domain::ports::{RepoError, RepoResult, UserRepository};
use tessera_domain::Conflict;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::{
    check_row, check_wallet, is_active_superuser, same_name, stored, State, UserRow,
};
use crate::MemoryStore;

/// The user row and its default wallet.
fn user_from(new: NewUser) -> (UserRow, Wallet) {
    let now = stored(new.now);
    let wallet = Wallet {
        id: new.default_wallet.id,
        user_id: new.id,
        name: new.default_wallet.name,
        currency: new.default_wallet.currency,
        is_default: true,
        balance: 0,
        allow_negative: false,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
    let user = User {
        id: new.id,
        username: new.username,
        email: new.email,
        first_name: new.first_name,
        last_name: new.last_name,
        logo_id: None,
        hotkey: new.hotkey,
        coldkey: new.coldkey,
        payment_address: None,
        permissions: new.permissions,
        tier_id: new.tier_id,
        invoicing: false,
        unlimited: false,
        squad_enabled: false,
        manager_id: new.manager_id,
        state: UserState::Active,
        has_password: new.password_hash.is_some(),
        must_change_password: new.must_change_password,
        tokens_valid_after: now,
        created_by: new.created_by,
        created_at: now,
        updated_at: now,
        last_login_at: None,
        deleted_at: None,
    };
    (
        UserRow {
            user,
            password_hash: new.password_hash,
            fingerprint_digest: new.fingerprint_digest,
        },
        wallet,
    )
}

/// The user as it would be after `changes`, without the session revocation.
fn changed(current: &UserRow, changes: &UserChanges, now: OffsetDateTime) -> UserRow {
    let mut row = current.clone();
    let user = &mut row.user;
    if let Some(username) = &changes.username {
        user.username = Some(username.clone());
    }
    if let Some(email) = &changes.email {
        user.email.clone_from(email);
    }
    if let Some(first_name) = &changes.first_name {
        user.first_name.clone_from(first_name);
    }
    if let Some(last_name) = &changes.last_name {
        user.last_name.clone_from(last_name);
    }
    if let Some(hash) = &changes.password_hash {
        row.password_hash = Some(hash.clone());
        user.has_password = true;
    }
    if let Some(must_change) = changes.must_change_password {
        user.must_change_password = must_change;
    }
    if let Some(permissions) = changes.permissions {
        user.permissions = permissions;
    }
    if let Some(tier_id) = changes.tier_id {
        user.tier_id = tier_id;
    }
    if let Some(state) = changes.state {
        user.state = state;
    }
    if let Some(deleted_at) = changes.deleted_at {
        user.deleted_at = deleted_at.map(stored);
    }
    if let Some(hotkey) = &changes.hotkey {
        user.hotkey.clone_from(hotkey);
    }
    if let Some(coldkey) = &changes.coldkey {
        user.coldkey.clone_from(coldkey);
    }
    if let Some(logo_id) = changes.logo_id {
        user.logo_id = logo_id;
    }
    if let Some(squad_enabled) = changes.squad_enabled {
        user.squad_enabled = squad_enabled;
    }
    if let Some(digest) = &changes.fingerprint_digest {
        row.fingerprint_digest = Some(digest.clone());
    }
    if let Some(valid_after) = changes.tokens_valid_after {
        user.tokens_valid_after = stored(valid_after);
    }
    user.updated_at = now;
    row
}

#[async_trait]
impl UserRepository for MemoryStore {
    async fn create(&self, mut user: NewUser) -> RepoResult<User> {
        let audit = user.audit.take();
        let (row, wallet) = user_from(user);
        let mut state = self.lock();
        check_row(&row)?;
        check_wallet(&wallet)?;
        if state.wallets.contains_key(&wallet.id) {
            return Err(RepoError::internal(format!(
                "duplicate key value violates unique constraint \"wallets_pkey\": {}",
                wallet.id
            )));
        }
        if state.users.contains_key(&row.user.id) {
            return Err(RepoError::internal(format!(
                "duplicate key value violates unique constraint \"users_pkey\": {}",
                row.user.id
            )));
        }
        if let Some(username) = &row.user.username {
            if state.username_taken(username, None) {
                return Err(RepoError::Conflict(Conflict::DuplicateUsername));
            }
        }
        if let Some(email) = &row.user.email {
            if state.email_taken(email, None) {
                return Err(RepoError::Conflict(Conflict::DuplicateEmail));
            }
        }
        state.check_credentials(&row, None)?;
        state.check_references(&row.user)?;
        state.check_tier(row.user.tier_id)?;
        let created = row.user.clone();
        state.users.insert(created.id, row);
        state.wallets.insert(wallet.id, wallet);
        state.record(audit);
        Ok(created)
    }

    async fn get(&self, id: Uuid) -> RepoResult<User> {
        let state = self.lock();
        state
            .users
            .get(&id)
            .map(|row| row.user.clone())
            .ok_or(RepoError::NotFound)
    }

    async fn find_by_username(&self, username: &str) -> RepoResult<User> {
        let state = self.lock();
        state
            .users
            .values()
            .find(|row| {
                row.user
                    .username
                    .as_deref()
                    .is_some_and(|u| same_name(u, username))
            })
            .map(|row| row.user.clone())
            .ok_or(RepoError::NotFound)
    }

    async fn find_by_hotkey(&self, hotkey: &str) -> RepoResult<User> {
        let state = self.lock();
        state
            .users
            .values()
            .find(|row| row.user.hotkey.as_deref() == Some(hotkey))
            .map(|row| row.user.clone())
            .ok_or(RepoError::NotFound)
    }

    async fn find_by_coldkey(&self, coldkey: &str, limit: u32) -> RepoResult<Vec<User>> {
        let state = self.lock();
        let mut found: Vec<User> = state
            .users
            .values()
            .filter(|row| row.user.coldkey.as_deref() == Some(coldkey))
            .map(|row| row.user.clone())
            .collect();
        found.sort_by_key(|u| u.id);
        found.truncate(limit as usize);
        Ok(found)
    }

    async fn find_by_fingerprint(&self, digest: &str) -> RepoResult<User> {
        let state = self.lock();
        state
            .users
            .values()
            .find(|row| row.fingerprint_digest.as_deref() == Some(digest))
            .map(|row| row.user.clone())
            .ok_or(RepoError::NotFound)
    }

    async fn find_login(&self, login: &str) -> RepoResult<(User, Option<String>)> {
        let state = self.lock();
        // A username match wins over an email match: a login user may be named by another
        // user's email address (usernames may be emails).
        let by_username = state.users.values().find(|row| {
            row.user
                .username
                .as_deref()
                .is_some_and(|u| same_name(u, login))
        });
        let by_email = || {
            state.users.values().find(|row| {
                row.user
                    .email
                    .as_deref()
                    .is_some_and(|e| same_name(e, login))
            })
        };
        by_username
            .or_else(by_email)
            .map(|row| (row.user.clone(), row.password_hash.clone()))
            .ok_or(RepoError::NotFound)
    }

    async fn password_hash(&self, id: Uuid) -> RepoResult<Option<String>> {
        let state = self.lock();
        state
            .users
            .get(&id)
            .map(|row| row.password_hash.clone())
            .ok_or(RepoError::NotFound)
    }

    async fn update(
        &self,
        id: Uuid,
        changes: UserChanges,
        now: OffsetDateTime,
    ) -> RepoResult<User> {
        let now = stored(now);
        let mut state = self.lock();
        let current = state.users.get(&id).ok_or(RepoError::NotFound)?;
        let next = changed(current, &changes, now);

        if is_active_superuser(&current.user)
            && !is_active_superuser(&next.user)
            && state.active_superusers() <= 1
        {
            return Err(RepoError::Conflict(Conflict::LastSuperuser));
        }
        check_row(&next)?;
        if let Some(username) = &changes.username {
            if state.username_taken(username, Some(id)) {
                return Err(RepoError::Conflict(Conflict::DuplicateUsername));
            }
        }
        if let Some(Some(email)) = &changes.email {
            if state.email_taken(email, Some(id)) {
                return Err(RepoError::Conflict(Conflict::DuplicateEmail));
            }
        }

        state.check_credentials(&next, Some(id))?;
        if let Some(tier) = changes.tier_id {
            state.check_tier(tier)?;
        }
        let updated = next.user.clone();
        state.users.insert(id, next);
        state.record(changes.audit);
        match changes.revoke_sessions {
            RevokeSessions::None => {}
            RevokeSessions::All => state.revoke_sessions_of(id, None, now),
            RevokeSessions::AllExcept(keep) => state.revoke_sessions_of(id, Some(keep), now),
        }
        Ok(updated)
    }

    async fn set_invoicing(
        &self,
        id: Uuid,
        invoicing: bool,
        unlimited: bool,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<User> {
        let now = stored(now);
        let mut state = self.lock();
        if !state.users.contains_key(&id) {
            return Err(RepoError::NotFound);
        }
        // The wallets' CHECK (balance >= 0 OR allow_negative) refuses the change.
        if !invoicing
            && state
                .wallets
                .values()
                .any(|w| w.user_id == id && w.balance < 0)
        {
            return Err(RepoError::Conflict(Conflict::NegativeBalance));
        }
        for wallet in state.wallets.values_mut().filter(|w| w.user_id == id) {
            wallet.allow_negative = invoicing;
        }
        let row = state.users.get_mut(&id).ok_or(RepoError::NotFound)?;
        row.user.invoicing = invoicing;
        row.user.unlimited = unlimited;
        row.user.updated_at = now;
        let user = row.user.clone();
        state.record(audit);
        Ok(user)
    }

    async fn list(&self, query: UserListQuery) -> RepoResult<UserPage> {
        let state = self.lock();
        let mut users: Vec<&User> = state
            .users
            .values()
            .map(|row| &row.user)
            .filter(|user| state.matches(user, &query))
            .collect();
        state.sort(&mut users, &query);
        let total = users.len() as u64;
        if let Some(cursor) = &query.after {
            users.retain(|u| State::is_after(u, &query, cursor));
        }
        let offset = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        let rest = users.len().saturating_sub(offset);
        let users = users
            .into_iter()
            .skip(offset)
            .take(limit)
            .cloned()
            .collect();
        Ok(UserPage {
            users,
            total,
            total_exact: true,
            more: rest > limit,
        })
    }

    async fn count(&self, query: UserListQuery) -> RepoResult<u64> {
        let state = self.lock();
        Ok(state
            .users
            .values()
            .filter(|row| state.matches(&row.user, &query))
            .count() as u64)
    }

    /// Counted under the same lock every change takes, so it is exact at every instant; the
    /// in-memory store scans (it holds what fits in memory, for tests and development).
    async fn count_by_state(&self) -> RepoResult<StateCounts> {
        let state = self.lock();
        let mut counts = StateCounts::default();
        for row in state.users.values() {
            match row.user.state {
                UserState::Active => counts.active += 1,
                UserState::Deactivated => counts.deactivated += 1,
                UserState::Deleted => counts.deleted += 1,
            }
        }
        Ok(counts)
    }

    async fn growth(&self, days: u32) -> RepoResult<Vec<DailyCount>> {
        let state = self.lock();
        let mut per_day: BTreeMap<time::Date, u64> = BTreeMap::new();
        for row in state.users.values() {
            *per_day.entry(row.user.created_at.date()).or_default() += 1;
        }
        Ok(per_day
            .into_iter()
            .rev()
            .take(days as usize)
            .map(|(day, count)| DailyCount { day, count })
            .collect())
    }

    async fn any_exists(&self) -> RepoResult<bool> {
        Ok(!self.lock().users.is_empty())
    }

    async fn count_managed_by(&self, manager_id: Uuid) -> RepoResult<u64> {
        let state = self.lock();
        Ok(state
            .users
            .values()
            .filter(|row| row.user.manager_id == Some(manager_id))
            .count() as u64)
    }

    async fn purge(&self, id: Uuid, audit: Option<AuditEvent>) -> RepoResult<()> {
        let mut state = self.lock();
        if !state.users.contains_key(&id) {
            return Err(RepoError::NotFound);
        }
        purge_locked(&mut state, id, audit)
    }

    async fn deleted_before(&self, cutoff: OffsetDateTime, limit: u32) -> RepoResult<Vec<Uuid>> {
        let state = self.lock();
        let mut due: Vec<(OffsetDateTime, Uuid)> = state
            .users
            .values()
            .filter_map(|row| deleted_before(&row.user, cutoff).map(|at| (at, row.user.id)))
            .collect();
        due.sort_unstable();
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|(_, id)| id)
            .collect())
    }

    async fn purge_deleted(
        &self,
        id: Uuid,
        cutoff: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<bool> {
        let mut state = self.lock();
        let due = state
            .users
            .get(&id)
            .is_some_and(|row| deleted_before(&row.user, cutoff).is_some());
        if !due {
            return Ok(false);
        }
        purge_locked(&mut state, id, audit)?;
        Ok(true)
    }

    async fn assign_payment_address(&self, id: Uuid, address: &str) -> RepoResult<String> {
        let mut state = self.lock();
        let current = state
            .users
            .get(&id)
            .ok_or(RepoError::NotFound)?
            .user
            .payment_address
            .clone();
        if let Some(current) = current {
            return Ok(current);
        }
        if state
            .users
            .values()
            .any(|r| r.user.payment_address.as_deref() == Some(address))
        {
            return Err(RepoError::internal(
                "duplicate key value violates unique constraint \"users_payment_address_key\"",
            ));
        }
        let row = state.users.get_mut(&id).ok_or(RepoError::NotFound)?;
        row.user.payment_address = Some(address.to_owned());
        Ok(address.to_owned())
    }

    async fn without_payment_address(&self, limit: u32) -> RepoResult<Vec<Uuid>> {
        let state = self.lock();
        let mut due: Vec<_> = state
            .users
            .values()
            .filter(|row| row.user.payment_address.is_none())
            .map(|row| (row.user.created_at, row.user.id))
            .collect();
        due.sort_unstable();
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|(_, id)| id)
            .collect())
    }
}

/// When `user` was soft-deleted, if that was before `cutoff`.
fn deleted_before(user: &User, cutoff: OffsetDateTime) -> Option<OffsetDateTime> {
    user.deleted_at
        .filter(|at| user.state == UserState::Deleted && *at < cutoff)
}

/// Removes an existing user and everything it owns, as the foreign keys' ON DELETE rules would.
fn purge_locked(state: &mut State, id: Uuid, audit: Option<AuditEvent>) -> RepoResult<()> {
    let doomed = state.managed_tree(id);
    let doomed_superusers = state
        .users
        .values()
        .filter(|row| doomed.contains(&row.user.id) && is_active_superuser(&row.user))
        .count();
    if doomed_superusers > 0 && doomed_superusers == state.active_superusers() {
        return Err(RepoError::Conflict(Conflict::LastSuperuser));
    }

    state.record(audit);
    let State {
        users,
        sessions,
        refresh_tokens,
        wallets,
        ledger,
        idempotency,
        shares,
        api_keys,
        user_quotas,
        user_discounts,
        quota_counters,
        usage_buckets,
        usage_keys,
        quota_exhausted,
        balance_thresholds,
        deposits,
        ..
    } = &mut *state;
    users.retain(|user_id, _| !doomed.contains(user_id));
    api_keys.retain(|_, row| !doomed.contains(&row.key.user_id));
    // Wallets, their ledger and the keys the users claimed go by ON DELETE CASCADE; entries
    // they made in other wallets stay, without the actor (ON DELETE SET NULL).
    wallets.retain(|_, wallet| !doomed.contains(&wallet.user_id));
    ledger.retain(|_, entry| wallets.contains_key(&entry.wallet_id));
    for entry in ledger.values_mut() {
        if entry.actor_id.is_some_and(|a| doomed.contains(&a)) {
            entry.actor_id = None;
        }
    }
    idempotency
        .retain(|(scope, _), row| !doomed.contains(scope) && ledger.contains_key(&row.entry_id));
    // `created_by` is ON DELETE SET NULL.
    for row in users.values_mut() {
        if row.user.created_by.is_some_and(|c| doomed.contains(&c)) {
            row.user.created_by = None;
        }
    }
    sessions.retain(|_, session| !doomed.contains(&session.user_id));
    refresh_tokens.retain(|_, token| sessions.contains_key(&token.session_id));
    // Shares of either party go by ON DELETE CASCADE.
    shares.retain(|(owner, grantee), _| !doomed.contains(owner) && !doomed.contains(grantee));
    // Metering rows go by ON DELETE CASCADE; a key's entry by ON DELETE SET NULL.
    user_quotas.retain(|user, _| !doomed.contains(user));
    user_discounts.retain(|user, _| !doomed.contains(user));
    quota_counters.retain(|(user, _, _), _| !doomed.contains(user));
    quota_exhausted.retain(|(user, _, _)| !doomed.contains(user));
    balance_thresholds.retain(|owner, _| {
        !matches!(owner, tessera_domain::model::ThresholdOwner::User(u) if doomed.contains(u))
    });
    usage_buckets.retain(|(user, _, _), _| !doomed.contains(user));
    usage_keys.retain(|(scope, _), row| !doomed.contains(scope) && !doomed.contains(&row.user_id));
    // A deposit's record stays (it keeps the transfer from being credited twice); its
    // references are ON DELETE SET NULL.
    for deposit in deposits.values_mut() {
        if deposit.user_id.is_some_and(|u| doomed.contains(&u)) {
            deposit.user_id = None;
        }
        if deposit.reported_by.is_some_and(|u| doomed.contains(&u)) {
            deposit.reported_by = None;
        }
        if deposit.wallet_id.is_some_and(|w| !wallets.contains_key(&w)) {
            deposit.wallet_id = None;
        }
        if deposit.entry_id.is_some_and(|e| !ledger.contains_key(&e)) {
            deposit.entry_id = None;
        }
    }
    for row in usage_keys.values_mut() {
        if row
            .outcome
            .entry_id
            .is_some_and(|e| !ledger.contains_key(&e))
        {
            row.outcome.entry_id = None;
        }
    }
    Ok(())
}
