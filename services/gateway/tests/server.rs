//! The gateway against a real core: a pfc-jobs gRPC server (in-memory store) and a real
//! worker on 127.0.0.1:0, and the gateway's `run` on another free port, called over real
//! HTTP/1.1 like curl or a browser would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pfc_processors::Registry;
use pfc_proto::jobs::v1 as pb;
use pfc_proto::jobs::v1::job_service_client::JobServiceClient;
use pfc_queue::{JobStore, MemoryStore, StoreArgs};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;

/// A running stack: core + worker + gateway; stops when dropped.
struct Stack {
    http: SocketAddr,
    gateway: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _stop: pfc_runtime::Shutdown,
    stop: pfc_runtime::Shutdown,
}

impl Drop for Stack {
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

async fn start() -> Stack {
    let stop = pfc_runtime::Shutdown::new();
    let args = store_args();
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new(args.store_config()));

    // The jobs core, as `pfc jobs` serves it, on a free port.
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    let limits = pfc_jobs::Limits {
        max_text_bytes: 64 * 1024,
        max_payload_bytes: 1024 * 1024,
        default_max_attempts: 3,
        ..Default::default()
    };
    let workers =
        pfc_jobs::Workers::new(store.clone(), args.lease, Default::default(), stop.clone());
    let jobs = pfc_jobs::Jobs::new(store.clone(), Registry::builtin(), limits);
    let (schedules, _scheduler) = pfc_jobs::schedule_service::start(
        &args,
        &Default::default(),
        store.clone(),
        jobs.clone(),
        stop.wait(),
    )
    .unwrap();
    let routes = tonic::service::Routes::new(pfc_jobs::server::job_server(jobs))
        .add_service(workers.into_server())
        .add_service(schedules.into_server(4 << 20));
    let routes = pfc_runtime::grpc::with_health_and_reflection(routes, health).unwrap();
    tokio::spawn(pfc_jobs::background(
        store.clone(),
        reporter.clone(),
        vec![pfc_jobs::SERVICE_NAME.into()],
        stop.wait(),
    ));
    tokio::spawn(pfc_runtime::grpc::serve(
        grpc,
        routes,
        reporter,
        vec![pfc_jobs::SERVICE_NAME.into()],
        stop.wait(),
    ));

    // The built-in worker, over the worker protocol.
    let worker_args = pfc_worker::WorkerArgs {
        queues: Vec::new(),
        concurrency: 4,
        shutdown_timeout: Duration::from_secs(1),
        job_timeout: Duration::from_secs(30),
    };
    let url = format!("http://{grpc_addr}");
    let worker = pfc_worker::builtin(&url, Registry::builtin(), &worker_args, Some("test"));
    tokio::spawn(worker.run_until(stop.wait()));

    // The gateway.
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr = http.local_addr().unwrap();
    let config = pfc_gateway::Config::from_env(format!("http://{grpc_addr}")).unwrap();
    let gateway = tokio::spawn(pfc_gateway::run(http, config, stop.wait()));

    let stack = Stack {
        http: http_addr,
        gateway: Some(gateway),
        _stop: stop.clone(),
        stop,
    };
    // Ready when /readyz says the core is SERVING (polling, not sleeping).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok((200, _)) = stack.call("GET", "/readyz", None).await {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "stack not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack
}

