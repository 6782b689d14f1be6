//! Password sessions: login, refresh with rotation and reuse detection, logout, and checking an
//! access token on every request.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::actor::{Actor, Delegation};
use crate::app::{Ports, TesseraConfig};
use crate::counters::Counters;
use crate::error::{AuthError, Failure};
use crate::model::{
    AccessClaims, NewSession, RefreshOutcome, ScopeSet, Session, TokenPair, User, WalletSummary,
};
use crate::ports::{
    Clock, IdGenerator, PasswordHasher, RepoError, SecretGenerator, SessionRepository, TokenCodec,
    UserRepository,
};
use crate::services::throttle::AccountKey;
use crate::services::throttle::CredentialThrottle;
use crate::values::{may_name_a_user, PresentedSecret};

/// The only scope password sessions carry today; delegated tokens will narrow it.
pub const FULL_SCOPE: &str = "full";

#[derive(Clone)]
pub struct AuthService {
    counters: Arc<Counters>,
    users: Arc<dyn UserRepository>,
    sessions: Arc<dyn SessionRepository>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: Arc<dyn TokenCodec>,
    secrets: Arc<dyn SecretGenerator>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    config: Arc<TesseraConfig>,
    throttle: CredentialThrottle,
}

fn duration(std: std::time::Duration) -> Duration {
    Duration::try_from(std).unwrap_or(Duration::MAX)
}

impl AuthService {
    pub(crate) fn new(
        ports: &Ports,
        config: &Arc<TesseraConfig>,
        throttle: &CredentialThrottle,
        counters: &Arc<Counters>,
    ) -> Self {
        Self {
            counters: counters.clone(),
            users: ports.users.clone(),
            sessions: ports.sessions.clone(),
            hasher: ports.hasher.clone(),
            tokens: ports.tokens.clone(),
            secrets: ports.secrets.clone(),
            clock: ports.clock.clone(),
            ids: ports.ids.clone(),
            config: config.clone(),
            throttle: throttle.clone(),
        }
    }

    /// Exchanges a username-or-email and password for a token pair. Unknown users, wrong
    /// passwords, users without a password, managed, deactivated and deleted users all get the
    /// same `InvalidCredentials` after the same amount of hashing work.
    ///
    /// Throttled before any hashing (see [`crate::services::throttle`]): attempts per client
    /// address, failures per account (keyed by the user's id, so a username and an email share
    /// them) per address and overall — without ever refusing the owner at an address that has
    /// not failed.
    pub async fn login(
        &self,
        login: &str,
        password: &str,
        client_ip: &str,
    ) -> Result<TokenPair, AuthError> {
        let login = login.trim();
        // The address first: a flood from one address costs one counter each, no look-up.
        self.throttle.before_anonymous_attempt(client_ip).await?;
        let found = if !may_name_a_user(login) {
            Err(RepoError::NotFound)
        } else {
            self.users.find_login(login).await
        };
        let found = match found {
            Ok(found) => Some(found),
            Err(RepoError::NotFound) => None,
            Err(other) => return Err(other.into()),
        };
        let account = match &found {
            Some((user, _)) => AccountKey::User(user.id),
            None => AccountKey::Name(login.to_owned()),
        };
        self.throttle.check_account(&account, client_ip).await?;
        let outcome = self.verify_login(found, password).await;
        if matches!(outcome, Err(AuthError::InvalidCredentials)) {
            self.counters.login(false);
            self.throttle.record_failure(&account, client_ip).await?;
        }
        let user = outcome?;
        let pair = self.start_session(&user).await;
        if pair.is_ok() {
            self.counters.login(true);
        }
        pair
    }

