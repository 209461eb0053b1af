//! [`RedisStore`]: rooms in Redis, so any number of chat replicas agree.
//!
//! Key layout (every per-room key carries the room as a hash tag, so one room's keys live in
//! one Redis Cluster slot):
//! - `pfc:chat:{<room>}:messages`: a stream; entry fields `a` (author) and `t` (text), capped
//!   with `XADD MAXLEN ~`. Stream ids are the message ids.
//! - `pfc:chat:{<room>}:presence`: a sorted set, member = username, score = last heartbeat (ms).
//! - `pfc:chat:{<room>}:read`: a hash, field = username, value = id of the last message read.
//! - `pfc:chat:{<room>}:typing`: a Pub/Sub channel (typing signals; nothing stored; sharded
//!   pub/sub on a cluster).
//! - `pfc:chat:rooms`: a sorted set, member = room, score = last message (ms), capped to the
//!   [`MAX_INDEXED_ROOMS`] most recently active rooms. On a cluster it lives in a slot of its
//!   own, so it is written by a call of its own next to the message's.
//! - `pfc:chat:rl:{<user>}:<kind>`: a user's rate-limit bucket (GCRA, `limit.rs`), expiring
//!   once full again.
//!
//! Modules: `limit.rs` (the shared rate limit), `read.rs` (read markers, unread counts),
//! `typing.rs` (typing signals over Pub/Sub).

mod limit;
mod read;
mod typing;

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use pfc_redis::{Backend, Conn, Conns};
use redis::RedisError;

use super::{now_ms, ChatStore, Member, StoredMessage, Typing, TypingStream};
use crate::{ChatError, MessageId};

/// Key names.
pub mod keys {
    /// The room's message stream.
    pub fn messages(room: &str) -> String {
        format!("pfc:chat:{{{room}}}:messages")
    }
    /// The room's presence sorted set.
    pub fn presence(room: &str) -> String {
        format!("pfc:chat:{{{room}}}:presence")
    }
    /// The room's read markers (hash: username → last message id read).
    pub fn read(room: &str) -> String {
        format!("pfc:chat:{{{room}}}:read")
    }
    /// The room's typing channel (Pub/Sub).
    pub fn typing(room: &str) -> String {
        format!("pfc:chat:{{{room}}}:typing")
    }
    /// A user's rate-limit bucket for `kind` (`send`, `typing`).
    pub fn rate(kind: &str, user: &str) -> String {
        format!("pfc:chat:rl:{{{user}}}:{kind}")
    }
    /// The index of rooms by last activity.
    pub const ROOMS: &str = "pfc:chat:rooms";
}

/// Rooms kept in the `pfc:chat:rooms` index (most recently active first).
pub const MAX_INDEXED_ROOMS: usize = 10_000;

/// One stream entry as Redis returns it: id and flat field/value list.
type Entry = (String, Vec<String>);

/// A Redis-backed [`ChatStore`], on one server or a Redis Cluster.
///
/// Ordinary commands share a few multiplexed connections (`pfc-redis`: concurrent calls are
/// pipelined over them; a pool checkout per call would cost a recycle round trip each),
/// replaced after a connection-level error. Blocking reads get connections of their own.
/// On a cluster every call stays in one slot: a room's keys share the room's hash tag, and
/// the rooms index (one key) is written in a call of its own.
pub struct RedisStore {
    conns: Conns,
    /// Idle dedicated connections for blocking `XREAD`s (a blocked read must not stall the
    /// shared connection other commands use).
    blocking: Mutex<Vec<Conn>>,
    history_len: usize,
    scripts: Scripts,
}

/// The Lua scripts (each sent once, then called by its SHA).
struct Scripts {
    gcra: redis::Script,
    mark_read: redis::Script,
    unread: redis::Script,
}

impl RedisStore {
    /// Connects (lazily) to the single server `url`, keeping about `history_len` messages per
    /// room.
    pub fn new(url: &str, history_len: usize) -> Result<Self, ChatError> {
        Self::open(url, false, history_len)
    }

    /// Connects (lazily) to `url`: one server, or with `cluster` a Redis Cluster whose seed
    /// nodes `url` lists (comma-separated).
    pub fn open(url: &str, cluster: bool, history_len: usize) -> Result<Self, ChatError> {
        Ok(Self::on(Backend::open(url, cluster)?, history_len))
    }

    /// A store on `backend` (shared with the job store's settings in `pfc dev`).
    pub fn on(backend: Backend, history_len: usize) -> Self {
        Self {
            conns: Conns::new(backend),
            blocking: Mutex::new(Vec::new()),
            history_len: history_len.max(1),
            scripts: Scripts {
                gcra: limit::script(),
                mark_read: read::mark_read_script(),
                unread: read::unread_script(),
            },
        }
    }

    /// Where the store's Redis is.
    pub(super) fn backend(&self) -> &Backend {
        self.conns.backend()
    }

