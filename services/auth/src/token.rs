//! Issuing and verifying tokens: EdDSA JWTs (RFC 7519 + RFC 8037) with `sub`, `iss`, `aud`,
//! `iat`, `exp`, `jti`, signed and checked with `ed25519-dalek` directly.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataMap;

use crate::keyring::{KeySource, Ring};
use crate::keys::{JwkSet, VerifyingKey};
use crate::{AuthError, Grants, Scopes, SigningKey};

/// Clock skew tolerated on `exp`, in seconds.
pub const LEEWAY_SECS: u64 = 5;

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

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
    /// Granted scopes, space-separated (`jobs:read jobs:write chat`); absent in tokens issued
    /// before scopes existed, which then hold none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
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
            scopes: self.scopes().names(),
        }
    }

    /// The scopes this token grants (unknown names skipped).
    pub fn scopes(&self) -> Scopes {
        Scopes::from_claim(&self.scope)
    }
}

/// The JOSE header pfc writes and reads.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    /// Critical extensions (RFC 7515 §4.1.11): pfc understands none, so any is refused.
    #[serde(default, skip_serializing)]
    crit: Option<serde_json::Value>,
}

/// Signs `claims` with `key`: `base64url(header).base64url(claims).base64url(signature)`.
pub fn encode(key: &SigningKey, claims: &impl Serialize) -> Result<String, AuthError> {
    let header = Header {
        alg: "EdDSA".into(),
        typ: Some("JWT".into()),
        kid: Some(key.kid().into()),
        crit: None,
    };
    let json = |r: serde_json::Result<Vec<u8>>| r.map_err(|e| AuthError::Key(e.to_string()));
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json(serde_json::to_vec(&header))?),
        URL_SAFE_NO_PAD.encode(json(serde_json::to_vec(claims))?)
    );
    let sig = key.sign(signing_input.as_bytes());
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// What signing needs right now: the newest active key, and the keys to publish.
struct Current {
    signing: SigningKey,
    verifier: Verifier,
    jwks_json: Arc<str>,
}

/// Signs tokens with the newest active key of its [`Ring`]; previous keys stay published
/// (JWKS, local verification) for the token lifetime after they were superseded.
pub struct Issuer {
    source: Option<KeySource>,
    ring: RwLock<Ring>,
    current: RwLock<Arc<Current>>,
    ttl: Duration,
    issuer: String,
    audience: String,
    grants: Grants,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("kid", &self.key().kid())
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer signing with one fixed `key`, tokens valid for `ttl`.
    pub fn new(key: SigningKey, ttl: Duration, issuer: &str, audience: &str) -> Self {
        Self::with_ring(None, Ring::single(key), ttl, issuer, audience)
    }

    /// An issuer over the keys of `source` (a key file and/or a key directory), which
    /// [`Issuer::reload`] re-reads (rotation without restart).
    pub fn from_source(
        source: KeySource,
        ttl: Duration,
        issuer: &str,
        audience: &str,
    ) -> Result<Self, AuthError> {
        let ring = source.load(now_secs())?;
        Ok(Self::with_ring(Some(source), ring, ttl, issuer, audience))
    }

    fn with_ring(
        source: Option<KeySource>,
        ring: Ring,
        ttl: Duration,
        issuer: &str,
        audience: &str,
    ) -> Self {
        let current = Self::compute(&ring, now_secs(), ttl, issuer, audience);
        Self {
            source,
            ring: RwLock::new(ring),
            current: RwLock::new(Arc::new(current)),
            ttl,
            issuer: issuer.into(),
            audience: audience.into(),
            grants: Grants::default(),
        }
    }

    /// This issuer, granting `grants` to Login tokens instead of [`Grants::default`].
    pub fn with_grants(mut self, grants: Grants) -> Self {
        self.grants = grants;
        self
    }

