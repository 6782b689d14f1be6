/// The outcome of checking a Bittensor (sr25519) signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    /// The signature is valid for the address, over the message or over
    /// `<Bytes>message</Bytes>`.
    Valid,
    /// The signature is not 64 bytes of hex (either letter case, optional `0x`).
    MalformedSignature,
    /// The address is not a valid SS58 address of a 32-byte public key.
    MalformedAddress,
    /// Well-formed, but not made by this key over this message.
    Mismatch,
}

/// Verification of sr25519 signatures by SS58-addressed keys (Bittensor hotkeys and coldkeys).
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait SignatureVerifier: Send + Sync {
    /// Whether `address` is a well-formed SS58 address: base58, a valid checksum, any network
    /// prefix, a 32-byte public key.
    fn is_valid_address(&self, address: &str) -> bool;

    /// Checks `signature_hex` against `address` for `message`, in the `substrate` signing
    /// context, accepting a signature over the message itself or over `<Bytes>message</Bytes>`.
    fn verify(&self, address: &str, message: &[u8], signature_hex: &str) -> SignatureCheck;
}
