//! Deposit addresses by sr25519 soft derivation from a master public key.
//!
//! The address of user `id` is the master key soft-derived along the path `/<id>`: one soft
//! junction whose text is the user id in its hyphenated lower-case form
//! (`/0191f1a2-0000-7000-8000-00000000c0de`). The junction's chain code is computed as Substrate
//! (`sp-core`, and so `bittensor-wallet` and `substrate-interface`) computes it for a text
//! junction: the SCALE encoding of the string (compact length, then the UTF-8 bytes), hashed
//! with BLAKE2b-256 because it is longer than 32 bytes. The derivation itself is schnorrkel's
//! `derived_key_simple` with that chain code and an empty extra input, as in `sp-core`. So the
//! operator derives the matching secret key offline with the same path:
//! `<master secret URI>/<user id>`.

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use schnorrkel::derive::{ChainCode, Derivation};
use schnorrkel::PublicKey;
use tessera_domain::ports::PaymentAddresses;
use uuid::Uuid;

use crate::{decode_ss58, encode_ss58, Ss58Error};

/// [`PaymentAddresses`] from an operator's master public key.
#[derive(Debug, Clone)]
pub struct Sr25519PaymentAddresses {
    master: PublicKey,
    prefix: u16,
}

/// Why a master key cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MasterKeyError {
    #[error("not an SS58 address: {0}")]
    Address(#[from] Ss58Error),
    #[error("not an sr25519 public key")]
    NotAKey,
}

impl Sr25519PaymentAddresses {
    /// From the master public key as an SS58 address; derived addresses use `prefix` (42 for
    /// Bittensor).
    pub fn from_ss58(master: &str, prefix: u16) -> Result<Self, MasterKeyError> {
        let (public, _) = decode_ss58(master.trim())?;
        Self::from_public(&public, prefix)
    }

    /// From the 32 bytes of the master public key.
    pub fn from_public(public: &[u8; 32], prefix: u16) -> Result<Self, MasterKeyError> {
        let master = PublicKey::from_bytes(public).map_err(|_| MasterKeyError::NotAKey)?;
        Ok(Self { master, prefix })
    }

    /// The derivation path of a user's address below the master key (`/<id>`).
    pub fn path_of(user_id: Uuid) -> String {
        format!("/{}", user_id.hyphenated())
    }

    /// The derived public key of a user.
    pub fn public_of(&self, user_id: Uuid) -> [u8; 32] {
        let junction = user_id.hyphenated().to_string();
        let (derived, _) = self
            .master
            .derived_key_simple(soft_chain_code(junction.as_bytes()), [] as [u8; 0]);
        derived.to_bytes()
    }
}

impl PaymentAddresses for Sr25519PaymentAddresses {
    fn address_of(&self, user_id: Uuid) -> String {
        encode_ss58(&self.public_of(user_id), self.prefix)
    }
}

/// The chain code of a soft junction made of text `bytes`, as Substrate computes it: the SCALE
/// encoding (compact length prefix, then the bytes), zero-padded to 32 bytes when it fits, else
/// its BLAKE2b-256 digest.
fn soft_chain_code(bytes: &[u8]) -> ChainCode {
    let mut encoded = compact_len(bytes.len());
    encoded.extend_from_slice(bytes);
    let mut code = [0u8; 32];
    if encoded.len() > 32 {
        code.copy_from_slice(&Blake2b::<U32>::digest(&encoded));
    } else {
        code[..encoded.len()].copy_from_slice(&encoded);
    }
    ChainCode(code)
}

/// SCALE's compact encoding of a length (the forms for up to 2^30 - 1).
fn compact_len(len: usize) -> Vec<u8> {
    let n = len as u32;
    match len {
        0..=63 => vec![(n << 2) as u8],
        64..=16_383 => (((n << 2) | 0b01) as u16).to_le_bytes().to_vec(),
        _ => ((n << 2) | 0b10).to_le_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sr25519Keypair;

    #[test]
    fn addresses_are_stable_and_distinct() {
        let master = Sr25519Keypair::from_seed(&[9u8; 32]);
        let addresses = Sr25519PaymentAddresses::from_ss58(&master.ss58(42), 42)
            .unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(addresses.address_of(a), addresses.address_of(a));
        assert_ne!(addresses.address_of(a), addresses.address_of(b));
        assert_ne!(addresses.address_of(a), master.ss58(42));
        assert!(decode_ss58(&addresses.address_of(a)).is_ok());
    }

    #[test]
    fn compact_lengths() {
        assert_eq!(compact_len(36), vec![144]);
        assert_eq!(compact_len(64), vec![0x01, 0x01]);
    }
}
