//! The `pfc.chat.v1.ChatService` and `pfc.chat.v1.PresenceService` implementations.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};

use pfc_auth::Keys;
use pfc_proto::chat::v1 as pb;
use pfc_proto::chat::v1::chat_service_server::{ChatService, ChatServiceServer};
use pfc_proto::chat::v1::presence_service_server::{PresenceService, PresenceServiceServer};
use tokio::sync::broadcast;
use tokio_stream::wrappers::WatchStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::hub::{Batch, Hub};
use crate::ratelimit::RateLimiter;
use crate::store::{now_ms, Member, StoredMessage};
use crate::{ChatError, Limits, MessageId};

/// Longest room name.
pub const MAX_ROOM_LEN: usize = 64;
/// Messages fetched per replay read.
const REPLAY_BATCH: usize = 500;

/// Shared state of both services.
pub struct ChatState {
    hub: Arc<Hub>,
    keys: Keys,
    limits: Limits,
    limiter: RateLimiter,
}

impl ChatState {
    /// State over `hub`, verifying tokens with `keys`.
    pub fn new(hub: Arc<Hub>, keys: Keys, limits: Limits) -> Arc<Self> {
        let limiter = RateLimiter::new(limits.send_rate, limits.send_burst);
        Arc::new(Self {
            hub,
            keys,
            limits,
            limiter,
        })
    }

    /// The `ChatService` server.
    pub fn chat_server(self: &Arc<Self>) -> ChatServiceServer<ChatGrpc> {
        ChatServiceServer::new(ChatGrpc(self.clone()))
    }

    /// The `PresenceService` server.
    pub fn presence_server(self: &Arc<Self>) -> PresenceServiceServer<PresenceGrpc> {
        PresenceServiceServer::new(PresenceGrpc(self.clone()))
    }

    fn user(&self, md: &MetadataMap) -> Result<String, ChatError> {
        Ok(self.keys.verify(pfc_auth::bearer(md)?)?.sub)
    }

    fn store(&self) -> &Arc<dyn crate::ChatStore> {
        self.hub.store()
    }

    fn ttl(&self) -> Duration {
        self.limits.presence_ttl
    }
}

/// Checks a room name (1-64 characters: letters, digits, `_`, `-`, `.`).
pub fn validate_room(room: &str) -> Result<(), ChatError> {
    Ok(pfc_auth::validate_name("room", room, MAX_ROOM_LEN)?)
}

/// Checks a message text: not blank, at most `max` characters.
pub fn validate_text(text: &str, max: usize) -> Result<(), ChatError> {
    if text.trim().is_empty() {
        return Err(ChatError::InvalidArgument("text must not be empty".into()));
    }
    let n = text.chars().count();
    if n > max {
        return Err(ChatError::InvalidArgument(format!(
            "text is too long: {n} characters, the limit is {max}"
        )));
    }
    Ok(())
}

fn members_proto(members: Vec<Member>) -> (Vec<pb::Member>, u32) {
    let count = members.len() as u32;
    let members = members
        .into_iter()
        .map(|(username, t)| pb::Member {
            username,
            last_seen_at: Some(pfc_proto::timestamp_from_ms(t)),
        })
        .collect();
    (members, count)
}

/// `ChatService` over [`ChatState`].
#[derive(Clone)]
pub struct ChatGrpc(Arc<ChatState>);

#[tonic::async_trait]
impl ChatService for ChatGrpc {
    #[tracing::instrument(skip_all, fields(room = %req.get_ref().room))]
    async fn send_message(
        &self,
        req: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        let s = &self.0;
        let user = s.user(req.metadata())?;
        let req = req.into_inner();
        validate_room(&req.room)?;
        validate_text(&req.text, s.limits.max_message_chars)?;
        s.limiter
            .check(&user)
            .map_err(|retry_ms| ChatError::RateLimited {
                rate: s.limiter.rate(),
                burst: s.limiter.burst(),
                retry_ms,
            })?;
        let msg = s.store().append(&req.room, &user, &req.text).await?;
        Ok(Response::new(pb::SendMessageResponse {
            message: Some(msg.to_proto()),
        }))
    }

