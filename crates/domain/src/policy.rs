//! Who may do what to whom (PRODUCT.md §3). Pure functions of the actor and the target; the
//! services call them and HTTP never decides.
//!
//! A caller who may not *see* a user gets `NotFound`, so existence does not leak; `Forbidden` is
//! only for users the caller can already see.

use crate::actor::{Access, Actor};
pub use crate::error::Denied;
use crate::model::{ApiKeyScope, Permission, Permissions, ScopeSet, User, UserState};

/// A user with a pending (administrator-issued) password may only read themselves, change the
/// password and log out.
pub const PASSWORD_CHANGE_REQUIRED: Denied = Denied::Forbidden {
    code: "password_change_required",
    message: "you must change your password first",
};

/// What the credential itself does not allow, whatever the caller's roles.
pub fn credential_denied(access: Access) -> Denied {
    let message = match access {
        Access::Read => "this credential may not read this (it lacks a reading scope)",
        Access::Write => "this credential is read-only",
        Access::Account => {
            "only the account holder's own sign-in may change credentials, keys, shares or the \
             account itself (not an API key scope, a purpose signature, an external token or a \
             delegated token)"
        }
        Access::Meter => "this credential may not record usage",
        Access::Deposit => "this credential may not report deposits",
    };
    Denied::Forbidden {
        code: "credential_not_allowed",
        message,
    }
}

/// The first check of every operation: the credential allows `access`, and no password change
/// is pending.
pub fn authorize(actor: &Actor, access: Access) -> Result<(), Denied> {
    authorize_pending(actor, access)?;
    if actor.user.must_change_password {
        return Err(PASSWORD_CHANGE_REQUIRED);
    }
    Ok(())
}

/// [`authorize`] for the operations allowed while a password change is pending: reading oneself,
/// changing one's own password, logging out.
pub fn authorize_pending(actor: &Actor, access: Access) -> Result<(), Denied> {
    if actor.allows(access) {
        Ok(())
    } else {
        Err(credential_denied(access))
    }
}

/// Whether the actor may know this user exists (without looking at shares).
pub fn can_view(actor: &Actor, target: &User) -> bool {
    if target.state == UserState::Deleted {
        return actor.is_admin();
    }
    actor.id() == target.id || actor.is_admin() || manages(actor, target)
}

/// Whether the actor may know this user exists, given the scopes of the target's share with
/// the actor (`None`: no share). A grantee sees the sharer whatever the scopes (the listing
/// shows every sharer too); what the grantee may *do* is bounded by the scopes, through a
/// delegated token. A delegated token does not carry its principal's shares: it sees what its
/// subject sees.
pub fn can_view_shared(actor: &Actor, target: &User, share: Option<ScopeSet>) -> bool {
    can_view(actor, target)
        || (target.state != UserState::Deleted && !actor.is_delegated() && share.is_some())
}

/// `NotFound` unless the actor may see the target, shares considered.
pub fn ensure_visible_shared(
    actor: &Actor,
    target: &User,
    share: Option<ScopeSet>,
) -> Result<(), Denied> {
    if can_view_shared(actor, target, share) {
        Ok(())
    } else {
        Err(Denied::NotFound)
    }
}

/// Delegated tokens change nothing without `data:write` (or `admin`).
fn ensure_may_write(actor: &Actor) -> Result<(), Denied> {
    if actor.may_write() {
        Ok(())
    } else {
        Err(Denied::forbidden(
            "this delegated token may only read (it lacks the data:write scope)",
        ))
    }
}

/// What a delegated token may never do: credentials, permissions, deleting accounts,
/// minting further tokens, creating managed users, listing the directory.
pub fn ensure_not_delegated(actor: &Actor, what: &'static str) -> Result<(), Denied> {
    if actor.is_delegated() {
        Err(Denied::forbidden(what))
    } else {
        Ok(())
    }
}

/// The actor manages the target (a managed user created by the actor).
pub fn manages(actor: &Actor, target: &User) -> bool {
    target.manager_id == Some(actor.id())
}

/// `NotFound` unless the actor may see the target.
pub fn ensure_visible(actor: &Actor, target: &User) -> Result<(), Denied> {
    if can_view(actor, target) {
        Ok(())
    } else {
        Err(Denied::NotFound)
    }
}

/// Only superusers touch other superusers.
fn ensure_may_touch(actor: &Actor, target: &User) -> Result<(), Denied> {
    if target.permissions.is_superuser() && actor.id() != target.id && !actor.is_superuser() {
        return Err(Denied::forbidden(
            "only a superuser may change another superuser",
        ));
    }
    Ok(())
}

/// Self, manager and administrators update a user; a grantee who can see the sharer may not
/// (403). A delegated token needs `data:write`.
pub fn ensure_can_update(
    actor: &Actor,
    target: &User,
    share: Option<ScopeSet>,
) -> Result<(), Denied> {
    ensure_visible_shared(actor, target, share)?;
    ensure_may_write(actor)?;
    if actor.id() == target.id || manages(actor, target) || actor.has(Permission::UpdateUser) {
        return ensure_may_touch(actor, target);
    }
    Err(Denied::forbidden("you may not update this user"))
}

