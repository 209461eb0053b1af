//! Pub/sub on one channel, the same way on a single server and on a cluster.
//!
//! A single server gets classic `SUBSCRIBE`/`PUBLISH`. A cluster gets *sharded* pub/sub
//! (`SSUBSCRIBE`/`SPUBLISH`): a message goes only to the node that owns the channel's slot
//! and its replicas, instead of being broadcast over the cluster bus to every node, so a
//! channel with a hash tag (`…:{room}:typing`) costs one shard, not the whole cluster. The
//! cluster client delivers sharded messages as RESP3 pushes and resubscribes by itself after
//! a disconnect or a failover; both show up in the stream as [`Push::Resubscribed`] /
//! [`Push::Disconnected`], so a caller that must not miss anything knows when to re-read.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use redis::RedisResult;

use crate::conn::{cluster_client, Backend};

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// A message's payload.
    Message(Vec<u8>),
    /// The subscription was (re-)established: messages published before may be missed.
    Resubscribed,
    /// The connection dropped (a cluster client reconnects and resubscribes by itself).
    Disconnected,
}

/// A live subscription; it ends when the connection is gone for good (single server).
pub type Subscription = Pin<Box<dyn Stream<Item = Push> + Send>>;

/// Subscribes to `channel`. The stream's first item is [`Push::Resubscribed`].
pub async fn subscribe(backend: &Backend, channel: &str) -> RedisResult<Subscription> {
    match backend {
        Backend::Single(client) => {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(channel).await?;
            let messages = ps
                .into_on_message()
                .map(|m| Push::Message(m.get_payload_bytes().to_vec()));
            Ok(Box::pin(
                futures::stream::iter([Push::Resubscribed]).chain(messages),
            ))
        }
        Backend::Cluster(urls) => {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let client = cluster_client(urls, std::time::Duration::from_secs(5), Some(tx))?;
            let mut conn = client.get_async_connection().await?;
            conn.ssubscribe(channel).await?;
            let pushes = futures::stream::poll_fn(move |cx| {
                // the connection lives as long as the stream: dropping it unsubscribes
                let _keep = &conn;
                rx.poll_recv(cx)
            })
            .filter_map(|p: redis::PushInfo| async move {
                match p.kind {
                    redis::PushKind::SMessage | redis::PushKind::Message => {
                        // data: [channel, payload]
                        let payload = p.data.into_iter().nth(1)?;
                        redis::from_redis_value::<Vec<u8>>(payload)
                            .ok()
                            .map(Push::Message)
                    }
                    redis::PushKind::SSubscribe => Some(Push::Resubscribed),
                    redis::PushKind::Disconnection => Some(Push::Disconnected),
                    _ => None,
                }
            });
            // The SSUBSCRIBE confirmation arrives as a push too, and is the first item.
            Ok(Box::pin(pushes))
        }
    }
}

/// The publish command for `backend`: `PUBLISH`, or `SPUBLISH` on a cluster (sharded).
pub fn publish_command(backend: &Backend) -> &'static str {
    if backend.is_cluster() {
        "SPUBLISH"
    } else {
        "PUBLISH"
    }
}
