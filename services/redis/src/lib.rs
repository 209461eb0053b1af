//! pfc's one Redis connection layer, used by every role that talks to Redis (the job store,
//! the chat store): a single server or a Redis Cluster behind one [`Conn`] type, sockets with
//! `TCP_NODELAY` and keepalive, reconnection after transport errors, sharded pub/sub on a
//! cluster, and the URL/password helpers the roles' flags share. Written once so the two
//! stores cannot drift apart in how they connect, time out or recover.

pub mod conn;
pub mod pubsub;
pub mod url;

pub use conn::{is_transport, Backend, Conn, Conns, RESPONSE_TIMEOUT};
pub use pubsub::{publish_command, subscribe, Push, Subscription};

impl Backend {
    /// Where `url` points: one server, or with `cluster` a Redis Cluster seeded by the
    /// comma-separated `url`. Checks the URLs now (a typo fails at startup, not on first use).
    pub fn open(url: &str, cluster: bool) -> redis::RedisResult<Self> {
        if cluster {
            conn::cluster_client(url, RESPONSE_TIMEOUT, None)?;
            Ok(Backend::Cluster(url.to_owned()))
        } else {
            Ok(Backend::Single(conn::client(url)?))
        }
    }
}
