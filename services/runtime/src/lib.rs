//! Process plumbing shared by every pfc role.
//!
//! Every role's `run` function takes an already bound listener and a shutdown future, so
//! tests control both and `pfc dev` can compose several roles in one process. This crate
//! holds the pieces that glue those functions to a real process.
//!
//! # Layout
//! - [`shutdown_signal`]: resolves on SIGINT or SIGTERM.
//! - [`Shutdown`]: a cloneable "stop now" broadcast that many tasks can await.
//! - [`bind`]: binds a TCP listener with a useful error message; [`bind_default`] for a
//!   default address that may be taken, which falls back to an ephemeral port.
//! - [`grpc`]: serves a set of tonic services with health, reflection and graceful shutdown.
//! - [`trace_context`]: every gRPC call continues the caller's W3C trace context.
//! - [`message_limit`]: a request message over the size limit answers `RESOURCE_EXHAUSTED`.
//! - [`ServeSettings`]: process-wide serving settings (lame-duck delay, gRPC connection age)
//!   set once at startup by the `pfc` binary; [`lame_duck`] waits out the delay.

pub mod grpc;
pub mod message_limit;
pub mod trace_context;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

/// Resolves when the process receives SIGINT (Ctrl-C) or SIGTERM.
///
/// Kubernetes sends SIGTERM when it stops a pod and waits `terminationGracePeriodSeconds`
/// before SIGKILL, so every role starts draining when this resolves.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        // Only fails if the signal handler can't be installed, which means the process can't
        // be stopped gracefully anyway; waiting forever then lets SIGTERM below still work.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("received SIGINT, shutting down"),
        _ = terminate => tracing::info!("received SIGTERM, shutting down"),
    }
}

/// A cloneable shutdown broadcast: one [`Shutdown::trigger`], many waiters.
///
/// Roles composed in one process (`pfc dev`) share one of these so a single signal drains
/// them all; each waiter can also ask [`Shutdown::is_triggered`] without awaiting.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A new, untriggered shutdown.
    pub fn new() -> Self {
        let (tx, rx) = watch::channel(false);
        Self { tx, rx }
    }

    /// Starts the shutdown; every current and future [`Shutdown::wait`] resolves.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// True once [`Shutdown::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once the shutdown is triggered.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.rx.clone();
        async move {
            // An error means every sender is gone, which is as good as a shutdown.
            let _ = rx.wait_for(|v| *v).await;
        }
    }

    /// Triggers this shutdown when `signal` resolves (e.g. [`shutdown_signal`]).
    pub fn trigger_on(&self, signal: impl Future<Output = ()> + Send + 'static) {
        let this = self.clone();
        tokio::spawn(async move {
            signal.await;
            this.trigger();
        });
    }
}

/// How every server of this process behaves around shutdown and connection reuse. The `pfc`
/// binary sets it once from `PFC_SHUTDOWN_DELAY` / `PFC_GRPC_MAX_CONNECTION_AGE` before any
/// role starts ([`configure`]); tests and `pfc dev` keep the defaults (no delay, no age limit).
///
/// It is process-wide rather than part of each role's `Config` because every server of the
/// process (gRPC roles through [`grpc::serve`], the gateway) must follow the same rollout
/// contract as the Kubernetes pod they run in, whichever role crate starts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeSettings {
    /// Lame-duck delay: after the shutdown signal, servers report NOT_SERVING (gRPC health,
    /// `/readyz`) but keep accepting for this long before they drain, so load balancers and
    /// Kubernetes endpoint updates (asynchronous) stop sending traffic first.
    pub shutdown_delay: Duration,
    /// gRPC connections are closed gracefully (GOAWAY, in-flight calls finish) after this age,
    /// so long-lived HTTP/2 clients such as the gateway reconnect and spread over new replicas
    /// behind a Service. `None`: no limit.
    pub max_connection_age: Option<Duration>,
}

static SETTINGS: OnceLock<ServeSettings> = OnceLock::new();

/// Sets the process-wide [`ServeSettings`]; the first call wins (returns false afterwards).
pub fn configure(settings: ServeSettings) -> bool {
    SETTINGS.set(settings).is_ok()
}

/// The process-wide [`ServeSettings`] ([`Default`] until [`configure`] is called).
pub fn settings() -> ServeSettings {
    SETTINGS.get().copied().unwrap_or_default()
}

/// Waits out the lame-duck delay of `settings` (returns at once when it is zero).
pub async fn lame_duck(settings: ServeSettings) {
    if !settings.shutdown_delay.is_zero() {
        tracing::info!(
            delay = ?settings.shutdown_delay,
            "lame duck: not ready, still serving while endpoints are removed"
        );
        tokio::time::sleep(settings.shutdown_delay).await;
    }
}

/// Binds a TCP listener, saying which address failed and why.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("failed to bind {addr}: {e}")))
}

/// Binds `addr`, a *default* address, or the same IP with an ephemeral port when `addr` is in
/// use, logging the address it got.
///
/// For listeners nobody dials by a fixed address unless told to, such as a worker's health
/// port: two `pfc worker` on one host must both start with their defaults. An address the
/// operator chose (flag or environment) must use [`bind`] and fail loudly instead: Kubernetes
/// probes and container healthchecks rely on it.
pub async fn bind_default(addr: SocketAddr) -> std::io::Result<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(listener),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let listener = bind(SocketAddr::new(addr.ip(), 0)).await?;
            tracing::warn!(
                default = %addr,
                addr = %listener.local_addr()?,
                "default address in use (another process of this role on this host?); \
                 listening on an ephemeral port instead"
            );
            Ok(listener)
        }
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!("failed to bind {addr}: {e}"),
        )),
    }
}

/// Turns a listener into the incoming-connection stream tonic's `serve_with_incoming*` wants,
/// with `TCP_NODELAY` set (gRPC is latency-sensitive; Nagle adds up to 40 ms per message).
pub fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> + Send + 'static {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
        let s = s?;
        s.set_nodelay(true)?;
        Ok(s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A triggered shutdown wakes waiters created before and after the trigger.
    #[tokio::test]
    async fn shutdown_wakes_all_waiters() {
        let s = Shutdown::new();
        let early = s.wait();
        assert!(!s.is_triggered());
        s.trigger();
        early.await;
        s.wait().await;
        assert!(s.is_triggered());
    }

    /// A default address that is taken falls back to another port on the same IP, while an
    /// explicit one fails with "address in use".
    #[tokio::test]
    async fn taken_default_falls_back_explicit_fails() {
        let holder = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let taken = holder.local_addr().unwrap();
        let fallback = bind_default(taken).await.unwrap();
        let got = fallback.local_addr().unwrap();
        assert_eq!(got.ip(), taken.ip());
        assert_ne!(got.port(), taken.port());
        let err = bind(taken).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains(&taken.to_string()), "{err}");
        // a free default is used as is
        drop(holder);
        drop(fallback);
        let again = bind_default(taken).await.unwrap();
        assert_eq!(again.local_addr().unwrap(), taken);
    }
}
