//! Bittensor identities (hotkey-signed requests, fingerprints), API keys, the trusted external
//! issuer, and the Chutes account use cases built on them.

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::actor::{Access, Actor, Credential};
use crate::app::{Ports, TesseraConfig};
use crate::counters::Counters;
use crate::error::{Conflict, Failure, IdentityError, ValidationError};
use crate::model::{
    ApiKey, ApiKeyScope, ApiKeyScopes, AuditAction, CreatedAccount, FingerprintRotation,
    IssuedApiKey, NewApiKey, NewUser, Permission, Permissions, Registration, SignedRequest, User,
    UserChanges, API_KEY_TOUCH_INTERVAL,
};
use crate::policy;
use crate::ports::{
    ApiKeyRepository, Clock, ExternalTokenVerifier, GuardRepository, IdGenerator, RepoError,
    SecretGenerator, SignatureCheck, SignatureVerifier, UserRepository,
};
use crate::services::audit;
use crate::services::throttle::CredentialThrottle;
use crate::services::users::UserService;
use crate::services::AuthService;
use crate::values::Username;

/// API keys look like Chutes': `cpk_` + key id (32 hex) + `.` + user id (32 hex) + `.` +
/// 32 random alphanumerics.
pub const API_KEY_PREFIX: &str = "cpk_";
const MAX_PRESENTED_SECRET: usize = 256;
const MAX_KEY_NAME: usize = 64;
const MAX_FINGERPRINT: usize = 256;
/// A fingerprint chosen by its holder (`change_fingerprint`) must be at least this long and
/// use at least [`MIN_FINGERPRINT_DISTINCT`] different characters; Tessera's own are 32
/// characters from a CSPRNG.
pub const MIN_FINGERPRINT: usize = 16;
pub const MIN_FINGERPRINT_DISTINCT: usize = 8;
const DAY_SECS: i64 = 86_400;