impl Stack {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// One HTTP/1.1 request; returns the status and the body as JSON (or a JSON string).
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), hyper_util::client::legacy::Error> {
        self.raw(method, path, body.map(|b| b.to_string()), &[])
            .await
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value), hyper_util::client::legacy::Error> {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut req = http::Request::builder().method(method).uri(self.url(path));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let resp = client.request(req).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((status, value))
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, body).await.expect("http request")
    }

    /// Polls `GET path` until `done(body)`.
    async fn poll(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let (status, body) = self.ok("GET", path, None).await;
            assert_eq!(status, 200, "{body}");
            if done(&body) {
                return body;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
}

/// The origin's quick test works unchanged: post "bonjour le monde", poll, read
/// "BONJOUR LE MONDE" with status done; `/healthz` is `{"status":"ok"}`.
#[tokio::test]
async fn origin_quick_test() {
    let s = start().await;
    assert_eq!(
        s.ok("GET", "/healthz", None).await,
        (200, json!({"status": "ok"}))
    );
    let (status, body) = s
        .ok("POST", "/jobs", Some(json!({"text": "bonjour le monde"})))
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["job_id"].as_str().expect("job_id").to_string();
    assert_eq!(body.as_object().unwrap().len(), 1, "only job_id: {body}");
    let job = s
        .poll(&format!("/jobs/{id}"), |b| b["status"] == "done")
        .await;
    assert_eq!(job["job_id"], id.as_str());
    assert_eq!(job["result"], "BONJOUR LE MONDE");
}

/// Input the core rejects is a 4xx JSON error: empty and oversized text, malformed kind;
/// unknown and malformed ids are 404s.
#[tokio::test]
async fn core_validation_errors_are_4xx() {
    let s = start().await;
    let (st, b) = s.ok("POST", "/jobs", Some(json!({"text": ""}))).await;
    assert_error(st, &b, 422, "invalid_argument");
    let big = "a".repeat(64 * 1024 + 1);
    let (st, b) = s
        .ok("POST", "/api/v1/jobs", Some(json!({"text": big})))
        .await;
    assert_error(st, &b, 422, "invalid_argument");
    let (st, b) = s
        .ok(
            "POST",
            "/api/v1/jobs",
            Some(json!({"text": "x", "kind": "No/pe"})),
        )
        .await;
    assert_error(st, &b, 422, "invalid_argument");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("No/pe"),
        "{b}"
    );
    for path in [
        "/jobs/01HZZZZZZZZZZZZZZZZZZZZZZZ",
        "/jobs/not-an-id",
        "/api/v1/jobs/01HZZZZZZZZZZZZZZZZZZZZZZZ",
        "/api/v1/jobs/01HZZZZZZZZZZZZZZZZZZZZZZZ/events",
    ] {
        let (st, b) = s.ok("GET", path, None).await;
        assert_error(st, &b, 404, "not_found");
    }
    let (st, b) = s
        .ok(
            "POST",
            "/api/v1/jobs/01HZZZZZZZZZZZZZZZZZZZZZZZ/cancel",
            None,
        )
        .await;
    assert_error(st, &b, 404, "not_found");
}

