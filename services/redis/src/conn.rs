//! Connections: a single server or a Redis Cluster, for every role that uses Redis.
//!
//! A redis-rs `MultiplexedConnection` (and a `ClusterConnection`, multiplexed per node) is
//! built to be shared: concurrent calls on it are pipelined over one socket. So the store
//! keeps a few long-lived ones and hands out clones; a pool object per call would cost a
//! recycle round trip each time (measured at about half of Redis's syscalls under load). A
//! single-server connection is dropped, and made anew on next use, after a connection-level
//! error; the cluster client reconnects, follows `MOVED`/`ASK` and failovers by itself. Every
//! socket has `TCP_NODELAY` (no Nagle delay on small replies) and TCP keepalive, so a
//! half-open connection (a peer that vanished without a FIN) is noticed within seconds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::{socket2::TcpKeepalive, TcpSettings};
use redis::{AsyncConnectionConfig, Client, Cmd, IntoConnectionInfo, Pipeline, RedisFuture, Value};

use redis::RedisResult;

/// How long one command may take before it fails with a timeout. Long enough for a big
/// pipeline on a busy Redis; short enough that health notices a hung server.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// TCP settings of every socket.
fn tcp() -> TcpSettings {
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(5))
        .with_interval(Duration::from_secs(2))
        .with_retries(3);
    TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive)
        .set_user_timeout(Duration::from_secs(15))
}

/// A Redis client whose sockets have `TCP_NODELAY` and keepalive set.
pub fn client(url: &str) -> RedisResult<Client> {
    let info = url.into_connection_info()?;
    Client::open(info.set_tcp_settings(tcp()))
}

/// A Redis Cluster client over the seed nodes `urls` (comma-separated).
pub fn cluster_client(
    urls: &str,
    response_timeout: Duration,
    push: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
) -> RedisResult<ClusterClient> {
    let nodes: Vec<String> = urls
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let mut b = ClusterClientBuilder::new(nodes)
        .tcp_settings(tcp())
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(response_timeout)
        // a failover takes `cluster-node-timeout` plus an election: keep retrying that long
        .overall_response_timeout(Some(response_timeout * 4))
        .retries(8);
    if let Some(tx) = push {
        b = b
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(tx);
    }
    b.build()
}

/// Settings for every single-server command connection (the blocking one has its own).
pub fn config(response_timeout: Duration) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(Duration::from_secs(2)))
}

/// A connection to a single server or to a cluster; both speak the same commands, and every
/// call of the store stays in one slot (the queue's hash tag), so the cluster routes it whole.
#[derive(Clone)]
pub enum Conn {
    /// One server.
    Single(MultiplexedConnection),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Waits until `replicas` replicas acknowledged every write made so far on `conn` to the
/// master of `slot` (Redis `WAIT`, bounded by `timeout_ms`); returns how many did. On a
/// cluster, `WAIT` is sent to that slot's master over the same node connection (the client
/// would otherwise send it to every master).
pub async fn wait(
    conn: &mut Conn,
    slot: u16,
    replicas: u32,
    timeout_ms: u64,
) -> redis::RedisResult<i64> {
    let mut cmd = redis::cmd("WAIT");
    cmd.arg(replicas).arg(timeout_ms);
    match conn {
        Conn::Single(c) => cmd.query_async(c).await,
        Conn::Cluster(c) => {
            use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                slot,
                SlotAddr::Master,
            )));
            let v = c.route_command(cmd, route).await?;
            redis::from_redis_value(v).map_err(redis::RedisError::from)
        }
    }
}

/// Where the store's Redis is.
#[derive(Clone)]
pub enum Backend {
    /// One server.
    Single(Client),
    /// A cluster, by its seed nodes.
    Cluster(String),
}

impl Backend {
    /// True for a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Backend::Cluster(_))
    }

    /// A new connection with `response_timeout` (for the blocking connection).
    pub async fn connect(&self, response_timeout: Duration) -> RedisResult<Conn> {
        Ok(match self {
            Backend::Single(c) => Conn::Single(
                c.get_multiplexed_async_connection_with_config(&config(response_timeout))
                    .await?,
            ),
            Backend::Cluster(urls) => Conn::Cluster(
                cluster_client(urls, response_timeout, None)?
                    .get_async_connection()
                    .await?,
            ),
        })
    }
}

/// A few shared connections, used round-robin (one for a cluster: it multiplexes per node).
pub struct Conns {
    backend: Backend,
    slots: Vec<tokio::sync::Mutex<Option<Conn>>>,
    next: AtomicUsize,
}

impl Conns {
    /// Lazily opened connections to `backend`.
    pub fn new(backend: Backend) -> Self {
        let n = if backend.is_cluster() { 1 } else { 4 };
        Self {
            backend,
            slots: (0..n).map(|_| tokio::sync::Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Where these connections go.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// A connection (opened on first use or after a connection-level error).
    pub async fn get(&self) -> RedisResult<Conn> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let conn = self.backend.connect(RESPONSE_TIMEOUT).await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Passes a result through, forgetting the connections after a connection-level error.
    pub fn check<T>(&self, r: RedisResult<T>) -> RedisResult<T> {
        r.map_err(|e| self.fail(e))
    }

    /// Forgets every single-server connection after a connection-level error, so the next
    /// call reconnects (the cluster client does that by itself).
    pub fn fail(&self, e: redis::RedisError) -> redis::RedisError {
        if is_transport(&e) && !self.backend.is_cluster() {
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
pub fn is_transport(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_cluster_error()
        || matches!(e.code(), Some("CLUSTERDOWN" | "TRYAGAIN" | "MASTERDOWN"))
}
