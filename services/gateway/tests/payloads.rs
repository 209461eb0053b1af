//! JSON payloads and open kinds through REST (`POST /api/v1/jobs`): contract tests with
//! `oneshot` that need no core, then a real pfc-jobs gRPC server (in-memory store) and the
//! gateway's `run` on free ports, jobs taken and completed through the store as a worker would.
//! Every answer is checked against what `/openapi.json` documents for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pfc_gateway::{app, AppState, Config};
use pfc_processors::Registry;
use pfc_queue::{Completion, JobStore, LeaseRef, MemoryStore, Outcome, Payload, StoreConfig};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Status and body (JSON, or the text as a JSON string) of one request.
type Answer = (u16, Value, String);

/// The body of an answer as JSON, or its text as a JSON string.
fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

// ---------------------------------------------------------------- oneshot, no core

/// `app(state)` with the core on a closed port (connections refused at once).
async fn oneshot(method: &str, uri: &str, body: &str) -> Answer {
    let config = Config::from_env("http://127.0.0.1:1").unwrap();
    let state = AppState::new(&config).expect("valid config");
    let mut req = Request::builder().method(method).uri(uri);
    if !body.is_empty() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let resp = app(state)
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .expect("infallible router");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        parse(&bytes),
        String::from_utf8_lossy(&bytes).into(),
    )
}

