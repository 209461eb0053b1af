//! Chat over REST and Server-Sent Events: thin handlers over the gRPC `pfc.auth.v1.AuthService`,
//! `pfc.chat.v1.ChatService` and `pfc.chat.v1.PresenceService` (the behaviour is theirs).
//!
//! - `POST /login`, `POST /verify`: origin-compatible (`{"username"}` → `{"token", ...}`,
//!   `{"token"}` → claims or 401).
//! - `POST /api/v1/auth/login`: the same login under the versioned API.
//! - `GET /api/v1/rooms`; `GET|POST /api/v1/rooms/{room}/messages`;
//!   `GET|POST|DELETE /api/v1/rooms/{room}/presence` (list, heartbeat, leave).
//! - `POST /api/v1/rooms/{room}/typing` (typing signal, never stored; bodies over 256 bytes
//!   are 413), `PUT /api/v1/rooms/{room}/read` (read marker; `GET /api/v1/rooms` returns the
//!   unread count per room).
//! - `GET /api/v1/rooms/{room}/events`: SSE, `message` events (id = message id, so a
//!   reconnecting `EventSource` resumes with `Last-Event-ID` and misses nothing), `presence`
//!   events (the online list whenever it changes) and `join`, `leave`, `typing` events; none
//!   but `message` has an id, so they never move the resume point.
//!
//! Every chat route needs the token: `Authorization: Bearer <jwt>`, or `?access_token=` for
//! `EventSource`, which cannot set headers. The gateway forwards it; chat verifies it.

use std::convert::Infallible;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::Event;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use pfc_proto::auth::v1 as auth_pb;
use pfc_proto::auth::v1::auth_service_client::AuthServiceClient;
use pfc_proto::chat::v1 as pb;
use pfc_proto::chat::v1::chat_service_client::ChatServiceClient;
use pfc_proto::chat::v1::presence_service_client::PresenceServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::model::rfc3339;
use crate::rest::JsonBody;
use crate::AppState;

/// The chat routes, to merge into the gateway's router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", post(origin_login))
        .route("/verify", post(origin_verify))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/rooms", get(list_rooms))
        .route(
            "/api/v1/rooms/{room}/messages",
            get(list_messages).post(send_message),
        )
        .route(
            "/api/v1/rooms/{room}/presence",
            get(online).post(heartbeat).delete(leave),
        )
        .route("/api/v1/rooms/{room}/events", get(events))
        .route("/api/v1/rooms/{room}/typing", post(typing))
        .route("/api/v1/rooms/{room}/read", axum::routing::put(mark_read))
}

/// Largest typing signal body: `{"typing":true}` is 15 bytes.
pub const MAX_TYPING_BODY: usize = 256;

/// The chat part of the OpenAPI document (merged into `/openapi.json`).
#[derive(OpenApi)]
#[openapi(
    paths(origin_login, origin_verify, login, list_rooms, list_messages, send_message, online, heartbeat, leave, events, typing, mark_read),
    components(schemas(LoginBody, LoginResult, VerifyBody, VerifyResult, TokenClaims, ChatMessage, MessagePage, SendBody, Room, Rooms, Member, Presence, HeartbeatResult, TypingBody, TypingResult, ReadBody, ReadResult, MemberEvent, TypingEvent)),
    tags(
        (name = "auth", description = "Log in with a pseudo; tokens are EdDSA JWTs"),
        (name = "chat", description = "Rooms, history, live messages and presence (Bearer token required)"),
    ),
    modifiers(&BearerScheme)
)]
pub struct ChatApi;

/// Declares the `bearer` (JWT) security scheme the chat paths refer to.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

// ---------------------------------------------------------------- JSON shapes

/// Log in with a pseudo.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginBody {
    /// 1-32 characters: letters, digits, `_`, `-`, `.`.
    #[schema(example = "alice")]
    pub username: String,
}

/// A fresh token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResult {
    /// The JWT: send it as `Authorization: Bearer <token>`.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Who the token is for.
    pub username: String,
    /// When the token expires (RFC 3339).
    pub expires_at: String,
}

