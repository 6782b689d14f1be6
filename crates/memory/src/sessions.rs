//! [`SessionRepository`] over the in-memory tables.

use async_trait::async_trait;
use tessera_domain::model::{
    DelegatedCheck, NewSession, RefreshOutcome, Session, SessionCheck, WalletSummary,
};
use tessera_domain::ports::{RepoError, RepoResult, SessionRepository};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::{stored, RefreshTokenRow, State};
use crate::MemoryStore;

/// The session of `user_id` with id `session_id`, and its user.
fn checked(state: &State, session_id: Uuid, user_id: Uuid) -> RepoResult<SessionCheck> {
    let session = state
        .sessions
        .get(&session_id)
        .filter(|session| session.user_id == user_id)
        .ok_or(RepoError::NotFound)?;
    let user = state.users.get(&user_id).ok_or(RepoError::NotFound)?;
    Ok(SessionCheck {
        user: user.user.clone(),
        session: session.clone(),
    })
}

#[async_trait]
impl SessionRepository for MemoryStore {
    async fn start(&self, session: NewSession) -> RepoResult<()> {
        let now = stored(session.now);
        let mut state = self.lock();
        if !state.users.contains_key(&session.user_id) {
            return Err(RepoError::NotFound);
        }
        if state.sessions.contains_key(&session.id) {
            return Err(RepoError::internal(format!(
                "duplicate key: a session with id {} exists",
                session.id
            )));
        }
        if state
            .refresh_tokens
            .contains_key(&session.refresh_token_digest)
        {
            return Err(RepoError::internal(
                "duplicate key: refresh token digest exists",
            ));
        }

        if let Some(row) = state.users.get_mut(&session.user_id) {
            row.user.last_login_at = Some(now);
        }
        state.sessions.insert(
            session.id,
            Session {
                id: session.id,
                user_id: session.user_id,
                created_at: now,
                expires_at: stored(session.expires_at),
                revoked_at: None,
            },
        );
        state.refresh_tokens.insert(
            session.refresh_token_digest,
            RefreshTokenRow {
                session_id: session.id,
                spent: false,
            },
        );
        Ok(())
    }

    async fn check(&self, session_id: Uuid, user_id: Uuid) -> RepoResult<SessionCheck> {
        checked(&self.lock(), session_id, user_id)
    }

    async fn check_with_wallets(
        &self,
        session_id: Uuid,
        user_id: Uuid,
    ) -> RepoResult<(SessionCheck, WalletSummary)> {
        let state = self.lock();
        let check = checked(&state, session_id, user_id)?;
        let mut summary = WalletSummary::default();
        for wallet in state.wallets.values() {
            if wallet.user_id == user_id && wallet.deleted_at.is_none() {
                summary.add(wallet.currency.clone(), wallet.is_default, wallet.balance);
            }
        }
        Ok((check, summary))
    }

    async fn check_delegated(
        &self,
        session_id: Uuid,
        principal_id: Uuid,
        subject_id: Uuid,
    ) -> RepoResult<DelegatedCheck> {
        let state = self.lock();
        let session = state
            .sessions
            .get(&session_id)
            .filter(|session| session.user_id == principal_id)
            .ok_or(RepoError::NotFound)?;
        let principal = state.users.get(&principal_id).ok_or(RepoError::NotFound)?;
        let subject = state.users.get(&subject_id).ok_or(RepoError::NotFound)?;
        Ok(DelegatedCheck {
            session: session.clone(),
            principal: principal.user.clone(),
            subject: subject.user.clone(),
            share: state
                .shares
                .get(&(subject_id, principal_id))
                .map(|share| share.scopes),
        })
    }

    async fn rotate_refresh(
        &self,
        presented: &str,
        next: &str,
        now: OffsetDateTime,
    ) -> RepoResult<RefreshOutcome> {
        let now = stored(now);
        let mut state = self.lock();
        let Some(token) = state.refresh_tokens.get(presented).copied() else {
            return Ok(RefreshOutcome::Invalid);
        };
        let Some(session) = state.sessions.get(&token.session_id) else {
            return Ok(RefreshOutcome::Invalid);
        };
        if session.revoked_at.is_some() || session.expires_at <= now {
            return Ok(RefreshOutcome::Invalid);
        }
        let session_id = session.id;
        if token.spent {
            if let Some(session) = state.sessions.get_mut(&session_id) {
                session.revoked_at = Some(now);
            }
            return Ok(RefreshOutcome::Reused { session_id });
        }
        let Some(user) = state.users.get(&session.user_id) else {
            return Ok(RefreshOutcome::Invalid);
        };
        if state.refresh_tokens.contains_key(next) {
            return Err(RepoError::internal(
                "duplicate key: refresh token digest exists",
            ));
        }

        let outcome = RefreshOutcome::Rotated {
            session: session.clone(),
            user: Box::new(user.user.clone()),
        };
        if let Some(token) = state.refresh_tokens.get_mut(presented) {
            token.spent = true;
        }
        state.refresh_tokens.insert(
            next.to_owned(),
            RefreshTokenRow {
                session_id,
                spent: false,
            },
        );
        Ok(outcome)
    }

    async fn revoke(&self, session_id: Uuid, now: OffsetDateTime) -> RepoResult<()> {
        let now = stored(now);
        let mut state = self.lock();
        if let Some(session) = state.sessions.get_mut(&session_id) {
            session.revoked_at.get_or_insert(now);
        }
        Ok(())
    }

    async fn revoke_all(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: OffsetDateTime,
    ) -> RepoResult<()> {
        let now = stored(now);
        self.lock().revoke_sessions_of(user_id, keep, now);
        Ok(())
    }

    async fn prune_ended(&self, cutoff: OffsetDateTime, limit: u32) -> RepoResult<u64> {
        let mut state = self.lock();
        let mut ended: Vec<(OffsetDateTime, Uuid)> = state
            .sessions
            .values()
            .filter_map(|s| {
                let ended = s.revoked_at.map_or(s.expires_at, |r| r.min(s.expires_at));
                (ended < cutoff).then_some((ended, s.id))
            })
            .collect();
        ended.sort_unstable();
        ended.truncate(limit as usize);
        for (_, id) in &ended {
            state.sessions.remove(id);
        }
        let State {
            sessions,
            refresh_tokens,
            ..
        } = &mut *state;
        refresh_tokens.retain(|_, token| sessions.contains_key(&token.session_id));
        Ok(ended.len() as u64)
    }
}
