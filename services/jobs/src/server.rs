//! The `pfc jobs` role: configuration, background duties and serving.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pfc_processors::Registry;
use pfc_proto::jobs::v1::job_service_server::JobServiceServer;
use pfc_queue::{JobStore, StoreArgs};
use tokio::net::TcpListener;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::service::{Jobs, Limits};
use crate::worker_service::{WorkerServiceArgs, Workers, WORKER_SERVICE_NAME};

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "pfc.jobs.v1.JobService";

/// Request limits (shared by `pfc jobs` and `pfc dev`).
#[derive(Clone, Debug, clap::Args)]
pub struct LimitArgs {
    /// Largest accepted job text, in bytes.
    #[arg(long, env = "PFC_MAX_TEXT_BYTES", default_value_t = 64 * 1024)]
    pub max_text_bytes: usize,
    /// Largest accepted job payload (JSON or other bytes), in bytes.
    #[arg(long, env = "PFC_MAX_PAYLOAD_BYTES", default_value_t = 1024 * 1024)]
    pub max_payload_bytes: usize,
    /// Deliveries allowed per job when the submit does not say.
    #[arg(long, env = "PFC_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,
}

impl LimitArgs {
    /// The limits these arguments describe.
    pub fn limits(&self) -> Limits {
        Limits {
            max_text_bytes: self.max_text_bytes,
            max_payload_bytes: self.max_payload_bytes,
            default_max_attempts: self.max_attempts.max(1),
            ..Limits::default()
        }
    }
}

/// Configuration of the `pfc jobs` role.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// gRPC listen address.
    #[arg(long, env = "PFC_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,
    /// Job store.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Request limits.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// The worker protocol (`pfc.worker.v1.WorkerService`).
    #[command(flatten)]
    pub workers: WorkerServiceArgs,
    /// Access control (`--auth-required`, docs/security.md).
    #[command(flatten)]
    pub access: pfc_access::AccessArgs,
    /// Schedules (`pfc.jobs.v1.ScheduleService`, the scheduler).
    #[command(flatten)]
    pub schedules: crate::ScheduleArgs,
}

/// The API key store of a jobs server: the job store's Redis when there is one (every
/// replica sees the same keys), else this process's memory.
pub fn api_keys(store: &StoreArgs) -> anyhow::Result<Arc<pfc_access::ApiKeys>> {
    use anyhow::Context;
    let keys: Arc<dyn pfc_access::apikeys::KeyStore> = match store.effective_redis_url() {
        Some(url) => Arc::new(
            pfc_access::apikeys::RedisKeyStore::new(&url, store.redis_cluster)
                .context("invalid redis url for the API key store")?,
        ),
        None => Arc::new(pfc_access::apikeys::MemoryKeyStore::new()),
    };
    Ok(Arc::new(pfc_access::ApiKeys::new(keys)))
}

/// `routes` behind the access guard when `auth` is given (`--auth-required`), else as is.
pub fn guarded(
    routes: tonic::service::Routes,
    auth: Option<pfc_access::Authenticator>,
) -> tonic::service::Routes {
    match auth {
        Some(auth) => pfc_access::guard_routes(routes, pfc_access::GuardLayer::new(auth)),
        None => routes,
    }
}

/// The JobService as a tonic service, with a decode limit that leaves room for the largest
/// accepted text or payload (larger messages are refused before they are buffered).
pub fn service(
    store: Arc<dyn JobStore>,
    registry: Registry,
    limits: Limits,
) -> JobServiceServer<Jobs> {
    job_server(Jobs::new(store, registry, limits))
}

/// A JobService over an existing [`Jobs`] (shared with the ScheduleService), with the decode
/// limit of [`service`].
pub fn job_server(jobs: Jobs) -> JobServiceServer<Jobs> {
    crate::metrics::init();
    let max = decode_limit(jobs.limits());
    JobServiceServer::new(jobs).max_decoding_message_size(max)
}

/// The JobService's request decode limit: 4 MiB, or the largest accepted text or payload plus
/// 64 KiB for the other fields when that is larger, so every valid submit fits and a message
/// over the limit is refused before it is buffered.
pub fn decode_limit(limits: &Limits) -> usize {
    (limits.max_text_bytes.max(limits.max_payload_bytes) + 64 * 1024).max(4 * 1024 * 1024)
}

