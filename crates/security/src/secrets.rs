use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use blake2::Blake2b512;
use rand::rngs::OsRng;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};
use tessera_domain::ports::SecretGenerator;

/// Secrets from the operating system's CSPRNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomSecrets;

/// Letters and digits without the look-alikes (0/O, 1/l/I), for passwords people type.
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const PASSWORD_LEN: usize = 20;

const FINGERPRINT_ALPHABET: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const FINGERPRINT_LEN: usize = 32;

impl SecretGenerator for RandomSecrets {
    fn new_token(&self) -> String {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        hex::encode(bytes)
    }

    fn new_webhook_secret(&self) -> String {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        format!("whsec_{}", BASE64.encode(bytes))
    }

    fn new_password(&self) -> String {
        (0..PASSWORD_LEN)
            .map(|_| {
                let i = OsRng.gen_range(0..PASSWORD_ALPHABET.len());
                char::from(PASSWORD_ALPHABET[i])
            })
            .collect()
    }

    /// SHA-256: these tokens carry 256 bits of entropy, so a fast unsalted digest is enough to
    /// make a stolen table useless, and it allows an indexed look-up.
    fn digest(&self, token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }

    /// 32 draws from 62 symbols, with replacement (about 190 bits): Chutes' shape, without its
    /// no-repeat rule, which only removed entropy.
    fn new_fingerprint(&self) -> String {
        (0..FINGERPRINT_LEN)
            .map(|_| {
                let i = OsRng.gen_range(0..FINGERPRINT_ALPHABET.len());
                char::from(FINGERPRINT_ALPHABET[i])
            })
            .collect()
    }

    fn fingerprint_digest(&self, fingerprint: &str) -> String {
        hex::encode(Blake2b512::digest(fingerprint.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_32_alphanumerics_and_hash_like_chutes() {
        let s = RandomSecrets;
        let fp = s.new_fingerprint();
        assert_eq!(fp.len(), 32);
        assert!(fp.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(fp, s.new_fingerprint());
        // BLAKE2b-512 of "abc" (RFC 7693, appendix A), lowercase hex, 128 characters.
        let digest = s.fingerprint_digest("abc");
        assert_eq!(digest.len(), 128);
        assert!(
            digest.starts_with("ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1")
        );
    }

    #[test]
    fn tokens_and_passwords_are_fresh_and_well_formed() {
        let s = RandomSecrets;
        let (a, b) = (s.new_token(), s.new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        let p = s.new_password();
        assert_eq!(p.chars().count(), PASSWORD_LEN);
        assert!(p.bytes().all(|c| PASSWORD_ALPHABET.contains(&c)));
        assert_ne!(p, s.new_password());
        assert_eq!(s.digest("x"), s.digest("x"));
        assert_ne!(s.digest("x"), s.digest("y"));
    }
}
