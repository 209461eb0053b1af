//! Live fan-out: one reader per room per process, many subscribers.
//!
//! The first subscriber of a room starts a reader task that follows the room's stream
//! ([`ChatStore::wait_after`], i.e. one `XREAD BLOCK` at a time) and publishes each batch it
//! reads on a `tokio::sync::broadcast` channel; every further subscriber of the room in this
//! process only adds a channel receiver. 1,000 subscribers on a room cost one Redis read per
//! batch, not 1,000. The reader stops when its room has no subscriber left.
//!
//! A [`Batch`] says which id it follows (`from`), so a subscriber that sees `from` beyond the
//! last id it delivered knows it missed something (it joined between reads, or lagged behind
//! the channel) and fills the gap from the store before going on: delivery is gap-free and,
//! with the ids, duplicate-free.
//!
//! Presence works the same way: one poller per room per process reads the online list for all
//! of the room's `WatchPresence` streams (and event subscribers, who turn its changes into
//! join/leave events) and publishes it on a `watch` channel when it changes.
//!
//! Typing signals too: one listener per room per process follows the room's typing channel
//! ([`ChatStore::typing_stream`], Redis Pub/Sub) and republishes each signal on a broadcast
//! channel for the room's event subscribers; it stops when they are gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pfc_runtime::Shutdown;
use tokio::sync::{broadcast, watch, Notify};

use crate::store::{now_ms, ChatStore, Member, StoredMessage, Typing};
use crate::MessageId;

/// Messages a reader takes per read.
const READ_BATCH: usize = 256;
/// How long one blocking read waits before the reader checks for subscribers again.
const READ_BLOCK: Duration = Duration::from_secs(2);
/// Batches buffered per room; a subscriber further behind catches up from the store.
const CHANNEL_CAPACITY: usize = 1024;
/// How often a room's presence poller re-reads the online list (changes on other replicas,
/// expiries); local changes are seen at once.
pub const PRESENCE_POLL: Duration = Duration::from_secs(1);

/// One room's presence poller: its watchers and a way to wake it.
struct PresenceRoom {
    tx: watch::Sender<Option<Arc<Vec<Member>>>>,
    poke: Arc<Notify>,
}

/// Consecutive messages of a room, read after `from`.
#[derive(Debug)]
pub struct Batch {
    /// The id the read started after: every message after it up to the last one here is here.
    pub from: MessageId,
    /// The messages, oldest first.
    pub messages: Vec<StoredMessage>,
    /// The same messages in protobuf form, built once for every subscriber.
    pub protos: Vec<pfc_proto::chat::v1::Message>,
}

/// The per-process fan-out of live messages and of presence lists.
pub struct Hub {
    store: Arc<dyn ChatStore>,
    rooms: Mutex<HashMap<String, broadcast::Sender<Arc<Batch>>>>,
    presence: Mutex<HashMap<String, PresenceRoom>>,
    typing: Mutex<HashMap<String, broadcast::Sender<Typing>>>,
    shutdown: Shutdown,
}

/// How often an idle typing listener checks whether its room still has subscribers.
const TYPING_IDLE_CHECK: Duration = Duration::from_secs(2);

impl Hub {
    /// A hub reading from `store`; readers stop on `shutdown`.
    pub fn new(store: Arc<dyn ChatStore>, shutdown: Shutdown) -> Arc<Self> {
        Arc::new(Self {
            store,
            rooms: Mutex::new(HashMap::new()),
            presence: Mutex::new(HashMap::new()),
            typing: Mutex::new(HashMap::new()),
            shutdown,
        })
    }

    /// Receives the typing signals of `room` from now on, starting the room's listener if needed.
    pub fn subscribe_typing(self: &Arc<Self>, room: &str) -> broadcast::Receiver<Typing> {
        let mut rooms = self.typing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = rooms.get(room) {
            return tx.subscribe();
        }
        let (tx, rx) = broadcast::channel(256);
        rooms.insert(room.to_string(), tx.clone());
        tokio::spawn(self.clone().typing_listener(room.to_string(), tx));
        rx
    }