/// A token to check.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyBody {
    /// The JWT (with or without `Bearer `).
    pub token: String,
}

/// The claims of a valid token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenClaims {
    /// Username.
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Issued at (RFC 3339).
    pub issued_at: String,
    /// Expires at (RFC 3339).
    pub expires_at: String,
    /// Token id.
    pub jti: String,
}

/// A verified token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifyResult {
    /// Always true (an invalid token is a 401).
    pub valid: bool,
    /// Username.
    pub username: String,
    /// All claims.
    pub claims: TokenClaims,
}

/// One chat message. Clients must render `text` as plain text.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChatMessage {
    /// Message id (stream id, increasing in send order).
    #[schema(example = "1732380000000-0")]
    pub id: String,
    /// Room.
    pub room: String,
    /// Sender's username.
    pub author: String,
    /// Text.
    pub text: String,
    /// When the server accepted it (RFC 3339).
    pub sent_at: String,
}

impl From<pb::Message> for ChatMessage {
    fn from(m: pb::Message) -> Self {
        ChatMessage {
            id: m.id,
            room: m.room,
            author: m.author,
            text: m.text,
            sent_at: m.sent_at.as_ref().map(rfc3339).unwrap_or_default(),
        }
    }
}

/// A page of history, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessagePage {
    /// Messages, newest first.
    pub messages: Vec<ChatMessage>,
    /// Pass as `before` for the next (older) page; absent at the end.
    pub next_before: Option<String>,
}

/// A message to send.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SendBody {
    /// Not empty, at most 2,000 characters.
    pub text: String,
}

/// A room with history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Room {
    /// Name.
    pub name: String,
    /// Last message (RFC 3339).
    pub last_activity_at: String,
    /// Messages by others after the caller's read marker (at most 100, meaning "100 or
    /// more"); 0 when the caller never marked the room read.
    pub unread_count: u32,
    /// The caller's read marker; absent when none.
    pub last_read_id: Option<String>,
}

/// A typing signal.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TypingBody {
    /// True (default): started or still typing; false: stopped.
    #[serde(default = "yes")]
    pub typing: bool,
}

fn yes() -> bool {
    true
}

/// How long a typing signal shows.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TypingResult {
    /// Others hide the indicator after this long: renew before it passes.
    pub expires_in_ms: u32,
}

/// The last message read.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReadBody {
    /// Id of the last message read (e.g. the newest one shown).
    #[schema(example = "1732380000000-0")]
    pub last_read_id: String,
}

/// The read marker as stored.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadResult {
    /// The marker: never moves back, never past the room's newest message; absent for a room
    /// without messages.
    pub last_read_id: Option<String>,
}

/// `join` / `leave` SSE event: a member came online or went offline.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberEvent {
    /// Username.
    pub username: String,
    /// Members online after the change.
    pub online_count: u32,
}

/// `typing` SSE event (never about the subscriber itself).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TypingEvent {
    /// Who.
    pub username: String,
    /// Started (true) or stopped (false).
    pub typing: bool,
    /// Hide the indicator after this long unless renewed.
    pub expires_in_ms: u32,
}

/// Rooms, most recently active first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Rooms {
    /// The rooms.
    pub rooms: Vec<Room>,
}

/// An online member.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Member {
    /// Username.
    pub username: String,
    /// Last heartbeat (RFC 3339).
    pub last_seen_at: String,
}

/// Who is online in a room.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Presence {
    /// How many.
    pub count: u32,
    /// Who, by username.
    pub members: Vec<Member>,
}

fn presence(members: Vec<pb::Member>, count: u32) -> Presence {
    Presence {
        count,
        members: members
            .into_iter()
            .map(|m| Member {
                last_seen_at: m.last_seen_at.as_ref().map(rfc3339).unwrap_or_default(),
                username: m.username,
            })
            .collect(),
    }
}

/// The result of a heartbeat.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResult {
    /// Seconds of presence left without another heartbeat (send one every third of it).
    pub ttl_seconds: u32,
    /// Members online now.
    pub online_count: u32,
}

