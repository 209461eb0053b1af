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
        Self { keys, api_keys }
    }

    /// The API keys, if this authenticator checks them.
    pub fn api_keys(&self) -> Option<&Arc<crate::apikeys::ApiKeys>> {
        self.api_keys.as_ref()
    }

    /// Who `credential` (a JWT or an API key) says is calling.
    pub async fn authenticate(&self, credential: &str) -> Result<Caller, AccessError> {
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
