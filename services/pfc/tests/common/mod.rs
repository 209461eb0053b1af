//! Shared harness for the end-to-end tests: real servers on loopback, real redis-server,
//! real `pfc` processes.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pfc_proto::jobs::v1 as pb;
use pfc_proto::jobs::v1::job_service_client::JobServiceClient;
use pfc_queue::StoreArgs;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Store arguments for a Redis URL, with test-friendly timings.
pub fn store_args(redis_url: Option<String>) -> StoreArgs {
    StoreArgs {
        redis_url,
        redis_password: None,
        redis_password_file: None,
        redis_cluster: false,
        redis_wait_replicas: 0,
        job_ttl: Duration::from_secs(3600),
        lease: Duration::from_secs(3),
        retry_backoff: Duration::from_millis(100),
    }
}

/// A `pfc jobs` server running in this process.
pub struct JobsServer {
    pub addr: SocketAddr,
    pub stop: pfc_runtime::Shutdown,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl JobsServer {
    /// Starts `pfc jobs` on 127.0.0.1:0 against `store`.
    pub async fn start(store: StoreArgs) -> Self {
        Self::start_with(store, Default::default()).await
    }

    /// Starts `pfc jobs` on 127.0.0.1:0 against `store` with schedule settings (a schedules
    /// file).
    pub async fn start_with(store: StoreArgs, schedules: pfc_jobs::ScheduleArgs) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = pfc_jobs::Config {
            access: Default::default(),
            grpc_addr: addr,
            store,
            limits: pfc_jobs::LimitArgs {
                max_text_bytes: 64 * 1024,
                max_payload_bytes: 1024 * 1024,
                max_attempts: 3,
            },
            workers: Default::default(),
            schedules,
        };
        let stop = pfc_runtime::Shutdown::new();
        let task = tokio::spawn(pfc_jobs::run(listener, config, stop.wait()));
        let s = Self { addr, stop, task };
        s.wait_serving().await;
        s
    }

    /// Waits until the server's health says SERVING.
    pub async fn wait_serving(&self) {
        let addr = self.addr;
        pfc_testkit::wait_until(
            "jobs server SERVING",
            Duration::from_secs(10),
            || async move { (health(addr).await == Some(true)).then_some(()) },
        )
        .await;
    }

    /// `http://` URL of this server (what workers connect to).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client of this server.
    pub async fn client(&self) -> JobServiceClient<Channel> {
        client(self.addr).await
    }
}

/// A JobService client for `addr`.
pub async fn client(addr: SocketAddr) -> JobServiceClient<Channel> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    JobServiceClient::new(ch)
}

/// Overall health of the server at `addr`: Some(true) = SERVING, None = unreachable.
pub async fn health(addr: SocketAddr) -> Option<bool> {
    health_of(addr, "").await
}

/// Health of one service name at `addr`.
pub async fn health_of(addr: SocketAddr, service: &str) -> Option<bool> {
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .ok()?
        .connect()
        .await
        .ok()?;
    let r = HealthClient::new(ch)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .ok()?;
    Some(r.into_inner().status() == ServingStatus::Serving)
}

/// The built-in worker running in this process, connected to the jobs server at `addr`
/// over the worker protocol (as `pfc worker` is).
pub fn start_worker(
    addr: SocketAddr,
    concurrency: usize,
) -> (
    pfc_runtime::Shutdown,
    JoinHandle<Result<(), pfc_sdk::Error>>,
) {
    let stop = pfc_runtime::Shutdown::new();
    let args = pfc_worker::WorkerArgs {
        queues: Vec::new(),
        concurrency,
        shutdown_timeout: Duration::from_secs(5),
        job_timeout: Duration::from_secs(60),
    };
    let w = pfc_worker::builtin(
        &format!("http://{addr}"),
        pfc_processors::Registry::builtin(),
        &args,
        Some("test"),
    );
    let task = tokio::spawn(w.run_until(stop.wait()));
    (stop, task)
}

/// A real `pfc worker` process; killed on drop.
pub struct WorkerProcess(pub Child);

impl WorkerProcess {
    /// Spawns `pfc worker` against the jobs core at `jobs_url`.
    pub fn spawn(jobs_url: &str, concurrency: usize) -> Self {
        let port = pfc_testkit::free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_pfc"))
            .args(["worker", "--jobs-url", jobs_url])
            .args(["--concurrency", &concurrency.to_string()])
            .args(["--grpc-addr", &format!("127.0.0.1:{port}")])
            .env("PFC_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pfc worker");
        Self(child)
    }

    /// SIGKILL: the process dies without any chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Submits `text` with `kind`, returns the job id.
pub async fn submit(c: &mut JobServiceClient<Channel>, kind: &str, text: &str) -> String {
    c.submit_job(pb::SubmitJobRequest {
        text: text.into(),
        kind: kind.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .job_id
}

/// Fetches a job.
pub async fn get(c: &mut JobServiceClient<Channel>, id: &str) -> pb::Job {
    c.get_job(pb::GetJobRequest { job_id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap()
}

/// Polls until the job is terminal; returns it.
pub async fn wait_terminal(
    c: &mut JobServiceClient<Channel>,
    id: &str,
    timeout: Duration,
) -> pb::Job {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let job = get(c, id).await;
        if matches!(
            job.status(),
            pb::JobStatus::Done | pb::JobStatus::Failed | pb::JobStatus::Cancelled
        ) {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} not terminal after {timeout:?}: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