/// Payload shapes the gateway can judge alone are refused before the core is called (the
/// core is down here, so a 503 would mean it was called), with documented 4xx JSON bodies.
#[tokio::test]
async fn payload_shapes_are_checked_at_the_gateway() {
    let doc = oneshot("GET", "/openapi.json", "").await.1;
    let cases = [
        (
            r#"{}"#,
            422,
            "a job needs text, a JSON payload or payload_base64",
        ),
        (
            r#"{"kind": "k", "payload": {"a": 1}, "payload_base64": "AA=="}"#,
            422,
            "not both",
        ),
        (
            r#"{"kind": "k", "payload": 1, "content_type": "image/png"}"#,
            422,
            "payload is JSON",
        ),
        (
            r#"{"kind": "k", "payload_base64": "not base64!"}"#,
            422,
            "payload_base64 is not valid base64",
        ),
        (
            r#"{"kind": "k", "payload_base64": ""}"#,
            422,
            "must not be empty",
        ),
        (
            r#"{"kind": "k", "text": "a", "content_type": "image/png"}"#,
            422,
            "content_type describes payload_base64",
        ),
        (r#"{"kind": "k", "payload": {"a": "#, 400, "invalid JSON"),
        (r#"{"kind": "k", "payload": {'a': 1}}"#, 400, "invalid JSON"),
        (
            r#"{"kind": "k", "payload": 1, "colour": "red"}"#,
            422,
            "colour",
        ),
    ];
    for (body, status, msg) in cases {
        let answer = oneshot("POST", "/api/v1/jobs", body).await;
        assert_eq!(answer.0, status, "{body}: {}", answer.2);
        assert_documented_error(&doc, &answer);
        let m = answer.1["error"]["message"].as_str().unwrap();
        assert!(m.contains(msg), "{body}: {m:?} should contain {msg:?}");
    }
    // well-formed payload submits reach the core (down here: 503)
    for body in [
        r#"{"kind": "resize", "payload": {"w": 64}}"#,
        r#"{"kind": "resize", "payload": null}"#,
        r#"{"kind": "thumb", "payload_base64": "iVBORw==", "content_type": "image/png"}"#,
    ] {
        let answer = oneshot("POST", "/api/v1/jobs", body).await;
        assert_eq!(answer.0, 503, "{body}: {}", answer.2);
    }
}

/// The OpenAPI document describes payloads, results as JSON values, progress, the kind
/// pattern, the kinds' workers and concurrency, and the 400/413/422 answers of a submit.
#[tokio::test]
async fn openapi_documents_payloads_and_kinds() {
    let doc = oneshot("GET", "/openapi.json", "").await.1;
    let schemas = &doc["components"]["schemas"];
    let submit = &schemas["SubmitJob"]["properties"];
    for field in ["text", "payload", "payload_base64", "content_type", "kind"] {
        assert!(submit[field].is_object(), "SubmitJob.{field}: {submit}");
    }
    assert_eq!(
        submit["kind"]["pattern"], "^[a-z0-9][a-z0-9._-]{0,63}$",
        "{submit}"
    );
    assert_eq!(submit["payload_base64"]["format"], "byte");
    let job = &schemas["Job"]["properties"];
    for field in [
        "payload",
        "payload_base64",
        "content_type",
        "result",
        "result_base64",
        "result_content_type",
        "progress",
    ] {
        assert!(job[field].is_object(), "Job.{field}: {job}");
    }
    // any JSON value: no `type` restricts payload or result
    assert!(job["payload"].get("type").is_none(), "{}", job["payload"]);
    assert!(job["result"].get("type").is_none(), "{}", job["result"]);
    let kind = &schemas["Kind"]["properties"];
    for field in ["name", "description", "builtin", "workers", "concurrency"] {
        assert!(kind[field].is_object(), "Kind.{field}: {kind}");
    }
    assert!(schemas["JobEvent"]["properties"]["progress"].is_object());
    let responses = &doc["paths"]["/api/v1/jobs"]["post"]["responses"];
    for status in ["400", "413", "415", "422"] {
        assert_eq!(
            responses[status]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody",
            "{status}: {}",
            responses[status]
        );
    }
}

/// Asserts `answer` is a status that `POST /api/v1/jobs` documents, with the documented
/// JSON error body (`{"error": {"code", "message"}}`).
fn assert_documented_error(doc: &Value, answer: &Answer) {
    let (status, body, raw) = answer;
    let documented = &doc["paths"]["/api/v1/jobs"]["post"]["responses"][status.to_string()];
    assert!(documented.is_object(), "{status} is not documented: {raw}");
    assert_eq!(
        documented["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    let error = body["error"].as_object().unwrap_or_else(|| panic!("{raw}"));
    assert_eq!(error.len(), 2, "{raw}");
    assert!(
        error["code"].is_string() && error["message"].is_string(),
        "{raw}"
    );
}

/// Asserts every field of `job` that the `Job` schema lists has a documented type.
fn assert_job_conforms(doc: &Value, job: &Value) {
    let schema = &doc["components"]["schemas"]["Job"];
    for key in schema["required"].as_array().unwrap() {
        assert!(
            job.get(key.as_str().unwrap()).is_some(),
            "missing {key}: {job}"
        );
    }
    for (key, v) in job.as_object().unwrap() {
        let prop = &schema["properties"][key];
        assert!(prop.is_object(), "undocumented field {key}");
        let types: Vec<&str> = match &prop["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => continue, // any value, or a $ref (status)
        };
        let ok = types.iter().any(|t| match *t {
            "string" => v.is_string(),
            "integer" => v.is_u64() || v.is_i64(),
            "null" => v.is_null(),
            "object" => v.is_object(),
            "boolean" => v.is_boolean(),
            _ => true,
        });
        assert!(ok, "Job.{key} = {v} is not {types:?}");
    }
}

// ---------------------------------------------------------------- a real core and gateway

/// A jobs core (in-memory store, payloads up to 1000 bytes) and the gateway on free ports.
struct Stack {
    http: SocketAddr,
    store: Arc<dyn JobStore>,
    stop: pfc_runtime::Shutdown,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

async fn start() -> Stack {
    let stop = pfc_runtime::Shutdown::new();
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new(StoreConfig::default()));
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    let limits = pfc_jobs::Limits {
        max_payload_bytes: 1000,
        ..Default::default()
    };
    let routes = tonic::service::Routes::new(pfc_jobs::service(
        store.clone(),
        Registry::builtin(),
        limits,
    ));
    let routes = pfc_runtime::grpc::with_health_and_reflection(routes, health).unwrap();
    tokio::spawn(pfc_jobs::background(
        store.clone(),
        reporter.clone(),
        vec![pfc_jobs::SERVICE_NAME.into()],
        stop.wait(),
    ));
    tokio::spawn(pfc_runtime::grpc::serve(
        grpc,
        routes,
        reporter,
        vec![pfc_jobs::SERVICE_NAME.into()],
        stop.wait(),
    ));
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr = http.local_addr().unwrap();
    let config = Config::from_env(format!("http://{grpc_addr}")).unwrap();
    tokio::spawn(pfc_gateway::run(http, config, stop.wait()));
    let stack = Stack {
        http: http_addr,
        store,
        stop,
    };
    // ready when /readyz says the core is SERVING (polling, not sleeping)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while stack.call("GET", "/readyz", None).await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "stack not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack
}

impl Stack {
    /// One HTTP/1.1 request with a raw JSON body.
    async fn call(&self, method: &str, path: &str, body: Option<&str>) -> Answer {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.http));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default().to_owned())))
            .unwrap();
        let resp = client.request(req).await.expect("http request");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            parse(&bytes),
            String::from_utf8_lossy(&bytes).into(),
        )
    }

    /// Submits `body`, expecting 201; returns the job id and the raw answer.
    async fn submit(&self, body: &str) -> (String, Answer) {
        let answer = self.call("POST", "/api/v1/jobs", Some(body)).await;
        assert_eq!(answer.0, 201, "{body}: {}", answer.2);
        (answer.1["job_id"].as_str().unwrap().to_owned(), answer)
    }

    /// Leases the one queued job of `kind` as worker `w1`.
    async fn take(&self, kind: &str) -> pfc_queue::Job {
        let mut jobs = self
            .store
            .take("w1", &[kind.into()], 1, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(jobs.len(), 1, "a {kind} job to take");
        jobs.remove(0)
    }
}

