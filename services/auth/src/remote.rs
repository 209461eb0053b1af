//! [`Keys`]: the verification keys other roles hold, fetched from the auth role's `GetJwks`
//! once (retrying with backoff until auth answers) and refreshed periodically, so every
//! request is verified locally instead of costing a network call.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use pfc_proto::auth::v1::auth_service_client::AuthServiceClient;
use pfc_proto::auth::v1::GetJwksRequest;
use tokio::sync::{watch, Notify};

use crate::{AuthError, Claims, Verifier};

/// Shortest time between two key fetches (so forged `kid`s cannot make us hammer auth).
pub const MIN_REFRESH: Duration = Duration::from_secs(2);

/// How long a call with a token signed by an unknown key waits for the keys to be re-fetched
/// (a fetch happens at most every [`MIN_REFRESH`]).
pub const UNKNOWN_KEY_WAIT: Duration = Duration::from_secs(3);

/// Shared, swappable verification keys.
#[derive(Clone, Debug)]
pub struct Keys {
    current: Arc<RwLock<Option<Arc<Verifier>>>>,
    /// Successful fetches so far (0: not loaded yet); fixed keys count as one.
    generation: watch::Sender<u64>,
    /// Wakes the refresh task early: a token named a key we don't know (auth's key changed).
    stale: Arc<Notify>,
    /// Fetched from auth (so an unknown key is worth a re-fetch), not fixed.
    remote: bool,
}

impl Keys {
    fn empty(remote: bool) -> Self {
        Self {
            current: Arc::new(RwLock::new(None)),
            generation: watch::Sender::new(0),
            stale: Arc::new(Notify::new()),
            remote,
        }
    }

    /// Keys known up front (in-process auth, tests).
    pub fn fixed(verifier: Verifier) -> Self {
        let keys = Self::empty(false);
        keys.set(verifier);
        keys
    }

    /// Keys fetched from the auth service at `url` in the background: first with exponential
    /// backoff (100 ms .. 5 s) until it answers, then again every `refresh` (key rotation), or
    /// sooner (at most every [`MIN_REFRESH`]) when a token names an unknown key — a key auth
    /// just started signing with — in which case [`Keys::verify`] waits for that fetch
    /// instead of refusing the token. The task stops when `shutdown` resolves.
    pub fn remote(
        url: String,
        refresh: Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        let keys = Self::empty(true);
        let this = keys.clone();
        tokio::spawn(async move {
            let task = async {
                let mut backoff = Duration::from_millis(100);
                loop {
                    match fetch(&url).await {
                        Ok(v) => {
                            if !this.is_loaded() {
                                tracing::info!(auth_url = %url, "verification keys loaded");
                            }
                            this.set(v);
                            backoff = Duration::from_millis(100);
                            tokio::time::sleep(MIN_REFRESH.min(refresh)).await;
                            tokio::select! {
                                _ = tokio::time::sleep(refresh.saturating_sub(MIN_REFRESH)) => {}
                                _ = this.stale.notified() => {
                                    tracing::info!(auth_url = %url, "token with an unknown key: refreshing verification keys");
                                }
                            }
                        }
                        Err(err) => {
                            tracing::warn!(auth_url = %url, error = %err, retry_in = ?backoff, "failed to fetch verification keys");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            };
            tokio::select! { _ = task => {}, _ = shutdown => {} }
        });
        keys
    }

    fn set(&self, verifier: Verifier) {
        // A poisoned lock only means a panic while swapping an Arc; the value is still usable.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(verifier));
        self.generation.send_modify(|g| *g += 1);
    }

    /// True once keys are available.
    pub fn is_loaded(&self) -> bool {
        *self.generation.borrow() > 0
    }

    /// Resolves once keys are available.
    pub async fn wait_loaded(&self) {
        let mut rx = self.generation.subscribe();
        let _ = rx.wait_for(|g| *g > 0).await;
    }

    /// The key ids currently accepted (empty before the first fetch).
    pub fn kids(&self) -> Vec<String> {
        self.snapshot()
            .map(|v| v.kids().into_iter().map(String::from).collect())
            .unwrap_or_default()
    }

    fn snapshot(&self) -> Option<Arc<Verifier>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Verifies a token locally with the keys held now; `KeysUnavailable` until the first
    /// fetch succeeded. An unknown key asks the refresh task for an early fetch.
    pub fn verify_now(&self, token: &str) -> Result<Claims, AuthError> {
        let result = self
            .snapshot()
            .ok_or(AuthError::KeysUnavailable)?
            .verify(token);
        if matches!(result, Err(AuthError::UnknownKey)) {
            self.stale.notify_one();
        }
        result
    }

    /// Verifies a token locally. When it names a key these keys don't know and they come from
    /// auth, waits (up to [`UNKNOWN_KEY_WAIT`]) for the next fetch and tries again, so the
    /// first token signed after a rotation is accepted rather than refused.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let seen = *self.generation.borrow();
        match self.verify_now(token) {
            Err(AuthError::UnknownKey) if self.remote => {
                let mut rx = self.generation.subscribe();
                let _ = tokio::time::timeout(UNKNOWN_KEY_WAIT, rx.wait_for(|g| *g > seen)).await;
                self.verify_now(token)
            }
            other => other,
        }
    }
}

/// Fetches the JWKS, issuer and audience from the auth service once.
pub async fn fetch(url: &str) -> anyhow::Result<Verifier> {
    use anyhow::Context as _;
    let mut client = AuthServiceClient::connect(url.to_string())
        .await
        .with_context(|| format!("failed to connect to auth at {url}"))?;
    let resp = client
        .get_jwks(GetJwksRequest {})
        .await
        .context("GetJwks failed")?
        .into_inner();
    Ok(Verifier::from_jwks_json(
        &resp.jwks_json,
        &resp.issuer,
        &resp.audience,
    )?)
}
