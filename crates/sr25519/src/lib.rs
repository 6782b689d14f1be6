//! Bittensor identities for Tessera: SS58 addresses and sr25519 signatures.
//!
//! Chutes-compatible clients authenticate by signing a message with their Bittensor hotkey (an
//! sr25519 key, addressed in SS58) and sending the signature as hex. This crate implements the
//! domain's [`SignatureVerifier`](tessera_domain::ports::SignatureVerifier) port for that scheme
//! as the `bittensor-wallet` Python package (which Chutes uses) verifies it: the `substrate`
//! signing context, and a signature over the message itself or over `<Bytes>message</Bytes>`
//! (polkadot.js style). The few places where address parsing differs are listed on
//! [`decode_ss58`]. Tests check it against fixtures made with that package.
//!
//! It also derives deposit addresses from an operator's master public key
//! ([`Sr25519PaymentAddresses`], the domain's `PaymentAddresses` port).
//!
//! It also carries [`Sr25519Keypair`], a small signing helper for tests and Rust clients.

mod derive;
mod keypair;
mod ss58;
mod verifier;

pub use derive::{MasterKeyError, Sr25519PaymentAddresses};
pub use keypair::Sr25519Keypair;
pub use ss58::{decode_ss58, encode_ss58, Ss58Error};
pub use verifier::Sr25519Verifier;

/// The signing context Substrate (and so Bittensor) uses for sr25519 signatures.
pub const SIGNING_CONTEXT: &[u8] = b"substrate";