    /// What Login grants to whom.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    fn compute(ring: &Ring, now: u64, ttl: Duration, issuer: &str, audience: &str) -> Current {
        let signing = ring.signing(now).key.clone();
        let jwks = JwkSet {
            keys: ring
                .published(now, ttl.as_secs() + LEEWAY_SECS)
                .map(|k| k.key.jwk().clone())
                .collect(),
        };
        // A JWKS built from our own (valid) keys always parses back and serialises.
        let verifier = Verifier::from_jwks(&jwks, issuer, audience).expect("own jwks is valid");
        let jwks_json = serde_json::to_string(&jwks)
            .expect("jwks serialises")
            .into();
        Current {
            signing,
            verifier,
            jwks_json,
        }
    }

    fn current(&self) -> Arc<Current> {
        // A poisoned lock only means a panic while swapping an Arc; the value is still usable.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the key files (when the issuer has a source) and recomputes, for `now`, which
    /// key signs and which are published. Logs what changed. On a read error the keys loaded
    /// before stay in use and the error is returned.
    pub fn reload_at(&self, now: u64) -> Result<(), AuthError> {
        let loaded = self.source.as_ref().map(|source| source.load(now));
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        let mut result = Ok(());
        match loaded {
            Some(Ok(new)) => *ring = new,
            Some(Err(e)) => result = Err(e),
            None => {}
        }
        let next = Self::compute(&ring, now, self.ttl, &self.issuer, &self.audience);
        let prev = self.current();
        if prev.signing.kid() != next.signing.kid() {
            tracing::info!(
                kid = next.signing.kid(),
                previous = prev.signing.kid(),
                "signing with a new key; the previous one stays published for the token lifetime"
            );
        }
        if prev.jwks_json != next.jwks_json {
            tracing::info!(kids = ?next.verifier.kids(), "published keys changed");
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        result
    }

    /// [`Issuer::reload_at`] now.
    pub fn reload(&self) -> Result<(), AuthError> {
        self.reload_at(now_secs())
    }

    /// The key tokens are signed with now.
    pub fn key(&self) -> SigningKey {
        self.current().signing.clone()
    }

    /// The published keys as a JWKS document (what `GetJwks` returns).
    pub fn jwks_json(&self) -> Arc<str> {
        self.current().jwks_json.clone()
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
        let now = now_secs();
        self.issue_at(username, now, now + self.ttl.as_secs())
    }

    /// Issues a token with explicit `iat`/`exp` (tests use it for expired tokens), with the
    /// scopes the grants give `username`.
    pub fn issue_at(
        &self,
        username: &str,
        iat: u64,
        exp: u64,
    ) -> Result<(String, Claims), AuthError> {
        self.issue_scoped(username, self.grants.for_user(username), iat, exp)
    }

    /// Issues a token with explicit scopes and times (tests, and in-process callers such as
    /// `pfc dev`'s built-in worker).
    pub fn issue_scoped(
        &self,
        username: &str,
        scopes: Scopes,
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
            scope: scopes.to_string(),
        };
        let token = encode(&self.current().signing, &claims)?;
        Ok((token, claims))
    }

    /// A verifier for this issuer's tokens as of now (in-process: no JWKS round trip).
    pub fn verifier(&self) -> Verifier {
        self.current().verifier.clone()
    }
}

/// Checks tokens against a set of public keys, locally (no network call per token).
#[derive(Clone)]
pub struct Verifier {
    keys: HashMap<String, VerifyingKey>,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("kids", &self.keys.keys())
            .finish_non_exhaustive()
    }
}

fn b64_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, Option<serde_json::Error>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| None)?;
    serde_json::from_slice(&bytes).map_err(Some)
}

