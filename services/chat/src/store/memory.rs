//! [`MemoryStore`]: everything in process memory, for the embedded `pfc dev` mode and tests.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use tokio::sync::watch;

use super::{now_ms, ChatStore, Member, StoredMessage, Typing, TypingStream};
use crate::{ChatError, MessageId};

#[derive(Default)]
struct Room {
    messages: VecDeque<StoredMessage>,
    last_id: MessageId,
    last_activity: i64,
    presence: BTreeMap<String, i64>,
    read: HashMap<String, MessageId>,
}

/// An in-memory [`ChatStore`] with the same semantics as the Redis one (capped history,
/// stream-style ids, presence by last heartbeat).
pub struct MemoryStore {
    rooms: Mutex<HashMap<String, Room>>,
    /// Bumped on every append, so blocked live reads wake up.
    appended: watch::Sender<u64>,
    history_len: usize,
    /// Rate-limit buckets: theoretical arrival time (µs since the epoch).
    buckets: Mutex<HashMap<String, u64>>,
    /// Typing channels per room (in process: this store serves one process).
    typing: Mutex<HashMap<String, tokio::sync::broadcast::Sender<Typing>>>,
}

impl MemoryStore {
    /// A store keeping at most `history_len` messages per room.
    pub fn new(history_len: usize) -> Self {
        Self {
            rooms: Mutex::new(HashMap::new()),
            appended: watch::Sender::new(0),
            history_len: history_len.max(1),
            buckets: Mutex::new(HashMap::new()),
            typing: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Room>) -> T) -> T {
        // A poisoned lock means a panic mid-update of plain data; the map is still consistent
        // enough for a dev store.
        let mut guard = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }
}

fn online_of(room: &Room, now_ms: i64, ttl: Duration) -> Vec<Member> {
    let cutoff = now_ms - ttl.as_millis() as i64;
    room.presence
        .iter()
        .filter(|(_, &t)| t > cutoff)
        .map(|(u, &t)| (u.clone(), t))
        .collect()
}

#[async_trait]
impl ChatStore for MemoryStore {
    async fn append(
        &self,
        room: &str,
        author: &str,
        text: &str,
    ) -> Result<StoredMessage, ChatError> {
        let msg = self.with(|rooms| {
            let r = rooms.entry(room.to_string()).or_default();
            let ms = (now_ms().max(0) as u64).max(r.last_id.ms);
            let id = if ms == r.last_id.ms {
                MessageId {
                    ms,
                    seq: r.last_id.seq + 1,
                }
            } else {
                MessageId { ms, seq: 0 }
            };
            r.last_id = id;
            r.last_activity = id.ms as i64;
            let msg = StoredMessage {
                id,
                room: room.into(),
                author: author.into(),
                text: text.into(),
            };
            r.messages.push_back(msg.clone());
            while r.messages.len() > self.history_len {
                r.messages.pop_front();
            }
            msg
        });
        self.appended.send_modify(|n| *n += 1);
        Ok(msg)
    }