/// Paging of `GET /api/v1/rooms/{room}/messages`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1-200 (default 50).
    pub limit: Option<u32>,
    /// Only messages older than this id.
    pub before: Option<String>,
}

/// Options of `GET /api/v1/rooms/{room}/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The token, for clients that cannot set headers (`EventSource`).
    pub access_token: Option<String>,
    /// Resume after this message id (the `Last-Event-ID` header wins when both are set).
    pub after: Option<String>,
}

/// Token of `GET` requests that may come from `EventSource`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// The token, when not in the `Authorization` header.
    pub access_token: Option<String>,
}

// ---------------------------------------------------------------- plumbing

fn token_of(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string());
    from_header
        .or_else(|| query.map(str::to_string))
        .filter(|t| !t.is_empty())
}

/// A gRPC request carrying the caller's token; `timeout` off for streams.
fn authed<T>(
    st: &AppState,
    token: &Option<String>,
    msg: T,
    timeout: bool,
) -> Result<tonic::Request<T>, ApiError> {
    let mut req = if timeout {
        st.call(msg)
    } else {
        tonic::Request::new(msg)
    };
    if let Some(t) = token {
        let value = format!("Bearer {t}")
            .parse()
            .map_err(|_| ApiError::Unauthenticated("invalid token: not ASCII".into()))?;
        req.metadata_mut().insert("authorization", value);
    }
    Ok(req)
}

impl AppState {
    fn auth_client(&self) -> AuthServiceClient<tonic::transport::Channel> {
        AuthServiceClient::new(self.auth_channel.clone())
    }
    fn chat_client(&self) -> ChatServiceClient<tonic::transport::Channel> {
        ChatServiceClient::new(self.chat_channel.clone())
    }
    fn presence_client(&self) -> PresenceServiceClient<tonic::transport::Channel> {
        PresenceServiceClient::new(self.chat_channel.clone())
    }
}

// ---------------------------------------------------------------- auth

async fn do_login(st: &AppState, username: String) -> Result<LoginResult, ApiError> {
    let resp = st
        .auth_client()
        .login(st.call(auth_pb::LoginRequest { username }))
        .await?
        .into_inner();
    let claims = resp.claims.unwrap_or_default();
    Ok(LoginResult {
        token: resp.token,
        token_type: "Bearer".into(),
        username: claims.subject,
        expires_at: claims.expires_at.as_ref().map(rfc3339).unwrap_or_default(),
    })
}

/// Log in with a pseudo (origin-compatible).
#[utoipa::path(post, path = "/login", tag = "auth", request_body = LoginBody,
    responses(
        (status = 200, description = "Token issued", body = LoginResult),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Missing or invalid username", body = ErrorBody),
        (status = 503, description = "Auth unavailable", body = ErrorBody),
    ))]
pub async fn origin_login(
    State(st): State<AppState>,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Json<LoginResult>, ApiError> {
    Ok(Json(do_login(&st, body.username).await?))
}

/// Log in with a pseudo.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginBody,
    responses(
        (status = 200, description = "Token issued", body = LoginResult),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Missing or invalid username", body = ErrorBody),
        (status = 503, description = "Auth unavailable", body = ErrorBody),
    ))]
pub async fn login(
    State(st): State<AppState>,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Json<LoginResult>, ApiError> {
    Ok(Json(do_login(&st, body.username).await?))
}

/// Check a token (origin-compatible).
#[utoipa::path(post, path = "/verify", tag = "auth", request_body = VerifyBody,
    responses(
        (status = 200, description = "Valid token", body = VerifyResult),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Invalid, tampered or expired token", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Missing token field", body = ErrorBody),
        (status = 503, description = "Auth unavailable", body = ErrorBody),
    ))]