/// The v1 API: submit with a kind (201 + Location), idempotency by header and by body
/// (200, created false, same id), get, list with a status filter and paging, stats, kinds.
#[tokio::test]
async fn v1_api() {
    let s = start().await;
    let (st, kinds) = s.ok("GET", "/api/v1/kinds", None).await;
    assert_eq!(st, 200);
    let names: Vec<&str> = kinds["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"uppercase") && names.contains(&"reverse"),
        "{names:?}"
    );

    let (st, b) = s
        .ok(
            "POST",
            "/api/v1/jobs",
            Some(json!({"text": "abc", "kind": "reverse", "max_attempts": 2})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["created"], true);
    assert_eq!(b["job"]["kind"], "reverse");
    assert_eq!(b["job"]["max_attempts"], 2);
    let id = b["job_id"].as_str().unwrap().to_string();
    let job = s
        .poll(&format!("/api/v1/jobs/{id}"), |b| b["status"] == "done")
        .await;
    assert_eq!(job["result"], "cba");
    assert!(job["finished_at"].as_str().unwrap().ends_with('Z'));
    assert!(job["attempts"].as_u64().unwrap() >= 1);

    // Idempotency: header, then the same key again.
    let body = json!({"text": "once"}).to_string();
    let (st1, b1) = s
        .raw(
            "POST",
            "/api/v1/jobs",
            Some(body.clone()),
            &[("idempotency-key", "k-1")],
        )
        .await
        .unwrap();
    let (st2, b2) = s
        .raw(
            "POST",
            "/api/v1/jobs",
            Some(body),
            &[("idempotency-key", "k-1")],
        )
        .await
        .unwrap();
    assert_eq!((st1, st2), (201, 200), "{b1} {b2}");
    assert_eq!(b1["job_id"], b2["job_id"]);
    assert_eq!(b2["created"], false);

    // List: everything, then only done jobs, then paging.
    s.poll(
        &format!("/api/v1/jobs/{}", b1["job_id"].as_str().unwrap()),
        |b| b["status"] == "done",
    )
    .await;
    let (_, all) = s.ok("GET", "/api/v1/jobs", None).await;
    assert_eq!(all["total_size"], 2, "{all}");
    let (_, done) = s.ok("GET", "/api/v1/jobs?status=done", None).await;
    assert!(done["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["status"] == "done"));
    let (_, page) = s.ok("GET", "/api/v1/jobs?page_size=1", None).await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);
    let token = page["next_page_token"]
        .as_str()
        .expect("a next page")
        .to_string();
    let (_, page2) = s
        .ok(
            "GET",
            &format!("/api/v1/jobs?page_size=1&page_token={token}"),
            None,
        )
        .await;
    assert_ne!(page2["jobs"][0]["id"], page["jobs"][0]["id"]);

    let (st, stats) = s.ok("GET", "/api/v1/stats", None).await;
    assert_eq!(st, 200);
    assert!(stats["submitted_total"].as_u64().unwrap() >= 2, "{stats}");
    assert!(stats["live_workers"].as_u64().unwrap() >= 1, "{stats}");
}

/// Schedules over REST: create (201, with its next fire), bad cron / zone / job fields are
/// 422s whose message names the field, a duplicate is 409; the schedule fires (its last job
/// and that job's status show), pause clears the next fire, resume sets it, delete is 204 and
/// then 404.
#[tokio::test]
async fn schedules_rest() {
    let s = start().await;
    let body = json!({"name": "tick", "every_ms": 1000, "job": {"text": "tock"}});
    let (st, b) = s.ok("POST", "/api/v1/schedules", Some(body.clone())).await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["every_ms"], 1000);
    assert_eq!(b["source"], "api");
    assert!(b["next_fire_at"].is_string(), "{b}");
    let (st, b) = s.ok("POST", "/api/v1/schedules", Some(body)).await;
    assert_error(st, &b, 409, "failed_precondition");
    for (bad, field) in [
        (
            json!({"name": "x", "cron": "61 * * * *", "job": {"text": "a"}}),
            "cron",
        ),
        (
            json!({"name": "x", "cron": "0 3 * * *", "time_zone": "Mars/Olympus", "job": {"text": "a"}}),
            "time_zone",
        ),
        (
            json!({"name": "x", "every_ms": 5, "job": {"text": "a"}}),
            "every",
        ),
        (
            json!({"name": "x", "every_ms": 5000, "job": {"text": "a", "idempotency_key": "k"}}),
            "job.idempotency_key",
        ),
        (
            json!({"name": "x", "every_ms": 5000, "job": {"kind": "UP", "text": "a"}}),
            "job.kind",
        ),
    ] {
        let (st, b) = s.ok("POST", "/api/v1/schedules", Some(bad.clone())).await;
        assert_error(st, &b, 422, "invalid_argument");
        let msg = b["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with(field), "{field}: {msg}");
    }
    let fired = s
        .poll("/api/v1/schedules/tick", |b| {
            b["last_job_status"].is_string()
        })
        .await;
    let job_id = fired["last_job_id"].as_str().unwrap();
    let (st, job) = s.ok("GET", &format!("/api/v1/jobs/{job_id}"), None).await;
    assert_eq!(st, 200, "{job}");
    assert!(
        job["idempotency_key"]
            .as_str()
            .unwrap()
            .starts_with("schedule:tick:"),
        "{job}"
    );
    let (st, b) = s.ok("GET", "/api/v1/schedules", None).await;
    assert_eq!(st, 200);
    assert_eq!(b["schedules"][0]["name"], "tick");
    let (st, b) = s.ok("POST", "/api/v1/schedules/tick/pause", None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["paused"], true);
    assert!(b["next_fire_at"].is_null(), "{b}");
    let (_, b) = s.ok("POST", "/api/v1/schedules/tick/resume", None).await;
    assert!(b["next_fire_at"].is_string(), "{b}");
    let (st, _) = s.ok("DELETE", "/api/v1/schedules/tick", None).await;
    assert_eq!(st, 204);
    let (st, b) = s.ok("GET", "/api/v1/schedules/tick", None).await;
    assert_error(st, &b, 404, "not_found");
}

/// A delayed job is scheduled and can be cancelled once (then 409).
#[tokio::test]
async fn cancel_delayed_job() {
    let s = start().await;
    let (st, b) = s
        .ok(
            "POST",
            "/api/v1/jobs",
            Some(json!({"text": "later", "delay_ms": 600000})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["job"]["status"], "scheduled");
    let id = b["job_id"].as_str().unwrap();
    let (st, job) = s
        .ok("POST", &format!("/api/v1/jobs/{id}/cancel"), None)
        .await;
    assert_eq!(st, 200, "{job}");
    assert_eq!(job["status"], "cancelled");
    let (st, b) = s
        .ok("POST", &format!("/api/v1/jobs/{id}/cancel"), None)
        .await;
    assert_error(st, &b, 409, "failed_precondition");
}

/// SSE: a job's stream sends its states up to `done` and ends; the global stream carries
/// the transitions of a job submitted after subscribing.
#[tokio::test]
async fn server_sent_events() {
    let s = start().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    // A filter with an unknown status is refused before streaming.
    let (st, b) = s
        .ok("GET", "/api/v1/events?status=done,sleeping", None)
        .await;
    assert_error(st, &b, 422, "invalid_argument");
    // Only transitions into `done`, subscribed before the job exists.
    let resp = client
        .get(s.url("/api/v1/events?status=done").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut done_only = resp.into_body().into_data_stream();

    // Subscribe to all events first.
    let resp = client
        .get(s.url("/api/v1/events").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut all = resp.into_body().into_data_stream();

    let (_, b) = s.ok("POST", "/jobs", Some(json!({"text": "sse"}))).await;
    let id = b["job_id"].as_str().unwrap().to_string();

    // The job's own stream ends by itself after `done`.
    let resp = client
        .get(s.url(&format!("/api/v1/jobs/{id}/events")).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(15), resp.into_body().collect())
        .await
        .expect("stream ends after done")
        .unwrap()
        .to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("event: job"), "{text}");
    assert!(text.contains("\"status\":\"done\""), "{text}");
    assert!(text.contains("\"result\":\"SSE\""), "{text}");

    // The global stream saw the job reach done.
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(chunk) = all.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.contains(&format!("\"job_id\":\"{id}\""))
                && seen.contains("\"status\":\"done\"")
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{seen}");
    assert!(seen.contains("event: transition"), "{seen}");

    // The filtered stream carries the `done` transition and nothing else.
    let mut filtered = String::new();
    tokio::time::timeout(Duration::from_secs(15), async {
        while !filtered.contains("\"status\":\"done\"") {
            let chunk = done_only.next().await.expect("stream open").unwrap();
            filtered.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("the done transition arrives");
    for other in ["queued", "processing"] {
        assert!(
            !filtered.contains(&format!("\"status\":\"{other}\"")),
            "{filtered}"
        );
    }
}

/// gRPC-web round trip over HTTP/1.1 (tonic-web's client layer on a plain hyper HTTP/1
/// client): a unary SubmitJob, a server-streaming WatchJob to DONE, and a gRPC error status
/// passed through from the core.
#[tokio::test]
async fn grpc_web_round_trip() {
    let s = start().await;
    let http1 = Client::builder(TokioExecutor::new()).build_http();
    let svc = tower::ServiceBuilder::new()
        .layer(tonic_web::GrpcWebClientLayer::new())
        .service(http1);
    let mut client =
        JobServiceClient::with_origin(svc, format!("http://{}", s.http).try_into().unwrap());

    let resp = client
        .submit_job(pb::SubmitJobRequest {
            text: "grpc web".into(),
            ..Default::default()
        })
        .await
        .expect("SubmitJob over gRPC-web")
        .into_inner();
    assert!(resp.created);

    let mut stream = client
        .watch_job(pb::WatchJobRequest {
            job_id: resp.job_id.clone(),
        })
        .await
        .expect("WatchJob over gRPC-web")
        .into_inner();
    let mut last = None;
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(15), stream.next())
        .await
        .expect("a message or the end")
    {
        last = msg.expect("stream item").job;
    }
    let last = last.expect("at least one state");
    assert_eq!(last.status, pb::JobStatus::Done as i32);
    assert_eq!(last.result.as_deref(), Some("GRPC WEB"));

    let err = client
        .get_job(pb::GetJobRequest {
            job_id: "01HZZZZZZZZZZZZZZZZZZZZZZZ".into(),
        })
        .await
        .expect_err("unknown job");
    assert_eq!(err.code(), tonic::Code::NotFound);
}

/// `/metrics` carries request counters by route template; with the core in the same process
/// (as in `pfc dev`) the registry holds the core's job counters and queue gauges too.
#[tokio::test]
async fn metrics_with_core() {
    let s = start().await;
    let (_, b) = s.ok("POST", "/jobs", Some(json!({"text": "m"}))).await;
    let id = b["job_id"].as_str().unwrap();
    s.poll(&format!("/jobs/{id}"), |b| b["status"] == "done")
        .await;
    let (st, text) = s.ok("GET", "/metrics", None).await;
    assert_eq!(st, 200);
    let text = text.as_str().unwrap();
    assert!(
        text.contains("route=\"/jobs/{job_id}\",status=\"200\""),
        "{text}"
    );
    // other tests of this binary share the registry: check the series, not exact counts
    assert!(
        text.contains(
            "pfc_jobs_finished_total{queue=\"default\",kind=\"uppercase\",status=\"done\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("pfc_grpc_server_requests_total{service=\"pfc.jobs.v1.JobService\",method=\"SubmitJob\",code=\"OK\"}"),
        "{text}"
    );
    assert!(
        text.contains("pfc_queue_depth{queue=\"default\"}"),
        "{text}"
    );
}

/// Shutdown drains promptly even with an SSE stream open: the stream ends and `run` returns
/// well before the drain timeout.
#[tokio::test]
async fn shutdown_ends_streams() {
    let mut s = start().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let resp = client
        .get(s.url("/api/v1/events").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = tokio::spawn(resp.into_body().collect());
    let started = tokio::time::Instant::now();
    s.stop.trigger();
    let gateway = s.gateway.take().unwrap();
    tokio::time::timeout(Duration::from_secs(3), gateway)
        .await
        .expect("gateway stops within 3 s")
        .unwrap()
        .expect("clean exit");
    tokio::time::timeout(Duration::from_secs(3), body)
        .await
        .expect("the SSE body ends")
        .unwrap()
        .ok();
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// gRPC-web text mode, framed by hand as a browser library would: a base64 request to
/// `ListKinds` over HTTP/1.1 gets base64 frames back — a message with the kinds, then the
/// trailers frame with `grpc-status: 0`. An unknown service path is a 404, not a proxy call.
#[tokio::test]
async fn grpc_web_text_hand_framed() {
    use base64::Engine;
    use prost::Message;
    let b64 = base64::engine::general_purpose::STANDARD;
    let s = start().await;
    // One uncompressed message frame: flag 0, big-endian length, the (empty) ListKindsRequest.
    let msg = pb::ListKindsRequest {}.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::post(s.url("/pfc.jobs.v1.JobService/ListKinds"))
        .header("content-type", "application/grpc-web-text")
        .header("accept", "application/grpc-web-text")
        .header("x-grpc-web", "1")
        .body(Full::new(Bytes::from(b64.encode(&frame))))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let headers = format!("{:?}", resp.headers());
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/grpc-web-text"));
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    // The body is one or more base64 chunks, each padded; decode them one by one.
    let mut bytes = Vec::new();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let end = rest.find('=').map(|i| {
            let mut j = i;
            while rest[j..].starts_with('=') {
                j += 1;
            }
            j
        });
        let (chunk, tail) = rest.split_at(end.unwrap_or(rest.len()));
        bytes.extend(b64.decode(chunk).unwrap());
        rest = tail;
    }
    let (mut kinds, mut trailers) = (None, String::new());
    let mut buf = bytes.as_slice();
    while buf.len() >= 5 {
        let flag = buf[0];
        let len = u32::from_be_bytes(buf[1..5].try_into().unwrap()) as usize;
        let payload = &buf[5..5 + len];
        if flag & 0x80 == 0 {
            kinds = Some(pb::ListKindsResponse::decode(payload).unwrap());
        } else {
            trailers = String::from_utf8_lossy(payload).to_lowercase();
        }
        buf = &buf[5 + len..];
    }
    let kinds = kinds.unwrap_or_else(|| {
        panic!("no message frame; body {text:?}, trailers {trailers:?}, headers {headers}")
    });
    assert!(kinds.kinds.iter().any(|k| k.name == "uppercase"));
    assert!(trailers.contains("grpc-status:0"), "{trailers}");

    let req = http::Request::post(s.url("/pfc.nope.v1.Nothing/Call"))
        .header("content-type", "application/grpc-web+proto")
        .body(Full::new(Bytes::from(frame)))
        .unwrap();
    assert_eq!(client.request(req).await.unwrap().status(), 404);
}

/// `POST /api/v1/jobs:batch`: one result per job in order, a job the gateway or the core
/// refuses keeps its place with the error `POST /api/v1/jobs` would answer, the others run;
/// an empty batch is a 422; the OpenAPI document describes the route.
#[tokio::test]
async fn batch_submit() {
    let s = start().await;
    let (status, body) = s
        .ok(
            "POST",
            "/api/v1/jobs:batch",
            Some(json!({"jobs": [
                {"text": "one"},
                {"text": "two", "run_at": "not a time"},
                {"text": "three", "kind": "Bad Kind"},
                {"payload": {"n": 4}, "kind": "e2e.batch"},
            ]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let r = body["results"].as_array().expect("results");
    assert_eq!(r.len(), 4, "{body}");
    assert_eq!(r[1]["error"]["code"], "invalid_argument", "{body}");
    assert!(r[1]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("run_at"));
    assert_eq!(r[2]["error"]["code"], "invalid_argument", "{body}");
    assert_eq!(r[3]["created"], true, "{body}");
    assert_eq!(r[3]["job"]["payload"], json!({"n": 4}), "{body}");
    let id = r[0]["job_id"].as_str().expect("job_id");
    let job = s
        .poll(&format!("/api/v1/jobs/{id}"), |b| b["status"] == "done")
        .await;
    assert_eq!(job["result"], "ONE");

    let (status, body) = s
        .ok("POST", "/api/v1/jobs:batch", Some(json!({"jobs": []})))
        .await;
    assert_error(status, &body, 422, "invalid_argument");
    let (status, body) = s
        .ok("POST", "/api/v1/jobs:batch", Some(json!({"jobs": [1]})))
        .await;
    assert_error(status, &body, 422, "invalid_argument");

    let (_, doc) = s.ok("GET", "/openapi.json", None).await;
    assert!(
        doc["paths"]["/api/v1/jobs:batch"]["post"].is_object(),
        "documented"
    );
}

/// Named queues over REST: submit to a queue (the id names it), list by queue, the queues
/// with their counts, pause and resume (404 for an unknown queue, 422 for a malformed name),
/// a priority out of range is 422.
#[tokio::test]
async fn queues_over_rest() {
    let s = start().await;
    let (st, b) = s
        .ok(
            "POST",
            "/api/v1/jobs",
            Some(json!({"text": "abc", "kind": "reverse", "queue": "mail", "priority": 3})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let id = b["job_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("mail."), "{id}");
    let (_, job) = s.ok("GET", &format!("/api/v1/jobs/{id}"), None).await;
    assert_eq!(
        (job["queue"].as_str(), job["priority"].as_i64()),
        (Some("mail"), Some(3))
    );
    let (st, b) = s
        .ok(
            "POST",
            "/api/v1/jobs",
            Some(json!({"text": "abc", "priority": 11})),
        )
        .await;
    assert_error(st, &b, 422, "invalid_argument");
    let (st, page) = s.ok("GET", "/api/v1/jobs?queue=mail", None).await;
    assert_eq!(st, 200);
    assert!(page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["queue"] == "mail"));
    let (st, qs) = s.ok("GET", "/api/v1/queues", None).await;
    assert_eq!(st, 200);
    let names: Vec<&str> = qs["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "mail"]);
    let (st, q) = s.ok("POST", "/api/v1/queues/mail/pause", None).await;
    assert_eq!((st, q["paused"].as_bool()), (200, Some(true)), "{q}");
    let (st, q) = s.ok("POST", "/api/v1/queues/mail/resume", None).await;
    assert_eq!((st, q["paused"].as_bool()), (200, Some(false)), "{q}");
    let (st, b) = s.ok("POST", "/api/v1/queues/nope/pause", None).await;
    assert_error(st, &b, 404, "not_found");
    let (st, b) = s.ok("POST", "/api/v1/queues/Bad%20Name/pause", None).await;
    assert_error(st, &b, 422, "invalid_argument");
}

/// Queue limits over REST: set and shown by the queues list; out of range or a rate without
/// a period is 422; an unknown queue 404.
#[tokio::test]
async fn queue_limits_over_rest() {
    let s = start().await;
    let (st, _) = s
        .ok(
            "POST",
            "/api/v1/jobs",
            Some(json!({"text": "a", "queue": "lim"})),
        )
        .await;
    assert_eq!(st, 201);
    let body = json!({"concurrency_limit": 2, "rate_limit": 5, "rate_period_ms": 1000});
    let (st, q) = s.ok("POST", "/api/v1/queues/lim/limits", Some(body)).await;
    assert_eq!(st, 200, "{q}");
    assert_eq!(
        (
            q["concurrency_limit"].as_u64(),
            q["rate_limit"].as_u64(),
            q["rate_period_ms"].as_u64()
        ),
        (Some(2), Some(5), Some(1000))
    );
    let (_, qs) = s.ok("GET", "/api/v1/queues", None).await;
    let lim = qs["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "lim")
        .unwrap()
        .clone();
    assert_eq!(lim["concurrency_limit"], 2);
    for bad in [
        json!({"concurrency_limit": 100001}),
        json!({"rate_limit": 5}),
        json!({"rate_limit": 5, "rate_period_ms": 3600001}),
    ] {
        let (st, b) = s
            .ok("POST", "/api/v1/queues/lim/limits", Some(bad.clone()))
            .await;
        assert_error(st, &b, 422, "invalid_argument");
    }
    let (st, b) = s
        .ok("POST", "/api/v1/queues/nope/limits", Some(json!({})))
        .await;
    assert_error(st, &b, 404, "not_found");
}
