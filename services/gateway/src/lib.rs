//! pfc's HTTP edge (`pfc gateway`): a thin axum service in front of the gRPC core.
//!
//! It serves, on one port: the origin-compatible REST routes (`POST /jobs`,
//! `GET /jobs/{job_id}`), the versioned REST API under `/api/v1/`, Server-Sent Events of job
//! transitions, gRPC-web for every public gRPC service, the OpenAPI document and its
//! interactive docs, health (`/healthz`, `/readyz`), Prometheus metrics and the embedded web UI.
//! It is a client of the core only: it never touches Redis and holds no state but metrics.
//!
//! # Layout
//! - [`config`]: [`Config`], the clap flags with `PFC_*` fallbacks.
//! - [`error`]: [`ApiError`], the one gRPC → HTTP mapping and JSON error body.
//! - [`model`]: JSON shapes converted from the protobuf messages.
//! - [`rest`]: REST handlers (origin-compatible and `/api/v1`).
//! - [`queues`]: REST for named queues (`/api/v1/queues`).
//! - [`schedules`]: REST for schedules (`/api/v1/schedules`).
//! - [`sse`]: Server-Sent Events from `WatchJob` / `WatchJobs`.
//! - [`grpc_web`]: the generic gRPC-web → gRPC proxy.
//! - [`metrics`]: request and SSE metrics, and `/metrics` (the process registry).
//! - [`openapi`]: the OpenAPI 3.1 document.
//! - [`assets`]: the embedded UI and its path rule.
//! - [`chat`]: chat REST and SSE over the auth and chat services.
//! - [`access`]: `--auth-required` at the edge: credentials on the jobs API, forwarded to
//!   the core.

pub mod access;
pub mod assets;
pub mod chat;
pub mod config;
pub mod error;
pub mod grpc_web;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod queues;
pub mod rest;
pub mod schedules;
pub mod sse;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use axum::{Json, Router};
use pfc_proto::jobs::v1::job_service_client::JobServiceClient;
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

pub use config::Config;
pub use error::ApiError;

/// What every handler shares: clients of the core (cheap to clone) and the shutdown state.
#[derive(Clone)]
pub struct AppState {
    /// Client of `pfc.jobs.v1.JobService`; forwards the caller's credential on every call.
    pub jobs: JobsClient,
    /// Checks Login tokens at the edge when `--auth-required` (`None`: auth off).
    pub access: Option<Arc<pfc_access::Authenticator>>,
    /// Health client of the jobs core (`/readyz`).
    pub health: HealthClient<Channel>,
    jobs_channel: Channel,
    auth_channel: Channel,
    chat_channel: Channel,
    shutdown: pfc_runtime::Shutdown,
    draining: pfc_runtime::Shutdown,
    body_limit: usize,
    request_timeout: Duration,
    cors_origins: Vec<String>,
}

/// The JobService client handlers use: every call carries the HTTP caller's credential
/// ([`access::Forward`]).
pub type JobsClient =
    JobServiceClient<tonic::service::interceptor::InterceptedService<Channel, access::Forward>>;

fn channel(url: &str, what: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_string())
        .with_context(|| format!("invalid {what} url {url:?}"))?
        .connect_timeout(Duration::from_secs(3))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

impl AppState {
    /// Clients for the configured backends. Connections are lazy: the gateway starts (and
    /// answers `/healthz`) while the core is still down, and `/readyz` says so.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let jobs_channel = channel(&config.jobs_url, "jobs")?;
        let shutdown = pfc_runtime::Shutdown::new();
        let access = config.auth_required.then(|| {
            let keys = pfc_auth::Keys::remote(
                config.auth_url.clone(),
                config.auth_keys_refresh,
                shutdown.wait(),
            );
            Arc::new(pfc_access::Authenticator::new(keys, None))
        });
        Ok(AppState {
            jobs: JobServiceClient::with_interceptor(jobs_channel.clone(), access::Forward),
            access,
            health: HealthClient::new(jobs_channel.clone()),
            jobs_channel,
            auth_channel: channel(&config.auth_url, "auth")?,
            chat_channel: channel(&config.chat_url, "chat")?,
            shutdown,
            draining: pfc_runtime::Shutdown::new(),
            body_limit: config.body_limit,
            request_timeout: config.request_timeout,
            cors_origins: config
                .cors_origins
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        })
    }

    /// The shutdown that ends open SSE streams; [`run`] triggers it.
    pub fn shutdown(&self) -> &pfc_runtime::Shutdown {
        &self.shutdown
    }

    /// Triggered when shutdown begins, a lame-duck delay before [`AppState::shutdown`]:
    /// `/readyz` and `/readyz/local` answer 503 while requests are still served.
    pub fn draining(&self) -> &pfc_runtime::Shutdown {
        &self.draining
    }

    fn stopping(&self) -> bool {
        self.draining.is_triggered() || self.shutdown.is_triggered()
    }
}

/// Liveness: the process runs.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "Alive", body = model::Health)))]
pub async fn healthz() -> Json<model::Health> {
    Json(model::Health {
        status: "ok".into(),
    })
}

/// Readiness of this gateway pod (the Kubernetes readiness probe): it can serve (the UI,
/// chat, REST answering 503 while the core is down) unless it is shutting down. It does not
/// follow the core, so a Redis or jobs outage does not take every gateway out of its Service.
#[utoipa::path(get, path = "/readyz/local", tag = "ops",
    responses(
        (status = 200, description = "This gateway serves", body = model::Health),
        (status = 503, description = "This gateway is shutting down", body = model::Health),
    ))]
