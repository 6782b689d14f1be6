//! Sharing (PRODUCT.md §1 "Sharing"): a user grants another scopes on their data, lists,
//! changes and revokes those grants, and sees who shared with them. Also delegated tokens
//! (§2): a manager acting as a managed user, or a grantee acting within a share's scopes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use time::Duration;
use uuid::Uuid;

use crate::actor::{Access, Actor};
use crate::app::{Ports, TesseraConfig};
use crate::error::{Failure, UserError, ValidationError};
use crate::model::{AccessClaims, AuditAction, FieldChange, NewShare, ScopeSet, Share, User};
use crate::policy;
use crate::ports::{Clock, IdGenerator, RepoError, ShareRepository, TokenCodec, UserRepository};
use crate::services::audit;
use crate::services::users::resolve_user;
use crate::values::UserRef;

/// A share together with the other party (the grantee for one's own shares, the owner for
/// shares with one).
#[derive(Debug, Clone)]
pub struct SharedUser {
    pub share: Share,
    pub user: User,
}

/// A delegated access token, returned once.
#[derive(Debug, Clone)]
pub struct DelegatedToken {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub subject_id: Uuid,
    pub scopes: ScopeSet,
}

#[derive(Clone)]
pub struct ShareService {
    users: Arc<dyn UserRepository>,
    shares: Arc<dyn ShareRepository>,
    tokens: Arc<dyn TokenCodec>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    config: Arc<TesseraConfig>,
}

fn scopes_change(
    before: Option<ScopeSet>,
    after: Option<ScopeSet>,
) -> BTreeMap<String, FieldChange> {
    let mut details = BTreeMap::new();
    details.insert(
        "scopes".to_owned(),
        FieldChange {
            before: before.map(|s| s.names().join(",")),
            after: after.map(|s| s.names().join(",")),
        },
    );
    details
}

impl ShareService {
    pub(crate) fn new(ports: &Ports, config: &Arc<TesseraConfig>) -> Self {
        Self {
            users: ports.users.clone(),
            shares: ports.shares.clone(),
            tokens: ports.tokens.clone(),
            clock: ports.clock.clone(),
            ids: ports.ids.clone(),
            config: config.clone(),
        }
    }

    /// Share management is the caller's own business: the account holder's own sign-in to
    /// change shares, any reading credential but a delegated token to list them.
    fn gate(actor: &Actor, access: Access) -> Result<(), UserError> {
        policy::authorize(actor, access)?;
        Ok(policy::ensure_not_delegated(
            actor,
            "a delegated token cannot manage shares",
        )?)
    }

    fn parse_scopes(raw: &[String]) -> Result<ScopeSet, UserError> {
        let scopes = ScopeSet::parse("scopes", raw)?;
        if scopes.is_empty() {
            return Err(ValidationError::new("scopes", "at least one scope is required").into());
        }
        Ok(scopes)
    }

    /// The grantee named in a share request: any live user with a login, other than the caller.
    async fn grantee(&self, actor: &Actor, grantee: &UserRef) -> Result<User, UserError> {
        let user = resolve_user(&*self.users, grantee).await?;
        if user.state == crate::model::UserState::Deleted {
            return Err(UserError::NotFound);
        }
        if user.id == actor.id() {
            return Err(ValidationError::new("grantee", "you cannot share with yourself").into());
        }
        if user.is_managed() {
            return Err(ValidationError::new(
                "grantee",
                "managed users cannot be granted access; share with their manager instead",
            )
            .into());
        }
        Ok(user)
    }

    fn audit_event(
        &self,
        actor: &Actor,
        grantee: Uuid,
        action: AuditAction,
        before: Option<ScopeSet>,
        after: Option<ScopeSet>,
    ) -> crate::model::AuditEvent {
        let mut details = scopes_change(before, after);
        details.insert(
            "grantee_id".to_owned(),
            FieldChange {
                before: None,
                after: Some(grantee.to_string()),
            },
        );
        audit::event(
            self.ids.new_id(),
            self.clock.now(),
            Some(actor),
            Some(actor.id()),
            action,
            details,
        )
    }

    /// `POST /me/shares`: grants scopes to a user, or replaces the scopes of an existing share
    /// (an upsert). The boolean says whether the share is new.
    pub async fn grant(
        &self,
        actor: &Actor,
        grantee: &UserRef,
        scopes: &[String],
    ) -> Result<(SharedUser, bool), UserError> {
        Self::gate(actor, Access::Account)?;
        let scopes = Self::parse_scopes(scopes)?;
        if actor.user.is_managed() {
            return Err(UserError::Failure(Failure::forbidden(
                "managed users cannot share",
            )));
        }
        let user = self.grantee(actor, grantee).await?;
        let before = match self.shares.get(actor.id(), user.id).await {
            Ok(share) => Some(share.scopes),
            Err(RepoError::NotFound) => None,
            Err(other) => return Err(other.into()),
        };
        let action = if before.is_some() {
            AuditAction::ShareChanged
        } else {
            AuditAction::ShareGranted
        };
        let new = NewShare {
            owner_id: actor.id(),
            grantee_id: user.id,
            scopes,
            now: self.clock.now(),
            audit: Some(self.audit_event(actor, user.id, action, before, Some(scopes))),
        };
        let (share, created) = self.shares.put(new).await?;
        Ok((SharedUser { share, user }, created))
    }

