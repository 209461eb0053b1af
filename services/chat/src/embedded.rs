//! Auth and chat inside another process's gRPC server (`pfc dev`): an ephemeral signing key,
//! tokens verified in-process (no JWKS round trip), and the chat store in memory or in Redis.

use std::sync::Arc;

use pfc_auth::{AuthGrpc, Issuer, Keys};
use pfc_proto::auth::v1::auth_service_server::AuthServiceServer;
use pfc_proto::chat::v1::chat_service_server::ChatServiceServer;
use pfc_proto::chat::v1::presence_service_server::PresenceServiceServer;
use pfc_runtime::Shutdown;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::{ChatGrpc, ChatState, ChatStore, Hub, Limits, MemoryStore, PresenceGrpc, RedisStore};

/// The services to add to the host's `tonic::service::Routes`.
pub struct Embedded {
    /// `pfc.auth.v1.AuthService`.
    pub auth: AuthServiceServer<AuthGrpc>,
    /// `pfc.chat.v1.ChatService`.
    pub chat: ChatServiceServer<ChatGrpc>,
    /// `pfc.chat.v1.PresenceService`.
    pub presence: PresenceServiceServer<PresenceGrpc>,
    /// The issuer (ephemeral key), e.g. for a gateway in the same process.
    pub issuer: Arc<Issuer>,
}

impl Embedded {
    /// Adds the three services to `routes`.
    pub fn add_to(self, routes: tonic::service::Routes) -> tonic::service::Routes {
        routes
            .add_service(self.auth)
            .add_service(self.chat)
            .add_service(self.presence)
    }
}

/// Builds auth + chat for one process. `redis` (a server or a cluster, password already
/// applied) selects the Redis store, else memory. Health of the three services is kept on `reporter` (not the
/// overall `""` entry, which the host owns) and turns `NOT_SERVING` when `stop` triggers.
pub fn embedded(
    redis: Option<pfc_redis::Backend>,
    limits: Limits,
    reporter: HealthReporter,
    stop: Shutdown,
) -> anyhow::Result<Embedded> {
    embedded_with(redis, limits, pfc_auth::Grants::default(), reporter, stop)
}

/// [`embedded`] with Login tokens carrying the scopes `grants` gives (`pfc dev`).
pub fn embedded_with(
    redis: Option<pfc_redis::Backend>,
    limits: Limits,
    grants: pfc_auth::Grants,
    reporter: HealthReporter,
    stop: Shutdown,
) -> anyhow::Result<Embedded> {
    crate::metrics::init();
    let issuer =
        Arc::new(pfc_auth::issuer_from_config(&pfc_auth::Config::default())?.with_grants(grants));
    let store: Arc<dyn ChatStore> = match redis {
        Some(backend) => Arc::new(RedisStore::on(backend, limits.history_len)),
        None => Arc::new(MemoryStore::new(limits.history_len)),
    };
    let keys = Keys::fixed(issuer.verifier());
    let hub = Hub::new(store.clone(), stop.clone());
    let state = ChatState::new(hub, keys.clone(), limits);
    crate::spawn_health(reporter.clone(), store, keys, stop.clone(), false);
    tokio::spawn(async move {
        let name = <AuthServiceServer<AuthGrpc> as tonic::server::NamedService>::NAME;
        reporter
            .set_service_status(name, ServingStatus::Serving)
            .await;
        stop.wait().await;
        reporter
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    });
    Ok(Embedded {
        auth: AuthGrpc::new(issuer.clone()).into_server(),
        chat: state.chat_server(),
        presence: state.presence_server(),
        issuer,
    })
}
