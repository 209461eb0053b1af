//! The one Redis connection layer of the job store.
//!
//! A redis-rs `MultiplexedConnection` is built to be shared: concurrent calls on it are
//! pipelined over one socket. So the store keeps a few long-lived ones and hands out clones;
//! a pool object per call would cost a recycle round trip each time (measured at about half of
//! Redis's syscalls under load). A connection is dropped, and made anew on next use, after a
//! connection-level error. Every socket has `TCP_NODELAY` (no Nagle delay on small replies)
//! and TCP keepalive, so a half-open connection (a peer that vanished without a FIN) is
//! noticed within seconds instead of never.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::io::tcp::{socket2::TcpKeepalive, TcpSettings};
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo};

use crate::{Result, StoreError};

/// How long one command may take before it fails with a timeout. Long enough for a big
/// pipeline on a busy Redis; short enough that health notices a hung server.
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A Redis client whose sockets have `TCP_NODELAY` and keepalive set.
pub(crate) fn client(url: &str) -> Result<Client> {
    let info = url.into_connection_info()?;
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(5))
        .with_interval(Duration::from_secs(2))
        .with_retries(3);
    let tcp = TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive)
        .set_user_timeout(Duration::from_secs(15));
    Ok(Client::open(info.set_tcp_settings(tcp))?)
}

/// Settings for every command connection (the blocking one has its own timeout).
pub(crate) fn config(response_timeout: Duration) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(Duration::from_secs(2)))
}

/// A few shared multiplexed connections, used round-robin.
pub(crate) struct Conns {
    client: Client,
    slots: Vec<tokio::sync::Mutex<Option<MultiplexedConnection>>>,
    next: AtomicUsize,
}

impl Conns {
    /// `n` lazily opened connections to `client`'s server.
    pub(crate) fn new(client: Client, n: usize) -> Self {
        Self {
            client,
            slots: (0..n.max(1))
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A connection (opened on first use or after a connection-level error).
    pub(crate) async fn get(&self) -> Result<MultiplexedConnection> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config(RESPONSE_TIMEOUT))
            .await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Passes a result through, forgetting the connections after a connection-level error.
    pub(crate) fn check<T>(&self, r: redis::RedisResult<T>) -> Result<T> {
        r.map_err(|e| StoreError::from(self.fail(e)))
    }

    /// Forgets every connection after a connection-level error, so the next call reconnects.
    pub(crate) fn fail(&self, e: redis::RedisError) -> redis::RedisError {
        if is_transport(&e) {
            for s in &self.slots {
                if let Ok(mut g) = s.try_lock() {
                    *g = None;
                }
            }
        }
        e
    }
}

/// True for failures of the connection rather than of the command: the command may or may
/// not have run, so only idempotent calls may be retried.
pub(crate) fn is_transport(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}