    /// Number of rooms with a running typing listener in this process.
    pub fn typing_listeners(&self) -> usize {
        self.typing.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    async fn typing_listener(self: Arc<Self>, room: String, tx: broadcast::Sender<Typing>) {
        use futures::StreamExt as _;
        let stop = self.shutdown.wait();
        tokio::pin!(stop);
        let mut backoff = Duration::from_millis(100);
        let idle = |tx: &broadcast::Sender<Typing>| {
            let mut rooms = self.typing.lock().unwrap_or_else(|e| e.into_inner());
            let idle = tx.receiver_count() == 0 || self.shutdown.is_triggered();
            if idle {
                rooms.remove(&room);
            }
            idle
        };
        loop {
            if idle(&tx) {
                return;
            }
            let mut stream = tokio::select! {
                _ = &mut stop => { idle(&tx); return; }
                r = self.store.typing_stream(&room) => match r {
                    Ok(s) => s,
                    Err(err) => {
                        tracing::warn!(room = %room, error = %err, "typing listener cannot subscribe, retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        continue;
                    }
                },
            };
            backoff = Duration::from_millis(100);
            loop {
                tokio::select! {
                    _ = &mut stop => { idle(&tx); return; }
                    item = stream.next() => match item {
                        Some(signal) => { let _ = tx.send(signal); }
                        None => break, // connection lost: subscribe again
                    },
                    _ = tokio::time::sleep(TYPING_IDLE_CHECK) => {}
                }
                if idle(&tx) {
                    return;
                }
            }
        }
    }

    /// Receives every batch read from `room` from now on, starting the room's reader if needed.
    pub fn subscribe(self: &Arc<Self>, room: &str) -> broadcast::Receiver<Arc<Batch>> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = rooms.get(room) {
            return tx.subscribe();
        }
        let (tx, rx) = broadcast::channel(CHANNEL_CAPACITY);
        rooms.insert(room.to_string(), tx.clone());
        tokio::spawn(self.clone().reader(room.to_string(), tx));
        rx
    }

    /// Number of rooms with a running reader in this process.
    pub fn active_rooms(&self) -> usize {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Number of rooms with a running presence poller in this process.
    pub fn presence_pollers(&self) -> usize {
        self.presence
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Tells the room's presence poller (if any) that a local heartbeat or leave may have
    /// changed the online list, so local watchers see it at once.
    pub fn presence_changed(&self, room: &str) {
        if let Some(p) = self
            .presence
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room)
        {
            p.poke.notify_one();
        }
    }

    /// The online list of `room` (members within `ttl`), updated whenever the names change.
    /// One poller per room per process reads the store (every [`PRESENCE_POLL`], or at once
    /// after a local change) for all of the room's watchers. `None` until the first read.
    pub fn watch_presence(
        self: &Arc<Self>,
        room: &str,
        ttl: Duration,
    ) -> watch::Receiver<Option<Arc<Vec<Member>>>> {
        let mut rooms = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = rooms.get(room) {
            return p.tx.subscribe();
        }
        let (tx, rx) = watch::channel(None);
        let poke = Arc::new(Notify::new());
        rooms.insert(
            room.to_string(),
            PresenceRoom {
                tx: tx.clone(),
                poke: poke.clone(),
            },
        );
        tokio::spawn(
            self.clone()
                .presence_poller(room.to_string(), tx, poke, ttl),
        );
        rx
    }

    async fn presence_poller(
        self: Arc<Self>,
        room: String,
        tx: watch::Sender<Option<Arc<Vec<Member>>>>,
        poke: Arc<Notify>,
        ttl: Duration,
    ) {
        let stop = self.shutdown.wait();
        tokio::pin!(stop);
        loop {
            {
                let mut rooms = self.presence.lock().unwrap_or_else(|e| e.into_inner());
                if tx.receiver_count() == 0 || self.shutdown.is_triggered() {
                    rooms.remove(&room);
                    return;
                }
            }
            match self.store.online(&room, now_ms(), ttl).await {
                Ok(members) => {
                    tx.send_if_modified(|current| {
                        let same = current.as_ref().is_some_and(|c| {
                            c.len() == members.len()
                                && c.iter().zip(&members).all(|(a, b)| a.0 == b.0)
                        });
                        if !same {
                            *current = Some(Arc::new(members));
                        }
                        !same
                    });
                }
                Err(err) => tracing::warn!(room = %room, error = %err, "presence read failed"),
            }
            tokio::select! {
                _ = &mut stop => {}
                _ = poke.notified() => {}
                _ = tokio::time::sleep(PRESENCE_POLL) => {}
            }
        }
    }

    /// The store behind the hub.
    pub fn store(&self) -> &Arc<dyn ChatStore> {
        &self.store
    }

    /// The shutdown the hub follows.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    async fn reader(self: Arc<Self>, room: String, tx: broadcast::Sender<Arc<Batch>>) {
        let stop = self.shutdown.wait();
        tokio::pin!(stop);
        let mut backoff = Duration::from_millis(100);
        let mut cursor = loop {
            tokio::select! {
                _ = &mut stop => return self.remove(&room),
                r = self.store.last_id(&room) => match r {
                    Ok(id) => break id,
                    Err(err) => {
                        tracing::warn!(room = %room, error = %err, "room reader cannot start, retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                },
            }
        };
        tracing::debug!(room = %room, cursor = %cursor, "room reader started");
        loop {
            if self.remove_if_idle(&room, &tx) {
                tracing::debug!(room = %room, "room reader stopped: no subscribers");
                return;
            }
            let read = tokio::select! {
                _ = &mut stop => return self.remove(&room),
                r = self.store.wait_after(&room, cursor, READ_BATCH, READ_BLOCK) => r,
            };
            match read {
                Ok(messages) if messages.is_empty() => {}
                Ok(messages) => {
                    backoff = Duration::from_millis(100);
                    let from = cursor;
                    // The batch is non-empty, so `last()` exists.
                    cursor = messages.last().map(|m| m.id).unwrap_or(cursor);
                    let protos = messages.iter().map(StoredMessage::to_proto).collect();
                    let _ = tx.send(Arc::new(Batch {
                        from,
                        messages,
                        protos,
                    }));
                }
                Err(err) => {
                    tracing::warn!(room = %room, error = %err, "room reader failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    fn remove_if_idle(&self, room: &str, tx: &broadcast::Sender<Arc<Batch>>) -> bool {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if tx.receiver_count() == 0 {
            rooms.remove(room);
            true
        } else {
            false
        }
    }

    fn remove(&self, room: &str) {
        self.rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(room);
    }
}
