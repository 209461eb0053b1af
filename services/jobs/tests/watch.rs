//! `WatchJob` under load (issue 18): a steady stream of jobs (400/s by default, thousands with
//! `PFC_WATCH_RATE` on a release build), one `WatchJob` stream opened right after each
//! `SubmitJob` answers, against a real jobs server on loopback with real in-process workers — on a real `redis-server` (workers on their own connections, as separate
//! processes would be) and on the in-memory store. Every stream must end with its job's terminal
//! state, without an error, from the events alone (the hub's safety re-read is switched off).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pfc_processors::Registry;
use pfc_proto::jobs::v1 as pb;
use pfc_proto::jobs::v1::job_service_client::JobServiceClient;
use pfc_queue::{now_ms, StoreArgs};
use pfc_testkit::RedisServer;
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// A jobs server and its workers, stopped on drop.
struct Stack {
    addr: SocketAddr,
    stop: pfc_runtime::Shutdown,
    _redis: Option<RedisServer>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.trigger();
    }
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

/// Starts a jobs server as `pfc jobs` serves it (JobService and the worker protocol) and
/// `workers` built-in workers of 32 slots, each on its own connection over the worker
/// protocol, as `pfc worker` processes are.
async fn stack(redis: bool, retention: Duration, workers: usize) -> Stack {
    let server = redis.then(RedisServer::start);
    let args = store_args(server.as_ref().map(|r| r.url()), retention);
    let store = args.open(true).unwrap();
    let stop = pfc_runtime::Shutdown::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
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
        listener,
        routes,
        reporter,
        names,
        stop.wait(),
    ));
    let worker_args = pfc_worker::WorkerArgs {
        queues: Vec::new(),
        concurrency: 32,
        shutdown_timeout: Duration::from_secs(1),
        job_timeout: Duration::from_secs(30),
    };
    for i in 0..workers {
        let url = format!("http://{addr}");
        let name = format!("w{i}");
        let w = pfc_worker::builtin(&url, Registry::builtin(), &worker_args, Some(&name));
        tokio::spawn(w.run_until(stop.wait()));
    }
    pfc_testkit::wait_until("jobs server SERVING", Duration::from_secs(10), || async {
        serving(addr).await.then_some(())
    })
    .await;
    Stack {
        addr,
        stop,
        _redis: server,
    }
}

async fn serving(addr: SocketAddr) -> bool {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    let Ok(ch) = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
    else {
        return false;
    };
    match HealthClient::new(ch)
        .check(HealthCheckRequest::default())
        .await
    {
        Ok(r) => r.into_inner().status() == ServingStatus::Serving,
        Err(_) => false,
    }
}

/// The load tests of this file run one at a time: each alone already keeps the machine busy.
static LOAD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The watch hub's safety re-read (5 s of event silence) is pushed past the tests' length:
/// every end must come from the events themselves, so a missed event shows as a stream that
/// stays silent (no timing bound on delivery, which a loaded CI machine would break). How fast
/// ends arrive is printed here and measured in release builds in docs/benchmarks.md.
const NO_SAFETY_NET: Duration = Duration::from_secs(3600);

/// A stream silent this long counts as one that will never end.
const NEVER_ENDS: Duration = Duration::from_secs(30);

/// Jobs per second and seconds of load per test. The tests run a debug build of the whole
/// stack — server, workers and every client — in one process on this 2-core machine, so the
/// default rate is what it sustains next to other work with room to spare; `PFC_WATCH_RATE`
/// raises it (a release build, `cargo test --release`, sustains several thousand per second;
/// `docs/benchmarks.md` has the same shape on real processes).
const RATE: u32 = 400;
const SECS: u32 = 4;

/// How one submit + watch went.
struct Outcome {
    /// The stream's last message, or how it failed.
    end: Result<pb::Job, String>,
    /// From the submit call to the stream's last message.
    submit_to_end: Duration,
    /// From the job's `finished_at` to the moment its terminal message arrived (ms).
    late_ms: i64,
}

