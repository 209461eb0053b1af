//! The gateway's Server-Sent Events under load (issue 18) and across a Redis restart: a real
//! jobs core (Redis via a private `redis-server`, or the in-memory store) with real built-in
//! workers over the worker protocol, and
//! the gateway's `run` on a free port, read over real HTTP/1.1 like a browser's `EventSource`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pfc_processors::Registry;
use pfc_queue::{now_ms, StoreArgs};
use pfc_testkit::RedisServer;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// The tests of this file run one at a time: each load test alone keeps the machine busy.
static LOAD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The watch hub's safety re-read (5 s of event silence) is pushed past the tests' length:
/// every end must come from the events themselves, so a missed event shows as a stream that
/// never ends (no timing bound, which a loaded CI machine would break). How fast ends arrive
/// is printed here and measured in release builds in docs/benchmarks.md.
const NO_SAFETY_NET: Duration = Duration::from_secs(3600);

/// Longest a stream may stay open after its job was submitted before it counts as never ending.
const NEVER_ENDS: Duration = Duration::from_secs(60);

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// Core + workers + gateway; stops when dropped.
struct Stack {
    http: SocketAddr,
    stop: pfc_runtime::Shutdown,
    redis: Option<RedisServer>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

async fn start(redis: bool, retention: Duration) -> Stack {
    let server = redis.then(RedisServer::start);
    let args = store_args(server.as_ref().map(|r| r.url()), retention);
    let store = args.open(true).unwrap();
    let stop = pfc_runtime::Shutdown::new();
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    let protocol =
        pfc_jobs::Workers::new(store.clone(), args.lease, Default::default(), stop.clone());
    let routes = tonic::service::Routes::new(pfc_jobs::service(
        store.clone(),
        Registry::builtin(),
        pfc_jobs::Limits {
            watch_silence: NO_SAFETY_NET,
            ..Default::default()
        },
    ))
    .add_service(protocol.into_server());
    let routes = pfc_runtime::grpc::with_health_and_reflection(routes, health).unwrap();
    let names = vec![pfc_jobs::SERVICE_NAME.to_owned()];
    tokio::spawn(pfc_jobs::background(
        store.clone(),
        reporter.clone(),
        names.clone(),
        stop.wait(),
    ));
    tokio::spawn(pfc_runtime::grpc::serve(
        grpc,
        routes,
        reporter,
        names,
        stop.wait(),
    ));
    // two built-in workers over the worker protocol, as `pfc worker` processes are
    let worker_args = pfc_worker::WorkerArgs {
        queues: Vec::new(),
        concurrency: 16,
        shutdown_timeout: Duration::from_secs(1),
        job_timeout: Duration::from_secs(30),
    };
    for i in 0..2 {
        let url = format!("http://{grpc_addr}");
        let name = format!("w{i}");
        let w = pfc_worker::builtin(&url, Registry::builtin(), &worker_args, Some(&name));
        tokio::spawn(w.run_until(stop.wait()));
    }
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr = http.local_addr().unwrap();
    let config = pfc_gateway::Config::from_env(format!("http://{grpc_addr}")).unwrap();
    tokio::spawn(pfc_gateway::run(http, config, stop.wait()));
    let s = Stack {
        http: http_addr,
        stop,
        redis: server,
    };
    let c = client();
    pfc_testkit::wait_until("gateway ready", Duration::from_secs(15), || {
        let c = c.clone();
        async move { (get(&c, s.http, "/readyz").await.0 == 200).then_some(()) }
    })
    .await;
    s
}

/// The store settings `pfc jobs` would parse, for `redis_url` (memory when `None`) and a
/// `retention`.
fn store_args(redis_url: Option<String>, retention: Duration) -> StoreArgs {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct A {
        #[command(flatten)]
        s: StoreArgs,
    }
    let mut s = A::parse_from(["t"]).s;
    s.redis_url = redis_url;
    s.job_ttl = retention;
    s.retry_backoff = Duration::from_millis(100);
    s
}

fn client() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn get(c: &Http, addr: SocketAddr, path: &str) -> (u16, Bytes) {
    let req = http::Request::get(format!("http://{addr}{path}"))
        .body(Full::default())
        .unwrap();
    match c.request(req).await {
        Ok(r) => {
            let st = r.status().as_u16();
            (
                st,
                r.into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default(),
            )
        }
        Err(_) => (0, Bytes::new()),
    }
}

async fn submit(c: &Http, addr: SocketAddr, text: &str) -> Result<String, String> {
    let req = http::Request::post(format!("http://{addr}/api/v1/jobs"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json!({ "text": text }).to_string())))
        .unwrap();
    let r = c.request(req).await.map_err(|e| format!("submit: {e}"))?;
    let body = r
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let v: Value = serde_json::from_slice(&body).map_err(|e| format!("submit: {e}"))?;
    v["job_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("submit answered {v}"))
}

/// One Server-Sent Event.
#[derive(Debug)]
struct Sse {
    event: String,
    data: String,
    /// When it was read (Unix ms).
    at: i64,
}

/// Reads a `text/event-stream` response, calling `each` on every event until `each` returns
/// false or the stream ends. Comment lines (keep-alives) are skipped.
async fn read_events(
    c: &Http,
    addr: SocketAddr,
    path: &str,
    mut each: impl FnMut(Sse) -> bool,
) -> Result<(), String> {
    let req = http::Request::get(format!("http://{addr}{path}"))
        .header("accept", "text/event-stream")
        .body(Full::default())
        .unwrap();
    let resp = c.request(req).await.map_err(|e| format!("{path}: {e}"))?;
    if resp.status() != 200 {
        return Err(format!("{path}: HTTP {}", resp.status()));
    }
    let mut body = resp.into_body();
    let mut buf = String::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("{path}: {e}"))?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        buf.push_str(std::str::from_utf8(data).map_err(|e| e.to_string())?);
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut event, mut data) = (String::from("message"), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if data.is_empty() && event == "message" {
                continue; // a keep-alive comment
            }
            if !each(Sse {
                event,
                data,
                at: now_ms(),
            }) {
                return Ok(());
            }
        }
    }
    Ok(())
}

