//! Store settings shared by every role that opens the job store (`pfc jobs`, `pfc worker`,
//! `pfc dev`), so the lease and retention are configured the same way everywhere.

use std::sync::Arc;
use std::time::Duration;

use crate::{JobStore, MemoryStore, RedisStore, Result, StoreConfig};

/// Where the jobs live and how long leases and results last.
#[derive(Clone, Debug, clap::Args)]
pub struct StoreArgs {
    /// Redis URL (`redis://[:password@]host:port[/db]`). `pfc dev` uses an in-memory store
    /// when this is unset.
    #[arg(long, env = "PFC_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Redis password, added to the URL (lets Kubernetes inject it from a Secret).
    #[arg(long, env = "PFC_REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,

    /// How long finished jobs (and idempotency keys) are kept.
    #[arg(long, env = "PFC_JOB_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub job_ttl: Duration,

    /// A job whose lease is not renewed for this long is delivered again (workers renew
    /// every third of it).
    #[arg(long, env = "PFC_LEASE", default_value = "3s", value_parser = humantime::parse_duration)]
    pub lease: Duration,

    /// First retry delay; doubles per attempt.
    #[arg(long, env = "PFC_RETRY_BACKOFF", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub retry_backoff: Duration,
}

impl StoreArgs {
    /// The store tunables these arguments describe.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            retention: self.job_ttl,
            lease: self.lease,
            backoff_base: self.retry_backoff,
            backoff_max: Duration::from_secs(60).max(self.retry_backoff),
            worker_ttl: (self.lease * 2).max(Duration::from_secs(5)),
        }
    }

    /// The Redis URL with the password applied, if a URL is set.
    pub fn effective_redis_url(&self) -> Option<String> {
        let url = self.redis_url.clone()?;
        Some(match &self.redis_password {
            Some(pw) if !pw.is_empty() => with_password(&url, pw),
            _ => url,
        })
    }

    /// Opens the Redis store, or the in-memory one when no URL is set and `memory_ok`.
    pub fn open(&self, memory_ok: bool) -> Result<Arc<dyn JobStore>> {
        match self.effective_redis_url() {
            Some(url) => Ok(RedisStore::new(&url, self.store_config())?),
            None if memory_ok => Ok(Arc::new(MemoryStore::new(self.store_config()))),
            None => Ok(RedisStore::new(
                "redis://127.0.0.1:6379",
                self.store_config(),
            )?),
        }
    }
}

/// Puts `password` into a `redis://` URL (replacing any password already there).
pub fn with_password(url: &str, password: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let user = auth
        .map(|a| a.split(':').next().unwrap_or(""))
        .unwrap_or("");
    let enc: String = password
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{scheme}://{user}:{enc}@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passwords are inserted (percent-encoded) with or without an existing user or password.
    #[test]
    fn password_goes_into_url() {
        assert_eq!(
            with_password("redis://h:6379", "p@ss"),
            "redis://:p%40ss@h:6379"
        );
        assert_eq!(
            with_password("redis://u:old@h:6379/1", "new"),
            "redis://u:new@h:6379/1"
        );
        assert_eq!(with_password("nonsense", "x"), "nonsense");
    }
}