pub async fn origin_verify(
    State(st): State<AppState>,
    JsonBody(body): JsonBody<VerifyBody>,
) -> Result<Json<VerifyResult>, ApiError> {
    let resp = st
        .auth_client()
        .verify(st.call(auth_pb::VerifyRequest { token: body.token }))
        .await?
        .into_inner();
    let c = resp.claims.unwrap_or_default();
    Ok(Json(VerifyResult {
        valid: true,
        username: c.subject.clone(),
        claims: TokenClaims {
            sub: c.subject,
            iss: c.issuer,
            aud: c.audience,
            issued_at: c.issued_at.as_ref().map(rfc3339).unwrap_or_default(),
            expires_at: c.expires_at.as_ref().map(rfc3339).unwrap_or_default(),
            jti: c.token_id,
        },
    }))
}

// ---------------------------------------------------------------- rooms and messages

/// List rooms with history, most recently active first.
#[utoipa::path(get, path = "/api/v1/rooms", tag = "chat", security(("bearer" = [])),
    params(TokenQuery),
    responses(
        (status = 200, description = "Rooms", body = Rooms),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 422, description = "Malformed query string", body = ErrorBody),
        (status = 503, description = "Chat unavailable", body = ErrorBody),
    ))]
pub async fn list_rooms(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Result<Json<Rooms>, ApiError> {
    let Query(q) = query?;
    let token = token_of(&headers, q.access_token.as_deref());
    let resp = st
        .chat_client()
        .list_rooms(authed(
            &st,
            &token,
            pb::ListRoomsRequest { limit: 0 },
            true,
        )?)
        .await?
        .into_inner();
    Ok(Json(Rooms {
        rooms: resp
            .rooms
            .into_iter()
            .map(|r| Room {
                last_activity_at: r.last_activity_at.as_ref().map(rfc3339).unwrap_or_default(),
                name: r.name,
                unread_count: r.unread_count,
                last_read_id: (!r.last_read_id.is_empty()).then_some(r.last_read_id),
            })
            .collect(),
    }))
}

/// A page of a room's history, newest first.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/messages", tag = "chat", security(("bearer" = [])),
    params(("room" = String, Path, description = "Room name"), PageQuery),
    responses(
        (status = 200, description = "Messages, newest first", body = MessagePage),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 422, description = "Invalid room, limit or cursor", body = ErrorBody),
        (status = 503, description = "Chat unavailable", body = ErrorBody),
    ))]
pub async fn list_messages(
    State(st): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<MessagePage>, ApiError> {
    let Query(q) = query?;
    let token = token_of(&headers, None);
    let req = pb::ListMessagesRequest {
        room,
        limit: q.limit.unwrap_or(0),
        before_id: q.before.unwrap_or_default(),
    };
    let resp = st
        .chat_client()
        .list_messages(authed(&st, &token, req, true)?)
        .await?
        .into_inner();
    Ok(Json(MessagePage {
        messages: resp.messages.into_iter().map(ChatMessage::from).collect(),
        next_before: (!resp.next_before_id.is_empty()).then_some(resp.next_before_id),
    }))
}

/// Send a message to a room (the author is the token's user).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/messages", tag = "chat", security(("bearer" = [])),
    params(("room" = String, Path, description = "Room name")),
    request_body = SendBody,
    responses(
        (status = 201, description = "Stored", body = ChatMessage),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Missing, empty or too long text, invalid room", body = ErrorBody),
        (status = 429, description = "Sending too fast", body = ErrorBody),
        (status = 503, description = "Chat unavailable", body = ErrorBody),
    ))]
pub async fn send_message(
    State(st): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SendBody>,
) -> Result<impl IntoResponse, ApiError> {
    let token = token_of(&headers, None);
    let req = pb::SendMessageRequest {
        room,
        text: body.text,
    };
    let resp = st
        .chat_client()
        .send_message(authed(&st, &token, req, true)?)
        .await?
        .into_inner();
    let msg = resp
        .message
        .map(ChatMessage::from)
        .ok_or_else(|| ApiError::Internal("chat returned no message".into()))?;
    Ok((StatusCode::CREATED, Json(msg)))
}

// ---------------------------------------------------------------- presence

/// Who is online in a room, and how many.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/presence", tag = "chat", security(("bearer" = [])),
    params(("room" = String, Path, description = "Room name")),
    responses(
        (status = 200, description = "Online members", body = Presence),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 422, description = "Invalid room", body = ErrorBody),
        (status = 503, description = "Chat unavailable", body = ErrorBody),
    ))]
