//! pfc's built-in worker: the built-in processors (`pfc_processors`) run as handlers of the
//! Rust SDK (`pfc-sdk`), so they reach the jobs core through the same worker protocol
//! (`pfc.worker.v1.WorkerService`) as users' code in any language.
//!
//! `pfc worker` connects to the jobs core (`--jobs-url`), declares every built-in kind and
//! its concurrency, and runs what it is assigned; the SDK keeps the stream alive, reconnects,
//! and on SIGTERM drains: no new jobs, running ones get `--shutdown-timeout`, the rest go back
//! to the queue. `pfc dev` runs the same worker in its own process, over loopback.
//!
//! # Layout
//! - [`Config`] / [`WorkerArgs`]: flags and env.
//! - [`builtin`]: the SDK worker running the built-in processors.
//! - [`run`]: the `pfc worker` role (worker + gRPC health endpoint).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use pfc_processors::{ProcessError, Registry};
use pfc_sdk::{HandlerError, Job, Output};
use tokio::net::TcpListener;
use tonic_health::ServingStatus;

/// Worker tunables (shared by `pfc worker` and `pfc dev`).
#[derive(Clone, Debug, clap::Args)]
pub struct WorkerArgs {
    /// Jobs run at once by this process (1 to 1024).
    #[arg(
        long = "concurrency",
        env = "PFC_WORKER_CONCURRENCY",
        default_value_t = 16
    )]
    pub concurrency: usize,
    /// Queues to take jobs from, comma-separated (e.g. `mail,reports`); empty: every queue,
    /// including queues created later.
    #[arg(long = "queues", env = "PFC_WORKER_QUEUES", value_delimiter = ',')]
    pub queues: Vec<String>,
    /// On SIGTERM, how long running jobs may take to finish before they are given back.
    #[arg(long, env = "PFC_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// A job running longer than this fails (retryably).
    #[arg(long, env = "PFC_JOB_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub job_timeout: Duration,
}

/// Configuration of the `pfc worker` role.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// gRPC listen address (health only: Kubernetes probes and `pfc probe`). When the
    /// default is taken (another worker on this host) an ephemeral port is used instead; an
    /// address given by flag or environment must be free.
    #[arg(long, env = "PFC_GRPC_ADDR", default_value = "127.0.0.1:50054")]
    pub grpc_addr: SocketAddr,
    /// The jobs core the worker gets its jobs from (its gRPC address); several, separated by
    /// commas, to fail over between them (behind a Kubernetes Service, one is enough).
    #[arg(long, env = "PFC_JOBS_URL", default_value = "http://127.0.0.1:50051")]
    pub jobs_url: String,
    /// Worker name (the id is the name plus a suffix); default: the host name.
    #[arg(long, env = "PFC_WORKER_NAME")]
    pub name: Option<String>,
    /// Worker credential (an API key with the `worker` scope) for a jobs core that requires
    /// credentials (`--auth-required`); sent as `authorization: Bearer …`.
    #[arg(long, env = "PFC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Worker tunables.
    #[command(flatten)]
    pub worker: WorkerArgs,
}

/// The SDK worker that runs `registry`'s processors against the jobs core at `url`. Text
/// jobs only (the built-in kinds take text; the jobs core refuses payloads for them); each
/// job runs in a `job` span that continues the submitter's trace.
pub fn builtin(
    url: &str,
    registry: Registry,
    args: &WorkerArgs,
    name: Option<&str>,
) -> pfc_sdk::Worker {
    let mut w = pfc_sdk::Worker::new(url)
        .concurrency(args.concurrency.clamp(1, u32::MAX as usize) as u32)
        .queues(args.queues.iter().map(|q| q.trim()).filter(|q| !q.is_empty()))
        .shutdown_timeout(args.shutdown_timeout)
        .job_timeout(args.job_timeout)
        .sdk_name(concat!("pfc-worker/", env!("CARGO_PKG_VERSION")))
        .job_span(|job| {
            let span = tracing::info_span!("job", job_id = %job.id(), kind = %job.kind(), attempt = job.attempt(), delivery = job.delivery());
            if let Some(tp) = job.traceparent() {
                pfc_telemetry::set_parent(&span, tp);
            }
            span
        });
    if let Some(name) = name {
        w = w.name(name);
    }
    for p in registry.iter() {
        let p = p.clone();
        w = w.handle(p.name(), move |job: Job| {
            let p = p.clone();
            async move {
                let text = job.text()?;
                match p.run(text).await {
                    Ok(result) => Ok(Output::Text(result)),
                    Err(ProcessError::Retryable(e)) => Err(HandlerError::retryable(e)),
                    Err(ProcessError::Permanent(e)) => Err(HandlerError::permanent(e)),
                }
            }
        });
    }
    w
}

/// Runs the `pfc worker` role: the built-in worker plus a gRPC health endpoint (SERVING
/// while connected to the jobs core), until `shutdown`.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let stop = pfc_runtime::Shutdown::new();
    stop.trigger_on(shutdown);
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    let routes = tonic::service::Routes::new(health);
    let server = tokio::spawn(pfc_runtime::grpc::serve(
        listener,
        routes,
        reporter.clone(),
        vec![],
        stop.wait(),
    ));
    let mut worker = builtin(
        &config.jobs_url,
        Registry::builtin(),
        &config.worker,
        config.name.as_deref(),
    );
    if let Some(token) = &config.token {
        worker = worker.token(token.clone());
    }
    let mut connected = worker.connected();
    let health_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            let status = if *connected.borrow_and_update() {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            reporter.set_service_status("", status).await;
            tokio::select! {
                r = connected.changed() => if r.is_err() { return },
                _ = health_stop.wait() => return,
            }
        }
    });
    worker
        .run_until(stop.wait())
        .await
        .context("the worker stopped")?;
    stop.trigger();
    server.await.context("health server task")??;
    Ok(())
}