/// Submits `rate` jobs/s for `secs` seconds over a few HTTP/2 connections; after each submit
/// answers, watches that job until its stream ends.
async fn load(addr: SocketAddr, rate: u32, secs: u32) -> Vec<Outcome> {
    // PFC_WATCH_RATE overrides the rate (e.g. to probe where a machine saturates)
    let rate = std::env::var("PFC_WATCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(rate);
    let mut clients = Vec::new();
    for _ in 0..4 {
        let ch = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .tcp_nodelay(true)
            .connect()
            .await
            .unwrap();
        clients.push(JobServiceClient::new(ch));
    }
    let total = rate * secs;
    let cpu0 = cpu_secs();
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        tokio::time::sleep_until(start + Duration::from_secs(n as u64) / rate).await;
        let mut c = clients[n as usize % clients.len()].clone();
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let id = c
                .submit_job(pb::SubmitJobRequest {
                    text: format!("job {n}"),
                    ..Default::default()
                })
                .await
                .map_err(|s| format!("submit: {s}"))?
                .into_inner()
                .job_id;
            let mut stream = c
                .watch_job(pb::WatchJobRequest { job_id: id.clone() })
                .await
                .map_err(|s| format!("{id}: watch: {s}"))?
                .into_inner();
            let mut last = None;
            let mut late_ms = 0;
            loop {
                match tokio::time::timeout(NEVER_ENDS, stream.message()).await {
                    Err(_) => return Err(format!("{id}: stream silent for {NEVER_ENDS:?}")),
                    Ok(Err(s)) => return Err(format!("{id}: stream error: {s}")),
                    Ok(Ok(None)) => break,
                    Ok(Ok(Some(m))) => {
                        let job = m.job.ok_or_else(|| format!("{id}: message without job"))?;
                        if let Some(f) = &job.finished_at {
                            late_ms = now_ms() - pfc_proto::timestamp_to_ms(f);
                        }
                        last = Some(job);
                    }
                }
            }
            Ok::<_, String>((
                last.ok_or_else(|| format!("{id}: empty stream"))?,
                t0.elapsed(),
                late_ms,
            ))
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(match t.await.unwrap() {
            Ok((job, d, late_ms)) => Outcome {
                end: Ok(job),
                submit_to_end: d,
                late_ms,
            },
            Err(e) => Outcome {
                end: Err(e),
                submit_to_end: Duration::ZERO,
                late_ms: 0,
            },
        });
    }
    println!(
        "cpu of this process (server, workers, clients): {:.0} µs per job",
        (cpu_secs() - cpu0) * 1e6 / total as f64
    );
    out
}

/// User + system CPU seconds of this process so far.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    f.get(11)
        .zip(f.get(12))
        .map_or(0.0, |(u, s)| (u + s) / 100.0)
}

/// Checks every outcome ended DONE (from events alone: the safety re-read is off), and prints
/// the figures (ends later than 1 s are listed).
fn check(name: &str, out: &[Outcome]) {
    let errors: Vec<&str> = out
        .iter()
        .filter_map(|o| o.end.as_ref().err())
        .map(|e| e.as_str())
        .collect();
    let not_done: Vec<String> = out
        .iter()
        .filter_map(|o| o.end.as_ref().ok())
        .filter(|j| j.status() != pb::JobStatus::Done)
        .map(|j| format!("{} ended {:?}", j.id, j.status()))
        .collect();
    let max_late = out.iter().map(|o| o.late_ms).max().unwrap_or(0);
    let late: Vec<(usize, i64)> = out
        .iter()
        .enumerate()
        .filter(|(_, o)| o.late_ms >= 1000)
        .map(|(i, o)| (i, o.late_ms))
        .collect();
    if !late.is_empty() || !errors.is_empty() {
        let failed: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, o)| o.end.is_err())
            .map(|(i, _)| i)
            .collect();
        println!(
            "{name}: late (job index, ms): {:?}; failed job indexes: {:?}",
            &late[..late.len().min(20)],
            &failed[..failed.len().min(20)]
        );
    }
    let mut lat: Vec<Duration> = out.iter().map(|o| o.submit_to_end).collect();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    println!(
        "{name}: {} streams, {} errors, {} not done; job end -> terminal message max {max_late} ms; \
         submit -> end p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
        out.len(),
        errors.len(),
        not_done.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    assert!(
        errors.is_empty(),
        "{name}: {} streams failed, e.g. {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(
        not_done.is_empty(),
        "{name}: {:?}",
        &not_done[..not_done.len().min(5)]
    );
}

