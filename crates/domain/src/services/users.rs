//! Users and their lifecycle: create, read, list, update, soft delete, restore, deactivate,
//! purge.

use std::sync::Arc;

use crate::actor::Actor;
use crate::app::Deps;
use crate::error::{AuthError, Conflict, UserError, ValidationError};
use crate::model::{
    DefaultWallet, NewUser, Permission, Permissions, RevokeSessions, User, UserChanges,
    UserListQuery, UserState, DEFAULT_WALLET_NAME,
};
use crate::policy;
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
#[derive(Debug, Clone, Copy)]
pub struct ListUsersInput {
    pub paging: Paging,
    pub include_deleted: bool,
    pub include_managed: bool,
}

/// A page of users and how it relates to the whole.
#[derive(Debug, Clone)]
pub struct UsersPage {
    pub users: Vec<User>,
    pub total: u64,
    pub paging: Paging,
}

impl UsersPage {
    pub fn has_more(&self) -> bool {
        self.paging.offset + (self.users.len() as u64) < self.total
    }
}

#[derive(Clone)]
pub struct UserService {
    deps: Arc<Deps>,
}

fn split_full_name(name: &str) -> (String, Option<String>) {
    match name.trim().split_once(' ') {
        Some((first, last)) if !last.trim().is_empty() => {
            (first.to_owned(), Some(last.trim().to_owned()))
        }
        _ => (name.trim().to_owned(), None),
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
    pub(crate) fn new(deps: Arc<Deps>) -> Self {
        Self { deps }
    }

    /// Refuses everything but the few calls allowed while a password change is pending.
    fn gate(actor: &Actor) -> Result<(), UserError> {
        if actor.user.must_change_password {
            return Err(AuthError::PasswordChangeRequired.into());
        }
        Ok(())
    }

    /// The wallet every new user gets, in the configured default currency.
    fn default_wallet(&self) -> DefaultWallet {
        DefaultWallet {
            id: self.deps.ports.ids.new_id(),
            name: DEFAULT_WALLET_NAME.to_owned(),
            currency: self
                .deps
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
        Self::gate(actor)?;
        policy::ensure_admin(actor)
    }

    /// Like [`Self::require_admin`], for superuser-only operations.
    pub fn require_superuser(&self, actor: &Actor) -> Result<(), UserError> {
        Self::gate(actor)?;
        policy::ensure_superuser(actor)
    }

    async fn resolve(&self, user: &UserRef) -> Result<User, UserError> {
        let found = match user {
            UserRef::Id(id) => self.deps.ports.users.get(*id).await,
            UserRef::Username(name) => self.deps.ports.users.find_by_username(name).await,
        };
        Ok(found?)
    }

    /// Looks a user up and checks the actor may see it.
    async fn visible(&self, actor: &Actor, user: &UserRef) -> Result<User, UserError> {
        let target = self.resolve(user).await?;
        policy::ensure_visible(actor, &target)?;
        Ok(target)
    }

    async fn hash(&self, password: &Password) -> Result<String, UserError> {
        self.deps
            .ports
            .hasher
            .hash(password.expose())
            .await
            .map_err(UserError::Internal)
    }

    /// `POST /users`: with a username or email, a login user (administrators); with only names,
    /// a managed user whose manager is the caller.
    pub async fn create(
        &self,
        actor: &Actor,
        input: CreateUserInput,
    ) -> Result<CreatedUser, UserError> {
        Self::gate(actor)?;
        let (mut first_name, mut last_name) = (input.first_name, input.last_name);
        if let Some(name) = input.name {
            let (first, last) = split_full_name(&name);
            first_name = first_name.or(Some(first));
            last_name = last_name.or(last);
        }
        let first_name = optional_name("first_name", first_name)?;
        let last_name = optional_name("last_name", last_name)?;

        if input.username.is_none() && input.email.is_none() {
            return self
                .create_managed(actor, input.password, first_name, last_name)
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
        let mut permissions = Permissions::NONE;
        if input.is_admin == Some(true) {
            permissions = permissions.with(Permission::Admin);
        }
        if input.is_superuser == Some(true) {
            permissions = permissions.with(Permission::Superuser);
        }
        policy::ensure_can_set_permissions(actor, Permissions::NONE, permissions)?;

        let policy_rules = &self.deps.config.password_policy;
        let (password, temp_password) = match input.password.as_deref() {
            Some(raw) => (Password::parse("password", raw, policy_rules)?, None),
            None => {
                let generated = self.deps.ports.secrets.new_password();
                (Password::generated(generated.clone()), Some(generated))
            }
        };
        let password_hash = self.hash(&password).await?;
        let user = self
            .deps
            .ports
            .users
            .create(NewUser {
                id: self.deps.ports.ids.new_id(),
                username: Some(username.into_inner()),
                email: email.map(Email::into_inner),
                first_name,
                last_name,
                password_hash: Some(password_hash),
                permissions,
                tier_id: None,
                manager_id: None,
                must_change_password: temp_password.is_some(),
                created_by: Some(actor.id()),
                now: self.deps.ports.clock.now(),
                default_wallet: self.default_wallet(),
            })
            .await?;
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
    ) -> Result<CreatedUser, UserError> {
        policy::ensure_can_create_managed_user(actor)?;
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
        let user = self
            .deps
            .ports
            .users
            .create(NewUser {
                id: self.deps.ports.ids.new_id(),
                username: None,
                email: None,
                first_name,
                last_name,
                password_hash: None,
                permissions: Permissions::NONE,
                tier_id: None,
                manager_id: Some(actor.id()),
                must_change_password: false,
                created_by: Some(actor.id()),
                now: self.deps.ports.clock.now(),
                default_wallet: self.default_wallet(),
            })
            .await?;
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
                Password::parse("password", raw, &self.deps.config.password_policy)?,
                None,
            ),
            None => {
                let generated = self.deps.ports.secrets.new_password();
                (Password::generated(generated.clone()), Some(generated))
            }
        };
        let password_hash = self.hash(&password).await?;
        let user = self
            .deps
            .ports
            .users
            .create(NewUser {
                id: self.deps.ports.ids.new_id(),
                username: Some(username.into_inner()),
                email: email.map(Email::into_inner),
                first_name: None,
                last_name: None,
                password_hash: Some(password_hash),
                permissions: Permissions::NONE.with(Permission::Superuser),
                tier_id: None,
                manager_id: None,
                must_change_password: false,
                created_by: None,
                now: self.deps.ports.clock.now(),
                default_wallet: self.default_wallet(),
            })
            .await?;
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
        if self.deps.ports.users.any_exists().await? {
            return Ok(None);
        }
        match self.create_superuser(username, None, password).await {
            Ok(created) => Ok(Some(created)),
            Err(UserError::Conflict(Conflict::DuplicateUsername)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// The caller's own record. Allowed even while a password change is pending.
    pub async fn me(&self, actor: &Actor) -> Result<User, UserError> {
        Ok(self.deps.ports.users.get(actor.id()).await?)
    }

    pub async fn get(&self, actor: &Actor, user: &UserRef) -> Result<User, UserError> {
        Self::gate(actor)?;
        self.visible(actor, user).await
    }

    /// Administrators page through the whole directory; everyone else sees themselves and the
    /// users they manage.
    pub async fn list(&self, actor: &Actor, input: ListUsersInput) -> Result<UsersPage, UserError> {
        Self::gate(actor)?;
        let admin = actor.is_admin();
        let query = UserListQuery {
            visible_to: (!admin).then(|| actor.id()),
            include_managed: input.include_managed,
            include_deleted: admin && input.include_deleted,
            offset: input.paging.offset,
            limit: input.paging.limit,
        };
        let page = self.deps.ports.users.list(query).await?;
        Ok(UsersPage {
            users: page.users,
            total: page.total,
            paging: input.paging,
        })
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
        if !only_own_password {
            Self::gate(actor)?;
        }
        policy::ensure_can_update(actor, &target)?;
        let now = self.deps.ports.clock.now();
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
            policy::ensure_can_set_permissions(actor, target.permissions, permissions)?;
            changes.permissions = Some(permissions);
        }

        if let Some(raw) = input.password {
            policy::ensure_can_set_password(actor, &target)?;
            let new_password =
                Password::parse("password", &raw, &self.deps.config.password_policy)?;
            let by_admin = actor.id() != target.id;
            if !by_admin {
                self.check_current_password(&target, input.current_password)
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
        Ok(self
            .deps
            .ports
            .users
            .update(target.id, changes, now)
            .await?)
    }

    async fn check_current_password(
        &self,
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
        let hash = self.deps.ports.users.password_hash(target.id).await?;
        let matches = self
            .deps
            .ports
            .hasher
            .verify(current.expose(), hash.as_deref())
            .await
            .map_err(UserError::Internal)?;
        if matches {
            Ok(())
        } else {
            Err(ValidationError::new("current_password", "the current password is wrong").into())
        }
    }

    /// Login users are soft-deleted (sessions end at once); managed users are purged with
    /// everything they own. Deleting an already-deleted user changes nothing.
    pub async fn delete(&self, actor: &Actor, user: &UserRef) -> Result<(), UserError> {
        Self::gate(actor)?;
        let target = self.resolve(user).await?;
        policy::ensure_can_delete(actor, &target)?;
        if target.is_managed() {
            return Ok(self.deps.ports.users.purge(target.id).await?);
        }
        if target.state == UserState::Deleted {
            return Ok(());
        }
        let now = self.deps.ports.clock.now();
        let changes = UserChanges {
            state: Some(UserState::Deleted),
            deleted_at: Some(Some(now)),
            tokens_valid_after: Some(now),
            revoke_sessions: RevokeSessions::All,
            ..UserChanges::default()
        };
        self.deps
            .ports
            .users
            .update(target.id, changes, now)
            .await?;
        Ok(())
    }

    /// Undoes a soft delete.
    pub async fn restore(&self, actor: &Actor, user: &UserRef) -> Result<User, UserError> {
        Self::gate(actor)?;
        let target = self.resolve(user).await?;
        policy::ensure_can_administer(actor, &target)?;
        if target.state != UserState::Deleted {
            return Err(UserError::Conflict(Conflict::InvalidState));
        }
        let changes = UserChanges {
            state: Some(UserState::Active),
            deleted_at: Some(None),
            ..UserChanges::default()
        };
        let now = self.deps.ports.clock.now();
        Ok(self
            .deps
            .ports
            .users
            .update(target.id, changes, now)
            .await?)
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
        Self::gate(actor)?;
        let target = self.resolve(user).await?;
        policy::ensure_can_administer(actor, &target)?;
        if target.state == UserState::Deleted {
            return Err(UserError::Conflict(Conflict::InvalidState));
        }
        if target.state == state {
            return Ok(target);
        }
        let now = self.deps.ports.clock.now();
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
        Ok(self
            .deps
            .ports
            .users
            .update(target.id, changes, now)
            .await?)
    }

    /// Hard delete: the user and everything it owns, including its managed users.
    pub async fn purge(&self, actor: &Actor, user: &UserRef) -> Result<(), UserError> {
        Self::gate(actor)?;
        let target = self.resolve(user).await?;
        policy::ensure_can_purge(actor, &target)?;
        Ok(self.deps.ports.users.purge(target.id).await?)
    }
}
