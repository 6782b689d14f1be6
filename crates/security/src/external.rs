//! Tokens of a trusted external issuer (Chutes' "squad" platform): RS256 or EdDSA, verified
//! with the issuer's public key; `exp`, `iat`, `iss` and `sub` are required, and tokens not yet
//! valid (`nbf` or `iat` in the future) are refused.

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tessera_domain::ports::ExternalTokenVerifier;
use uuid::Uuid;

pub struct ExternalIssuer {
    key: DecodingKey,
    validation: Validation,
}

#[derive(Deserialize)]
struct Claims {
    sub: Uuid,
    iat: i64,
}

impl ExternalIssuer {
    /// `public_key_pem`: an RSA (RS256) or Ed25519 (EdDSA) public key in PEM. Only that one
    /// algorithm is then accepted, so HS256 tokens "signed" with the public key fail.
    pub fn from_pem(issuer: &str, public_key_pem: &str) -> Result<Self, String> {
        let pem = public_key_pem.as_bytes();
        let (key, algorithm) = match DecodingKey::from_rsa_pem(pem) {
            Ok(key) => (key, Algorithm::RS256),
            Err(_) => match DecodingKey::from_ed_pem(pem) {
                Ok(key) => (key, Algorithm::EdDSA),
                Err(e) => {
                    return Err(format!(
                        "the issuer key is neither RSA nor Ed25519 PEM: {e}"
                    ))
                }
            },
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        validation.leeway = 5;
        validation.validate_nbf = true;
        Ok(Self { key, validation })
    }
}

impl ExternalTokenVerifier for ExternalIssuer {
    fn verify(&self, token: &str) -> Option<Uuid> {
        if token.len() > 8192 {
            return None;
        }
        decode::<Claims>(token, &self.key, &self.validation)
            .ok()
            .filter(|data| !crate::token::issued_in_the_future(data.claims.iat))
            .map(|data| data.claims.sub)
    }
}
