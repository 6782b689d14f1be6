//! Tessera's domain: users, credentials, permissions and the rules over them.
//!
//! This crate knows nothing of HTTP, SQL or cryptographic libraries. Everything outside it plugs
//! into the traits in [`ports`]; the use cases in [`services`] take the calling principal
//! ([`Actor`]) first and decide authorization themselves, through [`policy`].
//!
//! Build a [`Tessera`] from a set of ports (the `tessera-memory` crate provides in-memory ones)
//! and call its services; see `docs/embedding.md`.

pub mod actor;
pub mod app;
pub mod counters;
pub mod directory;
pub mod error;
pub mod model;
pub mod policy;
pub mod ports;
pub mod services;
pub mod values;

pub use actor::{Actor, Credential};
pub use app::{DepositConfig, IdentityConfig, Ports, Tessera, TesseraConfig};
pub use error::{
    AuthError, Cause, Conflict, Denied, Failure, IdentityError, MeteringError, RepoError,
    UserError, ValidationError, WalletError, WebhookError,
};
