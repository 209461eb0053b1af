//! Access control at the HTTP edge (issue 17, docs/security.md).
//!
//! Every REST and SSE route of the jobs API (`/jobs…`, `/api/…`, `/metrics`) needs a
//! credential when the gateway runs with `--auth-required`; what stays open is health
//! (`/healthz`, `/readyz…`), the API description (`/openapi.json`, `/docs`), the UI's static
//! files, Login (`/login`, `/verify`, `/api/v1/auth/…`) and the chat routes, which send their
//! token to the chat service that checks it on every call.
//!
//! The gateway **authenticates** Login tokens locally (signature, expiry, issuer: the same
//! `pfc_auth::Keys` verifier chat and the jobs server use) so a forged or expired token is a
//! 401 without a backend round trip, and **forwards** the caller's credential to the jobs
//! core on every gRPC call it makes for the request. Which scope a call needs is decided in
//! one place, the jobs server's method table (`pfc_access::policy`): its `PERMISSION_DENIED`
//! comes back as a 403 through the one gRPC → HTTP mapping. API keys are passed through
//! unchecked here (their hashes live in the job store, which the gateway never reads); the
//! jobs server verifies them. gRPC-web requests carry their `authorization` metadata to the
//! backend unchanged and are checked there.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tonic::service::Interceptor;

use crate::{ApiError, AppState};

tokio::task_local! {
    /// The credential of the HTTP request being handled, for the gRPC calls it makes.
    static CREDENTIAL: Option<Arc<str>>;
}

/// Adds the current request's credential (if any) as `authorization: Bearer …`, and the current
/// trace context as `traceparent`, to every
/// call of the client it is installed on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Forward;

impl Interceptor for Forward {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let credential = CREDENTIAL.try_with(|c| c.clone()).ok().flatten();
        if let Some(c) = credential {
            let value = format!("Bearer {c}")
                .parse()
                .map_err(|_| tonic::Status::unauthenticated("credential is not printable ASCII"))?;
            req.metadata_mut().insert("authorization", value);
        }
        // the trace of the HTTP request goes on into the core (pfc_runtime continues it)
        if let Some(tp) = pfc_telemetry::current_traceparent().and_then(|t| t.parse().ok()) {
            req.metadata_mut().insert("traceparent", tp);
        }
        Ok(req)
    }
}

/// True when `path` is part of the jobs API and so needs a credential when auth is on.
/// Everything not listed as open under `/api/` is guarded, so a new route is closed by
/// default.
pub fn is_guarded(path: &str) -> bool {
    let open = matches!(
        path,
        "/healthz" | "/readyz" | "/readyz/local" | "/openapi.json" | "/login" | "/verify"
    ) || path.starts_with("/api/v1/auth/")
        || path == "/api/v1/rooms"
        || path.starts_with("/api/v1/rooms/");
    if open {
        return false;
    }
    path == "/jobs"
        || path.starts_with("/jobs/")
        || path == "/metrics"
        || path == "/api"
        || path.starts_with("/api/")
}

/// The credential of a request: `Authorization: Bearer …`, or for SSE routes (an
/// `EventSource` cannot set headers) the `access_token` query parameter.
pub fn credential_of(req: &Request) -> Option<String> {
    if let Some(c) = pfc_access::bearer_of(req.headers()) {
        return Some(c.to_string());
    }
    if !req.uri().path().ends_with("/events") {
        return None;
    }
    req.uri().query()?.split('&').find_map(|pair| {
        let v = pair.strip_prefix("access_token=")?;
        (!v.is_empty()).then(|| v.to_string())
    })
}

fn unauthenticated(message: String) -> Response {
    let mut resp = ApiError::Unauthenticated(message).into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// The middleware: refuses guarded routes without a valid credential (401) when auth is on,
/// and runs the request with its credential available to [`Forward`].
pub async fn layer(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let credential = credential_of(&req);
    if let Some(auth) = st.access.as_ref() {
        if is_guarded(req.uri().path()) {
            match credential.as_deref() {
                None => {
                    return unauthenticated(pfc_access::AccessError::Missing.to_string());
                }
                Some(c) if !c.starts_with(pfc_access::apikeys::PREFIX) => {
                    if let Err(e) = auth.authenticate(c).await {
                        return match e {
                            pfc_access::AccessError::Unavailable(m) => {
                                tracing::warn!(reason = %m, "cannot verify tokens yet");
                                ApiError::Unavailable.into_response()
                            }
                            other => unauthenticated(other.to_string()),
                        };
                    }
                }
                Some(_) => {} // an API key: the jobs server checks it
            }
        }
    }
    CREDENTIAL
        .scope(credential.map(Arc::from), next.run(req))
        .await
}

/// What the UI needs to know before it shows anything.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AuthConfig {
    /// True when the jobs API needs a credential (sign in first).
    pub auth_required: bool,
}

/// Whether the jobs API needs a credential (the UI asks before it shows the sign-in page).
#[utoipa::path(get, path = "/api/v1/auth/config", tag = "auth",
    responses((status = 200, description = "Access control settings", body = AuthConfig)))]
pub async fn auth_config(State(st): State<AppState>) -> Json<AuthConfig> {
    Json(AuthConfig {
        auth_required: st.access.is_some(),
    })
}

/// Adds the bearer security requirement and the 401/403 responses to every guarded path of
/// the OpenAPI document, so `/docs` has an "Authorize" button and documents the errors.
pub fn document(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{Ref, ResponseBuilder};
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT (Login) or API key (pfc_…)")
                .description(Some(
                    "A Login token or an API key. Needed on the jobs API when the server runs \
                     with PFC_AUTH_REQUIRED (docs/security.md).",
                ))
                .build(),
        ),
    );
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        if !is_guarded(path) {
            continue;
        }
        let ops = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            op.security = Some(vec![SecurityRequirement::new(
                "bearer",
                Vec::<String>::new(),
            )]);
            op.responses.responses.entry("401".into()).or_insert_with(|| {
                error("Missing, malformed, expired or revoked credential (with PFC_AUTH_REQUIRED)").into()
            });
            op.responses.responses.entry("403".into()).or_insert_with(|| {
                error("The credential lacks the scope this call needs (jobs:read, jobs:write or jobs:admin)").into()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The jobs API and metrics are guarded, new `/api/` routes too; health, docs, Login,
    /// chat (checked by chat) and UI files are open.
    #[test]
    fn guarded_paths() {
        for p in [
            "/jobs",
            "/jobs/abc",
            "/api/v1/jobs",
            "/api/v1/jobs/x/cancel",
            "/api/v1/events",
            "/api/v1/stats",
            "/api/v1/queues",
            "/api/v1/some-new-thing",
            "/metrics",
        ] {
            assert!(is_guarded(p), "{p}");
        }
        for p in [
            "/healthz",
            "/readyz",
            "/readyz/local",
            "/openapi.json",
            "/docs",
            "/docs/index.html",
            "/",
            "/assets/index.js",
            "/login",
            "/api/v1/auth/login",
            "/api/v1/auth/config",
            "/api/v1/rooms/lobby/messages",
            "/pfc.jobs.v1.JobService/SubmitJob",
        ] {
            assert!(!is_guarded(p), "{p}");
        }
    }
}
