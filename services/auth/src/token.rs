//! Issuing and verifying tokens: EdDSA JWTs with `sub`, `iss`, `aud`, `iat`, `exp`, `jti`.

use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataMap;

use crate::{AuthError, SigningKey};

/// Clock skew tolerated on `exp`, in seconds.
pub const LEEWAY_SECS: u64 = 5;

/// The claims pfc puts in every token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Username.
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// Expires at (seconds since the epoch).
    pub exp: u64,
    /// Unique token id.
    pub jti: String,
}

impl Claims {
    /// The protobuf form.
    pub fn to_proto(&self) -> pfc_proto::auth::v1::Claims {
        pfc_proto::auth::v1::Claims {
            subject: self.sub.clone(),
            issuer: self.iss.clone(),
            audience: self.aud.clone(),
            issued_at: Some(pfc_proto::timestamp_from_ms(self.iat as i64 * 1000)),
            expires_at: Some(pfc_proto::timestamp_from_ms(self.exp as i64 * 1000)),
            token_id: self.jti.clone(),
        }
    }
}

/// Signs tokens with one key.
#[derive(Debug, Clone)]
pub struct Issuer {
    key: SigningKey,
    ttl: Duration,
    issuer: String,
    audience: String,
}

impl Issuer {
    /// An issuer signing with `key`, tokens valid for `ttl`.
    pub fn new(key: SigningKey, ttl: Duration, issuer: &str, audience: &str) -> Self {
        Self {
            key,
            ttl,
            issuer: issuer.into(),
            audience: audience.into(),
        }
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// `iss` of issued tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `aud` of issued tokens.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Issues a token for a (validated) username.
    pub fn issue(&self, username: &str) -> Result<(String, Claims), AuthError> {
        crate::validate_username(username)?;
        let now = jsonwebtoken::get_current_timestamp();
        self.issue_at(username, now, now + self.ttl.as_secs())
    }

    /// Issues a token with explicit `iat`/`exp` (tests use it for expired tokens).
    pub fn issue_at(
        &self,
        username: &str,
        iat: u64,
        exp: u64,
    ) -> Result<(String, Claims), AuthError> {
        let claims = Claims {
            sub: username.into(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat,
            exp,
            jti: ulid::Ulid::new().to_string(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.key.kid().to_string());
        let token = jsonwebtoken::encode(&header, &claims, self.key.encoding_key())
            .map_err(|e| AuthError::Key(e.to_string()))?;
        Ok((token, claims))
    }

    /// A verifier for this issuer's tokens (in-process: no JWKS round trip).
    pub fn verifier(&self) -> Verifier {
        // The JWKS built from our own key is always valid.
        Verifier::from_jwks(&self.key.jwks(), &self.issuer, &self.audience)
            .expect("own jwks is valid")
    }
}

/// Checks tokens against a set of public keys, locally (no network call per token).
#[derive(Clone)]
pub struct Verifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("kids", &self.keys.keys())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier accepting EdDSA tokens signed by any key of `jwks` with this issuer and audience.
    pub fn from_jwks(jwks: &JwkSet, issuer: &str, audience: &str) -> Result<Self, AuthError> {
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            let kid = jwk.common.key_id.clone().unwrap_or_default();
            let key = DecodingKey::from_jwk(jwk).map_err(|e| AuthError::Key(e.to_string()))?;
            keys.insert(kid, key);
        }
        if keys.is_empty() {
            return Err(AuthError::Key("the key set is empty".into()));
        }
        // Only EdDSA: `alg: none`, HS256 with the public key as secret, etc. are all refused.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Ok(Self { keys, validation })
    }

    /// Parses a JWKS JSON document (as returned by `GetJwks`).
    pub fn from_jwks_json(json: &str, issuer: &str, audience: &str) -> Result<Self, AuthError> {
        let jwks: JwkSet =
            serde_json::from_str(json).map_err(|e| AuthError::Key(format!("bad jwks: {e}")))?;
        Self::from_jwks(&jwks, issuer, audience)
    }

    /// Verifies a token: signature, algorithm, issuer, audience, expiry. Returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            AuthError::InvalidToken(match e.kind() {
                ErrorKind::Json(_) => "malformed header (only alg EdDSA is accepted)".into(),
                _ => "malformed: expected a JWT (header.payload.signature)".into(),
            })
        })?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::InvalidToken(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let key = match &header.kid {
            Some(kid) => self.keys.get(kid),
            None if self.keys.len() == 1 => self.keys.values().next(),
            None => None,
        }
        .ok_or(AuthError::UnknownKey)?;
        match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => AuthError::InvalidToken("bad signature".into()),
                ErrorKind::InvalidIssuer => AuthError::InvalidToken("wrong issuer".into()),
                ErrorKind::InvalidAudience => AuthError::InvalidToken("wrong audience".into()),
                _ => AuthError::InvalidToken(e.to_string()),
            }),
        }
    }
}

