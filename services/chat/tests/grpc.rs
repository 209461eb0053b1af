//! The chat role served for real (127.0.0.1:0) over a real redis-server, with tokens from a
//! real auth role whose public key chat fetches over gRPC.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pfc_auth::{Issuer, SigningKey};
use pfc_proto::auth::v1::auth_service_client::AuthServiceClient;
use pfc_proto::auth::v1::LoginRequest;
use pfc_proto::chat::v1::chat_service_client::ChatServiceClient;
use pfc_proto::chat::v1::presence_service_client::PresenceServiceClient;
use pfc_proto::chat::v1::*;
use pfc_testkit::{wait_until, RedisServer};
use tokio::sync::oneshot;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

struct Auth {
    url: String,
    key_file: PathBuf,
    _stop: oneshot::Sender<()>,
}

async fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn serving(addr: SocketAddr, service: &str) -> bool {
    let Ok(ch) = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
    else {
        return false;
    };
    let req = HealthCheckRequest {
        service: service.into(),
    };
    matches!(HealthClient::new(ch).check(req).await, Ok(r) if r.get_ref().status == 1)
}

/// Starts the auth role with a key file the test can also sign with.
async fn start_auth() -> Auth {
    start_auth_with(|key_file| pfc_auth::Config {
        signing_key_file: Some(key_file.to_path_buf()),
        ..Default::default()
    })
    .await
}