    /// `PATCH /me/shares/{grantee}`: replaces the scopes of an existing share.
    pub async fn change(
        &self,
        actor: &Actor,
        grantee: &UserRef,
        scopes: &[String],
    ) -> Result<SharedUser, UserError> {
        Self::gate(actor, Access::Account)?;
        let scopes = Self::parse_scopes(scopes)?;
        let user = resolve_user(&*self.users, grantee).await?;
        let before = self.shares.get(actor.id(), user.id).await?;
        let new = NewShare {
            owner_id: actor.id(),
            grantee_id: user.id,
            scopes,
            now: self.clock.now(),
            audit: Some(self.audit_event(
                actor,
                user.id,
                AuditAction::ShareChanged,
                Some(before.scopes),
                Some(scopes),
            )),
        };
        let share = self.shares.update(new).await?;
        Ok(SharedUser { share, user })
    }

    /// `DELETE /me/shares/{grantee}`: revokes a share; it stops working at once.
    pub async fn revoke(&self, actor: &Actor, grantee: &UserRef) -> Result<(), UserError> {
        Self::gate(actor, Access::Account)?;
        let user = resolve_user(&*self.users, grantee).await?;
        let before = self.shares.get(actor.id(), user.id).await?;
        let event = self.audit_event(
            actor,
            user.id,
            AuditAction::ShareRevoked,
            Some(before.scopes),
            None,
        );
        Ok(self.shares.delete(actor.id(), user.id, Some(event)).await?)
    }

    /// `GET /me/shares`: the shares the caller granted, with their grantees.
    pub async fn mine(&self, actor: &Actor) -> Result<Vec<SharedUser>, UserError> {
        Self::gate(actor, Access::Read)?;
        let shares = self.shares.granted_by(actor.id()).await?;
        self.with_users(shares, |s| s.grantee_id).await
    }

    /// `GET /me/shared-with-me`: the shares granted to the caller by users who are not deleted.
    pub async fn shared_with_me(&self, actor: &Actor) -> Result<Vec<SharedUser>, UserError> {
        Self::gate(actor, Access::Read)?;
        let shares = self.shares.granted_to(actor.id()).await?;
        self.with_users(shares, |s| s.owner_id).await
    }

    async fn with_users(
        &self,
        shares: Vec<Share>,
        other: impl Fn(&Share) -> Uuid,
    ) -> Result<Vec<SharedUser>, UserError> {
        let mut out = Vec::with_capacity(shares.len());
        for share in shares {
            match self.users.get(other(&share)).await {
                Ok(user) if user.state != crate::model::UserState::Deleted => {
                    out.push(SharedUser { share, user });
                }
                Ok(_) | Err(RepoError::NotFound) => {}
                Err(other) => return Err(other.into()),
            }
        }
        Ok(out)
    }

    /// The caller's scopes on each of `users`: every scope on themselves and on the users they
    /// manage, the share's on users who shared with them, none otherwise. One store look-up.
    pub async fn scopes_on(
        &self,
        actor: &Actor,
        users: &[User],
    ) -> Result<HashMap<Uuid, ScopeSet>, UserError> {
        let granted: HashMap<Uuid, ScopeSet> = if actor.is_delegated() {
            HashMap::new()
        } else {
            self.shares
                .granted_to(actor.id())
                .await?
                .into_iter()
                .map(|s| (s.owner_id, s.scopes))
                .collect()
        };
        Ok(users
            .iter()
            .map(|u| {
                let scopes = if u.id == actor.id() || policy::manages(actor, u) {
                    actor.delegation.map_or(ScopeSet::ALL, |d| d.scopes)
                } else {
                    granted.get(&u.id).copied().unwrap_or(ScopeSet::EMPTY)
                };
                (u.id, scopes)
            })
            .collect())
    }

    /// `POST /auth/delegated-token`: a token whose subject is `user` (a user the caller manages,
    /// or one who shared with the caller) and whose actor is the caller, limited to `scopes`
    /// (default: everything the caller holds on the subject). Asking for more than the caller
    /// holds is `Forbidden`; a user the caller cannot see is `NotFound`.
    pub async fn delegated_token(
        &self,
        actor: &Actor,
        user: &UserRef,
        scopes: Option<&[String]>,
    ) -> Result<DelegatedToken, UserError> {
        policy::authorize(actor, Access::Account)?;
        policy::ensure_not_delegated(actor, "a delegated token cannot mint another")?;
        let Some(session_id) = actor.session_id else {
            return Err(UserError::Failure(Failure::forbidden(
                "delegated tokens are issued only to password sessions",
            )));
        };
        let target = resolve_user(&*self.users, user).await?;
        let share = crate::services::users::share_with(&*self.shares, actor, &target).await?;
        policy::ensure_visible_shared(actor, &target, share)?;
        if target.id == actor.id() {
            return Err(ValidationError::new("user", "you cannot delegate to yourself").into());
        }
        let held = if policy::manages(actor, &target) {
            ScopeSet::ALL
        } else if let Some(share) = share {
            share
        } else {
            return Err(UserError::Failure(Failure::forbidden(
                "you neither manage this user nor hold a share from them",
            )));
        };
        if !target.is_active() {
            return Err(UserError::Failure(Failure::Conflict(
                crate::error::Conflict::InvalidState,
            )));
        }
        let scopes = match scopes {
            Some(raw) => Self::parse_scopes(raw)?,
            None => held,
        };
        if !held.contains(scopes) {
            return Err(UserError::Failure(Failure::forbidden(
                "the requested scopes exceed those you hold on this user",
            )));
        }
        let now = self.clock.now();
        let ttl = Duration::try_from(self.config.access_token_ttl).unwrap_or(Duration::MAX);
        let claims = AccessClaims {
            subject: target.id,
            session_id,
            issued_at: now,
            expires_at: now + ttl,
            scope: scopes.to_claim(),
            actor: Some(actor.id()),
        };
        let access_token = self.tokens.encode(&claims).map_err(Failure::Internal)?;
        Ok(DelegatedToken {
            access_token,
            token_type: "bearer",
            expires_in: ttl.whole_seconds(),
            subject_id: target.id,
            scopes,
        })
    }
}
