//! [`Authenticator`]: turns the bearer value of a call into a verified [`Caller`].

use std::sync::Arc;

use http::HeaderMap;
use pfc_auth::{Keys, Scope};

use crate::{AccessError, Caller, Credential};

/// Verifies credentials locally: JWTs with the auth role's public keys (fetched once and
/// cached by [`Keys`], exactly as chat does), API keys (`pfc_…`) against the key store.
#[derive(Clone, Debug)]
pub struct Authenticator {
    keys: Keys,
    api_keys: Option<Arc<crate::apikeys::ApiKeys>>,
    /// Pre-shared credentials (the chart's generated worker key): SHA-256 of the key, and
    /// who it is.
    preshared: Vec<([u8; 32], Caller)>,
}

/// The credential in `authorization: Bearer <credential>` (scheme case-insensitive), if any.
pub fn bearer_of(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    let credential = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty()).then_some(credential)
}

impl Authenticator {
    /// Verifies JWTs with `keys`, and API keys with `api_keys` when given.
    pub fn new(keys: Keys, api_keys: Option<Arc<crate::apikeys::ApiKeys>>) -> Self {
        Self {
            keys,
            api_keys,
            preshared: Vec::new(),
        }
    }

    /// Also accepts `key` (at least 32 characters), a pre-shared credential given to this
    /// process (`--worker-key`), as a `worker` caller named `name`. Compared in constant time.
    pub fn with_worker_key(mut self, key: &str, name: &str) -> Result<Self, AccessError> {
        let key = key.trim();
        if key.len() < 32 {
            return Err(AccessError::InvalidArgument(
                "worker key: at least 32 characters".into(),
            ));
        }
        let caller = Caller {
            subject: name.to_string(),
            scopes: pfc_auth::Scopes::of(&[Scope::Worker]),
            kinds: None,
            credential: Credential::ApiKey {
                id: "preshared".into(),
            },
        };
        self.preshared.push((digest(key), caller));
        Ok(self)
    }

    /// The API keys, if this authenticator checks them.
    pub fn api_keys(&self) -> Option<&Arc<crate::apikeys::ApiKeys>> {
        self.api_keys.as_ref()
    }

    /// Who `credential` (a JWT or an API key) says is calling.
    pub async fn authenticate(&self, credential: &str) -> Result<Caller, AccessError> {
        if !self.preshared.is_empty() {
            use subtle::ConstantTimeEq as _;
            let presented = digest(credential);
            for (want, caller) in &self.preshared {
                if bool::from(presented.ct_eq(want)) {
                    return Ok(caller.clone());
                }
            }
        }
        if credential.starts_with(crate::apikeys::PREFIX) {
            return match &self.api_keys {
                Some(keys) => keys.verify(credential).await,
                None => Err(AccessError::Invalid(
                    "invalid credentials: API keys are not accepted here".into(),
                )),
            };
        }
        let claims = self.keys.verify(credential).await?;
        Ok(Caller {
            scopes: claims.scopes(),
            subject: claims.sub,
            kinds: None,
            credential: Credential::Token { jti: claims.jti },
        })
    }

    /// The caller of a request with `headers`, if it holds `scope`: `Missing` / `Invalid`
    /// (UNAUTHENTICATED) without a valid credential, `Denied` (PERMISSION_DENIED) without
    /// the scope.
    pub async fn check(&self, headers: &HeaderMap, scope: Scope) -> Result<Caller, AccessError> {
        let credential = bearer_of(headers).ok_or(AccessError::Missing)?;
        let caller = self.authenticate(credential).await?;
        require(&caller, scope)?;
        Ok(caller)
    }
}

fn digest(s: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(s.as_bytes()).into()
}

/// `Denied` unless `caller` holds `scope`; the message names the scope and what it holds.
pub fn require(caller: &Caller, scope: Scope) -> Result<(), AccessError> {
    if caller.allows(scope) {
        return Ok(());
    }
    let held = if caller.scopes.is_empty() {
        "no scope".to_string()
    } else {
        caller.scopes.to_string()
    };
    Err(AccessError::Denied(format!(
        "permission denied: this call needs scope {scope}; the credential has {held}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        let issuer = pfc_auth::Issuer::new(
            pfc_auth::SigningKey::generate(),
            std::time::Duration::from_secs(60),
            "pfc-auth",
            "pfc",
        );
        Authenticator::new(Keys::fixed(issuer.verifier()), None)
    }

    /// The pre-shared worker key is a `worker` caller (nothing more); anything else, including
    /// a prefix of it, is refused; a short key is a configuration error.
    #[tokio::test]
    async fn preshared_worker_key() {
        let key = "pfc_chartgenerated0_abcdefghijklmnopqrstuvwxyz0123456789";
        let a = auth().with_worker_key(key, "w").unwrap();
        let caller = a.authenticate(key).await.unwrap();
        assert!(caller.allows(Scope::Worker) && !caller.allows(Scope::JobsRead));
        assert!(a.authenticate(&key[..40]).await.is_err());
        assert!(a.authenticate("eyJ.x.y").await.is_err());
        assert!(auth().with_worker_key("short", "w").is_err());
    }
}