/// A JSON payload submitted over REST reaches the worker byte for byte, its JSON result and
/// progress read back as JSON values (not strings) on `/api/v1/jobs/{id}`, and every answer
/// matches the OpenAPI document.
#[tokio::test]
async fn json_payload_round_trip_over_rest() {
    let s = start().await;
    let doc = s.call("GET", "/openapi.json", None).await.1;
    // key order and a number beyond u64 survive: the payload is never re-encoded
    let payload =
        r#"{"zeta": 1, "alpha": [true, null, "é"], "big": 123456789012345678901234567890}"#;
    let (id, answer) = s
        .submit(&format!(
            r#"{{"kind": "images.resize-v2", "payload": {payload}}}"#
        ))
        .await;
    assert!(answer.2.contains(payload), "{}", answer.2);
    let job = &answer.1["job"];
    assert_job_conforms(&doc, job);
    assert_eq!(job["status"], "queued");
    assert_eq!(job["kind"], "images.resize-v2");
    assert_eq!(job["content_type"], "application/json");
    assert_eq!(job["text"], "");
    assert_eq!(job["result"], Value::Null);

    let leased = s.take("images.resize-v2").await;
    let got = leased.payload.as_ref().expect("a payload");
    assert_eq!(
        (got.bytes.as_slice(), got.content_type.as_str()),
        (payload.as_bytes(), "application/json")
    );
    assert!(s
        .store
        .progress("w1", &LeaseRef::of(&leased), 40)
        .await
        .unwrap());
    let (st, running, raw) = s.call("GET", &format!("/api/v1/jobs/{id}"), None).await;
    assert_eq!(st, 200, "{raw}");
    assert_eq!(
        (running["status"].clone(), running["progress"].clone()),
        (json!("processing"), json!(40))
    );

    let result = json!({"thumb": {"w": 64, "h": 48}, "sizes": [1, 2.5]});
    s.store
        .complete(&[Completion::of(
            &leased,
            "w1",
            Outcome::DonePayload(Payload::json(result.to_string())),
        )])
        .await
        .unwrap();
    let (st, done, raw) = s.call("GET", &format!("/api/v1/jobs/{id}"), None).await;
    assert_eq!(st, 200, "{raw}");
    assert_job_conforms(&doc, &done);
    assert_eq!(done["status"], "done");
    assert_eq!(done["result"], result, "the result is a JSON value");
    assert_eq!(done["result_content_type"], "application/json");
    assert_eq!(done["payload"]["alpha"], json!([true, null, "é"]));
    assert!(raw.contains(payload), "{raw}");
    // the list shows the same, and the origin route has the result as JSON text
    let (_, page, _) = s.call("GET", "/api/v1/jobs", None).await;
    assert_eq!(page["jobs"][0]["result"], result);
    let (_, origin, _) = s.call("GET", &format!("/jobs/{id}"), None).await;
    let text = origin["result"]
        .as_str()
        .expect("origin result is a string");
    assert_eq!(serde_json::from_str::<Value>(text).unwrap(), result);
}

