//! The chat role (`pfc chat`): rooms with history and live push, and who is online.
//!
//! The origin kept messages in each replica's memory (two replicas, two histories), had the
//! browser poll every 2 s, and called auth over HTTP on every request. Here history and
//! presence live in Redis (any number of replicas agree), new messages are pushed over a gRPC
//! server stream that resumes after a message id without gap or duplicate, and tokens are
//! verified locally with the public key fetched once from auth (see `docs/chat.md`).
//!
//! # Layout
//! - [`Config`], [`Limits`] (`config.rs`): flags and `PFC_*` environment variables.
//! - [`ChatError`] (`error.rs`): the error enum and its one mapping to `tonic::Status`.
//! - [`MessageId`] (`ids.rs`): stream ids, ordered, parsed from clients.
//! - [`store`]: the [`ChatStore`] trait, [`RedisStore`] and [`MemoryStore`].
//! - [`hub`]: one reader per room per process, fanned out through a broadcast channel; one
//!   presence poller and one typing listener per room per process likewise.
//! - `follow.rs`: one subscriber's stream — gap-free messages, and the room's ephemeral
//!   events (join, leave, typing) when asked.
//! - [`RateLimiter`] (`ratelimit.rs`): per-user limits (sends, typing) counted in the store, so
//!   all replicas share one budget per user.
//! - [`grpc`]: `ChatService` and `PresenceService`.
//! - [`metrics`]: messages, deliveries, subscribers, presence.
//! - [`run`]: serve the role (services, health, reflection) until shutdown; [`ChatState`] and
//!   [`spawn_health`] let other servers compose the same services.
//! - [`embedded`] (`embedded.rs`): auth + chat inside `pfc dev`'s one gRPC server.

mod config;
mod embedded;
mod error;
mod follow;
pub mod grpc;
pub mod hub;
mod ids;
pub mod metrics;
mod ratelimit;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use pfc_proto::chat::v1::chat_service_server::ChatServiceServer;
use pfc_proto::chat::v1::presence_service_server::PresenceServiceServer;
use pfc_runtime::Shutdown;
use tokio::net::TcpListener;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

pub use config::{with_password, Config, Limits};
pub use embedded::{embedded, embedded_with, Embedded};
pub use error::ChatError;
pub use grpc::{validate_room, validate_text, ChatGrpc, ChatState, PresenceGrpc};
pub use hub::Hub;
pub use ids::MessageId;
pub use ratelimit::RateLimiter;
pub use store::{ChatStore, MemoryStore, RedisStore, Typing};

/// Names under which health reports the chat role's services.
pub const SERVICE_NAMES: [&str; 2] = [
    <ChatServiceServer<ChatGrpc> as tonic::server::NamedService>::NAME,
    <PresenceServiceServer<PresenceGrpc> as tonic::server::NamedService>::NAME,
];

/// Keeps the chat services' health (and, when `overall`, the `""` entry) in step with the
/// store and the verification keys: `SERVING` only while Redis answers and keys are loaded;
/// `NOT_SERVING` for good once `shutdown` triggers.
pub fn spawn_health(
    reporter: HealthReporter,
    store: Arc<dyn ChatStore>,
    keys: pfc_auth::Keys,
    shutdown: Shutdown,
    overall: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = None;
        loop {
            let ok = !shutdown.is_triggered()
                && keys.is_loaded()
                && matches!(
                    tokio::time::timeout(Duration::from_secs(1), store.ping()).await,
                    Ok(Ok(()))
                );
            if last != Some(ok) {
                let status = if ok {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                if !ok && last.is_some() && !shutdown.is_triggered() {
                    tracing::warn!("chat not serving: redis unreachable or keys not loaded");
                }
                for name in SERVICE_NAMES {
                    reporter.set_service_status(name, status).await;
                }
                if overall {
                    reporter.set_service_status("", status).await;
                }
                last = Some(ok);
            }
            if shutdown.is_triggered() {
                return;
            }
            tokio::select! {
                _ = shutdown.wait() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    })
}

/// Serves `ChatService` and `PresenceService` with health and reflection on `listener`, over
/// Redis, with keys fetched from auth, until `shutdown` resolves. Open streams end with
/// `UNAVAILABLE` when shutdown begins, and health turns `NOT_SERVING`.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store: Arc<dyn ChatStore> = Arc::new(
        RedisStore::open(
            &config.redis_url_with_password(),
            config.redis_cluster,
            config.limits.history_len,
        )
        .context("failed to set up redis")?,
    );
    let stop = Shutdown::new();
    stop.trigger_on(shutdown);
    let keys = pfc_auth::Keys::remote(
        config.auth_url.clone(),
        config.limits.keys_refresh,
        stop.wait(),
    );
    serve(listener, store, keys, config.limits, stop).await
}

/// Serves the chat role over any store and key source (tests use a [`MemoryStore`] or fixed
/// keys) until `stop` triggers.
pub async fn serve(
    listener: TcpListener,
    store: Arc<dyn ChatStore>,
    keys: pfc_auth::Keys,
    limits: Limits,
    stop: Shutdown,
) -> anyhow::Result<()> {
    metrics::init();
    let hub = Hub::new(store.clone(), stop.clone());
    let state = ChatState::new(hub, keys.clone(), limits);
    let (reporter, health) = tonic_health::server::health_reporter();
    let health_task = spawn_health(reporter.clone(), store, keys, stop.clone(), true);
    let routes =
        tonic::service::Routes::new(state.chat_server()).add_service(state.presence_server());
    let routes = pfc_runtime::grpc::with_health_and_reflection(routes, health)?;
    let services = SERVICE_NAMES.iter().map(|s| s.to_string()).collect();
    let result = pfc_runtime::grpc::serve(listener, routes, reporter, services, stop.wait())
        .await
        .context("chat gRPC server failed");
    let _ = health_task.await;
    result
}
