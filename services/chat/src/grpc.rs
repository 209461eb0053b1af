//! The `pfc.chat.v1.ChatService` and `pfc.chat.v1.PresenceService` implementations.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};

use pfc_auth::Keys;
use pfc_metrics::GaugeGuard;
use pfc_proto::chat::v1 as pb;
use pfc_proto::chat::v1::chat_service_server::{ChatService, ChatServiceServer};
use pfc_proto::chat::v1::presence_service_server::{PresenceService, PresenceServiceServer};
use tokio_stream::wrappers::WatchStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::follow::{follow, EventFeed};
use crate::hub::Hub;
use crate::metrics::METRICS;
use crate::ratelimit::RateLimiter;
use crate::store::{now_ms, Member, StoredMessage, Typing};
use crate::{ChatError, Limits, MessageId};

/// Longest room name.
pub const MAX_ROOM_LEN: usize = 64;
/// How long subscribers show a typing indicator unless the typist renews it.
pub const TYPING_TTL: Duration = Duration::from_secs(6);
/// Typing signals allowed per user: sustained per second, and at once.
pub const TYPING_RATE: (f64, f64) = (1.0, 5.0);
/// Unread messages counted per room, at most (the count then means "this many or more").
pub const MAX_UNREAD: usize = 100;

/// Shared state of both services.
pub struct ChatState {
    pub(crate) hub: Arc<Hub>,
    keys: Keys,
    limits: Limits,
    send_limit: RateLimiter,
    typing_limit: RateLimiter,
}

