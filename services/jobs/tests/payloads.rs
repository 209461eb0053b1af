//! Payloads and open kinds over real gRPC on loopback: the JobService served by
//! `pfc_runtime::grpc::serve` on 127.0.0.1:0, over the in-memory store and over a real
//! redis-server started by the harness.

use std::sync::Arc;
use std::time::Duration;

use pfc_processors::Registry;
use pfc_proto::jobs::v1 as pb;
use pfc_proto::jobs::v1::job_service_client::JobServiceClient;
use pfc_queue::{Completion, JobStore, MemoryStore, Outcome, Payload, RedisStore, StoreConfig};
use pfc_testkit::RedisServer;
use serde_json::{json, Value};
use tonic::transport::Channel;
use tonic::Code;

/// A client of a jobs server on a free port over `store` (the server runs until the test's
/// runtime ends).
async fn serve(store: Arc<dyn JobStore>, limits: pfc_jobs::Limits) -> JobServiceClient<Channel> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    let routes = tonic::service::Routes::new(pfc_jobs::service(store, Registry::builtin(), limits));
    let routes = pfc_runtime::grpc::with_health_and_reflection(routes, health).unwrap();
    tokio::spawn(pfc_runtime::grpc::serve(
        listener,
        routes,
        reporter,
        vec![pfc_jobs::SERVICE_NAME.into()],
        std::future::pending(),
    ));
    let channel = pfc_testkit::wait_until("jobs server", Duration::from_secs(10), || async {
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .ok()
    })
    .await;
    JobServiceClient::new(channel).max_decoding_message_size(64 << 20)
}

fn memory() -> Arc<dyn JobStore> {
    Arc::new(MemoryStore::new(StoreConfig::default()))
}

fn json_job(kind: &str, payload: &Value) -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        kind: kind.into(),
        payload: serde_json::to_vec(payload).unwrap(),
        ..Default::default()
    }
}

