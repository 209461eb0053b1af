//! Bad input at the edges, against real servers on loopback: one gRPC server with the jobs,
//! auth and chat services (in-memory stores, as `pfc dev` composes them) and the gateway's
//! `run` on another port, called over real HTTP/1.1.
//!
//! - Request messages over a server's size limit answer `RESOURCE_EXHAUSTED` naming the limit,
//!   over gRPC, over gRPC-web through the gateway, and as a 413 over REST.
//! - The OpenAPI document tells the truth: every answer a route gives to a broken body, a
//!   broken query parameter or a backend that is down is among its documented responses, with
//!   the documented JSON error body.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pfc_processors::Registry;
use pfc_proto::jobs::v1 as pb;
use pfc_queue::{JobStore, MemoryStore, StoreArgs};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tonic::Code;

/// A request message comfortably over every server's 4 MiB decode limit.
const FIVE_MIB: usize = 5 * 1024 * 1024;

/// The gRPC server (jobs + auth + chat); stops when dropped.
struct Core {
    addr: SocketAddr,
    stop: pfc_runtime::Shutdown,
}

impl Drop for Core {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

fn store_args() -> StoreArgs {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct A {
        #[command(flatten)]
        s: StoreArgs,
    }
    A::parse_from(["t"]).s
}

/// Starts jobs, auth and chat on one gRPC port, served the way every role serves them.
async fn start_core() -> Core {
    let stop = pfc_runtime::Shutdown::new();
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new(store_args().store_config()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    let limits = pfc_jobs::Limits {
        max_text_bytes: 64 * 1024,
        max_payload_bytes: 1024 * 1024,
        default_max_attempts: 3,
        ..Default::default()
    };
    let jobs = pfc_jobs::Jobs::new(store.clone(), Registry::builtin(), limits);
    let (schedules, _scheduler) = pfc_jobs::schedule_service::start(
        &store_args(),
        &Default::default(),
        store.clone(),
        jobs.clone(),
        stop.wait(),
    )
    .unwrap();
    let routes = tonic::service::Routes::new(pfc_jobs::server::job_server(jobs))
        .add_service(schedules.into_server(4 << 20));
    let chat = pfc_chat::embedded(
        None,
        pfc_chat::Limits::default(),
        reporter.clone(),
        stop.clone(),
    )
    .unwrap();
    let routes = chat.add_to(routes);
    let routes = pfc_runtime::grpc::with_health_and_reflection(routes, health).unwrap();
    let services = vec![pfc_jobs::SERVICE_NAME.to_string()];
    tokio::spawn(pfc_jobs::background(
        store,
        reporter.clone(),
        services.clone(),
        stop.wait(),
    ));
    tokio::spawn(pfc_runtime::grpc::serve(
        listener,
        routes,
        reporter,
        services,
        stop.wait(),
    ));
    Core { addr, stop }
}

/// The gateway; stops when dropped.
struct Gateway {
    addr: SocketAddr,
    stop: pfc_runtime::Shutdown,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

/// Starts the gateway in front of `core` (every backend there) with `body_limit`, and waits
/// until it answers `ready_path` with 200.
async fn start_gateway(core: &str, body_limit: usize, ready_path: &str) -> Gateway {
    let stop = pfc_runtime::Shutdown::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = pfc_gateway::Config::from_env(core).unwrap();
    config.body_limit = body_limit;
    tokio::spawn(pfc_gateway::run(listener, config, stop.wait()));
    let gw = Gateway { addr, stop };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = gw.send("GET", ready_path, &[], Bytes::new()).await {
            if r.status == 200 {
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "gateway not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw
}

/// An HTTP answer: status, headers and, unless it is an event stream, the body.
struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Gateway {
    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, hyper_util::client::legacy::Error> {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = client.request(req.body(Full::new(body)).unwrap()).await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let streaming = headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        // an event stream never ends by itself: its status and headers are the answer
        let body = if streaming {
            Bytes::new()
        } else {
            resp.into_body().collect().await.unwrap().to_bytes()
        };
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        self.send("POST", path, &headers, Bytes::from(body.to_string()))
            .await
            .expect("http request")
    }

    async fn login(&self, user: &str) -> String {
        let r = self
            .post_json("/login", None, &json!({ "username": user }))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        r.json()["token"].as_str().unwrap().to_string()
    }
}

/// Asserts `answer` is the JSON error body with `status` and `code`; returns its message.
fn assert_error(answer: &Answer, status: u16, code: &str) -> String {
    let body = answer.json();
    assert_eq!(answer.status, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

/// A gRPC channel to `addr`.
async fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Asserts `status` is RESOURCE_EXHAUSTED naming the 4 MiB limit.
fn assert_too_large(what: &str, status: &tonic::Status) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{what}: {status:?}");
    assert!(
        status.message().contains("limit is 4194304 bytes"),
        "{what}: {}",
        status.message()
    );
}

/// A 5 MiB request message to any pfc gRPC service (jobs, auth, chat) answers
/// RESOURCE_EXHAUSTED with a message naming the limit, not tonic's OUT_OF_RANGE.
#[tokio::test]
async fn oversized_grpc_messages_are_resource_exhausted() {
    use pfc_proto::auth::v1::auth_service_client::AuthServiceClient;
    use pfc_proto::chat::v1::chat_service_client::ChatServiceClient;
    use pfc_proto::jobs::v1::job_service_client::JobServiceClient;
    let core = start_core().await;
    let ch = channel(core.addr).await;
    let big = "x".repeat(FIVE_MIB);

    let err = JobServiceClient::new(ch.clone())
        .submit_job(pb::SubmitJobRequest {
            text: big.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_too_large("SubmitJob", &err);
    // the same server-streaming path: WatchJob decodes its request the same way
    let err = JobServiceClient::new(ch.clone())
        .watch_job(pb::WatchJobRequest {
            job_id: big.clone(),
        })
        .await
        .unwrap_err();
    assert_too_large("WatchJob", &err);
    let err = AuthServiceClient::new(ch.clone())
        .login(pfc_proto::auth::v1::LoginRequest {
            username: big.clone(),
        })
        .await
        .unwrap_err();
    assert_too_large("Login", &err);
    let err = ChatServiceClient::new(ch.clone())
        .send_message(pfc_proto::chat::v1::SendMessageRequest {
            room: "lobby".into(),
            text: big,
        })
        .await
        .unwrap_err();
    assert_too_large("SendMessage", &err);

    // the connection still serves normal calls
    let ok = JobServiceClient::new(ch)
        .submit_job(pb::SubmitJobRequest {
            text: "small".into(),
            ..Default::default()
        })
        .await;
    assert!(ok.is_ok(), "{ok:?}");
}

/// Through the gateway: a 5 MiB gRPC-web call answers RESOURCE_EXHAUSTED; a 5 MiB REST body
/// is a 413 with the JSON error body, both at the gateway's own limit and, when the gateway
/// allows more, at the core's (a 413 naming the core's limit, not a 429 "slow down").
#[tokio::test]
async fn oversized_requests_through_the_gateway() {
    use prost::Message;
    let core = start_core().await;
    let url = format!("http://{}", core.addr);
    let big = "x".repeat(FIVE_MIB);

    // gRPC-web (binary), proxied as is to the jobs service
    let gw = start_gateway(&url, 1024 * 1024, "/readyz").await;
    let msg = pb::SubmitJobRequest {
        text: big.clone(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    let r = gw
        .send(
            "POST",
            "/pfc.jobs.v1.JobService/SubmitJob",
            &[
                ("content-type", "application/grpc-web+proto"),
                ("x-grpc-web", "1"),
            ],
            Bytes::from(frame),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "gRPC-web answers errors in grpc-status");
    // trailers-only: the status is in the headers (tonic-web keeps them there)
    let status = tonic::Status::from_header_map(&r.headers).expect("grpc-status header");
    assert_too_large("gRPC-web SubmitJob", &status);

    // REST at the gateway's limit (1 MiB): refused before the core is called
    let body = json!({ "text": big });
    let msg = assert_error(
        &gw.post_json("/api/v1/jobs", None, &body).await,
        413,
        "payload_too_large",
    );
    assert!(msg.contains("1048576"), "{msg}");
    drop(gw);

    // REST with a gateway that lets 8 MiB through: the core refuses the message, and that is
    // still a 413 naming the core's limit, for jobs and for chat alike
    let gw = start_gateway(&url, 8 * 1024 * 1024, "/readyz").await;
    let token = gw.login("alice").await;
    for path in ["/jobs", "/api/v1/jobs", "/api/v1/rooms/lobby/messages"] {
        let r = gw.post_json(path, Some(&token), &body).await;
        let msg = assert_error(&r, 413, "payload_too_large");
        assert!(msg.contains("limit is 4194304 bytes"), "{path}: {msg}");
    }
    let r = gw
        .post_json("/login", None, &json!({ "username": big }))
        .await;
    assert_error(&r, 413, "payload_too_large");
}

// ---------------------------------------------------------------- the OpenAPI document

/// The OpenAPI document served by `gw`.
async fn openapi(gw: &Gateway) -> Value {
    let r = gw.send("GET", "/openapi.json", &[], Bytes::new()).await;
    let r = r.expect("openapi.json");
    assert_eq!(r.status, 200);
    r.json()
}

/// `template` with its `{params}` filled in with plausible values.
fn fill(template: &str) -> String {
    template
        .split('/')
        .map(|seg| match seg {
            "{job_id}" => "01JABCDEFGHJKMNPQRSTVWXYZ0",
            "{room}" => "lobby",
            s if s.starts_with('{') => "x",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every (method, path template, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    assert!(!out.is_empty());
    out
}

/// Checks `value` against `schema` of `doc` (the subset pfc's document uses: `$ref`, objects
/// with `required` and `properties`, strings, integers, arrays, nullable types).
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.strip_prefix("#/components/schemas/").ok_or(r)?;
        return conforms(doc, &doc["components"]["schemas"][name], value, at);
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(()), // oneOf & co: not used by error bodies
    };
    let ok = types.iter().any(|t| match *t {
        "object" => value.is_object(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        _ => true,
    });
    if !ok {
        return Err(format!("{at}: {value} is not {types:?}"));
    }
    if let Some(obj) = value.as_object() {
        for key in schema["required"].as_array().into_iter().flatten() {
            let key = key.as_str().unwrap_or_default();
            if !obj.contains_key(key) {
                return Err(format!("{at}: missing required {key:?}"));
            }
        }
        for (key, v) in obj {
            if let Some(prop) = schema["properties"].get(key) {
                conforms(doc, prop, v, &format!("{at}.{key}"))?;
            }
        }
    }
    Ok(())
}

/// Asserts `answer` is among the responses `op` documents and, when the document promises a
/// JSON body for it, that the answer is JSON of that schema. Returns the schema's name (e.g.
/// `ErrorBody`), if any.
fn assert_documented(what: &str, doc: &Value, op: &Value, answer: &Answer) -> Option<String> {
    let code = answer.status.to_string();
    let documented = &op["responses"][&code];
    let listed: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
    assert!(
        documented.is_object(),
        "{what} answered {code}, not among the documented {listed:?}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    let schema = &documented["content"]["application/json"]["schema"];
    if answer.status < 400 || !schema.is_object() {
        assert!(
            answer.status < 400,
            "{what}: documented {code} has no JSON body: {documented}"
        );
        return None;
    }
    let ct = answer
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(ct.starts_with("application/json"), "{what}: {code} as {ct}");
    let body: Value = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|e| panic!("{what}: {code} body is not JSON ({e})"));
    if let Err(e) = conforms(doc, schema, &body, "body") {
        panic!("{what}: {code} body does not match the documented schema: {e}");
    }
    schema["$ref"]
        .as_str()
        .and_then(|r| r.rsplit('/').next())
        .map(str::to_string)
}

/// Request headers, as (name, value) pairs.
type Headers<'a> = Vec<(&'a str, &'a str)>;

/// Every POST route answers a broken body (none, truncated JSON, not JSON, the wrong shape,
/// a non-JSON content type, over the size limit), with or without a token, with one of its
/// documented statuses and the documented JSON error body.
#[tokio::test]
async fn post_routes_document_their_answers_to_broken_bodies() {
    const LIMIT: usize = 64 * 1024;
    let core = start_core().await;
    let gw = start_gateway(&format!("http://{}", core.addr), LIMIT, "/readyz").await;
    let doc = openapi(&gw).await;
    let token = format!("Bearer {}", gw.login("alice").await);
    let oversized = format!("{{\"text\": \"{}\"}}", "x".repeat(LIMIT));
    let json_ct = ("content-type", "application/json");
    let bodies: Vec<(&str, Headers, Bytes)> = vec![
        ("no body", vec![], Bytes::new()),
        ("empty JSON body", vec![json_ct], Bytes::new()),
        (
            "truncated JSON",
            vec![json_ct],
            Bytes::from_static(b"{\"text\": "),
        ),
        (
            "not JSON",
            vec![json_ct],
            Bytes::from_static(b"hello there"),
        ),
        ("JSON array", vec![json_ct], Bytes::from_static(b"[1, 2]")),
        (
            "JSON of the wrong types",
            vec![json_ct],
            Bytes::from_static(b"{\"text\": 5, \"username\": [], \"token\": {}}"),
        ),
        (
            "text/plain",
            vec![("content-type", "text/plain")],
            Bytes::from_static(b"{}"),
        ),
        ("over the size limit", vec![json_ct], Bytes::from(oversized)),
    ];
    let mut checked = 0;
    for (method, path, op) in operations(&doc) {
        if method != "POST" {
            continue;
        }
        let uri = fill(&path);
        for (what, headers, body) in &bodies {
            for auth in [None, Some(token.as_str())] {
                let mut headers = headers.clone();
                if let Some(a) = auth {
                    headers.push(("authorization", a));
                }
                let answer = gw.send("POST", &uri, &headers, body.clone()).await.unwrap();
                let what = format!("POST {path} with {what} (token: {})", auth.is_some());
                let schema = assert_documented(&what, &doc, &op, &answer);
                if answer.status >= 400 {
                    assert_eq!(schema.as_deref(), Some("ErrorBody"), "{what}");
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 8 * 16,
        "only {checked} requests: are the POST routes documented?"
    );
}

/// Every documented query parameter, given a value of the wrong type or an unknown one,
/// gets a documented answer with the JSON error body (never axum's plain-text 400).
#[tokio::test]
async fn query_parameters_document_their_answers_to_bad_values() {
    let core = start_core().await;
    let gw = start_gateway(&format!("http://{}", core.addr), 1024 * 1024, "/readyz").await;
    let doc = openapi(&gw).await;
    let token = format!("Bearer {}", gw.login("alice").await);
    let mut checked = 0;
    for (method, path, op) in operations(&doc) {
        let Some(params) = op["parameters"].as_array() else {
            continue;
        };
        for p in params.iter().filter(|p| p["in"] == "path") {
            let name = p["name"].as_str().unwrap();
            assert!(
                path.contains(&format!("{{{name}}}")),
                "{method} {path} documents {name:?} as a path parameter, but the path has no {{{name}}}"
            );
        }
        for p in params.iter().filter(|p| p["in"] == "query") {
            let name = p["name"].as_str().unwrap();
            for bad in ["-1", "abc", "99999999999999999999", "%FF%FE"] {
                let uri = format!("{}?{name}={bad}", fill(&path));
                let answer = gw
                    .send(&method, &uri, &[("authorization", &token)], Bytes::new())
                    .await
                    .unwrap();
                assert_documented(&format!("{method} {uri}"), &doc, &op, &answer);
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no query parameters documented?");
}

/// With every backend down, every route answers one of its documented statuses (503 where
/// the backend is needed) with the documented JSON error body.
#[tokio::test]
async fn routes_document_their_answers_with_backends_down() {
    // port 1 on loopback: nothing listens, connections are refused at once
    let gw = start_gateway("http://127.0.0.1:1", 1024 * 1024, "/healthz").await;
    let doc = openapi(&gw).await;
    for (method, path, op) in operations(&doc) {
        let uri = fill(&path);
        // a body every JSON route accepts (unknown fields are allowed where they are)
        let body = json!({ "text": "hello", "username": "alice", "token": "t" }).to_string();
        let headers = [
            ("content-type", "application/json"),
            ("authorization", "Bearer t"),
        ];
        let answer = gw
            .send(&method, &uri, &headers, Bytes::from(body))
            .await
            .unwrap();
        assert_documented(
            &format!("{method} {uri} (backends down)"),
            &doc,
            &op,
            &answer,
        );
    }
}