impl ChatState {
    /// State over `hub`, verifying tokens with `keys`.
    pub fn new(hub: Arc<Hub>, keys: Keys, limits: Limits) -> Arc<Self> {
        let send_limit = RateLimiter::new("send", limits.send_rate, limits.send_burst);
        let typing_limit = RateLimiter::new("typing", TYPING_RATE.0, TYPING_RATE.1);
        Arc::new(Self {
            hub,
            keys,
            limits,
            send_limit,
            typing_limit,
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

    async fn user(&self, md: &MetadataMap) -> Result<String, ChatError> {
        Ok(self.keys.verify(pfc_auth::bearer(md)?).await?.sub)
    }

    pub(crate) fn store(&self) -> &Arc<dyn crate::ChatStore> {
        self.hub.store()
    }

    pub(crate) fn ttl(&self) -> Duration {
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
        let user = s.user(req.metadata()).await?;
        let req = req.into_inner();
        validate_room(&req.room)?;
        validate_text(&req.text, s.limits.max_message_chars)?;
        s.send_limit
            .check(s.store().as_ref(), &user)
            .await
            .inspect_err(rate_limited)?;
        let msg = s.store().append(&req.room, &user, &req.text).await?;
        METRICS.messages.inc();
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
        s.user(req.metadata()).await?;
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
        let user = s.user(req.metadata()).await?;
        let req = req.into_inner();
        validate_room(&req.room)?;
        let after = match MessageId::parse_opt("after_id", &req.after_id)? {
            Some(id) => id,
            None => s.store().last_id(&req.room).await?,
        };
        // Subscribe before replaying, so nothing sent from now on can slip between the two.
        let live = s.hub.subscribe(&req.room);
        let events = req
            .events
            .then(|| EventFeed::new(&s.hub, &req.room, s.ttl(), user));
        let open = GaugeGuard::new(METRICS.subscribers.clone());
        let stream = follow(s, req.room, after, live, events).map(move |item| {
            let _ = &open; // counts the subscriber for as long as the stream lives
            if matches!(&item, Ok(r) if r.message.is_some()) {
                METRICS.deliveries.inc();
            }
            item
        });
        Ok(Response::new(Box::pin(stream)))
    }

    #[tracing::instrument(skip_all, fields(room = %req.get_ref().room))]
    async fn send_typing(
        &self,
        req: Request<pb::SendTypingRequest>,
    ) -> Result<Response<pb::SendTypingResponse>, Status> {
        let s = &self.0;
        let user = s.user(req.metadata()).await?;
        let req = req.into_inner();
        validate_room(&req.room)?;
        s.typing_limit
            .check(s.store().as_ref(), &user)
            .await
            .inspect_err(rate_limited)?;
        let signal = Typing {
            user,
            typing: req.typing,
        };
        s.store().publish_typing(&req.room, &signal).await?;
        Ok(Response::new(pb::SendTypingResponse {
            expires_in_ms: TYPING_TTL.as_millis() as u32,
        }))
    }

    #[tracing::instrument(skip_all, fields(room = %req.get_ref().room))]
    async fn mark_read(
        &self,
        req: Request<pb::MarkReadRequest>,
    ) -> Result<Response<pb::MarkReadResponse>, Status> {
        let s = &self.0;
        let user = s.user(req.metadata()).await?;
        let req = req.into_inner();
        validate_room(&req.room)?;
        let id = MessageId::parse_opt("last_read_id", &req.last_read_id)?
            .ok_or_else(|| ChatError::InvalidArgument("last_read_id must not be empty".into()))?;
        let stored = s.store().mark_read(&req.room, &user, id).await?;
        Ok(Response::new(pb::MarkReadResponse {
            last_read_id: stored.map(|id| id.to_string()).unwrap_or_default(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_rooms(
        &self,
        req: Request<pb::ListRoomsRequest>,
    ) -> Result<Response<pb::ListRoomsResponse>, Status> {
        let s = &self.0;
        let user = s.user(req.metadata()).await?;
        let limit = match req.get_ref().limit {
            0 => 100,
            n @ 1..=500 => n as usize,
            _ => return Err(ChatError::InvalidArgument("limit must be 1-500".into()).into()),
        };
        let rooms = s.store().rooms(limit).await?;
        let names: Vec<String> = rooms.iter().map(|(n, _)| n.clone()).collect();
        let unread = s.store().unread(&user, &names, MAX_UNREAD).await?;
        Ok(Response::new(pb::ListRoomsResponse {
            rooms: rooms
                .into_iter()
                .zip(unread)
                .map(|((name, t), unread)| pb::Room {
                    name,
                    last_activity_at: Some(pfc_proto::timestamp_from_ms(t)),
                    unread_count: unread.map(|(_, n)| n as u32).unwrap_or(0),
                    last_read_id: unread.map(|(id, _)| id.to_string()).unwrap_or_default(),
                })
                .collect(),
        }))
    }
}

/// Counts a refusal of the rate limiter (the other errors of a check are store errors).
fn rate_limited(e: &ChatError) {
    if matches!(e, ChatError::RateLimited { .. }) {
        METRICS.rate_limited.inc();
    }
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
        let user = s.user(req.metadata()).await?;
        let room = req.into_inner().room;
        validate_room(&room)?;
        let count = s.store().heartbeat(&room, &user, now_ms(), s.ttl()).await?;
        crate::metrics::presence("heartbeat");
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
        let user = s.user(req.metadata()).await?;
        let room = req.into_inner().room;
        validate_room(&room)?;
        let count = s.store().leave(&room, &user, now_ms(), s.ttl()).await?;
        crate::metrics::presence("leave");
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
        s.user(req.metadata()).await?;
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
        s.user(req.metadata()).await?;
        let room = req.into_inner().room;
        validate_room(&room)?;
        let stop = s.hub.shutdown().wait();
        let open = GaugeGuard::new(METRICS.presence_watchers.clone());
        let stream = WatchStream::new(s.hub.watch_presence(&room, s.ttl()))
            .filter_map(move |list| {
                let _ = &open; // counts the watcher for as long as the stream lives
                async move {
                    list.map(|members| {
                        let (members, count) = members_proto(members.to_vec());
                        Ok(pb::WatchPresenceResponse { members, count })
                    })
                }
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