pub async fn online(
    State(st): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Presence>, ApiError> {
    let token = token_of(&headers, None);
    let resp = st
        .presence_client()
        .list_online(authed(&st, &token, pb::ListOnlineRequest { room }, true)?)
        .await?
        .into_inner();
    Ok(Json(presence(resp.members, resp.count)))
}

/// Join a room or stay in it (send every `ttl_seconds / 3`).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/presence", tag = "chat", security(("bearer" = [])),
    params(("room" = String, Path, description = "Room name")),
    responses(
        (status = 200, description = "Present", body = HeartbeatResult),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 422, description = "Invalid room", body = ErrorBody),
        (status = 503, description = "Chat unavailable", body = ErrorBody),
    ))]
pub async fn heartbeat(
    State(st): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<Json<HeartbeatResult>, ApiError> {
    let token = token_of(&headers, None);
    let resp = st
        .presence_client()
        .heartbeat(authed(&st, &token, pb::HeartbeatRequest { room }, true)?)
        .await?
        .into_inner();
    Ok(Json(HeartbeatResult {
        ttl_seconds: resp.ttl_seconds,
        online_count: resp.online_count,
    }))
}

/// Leave a room now.
#[utoipa::path(delete, path = "/api/v1/rooms/{room}/presence", tag = "chat", security(("bearer" = [])),
    params(("room" = String, Path, description = "Room name")),
    responses(
        (status = 204, description = "Left"),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 422, description = "Invalid room", body = ErrorBody),
        (status = 503, description = "Chat unavailable", body = ErrorBody),
    ))]
pub async fn leave(
    State(st): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let token = token_of(&headers, None);
    st.presence_client()
        .leave(authed(&st, &token, pb::LeaveRequest { room }, true)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Tell the room you are typing (or stopped). Never stored; others see a `typing` event.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/typing", tag = "chat", security(("bearer" = [])),
    params(("room" = String, Path, description = "Room name")),
    request_body = TypingBody,
    responses(
        (status = 200, description = "Relayed to the room's subscribers", body = TypingResult),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 413, description = "Body over 256 bytes", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid room or field", body = ErrorBody),
        (status = 429, description = "More than 1 signal/s (burst 5)", body = ErrorBody),
        (status = 503, description = "Chat unavailable", body = ErrorBody),
    ))]
pub async fn typing(
    State(st): State<AppState>,
    Path(room): Path<String>,
    req: axum::extract::Request,
) -> Result<Json<TypingResult>, ApiError> {
    use axum::extract::FromRequest as _;
    let token = token_of(req.headers(), None);
    // A typing signal is tiny: anything bigger is refused before it is parsed.
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_TYPING_BODY)
        .await
        .map_err(|_| {
            ApiError::PayloadTooLarge(format!(
                "typing signal is larger than {MAX_TYPING_BODY} bytes"
            ))
        })?;
    let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
    let JsonBody(body) = JsonBody::<TypingBody>::from_request(req, &st).await?;
    let resp = st
        .chat_client()
        .send_typing(authed(
            &st,
            &token,
            pb::SendTypingRequest {
                room,
                typing: body.typing,
            },
            true,
        )?)
        .await?
        .into_inner();
    Ok(Json(TypingResult {
        expires_in_ms: resp.expires_in_ms,
    }))
}

/// Record the last message you have read in a room (for the unread counts of `GET /api/v1/rooms`).
#[utoipa::path(put, path = "/api/v1/rooms/{room}/read", tag = "chat", security(("bearer" = [])),
    params(("room" = String, Path, description = "Room name")),
    request_body = ReadBody,
    responses(
        (status = 200, description = "The marker as stored", body = ReadResult),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid room or message id", body = ErrorBody),
        (status = 503, description = "Chat unavailable", body = ErrorBody),
    ))]