/// Submits a JSON job over gRPC, takes and completes it through the store with a JSON result
/// like a worker would, and reads both back as JSON over gRPC.
async fn round_trip(store: Arc<dyn JobStore>) {
    let mut c = serve(store.clone(), Default::default()).await;
    let input =
        json!({"w": 64, "h": 48, "name": "chat.png", "tags": ["a", "b"], "deep": {"x": null}});
    let resp = c
        .submit_job(json_job("resize", &input))
        .await
        .unwrap()
        .into_inner();
    let job = resp.job.unwrap();
    assert_eq!(job.status(), pb::JobStatus::Queued);
    assert_eq!(job.kind, "resize");
    assert_eq!(job.text, "");
    assert_eq!(job.content_type, "application/json");
    assert_eq!(
        serde_json::from_slice::<Value>(&job.payload).unwrap(),
        input
    );

    let taken = store
        .take("w1", &["resize".into()], 1, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "the job is handed to a worker of its kind");
    let leased = &taken[0];
    assert_eq!(leased.id, resp.job_id);
    assert_eq!(
        leased.payload.as_ref().map(|p| p.bytes.clone()),
        Some(job.payload.clone())
    );
    let output = json!([1, 2.5, "three", {"ok": true}]);
    store
        .complete(&[Completion::of(
            leased,
            "w1",
            Outcome::DonePayload(Payload::json(serde_json::to_vec(&output).unwrap())),
        )])
        .await
        .unwrap();

    let done = c
        .get_job(pb::GetJobRequest {
            job_id: resp.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(done.status(), pb::JobStatus::Done);
    assert_eq!(
        serde_json::from_slice::<Value>(&done.payload).unwrap(),
        input
    );
    assert_eq!(done.content_type, "application/json");
    assert_eq!(
        serde_json::from_slice::<Value>(&done.result_payload).unwrap(),
        output
    );
    assert_eq!(done.result_content_type, "application/json");
    assert_eq!(done.result, None, "a payload result is not a text result");
}

/// A job with a JSON payload, completed with a JSON result, reads back with both as JSON
/// (in-memory store).
#[tokio::test]
async fn json_payload_round_trip_memory() {
    round_trip(memory()).await;
}

/// The same round trip on the Redis store, against a real redis-server.
#[tokio::test]
async fn json_payload_round_trip_redis() {
    let redis = RedisServer::start();
    let store = RedisStore::new(&redis.url(), StoreConfig::default()).unwrap();
    round_trip(store).await;
}

/// Any JSON value is a payload, scalars included, and it is stored byte for byte.
#[tokio::test]
async fn json_scalars_and_bytes_are_payloads() {
    let mut c = serve(memory(), Default::default()).await;
    for raw in [
        "42",
        "\"hé\"",
        "null",
        "true",
        "[]",
        " {\"a\" : 1}\n",
        "-1.5e3",
    ] {
        let job = c
            .submit_job(pb::SubmitJobRequest {
                kind: "echo".into(),
                payload: raw.as_bytes().to_vec(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{raw:?}: {e}"))
            .into_inner()
            .job
            .unwrap();
        assert_eq!(job.payload, raw.as_bytes(), "{raw:?}");
        assert_eq!(job.content_type, "application/json");
    }
    // an explicit JSON type with parameters is JSON (checked, stored as application/json)
    let job = c
        .submit_job(pb::SubmitJobRequest {
            kind: "echo".into(),
            payload: b"{}".to_vec(),
            content_type: "Application/JSON; charset=utf-8".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.content_type, "application/json");
    // other content types pass through as bytes, unchecked
    let bytes = vec![0x89, b'P', b'N', b'G', 0, 0xff];
    let job = c
        .submit_job(pb::SubmitJobRequest {
            kind: "thumbnail".into(),
            payload: bytes.clone(),
            content_type: "image/png".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(
        (job.payload, job.content_type.as_str()),
        (bytes, "image/png")
    );
}

/// A well-formed kind that no worker has declared is accepted and waits queued: a worker of
/// another kind is not handed it, one of its kind is.
#[tokio::test]
async fn unknown_well_formed_kind_is_queued() {
    let store = memory();
    let mut c = serve(store.clone(), Default::default()).await;
    for (kind, req) in [
        (
            "images.resize-v2",
            json_job("images.resize-v2", &json!({"w": 1})),
        ),
        (
            "my_text_kind",
            pb::SubmitJobRequest {
                kind: "my_text_kind".into(),
                text: "plain text for a custom kind".into(),
                ..Default::default()
            },
        ),
    ] {
        let resp = c.submit_job(req).await.unwrap().into_inner();
        let job = resp.job.unwrap();
        assert_eq!(
            (job.kind.as_str(), job.status()),
            (kind, pb::JobStatus::Queued)
        );
        let other = store
            .take("w-up", &["uppercase".into()], 10, Duration::from_millis(50))
            .await
            .unwrap();
        assert!(other.is_empty(), "{kind} went to an uppercase worker");
        let got = c
            .get_job(pb::GetJobRequest {
                job_id: resp.job_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .job
            .unwrap();
        assert_eq!(got.status(), pb::JobStatus::Queued, "{kind} still waits");
        let mine = store
            .take("w-k", &[kind.into()], 10, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(mine.len(), 1, "{kind}");
        assert_eq!(mine[0].id, resp.job_id);
    }
}

/// Each malformed submit is refused with INVALID_ARGUMENT (RESOURCE_EXHAUSTED for a payload
/// over the limit) and a message that names the problem and the limit; nothing is stored.
#[tokio::test]
async fn bad_payloads_and_kinds_are_refused() {
    let store = memory();
    let limits = pfc_jobs::Limits {
        max_payload_bytes: 1000,
        ..Default::default()
    };
    let mut c = serve(store.clone(), limits).await;
    let payload = |p: &str| pb::SubmitJobRequest {
        kind: "resize".into(),
        payload: p.as_bytes().to_vec(),
        ..Default::default()
    };
    let big = format!("\"{}\"", "x".repeat(1000));
    let cases: Vec<(pb::SubmitJobRequest, Code, &str)> = vec![
        (
            payload("{\"w\": 64,"),
            Code::InvalidArgument,
            "payload is not valid JSON",
        ),
        (
            payload("{'w': 64}"),
            Code::InvalidArgument,
            "payload is not valid JSON",
        ),
        (
            payload("[1] [2]"),
            Code::InvalidArgument,
            "payload is not valid JSON",
        ),
        (
            pb::SubmitJobRequest {
                kind: "resize".into(),
                payload: vec![b'"', 0xff, 0xfe, b'"'],
                ..Default::default()
            },
            Code::InvalidArgument,
            "payload is not valid JSON",
        ),
        (
            pb::SubmitJobRequest {
                text: "hello".into(),
                ..payload("{}")
            },
            Code::InvalidArgument,
            "either text or a payload, not both",
        ),
        (
            pb::SubmitJobRequest {
                kind: "resize".into(),
                ..Default::default()
            },
            Code::InvalidArgument,
            "a job needs text or a payload",
        ),
        (
            pb::SubmitJobRequest {
                kind: "resize".into(),
                content_type: "application/json".into(),
                ..Default::default()
            },
            Code::InvalidArgument,
            "but the payload is empty",
        ),
        (
            payload(&big),
            Code::ResourceExhausted,
            "payload too large: 1002 bytes, the limit is 1000 bytes",
        ),
        (
            pb::SubmitJobRequest {
                content_type: "not a type".into(),
                ..payload("x")
            },
            Code::InvalidArgument,
            "is not a MIME type",
        ),
        (
            pb::SubmitJobRequest {
                kind: "uppercase".into(),
                ..payload("\"hi\"")
            },
            Code::InvalidArgument,
            "built-in text processor: send text",
        ),
    ];
    let mut cases = cases;
    for kind in ["Resize", "-x", "a b", "a/b", "é", &"k".repeat(65)] {
        cases.push((
            json_job(kind, &json!({})),
            Code::InvalidArgument,
            "is malformed: a kind is 1 to 64 characters",
        ));
    }
    for (req, code, msg) in cases {
        let what = format!("kind {:?}, payload {:?}", req.kind, req.payload.len());
        let e = c.submit_job(req).await.unwrap_err();
        assert_eq!(e.code(), code, "{what}: {}", e.message());
        assert!(
            e.message().contains(msg),
            "{what}: {:?} should contain {msg:?}",
            e.message()
        );
    }
    assert_eq!(store.stats().await.unwrap().submitted_total, 0);
}

/// The payload limit is configurable (`--max-payload-bytes`) and the gRPC decode limit grows
/// with it: a 5 MiB payload is accepted when the limit is 6 MiB, refused at the default.
#[tokio::test]
async fn payload_limit_sets_the_message_limit() {
    let big = format!("\"{}\"", "x".repeat(5 << 20));
    let limits = pfc_jobs::Limits {
        max_payload_bytes: 6 << 20,
        ..Default::default()
    };
    assert_eq!(
        pfc_jobs::server::decode_limit(&limits),
        (6 << 20) + (64 << 10)
    );
    let mut c = serve(memory(), limits).await;
    c.submit_job(json_job("big", &serde_json::from_str(&big).unwrap()))
        .await
        .unwrap();

    let mut c = serve(memory(), Default::default()).await;
    let e = c
        .submit_job(pb::SubmitJobRequest {
            kind: "big".into(),
            payload: big.into_bytes(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    assert!(
        e.message().contains("the limit is 4194304 bytes"),
        "{}",
        e.message()
    );
}
