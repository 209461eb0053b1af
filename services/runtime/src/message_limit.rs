//! A request message over a server's size limit answers `RESOURCE_EXHAUSTED` with a message
//! naming the limit.
//!
//! tonic refuses such a message as soon as it reads the 5-byte length prefix, before buffering
//! any of it (which is what keeps a 4 GiB prefix from allocating 4 GiB), but it answers
//! `OUT_OF_RANGE`. gRPC's status-code guide reserves that for values past the end of a valid
//! range, and grpc-go, grpc-java and grpc-core answer `RESOURCE_EXHAUSTED` for a message over
//! the limit; clients, proxies and the gateway's HTTP mapping expect that code.
//!
//! The codec cannot fix it: tonic compares the prefix with the limit before the decoder sees a
//! byte. So [`MessageLimitLayer`], a tower layer every pfc gRPC server runs (see
//! [`crate::grpc::serve`]), rewrites that one status on the way out. tonic answers it
//! "trailers-only" (the status in the response headers, empty body) and keeps the `Status` in
//! the response's extensions, so the layer matches on the `Status` itself, not on wire bytes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::{Code, Status};

/// How every message of [`too_large`] starts; [`is_message_too_large`] looks for it.
pub const MESSAGE_TOO_LARGE: &str = "request message too large";

/// How tonic's own message for a message over the decode limit starts (tonic 0.14:
/// "Error, decoded message length too large: found N bytes, the limit is: M bytes").
const TONIC_DECODE_LIMIT: &str = "Error, decoded message length too large";

/// The status for a request message of `found` bytes over a limit of `limit` bytes.
pub fn too_large(found: usize, limit: usize) -> Status {
    Status::resource_exhausted(format!(
        "{MESSAGE_TOO_LARGE}: {found} bytes, the limit is {limit} bytes"
    ))
}

/// True for the status a pfc server answers to a request message over its size limit (the
/// gateway turns it into HTTP 413, not the 429 of other `RESOURCE_EXHAUSTED` answers).
pub fn is_message_too_large(status: &Status) -> bool {
    status.code() == Code::ResourceExhausted && status.message().starts_with(MESSAGE_TOO_LARGE)
}

/// The `RESOURCE_EXHAUSTED` status for tonic's over-the-limit `OUT_OF_RANGE`; `None` for any
/// other status.
pub fn from_tonic(status: &Status) -> Option<Status> {
    if status.code() != Code::OutOfRange {
        return None;
    }
    let rest = status.message().strip_prefix(TONIC_DECODE_LIMIT)?;
    let number_after = |label: &str| -> Option<usize> {
        let tail = &rest[rest.find(label)? + label.len()..];
        let digits: String = tail
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    Some(match (number_after("found"), number_after("limit is:")) {
        (Some(found), Some(limit)) => too_large(found, limit),
        // a reworded tonic message: keep it whole, it still names the limit
        _ => Status::resource_exhausted(format!("{MESSAGE_TOO_LARGE}: {}", status.message())),
    })
}

/// Tower layer of [`MessageLimit`].
#[derive(Clone, Copy, Debug, Default)]
pub struct MessageLimitLayer;

impl<S> tower::Layer<S> for MessageLimitLayer {
    type Service = MessageLimit<S>;

    fn layer(&self, inner: S) -> MessageLimit<S> {
        MessageLimit { inner }
    }
}

/// Rewrites tonic's over-the-limit `OUT_OF_RANGE` answers to `RESOURCE_EXHAUSTED`; every
/// other response passes unchanged.
#[derive(Clone, Debug)]
pub struct MessageLimit<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for MessageLimit<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let answer = self.inner.call(req);
        Box::pin(async move { answer.await.map(rewrite) })
    }
}

/// `resp` with its status rewritten by [`from_tonic`] when that applies.
fn rewrite<B>(mut resp: http::Response<B>) -> http::Response<B> {
    let Some(status) = resp.extensions().get::<Status>().and_then(from_tonic) else {
        return resp;
    };
    // add_header only fails on a message that is not a valid header value once
    // percent-encoded, and percent-encoding leaves only visible ASCII
    if status.add_header(resp.headers_mut()).is_ok() {
        resp.extensions_mut().insert(status);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, Service, ServiceExt};

    /// Answers every request with `status`, the way tonic answers a refused request.
    async fn through_layer(status: Status) -> http::Response<()> {
        let inner = tower::service_fn(move |_req: http::Request<()>| {
            let status = status.clone();
            async move { Ok::<_, std::convert::Infallible>(status.into_http::<()>()) }
        });
        let mut svc = MessageLimitLayer.layer(inner);
        svc.ready().await.unwrap();
        svc.call(http::Request::new(())).await.unwrap()
    }

    fn status_of(resp: &http::Response<()>) -> Status {
        Status::from_header_map(resp.headers()).expect("grpc-status header")
    }

    /// tonic's decode-limit answer becomes RESOURCE_EXHAUSTED naming both sizes, in the
    /// headers (what clients read) and in the extensions.
    #[tokio::test]
    async fn decode_limit_becomes_resource_exhausted() {
        let tonic_says = Status::out_of_range(
            "Error, decoded message length too large: found 5242885 bytes, the limit is: 4194304 bytes",
        );
        let resp = through_layer(tonic_says).await;
        let s = status_of(&resp);
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(
            s.message(),
            "request message too large: 5242885 bytes, the limit is 4194304 bytes"
        );
        assert!(is_message_too_large(&s));
        let ext = resp.extensions().get::<Status>().unwrap();
        assert_eq!(ext.code(), Code::ResourceExhausted);
    }

    /// Other statuses pass unchanged, including an OUT_OF_RANGE a handler chose.
    #[tokio::test]
    async fn other_statuses_pass() {
        for status in [
            Status::out_of_range("page 9 is past the end"),
            Status::resource_exhausted("queue full"),
            Status::invalid_argument("text is empty"),
        ] {
            let resp = through_layer(status.clone()).await;
            let s = status_of(&resp);
            assert_eq!((s.code(), s.message()), (status.code(), status.message()));
            assert!(!is_message_too_large(&s));
        }
    }

    /// A reworded tonic message still maps, keeping the original text.
    #[test]
    fn reworded_message_is_kept() {
        let s = from_tonic(&Status::out_of_range(
            "Error, decoded message length too large (over 10 bytes)",
        ))
        .unwrap();
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert!(s.message().contains("over 10 bytes"), "{}", s.message());
    }
}
