//! Credential adapters for Tessera's security ports: argon2id password hashing on a bounded
//! blocking pool, HS256 access tokens, CSPRNG secrets with their storage digests, and the
//! sealing of webhook signing secrets.

mod cipher;
mod external;
mod password;
mod secrets;
mod token;

pub use cipher::{SealingKey, SealingKeyError};
pub use external::ExternalIssuer;
pub use password::{Argon2Hasher, Argon2Settings};
pub use secrets::RandomSecrets;
pub use token::JwtCodec;
