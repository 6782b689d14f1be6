use std::fmt;

use schnorrkel::{ExpansionMode, Keypair, MiniSecretKey};

use crate::{encode_ss58, SIGNING_CONTEXT};

/// An sr25519 signing key, for tests and Rust clients that talk to a Chutes-style API.
///
/// Keys derive from a 32-byte mini-secret the way Substrate does (Ed25519 expansion), so a seed
/// gives the same key here as in `bittensor-wallet`'s `Keypair.create_from_seed`.
#[derive(Clone)]
pub struct Sr25519Keypair {
    inner: Keypair,
}

impl Sr25519Keypair {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self::from_mini_secret(&MiniSecretKey::generate())
    }

    /// The key Substrate derives from the 32-byte mini-secret `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        match MiniSecretKey::from_bytes(seed) {
            Ok(secret) => Self::from_mini_secret(&secret),
            // schnorrkel only rejects slices that are not 32 bytes long.
            Err(_) => unreachable!("a 32-byte mini-secret always parses"),
        }
    }

    fn from_mini_secret(secret: &MiniSecretKey) -> Self {
        Self {
            inner: secret.expand_to_keypair(ExpansionMode::Ed25519),
        }
    }

    /// The 32-byte public key.
    pub fn public(&self) -> [u8; 32] {
        self.inner.public.to_bytes()
    }

    /// The SS58 address of the public key with network `prefix` (42 for Bittensor).
    pub fn ss58(&self, prefix: u16) -> String {
        encode_ss58(&self.public(), prefix)
    }

    /// Signs `message` in the `substrate` context; returns the 64-byte signature as lowercase hex.
    pub fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.inner.sign_simple(SIGNING_CONTEXT, message).to_bytes())
    }
}

impl fmt::Debug for Sr25519Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sr25519Keypair")
            .field("public", &hex::encode(self.public()))
            .finish_non_exhaustive()
    }
}
