//! The metrics listener: `GET /metrics` on its own port (`--metrics-addr`), so scraping
//! needs no access to a role's API port and works the same for gRPC-only roles.

use std::future::Future;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

/// `GET /metrics` answering [`crate::render`]; the gateway merges it into its own router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::CONTENT_TYPE)],
        crate::render(),
    )
}

/// Serves [`router`] on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics listening");
    }
    axum::serve(listener, router::<()>())
        .with_graceful_shutdown(shutdown)
        .await
}
