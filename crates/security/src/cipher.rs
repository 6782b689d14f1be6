//! Sealing webhook signing secrets with a key kept outside the database (`webhooks.secret_key`),
//! so that a database dump alone does not let anyone sign a webhook.
//!
//! XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`): an AEAD with 192-bit random nonces, so
//! nonces never need coordinating between processes. A sealed secret is
//! `version (1) ‖ nonce (24) ‖ ciphertext and tag`; the endpoint id is not bound in, since the
//! whole row is what an attacker with write access could swap anyway.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use tessera_domain::model::SealedSecret;
use tessera_domain::ports::SecretCipher;
use tessera_domain::Cause;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// The key that seals webhook secrets.
#[derive(Clone)]
pub struct SealingKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

/// Why a configured key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealingKeyError {
    #[error("webhooks.secret_key must be the base64 encoding of 32 bytes (e.g. `openssl rand -base64 32`)")]
    Malformed,
}

impl SealingKey {
    /// From the base64 encoding of 32 random bytes.
    pub fn from_base64(encoded: &str) -> Result<Self, SealingKeyError> {
        let bytes = BASE64
            .decode(encoded.trim())
            .map_err(|_| SealingKeyError::Malformed)?;
        if bytes.len() != 32 {
            return Err(SealingKeyError::Malformed);
        }
        let cipher =
            XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| SealingKeyError::Malformed)?;
        Ok(Self { cipher })
    }
}

impl SecretCipher for SealingKey {
    fn seal(&self, secret: &str) -> Result<SealedSecret, Cause> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, secret.as_bytes())
            .map_err(|_| Cause::from("cannot seal a webhook secret"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(SealedSecret(out))
    }

    fn open(&self, sealed: &SealedSecret) -> Result<String, Cause> {
        let bytes = &sealed.0;
        if bytes.len() < 1 + NONCE_LEN || bytes[0] != VERSION {
            return Err(Cause::from("a sealed webhook secret has an unknown format"));
        }
        let nonce: [u8; NONCE_LEN] = bytes[1..=NONCE_LEN]
            .try_into()
            .map_err(|_| Cause::from("a sealed webhook secret has an unknown format"))?;
        let plain = self
            .cipher
            .decrypt(&XNonce::from(nonce), &bytes[1 + NONCE_LEN..])
            .map_err(|_| {
                Cause::from(
                "a webhook secret does not open with webhooks.secret_key (was the key changed?)",
            )
            })?;
        String::from_utf8(plain).map_err(|_| Cause::from("an opened webhook secret is not UTF-8"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let key = SealingKey::from_base64(KEY).unwrap();
        let sealed = key.seal("whsec_abc").unwrap();
        assert!(!sealed.0.windows(9).any(|w| w == b"whsec_abc"));
        assert_eq!(key.open(&sealed).unwrap(), "whsec_abc");
        // Two seals of one secret differ (fresh nonces).
        assert_ne!(key.seal("whsec_abc").unwrap(), sealed);
        let other = SealingKey::from_base64(&BASE64.encode([9u8; 32])).unwrap();
        assert!(other.open(&sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.0.len() - 1;
        tampered.0[last] ^= 1;
        assert!(key.open(&tampered).is_err());
        assert!(key.open(&SealedSecret(vec![1, 2, 3])).is_err());
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(SealingKey::from_base64("short").is_err());
        assert!(SealingKey::from_base64(&BASE64.encode([1u8; 16])).is_err());
        assert!(SealingKey::from_base64(KEY).is_ok());
    }
}
