//! Session tokens: HS256 JWTs that name a server-side session.
//!
//! The algorithm is pinned (a token claiming any other is refused), `exp` is
//! required, and expiry is checked against the injected clock with a small
//! leeway so that tests can expire tokens without sleeping.

use crate::config::Secret;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Clock skew tolerated on `exp`, in seconds.
pub const LEEWAY_SECS: i64 = 5;

/// The claims Ballast puts in a session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a string per RFC 7519.
    pub sub: String,
    /// The session id; the session row decides whether the token still works.
    pub sid: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Always "ballast".
    pub iss: String,
}

/// Signs and verifies session tokens.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(<redacted>)")
    }
}

/// Why a token was refused. Never shown in detail to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Bad signature, wrong algorithm, malformed, or missing claims.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
}

impl JwtKeys {
    /// Keys from a shared secret. Refuses an empty one, the only secret
    /// that HMAC cannot use.
    pub fn new(secret: &Secret) -> Result<JwtKeys, JwtError> {
        let bytes = secret.expose().as_bytes();
        let invalid = |e: jsonwebtoken::errors::Error| JwtError::Invalid(e.to_string());
        Ok(JwtKeys {
            encoding: EncodingKey::from_secret(bytes).map_err(invalid)?,
            decoding: DecodingKey::from_secret(bytes).map_err(invalid)?,
        })
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, JwtError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| JwtError::Invalid(e.to_string()))
    }

    /// Verifies a token's signature, algorithm, issuer and expiry at `now_ms`.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Claims, JwtError> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the injected clock.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.set_issuer(&["ballast"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| JwtError::Invalid(e.to_string()))?;
        if data
            .claims
            .exp
            .saturating_add(LEEWAY_SECS)
            .saturating_mul(1000)
            < now_ms
        {
            return Err(JwtError::Expired);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "1".into(),
            sid: "s".into(),
            iat: 0,
            exp,
            iss: "ballast".into(),
        }
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let keys = JwtKeys::new(&Secret::new("k".repeat(64))).unwrap();
        let token = keys.sign(&claims(1_000)).unwrap();
        assert_eq!(keys.verify(&token, 1_000_000).unwrap().sub, "1");
        assert_eq!(
            keys.verify(&token, 1_000_000 + LEEWAY_SECS * 1000)
                .unwrap()
                .sub,
            "1"
        );
        assert_eq!(
            keys.verify(&token, 1_000_000 + LEEWAY_SECS * 1000 + 1),
            Err(JwtError::Expired)
        );
    }

    #[test]
    fn another_secret_or_algorithm_is_refused() {
        let keys = JwtKeys::new(&Secret::new("k".repeat(64))).unwrap();
        let other = JwtKeys::new(&Secret::new("x".repeat(64))).unwrap();
        let forged = other.sign(&claims(i64::MAX / 2000)).unwrap();
        assert!(matches!(keys.verify(&forged, 0), Err(JwtError::Invalid(_))));

        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(i64::MAX / 2000),
            &EncodingKey::from_secret("k".repeat(64).as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(matches!(keys.verify(&hs512, 0), Err(JwtError::Invalid(_))));
    }
}
