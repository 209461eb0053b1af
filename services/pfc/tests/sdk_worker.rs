//! Users' code through the worker protocol: the Rust SDK's example worker
//! (`services/sdk/examples/worker.rs`) as a real process, handling its own kinds with JSON
//! payloads against `pfc jobs` + Redis and against `pfc dev`; `kill -9` of one of two such
//! workers in the middle of 500 jobs; a `pfc jobs` killed under a running job, whose worker
//! resumes it after the restart instead of running it again.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use pfc_proto::jobs::v1 as pb;
use pfc_proto::jobs::v1::job_service_client::JobServiceClient;
use pfc_testkit::RedisServer;
use serde_json::{json, Value};
use tonic::transport::Channel;

/// The example worker binary, in the target directory this test runs from: the one `cargo test
/// --workspace` built, when it is newer than the SDK's and the protos' sources; else built
/// here, once per test run (`cargo test -p pfc` does not build other packages' examples).
fn example() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        // <target>/<profile>/deps/<this test>
        let profile = exe.parent().and_then(|d| d.parent()).expect("profile dir");
        let target = profile.parent().expect("target dir");
        let bin = profile.join("examples").join("worker");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let sources = newest(&[root.join("services/sdk"), root.join("proto")]);
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        if built.is_some_and(|b| b >= sources) {
            return bin;
        }
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "-p", "pfc-sdk", "--example", "worker"])
            .arg("--target-dir")
            .arg(target);
        if profile.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .expect("run cargo build for the example worker");
        assert!(status.success(), "building the SDK example worker failed");
        bin
    })
    .clone()
}

/// The newest modification time of the files under `dirs`.
fn newest(dirs: &[PathBuf]) -> std::time::SystemTime {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    let mut todo: Vec<PathBuf> = dirs.to_vec();
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                newest = newest.max(t);
            }
        }
    }
    newest
}

/// The SDK example worker as a process; killed on drop.
struct SdkWorker(Child);

impl SdkWorker {
    fn spawn(jobs_url: &str, concurrency: u32, name: &str) -> Self {
        let child = Command::new(example())
            .env("PFC_JOBS_URL", jobs_url)
            .env("PFC_WORKER_CONCURRENCY", concurrency.to_string())
            .env("PFC_WORKER_NAME", name)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the SDK example worker");
        Self(child)
    }

    fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for SdkWorker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A `pfc` process (`dev` or `jobs`) with its gRPC address; killed on drop.
struct Pfc {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Pfc {
    fn spawn(args: &[&str], grpc_port: u16) -> Self {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], grpc_port));
        let child = Command::new(env!("CARGO_BIN_EXE_pfc"))
            .args(args)
            .args(["--grpc-addr", &addr.to_string()])
            .env("PFC_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn pfc");
        Self { child, addr }
    }

    async fn ready(&self) {
        let addr = self.addr;
        pfc_testkit::wait_until("pfc SERVING", Duration::from_secs(20), || async move {
            (health(addr).await == Some(true)).then_some(())
        })
        .await;
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Pfc {
    fn drop(&mut self) {
        self.kill9();
    }
}

async fn submit_json(c: &mut JobServiceClient<Channel>, kind: &str, payload: Value) -> String {
    c.submit_job(pb::SubmitJobRequest {
        kind: kind.into(),
        payload: serde_json::to_vec(&payload).unwrap(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .job_id
}

fn result_json(job: &pb::Job) -> Value {
    assert_eq!(job.result_content_type, "application/json", "{job:?}");
    serde_json::from_slice(&job.result_payload).unwrap()
}

/// Watches `id` to its end: the final job and every progress value seen on the way.
async fn watch(c: &mut JobServiceClient<Channel>, id: &str) -> (pb::Job, Vec<u32>) {
    let mut stream = c
        .watch_job(pb::WatchJobRequest { job_id: id.into() })
        .await
        .unwrap()
        .into_inner();
    let mut progress = Vec::new();
    let mut last = None;
    while let Some(m) = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("watch stalled")
        .unwrap()
    {
        let job = m.job.unwrap();
        if let Some(p) = job.progress {
            if progress.last() != Some(&p) {
                progress.push(p);
            }
        }
        last = Some(job);
    }
    (last.expect("at least the current state"), progress)
}

/// The example worker handles its own kind with a JSON payload against `pfc jobs` + Redis:
/// JSON result over gRPC, progress on WatchJob, a permanent failure at once, a retryable one
/// retried until attempts run out with the handler's message, or until it succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_kind_against_pfc_jobs() {
    let redis = RedisServer::start();
    let server = JobsServer::start(store_args(Some(redis.url()))).await;
    let _worker = SdkWorker::spawn(&server.url(), 4, "example");
    let mut c = server.client().await;

    let id = submit_json(
        &mut c,
        "thumbnail",
        json!({"width": 640, "height": 480, "delay_ms": 800}),
    )
    .await;
    let (job, progress) = watch(&mut c, &id).await;
    assert_eq!(job.status(), pb::JobStatus::Done, "{job:?}");
    assert_eq!(
        result_json(&job),
        json!({"width": 320, "height": 240, "pixels": 76800})
    );
    assert!(job.worker_id.starts_with("example-"), "{}", job.worker_id);
    assert!(progress.contains(&50), "progress on WatchJob: {progress:?}");

    let bad = submit_json(&mut c, "thumbnail", json!({"width": 0, "height": 1})).await;
    let flaky = submit_json(&mut c, "flaky", json!({})).await;
    let second = submit_json(&mut c, "flaky", json!({"succeed_on": 2})).await;
    let job = wait_terminal(&mut c, &bad, Duration::from_secs(20)).await;
    assert_eq!((job.status(), job.attempts), (pb::JobStatus::Failed, 1));
    assert_eq!(job.error(), "width and height must be positive");
    let job = wait_terminal(&mut c, &flaky, Duration::from_secs(20)).await;
    assert_eq!((job.status(), job.attempts), (pb::JobStatus::Failed, 3));
    assert_eq!(job.error(), "flaky: attempt 3 of 3 failed");
    let job = wait_terminal(&mut c, &second, Duration::from_secs(20)).await;
    assert_eq!((job.status(), job.attempts), (pb::JobStatus::Done, 2));
    assert_eq!(result_json(&job), json!({"attempt": 2}));
}

/// The same worker against `pfc dev` (in-memory store, everything in one process): the job
/// runs, the result is JSON, and ListKinds lists the worker's kinds with its concurrency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_kind_against_pfc_dev() {
    let http = pfc_testkit::free_port();
    let dev = Pfc::spawn(
        &["dev", "--http-addr", &format!("127.0.0.1:{http}")],
        pfc_testkit::free_port(),
    );
    dev.ready().await;
    let _worker = SdkWorker::spawn(&dev.url(), 3, "dev-example");
    let mut c = client(dev.addr).await;
    let id = submit_json(&mut c, "thumbnail", json!({"width": 10, "height": 20})).await;
    let job = wait_terminal(&mut c, &id, Duration::from_secs(30)).await;
    assert_eq!(job.status(), pb::JobStatus::Done, "{job:?}");
    assert_eq!(
        result_json(&job),
        json!({"width": 5, "height": 10, "pixels": 50})
    );
    let kinds = c
        .list_kinds(pb::ListKindsRequest {})
        .await
        .unwrap()
        .into_inner()
        .kinds;
    let thumb = kinds
        .iter()
        .find(|k| k.name == "thumbnail")
        .expect("listed");
    assert_eq!(
        (thumb.workers, thumb.concurrency, thumb.builtin),
        (1, 3, false)
    );
    // the built-in kinds run through the same protocol, on pfc dev's own worker
    let upper = kinds.iter().find(|k| k.name == "uppercase").unwrap();
    assert!(upper.builtin && upper.workers >= 1, "{upper:?}");
    let t = submit(&mut c, "uppercase", "bonjour").await;
    let job = wait_terminal(&mut c, &t, Duration::from_secs(30)).await;
    assert_eq!(job.result.as_deref(), Some("BONJOUR"));
}

/// `kill -9` of one of two SDK worker processes in the middle of 500 jobs: nothing is lost,
/// only the dead worker's jobs run twice, and they are redelivered at once — the jobs core
/// sees the stream end — not after the 3 s lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_an_sdk_worker_mid_batch() {
    const JOBS: usize = 500;
    let redis = RedisServer::start();
    let server = JobsServer::start(store_args(Some(redis.url()))).await;
    let mut c = server.client().await;
    let mut ids = Vec::with_capacity(JOBS);
    for i in 0..JOBS {
        let delay = if i % 2 == 0 { 30 } else { 25 };
        let p = json!({"width": 2 + i, "height": 2, "delay_ms": delay});
        ids.push(submit_json(&mut c, "thumbnail", p).await);
    }
    let mut victim = SdkWorker::spawn(&server.url(), 16, "victim");
    let _survivor = SdkWorker::spawn(&server.url(), 16, "survivor");
    let addr = server.addr;
    pfc_testkit::wait_until(
        "a fifth of the jobs done",
        Duration::from_secs(30),
        || async move {
            let s = client(addr)
                .await
                .get_stats(pb::GetStatsRequest {})
                .await
                .ok()?
                .into_inner();
            (s.done_total >= (JOBS / 5) as u64).then_some(())
        },
    )
    .await;
    let in_flight = c
        .get_stats(pb::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner()
        .processing;
    victim.kill9();
    let killed_ms = pfc_queue::now_ms();

    let mut redelivered = 0u64;
    let mut last_redelivered_done = 0i64;
    for id in &ids {
        let job = wait_terminal(&mut c, id, Duration::from_secs(60)).await;
        assert_eq!(
            job.status(),
            pb::JobStatus::Done,
            "job {id}: {:?}",
            job.error
        );
        assert!(result_json(&job)["pixels"].is_number());
        if job.attempts > 1 {
            redelivered += 1;
            assert!(job.worker_id.starts_with("survivor-"), "{job:?}");
            let done = pfc_proto::timestamp_to_ms(job.finished_at.as_ref().unwrap());
            last_redelivered_done = last_redelivered_done.max(done);
        }
    }
    let recovery = Duration::from_millis((last_redelivered_done - killed_ms).max(0) as u64);
    eprintln!(
        "kill -9 of one of two SDK workers ({in_flight} jobs in flight): all {JOBS} done, \
         {redelivered} redelivered, the last of them done {:.2} s after the kill",
        recovery.as_secs_f64()
    );
    assert!(
        redelivered > 0,
        "the kill should have interrupted some jobs"
    );
    assert!(
        redelivered <= in_flight + 16,
        "only the dead worker's jobs run twice: {redelivered} redelivered, {in_flight} in flight"
    );
    assert!(
        recovery < Duration::from_secs(2),
        "redelivery took {recovery:?}: the stream's end should requeue at once, not the lease"
    );
    let stats = c
        .get_stats(pb::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.done_total, JOBS as u64);
    assert_eq!((stats.queued, stats.processing), (0, 0));
}

/// `kill -9` of the jobs core under a running job, restarted on the same address: the worker
/// reconnects within the lease and resumes the job under its id, so it finishes once
/// (attempt 1) instead of being run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_jobs_core_is_resumed() {
    let redis = RedisServer::start();
    let port = pfc_testkit::stable_port();
    let url = redis.url();
    let jobs_args = ["jobs", "--redis-url", url.as_str()];
    let mut jobs = Pfc::spawn(&jobs_args, port);
    jobs.ready().await;
    let _worker = SdkWorker::spawn(&jobs.url(), 2, "resumer");
    let mut c = client(jobs.addr).await;
    let id = submit_json(
        &mut c,
        "thumbnail",
        json!({"width": 8, "height": 8, "delay_ms": 2500}),
    )
    .await;
    let addr = jobs.addr;
    let held_by = pfc_testkit::wait_until("job running", Duration::from_secs(20), || {
        let id = id.clone();
        async move {
            let j = get(&mut client(addr).await, &id).await;
            (j.status() == pb::JobStatus::Processing).then_some(j.worker_id)
        }
    })
    .await;
    jobs.kill9();
    let jobs = Pfc::spawn(&jobs_args, port);
    jobs.ready().await;
    let mut c = client(jobs.addr).await;
    let job = wait_terminal(&mut c, &id, Duration::from_secs(30)).await;
    assert_eq!(job.status(), pb::JobStatus::Done, "{job:?}");
    assert_eq!(
        (job.attempts, job.worker_id.as_str()),
        (1, held_by.as_str()),
        "resumed by the same worker, not run again"
    );
}