/// Self, manager and `delete_user` holders; never through a delegated token.
pub fn ensure_can_delete(
    actor: &Actor,
    target: &User,
    share: Option<ScopeSet>,
) -> Result<(), Denied> {
    ensure_visible_shared(actor, target, share)?;
    ensure_not_delegated(actor, "a delegated token cannot delete users")?;
    if actor.id() == target.id || manages(actor, target) || actor.has(Permission::DeleteUser) {
        return ensure_may_touch(actor, target);
    }
    Err(Denied::forbidden("you may not delete this user"))
}

/// Restore, deactivate, reactivate: administrators only.
pub fn ensure_can_administer(actor: &Actor, target: &User) -> Result<(), Denied> {
    ensure_visible(actor, target)?;
    if !actor.has(Permission::UpdateUser) {
        return Err(Denied::forbidden("administrator permission required"));
    }
    ensure_may_touch(actor, target)
}

/// Hard delete: superusers only.
pub fn ensure_can_purge(actor: &Actor, target: &User) -> Result<(), Denied> {
    ensure_visible(actor, target)?;
    if !actor.is_superuser() {
        return Err(Denied::forbidden("superuser permission required"));
    }
    Ok(())
}

/// Creating a user with a login identity needs `create_user` (admins have it).
pub fn ensure_can_create_login_user(actor: &Actor) -> Result<(), Denied> {
    if actor.has(Permission::CreateUser) {
        Ok(())
    } else {
        Err(Denied::forbidden(
            "only administrators may create users with a login",
        ))
    }
}

/// Managed users may not have managed users of their own (no chains).
pub fn ensure_can_create_managed_user(actor: &Actor) -> Result<(), Denied> {
    ensure_not_delegated(actor, "a delegated token cannot create managed users")?;
    if actor.user.is_managed() {
        return Err(Denied::forbidden(
            "managed users cannot create managed users",
        ));
    }
    Ok(())
}

/// Whether `actor` may grant or revoke every bit that differs between `before` and `after`, on
/// an account other than its own: `update_user` to change permissions at all; `admin` and
/// `superuser` (and any change to an account holding them) by a superuser; `billing_admin` by an
/// administrator; any other bit only by an actor that holds it itself.
pub fn ensure_can_grant(
    actor: &Actor,
    before: Permissions,
    after: Permissions,
) -> Result<(), Denied> {
    if before == after {
        return Ok(());
    }
    ensure_not_delegated(actor, "a delegated token cannot change permissions")?;
    let privileged = |p: Permissions| p.granted(Permission::Admin) || p.is_superuser();
    if (privileged(before) || privileged(after)) && !actor.is_superuser() {
        return Err(Denied::forbidden(
            "only a superuser may grant or revoke admin or superuser",
        ));
    }
    if !actor.has(Permission::UpdateUser) {
        return Err(Denied::forbidden(
            "administrator permission required to change permissions",
        ));
    }
    for bit in Permission::ALL {
        if before.granted(bit) == after.granted(bit) {
            continue;
        }
        let allowed = match bit {
            Permission::Admin | Permission::Superuser => actor.is_superuser(),
            Permission::BillingAdmin => actor.is_admin(),
            other => actor.has(other),
        };
        if !allowed {
            return Err(Denied::forbidden(match bit {
                Permission::BillingAdmin => {
                    "only an administrator may grant or revoke billing_admin"
                }
                _ => "you may only grant or revoke permissions you hold yourself",
            }));
        }
    }
    Ok(())
}

/// [`ensure_can_grant`] on an existing user: nobody grants themselves anything. Giving up one's
/// own permissions (a superuser stepping down) is allowed, since it raises nothing.
pub fn ensure_can_set_permissions(
    actor: &Actor,
    target: &User,
    before: Permissions,
    after: Permissions,
) -> Result<(), Denied> {
    if before == after {
        return Ok(());
    }
    let grants_something = after.bits() & !before.bits() != 0;
    if actor.principal_id() == target.id && grants_something {
        return Err(Denied::forbidden(
            "nobody may grant permissions to themselves",
        ));
    }
    ensure_can_grant(actor, before, after)
}

/// Superusers alone change another administrator's (or superuser's) credentials and login
/// identity: password, username, email, sessions. Everyone else's are open to administrators.
pub fn ensure_may_touch_credentials(actor: &Actor, target: &User) -> Result<(), Denied> {
    if target.permissions.is_admin() && actor.id() != target.id && !actor.is_superuser() {
        return Err(Denied::forbidden(
            "only a superuser may change another administrator's credentials",
        ));
    }
    Ok(())
}

