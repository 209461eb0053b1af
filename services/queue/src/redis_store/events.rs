//! The store's one subscription to the events of every queue, per process.
//!
//! Each queue publishes on its own channel (`pfc:{<queue>}:events`, in its slot). On one
//! Redis the listener takes them all with one pattern subscription, so a queue created later
//! needs nothing; on a cluster (sharded pub/sub has no patterns) it `SSUBSCRIBE`s every queue
//! in the registry and polls the registry every second for new ones — the subscribe
//! confirmation of each new one is a [`Feed::Gap`], so watchers re-read anything whose events
//! came before it.
//!
//! Pub/sub delivers at most once and only while subscribed, so the listener must know when
//! it may have missed something: after every (re)subscribe it sends [`Feed::Gap`] (watchers
//! re-read), and it notices a silent connection — half-open, or a server that dropped the
//! subscriber for its output buffer — by publishing a ping to itself when the channel has
//! been quiet and resubscribing when even the ping does not come back.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::conn::{Backend, Conns};
use super::record::parse_event;
use crate::model::Feed;

/// Quiet this long, the listener pings itself.
const PING_AFTER: Duration = Duration::from_secs(2);
/// Quiet this long (ping included), the subscription is presumed dead.
const DEAD_AFTER: Duration = Duration::from_secs(5);
/// The pattern of every queue's events channel (one Redis).
const EVERY_QUEUE: &str = "pfc:{*}:events";
/// How often the cluster listener looks for new queues.
const NEW_QUEUES_EVERY: Duration = Duration::from_secs(1);

/// Runs the listener forever (spawned once per store).
pub(crate) async fn listen(
    backend: Backend,
    conns: Arc<Conns>,
    channel: String,
    tx: broadcast::Sender<Feed>,
) {
    let client = match backend {
        Backend::Single(client) => client,
        Backend::Cluster(urls) => return listen_cluster(urls, conns, channel, tx).await,
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        match client.get_async_pubsub().await {
            Ok(mut ps) => {
                if ps.psubscribe(EVERY_QUEUE).await.is_ok() {
                    backoff = Duration::from_millis(100);
                    // events published while no subscription was live are lost: tell watchers
                    // to re-read (this also covers the very first subscribe)
                    let _ = tx.send(Feed::Gap);
                    let stream = ps.into_on_message().map(|m| m.get_payload_bytes().to_vec());
                    follow_bytes(&conns, &channel, false, Box::pin(stream), &tx).await;
                }
                tracing::warn!("job event subscription lost; resubscribing");
            }
            Err(e) => tracing::debug!(error = %e, "job event subscription failed"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// The cluster listener: sharded pub/sub (`SSUBSCRIBE`) on the node that owns the queue's
/// slot, over RESP3 pushes. The cluster client resubscribes by itself after a disconnect or
/// a failover; every (re)subscribe and disconnect is a [`Feed::Gap`].
async fn listen_cluster(
    urls: String,
    conns: Arc<Conns>,
    channel: String,
    tx: broadcast::Sender<Feed>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let (push_tx, mut push_rx) = tokio::sync::mpsc::unbounded_channel();
        let sub = async {
            let client = super::conn::cluster_client(&urls, Duration::from_secs(5), Some(push_tx))
                .map_err(|e| e.to_string())?;
            let mut conn = client
                .get_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            conn.ssubscribe(&channel).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(conn)
        };
        match sub.await {
            Ok(conn) => {
                backoff = Duration::from_millis(100);
                let _ = tx.send(Feed::Gap);
                let follower =
                    tokio::spawn(follow_new_queues(conns.clone(), conn, channel.clone()));
                let stream = futures::stream::poll_fn(move |cx| push_rx.poll_recv(cx)).filter_map(
                    |p: redis::PushInfo| {
                        let tx = tx.clone();
                        async move {
                            match p.kind {
                                redis::PushKind::SMessage | redis::PushKind::Message => {
                                    // data: [channel, payload]
                                    let payload = p.data.into_iter().nth(1)?;
                                    let bytes: Vec<u8> = redis::from_redis_value(payload).ok()?;
                                    Some(bytes)
                                }
                                redis::PushKind::SSubscribe | redis::PushKind::Disconnection => {
                                    let _ = tx.send(Feed::Gap);
                                    None
                                }
                                _ => None,
                            }
                        }
                    },
                );
                follow_bytes(&conns, &channel, true, Box::pin(stream), &tx).await;
                follower.abort();
            }
            Err(e) => tracing::debug!(error = %e, "job event subscription (cluster) failed"),
        }
        tracing::warn!("job event subscription lost; resubscribing");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Subscribes the cluster listener's connection to the channel of every queue the registry
/// names, now and whenever a new one appears (the default queue's is subscribed already).
async fn follow_new_queues(
    conns: Arc<Conns>,
    mut conn: redis::cluster_async::ClusterConnection,
    default_channel: String,
) {
    let mut subscribed = std::collections::BTreeSet::from([default_channel]);
    loop {
        if let Ok(mut c) = conns.get().await {
            let names: redis::RedisResult<Vec<String>> = redis::cmd("SMEMBERS")
                .arg(super::registry::QUEUES_KEY)
                .query_async(&mut c)
                .await;
            for name in names.unwrap_or_default() {
                let channel = format!("pfc:{{{name}}}:events");
                if !subscribed.contains(&channel) && conn.ssubscribe(&channel).await.is_ok() {
                    subscribed.insert(channel);
                }
            }
        }
        tokio::time::sleep(NEW_QUEUES_EVERY).await;
    }
}

/// Forwards messages until the subscription ends or goes silent.
async fn follow_bytes(
    conns: &Arc<Conns>,
    channel: &str,
    sharded: bool,
    mut stream: impl futures::Stream<Item = Vec<u8>> + Unpin,
    tx: &broadcast::Sender<Feed>,
) {
    let mut last = Instant::now();
    let mut pinged = false;
    loop {
        let wait = if pinged { DEAD_AFTER } else { PING_AFTER };
        match tokio::time::timeout_at(last + wait, stream.next()).await {
            Ok(Some(msg)) => {
                last = Instant::now();
                pinged = false;
                if let Some(ev) = parse_event(&msg) {
                    let _ = tx.send(Feed::Event(ev));
                }
            }
            Ok(None) => return,
            Err(_) if pinged => {
                tracing::warn!("job event subscription silent; presumed dead");
                return;
            }
            Err(_) => {
                pinged = true;
                let (conns, channel) = (conns.clone(), channel.to_owned());
                tokio::spawn(async move {
                    if let Ok(mut c) = conns.get().await {
                        let publish = if sharded { "SPUBLISH" } else { "PUBLISH" };
                        let _: redis::RedisResult<i64> = redis::cmd(publish)
                            .arg(&channel)
                            .arg(r#"{"ping":1}"#)
                            .query_async(&mut c)
                            .await;
                    }
                });
            }
        }
    }
}