    /// The password check of a login: one full verification whatever was found.
    async fn verify_login(
        &self,
        found: Option<(User, Option<String>)>,
        password: &str,
    ) -> Result<User, AuthError> {
        let hasher = &self.hasher;
        let Some(password) = PresentedSecret::new(password.to_owned()) else {
            return Err(AuthError::InvalidCredentials);
        };
        let Some((user, hash)) = found else {
            hasher
                .verify(password.expose(), None)
                .await
                .map_err(Failure::Internal)?;
            return Err(AuthError::InvalidCredentials);
        };
        let matches = hasher
            .verify(password.expose(), hash.as_deref())
            .await
            .map_err(Failure::Internal)?;
        if !matches || !user.is_active() || user.is_managed() {
            return Err(AuthError::InvalidCredentials);
        }
        Ok(user)
    }

    async fn start_session(&self, user: &User) -> Result<TokenPair, AuthError> {
        self.start_session_with_ttl(user, self.config.access_token_ttl)
            .await
    }

    /// Starts a session whose access token lives `access_ttl` (fingerprint logins use Chutes'
    /// week-long tokens; they are still checked against the session on every request).
    pub(crate) async fn start_session_with_ttl(
        &self,
        user: &User,
        access_ttl: std::time::Duration,
    ) -> Result<TokenPair, AuthError> {
        let now = self.clock.now();
        let refresh_token = self.secrets.new_token();
        let session = NewSession {
            id: self.ids.new_id(),
            user_id: user.id,
            refresh_token_digest: self.secrets.digest(&refresh_token),
            now,
            expires_at: now + duration(self.config.session_ttl),
        };
        let session_id = session.id;
        self.sessions.start(session).await?;
        self.token_pair(user, session_id, now, refresh_token, access_ttl)
    }

    fn token_pair(
        &self,
        user: &User,
        session_id: uuid::Uuid,
        now: OffsetDateTime,
        refresh_token: String,
        access_ttl: std::time::Duration,
    ) -> Result<TokenPair, AuthError> {
        let ttl = duration(access_ttl);
        let claims = AccessClaims {
            subject: user.id,
            session_id,
            issued_at: now,
            expires_at: now + ttl,
            scope: FULL_SCOPE.to_owned(),
            actor: None,
        };
        let access_token = self.tokens.encode(&claims).map_err(Failure::Internal)?;
        Ok(TokenPair {
            access_token,
            token_type: "bearer",
            expires_in: ttl.whole_seconds(),
            refresh_token,
            user_id: user.id,
        })
    }

