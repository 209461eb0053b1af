//! Command-line / environment configuration of the auth role.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Configuration of `pfc auth` (every flag has a `PFC_*` environment fallback).
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// gRPC listen address.
    #[arg(
        long = "grpc-addr",
        env = "PFC_GRPC_ADDR",
        default_value = "127.0.0.1:50052"
    )]
    pub grpc_addr: SocketAddr,
    /// Ed25519 private key (PKCS#8 PEM) that signs tokens. Unset: an ephemeral key is
    /// generated at startup (dev only: tokens die with the process, replicas disagree).
    #[arg(long, env = "PFC_AUTH_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// Lifetime of issued tokens (e.g. `1h`, `30m`).
    #[arg(long, env = "PFC_AUTH_TOKEN_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub token_ttl: Duration,
    /// `iss` claim put in and required of every token.
    #[arg(long, env = "PFC_AUTH_ISSUER", default_value = "pfc-auth")]
    pub issuer: String,
    /// `aud` claim put in and required of every token.
    #[arg(long, env = "PFC_AUTH_AUDIENCE", default_value = "pfc")]
    pub audience: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            grpc_addr: ([127, 0, 0, 1], 50052).into(),
            signing_key_file: None,
            token_ttl: Duration::from_secs(3600),
            issuer: "pfc-auth".into(),
            audience: "pfc".into(),
        }
    }
}
