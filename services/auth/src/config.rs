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
    /// Ed25519 private key (PKCS#8 PEM) that signs tokens. With neither this nor
    /// `--key-dir`, an ephemeral key is generated at startup (dev only: tokens die with the
    /// process, replicas disagree).
    #[arg(long, env = "PFC_AUTH_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// Directory of Ed25519 keys (`*.pem`; `key-<unix seconds>.pem` becomes active at that
    /// time). The newest active key signs, previous ones stay published for the token
    /// lifetime. Written to when empty (a persistent key on a volume). Re-read every
    /// `--key-reload`, so a rotation needs no restart.
    #[arg(long, env = "PFC_AUTH_KEY_DIR")]
    pub key_dir: Option<PathBuf>,
    /// How often the key file and directory are re-read (rotation, scheduled activations).
    #[arg(long, env = "PFC_AUTH_KEY_RELOAD", default_value = "10s", value_parser = humantime::parse_duration)]
    pub key_reload: Duration,
    /// Lifetime of issued tokens (e.g. `1h`, `30m`).
    #[arg(long, env = "PFC_AUTH_TOKEN_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub token_ttl: Duration,
    /// `iss` claim put in and required of every token.
    #[arg(long, env = "PFC_AUTH_ISSUER", default_value = "pfc-auth")]
    pub issuer: String,
    /// `aud` claim put in and required of every token.
    #[arg(long, env = "PFC_AUTH_AUDIENCE", default_value = "pfc")]
    pub audience: String,
    /// Who gets which scopes.
    #[command(flatten)]
    pub grants: GrantArgs,
}

/// Which scopes Login tokens carry (shared by `pfc auth` and `pfc dev`). See docs/security.md.
#[derive(Debug, Clone, clap::Args)]
pub struct GrantArgs {
    /// Scopes of every Login token, space- or comma-separated, from `jobs:read`, `jobs:write`,
    /// `jobs:admin`, `worker`, `chat`.
    #[arg(
        long = "default-scopes",
        env = "PFC_AUTH_DEFAULT_SCOPES",
        default_value = DEFAULT_SCOPES
    )]
    pub default_scopes: String,
    /// Users whose Login tokens also carry `jobs:admin`, comma-separated.
    #[arg(
        long = "admin-users",
        env = "PFC_AUTH_ADMIN_USERS",
        value_delimiter = ','
    )]
    pub admin_users: Vec<String>,
}

/// The scopes every Login token carries unless configured otherwise.
pub const DEFAULT_SCOPES: &str = "chat jobs:read jobs:write";

impl Default for GrantArgs {
    fn default() -> Self {
        Self {
            default_scopes: DEFAULT_SCOPES.into(),
            admin_users: Vec::new(),
        }
    }
}

impl GrantArgs {
    /// The grants these flags describe; an unknown scope name is an error naming it.
    pub fn grants(&self) -> Result<crate::Grants, String> {
        Ok(crate::Grants {
            default: crate::Scopes::parse(&self.default_scopes)?,
            admins: self
                .admin_users
                .iter()
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
                .collect(),
        })
    }
}

impl Config {
    /// The grants of Login tokens (see [`GrantArgs`]).
    pub fn grants(&self) -> Result<crate::Grants, String> {
        self.grants.grants()
    }

    /// Where the keys come from (empty: an ephemeral key).
    pub fn key_source(&self) -> crate::KeySource {
        crate::KeySource {
            file: self.signing_key_file.clone(),
            dir: self.key_dir.clone(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            grpc_addr: ([127, 0, 0, 1], 50052).into(),
            signing_key_file: None,
            key_dir: None,
            key_reload: Duration::from_secs(10),
            token_ttl: Duration::from_secs(3600),
            issuer: "pfc-auth".into(),
            audience: "pfc".into(),
            grants: GrantArgs::default(),
        }
    }
}
