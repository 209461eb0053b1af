//! Store settings shared by every role that opens the job store (`pfc jobs`, `pfc worker`,
//! `pfc dev`), so the lease and retention are configured the same way everywhere.

use std::path::PathBuf;
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

    /// File holding the Redis password (e.g. a mounted Kubernetes Secret), read once at
    /// startup ([`StoreArgs::load_password_file`]); instead of `--redis-password`.
    #[arg(
        long,
        env = "PFC_REDIS_PASSWORD_FILE",
        conflicts_with = "redis_password"
    )]
    pub redis_password_file: Option<PathBuf>,

    /// `--redis-url` names the seed nodes of a Redis Cluster (comma-separated URLs).
    #[arg(long, env = "PFC_REDIS_CLUSTER", default_value_t = false)]
    pub redis_cluster: bool,

    /// Replicas that must acknowledge every change a caller is told about (Redis `WAIT`,
    /// 2 s timeout → UNAVAILABLE), so an acknowledged job survives a failover. 0 = none.
    #[arg(long, env = "PFC_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,

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

    /// Reads `redis_password_file`, when set, into `redis_password`. Role entry points call
    /// it once at startup, before [`StoreArgs::open`], so a missing file fails the start.
    pub fn load_password_file(&mut self) -> std::io::Result<()> {
        if let Some(path) = &self.redis_password_file {
            self.redis_password = Some(read_password_file(path)?);
        }
        Ok(())
    }

    /// The Redis URL with the password applied, if a URL is set (to every seed node of a
    /// cluster).
    pub fn effective_redis_url(&self) -> Option<String> {
        let url = self.redis_url.clone()?;
        Some(match &self.redis_password {
            Some(pw) if !pw.is_empty() => pfc_redis::url::with_password_all(&url, pw),
            _ => url,
        })
    }

    /// Cluster mode and replica acknowledgements.
    pub fn redis_mode(&self) -> crate::RedisMode {
        crate::RedisMode {
            cluster: self.redis_cluster,
            wait_replicas: self.redis_wait_replicas,
        }
    }

    /// Connections to the same Redis as [`StoreArgs::open`] for a companion store (the
    /// schedules), or `None` when no URL is set (in-memory mode).
    pub fn redis_connections(&self) -> Result<Option<crate::RedisConnections>> {
        self.effective_redis_url()
            .map(|url| crate::RedisConnections::open(&url, &self.redis_mode()))
            .transpose()
    }

    /// Opens the Redis store, or the in-memory one when no URL is set and `memory_ok`.
    pub fn open(&self, memory_ok: bool) -> Result<Arc<dyn JobStore>> {
        let (store, backend): (Arc<dyn JobStore>, _) = match self.effective_redis_url() {
            Some(url) => (
                RedisStore::open(&url, self.store_config(), &self.redis_mode())?,
                "redis",
            ),
            None if memory_ok => (Arc::new(MemoryStore::new(self.store_config())), "memory"),
            None => (
                RedisStore::new("redis://127.0.0.1:6379", self.store_config())?,
                "redis",
            ),
        };
        Ok(crate::metered::Metered::wrap(store, backend))
    }
}

pub use pfc_redis::url::{read_password_file, with_password};

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

    /// `--redis-password-file` (`PFC_REDIS_PASSWORD_FILE`) puts the file's password, without
    /// its trailing newline, into the URL; a missing file is an error naming it.
    #[test]
    fn password_file_is_read_at_startup() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct A {
            #[command(flatten)]
            s: StoreArgs,
        }
        let dir = std::env::temp_dir().join(format!("pfc-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("redis-password");
        std::fs::write(&file, "s3cr:t\n").unwrap();
        let mut args = A::parse_from([
            "t",
            "--redis-url",
            "redis://r:6379",
            "--redis-password-file",
            file.to_str().unwrap(),
        ])
        .s;
        args.load_password_file().unwrap();
        assert_eq!(
            args.effective_redis_url().as_deref(),
            Some("redis://:s3cr%3At@r:6379")
        );
        args.redis_password_file = Some(dir.join("missing"));
        let err = args.load_password_file().unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        // both ways at once is a usage error
        assert!(A::try_parse_from([
            "t",
            "--redis-password",
            "x",
            "--redis-password-file",
            file.to_str().unwrap()
        ])
        .is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
