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
//! - [`SigningKey`] (`keys.rs`): load (PKCS#8 PEM) or generate the key; its JWKS.
//! - [`Issuer`], [`Verifier`], [`Claims`], [`bearer`] (`token.rs`): sign and check tokens.
//! - [`Keys`] (`remote.rs`): verification keys fetched from `GetJwks` and refreshed.
//! - [`AuthGrpc`] (`grpc.rs`): the `pfc.auth.v1.AuthService` implementation.
//! - [`validate_username`] (`names.rs`): naming rules shared with rooms.
//! - [`run`]: serve the role (service, health, reflection) until shutdown.

mod config;
mod error;
mod grpc;
mod keys;
mod names;
mod remote;
mod token;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use pfc_proto::auth::v1::auth_service_server::AuthServiceServer;
use tokio::net::TcpListener;
use tonic_health::ServingStatus;

pub use config::Config;
pub use error::AuthError;
pub use grpc::AuthGrpc;
pub use keys::SigningKey;
pub use names::{validate_name, validate_username, MAX_USERNAME_LEN};
pub use remote::{fetch, Keys, MIN_REFRESH};
pub use token::{bearer, Claims, Issuer, Verifier, LEEWAY_SECS};

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "pfc.auth.v1.AuthService";

/// Builds the issuer from the config: the key file when set, else an ephemeral key (with a
/// warning: tokens then die with the process and replicas can't verify each other's tokens).
pub fn issuer_from_config(config: &Config) -> anyhow::Result<Issuer> {
    let key = match &config.signing_key_file {
        Some(path) => {
            let key = SigningKey::load(path).context("failed to load the signing key")?;
            tracing::info!(kid = key.kid(), path = %path.display(), "signing key loaded");
            key
        }
        None => {
            let key = SigningKey::generate();
            tracing::warn!(
                kid = key.kid(),
                "PFC_AUTH_SIGNING_KEY_FILE is unset: using an ephemeral signing key (dev only)"
            );
            key
        }
    };
    Ok(Issuer::new(
        key,
        config.token_ttl,
        &config.issuer,
        &config.audience,
    ))
}

/// Serves `pfc.auth.v1.AuthService` with health and reflection on `listener` until `shutdown`
/// resolves; health turns `NOT_SERVING` as soon as shutdown begins.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let issuer = Arc::new(issuer_from_config(&config)?);
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
        shutdown,
    )
    .await
    .context("auth gRPC server failed")
}