    /// A shared connection (opened on first use or after a connection-level error).
    async fn conn(&self) -> Result<Conn, ChatError> {
        self.check(self.conns.get().await)
    }

    /// Passes a result through, forgetting the shared connections after a connection-level
    /// error so the next call reconnects.
    fn check<T>(&self, r: Result<T, RedisError>) -> Result<T, ChatError> {
        self.conns.check(r).map_err(ChatError::Redis)
    }

    async fn blocking_conn(&self, block: Duration) -> Result<Conn, ChatError> {
        if let Some(c) = self
            .blocking
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
        {
            return Ok(c);
        }
        Ok(self
            .conns
            .backend()
            .connect(block + Duration::from_secs(5))
            .await?)
    }

    fn parse(room: &str, entries: Vec<Entry>) -> Result<Vec<StoredMessage>, ChatError> {
        entries
            .into_iter()
            .map(|(id, fields)| {
                let id: MessageId = id
                    .parse()
                    .map_err(|_| ChatError::Corrupt(format!("stream id {id:?}")))?;
                let (mut author, mut text) = (None, None);
                for pair in fields.chunks(2) {
                    if let [k, v] = pair {
                        match k.as_str() {
                            "a" => author = Some(v.clone()),
                            "t" => text = Some(v.clone()),
                            _ => {}
                        }
                    }
                }
                Ok(StoredMessage {
                    id,
                    room: room.to_string(),
                    author: author
                        .ok_or_else(|| ChatError::Corrupt(format!("entry {id} has no author")))?,
                    text: text.unwrap_or_default(),
                })
            })
            .collect()
    }
}

#[async_trait]
impl ChatStore for RedisStore {
    async fn append(
        &self,
        room: &str,
        author: &str,
        text: &str,
    ) -> Result<StoredMessage, ChatError> {
        let conn = self.conn().await?;
        // The message (the room's slot) and the rooms index (a slot of its own) are two calls,
        // sent together; on one server they go out pipelined on the same connection.
        let mut c1 = conn.clone();
        let mut add = redis::cmd("XADD");
        add.arg(keys::messages(room))
            .arg("MAXLEN")
            .arg("~")
            .arg(self.history_len)
            .arg("*")
            .arg("a")
            .arg(author)
            .arg("t")
            .arg(text);
        let add = add.query_async::<String>(&mut c1);
        let mut c2 = conn;
        let mut index = redis::pipe();
        index
            .cmd("ZADD")
            .arg(keys::ROOMS)
            .arg(now_ms())
            .arg(room)
            .ignore()
            // Keep the index to the most recently active rooms (anyone can create rooms).
            .cmd("ZREMRANGEBYRANK")
            .arg(keys::ROOMS)
            .arg(0)
            .arg(-(MAX_INDEXED_ROOMS as i64) - 1)
            .ignore();
        let index = index.query_async::<()>(&mut c2);
        let (r, indexed) = futures::join!(add, index);
        // A room whose index entry failed still has its message: the index only orders the
        // room list, and the next message writes it again.
        if let Err(e) = indexed {
            let e = self.conns.fail(e);
            tracing::debug!(error = %e, room, "rooms index not updated");
        }
        let r = r.map(|id| (id,));
        let (id,) = self.check(r)?;
        let id = id
            .parse()
            .map_err(|_| ChatError::Corrupt(format!("stream id {id:?}")))?;
        Ok(StoredMessage {
            id,
            room: room.into(),
            author: author.into(),
            text: text.into(),
        })
    }

    async fn history(
        &self,
        room: &str,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, ChatError> {
        let end = match before {
            None => "+".to_string(),
            Some(b) => match b.prev() {
                Some(p) => p.to_string(),
                None => return Ok(Vec::new()),
            },
        };
        let mut conn = self.conn().await?;
        let r: Result<Vec<Entry>, RedisError> = redis::cmd("XREVRANGE")
            .arg(keys::messages(room))
            .arg(end)
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut conn)
            .await;
        let entries = self.check(r)?;
        Self::parse(room, entries)
    }

    async fn after(
        &self,
        room: &str,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, ChatError> {
        let mut conn = self.conn().await?;
        let r: Result<Vec<Entry>, RedisError> = redis::cmd("XRANGE")
            .arg(keys::messages(room))
            .arg(format!("({after}"))
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut conn)
            .await;
        let entries = self.check(r)?;
        Self::parse(room, entries)
    }

    async fn wait_after(
        &self,
        room: &str,
        after: MessageId,
        limit: usize,
        block: Duration,
    ) -> Result<Vec<StoredMessage>, ChatError> {
        let mut conn = self.blocking_conn(block).await?;
        let r: Result<Option<Vec<(String, Vec<Entry>)>>, RedisError> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(limit)
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(keys::messages(room))
            .arg(after.to_string())
            .query_async(&mut conn)
            .await;
        let reply = self.check(r)?;
        // Only a connection that answered goes back for reuse.
        self.blocking
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        let entries = reply.into_iter().flatten().flat_map(|(_, e)| e).collect();
        Self::parse(room, entries)
    }

