//! The auth role (`pfc auth`): issues EdDSA (Ed25519) JWTs for a pseudo, verifies them, and
//! publishes the public key as a JWKS so other roles verify tokens locally.
//!
//! The origin's auth service was called over HTTP by every other service on every request;
//! here chat and the gateway fetch the public key once ([`Keys::remote`]) and never call
//! auth on the hot path. Only the auth role holds the private key.
//!
//! # Layout
//! - [`Config`] (`config.rs`): flags and `PFC_*` environment variables.
//! - [`AuthError`] (`error.rs`): the error enum and its one mapping to `tonic::Status`.
//! - [`SigningKey`], [`Jwk`], [`JwkSet`] (`keys.rs`): load (PKCS#8 PEM) or generate an
//!   Ed25519 key with `ed25519-dalek`; its public JWK.
//! - [`Ring`], [`KeySource`] (`keyring.rs`): key rotation — which key signs, which are
//!   published, read from a key file and/or a key directory.
//! - [`Issuer`], [`Verifier`], [`Claims`], [`bearer`] (`token.rs`): sign and check EdDSA JWTs.
//! - [`Scope`], [`Scopes`], [`Grants`] (`scope.rs`): what a token allows, and which scopes
//!   Login grants to whom (`--default-scopes`, `--admin-users`).
//! - [`Keys`] (`remote.rs`): verification keys fetched from `GetJwks` and refreshed.
//! - [`AuthGrpc`] (`grpc.rs`): the `pfc.auth.v1.AuthService` implementation.
//! - [`validate_username`] (`names.rs`): naming rules shared with rooms.
//! - [`run`]: serve the role (service, health, reflection) until shutdown.

mod config;
mod error;
mod grpc;
mod keyring;
mod keys;
mod names;
mod remote;
mod scope;
mod token;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use pfc_proto::auth::v1::auth_service_server::AuthServiceServer;
use tokio::net::TcpListener;
use tonic_health::ServingStatus;

pub use config::{Config, GrantArgs, DEFAULT_SCOPES};
pub use error::AuthError;
pub use grpc::AuthGrpc;
pub use keyring::{active_from_name, key_file_name, write_new_key, KeySource, Ring, TimedKey};
pub use keys::{thumbprint, Jwk, JwkSet, SigningKey};
pub use names::{validate_name, validate_username, MAX_USERNAME_LEN};
pub use remote::{fetch, Keys, MIN_REFRESH, UNKNOWN_KEY_WAIT};
pub use scope::{Grants, Scope, Scopes};
pub use token::{bearer, encode, now_secs, Claims, Issuer, Verifier, LEEWAY_SECS};

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "pfc.auth.v1.AuthService";

/// Builds the issuer from the config: the key file and/or key directory when set, else an
/// ephemeral key (with a warning: tokens then die with the process and replicas can't verify
/// each other's tokens).
pub fn issuer_from_config(config: &Config) -> anyhow::Result<Issuer> {
    let grants = config.grants().map_err(anyhow::Error::msg)?;
    Ok(unscoped_issuer(config)?.with_grants(grants))
}

fn unscoped_issuer(config: &Config) -> anyhow::Result<Issuer> {
    let source = config.key_source();
    if source.is_empty() {
        let key = SigningKey::generate();
        tracing::warn!(
            kid = key.kid(),
            "neither PFC_AUTH_KEY_DIR nor PFC_AUTH_SIGNING_KEY_FILE is set: using an ephemeral signing key (dev only)"
        );
        return Ok(Issuer::new(
            key,
            config.token_ttl,
            &config.issuer,
            &config.audience,
        ));
    }
    let issuer = match Issuer::from_source(
        source.clone(),
        config.token_ttl,
        &config.issuer,
        &config.audience,
    ) {
        Ok(issuer) => issuer,
        // An empty key directory auth may not write to (e.g. a volume owned by another user):
        // run as before (ephemeral key) but say loudly why tokens won't survive a restart.
        Err(AuthError::KeyDirNotWritable(why)) if source.file.is_none() => {
            let key = SigningKey::generate();
            tracing::warn!(kid = key.kid(), error = %why, "cannot write a key into PFC_AUTH_KEY_DIR: using an ephemeral signing key (tokens will not survive a restart)");
            return Ok(Issuer::new(
                key,
                config.token_ttl,
                &config.issuer,
                &config.audience,
            ));
        }
        Err(e) => return Err(e).context("failed to load the signing keys"),
    };
    tracing::info!(
        kid = issuer.key().kid(),
        published = ?issuer.verifier().kids(),
        "signing keys loaded"
    );
    Ok(issuer)
}

/// Re-reads the issuer's keys every `every` until `stop` resolves (rotation without restart;
/// scheduled keys activate and retired ones stop being published on time).
pub fn spawn_key_reload(
    issuer: Arc<Issuer>,
    every: std::time::Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let every = every.max(std::time::Duration::from_millis(100));
    tokio::spawn(async move {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(err) = issuer.reload() {
                tracing::warn!(error = %err, "failed to re-read the signing keys; keeping the ones loaded");
            }
        }
    })
}

/// Serves `pfc.auth.v1.AuthService` with health and reflection on `listener` until `shutdown`
/// resolves; health turns `NOT_SERVING` as soon as shutdown begins.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let issuer = Arc::new(issuer_from_config(&config)?);
    let stop = pfc_runtime::Shutdown::new();
    stop.trigger_on(shutdown);
    if !config.key_source().is_empty() {
        spawn_key_reload(issuer.clone(), config.key_reload, stop.wait());
    }
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<AuthServiceServer<AuthGrpc>>().await;
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    let routes = tonic::service::Routes::new(AuthGrpc::new(issuer).into_server());
    let routes = pfc_runtime::grpc::with_health_and_reflection(routes, health)?;
    pfc_runtime::grpc::serve(
        listener,
        routes,
        reporter,
        vec![SERVICE_NAME.to_string()],
        stop.wait(),
    )
    .await
    .context("auth gRPC server failed")
}