/// The name rule of Chutes accounts: 3–15 of `[A-Za-z0-9_-]`.
pub fn is_chutes_username(raw: &str) -> bool {
    (3..=15).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Chutes' message for a name that breaks [`is_chutes_username`].
pub const CHUTES_USERNAME_RULE: &str =
    "Username must be 3-15 characters and contain only alphanumeric/underscore/dash characters";

/// What `POST /api/v1/me/api-keys` asks for.
#[derive(Debug, Clone, Default)]
pub struct ApiKeyInput {
    pub name: String,
    pub admin: bool,
    pub scopes: Vec<String>,
}

/// New Bittensor keys for `POST /users/change_bt_auth`. Each key given must sign
/// `{key}:{nonce}:change_bt_auth:{username}` (the account's username as stored), proving its
/// holder attaches it (Chutes attaches any address the fingerprint names).
#[derive(Debug, Clone, Default)]
pub struct KeyChange {
    pub coldkey: Option<String>,
    pub hotkey: Option<String>,
    pub nonce: Option<String>,
    pub coldkey_signature: Option<String>,
    pub hotkey_signature: Option<String>,
}

/// What a key attached by `change_bt_auth` signs.
pub fn key_change_message(key: &str, nonce: &str, username: &str) -> String {
    format!("{key}:{nonce}:change_bt_auth:{username}")
}

#[derive(Clone)]
pub struct IdentityService {
    users: Arc<dyn UserRepository>,
    api_keys: Arc<dyn ApiKeyRepository>,
    guards: Arc<dyn GuardRepository>,
    secrets: Arc<dyn SecretGenerator>,
    signatures: Arc<dyn SignatureVerifier>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    external_tokens: Option<Arc<dyn ExternalTokenVerifier>>,
    config: Arc<TesseraConfig>,
    throttle: CredentialThrottle,
    /// Account creation and changes go through the user use cases (their audit and rules).
    accounts: UserService,
    /// Fingerprint logins start sessions as password logins do.
    sessions: AuthService,
}

impl IdentityService {
    pub(crate) fn new(
        ports: &Ports,
        config: &Arc<TesseraConfig>,
        throttle: &CredentialThrottle,
        counters: &Arc<Counters>,
    ) -> Self {
        Self {
            users: ports.users.clone(),
            api_keys: ports.api_keys.clone(),
            guards: ports.guards.clone(),
            secrets: ports.secrets.clone(),
            signatures: ports.signatures.clone(),
            clock: ports.clock.clone(),
            ids: ports.ids.clone(),
            external_tokens: ports.external_tokens.clone(),
            config: config.clone(),
            throttle: throttle.clone(),
            accounts: UserService::new(ports, config, throttle),
            sessions: AuthService::new(ports, config, throttle, counters),
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    // ---- authentication -------------------------------------------------------------------

    /// Checks a nonce: Unix seconds, digits only, within `window` of now (`inclusive` for
    /// fingerprint rotations, as in Chutes).
    fn check_nonce(&self, nonce: &str, window: i64, inclusive: bool) -> Result<i64, IdentityError> {
        if nonce.is_empty() || nonce.len() > 12 || !nonce.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdentityError::InvalidNonce);
        }
        let value: i64 = nonce.parse().map_err(|_| IdentityError::InvalidNonce)?;
        let skew = (self.now().unix_timestamp() - value).abs();
        let within = if inclusive {
            skew <= window
        } else {
            skew < window
        };
        if !within {
            return Err(IdentityError::InvalidNonce);
        }
        Ok(value)
    }

    /// Verifies `signature` by `key` over `message`, mapping failures to their errors.
    fn verify(&self, key: &str, message: &str, signature: &str) -> Result<(), IdentityError> {
        match self.signatures.verify(key, message.as_bytes(), signature) {
            SignatureCheck::Valid => Ok(()),
            SignatureCheck::MalformedSignature => Err(IdentityError::MalformedSignature),
            SignatureCheck::MalformedAddress | SignatureCheck::Mismatch => {
                Err(IdentityError::SignatureMismatch {
                    hotkey: key.to_owned(),
                    message: message.to_owned(),
                })
            }
        }
    }

    /// Records a state-changing request's signature until its nonce window closes, so a second
    /// use is refused on every server process.
    async fn claim_once(
        &self,
        signature: &str,
        nonce: i64,
        window: i64,
    ) -> Result<(), IdentityError> {
        let normalized = signature
            .trim_start_matches("0x")
            .trim_start_matches("0X")
            .to_ascii_lowercase();
        let expires_at = OffsetDateTime::from_unix_timestamp(nonce.saturating_add(window + 1))
            .map_err(|_| IdentityError::InvalidNonce)?;
        let first = self
            .guards
            .claim_signature(&normalized, expires_at, self.now())
            .await?;
        if first {
            Ok(())
        } else {
            Err(IdentityError::Replayed)
        }
    }

    /// Checks a hotkey-signed request without looking up its user, and says what the signature
    /// allows. The message forms, tried in this order:
    ///
    /// 1. bound to the request, `{hotkey}:{nonce}:{METHOD}:{path?query}:{body sha256}`: the
    ///    user in full, on any route, for any method;
    /// 2. a read (GET, HEAD) of a route that declares a purpose, `{hotkey}:{nonce}:{purpose}`:
    ///    reads only — the same message signs every read of that purpose;
    /// 3. a state-changing request with a body, on a route that accepts Chutes' body form,
    ///    `{hotkey}:{nonce}:{body sha256}`: the user in full.
    ///
    /// A purpose never authorizes a state-changing request, and a body digest never one without
    /// a body, so a signature made for one route is refused on any other. State-changing
    /// requests can be used once.
    pub async fn verify_signed(
        &self,
        request: &SignedRequest,
    ) -> Result<Credential, IdentityError> {
        let window = self.config.identity.signature_window_secs;
        let nonce = request
            .nonce
            .as_deref()
            .ok_or(IdentityError::InvalidNonce)?;
        let nonce_value = self.check_nonce(nonce, window, false)?;
        if request.hotkey.len() > 64 || request.signature.len() > 256 {
            return Err(IdentityError::MalformedSignature);
        }
        let bound = request.bound_message(nonce);
        let (credential, mismatch) = match self.verify(&request.hotkey, &bound, &request.signature)
        {
            Ok(()) => (Some(Credential::Full), None),
            Err(IdentityError::MalformedSignature) => {
                return Err(IdentityError::MalformedSignature)
            }
            Err(e) => (None, Some(e)),
        };
        let credential = match credential {
            Some(c) => c,
            None => {
                let legacy = if request.state_changing {
                    (request.accepts_body_form && request.has_body)
                        .then_some((request.body_digest.as_str(), Credential::Full))
                } else {
                    request
                        .purpose
                        .as_deref()
                        .map(|p| (p, Credential::PurposeSignature))
                };
                let Some((payload, credential)) = legacy else {
                    return Err(mismatch.unwrap_or(IdentityError::MissingPayload));
                };
                let message = format!("{}:{}:{}", request.hotkey, nonce, payload);
                self.verify(&request.hotkey, &message, &request.signature)?;
                credential
            }
        };
        if request.state_changing {
            self.claim_once(&request.signature, nonce_value, window)
                .await?;
        }
        Ok(credential)
    }

    /// Authenticates a hotkey-signed request: a valid signature by the hotkey of a live user.
    pub async fn authenticate_signed(
        &self,
        request: &SignedRequest,
    ) -> Result<Actor, IdentityError> {
        let credential = self.verify_signed(request).await?;
        let user = match self.users.find_by_hotkey(&request.hotkey).await {
            Ok(user) if user.is_active() && !user.is_managed() => user,
            Ok(_) | Err(RepoError::NotFound) => {
                return Err(IdentityError::UnknownHotkey(request.hotkey.clone()))
            }
            Err(other) => return Err(other.into()),
        };
        Ok(match credential {
            Credential::Full => Actor::direct(user, None),
            other => Actor::limited(user, other),
        })
    }

    /// Authenticates an API key: admin keys act with the owner's full rights, others only
    /// within their scopes.
    pub async fn authenticate_api_key(&self, presented: &str) -> Result<Actor, IdentityError> {
        if !presented.starts_with(API_KEY_PREFIX) || presented.len() > MAX_PRESENTED_SECRET {
            return Err(IdentityError::InvalidApiKey);
        }
        let digest = self.secrets.digest(presented);
        let (key, user) = match self.api_keys.find(&digest).await {
            Ok(found) => found,
            Err(RepoError::NotFound) => return Err(IdentityError::InvalidApiKey),
            Err(other) => return Err(other.into()),
        };
        if !user.is_active() || user.is_managed() {
            return Err(IdentityError::InvalidApiKey);
        }
        let now = self.now();
        if key
            .last_used_at
            .is_none_or(|at| now - at >= API_KEY_TOUCH_INTERVAL)
        {
            self.api_keys.touch(key.id, now).await?;
        }
        Ok(if key.admin {
            Actor::direct(user, None)
        } else {
            Actor::limited(
                user,
                Credential::ScopedKey {
                    key_id: key.id,
                    scopes: key.scopes,
                },
            )
        })
    }

    /// Authenticates a token of the trusted external issuer: read-only, for users who opted in
    /// (`squad_enabled`).
    pub async fn authenticate_external(&self, token: &str) -> Result<Actor, IdentityError> {
        let verifier = self
            .external_tokens
            .as_ref()
            .ok_or(IdentityError::InvalidApiKey)?;
        let user_id = verifier.verify(token).ok_or(IdentityError::InvalidApiKey)?;
        let user = match self.users.get(user_id).await {
            Ok(user) => user,
            Err(RepoError::NotFound) => return Err(IdentityError::InvalidApiKey),
            Err(other) => return Err(other.into()),
        };
        if !user.is_active() || user.is_managed() || !user.squad_enabled {
            return Err(IdentityError::InvalidApiKey);
        }
        Ok(Actor::limited(user, Credential::ExternalIssuer))
    }

    /// Whether a trusted external issuer is configured.
    pub fn accepts_external_tokens(&self) -> bool {
        self.external_tokens.is_some()
    }

    /// The live user a fingerprint belongs to. Every attempt counts against the client
    /// address's attempts at presented secrets, as logins do.
    async fn user_by_fingerprint(
        &self,
        fingerprint: &str,
        client_ip: &str,
    ) -> Result<User, IdentityError> {
        self.throttle.before_anonymous_attempt(client_ip).await?;
        if fingerprint.is_empty() || fingerprint.len() > MAX_FINGERPRINT {
            return Err(IdentityError::InvalidFingerprint);
        }
        let digest = self.secrets.fingerprint_digest(fingerprint);
        match self.users.find_by_fingerprint(&digest).await {
            Ok(user) if user.is_active() && !user.is_managed() => Ok(user),
            Ok(_) | Err(RepoError::NotFound) => Err(IdentityError::InvalidFingerprint),
            Err(other) => Err(other.into()),
        }
    }

    /// `POST /users/login`: a fingerprint for an access token. The token belongs to a new
    /// session, so logout, forced logout, deletion and fingerprint rotation all end it.
    pub async fn login_with_fingerprint(
        &self,
        fingerprint: &str,
        client_ip: &str,
    ) -> Result<String, IdentityError> {
        let user = self.user_by_fingerprint(fingerprint, client_ip).await?;
        let ttl = self.config.identity.fingerprint_token_ttl;
        Ok(self
            .sessions
            .start_session_with_ttl(&user, ttl)
            .await?
            .access_token)
    }

    // ---- registration ---------------------------------------------------------------------

    /// The day's counter of `what` from `client_ip`, and the seconds until the day ends.
    fn daily_key(
        &self,
        what: &str,
        client_ip: &str,
    ) -> Result<(String, OffsetDateTime, u64), IdentityError> {
        let now = self.now();
        let day_start = now.unix_timestamp() - now.unix_timestamp().rem_euclid(DAY_SECS);
        let window_start = OffsetDateTime::from_unix_timestamp(day_start)
            .map_err(|e| IdentityError::Failure(Failure::internal(e.to_string())))?;
        let ip: String = client_ip.chars().take(64).collect();
        let retry = (day_start + DAY_SECS - now.unix_timestamp()).max(1);
        Ok((
            format!("{what}:{ip}"),
            window_start,
            u64::try_from(retry).unwrap_or(1),
        ))
    }

    /// Refuses when `client_ip` already made `limit` successful `what`s today (Chutes counts
    /// accounts created, not attempts).
    async fn ensure_daily_allowance(
        &self,
        what: &str,
        client_ip: &str,
        limit: u64,
    ) -> Result<(), IdentityError> {
        let (key, window_start, retry_after_secs) = self.daily_key(what, client_ip)?;
        let made = self.guards.count(&key, window_start).await?;
        if made >= limit {
            return Err(IdentityError::Failure(Failure::Throttled {
                retry_after_secs,
            }));
        }
        Ok(())
    }

    /// Counts one successful `what` from `client_ip` today.
    async fn spend_daily_allowance(
        &self,
        what: &str,
        client_ip: &str,
    ) -> Result<(), IdentityError> {
        let (key, window_start, _) = self.daily_key(what, client_ip)?;
        self.guards
            .hit(&key, window_start, DAY_SECS, self.now())
            .await?;
        Ok(())
    }

    fn chutes_username(&self, raw: &str) -> Result<String, IdentityError> {
        if !is_chutes_username(raw) {
            return Err(ValidationError::new("username", CHUTES_USERNAME_RULE).into());
        }
        // Also Tessera's own rule (starts with a letter or digit, not reserved), so the name
        // works on every surface.
        let name = Username::parse("username", raw).map_err(|_| {
            IdentityError::from(ValidationError::new("username", CHUTES_USERNAME_RULE))
        })?;
        Ok(name.into_inner())
    }

    fn ss58(&self, field: &'static str, raw: &str) -> Result<String, IdentityError> {
        let raw = raw.trim();
        if raw.len() > 64 || !self.signatures.is_valid_address(raw) {
            return Err(ValidationError::new(field, format!("Invalid {field}: {raw}")).into());
        }
        Ok(raw.to_owned())
    }

    fn account_permissions(&self) -> Permissions {
        if self.config.identity.all_accounts_free {
            Permissions::NONE.with(Permission::FreeAccount)
        } else {
            Permissions::NONE
        }
    }

    async fn create_account(
        &self,
        actor: Option<&Actor>,
        username: String,
        hotkey: Option<String>,
        coldkey: Option<String>,
    ) -> Result<(User, String), IdentityError> {
        let fingerprint = self.secrets.new_fingerprint();
        let new = NewUser {
            id: self.ids.new_id(),
            username: Some(username),
            email: None,
            first_name: None,
            last_name: None,
            password_hash: None,
            hotkey,
            coldkey,
            fingerprint_digest: Some(self.secrets.fingerprint_digest(&fingerprint)),
            permissions: self.account_permissions(),
            tier_id: None,
            manager_id: None,
            must_change_password: false,
            created_by: actor.map(Actor::principal_id),
            now: self.now(),
            default_wallet: self.accounts.default_wallet(),
            audit: None,
        };
        let user = self.accounts.insert(actor, new).await?;
        Ok((user, fingerprint))
    }

    /// `POST /users/register`: a Bittensor account whose hotkey signed the request. Returns
    /// the fingerprint, shown once.
    pub async fn register(
        &self,
        signed: &SignedRequest,
        input: Registration,
    ) -> Result<CreatedAccount, IdentityError> {
        if self.verify_signed(signed).await? != Credential::Full {
            return Err(IdentityError::MissingPayload);
        }
        match self.users.find_by_hotkey(&signed.hotkey).await {
            Ok(_) => {
                return Err(IdentityError::Failure(Failure::Conflict(
                    Conflict::DuplicateHotkey,
                )))
            }
            Err(RepoError::NotFound) => {}
            Err(other) => return Err(other.into()),
        }
        let hotkey = self.ss58("hotkey", &signed.hotkey)?;
        let username = self.chutes_username(&input.username)?;
        let coldkey = self.ss58("coldkey", &input.coldkey)?;
        // Taken names are refused before the attempt counts against the throttle (the insert
        // still settles races through the unique index).
        match self.users.find_by_username(&username).await {
            Ok(_) => {
                return Err(IdentityError::Failure(Failure::Conflict(
                    Conflict::DuplicateUsername,
                )))
            }
            Err(RepoError::NotFound) => {}
            Err(other) => return Err(other.into()),
        }
        let limit = self.config.identity.registrations_per_ip_per_day;
        self.ensure_daily_allowance("register", &input.client_ip, limit)
            .await?;
        let (user, fingerprint) = self
            .create_account(None, username, Some(hotkey), Some(coldkey))
            .await?;
        self.spend_daily_allowance("register", &input.client_ip)
            .await?;
        Ok(CreatedAccount {
            user,
            fingerprint,
            api_key: None,
        })
    }

    /// `POST /users/create_user`: an account without Bittensor keys, made by a user with
    /// `create_user`, with its fingerprint and an admin API key named "default", shown once.
    pub async fn create_account_for(
        &self,
        actor: &Actor,
        username: &str,
        client_ip: &str,
    ) -> Result<CreatedAccount, IdentityError> {
        policy::authorize(actor, Access::Write)?;
        if !(actor.has(Permission::CreateUser) || actor.is_admin()) {
            return Err(IdentityError::Failure(Failure::Forbidden {
                code: "forbidden",
                message: "This action can only be performed by user admin accounts.",
            }));
        }
        let username = self.chutes_username(username)?;
        // Counted per client address only once the caller may create accounts, and only when
        // one is created: nobody else can spend the administrators' allowance.
        let limit = self.config.identity.created_accounts_per_ip_per_day;
        self.ensure_daily_allowance("create_user", client_ip, limit)
            .await?;
        let (user, fingerprint) = self
            .create_account(Some(actor), username, None, None)
            .await?;
        self.spend_daily_allowance("create_user", client_ip).await?;
        let key = self
            .issue_key(
                Some(actor),
                &user,
                ApiKeyInput {
                    name: "default".to_owned(),
                    admin: true,
                    scopes: Vec::new(),
                },
            )
            .await?;
        Ok(CreatedAccount {
            user,
            fingerprint,
            api_key: Some(key),
        })
    }

    /// `GET /users/name_check`: Chutes' rule, availability compared case-insensitively.
    pub async fn chutes_name_check(&self, username: &str) -> Result<(bool, bool), IdentityError> {
        if self.chutes_username(username).is_err() {
            return Ok((false, false));
        }
        match self.users.find_by_username(username).await {
            Ok(_) => Ok((true, false)),
            Err(RepoError::NotFound) => Ok((true, true)),
            Err(other) => Err(other.into()),
        }
    }

    // ---- fingerprints and keys ------------------------------------------------------------

    /// `POST /users/change_fingerprint`: a hotkey or coldkey signature over
    /// `{key}:{fingerprint}:{nonce}` replaces the fingerprint. Each key is verified against
    /// itself; the coldkey is tried first. Tokens issued before stop working.
    pub async fn rotate_fingerprint(
        &self,
        rotation: FingerprintRotation,
    ) -> Result<(), IdentityError> {
        let window = self.config.identity.rotation_window_secs;
        if rotation.signature.len() > 256
            || hex_body(&rotation.signature).is_none_or(|h| h.is_empty())
        {
            return Err(IdentityError::MalformedSignature);
        }
        let nonce = self.check_nonce(&rotation.nonce, window, true)?;
        if rotation.coldkey.is_none() && rotation.hotkey.is_none() {
            return Err(IdentityError::MissingKey);
        }
        let fingerprint = rotation.fingerprint;
        check_fingerprint_strength(&fingerprint)?;
        let mut target = None;
        let mut last_error = IdentityError::UnknownKey;
        let candidates = [(rotation.coldkey, true), (rotation.hotkey, false)];
        for (key, is_coldkey) in candidates {
            let Some(key) = key else { continue };
            let message = format!("{key}:{fingerprint}:{}", rotation.nonce);
            if let Err(e) = self.verify(&key, &message, &rotation.signature) {
                last_error = e;
                continue;
            }
            let found = if is_coldkey {
                let mut holders = self.users.find_by_coldkey(&key, 2).await?;
                holders.retain(|u| u.is_active() && !u.is_managed());
                match holders.len() {
                    1 => holders.pop(),
                    0 => None,
                    // One coldkey may fund several accounts; it cannot say which to change.
                    _ => {
                        last_error =
                            IdentityError::Failure(Failure::Conflict(Conflict::DuplicateHotkey));
                        None
                    }
                }
            } else {
                match self.users.find_by_hotkey(&key).await {
                    Ok(u) if u.is_active() && !u.is_managed() => Some(u),
                    Ok(_) | Err(RepoError::NotFound) => None,
                    Err(other) => return Err(other.into()),
                }
            };
            if let Some(user) = found {
                target = Some(user);
                break;
            }
            if !matches!(last_error, IdentityError::Failure(Failure::Conflict(_))) {
                last_error = IdentityError::UnknownKey;
            }
        }
        let user = target.ok_or(last_error)?;
        self.claim_once(&rotation.signature, nonce, window).await?;
        let now = self.now();
        let changes = UserChanges {
            fingerprint_digest: Some(self.secrets.fingerprint_digest(&fingerprint)),
            tokens_valid_after: Some(now),
            revoke_sessions: crate::model::RevokeSessions::All,
            ..UserChanges::default()
        };
        self.accounts
            .apply(None, &user, AuditAction::UserUpdated, changes)
            .await?;
        Ok(())
    }

    /// `POST /users/change_bt_auth`: the fingerprint sets a coldkey and/or hotkey, each signed
    /// by itself over [`key_change_message`] (proof that its holder attaches it). Invalid values
    /// of one key are ignored when the other changes (as in Chutes); a hotkey held by another
    /// user is a conflict.
    pub async fn change_keys(
        &self,
        fingerprint: &str,
        change: KeyChange,
        client_ip: &str,
    ) -> Result<User, IdentityError> {
        let user = self.user_by_fingerprint(fingerprint, client_ip).await?;
        let username = user.username.clone().unwrap_or_default();
        let window = self.config.identity.signature_window_secs;
        let nonce = change.nonce.as_deref().unwrap_or_default();
        let proven = |key: &str, signature: Option<&str>| -> Result<(), IdentityError> {
            let signature = signature.ok_or_else(|| {
                IdentityError::from(ValidationError::new(
                    "signature",
                    "each new key must sign {key}:{nonce}:change_bt_auth:{username}",
                ))
            })?;
            self.verify(key, &key_change_message(key, nonce, &username), signature)
        };
        let mut changes = UserChanges::default();
        let mut first_error: Option<IdentityError> = None;
        let mut signatures = Vec::new();
        if let Some(raw) = change.coldkey.as_deref() {
            match self.ss58("coldkey", raw) {
                Ok(coldkey) => {
                    self.check_nonce(nonce, window, false)?;
                    proven(&coldkey, change.coldkey_signature.as_deref())?;
                    signatures.extend(change.coldkey_signature.clone());
                    changes.coldkey = Some(Some(coldkey));
                }
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        if let Some(raw) = change.hotkey.as_deref() {
            match self.ss58("hotkey", raw) {
                Ok(hotkey) => {
                    self.check_nonce(nonce, window, false)?;
                    proven(&hotkey, change.hotkey_signature.as_deref())?;
                    match self.users.find_by_hotkey(&hotkey).await {
                        Ok(holder) if holder.id != user.id => {
                            return Err(IdentityError::Failure(Failure::Conflict(
                                Conflict::DuplicateHotkey,
                            )))
                        }
                        Ok(_) | Err(RepoError::NotFound) => {}
                        Err(other) => return Err(other.into()),
                    }
                    signatures.extend(change.hotkey_signature.clone());
                    changes.hotkey = Some(Some(hotkey));
                }
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        if changes.is_empty() {
            return Err(first_error.unwrap_or_else(|| {
                ValidationError::new(
                    "body",
                    "Invalid request, please provide a coldkey and/or hotkey",
                )
                .into()
            }));
        }
        if let Ok(nonce_value) = self.check_nonce(nonce, window, false) {
            for signature in &signatures {
                self.claim_once(signature, nonce_value, window).await?;
            }
        }
        let actor = Actor::direct(user.clone(), None);
        Ok(self
            .accounts
            .apply(Some(&actor), &user, AuditAction::UserUpdated, changes)
            .await?)
    }

    /// `DELETE /users/me` on the Chutes surface: the fingerprint purges its own account.
    pub async fn purge_by_fingerprint(
        &self,
        fingerprint: &str,
        client_ip: &str,
    ) -> Result<(), IdentityError> {
        let user = self.user_by_fingerprint(fingerprint, client_ip).await?;
        let actor = Actor::direct(user.clone(), None);
        Ok(self.accounts.purge_unchecked(&actor, &user).await?)
    }

    /// `GET /users/set_logo`: the caller's logo.
    pub async fn set_logo(&self, actor: &Actor, logo_id: Uuid) -> Result<User, IdentityError> {
        self.change_own(
            actor,
            UserChanges {
                logo_id: Some(Some(logo_id)),
                ..UserChanges::default()
            },
        )
        .await
    }

    /// `PUT /users/squad_access`: whether tokens of the trusted external issuer may read the
    /// caller's data.
    pub async fn set_squad_access(
        &self,
        actor: &Actor,
        enabled: bool,
    ) -> Result<User, IdentityError> {
        self.change_own(
            actor,
            UserChanges {
                squad_enabled: Some(enabled),
                ..UserChanges::default()
            },
        )
        .await
    }

    async fn change_own(&self, actor: &Actor, changes: UserChanges) -> Result<User, IdentityError> {
        policy::authorize(actor, Access::Write)?;
        if actor.is_delegated() {
            return Err(not_for_this_credential());
        }
        let user = actor.user.clone();
        Ok(self
            .accounts
            .apply(Some(actor), &user, AuditAction::UserUpdated, changes)
            .await?)
    }

    /// `GET /users/user_id_lookup`: a user id by exact username, for billing administrators.
    pub async fn user_id_lookup(
        &self,
        actor: &Actor,
        username: &str,
    ) -> Result<Uuid, IdentityError> {
        policy::authorize(actor, Access::Read)?;
        if !(actor.has(Permission::BillingAdmin) || actor.is_admin()) {
            return Err(IdentityError::Failure(Failure::Forbidden {
                code: "forbidden",
                message: "This action can only be performed by billing admin accounts.",
            }));
        }
        // A name no user can have (control characters, NUL, too long) names nobody.
        if !crate::values::may_name_a_user(username) {
            return Err(IdentityError::NotFound);
        }
        let user = self.users.find_by_username(username).await?;
        // Exact and case-sensitive, like Chutes; deleted users are not looked up.
        if user.username.as_deref() != Some(username) || user.deleted_at.is_some() {
            return Err(IdentityError::NotFound);
        }
        Ok(user.id)
    }

    // ---- API keys -------------------------------------------------------------------------

    async fn issue_key(
        &self,
        actor: Option<&Actor>,
        owner: &User,
        input: ApiKeyInput,
    ) -> Result<IssuedApiKey, IdentityError> {
        let name = input.name.trim().to_owned();
        if name.is_empty()
            || name.chars().count() > MAX_KEY_NAME
            || name.chars().any(char::is_control)
        {
            return Err(ValidationError::new(
                "name",
                format!("name must be 1 to {MAX_KEY_NAME} printable characters"),
            )
            .into());
        }
        if input.scopes.len() > ApiKeyScope::ALL.len() * 4 {
            return Err(ValidationError::new("scopes", "too many scopes").into());
        }
        let mut scopes = ApiKeyScopes::default();
        for (i, raw) in input.scopes.iter().enumerate() {
            let scope = ApiKeyScope::parse(raw).ok_or_else(|| {
                ValidationError::new(
                    format!("scopes.{i}"),
                    "scope must be one of: read, metering, deposits",
                )
            })?;
            scopes = scopes.with(scope);
        }
        if (scopes.contains(ApiKeyScope::Metering) || scopes.contains(ApiKeyScope::Deposits))
            && !(owner.permissions.has(Permission::BillingAdmin) || owner.permissions.is_admin())
        {
            return Err(IdentityError::Failure(Failure::Forbidden {
                code: "forbidden",
                message: "only billing administrators may hold metering or deposits keys",
            }));
        }
        let existing = self.api_keys.list(owner.id).await?;
        if existing.len() >= self.config.identity.max_api_keys_per_user {
            return Err(IdentityError::Failure(Failure::Conflict(Conflict::TooMany)));
        }
        let id = self.ids.new_id();
        let secret = format!(
            "{API_KEY_PREFIX}{}.{}.{}",
            id.simple(),
            owner.id.simple(),
            self.secrets.new_fingerprint()
        );
        let key = self
            .api_keys
            .create(NewApiKey {
                id,
                user_id: owner.id,
                name: name.clone(),
                admin: input.admin,
                scopes,
                digest: self.secrets.digest(&secret),
                now: self.now(),
                audit: Some(audit::event(
                    self.ids.new_id(),
                    self.clock.now(),
                    actor,
                    Some(owner.id),
                    AuditAction::ApiKeyCreated,
                    audit::changes([
                        ("api_key_id", None, Some(id.to_string())),
                        ("name", None, Some(name)),
                        ("admin", None, Some(input.admin.to_string())),
                        ("scopes", None, Some(scopes.names().join(","))),
                    ]),
                )),
            })
            .await?;
        Ok(IssuedApiKey { key, secret })
    }

    /// `POST /api/v1/me/api-keys`: a new key for the caller; its secret is shown once.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        input: ApiKeyInput,
    ) -> Result<IssuedApiKey, IdentityError> {
        policy::authorize(actor, Access::Account)?;
        self.issue_key(Some(actor), &actor.user, input).await
    }

    /// `GET /api/v1/me/api-keys`: the caller's keys, without secrets.
    pub async fn list_api_keys(&self, actor: &Actor) -> Result<Vec<ApiKey>, IdentityError> {
        policy::authorize(actor, Access::Read)?;
        if actor.is_delegated() {
            return Err(not_for_this_credential());
        }
        Ok(self.api_keys.list(actor.id()).await?)
    }

    /// `DELETE /api/v1/me/api-keys/{id}`: the key stops working at once.
    pub async fn revoke_api_key(&self, actor: &Actor, key_id: Uuid) -> Result<(), IdentityError> {
        policy::authorize(actor, Access::Account)?;
        let event = audit::event(
            self.ids.new_id(),
            self.clock.now(),
            Some(actor),
            Some(actor.id()),
            AuditAction::ApiKeyRevoked,
            audit::changes([("api_key_id", Some(key_id.to_string()), None)]),
        );
        Ok(self
            .api_keys
            .revoke(actor.id(), key_id, Some(event))
            .await?)
    }
}

/// A fingerprint its holder chooses: long enough and varied enough that guessing it is hopeless
/// at the throttled rate, and printable.
fn check_fingerprint_strength(fingerprint: &str) -> Result<(), IdentityError> {
    let len = fingerprint.chars().count();
    let distinct = fingerprint
        .chars()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if !(MIN_FINGERPRINT..=MAX_FINGERPRINT).contains(&len)
        || fingerprint.chars().any(char::is_control)
        || distinct < MIN_FINGERPRINT_DISTINCT
    {
        return Err(ValidationError::new(
            "fingerprint",
            format!(
                "fingerprint must be {MIN_FINGERPRINT} to {MAX_FINGERPRINT} printable characters \
                 with at least {MIN_FINGERPRINT_DISTINCT} different ones"
            ),
        )
        .into());
    }
    Ok(())
}

fn not_for_this_credential() -> IdentityError {
    IdentityError::Failure(Failure::Forbidden {
        code: "credential_not_allowed",
        message: "this credential cannot do that",
    })
}

/// A hex signature without its optional `0x`, or `None` when it is not hex.
fn hex_body(signature: &str) -> Option<&str> {
    let body = signature
        .strip_prefix("0x")
        .or_else(|| signature.strip_prefix("0X"))
        .unwrap_or(signature);
    body.bytes().all(|b| b.is_ascii_hexdigit()).then_some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chutes_usernames_follow_the_3_to_15_rule() {
        assert!(is_chutes_username("abc"));
        assert!(is_chutes_username("a_b-c123456789X"));
        assert!(!is_chutes_username("ab"));
        assert!(!is_chutes_username("abcdefghijklmnop"));
        assert!(!is_chutes_username("ab.c"));
        assert!(!is_chutes_username("ab c"));
        assert!(!is_chutes_username("äbc"));
    }

    #[test]
    fn weak_fingerprints_are_refused() {
        assert!(check_fingerprint_strength("abcdefgh").is_err());
        assert!(check_fingerprint_strength(&"ab".repeat(10)).is_err());
        assert!(check_fingerprint_strength("correct-horse-battery").is_ok());
        assert!(check_fingerprint_strength("0123456789abcdef\n").is_err());
    }

    #[test]
    fn hex_bodies() {
        assert_eq!(hex_body("0xAbC1"), Some("AbC1"));
        assert_eq!(hex_body("zz"), None);
    }
}
