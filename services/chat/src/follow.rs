//! One subscriber's stream (`Subscribe`): stored messages after its start id, then live
//! batches, filling any gap from the store — and, when asked, the room's ephemeral events.
//!
//! Messages are resumable (their ids are positions in the room), events are not: join/leave
//! events are this subscriber's view of the presence list changing (the hub's one poller per
//! room), typing events come from the room's typing channel. Neither is ever stored.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use pfc_proto::chat::v1 as pb;
use tokio::sync::{broadcast, watch};
use tonic::Status;

use crate::grpc::{ChatState, TYPING_TTL};
use crate::hub::{Batch, Hub};
use crate::store::{Member, Typing};
use crate::{ChatError, MessageId};

/// Messages fetched per replay read.
const REPLAY_BATCH: usize = 500;

type PresenceRx = watch::Receiver<Option<Arc<Vec<Member>>>>;

/// The room events a subscriber asked for (`SubscribeRequest.events`).
pub struct EventFeed {
    user: String,
    ttl: Duration,
    presence: PresenceRx,
    typing: broadcast::Receiver<Typing>,
    /// Who was online at the last presence list seen (`None` before the first one).
    members: Option<BTreeSet<String>>,
    queue: VecDeque<pb::RoomEvent>,
}

impl EventFeed {
    /// Events of `room` for `user` (whose own typing signals are not echoed back).
    pub fn new(hub: &Arc<Hub>, room: &str, ttl: Duration, user: String) -> Self {
        let presence = hub.watch_presence(room, ttl);
        let members = names(&presence.borrow());
        Self {
            user,
            ttl,
            typing: hub.subscribe_typing(room),
            presence,
            members,
            queue: VecDeque::new(),
        }
    }

    /// Turns a new presence list into joined/left events (relative to the previous list).
    fn presence_changed(&mut self) {
        let Some(now) = names(&self.presence.borrow_and_update()) else {
            return;
        };
        if let Some(before) = &self.members {
            let count = now.len() as u32;
            let event = |kind| pb::RoomEvent { kind: Some(kind) };
            for u in now.difference(before) {
                self.queue
                    .push_back(event(pb::room_event::Kind::Joined(pb::MemberEvent {
                        username: u.clone(),
                        online_count: count,
                    })));
            }
            for u in before.difference(&now) {
                self.queue
                    .push_back(event(pb::room_event::Kind::Left(pb::MemberEvent {
                        username: u.clone(),
                        online_count: count,
                    })));
            }
        }
        self.members = Some(now);
    }

    fn typed(&mut self, signal: Typing) {
        if signal.user == self.user {
            return;
        }
        self.queue.push_back(pb::RoomEvent {
            kind: Some(pb::room_event::Kind::Typing(pb::TypingEvent {
                username: signal.user,
                typing: signal.typing,
                expires_in_ms: TYPING_TTL.as_millis() as u32,
            })),
        });
    }
}

fn names(list: &Option<Arc<Vec<Member>>>) -> Option<BTreeSet<String>> {
    list.as_ref()
        .map(|l| l.iter().map(|(u, _)| u.clone()).collect())
}

/// What woke a waiting subscriber.
enum Woke {
    Live(Result<Arc<Batch>, broadcast::error::RecvError>),
    Presence(bool),
    Typing(Result<Typing, broadcast::error::RecvError>),
}

/// Where a subscriber stands: the last id it delivered, messages ready to deliver, and what
/// must be read from the store before the next live batch.
struct Follow {
    s: Arc<ChatState>,
    room: String,
    last: MessageId,
    live: broadcast::Receiver<Arc<Batch>>,
    queue: VecDeque<(MessageId, pb::Message)>,
    /// `Some(upto)`: replay stored messages after `last` (up to `upto`, or all when `None`).
    replay: Option<Option<MessageId>>,
    /// A live batch waiting for the replay in front of it to finish.
    deferred: Option<Arc<Batch>>,
    events: Option<EventFeed>,
}

impl Follow {
    /// Queues the batch's messages this subscriber has not delivered yet.
    fn take_batch(&mut self, batch: &Batch) {
        let last = self.last;
        let fresh = batch
            .messages
            .iter()
            .zip(&batch.protos)
            .filter(|(m, _)| m.id > last);
        self.queue.extend(fresh.map(|(m, p)| (m.id, p.clone())));
    }

