//! Users and their lifecycle: create, read, list, update, soft delete, restore, deactivate,
//! purge.

use std::sync::Arc;

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::actor::{Access, Actor};
use crate::app::{Ports, TesseraConfig};
use crate::directory::{SearchTerm, Sort, UserCursor, UserFilter};
use crate::error::{Conflict, Failure, UserError, ValidationError};
use crate::model::{
    AuditAction, DailyCount, DefaultWallet, FieldChange, NewUser, Permission, Permissions,
    RevokeSessions, ScopeSet, User, UserChanges, UserListQuery, UserState, DEFAULT_WALLET_NAME,
};
use crate::policy;
use crate::ports::{
    Clock, IdGenerator, PasswordHasher, RepoError, SecretGenerator, ShareRepository, UserRepository,
};
use crate::services::audit;
use crate::services::throttle::CredentialThrottle;
use crate::services::throttle::{AccountKey, UNKNOWN_ADDRESS};
use crate::values::{Email, Paging, Password, PersonName, PresentedSecret, UserRef, Username};

/// The fields an administrator (or, for managed users, anyone) may send to create a user.
/// Strings are raw here; the service validates them and names the failing field.
#[derive(Debug, Clone, Default)]
pub struct CreateUserInput {
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// A full name ("Jane Doe"), split into first and last at the first space.
    pub name: Option<String>,
    pub is_admin: Option<bool>,
    pub is_superuser: Option<bool>,
    /// The user's tier; only superusers may give one (as with `PATCH /users/{u}/tier`).
    pub tier_id: Option<Uuid>,
}

/// A created user; `temp_password` is set, once, when Tessera generated the password.
#[derive(Debug, Clone)]
pub struct CreatedUser {
    pub user: User,
    pub temp_password: Option<String>,
}

/// A partial update. `None` leaves the field alone; for nullable fields `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct UpdateUserInput {
    pub username: Option<String>,
    pub email: Option<Option<String>>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub name: Option<String>,
    pub password: Option<String>,
    pub current_password: Option<String>,
    pub is_admin: Option<bool>,
    pub is_superuser: Option<bool>,
    pub permissions: Option<i64>,
}

/// Listing parameters, already parsed from the wire.
#[derive(Debug, Clone)]
pub struct ListUsersInput {
    pub paging: Paging,
    pub include_deleted: bool,
    pub include_managed: bool,
    pub include_shared: bool,
    pub filter: UserFilter,
    pub search: Option<SearchTerm>,
    pub name: Option<SearchTerm>,
    pub sort: Option<Sort>,
    /// Keyset paging: continue after this position (a `next_cursor` of the same listing).
    pub after: Option<UserCursor>,
}

impl ListUsersInput {
    /// Everything, first page, default size.
    pub fn first_page(paging: Paging) -> Self {
        Self {
            paging,
            include_deleted: false,
            include_managed: true,
            include_shared: true,
            filter: UserFilter::default(),
            search: None,
            name: None,
            sort: None,
            after: None,
        }
    }
}

/// `GET /users/name-check`: whether a name is well-formed and not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameCheck {
    pub valid: bool,
    pub available: bool,
}

/// Users created on one UTC day, and in total up to the end of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrowthPoint {
    pub day: time::Date,
    pub created: u64,
    pub cumulative: u64,
}

/// Days of history `GET /stats/growth` returns by default, and at most.
pub const DEFAULT_GROWTH_DAYS: u32 = 30;
pub const MAX_GROWTH_DAYS: u32 = 366;

/// A page of users and how it relates to the whole.
#[derive(Debug, Clone)]
pub struct UsersPage {
    pub users: Vec<User>,
    /// Exact when `total_exact`, else an estimate (see [`UserPage`]).
    pub total: u64,
    pub total_exact: bool,
    pub paging: Paging,
    more: bool,
    /// Continues the listing after this page (keyset paging); `None` on the last page and
    /// for listings sorted by creator.
    pub next_cursor: Option<String>,
}

impl UsersPage {
    pub fn has_more(&self) -> bool {
        self.more
    }
}

#[derive(Clone)]
pub struct UserService {
    users: Arc<dyn UserRepository>,
    shares: Arc<dyn ShareRepository>,
    hasher: Arc<dyn PasswordHasher>,
    secrets: Arc<dyn SecretGenerator>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    config: Arc<TesseraConfig>,
    throttle: CredentialThrottle,
}

