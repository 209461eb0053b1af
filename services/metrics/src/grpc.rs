//! Requests and latency of every gRPC server, as a tower layer ([`GrpcMetricsLayer`]) that
//! `pfc_runtime::grpc::serve` puts in front of every role's services.
//!
//! - `pfc_grpc_server_requests_total{service,method,code}`: one per call, counted when the
//!   call ends, with its final status (`grpc-status` of the response head for an answer
//!   without a body, else of the trailers; a call the client abandoned counts as `CANCELLED`).
//! - `pfc_grpc_server_request_duration_seconds{service,method}`: time to the response head,
//!   i.e. the whole call for unary RPCs and the time to open the stream for streaming ones
//!   (a watch open for an hour is not an hour of latency).
//!
//! `service` and `method` are the descriptor names (`pfc.jobs.v1.JobService`, `SubmitJob`);
//! an unknown path counts as `other`/`other` (see [`crate::labels::grpc_method`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::labels::{grpc_code_name, grpc_method};

type MethodLabels = [(&'static str, &'static str); 2];
type CodeLabels = [(&'static str, &'static str); 3];

struct Metrics {
    requests: Family<CodeLabels, Counter>,
    duration: crate::HistogramFamily<MethodLabels>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        requests: Family::default(),
        duration: Family::new_with_constructor(crate::latency_histogram),
    };
    crate::register(
        "pfc_grpc_server_requests",
        "gRPC calls served, by service, method and final status code",
        m.requests.clone(),
    );
    crate::register(
        "pfc_grpc_server_request_duration_seconds",
        "Time from a gRPC call's arrival to its response head, by service and method",
        m.duration.clone(),
    );
    m
});

/// Registers the gRPC families now, so they are exported before the first call.
pub fn init() {
    LazyLock::force(&METRICS);
}

/// Counts one call when dropped, with the code it learnt (or `CANCELLED`).
struct Recorder {
    service: &'static str,
    method: &'static str,
    code: Option<&'static str>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let code = self.code.unwrap_or("CANCELLED");
        METRICS
            .requests
            .get_or_create(&[
                ("service", self.service),
                ("method", self.method),
                ("code", code),
            ])
            .inc();
    }
}

/// Tower layer of [`GrpcMetrics`].
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner }
    }
}

/// Records every call passing through to `inner`.
#[derive(Clone, Debug)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let (service, method) = grpc_method(req.uri().path());
        let start = Instant::now();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let mut recorder = Recorder {
                service,
                method,
                code: None,
            };
            // dropped here on a transport error: counted as CANCELLED, like a vanished client
            let resp = answer.await?;
            METRICS
                .duration
                .get_or_create(&[("service", service), ("method", method)])
                .observe(start.elapsed().as_secs_f64());
            // trailers-only answer (every error tonic returns from a handler)
            if let Some(code) = resp.headers().get("grpc-status") {
                recorder.code = Some(grpc_code_name(code.as_bytes()));
            }
            Ok(resp.map(|inner| MeteredBody {
                inner,
                recorder: Some(recorder),
            }))
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that reports the call's status code from its trailers.
    pub struct MeteredBody<B> {
        #[pin]
        inner: B,
        recorder: Option<Recorder>,
    }
}

impl<B: Body> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(|t| t.get("grpc-status")) {
                    if let Some(r) = this.recorder.as_mut() {
                        r.code = Some(grpc_code_name(code.as_bytes()));
                    }
                    *this.recorder = None;
                }
            }
            Poll::Ready(None) => {
                // the end of the body: count the call now with what the head said (or
                // UNKNOWN for a body that ended without a status, which a client sees too)
                if let Some(mut r) = this.recorder.take() {
                    r.code.get_or_insert("UNKNOWN");
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, Service, ServiceExt};

    fn count(service: &'static str, method: &'static str, code: &'static str) -> u64 {
        METRICS
            .requests
            .get_or_create(&[("service", service), ("method", method), ("code", code)])
            .get()
    }

    /// A trailers-only error answer counts with its code as soon as the body is dropped,
    /// and an invented method is `other`.
    #[tokio::test]
    async fn counts_calls_by_method_and_code() {
        let inner = tower::service_fn(|_req: http::Request<()>| async move {
            let resp = http::Response::builder()
                .header("grpc-status", "5")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            Ok::<_, std::convert::Infallible>(resp)
        });
        let mut svc = GrpcMetricsLayer.layer(inner);
        let before = count("pfc.jobs.v1.JobService", "GetJob", "NOT_FOUND");
        let req = http::Request::builder()
            .uri("/pfc.jobs.v1.JobService/GetJob")
            .body(())
            .unwrap();
        let resp = svc.ready().await.unwrap().call(req).await.unwrap();
        drop(resp);
        assert_eq!(
            count("pfc.jobs.v1.JobService", "GetJob", "NOT_FOUND"),
            before + 1
        );
        let other_before = count("other", "other", "NOT_FOUND");
        let req = http::Request::builder()
            .uri("/pfc.jobs.v1.JobService/MadeUp")
            .body(())
            .unwrap();
        drop(svc.ready().await.unwrap().call(req).await.unwrap());
        assert_eq!(count("other", "other", "NOT_FOUND"), other_before + 1);
    }
}