/// Ticks of [`background`] (500 ms each) between two reads of the store's gauges.
const GAUGE_TICKS: u64 = (crate::metrics::GAUGE_REFRESH.as_millis() / 500) as u64;

/// Background duties of a jobs server: health follows store connectivity (checked every
/// second), housekeeping (due scheduled jobs, expired leases, index sweep) runs every
/// 500 ms so recovery never waits for an idle worker, and the queue gauges of the metrics are
/// read every [`crate::metrics::GAUGE_REFRESH`]. Ends when `shutdown` resolves.
pub async fn background(
    store: Arc<dyn JobStore>,
    reporter: HealthReporter,
    services: Vec<String>,
    shutdown: impl Future<Output = ()>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<bool> = None;
    let mut n: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        n += 1;
        if n % 2 == 1 {
            let ok = store.ping().await.is_ok();
            if last != Some(ok) {
                let status = if ok {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                if ok {
                    tracing::info!("job store reachable: SERVING");
                } else {
                    tracing::warn!("job store unreachable: NOT_SERVING");
                }
                reporter.set_service_status("", status).await;
                for s in &services {
                    reporter.set_service_status(s, status).await;
                }
                last = Some(ok);
            }
        }
        if last == Some(true) {
            if let Err(e) = store.maintain().await {
                tracing::debug!(error = %e, "housekeeping failed");
            }
            if n % GAUGE_TICKS == 1 {
                crate::metrics::refresh_gauges(store.as_ref()).await;
            }
        }
    }
}

/// Runs the `pfc jobs` role on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let store = config
        .store
        .open(false)
        .context("failed to open the job store")?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    let services = vec![
        SERVICE_NAME.to_owned(),
        WORKER_SERVICE_NAME.to_owned(),
        crate::SCHEDULE_SERVICE_NAME.to_owned(),
    ];
    for s in &services {
        reporter
            .set_service_status(s, ServingStatus::NotServing)
            .await;
    }
    let stop = pfc_runtime::Shutdown::new();
    stop.trigger_on(shutdown);
    let bg = tokio::spawn(background(
        store.clone(),
        reporter.clone(),
        services.clone(),
        stop.wait(),
    ));

    let workers = Workers::new(
        store.clone(),
        config.store.lease,
        config.workers.clone(),
        stop.clone(),
    );
    let jobs = Jobs::new(store.clone(), Registry::builtin(), config.limits.limits());
    let limit = decode_limit(jobs.limits());
    let (schedules, scheduler) = crate::schedule_service::start(
        &config.store,
        &config.schedules,
        store,
        jobs.clone(),
        stop.wait(),
    )?;
    let key_store = api_keys(&config.store)?;
    let routes = tonic::service::Routes::new(job_server(jobs))
        .add_service(workers.into_server())
        .add_service(schedules.into_server(limit))
        .add_service(pfc_access::ApiKeyGrpc::new(key_store.clone()).into_server());
    let auth = if config.access.auth_required {
        let keys = pfc_auth::Keys::remote(
            config.access.auth_url.clone(),
            config.access.keys_refresh,
            stop.wait(),
        );
        tracing::info!(auth_url = %config.access.auth_url, "access control on: every JobService and WorkerService call needs a credential");
        let mut auth = pfc_access::Authenticator::new(keys, Some(key_store));
        if let Some(key) = config
            .access
            .worker_key
            .as_deref()
            .filter(|k| !k.is_empty())
        {
            auth = auth
                .with_worker_key(key, "preshared-worker")
                .context("invalid PFC_WORKER_KEY")?;
        }
        Some(auth)
    } else {
        tracing::warn!("access control off (--auth-required not set): anyone who reaches this port can submit, read and cancel jobs and run as a worker");
        None
    };
    let routes = guarded(routes, auth);
    let routes = pfc_runtime::grpc::with_health_and_reflection(routes, health)?;
    pfc_runtime::grpc::serve(listener, routes, reporter, services, stop.wait()).await?;
    bg.abort();
    scheduler.abort();
    Ok(())
}
