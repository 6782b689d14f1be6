use async_trait::async_trait;

use crate::error::Cause;
use crate::model::AccessClaims;

/// Password hashing. Implementations must run the work off the request threads on a bounded
/// pool, and must cost the same whether or not there is a hash to verify against.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// Hash a plaintext into a self-describing string (PHC format for argon2id).
    /// A failure (the hashing pool gone, a hash that cannot be built) is an internal one.
    async fn hash(&self, password: &str) -> Result<String, Cause>;

    /// Whether `password` matches `hash`. With no hash (unknown user, or a user without a
    /// password) it still performs one full verification against a dummy hash and answers
    /// `false`, so the two cases cannot be told apart by timing.
    async fn verify<'a>(&self, password: &str, hash: Option<&'a str>) -> Result<bool, Cause>;
}

/// Encoding and checking of access tokens.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait TokenCodec: Send + Sync {
    fn encode(&self, claims: &AccessClaims) -> Result<String, Cause>;
    /// Checks signature, algorithm and time validity. `None` for anything that does not verify.
    fn decode(&self, token: &str) -> Option<AccessClaims>;
}

/// Random secrets and their storage digests.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait SecretGenerator: Send + Sync {
    /// A high-entropy opaque token (refresh tokens, API keys): at least 256 bits, URL-safe.
    fn new_token(&self) -> String;
    /// A webhook signing secret in the Standard Webhooks form: `whsec_` and the base64 of 32
    /// bytes from a CSPRNG.
    fn new_webhook_secret(&self) -> String;
    /// A temporary password a person can type, from a CSPRNG.
    fn new_password(&self) -> String;
    /// The digest under which a high-entropy token is stored and looked up.
    fn digest(&self, token: &str) -> String;
    /// A Chutes fingerprint: 32 characters of `[A-Za-z0-9]` from a CSPRNG.
    fn new_fingerprint(&self) -> String;
    /// How fingerprints are stored: lowercase hex BLAKE2b-512 of the UTF-8 string (Chutes'
    /// `fingerprint_hash`, so existing hashes stay valid).
    fn fingerprint_digest(&self, fingerprint: &str) -> String;
}

/// Tokens minted by a trusted external issuer (Chutes' "squad" platform), verified with the
/// issuer's public key.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait ExternalTokenVerifier: Send + Sync {
    /// The user id the token speaks for, when it verifies (signature, algorithm, issuer,
    /// `exp` and `iat` present and valid). `None` otherwise.
    fn verify(&self, token: &str) -> Option<uuid::Uuid>;
}