    async fn last_id(&self, room: &str) -> Result<MessageId, ChatError> {
        let mut conn = self.conn().await?;
        let r: Result<Vec<Entry>, RedisError> = redis::cmd("XREVRANGE")
            .arg(keys::messages(room))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await;
        let entries = self.check(r)?;
        Ok(Self::parse(room, entries)?
            .first()
            .map(|m| m.id)
            .unwrap_or_default())
    }

    async fn rooms(&self, limit: usize) -> Result<Vec<(String, i64)>, ChatError> {
        let mut conn = self.conn().await?;
        let r: Result<Vec<(String, f64)>, RedisError> = redis::cmd("ZREVRANGE")
            .arg(keys::ROOMS)
            .arg(0)
            .arg(limit.saturating_sub(1))
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await;
        let rooms = self.check(r)?;
        Ok(rooms.into_iter().map(|(r, s)| (r, s as i64)).collect())
    }

    async fn heartbeat(
        &self,
        room: &str,
        user: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<usize, ChatError> {
        let key = keys::presence(room);
        let ttl_ms = ttl.as_millis() as i64;
        let mut conn = self.conn().await?;
        let r: Result<(usize,), RedisError> = redis::pipe()
            .atomic()
            .cmd("ZADD")
            .arg(&key)
            .arg(now_ms)
            .arg(user)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(now_ms - ttl_ms)
            .ignore()
            .cmd("ZCARD")
            .arg(&key)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl_ms * 2)
            .ignore()
            .query_async(&mut conn)
            .await;
        let (count,) = self.check(r)?;
        Ok(count)
    }

    async fn leave(
        &self,
        room: &str,
        user: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<usize, ChatError> {
        let key = keys::presence(room);
        let mut conn = self.conn().await?;
        let r: Result<(usize,), RedisError> = redis::pipe()
            .atomic()
            .cmd("ZREM")
            .arg(&key)
            .arg(user)
            .ignore()
            .cmd("ZCOUNT")
            .arg(&key)
            .arg(format!("({}", now_ms - ttl.as_millis() as i64))
            .arg("+inf")
            .query_async(&mut conn)
            .await;
        let (count,) = self.check(r)?;
        Ok(count)
    }

    async fn online(
        &self,
        room: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<Vec<Member>, ChatError> {
        let mut conn = self.conn().await?;
        let r: Result<Vec<(String, f64)>, RedisError> = redis::cmd("ZRANGEBYSCORE")
            .arg(keys::presence(room))
            .arg(format!("({}", now_ms - ttl.as_millis() as i64))
            .arg("+inf")
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await;
        let members = self.check(r)?;
        let mut members: Vec<Member> = members.into_iter().map(|(u, s)| (u, s as i64)).collect();
        members.sort();
        Ok(members)
    }

    async fn take_token(
        &self,
        bucket: &str,
        rate: f64,
        burst: f64,
    ) -> Result<Result<(), u64>, ChatError> {
        self.gcra(bucket, rate, burst).await
    }

    async fn mark_read(
        &self,
        room: &str,
        user: &str,
        id: MessageId,
    ) -> Result<Option<MessageId>, ChatError> {
        self.mark_read_impl(room, user, id).await
    }

    async fn unread(
        &self,
        user: &str,
        rooms: &[String],
        cap: usize,
    ) -> Result<Vec<Option<(MessageId, usize)>>, ChatError> {
        self.unread_impl(user, rooms, cap).await
    }

    async fn publish_typing(&self, room: &str, signal: &Typing) -> Result<(), ChatError> {
        self.publish_typing_impl(room, signal).await
    }

    async fn typing_stream(&self, room: &str) -> Result<TypingStream, ChatError> {
        self.typing_stream_impl(room).await
    }

    async fn ping(&self) -> Result<(), ChatError> {
        let mut conn = self.conn().await?;
        let r: Result<String, RedisError> = redis::cmd("PING").query_async(&mut conn).await;
        self.check(r)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::keys;

    /// Per-room keys share the room as hash tag (one Cluster slot per room).
    #[test]
    fn key_layout_uses_hash_tags() {
        assert_eq!(keys::messages("lobby"), "pfc:chat:{lobby}:messages");
        assert_eq!(keys::presence("lobby"), "pfc:chat:{lobby}:presence");
        assert_eq!(keys::read("lobby"), "pfc:chat:{lobby}:read");
        assert_eq!(keys::typing("lobby"), "pfc:chat:{lobby}:typing");
        assert_eq!(keys::rate("send", "alice"), "pfc:chat:rl:{alice}:send");
    }
}
