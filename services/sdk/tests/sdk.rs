//! The SDK against a real `pfc jobs` (in this process) on a real redis-server: a worker's
//! handlers run JSON jobs, retryable and permanent failures, progress seen by a watcher,
//! graceful shutdown, and the client's calls.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use pfc_sdk::{Client, Error, HandlerError, Job, JobStatus, Submit, Worker};
use pfc_testkit::RedisServer;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: pfc_jobs::Config,
}

struct Server {
    url: String,
    stop: pfc_runtime::Shutdown,
    _redis: RedisServer,
}

async fn server() -> Server {
    let redis = RedisServer::start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (url, a) = (redis.url(), addr.to_string());
    let argv = [
        "t",
        "--redis-url",
        &url,
        "--grpc-addr",
        &a,
        "--retry-backoff",
        "50ms",
    ];
    let config = Args::parse_from(argv).config;
    let stop = pfc_runtime::Shutdown::new();
    tokio::spawn(pfc_jobs::run(listener, config, stop.wait()));
    let url = format!("http://{addr}");
    let u = url.clone();
    pfc_testkit::wait_until("jobs server", Duration::from_secs(10), || {
        let u = u.clone();
        async move { Client::connect(&u).await.ok().map(|_| ()) }
    })
    .await;
    Server {
        url,
        stop,
        _redis: redis,
    }
}

/// Starts `worker` until the returned shutdown is triggered.
fn start(
    worker: Worker,
) -> (
    pfc_runtime::Shutdown,
    tokio::task::JoinHandle<Result<(), Error>>,
) {
    let stop = pfc_runtime::Shutdown::new();
    let task = tokio::spawn(worker.run_until(stop.wait()));
    (stop, task)
}

/// A handler's JSON result comes back through the client as JSON; the job ran once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_runs_a_json_job() {
    let s = server().await;
    let worker =
        Worker::new(&s.url)
            .name("t")
            .concurrency(4)
            .handle("math.double", |job: Job| async move {
                let n: i64 = job.json()?;
                Ok(serde_json::json!({ "double": n * 2, "kind": job.kind() }))
            });
    let mut connected = worker.connected();
    let (_stop, _task) = start(worker);
    connected.wait_for(|c| *c).await.unwrap();
    let client = Client::connect(&s.url).await.unwrap();
    let id = client.submit("math.double", &21).await.unwrap();
    let job = client.wait(&id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(job.status(), JobStatus::Done, "{job:?}");
    let v: serde_json::Value = job.result_json().unwrap().unwrap();
    assert_eq!(v, serde_json::json!({"double": 42, "kind": "math.double"}));
    assert_eq!(job.attempts(), 1);
    assert!(job.worker_id().starts_with("t-"), "{}", job.worker_id());
}

/// A retryable failure is retried with backoff until attempts run out, then the job fails
/// with the handler's message; a permanent one fails at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_and_permanent_failures() {
    let s = server().await;
    let tries = Arc::new(AtomicU32::new(0));
    let t = tries.clone();
    let worker = Worker::new(&s.url)
        .handle("flaky", move |job: Job| {
            let t = t.clone();
            async move {
                t.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(HandlerError::retryable(format!(
                    "flaky: attempt {} failed",
                    job.attempt()
                )))
            }
        })
        .handle("strict", |_job: Job| async move {
            Err::<(), _>(HandlerError::permanent("bad input: no"))
        })
        .handle("io", |_job: Job| async move {
            // any std error converts with `?`, as a retryable failure
            let r: Result<(), std::io::Error> = Err(std::io::Error::other("disk full"));
            r?;
            Ok(())
        });
    let (_stop, _task) = start(worker);
    let client = Client::connect(&s.url).await.unwrap();
    let flaky = client
        .submit("flaky", &serde_json::json!({}))
        .await
        .unwrap();
    let strict = client
        .submit("strict", &serde_json::json!({}))
        .await
        .unwrap();
    let io = client
        .submit_with(Submit::json("io", &1).unwrap().max_attempts(1))
        .await
        .unwrap();
    let job = client.wait(&flaky, Duration::from_secs(20)).await.unwrap();
    assert_eq!((job.status(), job.attempts()), (JobStatus::Failed, 3));
    assert_eq!(job.error(), Some("flaky: attempt 3 failed"));
    assert_eq!(tries.load(Ordering::SeqCst), 3);
    let job = client.wait(&strict, Duration::from_secs(10)).await.unwrap();
    assert_eq!((job.status(), job.attempts()), (JobStatus::Failed, 1));
    assert_eq!(job.error(), Some("bad input: no"));
    let job = client.wait(&io, Duration::from_secs(10)).await.unwrap();
    assert_eq!(job.error(), Some("disk full"));
}

