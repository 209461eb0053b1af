//! `SubmitJobs` over real gRPC on loopback, on the in-memory store and on a real redis-server:
//! one result per job in request order, a bad job refused alone with the code `SubmitJob`
//! would answer, idempotency keys honoured per job (also twice in one batch), and the batch
//! itself bounded.

use std::sync::Arc;
use std::time::Duration;

use pfc_processors::Registry;
use pfc_proto::jobs::v1 as pb;
use pfc_proto::jobs::v1::job_service_client::JobServiceClient;
use pfc_proto::jobs::v1::submit_job_result::Outcome;
use pfc_queue::{JobStore, MemoryStore, RedisStore, StoreConfig};
use pfc_testkit::RedisServer;
use tonic::transport::Channel;
use tonic::Code;

async fn serve(store: Arc<dyn JobStore>) -> JobServiceClient<Channel> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    let routes = tonic::service::Routes::new(pfc_jobs::service(
        store,
        Registry::builtin(),
        Default::default(),
    ));
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
    JobServiceClient::new(channel)
}

fn text(t: &str) -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        text: t.into(),
        ..Default::default()
    }
}

async fn batch_semantics(store: Arc<dyn JobStore>) {
    let mut c = serve(store.clone()).await;
    let keyed = pb::SubmitJobRequest {
        idempotency_key: "order-17".into(),
        ..text("keyed")
    };
    let jobs = vec![
        text("first"),
        pb::SubmitJobRequest {
            kind: "Not A Kind".into(),
            ..text("bad kind")
        },
        keyed.clone(),
        text(""),
        keyed,
        text("last"),
    ];
    let results = c
        .submit_jobs(pb::SubmitJobsRequest { jobs })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), 6, "one result per job");
    let submitted = |i: usize| match &results[i].outcome {
        Some(Outcome::Submitted(s)) => s.clone(),
        other => panic!("job {i}: {other:?}"),
    };
    let refused = |i: usize| match &results[i].outcome {
        Some(Outcome::Error(e)) => e.clone(),
        other => panic!("job {i}: {other:?}"),
    };
    // in request order: each submitted job carries its own text
    for (i, t) in [(0, "first"), (2, "keyed"), (5, "last")] {
        let s = submitted(i);
        assert_eq!(s.job.as_ref().unwrap().text, t);
        let got = store.get(&s.job_id).await.unwrap().expect("stored");
        assert_eq!(got.text, t);
    }
    // bad jobs refused alone, with SubmitJob's code and a message naming the field
    let bad_kind = refused(1);
    assert_eq!(bad_kind.code, Code::InvalidArgument as i32);
    assert!(bad_kind.message.contains("kind"), "{}", bad_kind.message);
    let empty = refused(3);
    assert_eq!(empty.code, Code::InvalidArgument as i32);
    // the same idempotency key twice in one batch is one job
    let (a, b) = (submitted(2), submitted(4));
    assert_eq!(a.job_id, b.job_id);
    assert_ne!(a.created, b.created, "exactly one of the two created it");
    // a later single submit with the key finds it too
    let again = c
        .submit_job(pb::SubmitJobRequest {
            idempotency_key: "order-17".into(),
            ..text("keyed")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.job_id, a.job_id);
    assert!(!again.created);

    // the batch itself is bounded
    for n in [0, pfc_jobs::service::MAX_BATCH + 1] {
        let err = c
            .submit_jobs(pb::SubmitJobsRequest {
                jobs: vec![text("x"); n],
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{n} jobs: {err:?}");
        assert!(err.message().contains("1000"), "{}", err.message());
    }
    // a full batch goes through, every id distinct
    let results = c
        .submit_jobs(pb::SubmitJobsRequest {
            jobs: (0..pfc_jobs::service::MAX_BATCH)
                .map(|i| text(&format!("job {i}")))
                .collect(),
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    let ids: std::collections::HashSet<String> = results
        .iter()
        .map(|r| match &r.outcome {
            Some(Outcome::Submitted(s)) => s.job_id.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), pfc_jobs::service::MAX_BATCH);
}

#[tokio::test]
async fn batch_submit_memory() {
    batch_semantics(Arc::new(MemoryStore::new(StoreConfig::default()))).await;
}

#[tokio::test]
async fn batch_submit_redis() {
    let redis = RedisServer::start();
    let store = RedisStore::new(&redis.url(), StoreConfig::default()).unwrap();
    batch_semantics(store).await;
}