/// Setting another user's password outright is an administrator's act; for oneself it needs the
/// current password (checked by the service).
pub fn ensure_can_set_password(actor: &Actor, target: &User) -> Result<(), Denied> {
    ensure_not_delegated(actor, "a delegated token cannot change credentials")?;
    if actor.id() == target.id || actor.has(Permission::UpdateUser) {
        Ok(())
    } else {
        Err(Denied::forbidden(
            "only administrators may set another user's password",
        ))
    }
}

/// Administrator-only surfaces (the LNbits admin API): `admin` or `superuser`. Refused with
/// `Forbidden`, since such a surface announces itself as admin-only.
pub fn ensure_admin(actor: &Actor) -> Result<(), Denied> {
    if actor.is_admin() {
        Ok(())
    } else {
        Err(Denied::forbidden(
            "User not authorized. No admin privileges.",
        ))
    }
}

/// The event feed carries every user's changes: administrators only.
pub fn ensure_can_read_events(actor: &Actor) -> Result<(), Denied> {
    if actor.is_admin() {
        Ok(())
    } else {
        Err(Denied::forbidden(
            "only administrators may read the event feed",
        ))
    }
}

/// A webhook endpoint receives every user's changes: administrators only.
pub fn ensure_can_manage_webhooks(actor: &Actor) -> Result<(), Denied> {
    if actor.is_admin() {
        Ok(())
    } else {
        Err(Denied::forbidden(
            "only administrators may manage webhook endpoints",
        ))
    }
}

/// Superuser-only operations on an admin surface.
pub fn ensure_superuser(actor: &Actor) -> Result<(), Denied> {
    if actor.is_superuser() {
        Ok(())
    } else {
        Err(Denied::forbidden(
            "User not authorized. No super user privileges.",
        ))
    }
}

/// Only a superuser gives a user a tier, when creating the user too (`PATCH /users/{u}/tier`
/// is superuser-only for the same reason).
pub fn ensure_can_assign_tier(actor: &Actor) -> Result<(), Denied> {
    if actor.is_superuser() {
        Ok(())
    } else {
        Err(Denied::forbidden("only a superuser may assign a tier"))
    }
}

// ---------------------------------------------------------------------------------------------
// Wallets. The owner's manager acts as the owner (a manager acts for their managed users). A wallet the caller may not read is `NotFound`.

/// The actor is the wallet's owner, or the owner's manager.
pub fn acts_as_owner(actor: &Actor, owner: &User) -> bool {
    actor.id() == owner.id || manages(actor, owner)
}

/// Like [`acts_as_owner`], for changes: a delegated token also needs `data:write`.
pub fn writes_as_owner(actor: &Actor, owner: &User) -> bool {
    acts_as_owner(actor, owner) && actor.may_write()
}

/// Reading a wallet and its ledger: the owner (or their manager), administrators and billing
/// administrators.
pub fn can_view_wallet(actor: &Actor, owner: &User) -> bool {
    acts_as_owner(actor, owner) || actor.is_admin() || actor.has(Permission::BillingAdmin)
}

pub fn ensure_can_view_wallet(actor: &Actor, owner: &User) -> Result<(), Denied> {
    if can_view_wallet(actor, owner) {
        Ok(())
    } else {
        Err(Denied::NotFound)
    }
}

/// Soft-deleting and restoring a wallet: the owner (or their manager) and administrators.
pub fn ensure_can_manage_wallet(actor: &Actor, owner: &User) -> Result<(), Denied> {
    ensure_can_view_wallet(actor, owner)?;
    if writes_as_owner(actor, owner) || actor.is_admin() {
        Ok(())
    } else {
        Err(Denied::forbidden(
            "only the owner or an administrator may do this",
        ))
    }
}

/// Listing a user's wallets: whoever may see the user (self, manager, administrators), and
/// billing administrators.
pub fn ensure_can_list_wallets_of(actor: &Actor, user: &User) -> Result<(), Denied> {
    if can_view(actor, user) || actor.has(Permission::BillingAdmin) {
        Ok(())
    } else {
        Err(Denied::NotFound)
    }
}

/// Opening a wallet for a user: the user (or their manager) and administrators.
pub fn ensure_can_create_wallet_for(actor: &Actor, user: &User) -> Result<(), Denied> {
    ensure_can_list_wallets_of(actor, user)?;
    if writes_as_owner(actor, user) || actor.is_admin() {
        Ok(())
    } else {
        Err(Denied::forbidden(
            "only the user or an administrator may open a wallet for this user",
        ))
    }
}

/// Acts of billing authority (adjustments, quotas, discounts, invoicing) are never taken on
/// one's own account, and on a superuser's only by another superuser.
pub fn ensure_billing_target(actor: &Actor, target: &User) -> Result<(), Denied> {
    if actor.principal_id() == target.id {
        return Err(Denied::forbidden(
            "billing administrators may not act on their own account",
        ));
    }
    if target.permissions.is_superuser() && !actor.is_superuser() {
        return Err(Denied::forbidden(
            "only a superuser may change a superuser's billing",
        ));
    }
    Ok(())
}