impl Verifier {
    /// A verifier accepting EdDSA tokens signed by any key of `jwks` with this issuer and audience.
    pub fn from_jwks(jwks: &JwkSet, issuer: &str, audience: &str) -> Result<Self, AuthError> {
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            let kid = jwk.kid.clone().unwrap_or_default();
            keys.insert(kid, VerifyingKey::from_jwk(jwk)?);
        }
        if keys.is_empty() {
            return Err(AuthError::Key("the key set is empty".into()));
        }
        Ok(Self {
            keys,
            issuer: issuer.into(),
            audience: audience.into(),
        })
    }

    /// Parses a JWKS JSON document (as returned by `GetJwks`).
    pub fn from_jwks_json(json: &str, issuer: &str, audience: &str) -> Result<Self, AuthError> {
        let jwks: JwkSet =
            serde_json::from_str(json).map_err(|e| AuthError::Key(format!("bad jwks: {e}")))?;
        Self::from_jwks(&jwks, issuer, audience)
    }

    /// The ids of the keys this verifier accepts.
    pub fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        kids
    }

    /// True when this verifier knows the key `kid`.
    pub fn knows(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// Verifies a token: algorithm, signature, expiry, issuer, audience. Returns its claims.
    ///
    /// Only `alg: EdDSA` is accepted, checked before anything else, so `alg: none` and the
    /// HS256-with-the-public-key confusion never reach a signature check.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_at(token, now_secs())
    }

    /// [`Verifier::verify`] at `now` (seconds since the epoch).
    pub fn verify_at(&self, token: &str, now: u64) -> Result<Claims, AuthError> {
        let malformed = || {
            AuthError::InvalidToken("malformed: expected a JWT (header.payload.signature)".into())
        };
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let header: Header = b64_json(h).map_err(|e| match e {
            Some(_) => {
                AuthError::InvalidToken("malformed header (only alg EdDSA is accepted)".into())
            }
            None => malformed(),
        })?;
        if header.alg != "EdDSA" {
            return Err(AuthError::InvalidToken(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        if header.crit.is_some() {
            return Err(AuthError::InvalidToken(
                "critical header extensions are not supported".into(),
            ));
        }
        let key = match &header.kid {
            Some(kid) => self.keys.get(kid),
            None if self.keys.len() == 1 => self.keys.values().next(),
            None => None,
        }
        .ok_or(AuthError::UnknownKey)?;
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| AuthError::InvalidToken("bad signature".into()))?;
        let signing_input = &token[..h.len() + 1 + p.len()];
        if !key.verify(signing_input.as_bytes(), &signature) {
            return Err(AuthError::InvalidToken("bad signature".into()));
        }
        let claims: Claims = b64_json(p).map_err(|e| {
            AuthError::InvalidToken(match e {
                Some(e) => format!("malformed claims: {e}"),
                None => "malformed claims".into(),
            })
        })?;
        if claims.exp.saturating_add(LEEWAY_SECS) < now {
            return Err(AuthError::Expired);
        }
        if claims.iss != self.issuer {
            return Err(AuthError::InvalidToken("wrong issuer".into()));
        }
        if claims.aud != self.audience {
            return Err(AuthError::InvalidToken("wrong audience".into()));
        }
        if claims.sub.is_empty() {
            return Err(AuthError::InvalidToken("no subject".into()));
        }
        Ok(claims)
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
        URL_SAFE_NO_PAD.encode(s)
    }

    /// A fresh token verifies and yields the claims it was issued with; its header is the
    /// documented `{"alg":"EdDSA","typ":"JWT","kid":..}`.
    #[test]
    fn issued_token_verifies() {
        let i = issuer();
        let (token, claims) = i.issue("alice").unwrap();
        assert_eq!(i.verifier().verify(&token).unwrap(), claims);
        assert_eq!(claims.exp - claims.iat, 3600);
        let header: serde_json::Value = b64_json(token.split('.').next().unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": i.key().kid()})
        );
    }

    /// An unsigned `alg: none` token carrying valid claims is refused, and so is HS256.
    #[test]
    fn alg_none_and_hs256_are_refused() {
        let i = issuer();
        let (_, claims) = i.issue("alice").unwrap();
        let payload = b64(&serde_json::to_string(&claims).unwrap());
        for alg in ["none", "HS256", "RS256"] {
            let token = format!(
                "{}.{payload}.",
                b64(&format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#))
            );
            let err = i.verifier().verify(&token).unwrap_err();
            assert!(
                matches!(&err, AuthError::InvalidToken(m) if m.contains("not accepted")),
                "{alg}: {err}"
            );
        }
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
            Err(AuthError::InvalidToken(m)) if m == "bad signature"
        ));
    }

    /// A token past its expiry (beyond the leeway) is refused as expired; within it, accepted.
    #[test]
    fn expired_token_is_refused() {
        let i = issuer();
        let now = now_secs();
        let (token, _) = i.issue_at("alice", now - 7200, now - 3600).unwrap();
        assert!(matches!(
            i.verifier().verify(&token),
            Err(AuthError::Expired)
        ));
        let (token, _) = i.issue_at("alice", now - 60, now - 2).unwrap();
        assert!(i.verifier().verify(&token).is_ok(), "within the leeway");
    }

    /// A token signed by another key, even with the same kid, is refused.
    #[test]
    fn wrong_key_is_refused() {
        let mine = issuer();
        let theirs = issuer();
        let (token, _) = theirs.issue("alice").unwrap();
        assert!(matches!(
            mine.verifier().verify(&token),
            Err(AuthError::UnknownKey)
        ));
        // Our kid in the header but their signature: the signature check still fails.
        let (_, claims) = theirs.issue("alice").unwrap();
        let forged = encode(&theirs.key(), &claims).unwrap();
        let mut parts: Vec<String> = forged.split('.').map(String::from).collect();
        parts[0] = b64(&format!(
            r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#,
            mine.key().kid()
        ));
        let forged = parts.join(".");
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

    /// Garbage, extra segments, `crit` headers and claims missing `exp` are refused clearly.
    #[test]
    fn malformed_tokens_are_refused() {
        let i = issuer();
        let (token, _) = i.issue("alice").unwrap();
        let v = i.verifier();
        for bad in ["", "a.b", "a.b.c.d", "!!!.e30.", &format!("{token}.x")] {
            assert!(
                matches!(v.verify(bad), Err(AuthError::InvalidToken(m)) if m.starts_with("malformed")),
                "{bad:?}"
            );
        }
        let key = i.key();
        let no_exp = encode(
            &key,
            &serde_json::json!({"sub": "a", "iss": "pfc-auth", "aud": "pfc", "iat": 1, "jti": "x"}),
        )
        .unwrap();
        assert!(
            matches!(v.verify(&no_exp), Err(AuthError::InvalidToken(m)) if m.contains("exp")),
            "missing exp"
        );
        let parts: Vec<&str> = token.split('.').collect();
        let crit = format!(
            "{}.{}.{}",
            b64(&format!(
                r#"{{"alg":"EdDSA","kid":"{}","crit":["exp"]}}"#,
                key.kid()
            )),
            parts[1],
            parts[2]
        );
        assert!(matches!(v.verify(&crit), Err(AuthError::InvalidToken(_))));
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