/// The scopes of `target`'s share with the actor, read from the store on every call (a revoked
/// share stops working at once). Not looked up when policy decides without it.
pub(crate) async fn share_with(
    shares: &dyn ShareRepository,
    actor: &Actor,
    target: &User,
) -> Result<Option<ScopeSet>, UserError> {
    if actor.is_delegated()
        || target.state == UserState::Deleted
        || target.is_managed()
        || policy::can_view(actor, target)
    {
        return Ok(None);
    }
    match shares.get(target.id, actor.id()).await {
        Ok(share) => Ok(Some(share.scopes)),
        Err(crate::ports::RepoError::NotFound) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

/// Looks a user up by id or username (no policy).
pub(crate) async fn resolve_user(
    users: &dyn UserRepository,
    user: &UserRef,
) -> Result<User, UserError> {
    let found = match user {
        UserRef::Id(id) => users.get(*id).await,
        UserRef::Username(name) => users.find_by_username(name).await,
    };
    Ok(found?)
}

fn split_full_name(name: &str) -> (String, Option<String>) {
    match name.trim().split_once(' ') {
        Some((first, last)) if !last.trim().is_empty() => {
            (first.to_owned(), Some(last.trim().to_owned()))
        }
        _ => (name.trim().to_owned(), None),
    }
}

/// Usernames and emails share one login namespace (login accepts either). An email-shaped
/// username must therefore be the user's own email, so that the unique index on emails keeps
/// anyone from taking another user's email as a login name, or the reverse. The database holds
/// the same rule as a CHECK constraint.
fn ensure_login_names_agree(
    username: Option<&str>,
    email: Option<&str>,
) -> Result<(), ValidationError> {
    match username {
        Some(name) if name.contains('@') => {
            if email.is_some_and(|e| e.to_lowercase() == name.to_lowercase()) {
                Ok(())
            } else {
                Err(ValidationError::new(
                    "username",
                    "a username that is an email address must be the user's own email",
                ))
            }
        }
        _ => Ok(()),
    }
}

fn optional_name(
    field: &'static str,
    raw: Option<String>,
) -> Result<Option<String>, ValidationError> {
    raw.map(|s| PersonName::parse(field, &s).map(PersonName::into_inner))
        .transpose()
}

impl UserService {
    pub(crate) fn new(
        ports: &Ports,
        config: &Arc<TesseraConfig>,
        throttle: &CredentialThrottle,
    ) -> Self {
        Self {
            users: ports.users.clone(),
            shares: ports.shares.clone(),
            hasher: ports.hasher.clone(),
            secrets: ports.secrets.clone(),
            clock: ports.clock.clone(),
            ids: ports.ids.clone(),
            config: config.clone(),
            throttle: throttle.clone(),
        }
    }

    /// The wallet every new user gets, in the configured default currency.
    pub(crate) fn default_wallet(&self) -> DefaultWallet {
        DefaultWallet {
            id: self.ids.new_id(),
            name: DEFAULT_WALLET_NAME.to_owned(),
            currency: self
                .config
                .currencies
                .default_currency()
                .as_str()
                .to_owned(),
        }
    }

    /// Admin-only surfaces (LNbits' admin API) check this before anything else:
    /// `Forbidden` for callers without the `admin` permission.
    pub fn require_admin(&self, actor: &Actor) -> Result<(), UserError> {
        policy::authorize(actor, Access::Read)?;
        Ok(policy::ensure_admin(actor)?)
    }

    /// Like [`Self::require_admin`], for superuser-only operations.
    pub fn require_superuser(&self, actor: &Actor) -> Result<(), UserError> {
        policy::authorize(actor, Access::Read)?;
        Ok(policy::ensure_superuser(actor)?)
    }

    async fn resolve(&self, user: &UserRef) -> Result<User, UserError> {
        resolve_user(&*self.users, user).await
    }

    /// Applies a change with its audit event.
    pub(crate) async fn apply(
        &self,
        actor: Option<&Actor>,
        target: &User,
        action: AuditAction,
        mut changes: UserChanges,
    ) -> Result<User, UserError> {
        let details = audit::user_changes(target, &changes);
        changes.audit = Some(audit::event(
            self.ids.new_id(),
            self.clock.now(),
            actor,
            Some(target.id),
            action,
            details,
        ));
        let now = self.clock.now();
        Ok(self.users.update(target.id, changes, now).await?)
    }

    fn creation_audit(&self, actor: Option<&Actor>, new: &NewUser) -> crate::model::AuditEvent {
        let mut details = BTreeMap::new();
        let field = |v: &Option<String>| FieldChange {
            before: None,
            after: v.clone(),
        };
        details.insert("username".to_owned(), field(&new.username));
        details.insert("email".to_owned(), field(&new.email));
        details.insert(
            "permissions".to_owned(),
            FieldChange {
                before: None,
                after: Some(new.permissions.names().join(",")),
            },
        );
        if let Some(tier) = new.tier_id {
            details.insert(
                "tier_id".to_owned(),
                FieldChange {
                    before: None,
                    after: Some(tier.to_string()),
                },
            );
        }
        if let Some(manager) = new.manager_id {
            details.insert(
                "manager_id".to_owned(),
                FieldChange {
                    before: None,
                    after: Some(manager.to_string()),
                },
            );
        }
        audit::event(
            self.ids.new_id(),
            self.clock.now(),
            actor,
            Some(new.id),
            AuditAction::UserCreated,
            details,
        )
    }

    pub(crate) async fn insert(
        &self,
        actor: Option<&Actor>,
        mut new: NewUser,
    ) -> Result<User, UserError> {
        new.audit = Some(self.creation_audit(actor, &new));
        let with_tier = new.tier_id.is_some();
        let user = self.users.create(new).await.map_err(|e| match e {
            // The store's only `NotFound` on create: the tier does not exist.
            RepoError::NotFound if with_tier => UserError::TierNotFound,
            other => other.into(),
        })?;
        self.with_payment_address(user).await
    }

    /// The user with its deposit address, assigned now if a master key is configured and it
    /// has none yet (users created before the key was configured get theirs on first sight).
    pub(crate) async fn with_payment_address(&self, mut user: User) -> Result<User, UserError> {
        if user.payment_address.is_none() {
            if let Some(addresses) = &self.config.deposits.addresses {
                let address = addresses.address_of(user.id);
                user.payment_address =
                    Some(self.users.assign_payment_address(user.id, &address).await?);
            }
        }
        Ok(user)
    }

    /// Gives every user without a deposit address its derived one, `batch` at a time (the
    /// server runs it at start when a master key is configured); returns how many were
    /// assigned. Without a configured key it does nothing.
    pub async fn assign_payment_addresses(&self, batch: u32) -> Result<u64, Failure> {
        let Some(addresses) = &self.config.deposits.addresses else {
            return Ok(0);
        };
        let mut assigned = 0;
        loop {
            let ids = self.users.without_payment_address(batch.max(1)).await?;
            if ids.is_empty() {
                return Ok(assigned);
            }
            for id in ids {
                match self
                    .users
                    .assign_payment_address(id, &addresses.address_of(id))
                    .await
                {
                    // Purged meanwhile.
                    Ok(_) | Err(RepoError::NotFound) => assigned += 1,
                    Err(other) => return Err(other.into()),
                }
            }
        }
    }

    /// Looks a user up and checks the actor may see it (shares considered).
    async fn visible(&self, actor: &Actor, user: &UserRef) -> Result<User, UserError> {
        let target = self.resolve(user).await?;
        let share = share_with(&*self.shares, actor, &target).await?;
        policy::ensure_visible_shared(actor, &target, share)?;
        Ok(target)
    }

    async fn hash(&self, password: &Password) -> Result<String, UserError> {
        self.hasher
            .hash(password.expose())
            .await
            .map_err(|cause| Failure::Internal(cause).into())
    }

    /// `POST /users`: with a username or email, a login user (administrators); with only names,
    /// a managed user whose manager is the caller.
    pub async fn create(
        &self,
        actor: &Actor,
        input: CreateUserInput,
    ) -> Result<CreatedUser, UserError> {
        policy::authorize(actor, Access::Write)?;
        let (mut first_name, mut last_name) = (input.first_name, input.last_name);
        if let Some(name) = input.name {
            let (first, last) = split_full_name(&name);
            first_name = first_name.or(Some(first));
            last_name = last_name.or(last);
        }
        let first_name = optional_name("first_name", first_name)?;
        let last_name = optional_name("last_name", last_name)?;
        if input.tier_id.is_some() {
            policy::ensure_can_assign_tier(actor)?;
        }

        if input.username.is_none() && input.email.is_none() {
            return self
                .create_managed(actor, input.password, first_name, last_name, input.tier_id)
                .await;
        }
        policy::ensure_can_create_login_user(actor)?;

        let email = input
            .email
            .as_deref()
            .map(|e| Email::parse("email", e))
            .transpose()?;
        let username = match input.username.as_deref() {
            Some(raw) => Username::parse("username", raw)?,
            // Run:ai local users: the email is the login name.
            None => match &email {
                Some(e) => Username::parse("email", e.as_str())?,
                None => return Err(ValidationError::new("username", "field required").into()),
            },
        };
        // An email-shaped username is the user's own email (given or implied).
        let email = match email {
            None if username.as_str().contains('@') => {
                Some(Email::parse("username", username.as_str())?)
            }
            other => other,
        };
        ensure_login_names_agree(Some(username.as_str()), email.as_ref().map(Email::as_str))?;
        let mut permissions = Permissions::NONE;
        if input.is_admin == Some(true) {
            permissions = permissions.with(Permission::Admin);
        }
        if input.is_superuser == Some(true) {
            permissions = permissions.with(Permission::Superuser);
        }
        policy::ensure_can_grant(actor, Permissions::NONE, permissions)?;

        let policy_rules = &self.config.password_policy;
        let (password, temp_password) = match input.password.as_deref() {
            Some(raw) => (Password::parse("password", raw, policy_rules)?, None),
            None => {
                let generated = self.secrets.new_password();
                (Password::generated(generated.clone()), Some(generated))
            }
        };
        let password_hash = self.hash(&password).await?;
        let new = NewUser {
            id: self.ids.new_id(),
            username: Some(username.into_inner()),
            email: email.map(Email::into_inner),
            first_name,
            last_name,
            password_hash: Some(password_hash),
            hotkey: None,
            coldkey: None,
            fingerprint_digest: None,
            permissions,
            tier_id: input.tier_id,
            manager_id: None,
            must_change_password: temp_password.is_some(),
            created_by: Some(actor.id()),
            now: self.clock.now(),
            audit: None,
            default_wallet: self.default_wallet(),
        };
        let user = self.insert(Some(actor), new).await?;
        Ok(CreatedUser {
            user,
            temp_password,
        })
    }

    async fn create_managed(
        &self,
        actor: &Actor,
        password: Option<String>,
        first_name: Option<String>,
        last_name: Option<String>,
        tier_id: Option<Uuid>,
    ) -> Result<CreatedUser, UserError> {
        policy::authorize(actor, Access::Account)?;
        policy::ensure_can_create_managed_user(actor)?;
        let cap = self.config.limits.max_managed_users_per_user;
        if self.users.count_managed_by(actor.id()).await? >= cap {
            return Err(UserError::Failure(Failure::Conflict(Conflict::TooMany)));
        }
        if password.is_some() {
            return Err(ValidationError::new(
                "password",
                "managed users cannot have credentials; give a username or email to create a login user",
            )
            .into());
        }
        if first_name.is_none() {
            return Err(ValidationError::new(
                "first_name",
                "field required (or give a username or email to create a login user)",
            )
            .into());
        }
        let new = NewUser {
            id: self.ids.new_id(),
            username: None,
            email: None,
            first_name,
            last_name,
            password_hash: None,
            hotkey: None,
            coldkey: None,
            fingerprint_digest: None,
            permissions: Permissions::NONE,
            tier_id,
            manager_id: Some(actor.id()),
            must_change_password: false,
            created_by: Some(actor.id()),
            now: self.clock.now(),
            audit: None,
            default_wallet: self.default_wallet(),
        };
        let user = self.insert(Some(actor), new).await?;
        Ok(CreatedUser {
            user,
            temp_password: None,
        })
    }

    /// Creates a superuser outside any request (bootstrap, `tessera create-admin`). Without a
    /// password one is generated and returned once.
    pub async fn create_superuser(
        &self,
        username: &str,
        email: Option<&str>,
        password: Option<&str>,
    ) -> Result<CreatedUser, UserError> {
        let username = Username::parse("username", username)?;
        let email = email.map(|e| Email::parse("email", e)).transpose()?;
        let (password, temp_password) = match password {
            Some(raw) => (
                Password::parse("password", raw, &self.config.password_policy)?,
                None,
            ),
            None => {
                let generated = self.secrets.new_password();
                (Password::generated(generated.clone()), Some(generated))
            }
        };
        let password_hash = self.hash(&password).await?;
        let new = NewUser {
            id: self.ids.new_id(),
            username: Some(username.into_inner()),
            email: email.map(Email::into_inner),
            first_name: None,
            last_name: None,
            password_hash: Some(password_hash),
            hotkey: None,
            coldkey: None,
            fingerprint_digest: None,
            permissions: Permissions::NONE.with(Permission::Superuser),
            tier_id: None,
            manager_id: None,
            must_change_password: false,
            created_by: None,
            now: self.clock.now(),
            audit: None,
            default_wallet: self.default_wallet(),
        };
        let user = self.insert(None, new).await?;
        Ok(CreatedUser {
            user,
            temp_password,
        })
    }

    /// On an empty store, creates the first superuser; otherwise does nothing. Safe when several
    /// processes start at once: the loser of the race sees a duplicate and stands down.
    pub async fn bootstrap_superuser(
        &self,
        username: &str,
        password: Option<&str>,
    ) -> Result<Option<CreatedUser>, UserError> {
        if self.users.any_exists().await? {
            return Ok(None);
        }
        match self.create_superuser(username, None, password).await {
            Ok(created) => Ok(Some(created)),
            Err(UserError::Failure(Failure::Conflict(Conflict::DuplicateUsername))) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// The caller's own record. Allowed even while a password change is pending.
    ///
    /// Authentication loaded the caller's row in this very request; it is not read again.
    pub async fn me(&self, actor: &Actor) -> Result<User, UserError> {
        policy::authorize_pending(actor, Access::Read)?;
        Ok(actor.user.clone())
    }

    pub async fn get(&self, actor: &Actor, user: &UserRef) -> Result<User, UserError> {
        policy::authorize(actor, Access::Read)?;
        self.visible(actor, user).await
    }

    /// Administrators page through the whole directory; everyone else sees themselves and the
    /// users they manage.
    pub async fn list(&self, actor: &Actor, input: ListUsersInput) -> Result<UsersPage, UserError> {
        policy::authorize(actor, Access::Read)?;
        policy::ensure_not_delegated(actor, "a delegated token cannot list users")?;
        let paging = input.paging;
        if input.after.is_some() && paging.offset > 0 {
            return Err(ValidationError::new(
                "cursor",
                "a cursor continues a listing by itself: leave out offset and page",
            )
            .into());
        }
        let query = Self::query(actor, input);
        let sort = query.sort;
        let page = self.users.list(query).await?;
        let next_cursor = match (page.more, page.users.last()) {
            (true, Some(last)) => UserCursor::after(last, sort).map(|c| c.encode()),
            _ => None,
        };
        Ok(UsersPage {
            users: page.users,
            total: page.total,
            total_exact: page.total_exact,
            paging,
            more: page.more,
            next_cursor,
        })
    }

    fn query(actor: &Actor, input: ListUsersInput) -> UserListQuery {
        let admin = actor.is_admin();
        UserListQuery {
            visible_to: (!admin).then(|| actor.id()),
            include_managed: input.include_managed,
            include_shared: input.include_shared,
            include_deleted: admin && input.include_deleted,
            filter: input.filter,
            search: input.search,
            name: input.name,
            sort: input.sort,
            offset: input.paging.offset,
            limit: input.paging.limit,
            after: input.after,
        }
    }

    /// `GET /users/count`: how many users the same filters cover.
    pub async fn count(&self, actor: &Actor, input: ListUsersInput) -> Result<u64, UserError> {
        policy::authorize(actor, Access::Read)?;
        policy::ensure_not_delegated(actor, "a delegated token cannot list users")?;
        let query = Self::query(actor, input);
        // Only states restrict it: the kept counts answer exactly, whatever the directory size.
        if let Some(states) = query.counted_states() {
            return Ok(self.users.count_by_state().await?.covering(&states));
        }
        Ok(self.users.count(query).await?)
    }

    /// Whether `username` is a valid login name and free. Names are compared in lowercase and
    /// soft-deleted users' names stay taken.
    pub async fn name_check(&self, username: &str) -> Result<NameCheck, UserError> {
        if Username::parse("username", username).is_err() {
            return Ok(NameCheck {
                valid: false,
                available: false,
            });
        }
        let available = match self.users.find_by_username(username).await {
            Ok(_) => false,
            Err(RepoError::NotFound) => true,
            Err(other) => return Err(other.into()),
        };
        Ok(NameCheck {
            valid: true,
            available,
        })
    }

    /// Users created per UTC day, newest first, with the running total up to each day.
    pub async fn growth(&self, days: Option<u32>) -> Result<Vec<GrowthPoint>, UserError> {
        let days = days
            .unwrap_or(DEFAULT_GROWTH_DAYS)
            .clamp(1, MAX_GROWTH_DAYS);
        let daily: Vec<DailyCount> = self.users.growth(days).await?;
        let total = self.users.count_by_state().await?.total();
        // Newest first: the running total at a day is everything minus what came after it.
        let mut after = 0u64;
        Ok(daily
            .into_iter()
            .map(|d| {
                let point = GrowthPoint {
                    day: d.day,
                    created: d.count,
                    cumulative: total.saturating_sub(after),
                };
                after += d.count;
                point
            })
            .collect())
    }

    /// Partial update of a user (PATCH and PUT). Passwords: administrators set them outright
    /// (every session of the user ends); users change their own with `current_password` (their
    /// other sessions end).
    pub async fn update(
        &self,
        actor: &Actor,
        user: &UserRef,
        input: UpdateUserInput,
    ) -> Result<User, UserError> {
        let target = self.resolve(user).await?;
        // Changing one's own password is the one update allowed while a change is pending.
        let only_own_password = actor.id() == target.id
            && input.password.is_some()
            && input.username.is_none()
            && input.email.is_none()
            && input.first_name.is_none()
            && input.last_name.is_none()
            && input.name.is_none()
            && input.is_admin.is_none()
            && input.is_superuser.is_none()
            && input.permissions.is_none();
        if only_own_password {
            policy::authorize_pending(actor, Access::Write)?;
        } else {
            policy::authorize(actor, Access::Write)?;
        }
        let share = share_with(&*self.shares, actor, &target).await?;
        policy::ensure_can_update(actor, &target, share)?;
        let changes_login =
            input.password.is_some() || input.username.is_some() || input.email.is_some();
        if changes_login {
            // A login identity or a password is a credential: the account holder's own sign-in
            // changes it, and only a superuser another administrator's.
            if actor.id() == target.id {
                policy::authorize_pending(actor, Access::Account)?;
            }
            policy::ensure_may_touch_credentials(actor, &target)?;
        }
        let now = self.clock.now();
        let mut changes = UserChanges::default();

        if let Some(raw) = input.username {
            if target.is_managed() {
                return Err(ValidationError::new(
                    "username",
                    "managed users cannot have a login identity",
                )
                .into());
            }
            changes.username = Some(Username::parse("username", &raw)?.into_inner());
        }
        if let Some(email) = input.email {
            if target.is_managed() && email.is_some() {
                return Err(ValidationError::new(
                    "email",
                    "managed users cannot have a login identity",
                )
                .into());
            }
            changes.email = Some(
                email
                    .map(|e| Email::parse("email", &e).map(Email::into_inner))
                    .transpose()?,
            );
        }
        if changes.username.is_some() || changes.email.is_some() {
            let username = changes.username.as_deref().or(target.username.as_deref());
            let email = match &changes.email {
                Some(new) => new.as_deref(),
                None => target.email.as_deref(),
            };
            ensure_login_names_agree(username, email)?;
        }
        let (mut first_name, mut last_name) = (input.first_name, input.last_name);
        if let Some(name) = input.name {
            let (first, last) = split_full_name(&name);
            first_name = first_name.or(Some(Some(first)));
            last_name = last_name.or(Some(last));
        }
        if let Some(first) = first_name {
            changes.first_name = Some(optional_name("first_name", first)?);
        }
        if let Some(last) = last_name {
            changes.last_name = Some(optional_name("last_name", last)?);
        }

        let mut permissions = match input.permissions {
            Some(bits) => {
                if bits < 0 {
                    return Err(ValidationError::new("permissions", "must not be negative").into());
                }
                Permissions::from_bits(bits)
            }
            None => target.permissions,
        };
        for (flag, permission) in [
            (input.is_admin, Permission::Admin),
            (input.is_superuser, Permission::Superuser),
        ] {
            match flag {
                Some(true) => permissions = permissions.with(permission),
                Some(false) => permissions = permissions.without(permission),
                None => {}
            }
        }
        if permissions != target.permissions {
            policy::ensure_can_set_permissions(actor, &target, target.permissions, permissions)?;
            changes.permissions = Some(permissions);
        }

        if let Some(raw) = input.password {
            if target.is_managed() {
                return Err(ValidationError::new(
                    "password",
                    "managed users cannot have credentials",
                )
                .into());
            }
            policy::ensure_can_set_password(actor, &target)?;
            let new_password = Password::parse("password", &raw, &self.config.password_policy)?;
            let by_admin = actor.id() != target.id;
            if !by_admin {
                self.check_current_password(actor, &target, input.current_password)
                    .await?;
            }
            changes.password_hash = Some(self.hash(&new_password).await?);
            changes.must_change_password = Some(false);
            changes.revoke_sessions = if by_admin {
                // Someone else chose this password: every existing token of the user ends now.
                changes.tokens_valid_after = Some(now);
                RevokeSessions::All
            } else {
                // The caller keeps the session they are using; every other one ends.
                match actor.session_id {
                    Some(current) => RevokeSessions::AllExcept(current),
                    None => RevokeSessions::All,
                }
            };
        }

        if changes.is_empty() {
            return Ok(target);
        }
        let action = if changes.permissions.is_some() {
            AuditAction::PermissionsChanged
        } else if changes.password_hash.is_some() && changes.username.is_none() {
            AuditAction::PasswordChanged
        } else {
            AuditAction::UserUpdated
        };
        self.apply(Some(actor), &target, action, changes).await
    }

    /// Checks a presented current password, throttled like a login of the same account from the
    /// same address (a stolen session must not become a password oracle).
    async fn check_current_password(
        &self,
        actor: &Actor,
        target: &User,
        current: Option<String>,
    ) -> Result<(), UserError> {
        let Some(current) = current.and_then(PresentedSecret::new) else {
            return Err(ValidationError::new(
                "current_password",
                "the current password is required to change your password",
            )
            .into());
        };
        let client = actor.client_ip.as_deref().unwrap_or(UNKNOWN_ADDRESS);
        let account = AccountKey::User(target.id);
        self.throttle.before_attempt(&account, client).await?;
        let hash = self.users.password_hash(target.id).await?;
        let matches = self
            .hasher
            .verify(current.expose(), hash.as_deref())
            .await
            .map_err(Failure::Internal)?;
        if matches {
            Ok(())
        } else {
            self.throttle.record_failure(&account, client).await?;
            Err(ValidationError::new("current_password", "the current password is wrong").into())
        }
    }

    /// Login users are soft-deleted (sessions end at once); managed users are purged with
    /// everything they own. Deleting an already-deleted user changes nothing.
    pub async fn delete(&self, actor: &Actor, user: &UserRef) -> Result<(), UserError> {
        policy::authorize(actor, Access::Account)?;
        let target = self.resolve(user).await?;
        let share = share_with(&*self.shares, actor, &target).await?;
        policy::ensure_can_delete(actor, &target, share)?;
        if target.is_managed() {
            return self.purge_unchecked(actor, &target).await;
        }
        if target.state == UserState::Deleted {
            return Ok(());
        }
        let now = self.clock.now();
        let changes = UserChanges {
            state: Some(UserState::Deleted),
            deleted_at: Some(Some(now)),
            tokens_valid_after: Some(now),
            revoke_sessions: RevokeSessions::All,
            ..UserChanges::default()
        };
        self.apply(Some(actor), &target, AuditAction::UserDeleted, changes)
            .await?;
        Ok(())
    }

    pub(crate) async fn purge_unchecked(
        &self,
        actor: &Actor,
        target: &User,
    ) -> Result<(), UserError> {
        let mut details = BTreeMap::new();
        details.insert(
            "username".to_owned(),
            FieldChange {
                before: target.username.clone(),
                after: None,
            },
        );
        let event = audit::event(
            self.ids.new_id(),
            self.clock.now(),
            Some(actor),
            Some(target.id),
            AuditAction::UserPurged,
            details,
        );
        Ok(self.users.purge(target.id, Some(event)).await?)
    }

    /// Undoes a soft delete.
    pub async fn restore(&self, actor: &Actor, user: &UserRef) -> Result<User, UserError> {
        policy::authorize(actor, Access::Write)?;
        let target = self.resolve(user).await?;
        policy::ensure_can_administer(actor, &target)?;
        if target.state != UserState::Deleted {
            return Err(UserError::Failure(Failure::Conflict(
                Conflict::InvalidState,
            )));
        }
        // Past its retention the user is housekeeping's to purge, whether or not it has run.
        let now = self.clock.now();
        let cutoff = self.config.retention.deleted_users_cutoff(now);
        if matches!((target.deleted_at, cutoff), (Some(at), Some(cutoff)) if at < cutoff) {
            return Err(UserError::Failure(Failure::Conflict(
                Conflict::RetentionExpired,
            )));
        }
        let changes = UserChanges {
            state: Some(UserState::Active),
            deleted_at: Some(None),
            ..UserChanges::default()
        };
        self.apply(Some(actor), &target, AuditAction::UserRestored, changes)
            .await
    }

    /// Reversible lock-out: the user cannot authenticate and every session ends at once.
    pub async fn deactivate(&self, actor: &Actor, user: &UserRef) -> Result<User, UserError> {
        self.set_activation(actor, user, UserState::Deactivated)
            .await
    }

    pub async fn reactivate(&self, actor: &Actor, user: &UserRef) -> Result<User, UserError> {
        self.set_activation(actor, user, UserState::Active).await
    }

    async fn set_activation(
        &self,
        actor: &Actor,
        user: &UserRef,
        state: UserState,
    ) -> Result<User, UserError> {
        policy::authorize(actor, Access::Write)?;
        let target = self.resolve(user).await?;
        policy::ensure_can_administer(actor, &target)?;
        if target.state == UserState::Deleted {
            return Err(UserError::Failure(Failure::Conflict(
                Conflict::InvalidState,
            )));
        }
        if target.state == state {
            return Ok(target);
        }
        let now = self.clock.now();
        let locking = state == UserState::Deactivated;
        let changes = UserChanges {
            state: Some(state),
            revoke_sessions: if locking {
                RevokeSessions::All
            } else {
                RevokeSessions::None
            },
            tokens_valid_after: locking.then_some(now),
            ..UserChanges::default()
        };
        let action = if locking {
            AuditAction::UserDeactivated
        } else {
            AuditAction::UserReactivated
        };
        self.apply(Some(actor), &target, action, changes).await
    }

    /// Hard delete: the user and everything it owns, including its managed users.
    pub async fn purge(&self, actor: &Actor, user: &UserRef) -> Result<(), UserError> {
        policy::authorize(actor, Access::Write)?;
        let target = self.resolve(user).await?;
        policy::ensure_can_purge(actor, &target)?;
        self.purge_unchecked(actor, &target).await
    }

    /// `POST /users/{user}/password`: an administrator issues a new temporary password,
    /// returned once. Every session of the user ends; they must change it at next login.
    pub async fn reset_password(&self, actor: &Actor, user: &UserRef) -> Result<String, UserError> {
        policy::authorize(actor, Access::Write)?;
        let target = self.resolve(user).await?;
        policy::ensure_can_administer(actor, &target)?;
        policy::ensure_may_touch_credentials(actor, &target)?;
        if target.is_managed() {
            return Err(
                ValidationError::new("user", "managed users cannot have credentials").into(),
            );
        }
        let temp = self.secrets.new_password();
        let hash = self.hash(&Password::generated(temp.clone())).await?;
        let now = self.clock.now();
        let changes = UserChanges {
            password_hash: Some(hash),
            must_change_password: Some(true),
            tokens_valid_after: Some(now),
            revoke_sessions: RevokeSessions::All,
            ..UserChanges::default()
        };
        self.apply(Some(actor), &target, AuditAction::PasswordReset, changes)
            .await?;
        Ok(temp)
    }

    /// `POST /me/password`: the caller changes their own password with the current one. Their
    /// other sessions end; the one in use stays. Allowed while a change is pending.
    pub async fn change_own_password(
        &self,
        actor: &Actor,
        current_password: Option<String>,
        new_password: &str,
    ) -> Result<User, UserError> {
        policy::authorize_pending(actor, Access::Account)?;
        let target = self.users.get(actor.id()).await?;
        let new_password =
            Password::parse("new_password", new_password, &self.config.password_policy)?;
        self.check_current_password(actor, &target, current_password)
            .await?;
        let changes = UserChanges {
            password_hash: Some(self.hash(&new_password).await?),
            must_change_password: Some(false),
            revoke_sessions: match actor.session_id {
                Some(current) => RevokeSessions::AllExcept(current),
                None => RevokeSessions::All,
            },
            ..UserChanges::default()
        };
        self.apply(Some(actor), &target, AuditAction::PasswordChanged, changes)
            .await
    }

    /// `POST /users/{user}/logout`: every token and session of the user stops working at once,
    /// on every server process.
    pub async fn force_logout(&self, actor: &Actor, user: &UserRef) -> Result<(), UserError> {
        policy::authorize(actor, Access::Write)?;
        let target = self.resolve(user).await?;
        policy::ensure_can_administer(actor, &target)?;
        policy::ensure_may_touch_credentials(actor, &target)?;
        let now = self.clock.now();
        let changes = UserChanges {
            tokens_valid_after: Some(now),
            revoke_sessions: RevokeSessions::All,
            ..UserChanges::default()
        };
        self.apply(Some(actor), &target, AuditAction::ForcedLogout, changes)
            .await?;
        Ok(())
    }
}