/// Progress reported by a handler reaches a watcher of the job, before its result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_reaches_a_watcher() {
    let s = server().await;
    let worker = Worker::new(&s.url).handle("slow", |job: Job| async move {
        job.progress(30);
        tokio::time::sleep(Duration::from_millis(300)).await;
        job.progress(70);
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok("finished")
    });
    let (_stop, _task) = start(worker);
    let client = Client::connect(&s.url).await.unwrap();
    let id = client.submit("slow", &()).await.unwrap();
    let mut seen = Vec::new();
    let mut watch = Box::pin(client.watch(&id).await.unwrap());
    let mut last = None;
    while let Some(j) = watch.next().await {
        let j = j.unwrap();
        if let Some(p) = j.progress() {
            if seen.last() != Some(&p) {
                seen.push(p);
            }
        }
        last = Some(j);
    }
    let last = last.unwrap();
    assert_eq!(last.status(), JobStatus::Done);
    assert_eq!(last.result_text(), Some("finished"));
    assert!(
        seen.contains(&30) && seen.contains(&70),
        "progress seen: {seen:?}"
    );
}

/// Shutdown: running handlers get the shutdown timeout, then their jobs are released (the
/// attempt does not count) and `run_until` returns; a handler that finishes in time reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_or_releases() {
    let s = server().await;
    let worker = Worker::new(&s.url)
        .concurrency(2)
        .shutdown_timeout(Duration::from_millis(500))
        .handle("nap", |job: Job| async move {
            let ms: u64 = job.json()?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(serde_json::json!(ms))
        });
    let (stop, task) = start(worker);
    let client = Client::connect(&s.url).await.unwrap();
    let quick = client.submit("nap", &100).await.unwrap();
    let long = client.submit("nap", &60_000).await.unwrap();
    pfc_testkit::wait_until("both running", Duration::from_secs(10), || {
        let c = client.clone();
        let (a, b) = (quick.clone(), long.clone());
        async move {
            let a = c.get(&a).await.ok()?.status();
            let b = c.get(&b).await.ok()?.status();
            (a == JobStatus::Processing && b == JobStatus::Processing).then_some(())
        }
    })
    .await;
    let t = Instant::now();
    stop.trigger();
    task.await.unwrap().unwrap();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert_eq!(client.get(&quick).await.unwrap().status(), JobStatus::Done);
    let long = client.get(&long).await.unwrap();
    assert_eq!(
        (long.status(), long.attempts()),
        (JobStatus::Queued, 0),
        "{long:?}"
    );
}

/// A configuration the SDK or the jobs core refuses is an error, not a retry loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_an_error() {
    let s = server().await;
    let noop = |_job: Job| async move { Ok(()) };
    for w in [
        Worker::new(&s.url).handle("Bad Kind", noop),
        Worker::new(&s.url).concurrency(0).handle("ok", noop),
        Worker::new("localhost:1").handle("ok", noop),
        Worker::new(&s.url),
    ] {
        let r = tokio::time::timeout(Duration::from_secs(5), w.run_until(std::future::pending()))
            .await
            .expect("refused at once");
        assert!(
            matches!(r, Err(Error::Config(_) | Error::InvalidUrl { .. })),
            "{r:?}"
        );
    }
    // refused by the server (a name the SDK lets through)
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        Worker::new(&s.url)
            .name("no spaces please")
            .handle("ok", noop)
            .run_until(std::future::pending()),
    )
    .await
    .expect("refused at once");
    match r {
        Err(Error::Config(m)) => assert!(m.contains("Hello.name"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// Client: get, cancel, NOT_FOUND, and a wait that times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_calls() {
    let s = server().await;
    let client = Client::connect(&s.url).await.unwrap();
    let id = client
        .submit_with(
            Submit::json("nobody.runs.this", &serde_json::json!({"a": [1, 2]}))
                .unwrap()
                .idempotency_key("k-1"),
        )
        .await
        .unwrap();
    let again = client
        .submit_with(
            Submit::json("nobody.runs.this", &0)
                .unwrap()
                .idempotency_key("k-1"),
        )
        .await
        .unwrap();
    assert_eq!(id, again, "idempotency key");
    let job = client.get(&id).await.unwrap();
    assert_eq!(
        (job.status(), job.kind()),
        (JobStatus::Queued, "nobody.runs.this")
    );
    match client.wait(&id, Duration::from_millis(300)).await {
        Err(Error::Timeout { .. }) => {}
        other => panic!("{other:?}"),
    }
    let job = client.cancel(&id).await.unwrap();
    assert_eq!(job.status(), JobStatus::Cancelled);
    let e = client.get("01NOPE").await.unwrap_err();
    assert_eq!(e.status().unwrap().code(), tonic::Code::NotFound);
    s.stop.trigger();
}