pub async fn mark_read(
    State(st): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ReadBody>,
) -> Result<Json<ReadResult>, ApiError> {
    let token = token_of(&headers, None);
    let resp = st
        .chat_client()
        .mark_read(authed(
            &st,
            &token,
            pb::MarkReadRequest {
                room,
                last_read_id: body.last_read_id,
            },
            true,
        )?)
        .await?
        .into_inner();
    Ok(Json(ReadResult {
        last_read_id: (!resp.last_read_id.is_empty()).then_some(resp.last_read_id),
    }))
}

// ---------------------------------------------------------------- live events

/// The SSE form of a room event: `join`, `leave` or `typing`.
fn room_event(e: pb::RoomEvent) -> Option<Event> {
    use pb::room_event::Kind;
    let (name, data) = match e.kind? {
        Kind::Joined(m) => (
            "join",
            serde_json::to_string(&MemberEvent {
                username: m.username,
                online_count: m.online_count,
            }),
        ),
        Kind::Left(m) => (
            "leave",
            serde_json::to_string(&MemberEvent {
                username: m.username,
                online_count: m.online_count,
            }),
        ),
        Kind::Typing(t) => (
            "typing",
            serde_json::to_string(&TypingEvent {
                username: t.username,
                typing: t.typing,
                expires_in_ms: t.expires_in_ms,
            }),
        ),
    };
    Some(Event::default().event(name).data(data.unwrap_or_default()))
}

/// Live messages and presence of a room (Server-Sent Events).
///
/// `message` events carry a ChatMessage and its id; a reconnecting `EventSource` sends
/// `Last-Event-ID` and gets every message after it, exactly once. `presence` events carry the
/// online list (Presence) whenever it changes, the current one first; `join` and `leave`
/// (MemberEvent) name who came and went, `typing` (TypingEvent) who types. Only messages are
/// replayed on reconnect: the other events are ephemeral.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/events", tag = "chat", security(("bearer" = [])),
    params(("room" = String, Path, description = "Room name"), EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this message id")),
    responses(
        (status = 200, description = "`text/event-stream` of `message` (ChatMessage), `presence` (Presence), `join`/`leave` (MemberEvent) and `typing` (TypingEvent) events", content_type = "text/event-stream", body = ChatMessage),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 422, description = "Invalid room or resume id", body = ErrorBody),
        (status = 503, description = "Chat unavailable", body = ErrorBody),
    ))]
pub async fn events(
    State(st): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = query?;
    let token = token_of(&headers, q.access_token.as_deref());
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(q.after)
        .unwrap_or_default();
    let messages = st
        .chat_client()
        .subscribe(authed(
            &st,
            &token,
            pb::SubscribeRequest {
                room: room.clone(),
                after_id: after,
                events: true,
            },
            false,
        )?)
        .await?
        .into_inner()
        .map(|item| match item {
            Ok(r) => match (r.message, r.event) {
                (Some(m), _) => {
                    let m = ChatMessage::from(m);
                    let data = serde_json::to_string(&m).unwrap_or_default();
                    Some((false, Event::default().event("message").id(m.id).data(data)))
                }
                (None, Some(e)) => room_event(e).map(|ev| (false, ev)),
                (None, None) => None,
            },
            Err(status) => Some((true, crate::sse::error_event(status))),
        });
    let presence_events = st
        .presence_client()
        .watch_presence(authed(
            &st,
            &token,
            pb::WatchPresenceRequest { room },
            false,
        )?)
        .await?
        .into_inner()
        .map(|item| match item {
            Ok(p) => {
                let data = serde_json::to_string(&presence(p.members, p.count)).unwrap_or_default();
                Some((false, Event::default().event("presence").data(data)))
            }
            Err(status) => Some((true, crate::sse::error_event(status))),
        });
    let stream = futures::stream::select(messages, presence_events)
        .filter_map(futures::future::ready)
        // One error event ends the stream (the client reconnects with Last-Event-ID).
        .scan(false, |done, (is_error, ev)| {
            let out = (!*done).then_some(ev);
            *done |= is_error;
            futures::future::ready(out)
        })
        .map(Ok::<_, Infallible>)
        .take_until(st.shutdown.wait());
    Ok(crate::sse::sse("chat", stream))
}
