//! Bittensor identities, fingerprints and API keys.

use time::OffsetDateTime;
use uuid::Uuid;

/// What a non-admin API key may do. Admin keys carry the user's full rights instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiKeyScope {
    /// Read the owner's own data.
    Read,
    /// Report metered consumption (`POST /api/v1/usage`); only for owners with `billing_admin`.
    Metering,
    /// Report confirmed TAO deposits (`POST /api/v1/deposits`); only for owners with
    /// `billing_admin`. Grants nothing else.
    Deposits,
}

impl ApiKeyScope {
    pub const ALL: [ApiKeyScope; 3] = [Self::Read, Self::Metering, Self::Deposits];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Metering => "metering",
            Self::Deposits => "deposits",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    const fn bit(self) -> u8 {
        match self {
            Self::Read => 1,
            Self::Metering => 2,
            Self::Deposits => 4,
        }
    }
}

/// A set of [`ApiKeyScope`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ApiKeyScopes(u8);

impl ApiKeyScopes {
    pub fn contains(self, scope: ApiKeyScope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn with(self, scope: ApiKeyScope) -> Self {
        Self(self.0 | scope.bit())
    }

    pub fn may_read(self) -> bool {
        self.contains(ApiKeyScope::Read)
    }

    pub fn iter(self) -> impl Iterator<Item = ApiKeyScope> {
        ApiKeyScope::ALL
            .into_iter()
            .filter(move |s| self.contains(*s))
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(ApiKeyScope::as_str).collect()
    }
}

impl FromIterator<ApiKeyScope> for ApiKeyScopes {
    fn from_iter<I: IntoIterator<Item = ApiKeyScope>>(iter: I) -> Self {
        iter.into_iter().fold(Self::default(), Self::with)
    }
}

/// An API key as stored; its secret exists only in the creation response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// Admin keys act with the owner's full rights; others only within `scopes`.
    pub admin: bool,
    pub scopes: ApiKeyScopes,
    pub created_at: OffsetDateTime,
    /// Accurate to [`API_KEY_TOUCH_INTERVAL`]: writing it on every request would turn every
    /// authenticated read into a write.
    pub last_used_at: Option<OffsetDateTime>,
}

/// How stale `last_used_at` may get before a use writes it again.
pub const API_KEY_TOUCH_INTERVAL: time::Duration = time::Duration::minutes(1);

/// A key to insert: the digest of its secret, never the secret.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub admin: bool,
    pub scopes: ApiKeyScopes,
    pub digest: String,
    pub now: OffsetDateTime,
    /// Written with the key, in the same transaction.
    pub audit: Option<super::AuditEvent>,
}

/// A freshly created key with its secret, shown once.
#[derive(Debug, Clone)]
pub struct IssuedApiKey {
    pub key: ApiKey,
    pub secret: String,
}

/// The three `X-Chutes-*` headers of a signed request, and what the server saw of the request
/// they sign. Three message forms exist (see `IdentityService::verify_signed`):
///
/// - bound to the request: `{hotkey}:{nonce}:{METHOD}:{path?query}:{sha256 hex of the body}`,
///   accepted on every route for every method;
/// - Chutes' purpose form `{hotkey}:{nonce}:{purpose}`, for reads of a route that declares a
///   purpose (`me`): it reads only;
/// - Chutes' body form `{hotkey}:{nonce}:{sha256 hex of the body}`, for state-changing requests
///   with a body on the routes the published Chutes client signs that way (registration).
#[derive(Debug, Clone)]
pub struct SignedRequest {
    pub hotkey: String,
    pub signature: String,
    pub nonce: Option<String>,
    /// The method, upper case (`POST`).
    pub method: String,
    /// The path and query exactly as the request line sent them (`/api/v1/users/me?x=1`).
    pub target: String,
    /// The lowercase hex SHA-256 of the raw body (of no bytes when there is none).
    pub body_digest: String,
    /// Whether the body had any bytes.
    pub has_body: bool,
    /// The purpose the route declares for reads (`me`), if any.
    pub purpose: Option<String>,
    /// Whether the route accepts Chutes' body form.
    pub accepts_body_form: bool,
    /// Whether the request changes state (anything but GET/HEAD/OPTIONS): its signature may be
    /// used once.
    pub state_changing: bool,
}

impl SignedRequest {
    /// The request-bound message this request must carry.
    pub fn bound_message(&self, nonce: &str) -> String {
        format!(
            "{}:{nonce}:{}:{}:{}",
            self.hotkey, self.method, self.target, self.body_digest
        )
    }
}

/// A fingerprint rotation signed by a hotkey and/or a coldkey over `{key}:{fingerprint}:{nonce}`.
#[derive(Debug, Clone)]
pub struct FingerprintRotation {
    pub hotkey: Option<String>,
    pub coldkey: Option<String>,
    pub signature: String,
    pub nonce: String,
    pub fingerprint: String,
}

/// A new Bittensor account (`POST /users/register`).
#[derive(Debug, Clone)]
pub struct Registration {
    pub username: String,
    pub coldkey: String,
    /// Where the request came from, for the per-IP registration throttle.
    pub client_ip: String,
}

/// A created account with its fingerprint (and, for admin-created users, an API key), shown
/// once.
#[derive(Debug, Clone)]
pub struct CreatedAccount {
    pub user: super::User,
    pub fingerprint: String,
    pub api_key: Option<IssuedApiKey>,
}
