//! Access control at the gateway (issue 17), against a real core on loopback: a jobs server
//! behind the access guard that also serves `AuthService` (the gateway fetches its JWKS), and
//! the gateway's `run` with `auth_required`, called over real HTTP/1.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pfc_access::{ApiKeys, Authenticator};
use pfc_auth::{AuthGrpc, Issuer, Keys, Scope, Scopes, SigningKey};
use pfc_processors::Registry;
use pfc_queue::{JobStore, MemoryStore, StoreConfig};
use serde_json::{json, Value};
use tokio::net::TcpListener;

struct Stack {
    http: SocketAddr,
    issuer: Arc<Issuer>,
    keys: Arc<ApiKeys>,
    stop: pfc_runtime::Shutdown,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

async fn start() -> Stack {
    let stop = pfc_runtime::Shutdown::new();
    let issuer = Arc::new(Issuer::new(
        SigningKey::generate(),
        Duration::from_secs(3600),
        "pfc-auth",
        "pfc",
    ));
    let keys = Arc::new(ApiKeys::new(Arc::new(
        pfc_access::apikeys::MemoryKeyStore::new(),
    )));
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new(StoreConfig::default()));
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    let routes = tonic::service::Routes::new(pfc_jobs::service(
        store.clone(),
        Registry::builtin(),
        Default::default(),
    ));
    let auth = Authenticator::new(Keys::fixed(issuer.verifier()), Some(keys.clone()));
    let routes = pfc_jobs::guarded(routes, Some(auth))
        .add_service(AuthGrpc::new(issuer.clone()).into_server());
    let routes = pfc_runtime::grpc::with_health_and_reflection(routes, health).unwrap();
    tokio::spawn(pfc_runtime::grpc::serve(
        grpc,
        routes,
        reporter,
        vec![],
        stop.wait(),
    ));
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr = http.local_addr().unwrap();
    let mut config = pfc_gateway::Config::from_env(format!("http://{grpc_addr}")).unwrap();
    config.auth_required = true;
    tokio::spawn(pfc_gateway::run(http, config, stop.wait()));
    let stack = Stack {
        http: http_addr,
        issuer,
        keys,
        stop,
    };
    // Ready when a valid token is accepted: the gateway has fetched the JWKS (polling).
    let admin = stack.token(&[Scope::JobsAdmin]);
    pfc_testkit::wait_until("gateway verifies tokens", Duration::from_secs(15), || {
        let admin = admin.clone();
        let s = &stack;
        async move { (s.call("GET", "/api/v1/stats", None, Some(&admin)).await.0 == 200).then_some(()) }
    })
    .await;
    stack
}

impl Stack {
    fn token(&self, scopes: &[Scope]) -> String {
        let now = pfc_auth::now_secs();
        self.issuer
            .issue_scoped("alice", Scopes::of(scopes), now, now + 600)
            .unwrap()
            .0
    }

    /// One request; the status, the JSON body (or a JSON string) and the headers. For
    /// streams, only the head is read.
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value, http::HeaderMap) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.http));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .unwrap();
        let resp = client.request(req).await.expect("http request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let is_stream = headers
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
        if is_stream {
            return (status, Value::Null, headers);
        }
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value, headers)
    }
}

fn submit() -> Option<Value> {
    Some(json!({"kind": "uppercase", "text": "hi"}))
}

/// Without a credential, or with a garbage, tampered, expired, `alg: none` or wrong-key
/// token, every jobs route (REST, origin, SSE, metrics) is a 401 with the documented JSON
/// body and `WWW-Authenticate: Bearer`; health, the OpenAPI document, docs, the UI and the
/// auth config stay open.
#[tokio::test]
async fn rest_refuses_missing_and_bad_credentials() {
    let s = start().await;
    let good = s.token(&[Scope::JobsAdmin]);
    let parts: Vec<&str> = good.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["scope"] = "jobs:admin worker".into();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        parts[1]
    );
    let now = pfc_auth::now_secs();
    let expired = s
        .issuer
        .issue_scoped(
            "alice",
            Scopes::of(&[Scope::JobsAdmin]),
            now - 7200,
            now - 3600,
        )
        .unwrap()
        .0;
    let other = Issuer::new(
        SigningKey::generate(),
        Duration::from_secs(60),
        "pfc-auth",
        "pfc",
    );
    let wrong_key = other
        .issue_scoped("alice", Scopes::of(&[Scope::JobsAdmin]), now, now + 60)
        .unwrap()
        .0;
    let routes: [(&str, &str, Option<Value>); 8] = [
        ("POST", "/api/v1/jobs", submit()),
        ("GET", "/api/v1/jobs", None),
        ("GET", "/api/v1/stats", None),
        ("GET", "/api/v1/kinds", None),
        ("GET", "/api/v1/events", None),
        ("POST", "/jobs", Some(json!({"text": "hi"}))),
        ("GET", "/metrics", None),
        ("GET", "/api/v1/no-such-route", None),
    ];
    for token in [
        None,
        Some("garbage"),
        Some(tampered.as_str()),
        Some(alg_none.as_str()),
        Some(expired.as_str()),
        Some(wrong_key.as_str()),
    ] {
        for (method, path, body) in &routes {
            let (status, body, headers) = s.call(method, path, body.clone(), token).await;
            assert_eq!(status, 401, "{method} {path} with {token:?}: {body}");
            assert_eq!(body["error"]["code"], "unauthenticated", "{body}");
            assert_eq!(headers["www-authenticate"], "Bearer");
        }
    }
    let (_, stats, _) = s.call("GET", "/api/v1/stats", None, Some(&good)).await;
    assert_eq!(stats["submitted_total"], 0, "nothing got through: {stats}");
    for path in [
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/docs",
        "/",
        "/api/v1/auth/config",
    ] {
        let (status, body, _) = s.call("GET", path, None, None).await;
        assert_eq!(status, 200, "{path} stays open: {body}");
    }
    let (_, config, _) = s.call("GET", "/api/v1/auth/config", None, None).await;
    assert_eq!(config, json!({"auth_required": true}));
}

