//! Serving gRPC the same way in every role: health, reflection (v1 and v1alpha, so grpcurl
//! and `buf curl` work without .proto files), TCP_NODELAY, `RESOURCE_EXHAUSTED` for request
//! messages over the size limit ([`crate::message_limit`]), and a shutdown that first turns
//! health to `NOT_SERVING` so load balancers stop sending new calls, then drains; every call
//! is counted and timed by [`pfc_metrics::grpc`].

use std::future::Future;

use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

/// Health service name that is SERVING as long as the process runs (liveness probes).
pub const LIVENESS: &str = "liveness";

/// Why a gRPC server could not be set up or stopped abnormally; the cause stays attached as
/// the error's `source()`, so `{:#}` and error reporters show the whole chain.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A reflection service could not be built from the descriptor sets.
    #[error("failed to build the gRPC reflection service ({version})")]
    Reflection {
        /// `v1` or `v1alpha`.
        version: &'static str,
        /// What the reflection builder said.
        #[source]
        source: tonic_reflection::server::Error,
    },
    /// The server itself failed (accepting, serving).
    #[error("gRPC server failed")]
    Transport(#[from] tonic::transport::Error),
}

/// Adds the health service and both reflection versions to `routes`.
pub fn with_health_and_reflection(
    routes: Routes,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
) -> Result<Routes, ServeError> {
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pfc_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|source| ServeError::Reflection {
            version: "v1",
            source,
        })?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pfc_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|source| ServeError::Reflection {
            version: "v1alpha",
            source,
        })?;
    Ok(routes
        .add_service(health)
        .add_service(v1)
        .add_service(v1alpha))
}

/// Serves `routes` (which must already include health, see [`with_health_and_reflection`])
/// on `listener` until `shutdown` resolves; then marks every name in `services` (and the
/// overall `""`) `NOT_SERVING`, keeps accepting for the lame-duck delay of the process's
/// [`crate::ServeSettings`], and drains in-flight calls. Connections older than the
/// settings' `max_connection_age` are closed gracefully so clients rebalance.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    reporter: HealthReporter,
    services: Vec<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with(
        crate::settings(),
        listener,
        routes,
        reporter,
        services,
        shutdown,
    )
    .await
}

/// [`serve`] with explicit [`crate::ServeSettings`] instead of the process-wide ones.
pub async fn serve_with(
    settings: crate::ServeSettings,
    listener: TcpListener,
    routes: Routes,
    reporter: HealthReporter,
    services: Vec<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, "gRPC server listening"),
        Err(e) => tracing::info!(error = %e, "gRPC server listening (address unknown)"),
    }
    // "liveness" answers SERVING while the process runs, whatever its dependencies do:
    // Kubernetes liveness probes ask for it, so a Redis outage makes pods unready, not restarted
    reporter
        .set_service_status(LIVENESS, ServingStatus::Serving)
        .await;
    let drain = async move {
        shutdown.await;
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for s in &services {
            reporter
                .set_service_status(s, ServingStatus::NotServing)
                .await;
        }
        // Lame duck: readiness is already failing, new connections and calls still work
        // until the endpoint removal has reached every client and proxy.
        crate::lame_duck(settings).await;
        tracing::info!("gRPC server draining");
    };
    let mut server = Server::builder();
    if let Some(age) = settings.max_connection_age {
        server = server.max_connection_age(age);
    }
    pfc_metrics::grpc::init();
    server
        // outermost: the metrics see the status the client gets (after the rewrite below)
        .layer(pfc_metrics::grpc::GrpcMetricsLayer)
        .layer(crate::trace_context::TraceContextLayer)
        .layer(crate::message_limit::MessageLimitLayer)
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .add_routes(routes)
        .serve_with_incoming_shutdown(crate::incoming(listener), drain)
        .await
        .map_err(ServeError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A setup failure keeps its cause as `source()` (it used to be flattened into a string).
    #[test]
    fn serve_errors_keep_their_source() {
        let source = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(b"\xff\xff\xff")
            .build_v1()
            .err()
            .expect("garbage descriptors are refused");
        let e = ServeError::Reflection {
            version: "v1",
            source,
        };
        assert!(std::error::Error::source(&e).is_some());
        assert!(e.to_string().contains("reflection"));
    }
}