    #[tracing::instrument(skip_all, fields(room = %req.get_ref().room))]
    async fn list_messages(
        &self,
        req: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let s = &self.0;
        s.user(req.metadata())?;
        let req = req.into_inner();
        validate_room(&req.room)?;
        let limit = match req.limit {
            0 => 50,
            n @ 1..=200 => n as usize,
            _ => return Err(ChatError::InvalidArgument("limit must be 1-200".into()).into()),
        };
        let before = MessageId::parse_opt("before_id", &req.before_id)?;
        let messages = s.store().history(&req.room, before, limit).await?;
        let next_before_id = match messages.last() {
            Some(m) if messages.len() == limit => m.id.to_string(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListMessagesResponse {
            messages: messages.iter().map(StoredMessage::to_proto).collect(),
            next_before_id,
        }))
    }

    type SubscribeStream =
        Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

    #[tracing::instrument(skip_all, fields(room = %req.get_ref().room))]
    async fn subscribe(
        &self,
        req: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let s = self.0.clone();
        s.user(req.metadata())?;
        let req = req.into_inner();
        validate_room(&req.room)?;
        let after = match MessageId::parse_opt("after_id", &req.after_id)? {
            Some(id) => id,
            None => s.store().last_id(&req.room).await?,
        };
        // Subscribe before replaying, so nothing sent from now on can slip between the two.
        let live = s.hub.subscribe(&req.room);
        Ok(Response::new(Box::pin(follow(s, req.room, after, live))))
    }

    #[tracing::instrument(skip_all)]
    async fn list_rooms(
        &self,
        req: Request<pb::ListRoomsRequest>,
    ) -> Result<Response<pb::ListRoomsResponse>, Status> {
        let s = &self.0;
        s.user(req.metadata())?;
        let limit = match req.get_ref().limit {
            0 => 100,
            n @ 1..=500 => n as usize,
            _ => return Err(ChatError::InvalidArgument("limit must be 1-500".into()).into()),
        };
        let rooms = s.store().rooms(limit).await?;
        Ok(Response::new(pb::ListRoomsResponse {
            rooms: rooms
                .into_iter()
                .map(|(name, t)| pb::Room {
                    name,
                    last_activity_at: Some(pfc_proto::timestamp_from_ms(t)),
                })
                .collect(),
        }))
    }
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