/// Every stream's last message is exactly the job as `GetJob` returns it afterwards (the hub
/// builds most messages from events, not reads).
async fn same_as_stored(addr: SocketAddr, out: &[Outcome]) {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = JobServiceClient::new(ch);
    for o in out.iter().step_by(7) {
        let streamed = o.end.as_ref().unwrap();
        let stored = c
            .get_job(pb::GetJobRequest {
                job_id: streamed.id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .job
            .unwrap();
        assert_eq!(streamed, &stored);
    }
}

/// On Redis, with one WatchJob per job opened right after submit (the first ones while the
/// server's event subscription is still being set up), every stream ends with DONE, and that
/// last message is the job as stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_every_watch_sees_its_end() {
    let _one_at_a_time = LOAD.lock().await;
    let s = stack(true, Duration::from_secs(3600), 2).await;
    let out = load(s.addr, RATE, SECS).await;
    check("redis", &out);
    same_as_stored(s.addr, &out).await;
}

/// A job that fails and is retried streams every state in version order and ends FAILED
/// exactly as stored, on both stores (retries are the one transition the hub re-reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stream_in_order_and_end_failed() {
    for redis in [true, false] {
        let s = stack(redis, Duration::from_secs(3600), 1).await;
        let ch = Channel::from_shared(format!("http://{}", s.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut c = JobServiceClient::new(ch);
        let id = c
            .submit_job(pb::SubmitJobRequest {
                text: "x".into(),
                kind: "fail".into(),
                max_attempts: 3,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .job_id;
        let mut stream = c
            .watch_job(pb::WatchJobRequest { job_id: id.clone() })
            .await
            .unwrap()
            .into_inner();
        let mut seen = Vec::new();
        while let Some(m) = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("stream stalled")
            .unwrap()
        {
            seen.push(m.job.unwrap());
        }
        assert!(seen.windows(2).all(|w| w[0].version < w[1].version));
        let last = seen.last().unwrap();
        assert_eq!((last.status(), last.attempts), (pb::JobStatus::Failed, 3));
        let retries = seen
            .iter()
            .filter(|j| j.status() == pb::JobStatus::Scheduled);
        assert!(retries
            .clone()
            .all(|j| j.run_at.is_some() && j.error.is_some()));
        let stored = c
            .get_job(pb::GetJobRequest { job_id: id })
            .await
            .unwrap()
            .into_inner()
            .job
            .unwrap();
        assert_eq!(last, &stored, "redis: {redis}");
    }
}

/// The same on Redis with a 3 s retention: a finished job expiring soon after never turns a
/// stream into NOT_FOUND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_short_retention_every_watch_sees_its_end() {
    let _one_at_a_time = LOAD.lock().await;
    let s = stack(true, Duration::from_secs(3), 2).await;
    let out = load(s.addr, RATE, SECS).await;
    check("redis, 3 s retention", &out);
}

/// The same on the in-memory store (`pfc dev`), with a 3 s retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_every_watch_sees_its_end() {
    let _one_at_a_time = LOAD.lock().await;
    let s = stack(false, Duration::from_secs(3), 2).await;
    let out = load(s.addr, RATE, SECS).await;
    check("memory, 3 s retention", &out);
    for o in &out {
        let j = o.end.as_ref().unwrap();
        assert_eq!(j.result.as_deref(), Some(j.text.to_uppercase().as_str()));
    }
}
