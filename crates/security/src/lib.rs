//! Credential adapters for Tessera's security ports: argon2id password hashing on a bounded
//! blocking pool, HS256 access tokens, and CSPRNG secrets with their storage digests.

mod external;
mod password;
mod secrets;
mod token;

pub use external::ExternalIssuer;
pub use password::{Argon2Hasher, Argon2Settings};
pub use secrets::RandomSecrets;
pub use token::JwtCodec;
