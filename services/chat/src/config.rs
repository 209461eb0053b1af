//! Command-line / environment configuration of the chat role.

use std::net::SocketAddr;
use std::time::Duration;

/// Configuration of `pfc chat` (every flag has a `PFC_*` environment fallback).
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// gRPC listen address.
    #[arg(
        long = "grpc-addr",
        env = "PFC_GRPC_ADDR",
        default_value = "127.0.0.1:50053"
    )]
    pub grpc_addr: SocketAddr,
    /// Redis URL (`redis://[:password@]host:port[/db]`).
    #[arg(
        long = "redis-url",
        env = "PFC_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    /// Redis password, added to the URL (lets Kubernetes inject it from a Secret).
    #[arg(
        long = "redis-password",
        env = "PFC_REDIS_PASSWORD",
        hide_env_values = true
    )]
    pub redis_password: Option<String>,
    /// `--redis-url` lists seed nodes of a Redis Cluster (comma-separated): every room's keys
    /// share the room's hash tag (one slot), typing signals use sharded pub/sub.
    #[arg(
        long = "redis-cluster",
        env = "PFC_REDIS_CLUSTER",
        default_value_t = false
    )]
    pub redis_cluster: bool,
    /// Auth service, whose public key (GetJwks) verifies tokens locally.
    #[arg(
        long = "auth-url",
        env = "PFC_AUTH_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub auth_url: String,
    #[command(flatten)]
    /// Limits and timings.
    pub limits: Limits,
}

/// Limits and timings of the chat service (shared by `pfc chat` and `pfc dev`).
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// Longest message, in characters.
    #[arg(
        long = "chat-max-message-chars",
        env = "PFC_CHAT_MAX_MESSAGE_CHARS",
        default_value_t = 2000
    )]
    pub max_message_chars: usize,
    /// Messages kept per room (approximate: Redis `XADD MAXLEN ~`).
    #[arg(
        long = "chat-history-len",
        env = "PFC_CHAT_HISTORY_LEN",
        default_value_t = 10_000
    )]
    pub history_len: usize,
    /// Presence lifetime without a heartbeat (clients heartbeat every TTL/3).
    #[arg(long = "chat-presence-ttl", env = "PFC_CHAT_PRESENCE_TTL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub presence_ttl: Duration,
    /// Sustained sends per second allowed per user (token bucket refill rate).
    #[arg(
        long = "chat-send-rate",
        env = "PFC_CHAT_SEND_RATE",
        default_value_t = 5.0
    )]
    pub send_rate: f64,
    /// Burst of sends allowed per user (token bucket size).
    #[arg(
        long = "chat-send-burst",
        env = "PFC_CHAT_SEND_BURST",
        default_value_t = 10.0
    )]
    pub send_burst: f64,
    /// How often the verification keys are re-fetched from auth (key rotation).
    #[arg(long = "chat-keys-refresh", env = "PFC_CHAT_KEYS_REFRESH", default_value = "5m", value_parser = humantime::parse_duration)]
    pub keys_refresh: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_chars: 2000,
            history_len: 10_000,
            presence_ttl: Duration::from_secs(30),
            send_rate: 5.0,
            send_burst: 10.0,
            keys_refresh: Duration::from_secs(300),
        }
    }
}

impl Config {
    /// The Redis URL with the password (if any) spliced in.
    pub fn redis_url_with_password(&self) -> String {
        match self.redis_password.as_deref() {
            Some(pw) if !pw.is_empty() => pfc_redis::url::with_password_all(&self.redis_url, pw),
            _ => self.redis_url.clone(),
        }
    }
}

pub use pfc_redis::url::with_password;

#[cfg(test)]
mod tests {
    use super::*;

    /// The password (from its own variable, e.g. a Kubernetes Secret) goes into the URL.
    #[test]
    fn password_is_spliced_in() {
        let c = |pw: Option<&str>| Config {
            grpc_addr: ([127, 0, 0, 1], 0).into(),
            redis_url: "redis://r:6379".into(),
            redis_password: pw.map(String::from),
            redis_cluster: false,
            auth_url: String::new(),
            limits: Limits::default(),
        };
        assert_eq!(
            c(Some("s3")).redis_url_with_password(),
            "redis://:s3@r:6379"
        );
        assert_eq!(c(None).redis_url_with_password(), "redis://r:6379");
        assert_eq!(c(Some("")).redis_url_with_password(), "redis://r:6379");
    }
}