    /// The next message to deliver; `None` ends the stream.
    async fn next(&mut self) -> Option<Result<pb::SubscribeResponse, Status>> {
        loop {
            if let Some((id, message)) = self.queue.pop_front() {
                if id <= self.last {
                    continue; // already delivered (replay and live overlap)
                }
                self.last = id;
                return Some(Ok(pb::SubscribeResponse {
                    message: Some(message),
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
            match self.live.recv().await {
                Ok(batch) if batch.from > self.last => {
                    // Messages between our last and this batch were read before we joined (or
                    // dropped while we lagged): take them from the store first.
                    self.replay = Some(Some(batch.from));
                    self.deferred = Some(batch);
                }
                Ok(batch) => self.take_batch(&batch),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(room = %self.room, skipped = n, "subscriber lagged, catching up from the store");
                    self.replay = Some(None);
                }
                Err(broadcast::error::RecvError::Closed) => {
                    // The room reader stopped (shutdown or error): follow a new one.
                    if self.s.hub.shutdown().is_triggered() {
                        return Some(Err(ChatError::ShuttingDown.into()));
                    }
                    self.live = self.s.hub.subscribe(&self.room);
                }
            }
        }
    }
}

/// One subscriber's stream: stored messages after `after`, then live batches, filling any gap
/// from the store. Polled directly by tonic (no task or channel per subscriber).
fn follow(
    s: Arc<ChatState>,
    room: String,
    after: MessageId,
    live: broadcast::Receiver<Arc<Batch>>,
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

/// `PresenceService` over [`ChatState`].
#[derive(Clone)]
pub struct PresenceGrpc(Arc<ChatState>);

#[tonic::async_trait]
impl PresenceService for PresenceGrpc {
    #[tracing::instrument(skip_all, fields(room = %req.get_ref().room))]
    async fn heartbeat(
        &self,
        req: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let s = &self.0;
        let user = s.user(req.metadata())?;
        let room = req.into_inner().room;
        validate_room(&room)?;
        let count = s.store().heartbeat(&room, &user, now_ms(), s.ttl()).await?;
        s.hub.presence_changed(&room);
        Ok(Response::new(pb::HeartbeatResponse {
            ttl_seconds: s.ttl().as_secs().max(1) as u32,
            online_count: count as u32,
        }))
    }

    #[tracing::instrument(skip_all, fields(room = %req.get_ref().room))]
    async fn leave(
        &self,
        req: Request<pb::LeaveRequest>,
    ) -> Result<Response<pb::LeaveResponse>, Status> {
        let s = &self.0;
        let user = s.user(req.metadata())?;
        let room = req.into_inner().room;
        validate_room(&room)?;
        let count = s.store().leave(&room, &user, now_ms(), s.ttl()).await?;
        s.hub.presence_changed(&room);
        Ok(Response::new(pb::LeaveResponse {
            online_count: count as u32,
        }))
    }

    #[tracing::instrument(skip_all, fields(room = %req.get_ref().room))]
    async fn list_online(
        &self,
        req: Request<pb::ListOnlineRequest>,
    ) -> Result<Response<pb::ListOnlineResponse>, Status> {
        let s = &self.0;
        s.user(req.metadata())?;
        let room = req.into_inner().room;
        validate_room(&room)?;
        let (members, count) = members_proto(s.store().online(&room, now_ms(), s.ttl()).await?);
        Ok(Response::new(pb::ListOnlineResponse { members, count }))
    }

    type WatchPresenceStream =
        Pin<Box<dyn Stream<Item = Result<pb::WatchPresenceResponse, Status>> + Send>>;

    #[tracing::instrument(skip_all, fields(room = %req.get_ref().room))]
    async fn watch_presence(
        &self,
        req: Request<pb::WatchPresenceRequest>,
    ) -> Result<Response<Self::WatchPresenceStream>, Status> {
        let s = self.0.clone();
        s.user(req.metadata())?;
        let room = req.into_inner().room;
        validate_room(&room)?;
        let stop = s.hub.shutdown().wait();
        let stream = WatchStream::new(s.hub.watch_presence(&room, s.ttl()))
            .filter_map(|list| async move {
                list.map(|members| {
                    let (members, count) = members_proto(members.to_vec());
                    Ok(pb::WatchPresenceResponse { members, count })
                })
            })
            .take_until(stop)
            .chain(futures::stream::once(async {
                Err(ChatError::ShuttingDown.into())
            }));
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text must be non-blank and within the limit; errors say which rule broke.
    #[test]
    fn text_rules() {
        assert!(validate_text("hi", 10).is_ok());
        assert!(
            validate_text(&"é".repeat(10), 10).is_ok(),
            "limit counts characters, not bytes"
        );
        assert!(validate_text("   \n", 10)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(validate_text(&"a".repeat(11), 10)
            .unwrap_err()
            .to_string()
            .contains("limit is 10"));
    }

    /// Room names follow the same alphabet as usernames, up to 64 characters.
    #[test]
    fn room_rules() {
        assert!(validate_room("general").is_ok());
        assert!(validate_room(&"r".repeat(64)).is_ok());
        assert!(validate_room(&"r".repeat(65)).is_err());
        assert!(validate_room("{tag}").is_err());
    }
}
