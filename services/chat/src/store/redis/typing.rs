//! Typing signals over Redis Pub/Sub: published on `pfc:chat:{<room>}:typing`, received by
//! every replica with a subscriber in the room, and never stored (a signal sent while nobody
//! listens is gone, as it should be). On a cluster the channel is sharded (`SPUBLISH`), so a
//! signal travels to the room's shard only.

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
        let r: Result<i64, RedisError> = redis::cmd(pfc_redis::publish_command(self.backend()))
            .arg(super::keys::typing(room))
            .arg(signal.encode())
            .query_async(&mut conn)
            .await;
        self.check(r)?;
        Ok(())
    }

    pub(super) async fn typing_stream_impl(&self, room: &str) -> Result<TypingStream, ChatError> {
        let sub = pfc_redis::subscribe(self.backend(), &super::keys::typing(room)).await?;
        // Payloads that don't decode (not written by pfc) are dropped, never forwarded.
        let stream = sub.filter_map(|push| async move {
            match push {
                pfc_redis::Push::Message(bytes) => String::from_utf8(bytes)
                    .ok()
                    .and_then(|p| Typing::decode(&p)),
                _ => None,
            }
        });
        Ok(Box::pin(stream))
    }
}
