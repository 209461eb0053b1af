//! Every gRPC call continues its caller's trace: [`TraceContextLayer`] (run by
//! [`crate::grpc::serve`] in every role) opens a `grpc` span per call, named by its method,
//! whose parent is the W3C `traceparent` the request carries (the gateway sends it, as do
//! OpenTelemetry-instrumented clients). The handlers' own spans (`SubmitJob`, …) are its
//! children, so a REST request, the core's work and — through the traceparent stored with the
//! job — the worker's job span are one trace.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::Instrument;

/// Tower layer of [`TraceContext`].
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContextLayer;

impl<S> tower::Layer<S> for TraceContextLayer {
    type Service = TraceContext<S>;

    fn layer(&self, inner: S) -> TraceContext<S> {
        TraceContext { inner }
    }
}

/// Runs every call of `inner` in a span continuing the request's trace context.
#[derive(Clone, Debug)]
pub struct TraceContext<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for TraceContext<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        // the method path only: a bounded set, and never anything the caller sent as data
        let (service, method) = pfc_metrics::labels::grpc_method(req.uri().path());
        let span = tracing::info_span!("grpc", rpc.service = service, rpc.method = method);
        if let Some(tp) = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
        {
            pfc_telemetry::set_parent(&span, tp);
        }
        let answer = span.in_scope(|| self.inner.call(req));
        Box::pin(answer.instrument(span))
    }
}