/// Starts the auth role with the config `config(key file)` makes.
async fn start_auth_with(config: impl FnOnce(&std::path::Path) -> pfc_auth::Config) -> Auth {
    let dir = std::env::temp_dir().join(format!(
        "pfc-chat-test-{}-{}",
        std::process::id(),
        pfc_testkit::free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("key.pem");
    std::fs::write(&key_file, SigningKey::generate_pem()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    let config = config(&key_file);
    tokio::spawn(async move {
        pfc_auth::run(listener, config, async {
            let _ = rx.await;
        })
        .await
        .unwrap()
    });
    wait_until("auth healthy", Duration::from_secs(10), || async {
        serving(addr, "").await.then_some(())
    })
    .await;
    Auth {
        url: format!("http://{addr}"),
        key_file,
        _stop: tx,
    }
}

impl Auth {
    async fn login(&self, user: &str) -> String {
        let mut c = AuthServiceClient::connect(self.url.clone()).await.unwrap();
        c.login(LoginRequest {
            username: user.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token
    }

    fn local_issuer(&self) -> Issuer {
        Issuer::new(
            SigningKey::load(&self.key_file).unwrap(),
            Duration::from_secs(3600),
            "pfc-auth",
            "pfc",
        )
    }
}

/// Starts the chat role (`pfc_chat::run`: Redis store, keys fetched from auth) and waits for health.
async fn start_chat(
    redis: &RedisServer,
    auth: &Auth,
    limits: pfc_chat::Limits,
) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    let config = pfc_chat::Config {
        grpc_addr: addr,
        redis_url: redis.url(),
        redis_password: None,
        redis_cluster: false,
        auth_url: auth.url.clone(),
        limits,
    };
    tokio::spawn(async move {
        pfc_chat::run(listener, config, async {
            let _ = rx.await;
        })
        .await
        .unwrap()
    });
    wait_until("chat healthy", Duration::from_secs(10), || async {
        serving(addr, "").await.then_some(())
    })
    .await;
    (addr, tx)
}

fn authed<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

async fn send(c: &mut ChatServiceClient<Channel>, token: &str, room: &str, text: &str) -> Message {
    c.send_message(authed(
        token,
        SendMessageRequest {
            room: room.into(),
            text: text.into(),
        },
    ))
    .await
    .unwrap()
    .into_inner()
    .message
    .unwrap()
}

/// Two chat replicas on one Redis share history, live messages and presence.
#[tokio::test]
async fn two_replicas_share_messages_and_presence() {
    let redis = RedisServer::start();
    let auth = start_auth().await;
    let (a, _sa) = start_chat(&redis, &auth, Default::default()).await;
    let (b, _sb) = start_chat(&redis, &auth, Default::default()).await;
    let alice = auth.login("alice").await;
    let bob = auth.login("bob").await;
    let mut ca = ChatServiceClient::new(channel(a).await);
    let mut cb = ChatServiceClient::new(channel(b).await);

    let mut live_b = cb
        .subscribe(authed(
            &bob,
            SubscribeRequest {
                room: "lobby".into(),
                after_id: String::new(),
                events: false,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let sent = send(&mut ca, &alice, "lobby", "hello from a").await;
    assert_eq!(sent.author, "alice", "author comes from the token");
    let got = tokio::time::timeout(Duration::from_secs(5), live_b.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.message.unwrap(), sent);
    let hist = cb
        .list_messages(authed(
            &bob,
            ListMessagesRequest {
                room: "lobby".into(),
                limit: 10,
                before_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hist.messages, vec![sent]);

    let mut pa = PresenceServiceClient::new(channel(a).await);
    let mut pb = PresenceServiceClient::new(channel(b).await);
    pa.heartbeat(authed(
        &alice,
        HeartbeatRequest {
            room: "lobby".into(),
        },
    ))
    .await
    .unwrap();
    let hb = pb
        .heartbeat(authed(
            &bob,
            HeartbeatRequest {
                room: "lobby".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hb.online_count, 2);
    assert_eq!(hb.ttl_seconds, 30);
    let online = pa
        .list_online(authed(
            &alice,
            ListOnlineRequest {
                room: "lobby".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(online.count, 2);
    assert_eq!(
        online
            .members
            .iter()
            .map(|m| m.username.as_str())
            .collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    let left = pb
        .leave(authed(
            &bob,
            LeaveRequest {
                room: "lobby".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(left.online_count, 1);
    let rooms = ca
        .list_rooms(authed(&alice, ListRoomsRequest { limit: 0 }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rooms.rooms[0].name, "lobby");
}

/// A subscriber that drops and resumes from its last id gets every message sent meanwhile
/// (including on the other replica), exactly once and in order, then continues live.
#[tokio::test]
async fn resume_after_id_misses_nothing_and_duplicates_nothing() {
    let redis = RedisServer::start();
    let auth = start_auth().await;
    let (a, _sa) = start_chat(&redis, &auth, Default::default()).await;
    let (b, _sb) = start_chat(
        &redis,
        &auth,
        pfc_chat::Limits {
            send_rate: 10_000.0,
            send_burst: 10_000.0,
            ..Default::default()
        },
    )
    .await;
    let token = auth.login("reader").await;
    let writer = auth.login("writer").await;
    let mut ca = ChatServiceClient::new(channel(a).await);
    let mut cb = ChatServiceClient::new(channel(b).await);

    let mut sent = Vec::new();
    let mut received = Vec::new();
    let mut stream = ca
        .subscribe(authed(
            &token,
            SubscribeRequest {
                room: "r".into(),
                after_id: String::new(),
                events: false,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    for i in 0..10 {
        sent.push(send(&mut cb, &writer, "r", &format!("{i}")).await.id);
    }
    while received.len() < 10 {
        let m = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        received.push(m.message.unwrap().id);
    }
    drop(stream); // disconnect

    // Sent while nobody listens, and while the resumed stream replays and goes live.
    for i in 10..60 {
        sent.push(send(&mut cb, &writer, "r", &format!("{i}")).await.id);
    }
    let last = received.last().unwrap().clone();
    let mut resumed = ca
        .subscribe(authed(
            &token,
            SubscribeRequest {
                room: "r".into(),
                after_id: last,
                events: false,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut cb2 = cb.clone();
    let writer2 = writer.clone();
    let more = tokio::spawn(async move {
        let mut ids = Vec::new();
        for i in 60..200 {
            ids.push(send(&mut cb2, &writer2, "r", &format!("{i}")).await.id);
        }
        ids
    });
    while received.len() < 200 {
        let m = tokio::time::timeout(Duration::from_secs(5), resumed.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        received.push(m.message.unwrap().id);
    }
    sent.extend(more.await.unwrap());
    assert_eq!(received, sent, "every message exactly once, in send order");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), resumed.next())
            .await
            .is_err(),
        "no extra message"
    );
}

/// Missing, `alg: none`, tampered, expired and foreign-key tokens are all UNAUTHENTICATED.
#[tokio::test]
async fn bad_tokens_are_unauthenticated() {
    use base64::Engine as _;
    let redis = RedisServer::start();
    let auth = start_auth().await;
    let (a, _sa) = start_chat(&redis, &auth, Default::default()).await;
    let mut c = ChatServiceClient::new(channel(a).await);
    let good = auth.login("alice").await;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let parts: Vec<&str> = good.split('.').collect();
    let payload = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    let alg_none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&payload.replace("alice", "admin")),
        parts[2]
    );
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (expired, _) = auth
        .local_issuer()
        .issue_at("alice", t - 7200, t - 3600)
        .unwrap();
    let foreign = Issuer::new(
        SigningKey::generate(),
        Duration::from_secs(60),
        "pfc-auth",
        "pfc",
    )
    .issue("alice")
    .unwrap()
    .0;

    let req = || SendMessageRequest {
        room: "lobby".into(),
        text: "hi".into(),
    };
    let err = c.send_message(Request::new(req())).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("Bearer"), "{}", err.message());
    for (what, token) in [
        ("alg none", alg_none),
        ("tampered", tampered),
        ("expired", expired),
        ("wrong key", foreign),
    ] {
        let err = c.send_message(authed(&token, req())).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{what}: {err:?}");
        let err = c
            .subscribe(authed(
                &token,
                SubscribeRequest {
                    room: "lobby".into(),
                    after_id: String::new(),
                    events: false,
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{what} (subscribe)");
    }
    // The locally signed, valid token is accepted (the key was fetched from auth).
    send(
        &mut c,
        &auth.local_issuer().issue("alice").unwrap().0,
        "lobby",
        "ok",
    )
    .await;
}

/// Empty, blank and oversized texts, bad rooms and bad ids are INVALID_ARGUMENT with a clear
/// message; sending too fast is RESOURCE_EXHAUSTED.
#[tokio::test]
async fn invalid_input_and_rate_limit() {
    let redis = RedisServer::start();
    let auth = start_auth().await;
    let limits = pfc_chat::Limits {
        max_message_chars: 100,
        send_rate: 1.0,
        send_burst: 3.0,
        ..Default::default()
    };
    let (a, _sa) = start_chat(&redis, &auth, limits).await;
    let mut c = ChatServiceClient::new(channel(a).await);
    let t = auth.login("alice").await;
    let cases = [
        ("lobby", String::new(), "empty"),
        ("lobby", "  \n ".to_string(), "empty"),
        ("lobby", "x".repeat(101), "limit is 100"),
        ("bad room", "hi".to_string(), "room may only contain"),
        ("", "hi".to_string(), "room must not be empty"),
    ];
    for (room, text, expect) in cases {
        let err = c
            .send_message(authed(
                &t,
                SendMessageRequest {
                    room: room.into(),
                    text,
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().contains(expect),
            "{} should contain {expect}",
            err.message()
        );
    }
    let err = c
        .list_messages(authed(
            &t,
            ListMessagesRequest {
                room: "lobby".into(),
                limit: 10,
                before_id: "nope".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    for _ in 0..3 {
        send(&mut c, &t, "lobby", "burst").await;
    }
    let err = c
        .send_message(authed(
            &t,
            SendMessageRequest {
                room: "lobby".into(),
                text: "one too many".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("rate limit"), "{}", err.message());
    // Another user has their own bucket.
    send(&mut c, &auth.login("bob").await, "lobby", "fine").await;
}

/// The send limit is one bucket per user across replicas: a user alternating between two
/// replicas gets the burst once in total (not once per replica), then RESOURCE_EXHAUSTED with
/// the same message and retry-after on either replica.
#[tokio::test]
async fn rate_limit_is_shared_by_replicas() {
    let redis = RedisServer::start();
    let auth = start_auth().await;
    let limits = || pfc_chat::Limits {
        send_rate: 0.5,
        send_burst: 4.0,
        ..Default::default()
    };
    let (a, _sa) = start_chat(&redis, &auth, limits()).await;
    let (b, _sb) = start_chat(&redis, &auth, limits()).await;
    let mut replicas = [
        ChatServiceClient::new(channel(a).await),
        ChatServiceClient::new(channel(b).await),
    ];
    let t = auth.login("alice").await;
    let mut outcomes = Vec::new();
    for i in 0..10 {
        let r = replicas[i % 2]
            .send_message(authed(
                &t,
                SendMessageRequest {
                    room: "lobby".into(),
                    text: format!("{i}"),
                },
            ))
            .await;
        outcomes.push(
            r.map(|_| ())
                .map_err(|e| (e.code(), e.message().to_string())),
        );
    }
    let ok = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(ok, 4, "burst 4 in total over both replicas: {outcomes:?}");
    assert!(outcomes[..4].iter().all(|o| o.is_ok()), "{outcomes:?}");
    for (i, o) in outcomes[4..].iter().enumerate() {
        let (code, msg) = o.as_ref().unwrap_err();
        assert_eq!(*code, Code::ResourceExhausted, "attempt {}", i + 4);
        assert!(
            msg.starts_with("rate limit exceeded: at most 0.5 messages/s (burst 4); retry in "),
            "{msg}"
        );
    }
    // Another user has their own bucket, on either replica.
    let bob = auth.login("bob").await;
    send(&mut replicas[1], &bob, "lobby", "fine").await;
    send(&mut replicas[0], &bob, "lobby", "fine").await;
}

async fn next_item(s: &mut tonic::Streaming<SubscribeResponse>) -> SubscribeResponse {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("an item within 5 s")
        .unwrap()
        .unwrap()
}

async fn next_event(s: &mut tonic::Streaming<SubscribeResponse>) -> room_event::Kind {
    loop {
        if let Some(e) = next_item(s).await.event {
            return e.kind.unwrap();
        }
    }
}

fn subscribe_req(room: &str, events: bool) -> SubscribeRequest {
    SubscribeRequest {
        room: room.into(),
        after_id: String::new(),
        events,
    }
}

/// Join, typing and leave on one replica reach an event subscriber on the other, in the same
/// stream as messages; the subscriber's own typing is not echoed, and a subscriber that did
/// not ask for events gets none.
#[tokio::test]
async fn room_events_reach_subscribers_on_other_replicas() {
    let redis = RedisServer::start();
    let auth = start_auth().await;
    let (a, _sa) = start_chat(&redis, &auth, Default::default()).await;
    let (b, _sb) = start_chat(&redis, &auth, Default::default()).await;
    let (alice, bob) = (auth.login("alice").await, auth.login("bob").await);
    let mut ca = ChatServiceClient::new(channel(a).await);
    let mut cb = ChatServiceClient::new(channel(b).await);
    let mut pb = PresenceServiceClient::new(channel(b).await);
    let mut events = ca
        .subscribe(authed(&alice, subscribe_req("ev", true)))
        .await
        .unwrap()
        .into_inner();
    let mut plain = ca
        .subscribe(authed(&alice, subscribe_req("ev", false)))
        .await
        .unwrap()
        .into_inner();
    // Typing signals go through Redis Pub/Sub, which only delivers to subscriptions already in
    // place: wait until alice's replica listens on the room's channel.
    let client = redis::Client::open(redis.url()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    wait_until("typing listener subscribed", Duration::from_secs(5), || {
        let mut conn = conn.clone();
        async move {
            let (_, n): (String, u32) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(pfc_chat::store::keys::typing("ev"))
                .query_async(&mut conn)
                .await
                .unwrap();
            (n >= 1).then_some(())
        }
    })
    .await;

    pb.heartbeat(authed(&bob, HeartbeatRequest { room: "ev".into() }))
        .await
        .unwrap();
    match next_event(&mut events).await {
        room_event::Kind::Joined(m) => {
            assert_eq!((m.username.as_str(), m.online_count), ("bob", 1))
        }
        other => panic!("expected bob's join, got {other:?}"),
    }
    let typing = |t: &str, on: bool| {
        authed(
            t,
            SendTypingRequest {
                room: "ev".into(),
                typing: on,
            },
        )
    };
    ca.send_typing(typing(&alice, true)).await.unwrap();
    let r = cb
        .send_typing(typing(&bob, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.expires_in_ms, 6000);
    match next_event(&mut events).await {
        room_event::Kind::Typing(t) => {
            assert_eq!(
                (t.username.as_str(), t.typing, t.expires_in_ms),
                ("bob", true, 6000)
            )
        }
        other => panic!("expected bob typing (alice's own is not echoed), got {other:?}"),
    }
    let sent = send(&mut cb, &bob, "ev", "hello").await;
    cb.send_typing(typing(&bob, false)).await.unwrap();
    let mut saw_message = false;
    loop {
        let item = next_item(&mut events).await;
        if let Some(m) = item.message {
            assert_eq!(m, sent);
            saw_message = true;
        } else if let Some(room_event::Kind::Typing(t)) = item.event.and_then(|e| e.kind) {
            assert!(!t.typing && t.username == "bob");
            break;
        }
    }
    assert!(saw_message, "messages and events share the stream");
    pb.leave(authed(&bob, LeaveRequest { room: "ev".into() }))
        .await
        .unwrap();
    match next_event(&mut events).await {
        room_event::Kind::Left(m) => {
            assert_eq!((m.username.as_str(), m.online_count), ("bob", 0))
        }
        other => panic!("expected bob's leave, got {other:?}"),
    }
    // The plain subscriber saw the message and nothing else.
    let item = next_item(&mut plain).await;
    assert_eq!(item.message.unwrap(), sent);
    assert!(item.event.is_none());
    assert!(
        tokio::time::timeout(Duration::from_millis(300), plain.next())
            .await
            .is_err(),
        "no events without `events`"
    );
    // Nothing of it was stored: the history is the one message.
    let hist = ca
        .list_messages(authed(
            &alice,
            ListMessagesRequest {
                room: "ev".into(),
                limit: 10,
                before_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hist.messages, vec![sent]);
}

/// A returning user sees how many messages others sent since their read marker, per room;
/// markers and typing signals validate rooms and ids, and typing is rate limited.
#[tokio::test]
async fn read_markers_unread_counts_and_bad_input() {
    let redis = RedisServer::start();
    let auth = start_auth().await;
    let (a, _sa) = start_chat(&redis, &auth, Default::default()).await;
    let (b, _sb) = start_chat(&redis, &auth, Default::default()).await;
    let (alice, bob) = (auth.login("alice").await, auth.login("bob").await);
    let mut ca = ChatServiceClient::new(channel(a).await);
    let mut cb = ChatServiceClient::new(channel(b).await);
    let first = send(&mut cb, &bob, "news", "one").await;
    send(&mut cb, &bob, "quiet", "q").await;
    let mark = |t: &str, room: &str, id: &str| {
        authed(
            t,
            MarkReadRequest {
                room: room.into(),
                last_read_id: id.into(),
            },
        )
    };
    let stored = ca
        .mark_read(mark(&alice, "news", &first.id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.last_read_id, first.id);
    for i in 0..3 {
        send(&mut cb, &bob, "news", &format!("n{i}")).await;
    }
    send(&mut ca, &alice, "news", "my own").await;
    let rooms = cb
        .list_rooms(authed(&alice, ListRoomsRequest { limit: 0 }))
        .await
        .unwrap()
        .into_inner()
        .rooms;
    let news = rooms.iter().find(|r| r.name == "news").unwrap();
    assert_eq!(
        (news.unread_count, news.last_read_id.as_str()),
        (3, first.id.as_str())
    );
    let quiet = rooms.iter().find(|r| r.name == "quiet").unwrap();
    assert_eq!(
        (quiet.unread_count, quiet.last_read_id.as_str()),
        (0, ""),
        "never read"
    );
    // Reading up to the newest clears it; a marker past the newest message is clamped.
    let clamped = ca
        .mark_read(mark(&alice, "news", "99999999999999-0"))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(clamped.last_read_id, "99999999999999-0");
    let rooms = ca
        .list_rooms(authed(&alice, ListRoomsRequest { limit: 0 }))
        .await
        .unwrap()
        .into_inner()
        .rooms;
    assert_eq!(
        rooms
            .iter()
            .find(|r| r.name == "news")
            .unwrap()
            .unread_count,
        0
    );

    for (room, id, expect) in [
        ("news", "", "last_read_id must not be empty"),
        ("news", "yesterday", "last_read_id must be a message id"),
        ("bad room", "1-0", "room may only contain"),
        (&"r".repeat(65) as &str, "1-0", "at most 64"),
    ] {
        let err = ca.mark_read(mark(&alice, room, id)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{room} {id}");
        assert!(err.message().contains(expect), "{}", err.message());
    }
    let typing = |room: &str| {
        authed(
            &alice,
            SendTypingRequest {
                room: room.into(),
                typing: true,
            },
        )
    };
    for room in ["", "no spaces", "{tag}", &"r".repeat(65)] {
        let err = ca.send_typing(typing(room)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{room:?}");
    }
    // 1 signal/s, burst 5, per user, across replicas.
    let clients = [&mut ca, &mut cb];
    let mut refused = None;
    for i in 0..8 {
        if let Err(e) = clients[i % 2].send_typing(typing("news")).await {
            refused = Some((i, e));
            break;
        }
    }
    let (i, err) = refused.expect("typing is rate limited");
    assert_eq!(i, 5, "burst 5 over both replicas");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("typing signals/s"),
        "{}",
        err.message()
    );
}

/// Rotating auth's key while users are connected logs nobody out: a live subscriber keeps
/// its stream and its old token keeps working, and a token signed with the new key is
/// accepted by chat at once (chat re-fetches the keys instead of refusing it).
#[tokio::test]
async fn key_rotation_keeps_live_subscribers_and_their_calls_working() {
    let redis = RedisServer::start();
    let key_dir = std::env::temp_dir().join(format!(
        "pfc-chat-rotation-{}-{}",
        std::process::id(),
        pfc_testkit::free_port()
    ));
    let dir = key_dir.clone();
    let auth = start_auth_with(move |_| pfc_auth::Config {
        key_dir: Some(dir),
        key_reload: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let limits = pfc_chat::Limits {
        keys_refresh: Duration::from_secs(3600),
        ..Default::default()
    };
    let (a, _sa) = start_chat(&redis, &auth, limits.clone()).await;
    let (b, _sb) = start_chat(&redis, &auth, limits).await;
    let alice = auth.login("alice").await;
    let mut ca = ChatServiceClient::new(channel(a).await);
    let mut cb = ChatServiceClient::new(channel(b).await);
    let mut live = ca
        .subscribe(authed(&alice, subscribe_req("rot", false)))
        .await
        .unwrap()
        .into_inner();
    let before = send(&mut cb, &alice, "rot", "before").await;
    assert_eq!(next_item(&mut live).await.message.unwrap(), before);

    pfc_auth::write_new_key(&key_dir, pfc_auth::now_secs()).unwrap();
    let kid = |t: &str| t.split('.').next().unwrap().to_string();
    let bob = loop {
        let t = auth.login("bob").await;
        if kid(&t) != kid(&alice) {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Bob's token is signed with a key neither chat replica has seen: accepted on both.
    let m1 = send(&mut cb, &bob, "rot", "signed with the new key").await;
    let m2 = send(&mut ca, &bob, "rot", "on the other replica too").await;
    // Alice's stream is still live, and her token from before the rotation still works.
    assert_eq!(next_item(&mut live).await.message.unwrap(), m1);
    assert_eq!(next_item(&mut live).await.message.unwrap(), m2);
    let m3 = send(&mut ca, &alice, "rot", "old token, next call").await;
    assert_eq!(next_item(&mut live).await.message.unwrap(), m3);
    ca.list_rooms(authed(&alice, ListRoomsRequest { limit: 0 }))
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(key_dir);
}

/// A member that stops heartbeating vanishes after the TTL; WatchPresence reports join and expiry.
#[tokio::test]
async fn presence_expires_after_ttl() {
    let redis = RedisServer::start();
    let auth = start_auth().await;
    let limits = pfc_chat::Limits {
        presence_ttl: Duration::from_millis(1500),
        ..Default::default()
    };
    let (a, _sa) = start_chat(&redis, &auth, limits).await;
    let mut p = PresenceServiceClient::new(channel(a).await);
    let alice = auth.login("alice").await;
    let mut watch = p
        .watch_presence(authed(&alice, WatchPresenceRequest { room: "p".into() }))
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.count, 0);
    p.heartbeat(authed(&alice, HeartbeatRequest { room: "p".into() }))
        .await
        .unwrap();
    let joined = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(joined.count, 1);
    assert_eq!(joined.members[0].username, "alice");
    // No more heartbeats: gone after the TTL, seen by ListOnline and by the watcher.
    let gone = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(gone.count, 0);
    let online = p
        .list_online(authed(&alice, ListOnlineRequest { room: "p".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(online.count, 0);
}

/// Health follows Redis: NOT_SERVING while it is down, SERVING again once it is back.
#[tokio::test]
async fn health_follows_redis() {
    let mut redis = RedisServer::start();
    let auth = start_auth().await;
    let (a, stop) = start_chat(&redis, &auth, Default::default()).await;
    assert!(serving(a, "pfc.chat.v1.ChatService").await);
    assert!(serving(a, "pfc.chat.v1.PresenceService").await);
    redis.stop();
    wait_until("not serving", Duration::from_secs(10), || async {
        (!serving(a, "").await).then_some(())
    })
    .await;
    redis.restart();
    wait_until("serving again", Duration::from_secs(10), || async {
        serving(a, "").await.then_some(())
    })
    .await;
    stop.send(()).unwrap();
}

/// The same services over the in-memory store with fixed keys (the embedded `pfc dev` shape).
#[tokio::test]
async fn memory_store_serves_the_same_api() {
    let issuer = Issuer::new(
        SigningKey::generate(),
        Duration::from_secs(60),
        "pfc-auth",
        "pfc",
    );
    let stop = pfc_runtime::Shutdown::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store: Arc<dyn pfc_chat::ChatStore> = Arc::new(pfc_chat::MemoryStore::new(100));
    let keys = pfc_auth::Keys::fixed(issuer.verifier());
    let server = tokio::spawn(pfc_chat::serve(
        listener,
        store,
        keys,
        Default::default(),
        stop.clone(),
    ));
    wait_until("chat healthy", Duration::from_secs(10), || async {
        serving(addr, "").await.then_some(())
    })
    .await;
    let token = issuer.issue("dev").unwrap().0;
    let mut c = ChatServiceClient::new(channel(addr).await);
    let mut live = c
        .subscribe(authed(
            &token,
            SubscribeRequest {
                room: "dev".into(),
                after_id: String::new(),
                events: false,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let m = send(&mut c, &token, "dev", "<script>alert(1)</script>").await;
    let got = tokio::time::timeout(Duration::from_secs(5), live.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        got.message.unwrap().text,
        m.text,
        "text is stored verbatim; clients render it as text"
    );
    // Shutdown ends open streams with UNAVAILABLE (clients reconnect elsewhere), and the server.
    stop.trigger();
    let end = tokio::time::timeout(Duration::from_secs(5), live.next())
        .await
        .unwrap();
    let status = end.expect("an error, not a silent end").unwrap_err();
    assert_eq!(
        status.code(),
        Code::Unavailable,
        "clients are told to reconnect elsewhere"
    );
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
