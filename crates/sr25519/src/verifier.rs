use schnorrkel::{PublicKey, Signature, SIGNATURE_LENGTH};
use tessera_domain::ports::{SignatureCheck, SignatureVerifier};

use crate::{decode_ss58, SIGNING_CONTEXT};

const WRAP_OPEN: &[u8] = b"<Bytes>";
const WRAP_CLOSE: &[u8] = b"</Bytes>";

/// Verifies sr25519 signatures made by SS58-addressed keys (Bittensor hotkeys and coldkeys).
///
/// A valid SS58 address whose bytes are not a valid sr25519 public key (not a Ristretto point)
/// cannot have signed anything: `verify` answers [`SignatureCheck::Mismatch`] for it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sr25519Verifier;

impl Sr25519Verifier {
    pub fn new() -> Self {
        Self
    }
}

impl SignatureVerifier for Sr25519Verifier {
    fn is_valid_address(&self, address: &str) -> bool {
        decode_ss58(address).is_ok()
    }

    fn verify(&self, address: &str, message: &[u8], signature_hex: &str) -> SignatureCheck {
        let Some(signature) = parse_signature(signature_hex) else {
            return SignatureCheck::MalformedSignature;
        };
        let Ok((public, _prefix)) = decode_ss58(address) else {
            return SignatureCheck::MalformedAddress;
        };
        let Ok(public) = PublicKey::from_bytes(&public) else {
            return SignatureCheck::Mismatch;
        };
        let signed = |data: &[u8]| {
            public
                .verify_simple(SIGNING_CONTEXT, data, &signature)
                .is_ok()
        };
        if signed(message) {
            return SignatureCheck::Valid;
        }
        let mut wrapped = Vec::with_capacity(WRAP_OPEN.len() + message.len() + WRAP_CLOSE.len());
        wrapped.extend_from_slice(WRAP_OPEN);
        wrapped.extend_from_slice(message);
        wrapped.extend_from_slice(WRAP_CLOSE);
        if signed(&wrapped) {
            SignatureCheck::Valid
        } else {
            SignatureCheck::Mismatch
        }
    }
}

/// 64 bytes of hex, either letter case, optional `0x`; also a well-formed sr25519 encoding
/// (the schnorrkel marker bit set, a canonical scalar).
fn parse_signature(signature_hex: &str) -> Option<Signature> {
    let digits = signature_hex.strip_prefix("0x").unwrap_or(signature_hex);
    if digits.len() != SIGNATURE_LENGTH * 2 {
        return None;
    }
    let mut bytes = [0u8; SIGNATURE_LENGTH];
    hex::decode_to_slice(digits, &mut bytes).ok()?;
    Signature::from_bytes(&bytes).ok()
}
