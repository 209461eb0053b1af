//! Graceful shutdown of a real `pfc worker` process on SIGTERM: it stops taking work, lets
//! running jobs finish within `--shutdown-timeout`, gives the rest back to the queue, and
//! exits within the deadline.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use pfc_proto::jobs::v1 as pb;
use pfc_testkit::RedisServer;

fn spawn_worker(jobs_url: &str, shutdown_timeout: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_pfc"))
        .args(["worker", "--jobs-url", jobs_url, "--concurrency", "4"])
        .args([
            "--grpc-addr",
            &format!("127.0.0.1:{}", pfc_testkit::free_port()),
        ])
        .args(["--shutdown-timeout", shutdown_timeout])
        .env("PFC_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pfc worker")
}

fn sigterm(child: &std::process::Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
}

async fn wait_processing(
    c: &mut pfc_proto::jobs::v1::job_service_client::JobServiceClient<tonic::transport::Channel>,
    n: u64,
) {
    let c = c.clone();
    pfc_testkit::wait_until("jobs processing", Duration::from_secs(10), || {
        let mut c = c.clone();
        async move {
            let s = c.get_stats(pb::GetStatsRequest {}).await.ok()?.into_inner();
            (s.processing == n).then_some(())
        }
    })
    .await;
}

/// Two `sleep` jobs of `ms` running on a worker process with `shutdown_timeout`, then
/// SIGTERM: returns the stack, the job ids and how long the worker took to exit (asserting
/// it exited cleanly).
async fn sigterm_mid_jobs(
    ms: &str,
    shutdown_timeout: &str,
) -> (RedisServer, JobsServer, [String; 2], Duration) {
    let redis = RedisServer::start();
    let server = JobsServer::start(store_args(Some(redis.url()))).await;
    let mut c = server.client().await;
    let mut worker = spawn_worker(&server.url(), shutdown_timeout);
    let ids = [
        submit(&mut c, "sleep", ms).await,
        submit(&mut c, "sleep", ms).await,
    ];
    wait_processing(&mut c, 2).await;
    sigterm(&worker);
    let t = Instant::now();
    let status = tokio::task::spawn_blocking(move || worker.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "worker exit status {status:?}");
    (redis, server, ids, t.elapsed())
}

/// SIGTERM with time to spare: the running jobs finish (done, one attempt each), then the
/// worker exits and leaves the live set.
#[tokio::test]
async fn sigterm_lets_running_jobs_finish() {
    let (_redis, server, ids, exit) = sigterm_mid_jobs("700", "10s").await;
    assert!(exit < Duration::from_secs(5), "exit took {exit:?}");
    let mut c = server.client().await;
    for id in &ids {
        let j = get(&mut c, id).await;
        assert_eq!(j.status(), pb::JobStatus::Done, "{j:?}");
        assert_eq!(j.attempts, 1);
    }
    let stats = c
        .get_stats(pb::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        stats.live_workers, 0,
        "a stopped worker leaves the live set"
    );
}

/// SIGTERM with a short deadline: jobs that can't finish are given back to the queue at
/// once (not after a lease expiry, and without using an attempt), and another worker runs them.
#[tokio::test]
async fn sigterm_releases_unfinished_jobs() {
    let (_redis, server, ids, exit) = sigterm_mid_jobs("5000", "300ms").await;
    assert!(exit < Duration::from_secs(3), "exit took {exit:?}");
    let mut c = server.client().await;
    for id in &ids {
        let j = get(&mut c, id).await;
        assert_eq!(
            j.status(),
            pb::JobStatus::Queued,
            "released, not waiting for a lease: {j:?}"
        );
        assert_eq!(j.attempts, 0, "a released delivery does not count");
    }
    // a new worker picks them up
    let _next = WorkerProcess::spawn(&server.url(), 4);
    wait_processing(&mut c, 2).await;
}