/// Crediting or debiting a wallet by decree: `billing_admin` (implied by `admin`), never on
/// one's own wallets.
pub fn ensure_can_adjust(actor: &Actor, owner: &User) -> Result<(), Denied> {
    if actor.has(Permission::BillingAdmin) {
        return ensure_billing_target(actor, owner);
    }
    ensure_can_view_wallet(actor, owner)?;
    Err(Denied::forbidden(
        "the billing_admin permission is required to adjust balances",
    ))
}

/// Moving money out of a wallet: its owner (or their manager), or a billing administrator —
/// who, acting on another user's wallet, may not move it into their own.
pub fn ensure_can_transfer(actor: &Actor, owner: &User, recipient: &User) -> Result<(), Denied> {
    if writes_as_owner(actor, owner) {
        return Ok(());
    }
    if actor.has(Permission::BillingAdmin) {
        ensure_billing_target(actor, owner)?;
        if acts_as_owner(actor, recipient) {
            return Err(Denied::forbidden(
                "billing administrators may not move another user's money to themselves",
            ));
        }
        return Ok(());
    }
    ensure_can_view_wallet(actor, owner)?;
    Err(Denied::forbidden(
        "only the owner or a billing administrator may move money out of this wallet",
    ))
}

// ---------------------------------------------------------------------------------------------
// Metering. Billing administrators (and administrators, whose permission implies it) set quotas,
// discounts and invoicing and record consumption; a user (or their manager) reads their own.

/// The message of every billing-administrator refusal (Chutes' text, on every surface).
pub const BILLING_ADMIN_REQUIRED: &str =
    "This action can only be performed by billing admin accounts.";

/// Billing administration: `billing_admin` (implied by `admin` and `superuser`), never through a
/// delegated token.
pub fn ensure_billing_admin(actor: &Actor) -> Result<(), Denied> {
    if actor.has(Permission::BillingAdmin) {
        Ok(())
    } else {
        Err(Denied::forbidden(BILLING_ADMIN_REQUIRED))
    }
}

/// Whether the actor may record consumption (`POST /api/v1/usage`): billing administrators
/// (admins and superusers included) with a full credential, and API keys with the `metering`
/// scope whose owner is one. The scope grants nothing else: a metering key holds none of its
/// owner's permissions anywhere but here.
pub fn may_meter(actor: &Actor) -> bool {
    actor.has(Permission::BillingAdmin)
        || (!actor.is_delegated()
            && actor.key_has_scope(ApiKeyScope::Metering)
            && actor.user.permissions.has(Permission::BillingAdmin))
}

pub fn ensure_may_meter(actor: &Actor) -> Result<(), Denied> {
    if may_meter(actor) {
        Ok(())
    } else {
        Err(Denied::forbidden(BILLING_ADMIN_REQUIRED))
    }
}

/// Whether the actor may report deposits (`POST /api/v1/deposits`): billing administrators
/// (admins and superusers included) with a full credential, and API keys with the `deposits`
/// scope whose owner is one. The scope grants nothing else.
pub fn may_report_deposits(actor: &Actor) -> bool {
    actor.has(Permission::BillingAdmin)
        || (!actor.is_delegated()
            && actor.key_has_scope(ApiKeyScope::Deposits)
            && actor.user.permissions.has(Permission::BillingAdmin))
}

pub fn ensure_may_report_deposits(actor: &Actor) -> Result<(), Denied> {
    if may_report_deposits(actor) {
        Ok(())
    } else {
        Err(Denied::forbidden(BILLING_ADMIN_REQUIRED))
    }
}

/// Listing every deposit, unmatched ones included: billing administrators.
pub fn ensure_can_list_all_deposits(actor: &Actor) -> Result<(), Denied> {
    ensure_billing_admin(actor)
}

/// A user's deposits: whoever may see the user's wallets (the user, their manager,
/// administrators) and billing administrators. Anyone else: `UserNotFound`.
pub fn ensure_can_list_deposits_of(actor: &Actor, target: &User) -> Result<(), Denied> {
    if can_view_wallet(actor, target) || can_see_for_billing(actor, target) {
        Ok(())
    } else {
        Err(Denied::NotFound)
    }
}

/// Whether the actor may know a user exists for billing purposes: whoever may see the user,
/// and billing administrators (who see every user that is not soft-deleted).
fn can_see_for_billing(actor: &Actor, target: &User) -> bool {
    can_view(actor, target)
        || (actor.has(Permission::BillingAdmin) && target.state != UserState::Deleted)
}

/// Reading a user's quotas, discounts, quota usage and usage history: the user (or their
/// manager), administrators and billing administrators. Anyone else: `UserNotFound`.
pub fn ensure_can_read_metering(actor: &Actor, target: &User) -> Result<(), Denied> {
    if can_see_for_billing(actor, target) {
        Ok(())
    } else {
        Err(Denied::NotFound)
    }
}

