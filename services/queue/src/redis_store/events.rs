//! The store's one subscription to the queue's events channel, per process.
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

use super::conn::Conns;
use super::record::parse_event;
use crate::model::Feed;

/// Quiet this long, the listener pings itself.
const PING_AFTER: Duration = Duration::from_secs(2);
/// Quiet this long (ping included), the subscription is presumed dead.
const DEAD_AFTER: Duration = Duration::from_secs(5);

/// Runs the listener forever (spawned once per store).
pub(crate) async fn listen(
    client: redis::Client,
    conns: Arc<Conns>,
    channel: String,
    tx: broadcast::Sender<Feed>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match client.get_async_pubsub().await {
            Ok(mut ps) => {
                if ps.subscribe(&channel).await.is_ok() {
                    backoff = Duration::from_millis(100);
                    // events published while no subscription was live are lost: tell watchers
                    // to re-read (this also covers the very first subscribe)
                    let _ = tx.send(Feed::Gap);
                    follow(&conns, &channel, ps.into_on_message(), &tx).await;
                }
                tracing::warn!("job event subscription lost; resubscribing");
            }
            Err(e) => tracing::debug!(error = %e, "job event subscription failed"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Forwards messages until the subscription ends or goes silent.
async fn follow(
    conns: &Arc<Conns>,
    channel: &str,
    mut stream: impl futures::Stream<Item = redis::Msg> + Unpin,
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
                if let Some(ev) = parse_event(msg.get_payload_bytes()) {
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
                        let _: redis::RedisResult<i64> = redis::cmd("PUBLISH")
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