    async fn history(
        &self,
        room: &str,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, ChatError> {
        Ok(self.with(|rooms| {
            let Some(r) = rooms.get(room) else {
                return Vec::new();
            };
            r.messages
                .iter()
                .rev()
                .filter(|m| before.is_none_or(|b| m.id < b))
                .take(limit)
                .cloned()
                .collect()
        }))
    }

    async fn after(
        &self,
        room: &str,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, ChatError> {
        Ok(self.with(|rooms| {
            let Some(r) = rooms.get(room) else {
                return Vec::new();
            };
            let start = r.messages.partition_point(|m| m.id <= after);
            r.messages.iter().skip(start).take(limit).cloned().collect()
        }))
    }

    async fn wait_after(
        &self,
        room: &str,
        after: MessageId,
        limit: usize,
        block: Duration,
    ) -> Result<Vec<StoredMessage>, ChatError> {
        let mut rx = self.appended.subscribe();
        let deadline = tokio::time::Instant::now() + block;
        loop {
            rx.borrow_and_update();
            let got = self.after(room, after, limit).await?;
            if !got.is_empty() {
                return Ok(got);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return Ok(Vec::new()),
            }
        }
    }

    async fn last_id(&self, room: &str) -> Result<MessageId, ChatError> {
        Ok(self.with(|rooms| rooms.get(room).map(|r| r.last_id).unwrap_or_default()))
    }

    async fn rooms(&self, limit: usize) -> Result<Vec<(String, i64)>, ChatError> {
        Ok(self.with(|rooms| {
            let mut v: Vec<_> = rooms
                .iter()
                .filter(|(_, r)| r.last_activity > 0)
                .map(|(n, r)| (n.clone(), r.last_activity))
                .collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v.truncate(limit);
            v
        }))
    }

    async fn heartbeat(
        &self,
        room: &str,
        user: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<usize, ChatError> {
        Ok(self.with(|rooms| {
            let r = rooms.entry(room.to_string()).or_default();
            r.presence.insert(user.to_string(), now_ms);
            let cutoff = now_ms - ttl.as_millis() as i64;
            r.presence.retain(|_, t| *t > cutoff);
            r.presence.len()
        }))
    }

    async fn leave(
        &self,
        room: &str,
        user: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<usize, ChatError> {
        Ok(self.with(|rooms| match rooms.get_mut(room) {
            Some(r) => {
                r.presence.remove(user);
                online_of(r, now_ms, ttl).len()
            }
            None => 0,
        }))
    }

    async fn online(
        &self,
        room: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<Vec<Member>, ChatError> {
        Ok(self.with(|rooms| {
            rooms
                .get(room)
                .map(|r| online_of(r, now_ms, ttl))
                .unwrap_or_default()
        }))
    }

    async fn take_token(
        &self,
        bucket: &str,
        rate: f64,
        burst: f64,
    ) -> Result<Result<(), u64>, ChatError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let interval = crate::ratelimit::interval_us(rate);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 10_000 {
            // Full buckets are the same as no bucket.
            buckets.retain(|_, tat| *tat > now);
        }
        let tat = buckets.get(bucket).copied();
        Ok(
            crate::ratelimit::gcra(tat, now, interval, burst.max(1.0)).map(|new_tat| {
                buckets.insert(bucket.to_string(), new_tat);
            }),
        )
    }

    async fn mark_read(
        &self,
        room: &str,
        user: &str,
        id: MessageId,
    ) -> Result<Option<MessageId>, ChatError> {
        Ok(self.with(|rooms| {
            let r = rooms.get_mut(room)?;
            if r.last_id == MessageId::ZERO {
                return None;
            }
            let id = id.min(r.last_id);
            let stored = r.read.entry(user.to_string()).or_insert(id);
            *stored = (*stored).max(id);
            Some(*stored)
        }))
    }

    async fn unread(
        &self,
        user: &str,
        rooms: &[String],
        cap: usize,
    ) -> Result<Vec<Option<(MessageId, usize)>>, ChatError> {
        Ok(self.with(|all| {
            rooms
                .iter()
                .map(|room| {
                    let r = all.get(room)?;
                    let marker = *r.read.get(user)?;
                    let n = r
                        .messages
                        .iter()
                        .filter(|m| m.id > marker)
                        .take(cap)
                        .filter(|m| m.author != user)
                        .count();
                    Some((marker, n))
                })
                .collect()
        }))
    }

    async fn publish_typing(&self, room: &str, signal: &Typing) -> Result<(), ChatError> {
        if let Some(tx) = self
            .typing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room)
        {
            let _ = tx.send(signal.clone());
        }
        Ok(())
    }

    async fn typing_stream(&self, room: &str) -> Result<TypingStream, ChatError> {
        let rx = self
            .typing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(room.to_string())
            .or_insert_with(|| tokio::sync::broadcast::channel(256).0)
            .subscribe();
        let stream = tokio_stream::wrappers::BroadcastStream::new(rx)
            .filter_map(|r| futures::future::ready(r.ok()));
        Ok(Box::pin(stream))
    }

    async fn ping(&self) -> Result<(), ChatError> {
        Ok(())
    }
}
