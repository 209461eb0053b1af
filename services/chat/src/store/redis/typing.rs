//! Typing signals over Redis Pub/Sub: published on `pfc:chat:{<room>}:typing`, received by
//! every replica with a subscriber in the room, and never stored (a signal sent while nobody
//! listens is gone, as it should be).

use futures::StreamExt;
use redis::RedisError;

use super::RedisStore;
use crate::store::{Typing, TypingStream};
use crate::ChatError;

impl RedisStore {
    pub(super) async fn publish_typing_impl(
        &self,
        room: &str,
        signal: &Typing,
    ) -> Result<(), ChatError> {
        let mut conn = self.conn().await?;
        let r: Result<i64, RedisError> = redis::cmd("PUBLISH")
            .arg(super::keys::typing(room))
            .arg(signal.encode())
            .query_async(&mut conn)
            .await;
        self.check(r)?;
        Ok(())
    }

    pub(super) async fn typing_stream_impl(&self, room: &str) -> Result<TypingStream, ChatError> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(super::keys::typing(room)).await?;
        // Payloads that don't decode (not written by pfc) are dropped, never forwarded.
        let stream = pubsub.into_on_message().filter_map(|msg| async move {
            msg.get_payload::<String>()
                .ok()
                .and_then(|p| Typing::decode(&p))
        });
        Ok(Box::pin(stream))
    }
}