/// Scalars, `null` and bytes of other content types are payloads too; bytes come back as
/// base64 with their content type, and a text job looks exactly as before.
#[tokio::test]
async fn scalar_null_and_bytes_payloads_over_rest() {
    let s = start().await;
    for payload in ["42", "\"hello\"", "null", "false", "[]"] {
        let (_, answer) = s
            .submit(&format!(r#"{{"kind": "echo", "payload": {payload}}}"#))
            .await;
        let job = &answer.1["job"];
        assert_eq!(
            job["payload"],
            serde_json::from_str::<Value>(payload).unwrap()
        );
        assert_eq!(job["content_type"], "application/json", "{payload}");
        assert_eq!(job["payload_base64"], Value::Null);
    }
    let (id, answer) = s
        .submit(
            r#"{"kind": "thumb", "payload_base64": "iVBORw0KGgo=", "content_type": "image/png"}"#,
        )
        .await;
    let job = &answer.1["job"];
    assert_eq!(
        (job["payload_base64"].clone(), job["content_type"].clone()),
        (json!("iVBORw0KGgo="), json!("image/png"))
    );
    assert_eq!(job["payload"], Value::Null);
    let leased = s.take("thumb").await;
    assert_eq!(leased.payload.as_ref().unwrap().bytes, b"\x89PNG\r\n\x1a\n");
    s.store
        .complete(&[Completion::of(
            &leased,
            "w1",
            Outcome::DonePayload(Payload {
                bytes: vec![0, 1, 2],
                content_type: "application/octet-stream".into(),
            }),
        )])
        .await
        .unwrap();
    let (_, done, _) = s.call("GET", &format!("/api/v1/jobs/{id}"), None).await;
    assert_eq!(done["result_base64"], "AAEC");
    assert_eq!(done["result_content_type"], "application/octet-stream");
    assert_eq!(done["result"], Value::Null);

    let (_, answer) = s.submit(r#"{"text": "abc", "kind": "reverse"}"#).await;
    let job = &answer.1["job"];
    assert_eq!(job["text"], "abc");
    for field in [
        "payload",
        "payload_base64",
        "content_type",
        "result_content_type",
    ] {
        assert_eq!(job[field], Value::Null, "{field}");
    }
}

/// Kinds are open: a well-formed kind no worker declared is accepted and waits queued, and
/// the kinds list shows built-in kinds with their workers and concurrency.
#[tokio::test]
async fn unknown_kinds_wait_queued_and_kinds_are_listed() {
    let s = start().await;
    let (id, _) = s
        .submit(r#"{"kind": "nobody-handles-this.yet", "payload": {"n": 1}}"#)
        .await;
    let (_, job, _) = s.call("GET", &format!("/api/v1/jobs/{id}"), None).await;
    assert_eq!(job["status"], "queued");
    let (_, stats, _) = s.call("GET", "/api/v1/stats", None).await;
    assert_eq!(stats["queued"], 1, "{stats}");

    let (st, kinds, raw) = s.call("GET", "/api/v1/kinds", None).await;
    assert_eq!(st, 200, "{raw}");
    let upper = kinds["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "uppercase")
        .unwrap_or_else(|| panic!("{kinds}"));
    assert_eq!(upper["builtin"], true, "{upper}");
    assert!(
        upper["workers"].is_u64() && upper["concurrency"].is_u64(),
        "{upper}"
    );
}

/// What the core refuses comes back as the documented 4xx JSON bodies: a malformed kind,
/// text and payload together, a payload for a built-in text kind, a payload over the core's
/// limit (413 naming it), a bad content type; nothing is stored.
#[tokio::test]
async fn core_refusals_are_documented_4xx() {
    let s = start().await;
    let doc = s.call("GET", "/openapi.json", None).await.1;
    let big = format!(r#"{{"kind": "k", "payload": "{}"}}"#, "x".repeat(1000));
    let cases = [
        (
            r#"{"kind": "Not/A Kind", "payload": 1}"#,
            422,
            "is malformed",
        ),
        (
            r#"{"kind": "k", "text": "a", "payload": 1}"#,
            422,
            "not both",
        ),
        (
            r#"{"kind": "uppercase", "payload": "a"}"#,
            422,
            "built-in text processor",
        ),
        (&big, 413, "the limit is 1000 bytes"),
        (
            r#"{"kind": "k", "payload_base64": "AA==", "content_type": "not a type"}"#,
            422,
            "is not a MIME type",
        ),
        (
            r#"{"kind": "k", "payload_base64": "AA==", "content_type": "application/json"}"#,
            422,
            "payload is not valid JSON",
        ),
        (r#"{"kind": "k", "payload": {"a": 1"#, 400, "invalid JSON"),
    ];
    for (body, status, msg) in cases {
        let answer = s.call("POST", "/api/v1/jobs", Some(body)).await;
        assert_eq!(answer.0, status, "{body}: {}", answer.2);
        assert_documented_error(&doc, &answer);
        let m = answer.1["error"]["message"].as_str().unwrap();
        assert!(m.contains(msg), "{body}: {m:?} should contain {msg:?}");
        let code = &answer.1["error"]["code"];
        let want = match status {
            400 => "invalid_json",
            413 => "payload_too_large",
            _ => "invalid_argument",
        };
        assert_eq!(code, want, "{body}");
    }
    let (_, stats, _) = s.call("GET", "/api/v1/stats", None).await;
    assert_eq!(stats["submitted_total"], 0, "{stats}");
}
