//! The job store's connections: `pfc-redis`, the connection layer every Redis role shares
//! (single server or cluster, `TCP_NODELAY` and keepalive, reconnect after transport errors).

pub use pfc_redis::conn::Conn;
pub(crate) use pfc_redis::conn::*;

use crate::Result;

/// Shared connections to the job store's Redis for companion stores that keep their own keys
/// in their own hash slot (the schedules): the same sockets settings, timeouts, reconnects
/// and cluster support as the job store, configured by the same [`crate::StoreArgs`].
#[derive(Clone)]
pub struct RedisConnections(std::sync::Arc<Conns>);

impl RedisConnections {
    /// Connections (opened lazily) to one server, or to the cluster whose seed nodes `url`
    /// names when `mode.cluster`.
    pub fn open(url: &str, mode: &super::RedisMode) -> Result<Self> {
        let backend = Backend::open(url, mode.cluster)?;
        Ok(Self(std::sync::Arc::new(Conns::new(backend))))
    }

    /// A connection, shared with concurrent callers (opened on first use, or after a
    /// connection-level error reported through [`RedisConnections::check`]).
    pub async fn get(&self) -> Result<Conn> {
        Ok(self.0.get().await?)
    }

    /// Passes a command's result through, forgetting broken connections so the next call
    /// reconnects.
    pub fn check<T>(&self, r: redis::RedisResult<T>) -> Result<T> {
        Ok(self.0.check(r)?)
    }
}
