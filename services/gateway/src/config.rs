//! The gateway's configuration: one clap `Args` struct, every flag with a `PFC_*` fallback.

use std::net::SocketAddr;
use std::time::Duration;

/// How `pfc gateway` is configured (`pfc gateway --help` lists the flags).
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// HTTP listen address (UI, REST, SSE, gRPC-web, health, metrics).
    #[arg(long, env = "PFC_HTTP_ADDR", default_value = "127.0.0.1:8000")]
    pub http_addr: SocketAddr,

    /// URL of the jobs core (gRPC).
    #[arg(long, env = "PFC_JOBS_URL", default_value = "http://127.0.0.1:50051")]
    pub jobs_url: String,

    /// Require a credential on the jobs API (REST, SSE, metrics); see docs/security.md. The
    /// jobs core must run with it too (it checks the scopes and the gRPC-web calls).
    #[arg(long, env = "PFC_AUTH_REQUIRED", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub auth_required: bool,

    /// How often the verification keys are re-fetched from auth (key rotation).
    #[arg(long = "auth-keys-refresh", env = "PFC_AUTH_KEYS_REFRESH", default_value = "5m", value_parser = humantime::parse_duration)]
    pub auth_keys_refresh: Duration,

    /// URL of the auth service (gRPC), proxied for gRPC-web; its public keys verify Login
    /// tokens when `--auth-required`.
    #[arg(long, env = "PFC_AUTH_URL", default_value = "http://127.0.0.1:50052")]
    pub auth_url: String,

    /// URL of the chat service (gRPC), proxied for gRPC-web.
    #[arg(long, env = "PFC_CHAT_URL", default_value = "http://127.0.0.1:50053")]
    pub chat_url: String,

    /// Comma-separated origins allowed to call the REST and gRPC-web APIs from a browser
    /// (`*` for any). Unset: same origin only (the embedded UI).
    #[arg(long, env = "PFC_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Largest REST request body accepted, in bytes (larger: 413).
    #[arg(long, env = "PFC_HTTP_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,

    /// Deadline of one REST request, including the call to the core (e.g. `10s`).
    #[arg(long, env = "PFC_HTTP_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// How long open streams (SSE, gRPC-web watches) may take to finish once shutdown starts.
    #[arg(long, env = "PFC_HTTP_DRAIN_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
}

impl Config {
    /// The configuration from the environment (`PFC_*`, else the defaults), pointing at the
    /// given jobs core; auth and chat default to the same address. `pfc dev` and tests use it.
    pub fn from_env(jobs_url: impl Into<String>) -> Result<Self, clap::Error> {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: Config,
        }
        let mut config = Wrapper::try_parse_from(["pfc-gateway"])?.config;
        let url = jobs_url.into();
        config.jobs_url = url.clone();
        config.auth_url = url.clone();
        config.chat_url = url;
        Ok(config)
    }
}