    /// Spends a refresh token for a new pair. Presenting a token that was already spent revokes
    /// its whole session: someone else has it.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AuthError> {
        if refresh_token.is_empty() || refresh_token.len() > 512 {
            return Err(AuthError::InvalidToken);
        }
        let now = self.clock.now();
        let next = self.secrets.new_token();
        let outcome = self
            .sessions
            .rotate_refresh(
                &self.secrets.digest(refresh_token),
                &self.secrets.digest(&next),
                now,
            )
            .await?;
        match outcome {
            RefreshOutcome::Rotated { session, user } => {
                if !user.is_active() || user.is_managed() {
                    self.sessions.revoke(session.id, now).await?;
                    return Err(AuthError::InvalidToken);
                }
                self.token_pair(&user, session.id, now, next, self.config.access_token_ttl)
            }
            RefreshOutcome::Reused { .. } | RefreshOutcome::Invalid => Err(AuthError::InvalidToken),
        }
    }

    /// Ends the session the actor's token belongs to.
    pub async fn logout(&self, actor: &Actor) -> Result<(), AuthError> {
        crate::policy::authorize_pending(actor, crate::actor::Access::Read)?;
        if let Some(session_id) = actor.session_id {
            let now = self.clock.now();
            self.sessions.revoke(session_id, now).await?;
        }
        Ok(())
    }

    /// Checks an access token and returns who is calling. One store look-up: the session and
    /// its user together (for a delegated token, also the subject and the subject's share).
    pub async fn authenticate(&self, token: &str) -> Result<Actor, AuthError> {
        Ok(self.authenticate_reading(token, false).await?.0)
    }

    /// [`authenticate`](Self::authenticate), reading the caller's wallet summary in the same
    /// store look-up, for views of the caller. `None` for a delegated token: its subject's
    /// summary is read separately.
    pub async fn authenticate_with_wallets(
        &self,
        token: &str,
    ) -> Result<(Actor, Option<WalletSummary>), AuthError> {
        self.authenticate_reading(token, true).await
    }

    async fn authenticate_reading(
        &self,
        token: &str,
        with_wallets: bool,
    ) -> Result<(Actor, Option<WalletSummary>), AuthError> {
        let claims = self.tokens.decode(token).ok_or(AuthError::InvalidToken)?;
        let now = self.clock.now();
        if claims.expires_at <= now {
            return Err(AuthError::InvalidToken);
        }
        if let Some(principal) = claims.actor {
            let actor = self.authenticate_delegated(&claims, principal, now).await?;
            return Ok((actor, None));
        }
        let sessions = &self.sessions;
        let (session_id, user_id) = (claims.session_id, claims.subject);
        let found = if with_wallets {
            sessions
                .check_with_wallets(session_id, user_id)
                .await
                .map(|(check, wallets)| (check, Some(wallets)))
        } else {
            sessions.check(session_id, user_id).await.map(|c| (c, None))
        };
        let (check, wallets) = match found {
            Ok(found) => found,
            Err(RepoError::NotFound) => return Err(AuthError::InvalidToken),
            Err(other) => return Err(other.into()),
        };
        if !session_usable(&check.session, now)
            || !check.user.is_active()
            || check.user.is_managed()
            || issued_before(claims.issued_at, check.user.tokens_valid_after)
        {
            return Err(AuthError::InvalidToken);
        }
        Ok((Actor::direct(check.user, Some(check.session.id)), wallets))
    }

    /// A delegated token works while the principal's session is live and the principal active,
    /// the subject exists and is active, and the principal still manages the subject or the
    /// subject's share still grants every scope of the token. All read in one store call, on
    /// every request: revocation or deletion of either party stops the token at once.
    async fn authenticate_delegated(
        &self,
        claims: &AccessClaims,
        principal: uuid::Uuid,
        now: OffsetDateTime,
    ) -> Result<Actor, AuthError> {
        let scopes = ScopeSet::parse_claim(&claims.scope).ok_or(AuthError::InvalidToken)?;
        let check = match self
            .sessions
            .check_delegated(claims.session_id, principal, claims.subject)
            .await
        {
            Ok(check) => check,
            Err(RepoError::NotFound) => return Err(AuthError::InvalidToken),
            Err(other) => return Err(other.into()),
        };
        let principal_ok = session_usable(&check.session, now)
            && check.principal.is_active()
            && !check.principal.is_managed()
            && !issued_before(claims.issued_at, check.principal.tokens_valid_after);
        let subject_ok = check.subject.is_active()
            && !issued_before(claims.issued_at, check.subject.tokens_valid_after);
        let relation_ok = if check.subject.manager_id == Some(principal) {
            true
        } else {
            check.share.is_some_and(|held| held.contains(scopes))
        };
        if !(principal_ok && subject_ok && relation_ok) || scopes.is_empty() {
            return Err(AuthError::InvalidToken);
        }
        Ok(Actor {
            user: check.subject,
            session_id: None,
            delegation: Some(Delegation {
                principal_id: principal,
                session_id: check.session.id,
                scopes,
            }),
            credential: crate::actor::Credential::Full,
            client_ip: None,
        })
    }
}

fn session_usable(session: &Session, now: OffsetDateTime) -> bool {
    session.revoked_at.is_none() && session.expires_at > now
}

/// Token times travel in whole seconds; a token issued in the same second as the cut-off is
/// still accepted (its session is what a revocation kills).
fn issued_before(issued_at: OffsetDateTime, valid_after: OffsetDateTime) -> bool {
    issued_at.unix_timestamp() < valid_after.unix_timestamp()
}