pub async fn readyz_local(State(st): State<AppState>) -> impl IntoResponse {
    if st.stopping() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(model::Health {
                status: "unavailable".into(),
            }),
        )
    } else {
        (
            StatusCode::OK,
            Json(model::Health {
                status: "ok".into(),
            }),
        )
    }
}

/// Readiness of the whole path: the jobs core answers its gRPC health check with SERVING (and
/// this gateway is not shutting down). For smoke tests and humans; probes use `/readyz/local`.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses(
        (status = 200, description = "The core is reachable", body = model::Health),
        (status = 503, description = "The core is unreachable or not serving", body = model::Health),
    ))]
pub async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    let mut req = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    req.set_timeout(Duration::from_secs(2));
    let serving = match st.health.clone().check(req).await {
        Ok(r) => r.into_inner().status == ServingStatus::Serving as i32,
        Err(e) => {
            tracing::debug!(error = %e, "readyz: core health check failed");
            false
        }
    };
    let (code, status) = if serving && !st.stopping() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        code,
        Json(model::Health {
            status: status.into(),
        }),
    )
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::ACCEPT,
                header::HeaderName::from_static("idempotency-key"),
                header::HeaderName::from_static("x-grpc-web"),
                header::HeaderName::from_static("x-user-agent"),
                header::HeaderName::from_static("grpc-timeout"),
                header::HeaderName::from_static("connect-protocol-version"),
                header::HeaderName::from_static("connect-timeout-ms"),
            ])
            .expose_headers([
                header::HeaderName::from_static("grpc-status"),
                header::HeaderName::from_static("grpc-message"),
                header::HeaderName::from_static("grpc-status-details-bin"),
                header::LOCATION,
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// The request span, continuing the request's W3C `traceparent` when it has one: method
/// and route template only. Never the raw URI: the chat SSE route
/// carries the caller's token in its query string, and ids would explode cardinality.
fn http_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("other", |p| p.as_str());
    let span = tracing::info_span!("http", method = %req.method(), route);
    // continue the browser's (or any client's) trace; the calls to the core carry it on
    // (`access::Forward` sends the current traceparent with each one)
    if let Some(tp) = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
    {
        pfc_telemetry::set_parent(&span, tp);
    }
    span
}

/// The whole HTTP surface. Tests drive it with `tower::ServiceExt::oneshot`.
pub fn app(state: AppState) -> Router {
    let rest = Router::new()
        .route("/jobs", post(rest::origin_submit))
        .route("/jobs/{job_id}", get(rest::origin_get))
        .route("/api/v1/jobs", post(rest::submit).get(rest::list))
        .route("/api/v1/jobs:batch", post(rest::submit_batch))
        .route("/api/v1/jobs/{job_id}", get(rest::get))
        .route("/api/v1/jobs/{job_id}/cancel", post(rest::cancel))
        .route("/api/v1/jobs/{job_id}/events", get(sse::job_events))
        .route("/api/v1/events", get(sse::all_events))
        .route("/api/v1/stats", get(rest::stats))
        .route("/api/v1/kinds", get(rest::kinds))
        .route("/api/v1/queues", get(queues::list))
        .route(
            "/api/v1/schedules",
            post(schedules::create).get(schedules::list),
        )
        .route(
            "/api/v1/schedules/{name}",
            get(schedules::get).delete(schedules::delete),
        )
        .route("/api/v1/schedules/{name}/pause", post(schedules::pause))
        .route("/api/v1/schedules/{name}/resume", post(schedules::resume))
        .route("/api/v1/queues/{name}/pause", post(queues::pause))
        .route("/api/v1/queues/{name}/resume", post(queues::resume))
        .route("/api/v1/queues/{name}/limits", post(queues::limits))
        .route("/api", any(rest::api_not_found))
        .route("/api/{*rest}", any(rest::api_not_found))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/readyz/local", get(readyz_local))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/api/v1/auth/config", get(access::auth_config))
        .merge(chat::router());
    let grpc = grpc_web::router(
        state.jobs_channel.clone(),
        state.auth_channel.clone(),
        state.chat_channel.clone(),
    );
    let mut router = rest
        .merge(grpc)
        .fallback(assets::serve)
        .method_not_allowed_fallback(rest::method_not_allowed);
    router = router.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        access::layer,
    ));
    if let Some(cors) = cors(&state.cors_origins) {
        router = router.layer(cors);
    }
    router
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(TraceLayer::new_for_http().make_span_with(http_span))
        .with_state(state)
}

/// Serves the gateway on `listener` until `shutdown` resolves, then drains: readiness fails
/// at once, requests are still served for the process's lame-duck delay
/// ([`pfc_runtime::ServeSettings`]), then new connections stop, SSE streams end, and in-flight
/// requests get `config.drain_timeout` to finish.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = AppState::new(&config)?;
    metrics::init();
    let sd = state.shutdown.clone();
    let draining = state.draining.clone();
    let stop = sd.clone();
    tokio::spawn(async move {
        shutdown.await;
        draining.trigger();
        pfc_runtime::lame_duck(pfc_runtime::settings()).await;
        stop.trigger();
    });
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, jobs = %config.jobs_url, "gateway listening");
    let server = axum::serve(listener, app(state)).with_graceful_shutdown(sd.wait());
    let drain = async {
        sd.wait().await;
        tokio::time::sleep(config.drain_timeout).await;
    };
    tokio::select! {
        res = server => res.context("gateway server failed")?,
        () = drain => tracing::warn!("gateway drain timeout; closing remaining connections"),
    }
    Ok(())
}
