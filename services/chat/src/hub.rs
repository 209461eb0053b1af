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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pfc_runtime::Shutdown;
use tokio::sync::broadcast;

use crate::store::{ChatStore, StoredMessage};
use crate::MessageId;

/// Messages a reader takes per read.
const READ_BATCH: usize = 256;
/// How long one blocking read waits before the reader checks for subscribers again.
const READ_BLOCK: Duration = Duration::from_secs(2);
/// Batches buffered per room; a subscriber further behind catches up from the store.
const CHANNEL_CAPACITY: usize = 1024;

/// Consecutive messages of a room, read after `from`.
#[derive(Debug)]
pub struct Batch {
    /// The id the read started after: every message after it up to the last one here is here.
    pub from: MessageId,
    /// The messages, oldest first.
    pub messages: Vec<StoredMessage>,
}

/// The per-process fan-out of live messages, and the local presence-change signal.
pub struct Hub {
    store: Arc<dyn ChatStore>,
    rooms: Mutex<HashMap<String, broadcast::Sender<Arc<Batch>>>>,
    presence: broadcast::Sender<String>,
    shutdown: Shutdown,
}

impl Hub {
    /// A hub reading from `store`; readers stop on `shutdown`.
    pub fn new(store: Arc<dyn ChatStore>, shutdown: Shutdown) -> Arc<Self> {
        Arc::new(Self {
            store,
            rooms: Mutex::new(HashMap::new()),
            presence: broadcast::Sender::new(256),
            shutdown,
        })
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

    /// Tells local presence watchers of `room` that its online list changed.
    pub fn presence_changed(&self, room: &str) {
        let _ = self.presence.send(room.to_string());
    }

    /// Receives the names of rooms whose presence changed in this process.
    pub fn presence_changes(&self) -> broadcast::Receiver<String> {
        self.presence.subscribe()
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
                _ = &mut stop => return self.remove(&room, true),
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
                _ = &mut stop => return self.remove(&room, true),
                r = self.store.wait_after(&room, cursor, READ_BATCH, READ_BLOCK) => r,
            };
            match read {
                Ok(messages) if messages.is_empty() => {}
                Ok(messages) => {
                    backoff = Duration::from_millis(100);
                    let from = cursor;
                    // The batch is non-empty, so `last()` exists.
                    cursor = messages.last().map(|m| m.id).unwrap_or(cursor);
                    let _ = tx.send(Arc::new(Batch { from, messages }));
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

    fn remove(&self, room: &str, _shutdown: bool) {
        self.rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(room);
    }
}
