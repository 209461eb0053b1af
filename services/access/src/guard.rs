//! [`GuardLayer`]: a tower layer in front of gRPC routes that checks every call's credential
//! against [`crate::policy`] before the service sees it.
//!
//! A layer, not a tonic interceptor per service, so one table covers every service on the
//! server (including ones added later) and an unmapped method is refused by default. Refusals
//! are trailers-only gRPC responses (`grpc-status` in the headers), which gRPC-web proxies
//! translate like any other status.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tower::{Layer, Service};

use crate::policy::{rule, Rule};
use crate::Authenticator;

/// Wraps services in a [`Guard`].
#[derive(Clone, Debug)]
pub struct GuardLayer {
    auth: Arc<Authenticator>,
}

impl GuardLayer {
    /// A layer checking credentials with `auth`.
    pub fn new(auth: Authenticator) -> Self {
        Self {
            auth: Arc::new(auth),
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// A service that runs `inner` only for calls whose credential holds the method's scope;
/// the verified [`crate::Caller`] goes into the request's extensions.
#[derive(Clone, Debug)]
pub struct Guard<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

impl<S, B, R> Service<http::Request<B>> for Guard<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The ready service is `self.inner`; keep it for this call, leave a clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            let path = req.uri().path().to_string();
            let scope = match rule(&path) {
                Rule::Open => return inner.call(req).await,
                Rule::Requires(scope) => scope,
                Rule::Deny => {
                    tracing::warn!(%path, "refused: method not in the access table");
                    let status = Status::permission_denied(format!(
                        "permission denied: {path} is not open to any scope"
                    ));
                    return Ok(status.into_http());
                }
            };
            match auth.check(req.headers(), scope).await {
                Ok(caller) => {
                    req.extensions_mut().insert(caller);
                    inner.call(req).await
                }
                Err(e) => {
                    tracing::info!(%path, reason = %e, "call refused");
                    Ok(Status::from(e).into_http())
                }
            }
        })
    }
}

/// `routes` behind a [`GuardLayer`]. Services added to the result afterwards (health and
/// reflection, chat in `pfc dev`) are not behind it.
pub fn guard_routes(routes: tonic::service::Routes, layer: GuardLayer) -> tonic::service::Routes {
    tonic::service::Routes::from(routes.into_axum_router().layer(layer))
}
