//! The chat REST and SSE routes against real auth + chat gRPC services (in-memory store) on
//! 127.0.0.1:0, driven through the gateway's router.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The gateway app wired to a fresh auth + chat server; the server stops with the guard.
async fn app() -> (axum::Router, pfc_runtime::Shutdown) {
    let stop = pfc_runtime::Shutdown::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    let chat = pfc_chat::embedded(
        None,
        pfc_chat::Limits::default(),
        reporter.clone(),
        stop.clone(),
    )
    .unwrap();
    let routes = chat.add_to(tonic::service::Routes::default());
    let routes = pfc_runtime::grpc::with_health_and_reflection(routes, health).unwrap();
    tokio::spawn(pfc_runtime::grpc::serve(
        listener,
        routes,
        reporter,
        vec![],
        stop.wait(),
    ));
    let config = pfc_gateway::Config::from_env(format!("http://{addr}")).unwrap();
    let state = pfc_gateway::AppState::new(&config).unwrap();
    (pfc_gateway::app(state), stop)
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn login(app: &axum::Router, user: &str) -> String {
    let (status, body) = call(
        app,
        "POST",
        "/login",
        None,
        Some(json!({ "username": user })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().unwrap().to_string()
}

/// Origin-compatible login and verify: a token for a valid pseudo, 422 for a bad one, 401 for a bad token.
#[tokio::test]
async fn login_and_verify() {
    let (app, _stop) = app().await;
    let token = login(&app, "alice").await;
    let (status, body) = call(
        &app,
        "POST",
        "/verify",
        None,
        Some(json!({ "token": token })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["valid"], true);
    assert_eq!(body["username"], "alice");
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({ "username": "bad name" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "invalid_argument");
    let (status, body) = call(
        &app,
        "POST",
        "/verify",
        None,
        Some(json!({ "token": "x.y.z" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthenticated");
}

/// Sending needs a token; bad texts are 422 with the chat service's message; history pages newest first.
#[tokio::test]
async fn messages_and_rooms() {
    let (app, _stop) = app().await;
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/rooms/lobby/messages",
        None,
        Some(json!({ "text": "hi" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let t = login(&app, "alice").await;
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/rooms/lobby/messages",
        Some(&t),
        Some(json!({ "text": "" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["message"].as_str().unwrap().contains("empty"));
    let long = "x".repeat(2001);
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/rooms/lobby/messages",
        Some(&t),
        Some(json!({ "text": long })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("limit is 2000"));
    for text in ["one", "two", "three"] {
        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/rooms/lobby/messages",
            Some(&t),
            Some(json!({ "text": text })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["author"], "alice");
    }
    let (status, page) = call(
        &app,
        "GET",
        "/api/v1/rooms/lobby/messages?limit=2",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["messages"][0]["text"], "three");
    let before = page["next_before"].as_str().unwrap();
    let (_, older) = call(
        &app,
        "GET",
        &format!("/api/v1/rooms/lobby/messages?limit=2&before={before}"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(older["messages"][0]["text"], "one");
    let (_, rooms) = call(&app, "GET", "/api/v1/rooms", Some(&t), None).await;
    assert_eq!(rooms["rooms"][0]["name"], "lobby");
}

/// Heartbeat, list and leave change the online list and count.
#[tokio::test]
async fn presence_routes() {
    let (app, _stop) = app().await;
    let a = login(&app, "alice").await;
    let b = login(&app, "bob").await;
    call(&app, "POST", "/api/v1/rooms/r/presence", Some(&a), None).await;
    let (status, hb) = call(&app, "POST", "/api/v1/rooms/r/presence", Some(&b), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hb["online_count"], 2);
    let (_, online) = call(&app, "GET", "/api/v1/rooms/r/presence", Some(&a), None).await;
    assert_eq!(online["count"], 2);
    assert_eq!(online["members"][1]["username"], "bob");
    let (status, _) = call(&app, "DELETE", "/api/v1/rooms/r/presence", Some(&b), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, online) = call(&app, "GET", "/api/v1/rooms/r/presence", Some(&a), None).await;
    assert_eq!(online["count"], 1);
}

/// Reads SSE text from `body` until `pred` holds on everything read so far.
async fn read_until(body: &mut Body, seen: &mut String, pred: impl Fn(&str) -> bool) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !pred(seen) {
            let frame = body.frame().await.expect("stream ended").unwrap();
            if let Some(data) = frame.data_ref() {
                seen.push_str(&String::from_utf8_lossy(data));
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out; got so far:\n{seen}"));
}

/// The events stream pushes messages (with their id) and presence; reconnecting with
/// Last-Event-ID replays exactly what was missed.
#[tokio::test]
async fn events_stream_and_resume() {
    let (app, _stop) = app().await;
    let t = login(&app, "alice").await;
    let req = Request::get(format!("/api/v1/rooms/live/events?access_token={t}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = resp.into_body();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, |s| s.contains("event: presence")).await;
    let (_, first) = call(
        &app,
        "POST",
        "/api/v1/rooms/live/messages",
        Some(&t),
        Some(json!({ "text": "<img src=x onerror=alert(1)>" })),
    )
    .await;
    read_until(&mut body, &mut seen, |s| s.contains("event: message")).await;
    assert!(
        seen.contains(&format!("id: {}", first["id"].as_str().unwrap())),
        "{seen}"
    );
    call(&app, "POST", "/api/v1/rooms/live/presence", Some(&t), None).await;
    read_until(&mut body, &mut seen, |s| s.contains("\"count\":1")).await;
    drop(body);

    let (_, second) = call(
        &app,
        "POST",
        "/api/v1/rooms/live/messages",
        Some(&t),
        Some(json!({ "text": "missed" })),
    )
    .await;
    let req = Request::get(format!("/api/v1/rooms/live/events?access_token={t}"))
        .header("last-event-id", first["id"].as_str().unwrap())
        .body(Body::empty())
        .unwrap();
    let mut body = app.clone().oneshot(req).await.unwrap().into_body();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, |s| s.contains("missed")).await;
    assert!(seen.contains(&format!("id: {}", second["id"].as_str().unwrap())));
    assert!(
        !seen.contains("onerror"),
        "the message before Last-Event-ID is not sent again"
    );
}

/// Without a token the events stream is refused with 401.
#[tokio::test]
async fn events_need_a_token() {
    let (app, _stop) = app().await;
    let (status, body) = call(&app, "GET", "/api/v1/rooms/live/events", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthenticated");
}

/// The events stream carries `join`, `typing` and `leave` for other members; typing and read
/// markers have REST routes with clear errors (an oversized typing signal is 413), and the
/// room list shows a returning user's unread count.
#[tokio::test]
async fn room_events_typing_and_unread_over_rest() {
    let (app, _stop) = app().await;
    let alice = login(&app, "alice").await;
    let bob = login(&app, "bob").await;
    let req = Request::get(format!("/api/v1/rooms/ev/events?access_token={alice}"))
        .body(Body::empty())
        .unwrap();
    let mut body = app.clone().oneshot(req).await.unwrap().into_body();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, |s| s.contains("event: presence")).await;
    call(&app, "POST", "/api/v1/rooms/ev/presence", Some(&bob), None).await;
    read_until(&mut body, &mut seen, |s| s.contains("event: join")).await;
    assert!(
        seen.contains(r#"{"username":"bob","online_count":1}"#),
        "{seen}"
    );
    let (status, r) = call(
        &app,
        "POST",
        "/api/v1/rooms/ev/typing",
        Some(&bob),
        Some(json!({ "typing": true })),
    )
    .await;
    assert_eq!(
        (status, &r),
        (StatusCode::OK, &json!({ "expires_in_ms": 6000 }))
    );
    read_until(&mut body, &mut seen, |s| s.contains("event: typing")).await;
    assert!(
        seen.contains(r#"{"username":"bob","typing":true,"expires_in_ms":6000}"#),
        "{seen}"
    );
    call(
        &app,
        "DELETE",
        "/api/v1/rooms/ev/presence",
        Some(&bob),
        None,
    )
    .await;
    read_until(&mut body, &mut seen, |s| s.contains("event: leave")).await;

    // Bad typing signals and read markers.
    let big = json!({ "typing": true, "pad": "x".repeat(300) });
    let (status, r) = call(
        &app,
        "POST",
        "/api/v1/rooms/ev/typing",
        Some(&bob),
        Some(big),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("256 bytes"),
        "{r}"
    );
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/rooms/ev/typing",
        Some(&bob),
        Some(json!({ "typing": "yes" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/rooms/bad%20room/typing",
        Some(&bob),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/rooms/ev/typing",
        None,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let read = |id: &str| Some(json!({ "last_read_id": id }));
    let (status, r) = call(
        &app,
        "PUT",
        "/api/v1/rooms/ev/read",
        Some(&alice),
        read("soon"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("message id"),
        "{r}"
    );

    // Unread: alice reads, bob writes twice, alice comes back.
    let (_, m) = call(
        &app,
        "POST",
        "/api/v1/rooms/ev/messages",
        Some(&bob),
        Some(json!({ "text": "1" })),
    )
    .await;
    let id = m["id"].as_str().unwrap();
    let (status, r) = call(&app, "PUT", "/api/v1/rooms/ev/read", Some(&alice), read(id)).await;
    assert_eq!(
        (status, &r),
        (StatusCode::OK, &json!({ "last_read_id": id }))
    );
    for text in ["2", "3"] {
        call(
            &app,
            "POST",
            "/api/v1/rooms/ev/messages",
            Some(&bob),
            Some(json!({ "text": text })),
        )
        .await;
    }
    let (_, rooms) = call(&app, "GET", "/api/v1/rooms", Some(&alice), None).await;
    let ev = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "ev")
        .unwrap();
    assert_eq!(ev["unread_count"], 2, "{rooms}");
    assert_eq!(ev["last_read_id"], id);
    let (_, rooms) = call(&app, "GET", "/api/v1/rooms", Some(&bob), None).await;
    assert_eq!(rooms["rooms"][0]["unread_count"], 0);
    assert_eq!(rooms["rooms"][0]["last_read_id"], Value::Null);
}