fn rfc3339_ms(s: &str) -> i64 {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("bad time {s:?}: {e}"));
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Submits `rate` jobs/s for `secs` s over REST; after each submit answers, follows that job's
/// `/api/v1/jobs/{id}/events` to its end. Every stream must end with a `job` event whose job
/// is done, and no `error` event, with the hub's safety re-read out of play.
async fn load(s: &Stack, name: &str, rate: u32, secs: u32) {
    let c = client();
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for n in 0..rate * secs {
        tokio::time::sleep_until(start + Duration::from_secs(n as u64) / rate).await;
        let (c, addr) = (c.clone(), s.http);
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let id = submit(&c, addr, &format!("job {n}")).await?;
            let mut last: Option<Sse> = None;
            let mut error = None;
            let path = format!("/api/v1/jobs/{id}/events");
            let read = read_events(&c, addr, &path, |ev| {
                if ev.event != "job" {
                    error = Some(format!("{id}: {} event: {}", ev.event, ev.data));
                }
                last = Some(ev);
                true
            });
            tokio::time::timeout(NEVER_ENDS, read)
                .await
                .map_err(|_| format!("{id}: stream never ended"))??;
            if let Some(e) = error {
                return Err(e);
            }
            let last = last.ok_or_else(|| format!("{id}: no event"))?;
            let job: Value = serde_json::from_str(&last.data).map_err(|e| e.to_string())?;
            if job["status"] != "done" {
                return Err(format!("{id}: stream ended with {job}"));
            }
            let late = last.at - rfc3339_ms(job["finished_at"].as_str().unwrap_or_default());
            Ok::<_, String>((late, t0.elapsed()))
        }));
    }
    let mut errors = Vec::new();
    let mut late = Vec::new();
    let mut total = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok((l, d)) => {
                late.push(l);
                total.push(d);
            }
            Err(e) => errors.push(e),
        }
    }
    total.sort();
    let max_late = late.iter().copied().max().unwrap_or(0);
    let p99 = total
        .get(total.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default();
    println!(
        "{name}: {} SSE streams, {} errors; job end -> last event max {max_late} ms; submit -> end p99 {:.1} ms",
        rate * secs,
        errors.len(),
        p99.as_secs_f64() * 1000.0
    );
    assert!(
        errors.is_empty(),
        "{name}: {:?}",
        &errors[..errors.len().min(5)]
    );
}

/// On Redis with a 5 s retention, 150 jobs/s each followed over `/api/v1/jobs/{id}/events`
/// right after submit: every stream ends with the job done, from events alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_every_sse_stream_ends_done() {
    let _one_at_a_time = LOAD.lock().await;
    let s = start(true, Duration::from_secs(5)).await;
    load(&s, "sse redis, 5 s retention", 150, 4).await;
}

/// The same on the in-memory store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_every_sse_stream_ends_done() {
    let _one_at_a_time = LOAD.lock().await;
    let s = start(false, Duration::from_secs(5)).await;
    load(&s, "sse memory, 5 s retention", 150, 4).await;
}

/// When the core's event connection to Redis is re-established (Redis restarted), an open
/// `/api/v1/events` stream gets a `resync` event (data `{"reason":"events_lost"}`) and then
/// keeps delivering transitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_says_resync_after_redis_restart() {
    let _one_at_a_time = LOAD.lock().await;
    let mut s = start(true, Duration::from_secs(3600)).await;
    let (c, addr) = (client(), s.http);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _ = read_events(&c, addr, "/api/v1/events", |ev| tx.send(ev).is_ok()).await;
    });
    // the stream is live once it carries a transition
    let c = client();
    submit(&c, addr, "before").await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.event, "transition", "{first:?}");

    s.redis.as_mut().unwrap().restart();
    let resync = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ev = rx.recv().await.expect("stream open");
            if ev.event == "resync" {
                return ev;
            }
        }
    })
    .await
    .expect("a resync event within 10 s of the restart");
    let v: Value = serde_json::from_str(&resync.data).unwrap();
    assert_eq!(v, json!({ "reason": "events_lost" }));
    // and the OpenAPI document describes it
    let (_, doc) = get(&c, addr, "/openapi.json").await;
    let doc: Value = serde_json::from_slice(&doc).unwrap();
    assert!(
        doc["components"]["schemas"]["Resync"].is_object(),
        "Resync schema"
    );
    let ok = &doc["paths"]["/api/v1/events"]["get"]["responses"]["200"];
    assert!(
        ok["description"].as_str().unwrap().contains("`resync`"),
        "{ok}"
    );

    let id = pfc_testkit::wait_until("submit after restart", Duration::from_secs(10), || {
        let c = c.clone();
        async move { submit(&c, addr, "after").await.ok() }
    })
    .await;
    let ev = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let ev = rx.recv().await.expect("stream open");
            if ev.event == "transition" && ev.data.contains(&id) {
                return ev;
            }
        }
    })
    .await
    .expect("transitions flow again after the resync");
    assert!(ev.data.contains("\"job_id\""));
}
