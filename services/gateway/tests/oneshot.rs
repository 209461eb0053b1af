//! REST contract tests that need no core: the router is driven with `oneshot`, and the core
//! URL points at a closed port, so these prove input validation, error bodies, the UI and
//! docs routes, and the behaviour when the core is down.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use pfc_gateway::{app, AppState, Config};
use serde_json::Value;
use tower::ServiceExt;

fn state() -> AppState {
    // Port 1 on loopback: nothing listens there, connections are refused at once.
    let mut config = Config::from_env("http://127.0.0.1:1").unwrap();
    config.body_limit = 4096;
    AppState::new(&config).expect("valid config")
}

async fn send(req: Request<Body>) -> (StatusCode, String, Vec<u8>) {
    let resp = app(state()).oneshot(req).await.expect("infallible router");
    let status = resp.status();
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, ct, body)
}

fn post(uri: &str, ct: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::post(uri);
    if let Some(ct) = ct {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    b.body(body.into()).unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// Asserts a JSON error body with the given status and code.
async fn expect_error(req: Request<Body>, status: u16, code: &str) -> Value {
    let (st, ct, body) = send(req).await;
    assert_eq!(
        st.as_u16(),
        status,
        "body: {}",
        String::from_utf8_lossy(&body)
    );
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let v: Value = serde_json::from_slice(&body).expect("JSON error body");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    v
}

/// `/healthz` answers `{"status":"ok"}` even while the core is down.
#[tokio::test]
async fn healthz_is_ok_without_core() {
    let (st, _, body) = send(get("/healthz")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        serde_json::json!({"status": "ok"})
    );
}

/// `/readyz` is 503 while the core is unreachable.
#[tokio::test]
async fn readyz_is_unavailable_without_core() {
    let (st, _, body) = send(get("/readyz")).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["status"],
        "unavailable"
    );
}

/// `/readyz/local` (the Kubernetes readiness probe) says whether this gateway can serve: 200
/// while the core is down (the UI and chat still work), 503 once shutdown begins.
#[tokio::test]
async fn readyz_local_follows_this_pod_not_the_core() {
    let (st, _, body) = send(get("/readyz/local")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["status"],
        "ok"
    );
    let state = state();
    state.draining().trigger();
    for path in ["/readyz/local", "/readyz"] {
        let resp = app(state.clone()).oneshot(get(path)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
    }
    // still serving while draining (lame duck)
    let resp = app(state).oneshot(get("/healthz")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

/// Malformed JSON is a 400 on both the origin and the v1 route, before the core is called.
#[tokio::test]
async fn malformed_json_is_400() {
    for uri in ["/jobs", "/api/v1/jobs"] {
        expect_error(
            post(uri, Some("application/json"), "{\"text\": "),
            400,
            "invalid_json",
        )
        .await;
        expect_error(
            post(uri, Some("application/json"), "not json"),
            400,
            "invalid_json",
        )
        .await;
    }
}

/// A body without `text`, or with a `text` that is not a string, is a 422.
#[tokio::test]
async fn missing_or_mistyped_text_is_422() {
    for uri in ["/jobs", "/api/v1/jobs"] {
        expect_error(
            post(uri, Some("application/json"), "{}"),
            422,
            "invalid_argument",
        )
        .await;
        expect_error(
            post(uri, Some("application/json"), "{\"text\": 5}"),
            422,
            "invalid_argument",
        )
        .await;
    }
    let v = expect_error(
        post(
            "/api/v1/jobs",
            Some("application/json"),
            r#"{"text":"a","colour":"red"}"#,
        ),
        422,
        "invalid_argument",
    )
    .await;
    assert!(
        v["error"]["message"].as_str().unwrap().contains("colour"),
        "{v}"
    );
}

/// A body over the limit is a 413, and a non-JSON content type a 415.
#[tokio::test]
async fn oversized_and_non_json_bodies() {
    let big = format!("{{\"text\": \"{}\"}}", "a".repeat(10_000));
    expect_error(
        post("/jobs", Some("application/json"), big),
        413,
        "payload_too_large",
    )
    .await;
    expect_error(
        post("/jobs", Some("text/plain"), "{\"text\":\"a\"}"),
        415,
        "unsupported_media_type",
    )
    .await;
}

/// A valid request while the core is down is a 503 with the JSON error body, not a hang or a 500.
#[tokio::test]
async fn core_down_is_503() {
    expect_error(
        post("/jobs", None, r#"{"text":"bonjour"}"#),
        503,
        "unavailable",
    )
    .await;
    expect_error(get("/api/v1/stats"), 503, "unavailable").await;
}

/// Unknown API paths are JSON 404s and wrong methods JSON 405s, never the UI.
#[tokio::test]
async fn unknown_api_routes() {
    expect_error(get("/api/v1/nope"), 404, "not_found").await;
    expect_error(get("/api"), 404, "not_found").await;
    expect_error(
        Request::delete("/api/v1/stats")
            .body(Body::empty())
            .unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
}

/// Query parameters are validated: unknown status and out-of-range page sizes are 422s.
#[tokio::test]
async fn list_query_validation() {
    expect_error(get("/api/v1/jobs?status=sleeping"), 422, "invalid_argument").await;
    expect_error(get("/api/v1/jobs?page_size=0"), 422, "invalid_argument").await;
    expect_error(get("/api/v1/jobs?page_size=abc"), 422, "invalid_argument").await;
}

/// The OpenAPI document is 3.1 and lists every REST route with its error responses.
#[tokio::test]
async fn openapi_document() {
    let (st, _, body) = send(get("/openapi.json")).await;
    assert_eq!(st, StatusCode::OK);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["openapi"], "3.1.0");
    for path in [
        "/jobs",
        "/jobs/{job_id}",
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/cancel",
        "/api/v1/jobs/{job_id}/events",
        "/api/v1/events",
        "/api/v1/stats",
        "/api/v1/kinds",
        "/healthz",
        "/readyz",
        "/readyz/local",
        "/metrics",
    ] {
        assert!(v["paths"][path].is_object(), "missing {path}");
    }
    assert!(v["paths"]["/api/v1/jobs"]["post"]["responses"]["422"].is_object());
    assert!(v["paths"]["/jobs/{job_id}"]["get"]["responses"]["404"].is_object());
    assert!(v["components"]["schemas"]["ErrorBody"].is_object());
}

/// The UI is served at `/` and `/index.html` with its assets, and `/docs` is the interactive
/// API documentation.
#[tokio::test]
async fn ui_and_docs() {
    let (st, ct, body) = send(get("/")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(ct.starts_with("text/html"), "{ct}");
    let index = String::from_utf8_lossy(&body).into_owned();
    assert!(index.contains("pfc"));
    let (st, ct, _) = send(get("/index.html")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(ct.starts_with("text/html"), "{ct}");
    // every file the page links to by absolute path (the built UI's assets, the favicon)
    let linked: Vec<&str> = index
        .split(['"', '\''])
        .filter(|s| s.starts_with('/') && s.len() > 1 && s.contains('.'))
        .collect();
    for path in &linked {
        let (st, _, _) = send(get(path)).await;
        assert_eq!(st, StatusCode::OK, "{path}, linked from index.html");
    }
    let (st, _, _) = send(get("/missing.js")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    for docs in ["/docs", "/docs/"] {
        let (st, ct, _) = send(get(docs)).await;
        assert_eq!(st, StatusCode::OK, "{docs}");
        assert!(ct.starts_with("text/html"));
    }
}

/// An unknown non-API path is a 404, not the UI (which routes by `#` fragment): a small HTML
/// page for browsers, the JSON error body for everyone else.
#[tokio::test]
async fn unknown_paths_are_404() {
    for path in ["/no/such/route", "/stats", "/jobs-view/123", "/assets"] {
        let req = Request::get(path)
            .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
            .body(Body::empty())
            .unwrap();
        let (st, ct, body) = send(req).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
        assert!(ct.starts_with("text/html"), "{path}: {ct}");
        let page = String::from_utf8_lossy(&body);
        assert!(
            page.contains("Not found") && page.contains("href=\"/\""),
            "{page}"
        );
        assert!(
            !page.contains(path),
            "the page must not echo the path: {page}"
        );
        expect_error(get(path), 404, "not_found").await;
    }
    let req = Request::head("/no/such/route").body(Body::empty()).unwrap();
    assert_eq!(send(req).await.0, StatusCode::NOT_FOUND);
}

/// `/metrics` is OpenMetrics text with request counters by route template; an invented
/// gRPC-web method is labelled by its service's template, never by its own name.
#[tokio::test]
async fn metrics_text() {
    let st = state();
    let router = app(st);
    let _ = router.clone().oneshot(get("/healthz")).await.unwrap();
    let invented = Request::post("/pfc.jobs.v1.JobService/NoSuchMethodXyz")
        .header("content-type", "application/grpc-web+proto")
        .body(Body::empty())
        .unwrap();
    let _ = router.clone().oneshot(invented).await.unwrap();
    let resp = router.oneshot(get("/metrics")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    // other tests of this binary share the process registry: look for the series, not counts
    assert!(
        text.contains(
            "pfc_gateway_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"}"
        ),
        "{text}"
    );
    assert!(text.contains(
        "pfc_gateway_http_request_duration_seconds_bucket{le=\"+Inf\",method=\"GET\",route=\"/healthz\"}"
    ));
    assert!(
        text.contains("route=\"/pfc.jobs.v1.JobService/{method}\""),
        "{text}"
    );
    assert!(!text.contains("NoSuchMethodXyz"), "{text}");
    assert!(
        text.contains("pfc_gateway_sse_streams{stream=\"job\"}"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
}

/// CORS is closed by default: no `access-control-allow-origin` for a foreign origin.
#[tokio::test]
async fn cors_closed_by_default() {
    let req = Request::get("/healthz")
        .header(header::ORIGIN, "https://evil.example")
        .body(Body::empty())
        .unwrap();
    let resp = app(state()).oneshot(req).await.unwrap();
    assert!(resp
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());
}

/// With PFC_CORS_ORIGINS set, a listed origin gets a preflight answer for gRPC-web headers.
#[tokio::test]
async fn cors_allows_configured_origin() {
    let mut config = Config::from_env("http://127.0.0.1:1").unwrap();
    config.cors_origins = vec!["https://ui.example".into()];
    let router = app(AppState::new(&config).unwrap());
    let req = Request::options("/pfc.jobs.v1.JobService/GetStats")
        .header(header::ORIGIN, "https://ui.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "content-type,x-grpc-web",
        )
        .body(Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    assert_eq!(
        resp.headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .unwrap(),
        "https://ui.example"
    );
    let req = Request::get("/healthz")
        .header(header::ORIGIN, "https://other.example")
        .body(Body::empty())
        .unwrap();
    let resp = router.oneshot(req).await.unwrap();
    assert!(resp
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());
}
