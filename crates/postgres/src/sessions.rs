use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use tessera_domain::model::{
    DelegatedCheck, NewSession, RefreshOutcome, ScopeSet, Session, SessionCheck, User,
    WalletSummary,
};
use tessera_domain::ports::{RepoError, RepoResult, SessionRepository};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{map, TxError};
use crate::models::{SessionRow, UserRow};
use crate::schema::{refresh_tokens, sessions, shares, users, wallets};
use crate::users::revoke_sessions;
use crate::PgStore;

#[async_trait]
impl SessionRepository for PgStore {
    async fn start(&self, session: NewSession) -> RepoResult<()> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            let touched = diesel::update(users::table.find(session.user_id))
                .set(users::last_login_at.eq(session.now))
                .execute(conn)
                .await
                .map_err(map)?;
            if touched == 0 {
                return Err(RepoError::NotFound.into());
            }
            diesel::insert_into(sessions::table)
                .values((
                    sessions::id.eq(session.id),
                    sessions::user_id.eq(session.user_id),
                    sessions::created_at.eq(session.now),
                    sessions::expires_at.eq(session.expires_at),
                ))
                .execute(conn)
                .await
                .map_err(map)?;
            diesel::insert_into(refresh_tokens::table)
                .values((
                    refresh_tokens::digest.eq(&session.refresh_token_digest),
                    refresh_tokens::session_id.eq(session.id),
                    refresh_tokens::created_at.eq(session.now),
                ))
                .execute(conn)
                .await
                .map_err(map)?;
            Ok(())
        })
        .await
        .map_err(RepoError::from)
    }

    async fn check(&self, session_id: Uuid, user_id: Uuid) -> RepoResult<SessionCheck> {
        let mut conn = self.conn().await?;
        let (session, user): (SessionRow, UserRow) = sessions::table
            .inner_join(users::table)
            .filter(sessions::id.eq(session_id))
            .filter(sessions::user_id.eq(user_id))
            .select((SessionRow::as_select(), UserRow::as_select()))
            .first(&mut conn)
            .await
            .map_err(map)?;
        Ok(SessionCheck {
            user: user.try_into()?,
            session: session.into(),
        })
    }

    async fn check_with_wallets(
        &self,
        session_id: Uuid,
        user_id: Uuid,
    ) -> RepoResult<(SessionCheck, WalletSummary)> {
        let mut conn = self.conn().await?;
        // One row per live wallet (one, usually), or one with no wallet columns.
        let rows: Vec<(SessionRow, UserRow, Option<(String, bool, i64)>)> = sessions::table
            .inner_join(users::table)
            .left_join(
                wallets::table.on(wallets::user_id
                    .eq(users::id)
                    .and(wallets::deleted_at.is_null())),
            )
            .filter(sessions::id.eq(session_id))
            .filter(sessions::user_id.eq(user_id))
            .select((
                SessionRow::as_select(),
                UserRow::as_select(),
                (wallets::currency, wallets::is_default, wallets::balance).nullable(),
            ))
            .load(&mut conn)
            .await
            .map_err(map)?;
        let mut summary = WalletSummary::default();
        let mut found = None;
        for (session, user, wallet) in rows {
            if let Some((currency, is_default, balance)) = wallet {
                summary.add(currency, is_default, balance);
            }
            found.get_or_insert((session, user));
        }
        let (session, user) = found.ok_or(RepoError::NotFound)?;
        Ok((
            SessionCheck {
                user: user.try_into()?,
                session: session.into(),
            },
            summary,
        ))
    }

    async fn check_delegated(
        &self,
        session_id: Uuid,
        principal_id: Uuid,
        subject_id: Uuid,
    ) -> RepoResult<DelegatedCheck> {
        let mut conn = self.conn().await?;
        let (session, principal): (SessionRow, UserRow) = sessions::table
            .inner_join(users::table)
            .filter(sessions::id.eq(session_id))
            .filter(sessions::user_id.eq(principal_id))
            .select((SessionRow::as_select(), UserRow::as_select()))
            .first(&mut conn)
            .await
            .map_err(map)?;
        // The subject and its share with the principal, in one statement.
        let (subject, share): (UserRow, Option<i32>) = users::table
            .left_join(
                shares::table.on(shares::owner_id
                    .eq(users::id)
                    .and(shares::grantee_id.eq(principal_id))),
            )
            .filter(users::id.eq(subject_id))
            .select((UserRow::as_select(), shares::scopes.nullable()))
            .first(&mut conn)
            .await
            .map_err(map)?;
        Ok(DelegatedCheck {
            session: session.into(),
            principal: principal.try_into()?,
            subject: subject.try_into()?,
            share: share.map(ScopeSet::from_bits),
        })
    }

    async fn rotate_refresh(
        &self,
        presented: &str,
        next: &str,
        now: OffsetDateTime,
    ) -> RepoResult<RefreshOutcome> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            // Lock the token and its session: a concurrent second use waits here, then sees the
            // token spent and is treated as the theft it looks like.
            let found: Option<(Option<OffsetDateTime>, SessionRow)> = refresh_tokens::table
                .inner_join(sessions::table)
                .filter(refresh_tokens::digest.eq(presented))
                .select((refresh_tokens::spent_at, SessionRow::as_select()))
                .for_update()
                .first(conn)
                .await
                .optional()
                .map_err(map)?;
            let Some((spent_at, session)) = found else {
                return Ok(RefreshOutcome::Invalid);
            };
            let session: Session = session.into();
            if session.revoked_at.is_some() || session.expires_at <= now {
                return Ok(RefreshOutcome::Invalid);
            }
            if spent_at.is_some() {
                diesel::update(sessions::table.find(session.id))
                    .set(sessions::revoked_at.eq(now))
                    .execute(conn)
                    .await
                    .map_err(map)?;
                return Ok(RefreshOutcome::Reused {
                    session_id: session.id,
                });
            }
            diesel::update(refresh_tokens::table.find(presented))
                .set(refresh_tokens::spent_at.eq(now))
                .execute(conn)
                .await
                .map_err(map)?;
            diesel::insert_into(refresh_tokens::table)
                .values((
                    refresh_tokens::digest.eq(next),
                    refresh_tokens::session_id.eq(session.id),
                    refresh_tokens::created_at.eq(now),
                ))
                .execute(conn)
                .await
                .map_err(map)?;
            let user: UserRow = users::table
                .find(session.user_id)
                .select(UserRow::as_select())
                .first(conn)
                .await
                .map_err(map)?;
            Ok(RefreshOutcome::Rotated {
                session,
                user: Box::new(User::try_from(user)?),
            })
        })
        .await
        .map_err(RepoError::from)
    }

    async fn revoke(&self, session_id: Uuid, now: OffsetDateTime) -> RepoResult<()> {
        let mut conn = self.conn().await?;
        diesel::update(
            sessions::table
                .find(session_id)
                .filter(sessions::revoked_at.is_null()),
        )
        .set(sessions::revoked_at.eq(now))
        .execute(&mut conn)
        .await
        .map_err(map)?;
        Ok(())
    }

    async fn revoke_all(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: OffsetDateTime,
    ) -> RepoResult<()> {
        let mut conn = self.conn().await?;
        revoke_sessions(&mut conn, user_id, keep, now).await
    }

    async fn prune_ended(&self, cutoff: OffsetDateTime, limit: u32) -> RepoResult<u64> {
        // Refresh tokens go with their session (ON DELETE CASCADE).
        self.delete_batch(
            "DELETE FROM sessions WHERE id IN (
                 SELECT id FROM sessions WHERE expires_at < $1 OR revoked_at < $1
                 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            cutoff,
            limit,
        )
        .await
    }
}
