//! The access-control switch and where credentials are checked against.

use std::time::Duration;

/// `--auth-required` and the auth service to fetch verification keys from (`pfc jobs`).
#[derive(Debug, Clone, clap::Args)]
pub struct AccessArgs {
    /// Require a credential with the right scope on every JobService and WorkerService call
    /// (docs/security.md). Off by default for local use; the chart's production values turn
    /// it on.
    #[arg(long, env = "PFC_AUTH_REQUIRED", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub auth_required: bool,
    /// Auth service whose public keys (GetJwks) verify Login tokens locally.
    #[arg(
        long = "auth-url",
        env = "PFC_AUTH_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub auth_url: String,
    /// How often the verification keys are re-fetched from auth (key rotation).
    #[arg(long = "auth-keys-refresh", env = "PFC_AUTH_KEYS_REFRESH", default_value = "5m", value_parser = humantime::parse_duration)]
    pub keys_refresh: Duration,
    /// A pre-shared worker credential (at least 32 characters) accepted with the `worker`
    /// scope besides API keys: the chart generates one into a Secret for its worker pods.
    #[arg(long = "worker-key", env = "PFC_WORKER_KEY", hide_env_values = true)]
    pub worker_key: Option<String>,
}

impl Default for AccessArgs {
    fn default() -> Self {
        Self {
            auth_required: false,
            auth_url: "http://127.0.0.1:50052".into(),
            keys_refresh: Duration::from_secs(300),
            worker_key: None,
        }
    }
}