/// The token is forwarded and the core's scope table decides: read-only reads but gets 403
/// on submit; write submits but gets 403 on cancel; admin cancels; SSE takes the token from
/// `access_token`; API keys work the same, a worker key cannot submit, a revoked key is 401.
#[tokio::test]
async fn scopes_and_keys_through_rest() {
    let s = start().await;
    let read = s.token(&[Scope::JobsRead]);
    let write = s.token(&[Scope::JobsWrite]);
    let admin = s.token(&[Scope::JobsAdmin]);

    let (status, _, _) = s.call("GET", "/api/v1/jobs", None, Some(&read)).await;
    assert_eq!(status, 200);
    let (status, body, _) = s.call("POST", "/api/v1/jobs", submit(), Some(&read)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "permission_denied");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("jobs:write"),
        "{body}"
    );

    let (status, body, _) = s.call("POST", "/api/v1/jobs", submit(), Some(&write)).await;
    assert!(
        status == 200 || status == 201 || status == 202,
        "{status} {body}"
    );
    let id = body["job_id"].as_str().unwrap().to_string();
    let cancel = format!("/api/v1/jobs/{id}/cancel");
    let (status, body, _) = s.call("POST", &cancel, None, Some(&write)).await;
    assert_eq!(status, 403, "{body}");
    let (status, body, _) = s.call("POST", &cancel, None, Some(&admin)).await;
    assert_eq!(status, 200, "{body}");

    let (status, _, _) = s
        .call(
            "GET",
            &format!("/api/v1/events?access_token={read}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "SSE with the token in the query");
    let (status, _, _) = s
        .call(
            "GET",
            &format!("/api/v1/jobs/{id}/events"),
            None,
            Some(&read),
        )
        .await;
    assert_eq!(status, 200, "SSE with the header");
    let (status, _, _) = s
        .call(
            "GET",
            &format!("/api/v1/stats?access_token={read}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 401, "the query token is for SSE only");

    let (ci, record) = s
        .keys
        .create("ci", Scopes::of(&[Scope::JobsWrite]), vec![])
        .await
        .unwrap();
    let (worker, _) = s
        .keys
        .create("w", Scopes::of(&[Scope::Worker]), vec![])
        .await
        .unwrap();
    let (status, body, _) = s.call("POST", "/api/v1/jobs", submit(), Some(&ci)).await;
    assert!(status < 300, "{status} {body}");
    let (status, _, _) = s
        .call("POST", "/api/v1/jobs", submit(), Some(&worker))
        .await;
    assert_eq!(status, 403, "a worker key cannot submit");
    let (status, _, _) = s.call("GET", "/api/v1/jobs", None, Some(&worker)).await;
    assert_eq!(status, 403, "nor read");
    s.keys.revoke(&record.id).await.unwrap();
    let (status, body, _) = s.call("POST", "/api/v1/jobs", submit(), Some(&ci)).await;
    assert_eq!(status, 401, "revoked: {body}");
}

/// The OpenAPI document declares the bearer scheme (so /docs has "Authorize") and documents
/// 401 and 403 on the guarded routes, not on health.
#[tokio::test]
async fn openapi_declares_bearer_and_errors() {
    let s = start().await;
    let (_, doc, _) = s.call("GET", "/openapi.json", None, None).await;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let submit = &doc["paths"]["/api/v1/jobs"]["post"];
    assert_eq!(submit["security"], json!([{"bearer": []}]));
    for code in ["401", "403"] {
        assert!(submit["responses"][code].is_object(), "{code}: {submit}");
    }
    assert!(doc["paths"]["/healthz"]["get"]["security"].is_null());
    assert!(doc["paths"]["/healthz"]["get"]["responses"]["401"].is_null());
}