/// Changing a user's quotas, discounts or invoicing: billing administrators, never on their
/// own account, and on a superuser's only as a superuser. A caller who cannot see the user gets
/// `UserNotFound`; one who can (the user themself) `Forbidden`.
pub fn ensure_can_bill(actor: &Actor, target: &User) -> Result<(), Denied> {
    if !can_see_for_billing(actor, target) {
        return Err(Denied::NotFound);
    }
    ensure_billing_admin(actor)?;
    ensure_billing_target(actor, target)
}

/// Consumption for a user: a metering caller, and a user that exists and is not
/// soft-deleted.
pub fn ensure_can_meter_for(actor: &Actor, target: &User) -> Result<(), Denied> {
    ensure_may_meter(actor)?;
    if target.state == UserState::Deleted {
        return Err(Denied::NotFound);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;
    use uuid::Uuid;

    fn user(perms: Permissions) -> User {
        let now = OffsetDateTime::UNIX_EPOCH;
        User {
            id: Uuid::now_v7(),
            username: Some("u".into()),
            email: None,
            first_name: None,
            last_name: None,
            logo_id: None,
            hotkey: None,
            coldkey: None,
            payment_address: None,
            permissions: perms,
            tier_id: None,
            invoicing: false,
            unlimited: false,
            squad_enabled: false,
            manager_id: None,
            state: UserState::Active,
            has_password: true,
            must_change_password: false,
            tokens_valid_after: now,
            created_by: None,
            created_at: now,
            updated_at: now,
            last_login_at: None,
            deleted_at: None,
        }
    }

    fn actor(u: &User) -> Actor {
        Actor::direct(u.clone(), None)
    }

    #[test]
    fn strangers_get_not_found_and_admins_see_everyone() {
        let alice = user(Permissions::NONE);
        let bob = user(Permissions::NONE);
        let admin = user(Permissions::NONE.with(Permission::Admin));
        assert!(matches!(
            ensure_can_update(&actor(&alice), &bob, None),
            Err(Denied::NotFound)
        ));
        assert!(ensure_can_update(&actor(&alice), &alice, None).is_ok());
        assert!(ensure_can_update(&actor(&admin), &bob, None).is_ok());
        assert!(matches!(
            ensure_can_purge(&actor(&admin), &bob),
            Err(Denied::Forbidden { .. })
        ));
    }

    #[test]
    fn managers_reach_their_managed_users() {
        let coach = user(Permissions::NONE);
        let mut athlete = user(Permissions::NONE);
        athlete.manager_id = Some(coach.id);
        assert!(ensure_can_delete(&actor(&coach), &athlete, None).is_ok());
        let stranger = user(Permissions::NONE);
        assert!(matches!(
            ensure_visible(&actor(&stranger), &athlete),
            Err(Denied::NotFound)
        ));
    }

    #[test]
    fn only_superusers_touch_superusers_and_privileged_bits() {
        let admin = user(Permissions::NONE.with(Permission::Admin));
        let root = user(Permissions::NONE.with(Permission::Superuser));
        assert!(ensure_can_update(&actor(&admin), &root, None).is_err());
        assert!(ensure_can_update(&actor(&root), &admin, None).is_ok());
        let plain = Permissions::NONE;
        let bob = user(plain);
        let promoted = plain.with(Permission::Admin);
        assert!(ensure_can_set_permissions(&actor(&admin), &bob, plain, promoted).is_err());
        assert!(ensure_can_set_permissions(&actor(&root), &bob, plain, promoted).is_ok());
        // Bits the actor holds (admin implies the user-administration bits) ...
        let deleter = plain.with(Permission::DeleteUser);
        assert!(ensure_can_set_permissions(&actor(&admin), &bob, plain, deleter).is_ok());
        // ... but not others: an admin without `developer` cannot hand it out.
        let dev = plain.with(Permission::Developer);
        assert!(ensure_can_set_permissions(&actor(&admin), &bob, plain, dev).is_err());
        assert!(ensure_can_set_permissions(&actor(&root), &bob, plain, dev).is_ok());
        let alice = user(plain);
        assert!(ensure_can_set_permissions(&actor(&alice), &bob, plain, dev).is_err());
    }

    #[test]
    fn nobody_changes_their_own_permissions_and_billing_admin_needs_an_admin() {
        let updater = user(Permissions::NONE.with(Permission::UpdateUser));
        let root = user(Permissions::NONE.with(Permission::Superuser));
        let admin = user(Permissions::NONE.with(Permission::Admin));
        let bob = user(Permissions::NONE);
        let billing = Permissions::NONE.with(Permission::BillingAdmin);
        // update_user alone: not on itself, not billing_admin for anyone.
        assert!(ensure_can_set_permissions(
            &actor(&updater),
            &updater,
            updater.permissions,
            updater.permissions.with(Permission::BillingAdmin)
        )
        .is_err());
        assert!(
            ensure_can_set_permissions(&actor(&updater), &bob, Permissions::NONE, billing).is_err()
        );
        assert!(
            ensure_can_set_permissions(&actor(&admin), &bob, Permissions::NONE, billing).is_ok()
        );
        // Not even a superuser grants itself anything; stepping down is allowed.
        assert!(ensure_can_set_permissions(
            &actor(&root),
            &root,
            root.permissions,
            root.permissions.with(Permission::Developer)
        )
        .is_err());
        assert!(ensure_can_set_permissions(
            &actor(&root),
            &root,
            root.permissions,
            Permissions::NONE
        )
        .is_ok());
    }

    #[test]
    fn billing_acts_spare_oneself_and_superusers() {
        let billing = user(Permissions::NONE.with(Permission::BillingAdmin));
        let root = user(Permissions::NONE.with(Permission::Superuser));
        let other_root = user(Permissions::NONE.with(Permission::Superuser));
        let bob = user(Permissions::NONE);
        assert!(ensure_can_adjust(&actor(&billing), &billing).is_err());
        assert!(ensure_can_adjust(&actor(&billing), &root).is_err());
        assert!(ensure_can_adjust(&actor(&billing), &bob).is_ok());
        assert!(ensure_can_adjust(&actor(&root), &root).is_err());
        assert!(ensure_can_adjust(&actor(&root), &other_root).is_ok());
        assert!(ensure_can_bill(&actor(&billing), &billing).is_err());
        assert!(ensure_can_bill(&actor(&billing), &root).is_err());
        assert!(ensure_can_bill(&actor(&billing), &bob).is_ok());
        // Moving someone's money to oneself by billing authority.
        assert!(ensure_can_transfer(&actor(&billing), &bob, &billing).is_err());
        assert!(ensure_can_transfer(&actor(&billing), &bob, &root).is_ok());
    }

    #[test]
    fn admins_credentials_are_a_superusers_business() {
        let admin = user(Permissions::NONE.with(Permission::Admin));
        let admin2 = user(Permissions::NONE.with(Permission::Admin));
        let root = user(Permissions::NONE.with(Permission::Superuser));
        let bob = user(Permissions::NONE);
        assert!(ensure_may_touch_credentials(&actor(&admin), &admin2).is_err());
        assert!(ensure_may_touch_credentials(&actor(&admin), &bob).is_ok());
        assert!(ensure_may_touch_credentials(&actor(&admin), &admin).is_ok());
        assert!(ensure_may_touch_credentials(&actor(&root), &admin2).is_ok());
    }

    #[test]
    fn credentials_allow_what_they_were_issued_for() {
        use crate::actor::{Access, Credential};
        use crate::model::{ApiKeyScope, ApiKeyScopes};
        let alice = user(Permissions::NONE.with(Permission::Admin));
        let key = |scopes: ApiKeyScopes| {
            Actor::limited(
                alice.clone(),
                Credential::ScopedKey {
                    key_id: Uuid::now_v7(),
                    scopes,
                },
            )
        };
        let read = key(ApiKeyScopes::default().with(ApiKeyScope::Read));
        let metering = key(ApiKeyScopes::default().with(ApiKeyScope::Metering));
        let purpose = Actor::limited(alice.clone(), Credential::PurposeSignature);
        let full = actor(&alice);
        for (who, read_ok, write_ok, account_ok, meter_ok) in [
            (&full, true, true, true, true),
            (&read, true, false, false, false),
            (&metering, false, false, false, true),
            (&purpose, true, false, false, false),
        ] {
            assert_eq!(authorize(who, Access::Read).is_ok(), read_ok);
            assert_eq!(authorize(who, Access::Write).is_ok(), write_ok);
            assert_eq!(authorize(who, Access::Account).is_ok(), account_ok);
            assert_eq!(authorize(who, Access::Meter).is_ok(), meter_ok);
        }
        let mut pending = alice.clone();
        pending.must_change_password = true;
        let pending = actor(&pending);
        assert_eq!(
            authorize(&pending, Access::Read),
            Err(PASSWORD_CHANGE_REQUIRED)
        );
        assert!(authorize_pending(&pending, Access::Account).is_ok());
    }

    #[test]
    fn only_deposit_keys_of_billing_admins_and_billing_admins_report_deposits() {
        use crate::actor::{Access, Credential};
        use crate::model::{ApiKeyScope, ApiKeyScopes};
        let key = |owner: &User, scope: ApiKeyScope| {
            Actor::limited(
                owner.clone(),
                Credential::ScopedKey {
                    key_id: Uuid::now_v7(),
                    scopes: ApiKeyScopes::default().with(scope),
                },
            )
        };
        let biller = user(Permissions::NONE.with(Permission::BillingAdmin));
        let plain = user(Permissions::NONE);
        let deposits = key(&biller, ApiKeyScope::Deposits);
        // The scope grants reporting and nothing else.
        assert!(authorize(&deposits, Access::Deposit).is_ok());
        assert!(ensure_may_report_deposits(&deposits).is_ok());
        for access in [Access::Read, Access::Write, Access::Account, Access::Meter] {
            assert!(authorize(&deposits, access).is_err(), "{access:?}");
        }
        assert!(ensure_can_list_all_deposits(&deposits).is_err());
        // Other credentials and owners do not report.
        let metering = key(&biller, ApiKeyScope::Metering);
        assert!(authorize(&metering, Access::Deposit).is_err());
        assert!(ensure_may_report_deposits(&key(&plain, ApiKeyScope::Deposits)).is_err());
        assert!(ensure_may_report_deposits(&actor(&plain)).is_err());
        assert!(ensure_may_report_deposits(&actor(&biller)).is_ok());
        // Listing: the user and billing administrators; strangers are told nothing.
        assert!(ensure_can_list_deposits_of(&actor(&plain), &plain).is_ok());
        assert!(ensure_can_list_deposits_of(&actor(&biller), &plain).is_ok());
        assert_eq!(
            ensure_can_list_deposits_of(&actor(&user(Permissions::NONE)), &plain),
            Err(Denied::NotFound)
        );
    }

    #[test]
    fn deleted_users_are_visible_to_admins_only() {
        let admin = user(Permissions::NONE.with(Permission::Admin));
        let mut gone = user(Permissions::NONE);
        gone.state = UserState::Deleted;
        assert!(can_view(&actor(&admin), &gone));
        assert!(!can_view(&actor(&gone.clone()), &gone));
    }

    #[test]
    fn wallets_are_reached_by_owner_manager_and_billing() {
        let owner = user(Permissions::NONE);
        let stranger = user(Permissions::NONE);
        let billing = user(Permissions::NONE.with(Permission::BillingAdmin));
        let admin = user(Permissions::NONE.with(Permission::Admin));
        let mut managed = user(Permissions::NONE);
        managed.manager_id = Some(owner.id);

        assert!(ensure_can_view_wallet(&actor(&owner), &owner).is_ok());
        assert!(ensure_can_view_wallet(&actor(&owner), &managed).is_ok());
        assert!(matches!(
            ensure_can_view_wallet(&actor(&stranger), &owner),
            Err(Denied::NotFound)
        ));
        assert!(ensure_can_view_wallet(&actor(&billing), &owner).is_ok());

        assert!(matches!(
            ensure_can_adjust(&actor(&owner), &owner),
            Err(Denied::Forbidden { .. })
        ));
        assert!(matches!(
            ensure_can_adjust(&actor(&stranger), &owner),
            Err(Denied::NotFound)
        ));
        assert!(ensure_can_adjust(&actor(&billing), &owner).is_ok());
        assert!(ensure_can_adjust(&actor(&admin), &owner).is_ok());

        assert!(ensure_can_transfer(&actor(&owner), &managed, &stranger).is_ok());
        assert!(matches!(
            ensure_can_transfer(&actor(&stranger), &owner, &stranger),
            Err(Denied::NotFound)
        ));
        assert!(matches!(
            ensure_can_manage_wallet(&actor(&billing), &owner),
            Err(Denied::Forbidden { .. })
        ));
        assert!(matches!(
            ensure_can_create_wallet_for(&actor(&stranger), &owner),
            Err(Denied::NotFound)
        ));
        assert!(ensure_can_create_wallet_for(&actor(&admin), &owner).is_ok());
    }

    #[test]
    fn grantees_see_the_sharer_but_may_not_change_it() {
        use crate::model::{Scope, ScopeSet};
        let sharer = user(Permissions::NONE);
        let grantee = user(Permissions::NONE);
        let read = ScopeSet::EMPTY.with(Scope::DataRead);
        assert!(!can_view_shared(&actor(&grantee), &sharer, None));
        assert!(can_view_shared(&actor(&grantee), &sharer, Some(read)));
        assert!(matches!(
            ensure_can_update(&actor(&grantee), &sharer, Some(ScopeSet::ALL)),
            Err(Denied::Forbidden { .. })
        ));
        assert!(matches!(
            ensure_can_delete(&actor(&grantee), &sharer, Some(read)),
            Err(Denied::Forbidden { .. })
        ));
        let mut gone = sharer.clone();
        gone.state = UserState::Deleted;
        assert!(!can_view_shared(&actor(&grantee), &gone, Some(read)));
    }

    #[test]
    fn delegated_actors_hold_no_permissions_and_write_only_with_write_scopes() {
        use crate::actor::Delegation;
        use crate::model::{Scope, ScopeSet};
        let admin_subject = user(Permissions::NONE.with(Permission::Superuser));
        let other = user(Permissions::NONE);
        let delegated = |scopes: ScopeSet| Actor {
            user: admin_subject.clone(),
            session_id: None,
            delegation: Some(Delegation {
                principal_id: Uuid::now_v7(),
                session_id: Uuid::now_v7(),
                scopes,
            }),
            credential: crate::actor::Credential::Full,
            client_ip: None,
        };
        let read = delegated(ScopeSet::EMPTY.with(Scope::DataRead));
        assert!(!read.is_admin() && !read.is_superuser());
        assert!(matches!(
            ensure_visible(&read, &other),
            Err(Denied::NotFound)
        ));
        assert!(ensure_visible(&read, &admin_subject).is_ok());
        assert!(matches!(
            ensure_can_update(&read, &admin_subject, None),
            Err(Denied::Forbidden { .. })
        ));
        let write = delegated(ScopeSet::EMPTY.with(Scope::DataWrite));
        assert!(ensure_can_update(&write, &admin_subject, None).is_ok());
        assert!(ensure_can_delete(&write, &admin_subject, None).is_err());
        assert!(ensure_can_create_managed_user(&write).is_err());
        assert!(ensure_can_set_password(&write, &admin_subject).is_err());
        assert!(writes_as_owner(&write, &admin_subject));
        assert!(!writes_as_owner(&read, &admin_subject));
    }

    #[test]
    fn metering_is_read_by_owners_and_billing_and_written_by_billing() {
        let owner = user(Permissions::NONE);
        let stranger = user(Permissions::NONE);
        let billing = user(Permissions::NONE.with(Permission::BillingAdmin));
        let admin = user(Permissions::NONE.with(Permission::Admin));
        assert!(ensure_can_read_metering(&actor(&owner), &owner).is_ok());
        assert!(ensure_can_read_metering(&actor(&billing), &owner).is_ok());
        assert!(ensure_can_read_metering(&actor(&admin), &owner).is_ok());
        assert!(matches!(
            ensure_can_read_metering(&actor(&stranger), &owner),
            Err(Denied::NotFound)
        ));
        assert!(matches!(
            ensure_can_bill(&actor(&owner), &owner),
            Err(Denied::Forbidden { .. })
        ));
        assert!(matches!(
            ensure_can_bill(&actor(&stranger), &owner),
            Err(Denied::NotFound)
        ));
        assert!(ensure_can_bill(&actor(&billing), &owner).is_ok());
        assert!(ensure_can_bill(&actor(&admin), &owner).is_ok());
        assert!(may_meter(&actor(&billing)) && !may_meter(&actor(&owner)));
        let mut gone = owner.clone();
        gone.state = UserState::Deleted;
        assert!(matches!(
            ensure_can_meter_for(&actor(&billing), &gone),
            Err(Denied::NotFound)
        ));
    }

    #[test]
    fn admin_surfaces_refuse_with_forbidden() {
        let plain = user(Permissions::NONE);
        let admin = user(Permissions::NONE.with(Permission::Admin));
        let root = user(Permissions::NONE.with(Permission::Superuser));
        assert!(matches!(
            ensure_admin(&actor(&plain)),
            Err(Denied::Forbidden { .. })
        ));
        assert!(ensure_admin(&actor(&admin)).is_ok());
        assert!(ensure_superuser(&actor(&admin)).is_err());
        assert!(ensure_superuser(&actor(&root)).is_ok() && ensure_admin(&actor(&root)).is_ok());
    }

    #[test]
    fn metering_keys_of_billing_admins_meter_and_nothing_else() {
        use crate::actor::Credential;
        use crate::model::ApiKeyScopes;
        let key = |u: &User, scopes: ApiKeyScopes| {
            Actor::limited(
                u.clone(),
                Credential::ScopedKey {
                    key_id: Uuid::now_v7(),
                    scopes,
                },
            )
        };
        let metering = ApiKeyScopes::default().with(ApiKeyScope::Metering);
        let read = ApiKeyScopes::default().with(ApiKeyScope::Read);
        let billing = user(Permissions::NONE.with(Permission::BillingAdmin));
        let admin = user(Permissions::NONE.with(Permission::Admin));
        let plain = user(Permissions::NONE);
        let target = user(Permissions::NONE);
        assert!(may_meter(&key(&billing, metering)));
        assert!(may_meter(&key(&admin, metering)));
        assert!(may_meter(&key(&billing, metering.with(ApiKeyScope::Read))));
        assert!(!may_meter(&key(&billing, read)));
        assert!(!may_meter(&key(&plain, metering)));
        assert!(!may_meter(&Actor::limited(
            billing.clone(),
            Credential::ExternalIssuer
        )));
        assert!(ensure_can_meter_for(&key(&billing, metering), &target).is_ok());
        // The scope is not billing administration.
        assert!(ensure_billing_admin(&key(&billing, metering)).is_err());
        assert!(matches!(
            ensure_can_bill(&key(&billing, metering), &target),
            Err(Denied::NotFound)
        ));
    }
}
