use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tessera_domain::model::AccessClaims;
use tessera_domain::ports::TokenCodec;
use tessera_domain::Cause;
use time::OffsetDateTime;
use uuid::Uuid;

const ISSUER: &str = "tessera";
/// Clock skew tolerated between server processes, in seconds.
const LEEWAY_SECS: u64 = 5;

/// Whether a token claims to be issued after `now` (beyond the leeway): Tessera never issues
/// such tokens, so one is forged or from a badly wrong clock.
pub(crate) fn issued_in_the_future(iat: i64) -> bool {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    iat > now.saturating_add(LEEWAY_SECS as i64)
}

/// HS256 access tokens. Only HS256 is accepted: `alg: none`, other algorithms and other keys
/// all fail verification. Tokens not yet valid — an `nbf` or `iat` in the future, beyond a few
/// seconds of clock skew — are refused too.
pub struct JwtCodec {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: Uuid,
    sid: Uuid,
    iat: i64,
    exp: i64,
    scope: String,
    /// Delegated tokens: the acting principal (RFC 8693 names the claim `act`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    act: Option<Uuid>,
}

impl JwtCodec {
    /// The secret must be at least 32 bytes: HS256 is only as strong as its key.
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < 32 {
            return Err("the JWT secret must be at least 32 bytes long".into());
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss"]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        })
    }
}

impl TokenCodec for JwtCodec {
    fn encode(&self, claims: &AccessClaims) -> Result<String, Cause> {
        let body = Claims {
            iss: ISSUER.to_owned(),
            sub: claims.subject,
            sid: claims.session_id,
            iat: claims.issued_at.unix_timestamp(),
            exp: claims.expires_at.unix_timestamp(),
            scope: claims.scope.clone(),
            act: claims.actor,
        };
        encode(&Header::new(Algorithm::HS256), &body, &self.encoding).map_err(Cause::new)
    }

    fn decode(&self, token: &str) -> Option<AccessClaims> {
        // Bound the work an attacker can make us do before signature checking.
        if token.len() > 4096 {
            return None;
        }
        let data = decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let c = data.claims;
        if issued_in_the_future(c.iat) {
            return None;
        }
        Some(AccessClaims {
            subject: c.sub,
            session_id: c.sid,
            issued_at: OffsetDateTime::from_unix_timestamp(c.iat).ok()?,
            expires_at: OffsetDateTime::from_unix_timestamp(c.exp).ok()?,
            scope: c.scope,
            actor: c.act,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn claims(exp_in: i64) -> AccessClaims {
        let now = OffsetDateTime::now_utc();
        AccessClaims {
            subject: Uuid::now_v7(),
            session_id: Uuid::now_v7(),
            issued_at: now,
            expires_at: now + time::Duration::seconds(exp_in),
            scope: "full".into(),
            actor: None,
        }
    }

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trips_and_rejects_other_keys_and_expiry() {
        let codec = JwtCodec::new(KEY).unwrap();
        let c = claims(60);
        let token = codec.encode(&c).unwrap();
        let back = codec.decode(&token).unwrap();
        assert_eq!(back.subject, c.subject);
        assert_eq!(back.session_id, c.session_id);
        assert_eq!(back.actor, None);
        let delegated = AccessClaims {
            actor: Some(Uuid::now_v7()),
            ..c.clone()
        };
        let back = codec.decode(&codec.encode(&delegated).unwrap()).unwrap();
        assert_eq!(back.actor, delegated.actor);
        let other = JwtCodec::new(b"another-secret-another-secret-xx").unwrap();
        assert!(other.decode(&token).is_none());
        let expired = codec.encode(&claims(-60)).unwrap();
        assert!(codec.decode(&expired).is_none());
    }

    #[test]
    fn rejects_alg_none_and_tampering() {
        let codec = JwtCodec::new(KEY).unwrap();
        let token = codec.encode(&claims(60)).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        // {"alg":"none","typ":"JWT"}
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
        assert!(codec.decode(&none).is_none());
        let tampered = format!("{}.{}x.{}", parts[0], parts[1], parts[2]);
        assert!(codec.decode(&tampered).is_none());
        assert!(codec.decode("garbage").is_none());
    }

    #[test]
    fn rejects_tokens_not_yet_valid() {
        let codec = JwtCodec::new(KEY).unwrap();
        let mut c = claims(3600);
        c.issued_at += time::Duration::seconds(600);
        assert!(codec.decode(&codec.encode(&c).unwrap()).is_none());
        // Within the leeway is fine.
        let mut c = claims(3600);
        c.issued_at += time::Duration::seconds(2);
        assert!(codec.decode(&codec.encode(&c).unwrap()).is_some());
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let body = serde_json::json!({
            "iss": ISSUER, "sub": Uuid::now_v7(), "sid": Uuid::now_v7(), "iat": now,
            "exp": now + 600, "nbf": now + 300, "scope": "full",
        });
        let token = encode(
            &Header::new(Algorithm::HS256),
            &body,
            &EncodingKey::from_secret(KEY),
        )
        .unwrap();
        assert!(codec.decode(&token).is_none());
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(JwtCodec::new(b"short").is_err());
    }
}
