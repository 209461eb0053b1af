//! Storage of rooms, messages and presence behind one trait, with two implementations that
//! pass the same contract tests (`tests/contract.rs`): [`RedisStore`] (any number of
//! replicas agree) and [`MemoryStore`] (embedded `pfc dev`, one process).

mod memory;
mod redis;

use std::time::Duration;

use async_trait::async_trait;

pub use self::memory::MemoryStore;
pub use self::redis::{keys, RedisStore};
use crate::{ChatError, MessageId};

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Stream id.
    pub id: MessageId,
    /// Room name.
    pub room: String,
    /// Sender's username.
    pub author: String,
    /// Text.
    pub text: String,
}

impl StoredMessage {
    /// The protobuf form (the send time is the id's milliseconds).
    pub fn to_proto(&self) -> pfc_proto::chat::v1::Message {
        pfc_proto::chat::v1::Message {
            id: self.id.to_string(),
            room: self.room.clone(),
            author: self.author.clone(),
            text: self.text.clone(),
            sent_at: Some(pfc_proto::timestamp_from_ms(self.id.ms as i64)),
        }
    }
}

/// An online member: username and last heartbeat (ms since the epoch).
pub type Member = (String, i64);

/// An ephemeral typing signal: `user` started (`typing`) or stopped typing. Never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typing {
    /// Who (from the sender's token).
    pub user: String,
    /// Started (true) or stopped (false).
    pub typing: bool,
}

impl Typing {
    /// Wire form on Pub/Sub: `1:<user>` or `0:<user>`.
    pub fn encode(&self) -> String {
        format!("{}:{}", u8::from(self.typing), self.user)
    }

    /// Parses [`Typing::encode`]'s form; anything else (or an invalid username) is `None`.
    pub fn decode(s: &str) -> Option<Self> {
        let (flag, user) = s.split_once(':')?;
        let typing = match flag {
            "1" => true,
            "0" => false,
            _ => return None,
        };
        pfc_auth::validate_username(user).ok()?;
        Some(Self {
            user: user.into(),
            typing,
        })
    }
}

/// A room's typing signals as they arrive.
pub type TypingStream = std::pin::Pin<Box<dyn futures::Stream<Item = Typing> + Send>>;

/// What the chat role needs from storage.
#[async_trait]
pub trait ChatStore: Send + Sync + 'static {
    /// Appends a message (the store assigns the id) and marks the room active.
    async fn append(
        &self,
        room: &str,
        author: &str,
        text: &str,
    ) -> Result<StoredMessage, ChatError>;
    /// Up to `limit` messages strictly older than `before` (or the newest), newest first.
    async fn history(
        &self,
        room: &str,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, ChatError>;
    /// Up to `limit` messages strictly after `after`, oldest first.
    async fn after(
        &self,
        room: &str,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, ChatError>;
    /// Like [`ChatStore::after`], but when there is nothing yet waits up to `block` for a
    /// message to arrive (the live read behind one room's fan-out).
    async fn wait_after(
        &self,
        room: &str,
        after: MessageId,
        limit: usize,
        block: Duration,
    ) -> Result<Vec<StoredMessage>, ChatError>;
    /// The id of the room's newest message, [`MessageId::ZERO`] when there is none.
    async fn last_id(&self, room: &str) -> Result<MessageId, ChatError>;
    /// Rooms with messages and their last activity (ms), most recent first.
    async fn rooms(&self, limit: usize) -> Result<Vec<(String, i64)>, ChatError>;
    /// Records `user` as present at `now_ms`; returns how many are online (within `ttl`).
    async fn heartbeat(
        &self,
        room: &str,
        user: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<usize, ChatError>;
    /// Removes `user`; returns how many remain online.
    async fn leave(
        &self,
        room: &str,
        user: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<usize, ChatError>;
    /// Members whose last heartbeat is within `ttl` of `now_ms`, sorted by username.
    async fn online(
        &self,
        room: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<Vec<Member>, ChatError>;
    /// Takes one token from the rate-limit bucket `bucket` (GCRA: `rate` per second, up to
    /// `burst` at once), counted where every replica sees it. `Ok(Err(ms))`: empty, one is
    /// available in `ms`.
    async fn take_token(
        &self,
        bucket: &str,
        rate: f64,
        burst: f64,
    ) -> Result<Result<(), u64>, ChatError>;
    /// Moves `user`'s read marker in `room` to `id`, clamped to the room's newest message and
    /// never backwards; returns the stored marker (`None` for a room without messages).
    async fn mark_read(
        &self,
        room: &str,
        user: &str,
        id: MessageId,
    ) -> Result<Option<MessageId>, ChatError>;
    /// For each room: `user`'s read marker and how many messages by others follow it (at most
    /// `cap`); `None` where the user has no marker.
    async fn unread(
        &self,
        user: &str,
        rooms: &[String],
        cap: usize,
    ) -> Result<Vec<Option<(MessageId, usize)>>, ChatError>;
    /// Sends a typing signal to every replica's subscribers of `room` (not stored).
    async fn publish_typing(&self, room: &str, signal: &Typing) -> Result<(), ChatError>;
    /// The typing signals of `room` from now on (ends if the connection drops).
    async fn typing_stream(&self, room: &str) -> Result<TypingStream, ChatError>;
    /// Checks the store is reachable (health).
    async fn ping(&self) -> Result<(), ChatError>;
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::Typing;

    /// Typing signals round-trip on the wire; foreign payloads and bad usernames are dropped.
    #[test]
    fn typing_wire_form() {
        let t = Typing {
            user: "alice".into(),
            typing: true,
        };
        assert_eq!(t.encode(), "1:alice");
        assert_eq!(Typing::decode("1:alice"), Some(t));
        assert_eq!(Typing::decode("0:bob").map(|t| t.typing), Some(false));
        for bad in ["", "1", "2:alice", "1:", "1:a b", "1:<script>"] {
            assert_eq!(Typing::decode(bad), None, "{bad:?}");
        }
    }
}
