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

impl SecretGenerator for RandomSecrets {
    fn new_token(&self) -> String {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        hex::encode(bytes)
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