/// The token of `authorization: Bearer <jwt>` metadata.
pub fn bearer(metadata: &MetadataMap) -> Result<&str, AuthError> {
    let value = metadata
        .get("authorization")
        .ok_or(AuthError::MissingToken)?
        .to_str()
        .map_err(|_| AuthError::InvalidToken("authorization is not ASCII".into()))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(AuthError::MissingToken)?
        .trim();
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn issuer() -> Issuer {
        Issuer::new(
            SigningKey::generate(),
            Duration::from_secs(3600),
            "pfc-auth",
            "pfc",
        )
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    /// A fresh token verifies and yields the claims it was issued with.
    #[test]
    fn issued_token_verifies() {
        let i = issuer();
        let (token, claims) = i.issue("alice").unwrap();
        assert_eq!(i.verifier().verify(&token).unwrap(), claims);
        assert_eq!(claims.exp - claims.iat, 3600);
    }

    /// An unsigned `alg: none` token carrying valid claims is refused.
    #[test]
    fn alg_none_is_refused() {
        let i = issuer();
        let (_, claims) = i.issue("alice").unwrap();
        let token = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&serde_json::to_string(&claims).unwrap())
        );
        assert!(matches!(
            i.verifier().verify(&token),
            Err(AuthError::InvalidToken(_))
        ));
    }

    /// Changing the payload (here the subject) breaks the signature.
    #[test]
    fn tampered_token_is_refused() {
        let i = issuer();
        let (token, mut claims) = i.issue("alice").unwrap();
        claims.sub = "mallory".into();
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64(&serde_json::to_string(&claims).unwrap()),
            parts[2]
        );
        assert!(matches!(
            i.verifier().verify(&forged),
            Err(AuthError::InvalidToken(_))
        ));
    }

    /// A token past its expiry (beyond the leeway) is refused as expired.
    #[test]
    fn expired_token_is_refused() {
        let i = issuer();
        let now = jsonwebtoken::get_current_timestamp();
        let (token, _) = i.issue_at("alice", now - 7200, now - 3600).unwrap();
        assert!(matches!(
            i.verifier().verify(&token),
            Err(AuthError::Expired)
        ));
    }

    /// A token signed by another key, even with the same kid, is refused.
    #[test]
    fn wrong_key_is_refused() {
        let mine = issuer();
        let theirs = issuer();
        let (token, _) = theirs.issue("alice").unwrap();
        assert!(mine.verifier().verify(&token).is_err());
        // Same kid as ours but their signature: the signature check still fails.
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(mine.key().kid().into());
        let (_, claims) = theirs.issue("alice").unwrap();
        let forged = jsonwebtoken::encode(&header, &claims, theirs.key().encoding_key()).unwrap();
        assert!(matches!(
            mine.verifier().verify(&forged),
            Err(AuthError::InvalidToken(_))
        ));
    }

    /// Tokens for another audience or issuer are refused.
    #[test]
    fn wrong_audience_or_issuer_is_refused() {
        let key = SigningKey::generate();
        let ours = Issuer::new(key.clone(), Duration::from_secs(60), "pfc-auth", "pfc");
        let other_aud = Issuer::new(key.clone(), Duration::from_secs(60), "pfc-auth", "other");
        let other_iss = Issuer::new(key, Duration::from_secs(60), "evil", "pfc");
        assert!(ours
            .verifier()
            .verify(&other_aud.issue("a").unwrap().0)
            .is_err());
        assert!(ours
            .verifier()
            .verify(&other_iss.issue("a").unwrap().0)
            .is_err());
    }

    /// Bearer extraction wants `authorization: Bearer <token>`.
    #[test]
    fn bearer_metadata() {
        let mut md = MetadataMap::new();
        assert!(matches!(bearer(&md), Err(AuthError::MissingToken)));
        md.insert("authorization", "Basic abc".parse().unwrap());
        assert!(matches!(bearer(&md), Err(AuthError::MissingToken)));
        md.insert("authorization", "Bearer abc.def.ghi".parse().unwrap());
        assert_eq!(bearer(&md).unwrap(), "abc.def.ghi");
    }
}
