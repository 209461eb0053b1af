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

/// Shared, swappable verification keys.
#[derive(Clone, Debug)]
pub struct Keys {
    current: Arc<RwLock<Option<Arc<Verifier>>>>,
    loaded: watch::Sender<bool>,
    /// Wakes the refresh task early: a token named a key we don't know (auth's key changed).
    stale: Arc<Notify>,
}

impl Keys {
    fn empty() -> Self {
        Self {
            current: Arc::new(RwLock::new(None)),
            loaded: watch::Sender::new(false),
            stale: Arc::new(Notify::new()),
        }
    }

    /// Keys known up front (in-process auth, tests).
    pub fn fixed(verifier: Verifier) -> Self {
        let keys = Self::empty();
        keys.set(verifier);
        keys
    }

    /// Keys fetched from the auth service at `url` in the background: first with exponential
    /// backoff (100 ms .. 5 s) until it answers, then again every `refresh` (key rotation), or
    /// sooner (at most every [`MIN_REFRESH`]) when a token names an unknown key, e.g. after
    /// auth restarted with a new ephemeral key. The task stops when `shutdown` resolves.
    pub fn remote(
        url: String,
        refresh: Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        let keys = Self::empty();
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
        self.loaded.send_replace(true);
    }

    /// True once keys are available.
    pub fn is_loaded(&self) -> bool {
        *self.loaded.borrow()
    }

    /// Resolves once keys are available.
    pub async fn wait_loaded(&self) {
        let mut rx = self.loaded.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Verifies a token locally; `KeysUnavailable` until the first fetch succeeded.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let v = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let result = v.ok_or(AuthError::KeysUnavailable)?.verify(token);
        if matches!(result, Err(AuthError::UnknownKey)) {
            self.stale.notify_one();
        }
        result
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
