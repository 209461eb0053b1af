//! gRPC-web for every public pfc service: a generic, byte-level proxy to the gRPC backends.
//!
//! `tonic_web::GrpcWebLayer` turns a browser's gRPC-web request (HTTP/1.1 or 2, base64 or
//! binary, trailers in the body) into a plain gRPC request; [`GrpcProxy`] then forwards that
//! request as is — path, metadata (`authorization`, `grpc-timeout`, …) and the
//! length-prefixed message frames — over an HTTP/2 `tonic::transport::Channel` to the service
//! that owns it, and streams the answer back, trailers included. Nothing is decoded, so unary
//! and server-streaming methods work the same way and a new RPC needs no gateway change.
//!
//! Which services exist comes from the proto crate itself ([`pfc_proto::FILE_DESCRIPTOR_SET`]):
//! every service of a `pfc.*` package is mounted at `/{package}.{Service}/{method}`, and the
//! package names the backend (`pfc.jobs.*` → jobs, `pfc.auth.*` → auth, `pfc.chat.*` → chat).
//! Routing is by path, like any axum route; there is no content-type multiplexing. Each known
//! method has its own route (its metrics label); unknown methods share their service's template.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{header, HeaderName, Request, Response, Version};
use axum::Router;
use prost::Message;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::{Layer, ServiceExt};

/// Forwards gRPC requests, unchanged, to one backend channel.
#[derive(Clone, Debug)]
pub struct GrpcProxy {
    channel: Channel,
}

impl GrpcProxy {
    /// A proxy to `channel`.
    pub fn new(channel: Channel) -> Self {
        Self { channel }
    }
}

/// Connection-level headers that HTTP/2 forbids (RFC 9113 §8.2.2) and that must not be
/// forwarded; a browser's HTTP/1.1 request usually carries `connection: keep-alive`.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
];

impl tower::Service<Request<Body>> for GrpcProxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness of the channel is awaited per call (below), so a busy or reconnecting
        // backend answers UNAVAILABLE to that call instead of stalling the router.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let channel = self.channel.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            for h in &HOP_BY_HOP {
                parts.headers.remove(h);
            }
            parts.version = Version::HTTP_2;
            // The channel adds the backend's scheme and authority; keep only the path.
            if let Some(pq) = parts.uri.path_and_query().cloned() {
                parts.uri = pq.as_str().parse().unwrap_or_default();
            }
            let path = parts.uri.path().to_string();
            let body = Body::new(UnknownLength(body));
            match channel.oneshot(Request::from_parts(parts, body)).await {
                Ok(resp) => Ok(resp),
                Err(err) => {
                    tracing::warn!(%path, error = %err, "grpc-web backend call failed");
                    Ok(tonic::Status::unavailable("backend unavailable").into_http())
                }
            }
        })
    }
}

/// A request body that does not announce its length.
///
/// tonic-web's decoder for `application/grpc-web-text` passes on the size hint of the base64
/// body it decodes, which is larger than the decoded frames; hyper would turn that hint into a
/// `content-length` on the HTTP/2 request and the backend would reset the stream
/// ("content-length underflow"). gRPC never needs the length up front, so hide it.
struct UnknownLength(Body);

impl http_body::Body for UnknownLength {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }
}

/// The backend a `pfc.*` package is served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Backend {
    /// `pfc.jobs.*` (PFC_JOBS_URL).
    Jobs,
    /// `pfc.auth.*` (PFC_AUTH_URL).
    Auth,
    /// `pfc.chat.*` (PFC_CHAT_URL).
    Chat,
}

impl Backend {
    /// The backend of a proto package, if it is a public pfc one.
    pub fn for_package(package: &str) -> Option<Self> {
        let rest = package.strip_prefix("pfc.")?;
        match rest.split('.').next()? {
            "jobs" => Some(Backend::Jobs),
            "auth" => Some(Backend::Auth),
            "chat" => Some(Backend::Chat),
            _ => None,
        }
    }
}

/// Every public gRPC service (`package.Service`) in the proto crate, with its backend.
pub fn public_services() -> Vec<(String, Backend)> {
    // The descriptor set is generated at build time by the proto crate; failing to decode it
    // would be a build bug, and then no service is mounted (logged below) rather than a panic.
    let fds = match prost_types::FileDescriptorSet::decode(pfc_proto::FILE_DESCRIPTOR_SET) {
        Ok(fds) => fds,
        Err(e) => {
            tracing::error!(error = %e, "cannot decode the proto descriptor set; gRPC-web is off");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for file in fds.file {
        let package = file.package().to_string();
        let Some(backend) = Backend::for_package(&package) else {
            continue;
        };
        for svc in &file.service {
            out.push((format!("{package}.{}", svc.name()), backend));
        }
    }
    out.sort();
    out
}

/// A router serving gRPC-web for every public service.
pub fn router<S: Clone + Send + Sync + 'static>(
    jobs: Channel,
    auth: Channel,
    chat: Channel,
) -> Router<S> {
    let mut router = Router::new();
    for (service, backend) in public_services() {
        let channel = match backend {
            Backend::Jobs => jobs.clone(),
            Backend::Auth => auth.clone(),
            Backend::Chat => chat.clone(),
        };
        let svc = tonic_web::GrpcWebLayer::new().layer(GrpcProxy::new(channel));
        // One route per known method, so the metrics label each by its own path; the
        // `{method}` template catches invented names (the backend answers UNIMPLEMENTED)
        // and labels them all alike, keeping the number of series bounded.
        let prefix = format!("/{service}/");
        for path in pfc_metrics::labels::grpc_method_paths() {
            if path.strip_prefix(&prefix).is_some_and(|m| !m.contains('/')) {
                router = router.route_service(path, svc.clone());
            }
        }
        router = router.route_service(&format!("/{service}/{{method}}"), svc);
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packages route to their backend; non-pfc packages are not exposed.
    #[test]
    fn packages_pick_backends() {
        assert_eq!(Backend::for_package("pfc.jobs.v1"), Some(Backend::Jobs));
        assert_eq!(Backend::for_package("pfc.auth.v1"), Some(Backend::Auth));
        assert_eq!(Backend::for_package("pfc.chat.v1"), Some(Backend::Chat));
        assert_eq!(Backend::for_package("grpc.health.v1"), None);
        assert_eq!(Backend::for_package("google.protobuf"), None);
    }

    /// The job service is among the mounted services, discovered from the descriptors.
    #[test]
    fn job_service_is_public() {
        let services = public_services();
        assert!(services
            .iter()
            .any(|(s, b)| s == "pfc.jobs.v1.JobService" && *b == Backend::Jobs));
    }
}