    /// Waits for the next live batch, presence change or typing signal.
    async fn wait(&mut self) -> Woke {
        let Follow { live, events, .. } = self;
        match events {
            None => Woke::Live(live.recv().await),
            Some(ev) => tokio::select! {
                r = live.recv() => Woke::Live(r),
                r = ev.presence.changed() => Woke::Presence(r.is_ok()),
                r = ev.typing.recv() => Woke::Typing(r),
            },
        }
    }

    /// The next message or event to deliver; `None` ends the stream.
    async fn next(&mut self) -> Option<Result<pb::SubscribeResponse, Status>> {
        loop {
            // Events are small and only worth something now: they go before queued messages.
            if let Some(event) = self.events.as_mut().and_then(|e| e.queue.pop_front()) {
                return Some(Ok(pb::SubscribeResponse {
                    message: None,
                    event: Some(event),
                }));
            }
            if let Some((id, message)) = self.queue.pop_front() {
                if id <= self.last {
                    continue; // already delivered (replay and live overlap)
                }
                self.last = id;
                return Some(Ok(pb::SubscribeResponse {
                    message: Some(message),
                    event: None,
                }));
            }
            if let Some(upto) = self.replay {
                let page = match self
                    .s
                    .store()
                    .after(&self.room, self.last, REPLAY_BATCH)
                    .await
                {
                    Ok(page) => page,
                    Err(e) => return Some(Err(e.into())),
                };
                let mut more = page.len() == REPLAY_BATCH;
                for m in page {
                    if upto.is_some_and(|u| m.id > u) {
                        more = false;
                        break;
                    }
                    self.queue.push_back((m.id, m.to_proto()));
                }
                if !more {
                    self.replay = None;
                }
                continue;
            }
            if let Some(batch) = self.deferred.take() {
                self.take_batch(&batch);
                continue;
            }
            match self.wait().await {
                Woke::Live(Ok(batch)) if batch.from > self.last => {
                    // Messages between our last and this batch were read before we joined (or
                    // dropped while we lagged): take them from the store first.
                    self.replay = Some(Some(batch.from));
                    self.deferred = Some(batch);
                }
                Woke::Live(Ok(batch)) => self.take_batch(&batch),
                Woke::Live(Err(broadcast::error::RecvError::Lagged(n))) => {
                    tracing::debug!(room = %self.room, skipped = n, "subscriber lagged, catching up from the store");
                    self.replay = Some(None);
                }
                Woke::Live(Err(broadcast::error::RecvError::Closed)) => {
                    // The room reader stopped (shutdown or error): follow a new one.
                    if self.s.hub.shutdown().is_triggered() {
                        return Some(Err(ChatError::ShuttingDown.into()));
                    }
                    self.live = self.s.hub.subscribe(&self.room);
                }
                Woke::Presence(true) => {
                    if let Some(ev) = self.events.as_mut() {
                        ev.presence_changed();
                    }
                }
                Woke::Presence(false) | Woke::Typing(Err(broadcast::error::RecvError::Closed)) => {
                    // A poller or listener stopped (only at shutdown while we listen).
                    if self.s.hub.shutdown().is_triggered() {
                        return Some(Err(ChatError::ShuttingDown.into()));
                    }
                    if let Some(ev) = self.events.as_mut() {
                        ev.presence = self.s.hub.watch_presence(&self.room, ev.ttl);
                        ev.typing = self.s.hub.subscribe_typing(&self.room);
                    }
                }
                Woke::Typing(Ok(signal)) => {
                    if let Some(ev) = self.events.as_mut() {
                        ev.typed(signal);
                    }
                }
                Woke::Typing(Err(broadcast::error::RecvError::Lagged(_))) => {}
            }
        }
    }
}

/// One subscriber's stream: stored messages after `after`, then live batches, filling any gap
/// from the store, plus `events` when asked. Polled directly by tonic (no task or channel per
/// subscriber).
pub fn follow(
    s: Arc<ChatState>,
    room: String,
    after: MessageId,
    live: broadcast::Receiver<Arc<Batch>>,
    events: Option<EventFeed>,
) -> impl Stream<Item = Result<pb::SubscribeResponse, Status>> + Send + 'static {
    let stop = s.hub.shutdown().wait();
    let state = Follow {
        s,
        room,
        last: after,
        live,
        queue: VecDeque::new(),
        replay: Some(None),
        deferred: None,
        events,
    };
    // The stream only ends when shutdown begins (a client that leaves just drops it): tell the
    // client why, so it reconnects (with `after_id`) to another replica.
    futures::stream::unfold(state, |mut f| async move {
        f.next().await.map(|item| (item, f))
    })
    .take_until(stop)
    .chain(futures::stream::once(async {
        Err(ChatError::ShuttingDown.into())
    }))
}
