//! `pfc dev`: every role in one process, composed from the same library functions the
//! separate roles use. One gRPC port serves every gRPC service; the gateway serves HTTP.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use pfc_processors::Registry;
use pfc_queue::StoreArgs;
use tonic_health::ServingStatus;

/// Configuration of `pfc dev`.
#[derive(Clone, Debug, clap::Args)]
pub struct DevConfig {
    /// gRPC listen address (every gRPC service).
    #[arg(long, env = "PFC_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,
    /// HTTP listen address (UI, REST, gRPC-web).
    #[arg(long, env = "PFC_HTTP_ADDR", default_value = "127.0.0.1:8000")]
    pub http_addr: SocketAddr,
    /// Job store (in-memory unless --redis-url is set).
    #[command(flatten)]
    pub store: StoreArgs,
    /// Request limits.
    #[command(flatten)]
    pub limits: pfc_jobs::LimitArgs,
    /// The worker protocol (`pfc.worker.v1.WorkerService`).
    #[command(flatten)]
    pub workers: pfc_jobs::WorkerServiceArgs,
    /// Schedules (`pfc.jobs.v1.ScheduleService`, the scheduler).
    #[command(flatten)]
    pub schedules: pfc_jobs::ScheduleArgs,
    /// In-process worker.
    #[command(flatten)]
    pub worker: pfc_worker::WorkerArgs,
    /// Chat limits and timings (`PFC_CHAT_*`).
    #[command(flatten)]
    pub chat: pfc_chat::Limits,
    /// Require credentials on every jobs call, REST route and the worker protocol
    /// (docs/security.md). Off by default in `pfc dev`.
    #[arg(long, env = "PFC_AUTH_REQUIRED", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub auth_required: bool,
    /// Which scopes Login tokens carry.
    #[command(flatten)]
    pub grants: pfc_auth::GrantArgs,
}

/// Runs everything until `shutdown` resolves, then drains every part.
pub async fn run(
    config: DevConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stop = pfc_runtime::Shutdown::new();
    stop.trigger_on(shutdown);
    let store = config
        .store
        .open(true)
        .context("failed to open the job store")?;
    let backend = if config.store.redis_url.is_some() {
        "redis"
    } else {
        "in-memory"
    };

    let grpc_listener = pfc_runtime::bind(config.grpc_addr).await?;
    let http_listener = pfc_runtime::bind(config.http_addr).await?;
    // The gateway calls the gRPC server below over loopback, as a separate deployment would.
    let mut grpc_local = grpc_listener.local_addr()?;
    if grpc_local.ip().is_unspecified() {
        grpc_local.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let mut gateway_config = pfc_gateway::Config::from_env(format!("http://{grpc_local}"))
        .context("invalid gateway configuration")?;
    gateway_config.http_addr = config.http_addr;
    gateway_config.auth_required = config.auth_required;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    let services = vec![
        pfc_jobs::SERVICE_NAME.to_owned(),
        pfc_jobs::WORKER_SERVICE_NAME.to_owned(),
        pfc_jobs::SCHEDULE_SERVICE_NAME.to_owned(),
    ];
    let workers = pfc_jobs::Workers::new(
        store.clone(),
        config.store.lease,
        config.workers.clone(),
        stop.clone(),
    );
    let jobs = pfc_jobs::Jobs::new(store.clone(), Registry::builtin(), config.limits.limits());
    let limit = pfc_jobs::server::decode_limit(jobs.limits());
    let (schedules, scheduler) = pfc_jobs::schedule_service::start(
        &config.store,
        &config.schedules,
        store.clone(),
        jobs.clone(),
        stop.wait(),
    )?;
    let api_keys = pfc_jobs::api_keys(&config.store)?;
    let routes = tonic::service::Routes::new(pfc_jobs::server::job_server(jobs))
        .add_service(workers.into_server())
        .add_service(schedules.into_server(limit))
        .add_service(pfc_access::ApiKeyGrpc::new(api_keys.clone()).into_server());
    // auth + chat (issue 5): ephemeral signing key, chat store in memory or on --redis-url.
    let chat_redis = config
        .store
        .effective_redis_url()
        .map(|url| pfc_redis::Backend::open(&url, config.store.redis_cluster))
        .transpose()
        .context("invalid Redis URL")?;
    let grants = config
        .grants
        .grants()
        .map_err(anyhow::Error::msg)
        .context("invalid PFC_AUTH_DEFAULT_SCOPES")?;
    let chat = pfc_chat::embedded_with(
        chat_redis,
        config.chat.clone(),
        grants,
        reporter.clone(),
        stop.clone(),
    )
    .context("failed to set up auth and chat")?;
    // Access control (issue 17): tokens of the embedded auth, verified in-process; the
    // built-in worker gets a `worker` token of its own.
    let issuer = chat.issuer.clone();
    let (auth, worker_token) = if config.auth_required {
        let keys = pfc_auth::Keys::fixed(issuer.verifier());
        let auth = pfc_access::Authenticator::new(keys, Some(api_keys));
        let now = pfc_auth::now_secs();
        let (token, _) = issuer
            .issue_scoped(
                "dev-worker",
                pfc_auth::Scopes::of(&[pfc_auth::Scope::Worker]),
                now,
                now + 10 * 365 * 86_400,
            )
            .context("failed to issue the built-in worker's token")?;
        (Some(auth), Some(token))
    } else {
        (None, None)
    };
    let routes = pfc_jobs::guarded(routes, auth);
    let routes = chat.add_to(routes);
    let routes = pfc_runtime::grpc::with_health_and_reflection(routes, health)?;

    let bg = tokio::spawn(pfc_jobs::background(
        store.clone(),
        reporter.clone(),
        services.clone(),
        stop.wait(),
    ));
    let grpc = tokio::spawn(pfc_runtime::grpc::serve(
        grpc_listener,
        routes,
        reporter,
        services,
        stop.wait(),
    ));
    // The built-in worker speaks the worker protocol to the gRPC server above over loopback,
    // exactly as `pfc worker` (and users' workers) do in a deployment.
    let mut worker = pfc_worker::builtin(
        &format!("http://{grpc_local}"),
        Registry::builtin(),
        &config.worker,
        Some("dev"),
    );
    if let Some(token) = worker_token {
        worker = worker.token(token);
    }
    let worker = tokio::spawn(worker.run_until(stop.wait()));

    tracing::info!(
        grpc = %config.grpc_addr,
        http = %config.http_addr,
        store = backend,
        auth_required = config.auth_required,
        "pfc dev is up: UI http://{}  gRPC {}",
        config.http_addr,
        config.grpc_addr
    );
    let gateway = tokio::spawn(pfc_gateway::run(http_listener, gateway_config, stop.wait()));

    stop.wait().await;
    gateway.await.context("gateway task")??;
    match worker.await {
        Ok(Err(e)) => tracing::error!(error = %e, "the built-in worker stopped"),
        Err(e) => tracing::error!(error = %e, "the built-in worker panicked"),
        Ok(Ok(())) => {}
    }
    grpc.await.context("gRPC server task")??;
    bg.abort();
    scheduler.abort();
    Ok(())
}
