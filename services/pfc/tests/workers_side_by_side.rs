//! Two `pfc worker` processes on one host, started with nothing but a jobs URL (as a user
//! would in two terminals, or systemd with two units): both keep running, both serve their
//! health endpoint, both show up as live workers and both run jobs. The first one gets the
//! default health address, the second falls back to an ephemeral port (docs/roles.md).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use pfc_proto::jobs::v1 as pb;
use pfc_testkit::RedisServer;

/// A `pfc worker` process with its default health address; its log is read as it comes, to
/// learn the address it bound. Killed on drop.
struct DefaultWorker {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl DefaultWorker {
    fn spawn(jobs_url: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pfc"))
            .args(["worker", "--jobs-url", jobs_url, "--concurrency", "1"])
            // the defaults under test: no --grpc-addr, and no PFC_GRPC_ADDR inherited either
            .env_remove("PFC_GRPC_ADDR")
            .env("PFC_LOG", "info")
            .env("PFC_LOG_FORMAT", "text")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn pfc worker");
        // logs go to stdout (the error that ends the process, too)
        let stdout = child.stdout.take().expect("piped stdout");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, log }
    }

    /// The health address from the "gRPC server listening addr=..." log line, once logged.
    fn health_addr(&self) -> Option<SocketAddr> {
        self.log.lock().unwrap().iter().find_map(|line| {
            let rest = line.split("gRPC server listening").nth(1)?;
            let addr = rest.split("addr=").nth(1)?.split_whitespace().next()?;
            let addr = addr.trim_start_matches("Some(").trim_end_matches(')');
            addr.parse().ok()
        })
    }

    /// Panics with the process's log if it has exited.
    fn assert_running(&mut self, which: &str) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "{which} worker exited ({status}); its log:\n{}",
                self.log.lock().unwrap().join("\n")
            );
        }
    }

    /// Waits until the worker logged its health address (and is still running).
    async fn wait_listening(&mut self, which: &str) -> SocketAddr {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            self.assert_running(which);
            if let Some(addr) = self.health_addr() {
                return addr;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{which} worker never logged its address; its log:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for DefaultWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two workers started with their defaults on one host both run: neither exits with
/// "address in use", each serves health on its own address, and jobs run on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_default_workers_run_side_by_side() {
    let redis = RedisServer::start();
    let server = JobsServer::start(store_args(Some(redis.url()))).await;
    let mut c = server.client().await;

    // one after the other, as in two terminals: the first has bound before the second starts
    let mut first = DefaultWorker::spawn(&server.url());
    let first_addr = first.wait_listening("first").await;
    let mut second = DefaultWorker::spawn(&server.url());
    let second_addr = second.wait_listening("second").await;
    assert_ne!(first_addr, second_addr, "two workers cannot share a port");
    for addr in [first_addr, second_addr] {
        assert!(addr.ip().is_loopback(), "defaults bind loopback: {addr}");
        pfc_testkit::wait_until(
            &format!("worker health at {addr} SERVING"),
            Duration::from_secs(10),
            || async move { (health(addr).await == Some(true)).then_some(()) },
        )
        .await;
    }

    // both are live workers
    let addr = server.addr;
    let live: BTreeSet<String> =
        pfc_testkit::wait_until("two live workers", Duration::from_secs(15), || async move {
            let s = client(addr)
                .await
                .get_stats(pb::GetStatsRequest {})
                .await
                .ok()?
                .into_inner();
            (s.live_workers == 2).then(|| s.workers.into_iter().map(|w| w.id).collect())
        })
        .await;
    assert_eq!(live.len(), 2, "{live:?}");

    // and both run jobs: one slot each, 200 ms jobs, so neither can take them all
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(submit(&mut c, "sleep", "200").await);
    }
    let mut ran_on = BTreeSet::new();
    for id in &ids {
        let job = wait_terminal(&mut c, id, Duration::from_secs(30)).await;
        assert_eq!(
            job.status(),
            pb::JobStatus::Done,
            "job {id}: {:?}",
            job.error
        );
        ran_on.insert(job.worker_id);
    }
    assert_eq!(ran_on, live, "jobs ran on both live workers");

    first.assert_running("first");
    second.assert_running("second");
}

/// Runs `pfc worker` with `args`/`envs` and returns its exit status and stderr, failing the
/// test if it is still running after 20 s (it was expected to exit).
fn run_to_exit(args: &[&str], envs: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pfc"));
    cmd.arg("worker")
        .args(args)
        .env_remove("PFC_GRPC_ADDR")
        .env("PFC_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn pfc worker");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pfc worker {args:?} {envs:?} kept running on a taken address");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status, err)
}

/// An address that was asked for, by flag or by `PFC_GRPC_ADDR`, is never swapped for another:
/// when it is taken the worker exits with an error naming it (Kubernetes probes dial it).
#[test]
fn explicit_taken_address_fails_loudly() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    // the jobs core is never reached: binding comes first
    let redis = ["--jobs-url", "http://127.0.0.1:1"];
    let by_flag = [&redis[..], &["--grpc-addr", taken.as_str()]].concat();
    for (args, envs) in [
        (by_flag, vec![]),
        (redis.to_vec(), vec![("PFC_GRPC_ADDR", taken.as_str())]),
    ] {
        let (status, err) = run_to_exit(&args, &envs);
        assert!(!status.success(), "{args:?} {envs:?}: {status}");
        assert!(
            err.contains(&taken) && err.contains("in use"),
            "{args:?} {envs:?}: {err}"
        );
    }
}
