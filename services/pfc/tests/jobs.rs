//! End-to-end behaviour of the jobs core over real gRPC on loopback, with a real
//! redis-server started by the harness.

mod common;

use std::time::Duration;

use common::*;
use pfc_proto::jobs::v1 as pb;
use pfc_queue::StoreArgs;
use pfc_testkit::RedisServer;
use tonic::Code;

async fn redis_stack() -> (RedisServer, JobsServer, pfc_runtime::Shutdown) {
    let redis = RedisServer::start();
    let args = store_args(Some(redis.url()));
    let server = JobsServer::start(args.clone()).await;
    let (worker_stop, _) = start_worker(server.addr, 8);
    (redis, server, worker_stop)
}

/// The origin's example: submit "bonjour le monde", get "BONJOUR LE MONDE" with status done.
#[tokio::test]
async fn submit_to_done_with_result() {
    let (_redis, server, _w) = redis_stack().await;
    let mut c = server.client().await;
    let id = submit(&mut c, "", "bonjour le monde").await;
    let job = wait_terminal(&mut c, &id, Duration::from_secs(10)).await;
    assert_eq!(job.status(), pb::JobStatus::Done);
    assert_eq!(job.result.as_deref(), Some("BONJOUR LE MONDE"));
    assert_eq!(job.kind, "uppercase");
    assert_eq!(job.attempts, 1);
    assert!(job.finished_at.is_some());
    for (kind, text, want) in [
        ("reverse", "abc", "cba"),
        ("wordcount", "un deux trois", "3"),
        ("lowercase", "ABC", "abc"),
    ] {
        let id = submit(&mut c, kind, text).await;
        let job = wait_terminal(&mut c, &id, Duration::from_secs(10)).await;
        assert_eq!(job.result.as_deref(), Some(want), "{kind}");
    }
}

/// WatchJob sends the current state first, then every transition, and ends after done.
#[tokio::test]
async fn watch_sees_queued_processing_done() {
    let redis = RedisServer::start();
    let args = store_args(Some(redis.url()));
    let server = JobsServer::start(args.clone()).await;
    let mut c = server.client().await;
    // no worker yet: the job stays queued until we start one
    let id = submit(&mut c, "sleep", "200").await;
    let mut stream = c
        .watch_job(pb::WatchJobRequest { job_id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap().job.unwrap();
    assert_eq!(first.status(), pb::JobStatus::Queued);
    let (_stop, _task) = start_worker(server.addr, 2);
    let mut seen = vec![first.status()];
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("watch stalled")
        .unwrap()
    {
        seen.push(msg.job.unwrap().status());
    }
    assert_eq!(
        seen,
        [
            pb::JobStatus::Queued,
            pb::JobStatus::Processing,
            pb::JobStatus::Done
        ]
    );
}

/// A failing processor is retried with backoff, then the job fails with its error and is
/// listed among failed jobs (the dead letters).
#[tokio::test]
async fn failing_processor_retries_then_fails() {
    let (_redis, server, _w) = redis_stack().await;
    let mut c = server.client().await;
    let id = c
        .submit_job(pb::SubmitJobRequest {
            text: "x".into(),
            kind: "fail".into(),
            max_attempts: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let job = wait_terminal(&mut c, &id, Duration::from_secs(15)).await;
    assert_eq!(job.status(), pb::JobStatus::Failed);
    assert_eq!(job.attempts, 3);
    assert!(job.error.unwrap().contains("always fails"));
    let failed = c
        .list_jobs(pb::ListJobsRequest {
            status: pb::JobStatus::Failed as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(failed.jobs.len(), 1);
    let stats = c
        .get_stats(pb::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((stats.failed_total, stats.retried_total), (1, 2));
    assert!(stats.live_workers >= 1);
}

/// A repeated submit with the same idempotency key returns the first job.
#[tokio::test]
async fn idempotent_submit_and_cancel() {
    let redis = RedisServer::start();
    let server = JobsServer::start(store_args(Some(redis.url()))).await;
    let mut c = server.client().await;
    let req = pb::SubmitJobRequest {
        text: "once".into(),
        idempotency_key: "order-42".into(),
        delay: Some(prost_types::Duration {
            seconds: 60,
            nanos: 0,
        }),
        ..Default::default()
    };
    let a = c.submit_job(req.clone()).await.unwrap().into_inner();
    let b = c.submit_job(req).await.unwrap().into_inner();
    assert!(a.created && !b.created);
    assert_eq!(a.job_id, b.job_id);
    assert_eq!(a.job.unwrap().status(), pb::JobStatus::Scheduled);
    let cancelled = c
        .cancel_job(pb::CancelJobRequest {
            job_id: a.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(cancelled.status(), pb::JobStatus::Cancelled);
    let again = c
        .cancel_job(pb::CancelJobRequest { job_id: a.job_id })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
}

/// Finished jobs expire after the configured retention (TTL) and are then NOT_FOUND.
#[tokio::test]
async fn finished_jobs_expire() {
    let redis = RedisServer::start();
    let args = StoreArgs {
        job_ttl: Duration::from_millis(700),
        ..store_args(Some(redis.url()))
    };
    let server = JobsServer::start(args.clone()).await;
    let (_s, _t) = start_worker(server.addr, 2);
    let mut c = server.client().await;
    let id = submit(&mut c, "uppercase", "short-lived").await;
    wait_terminal(&mut c, &id, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let err = c
        .get_job(pb::GetJobRequest { job_id: id })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

/// Every kind of bad input gets INVALID_ARGUMENT or NOT_FOUND with a message naming the
/// problem, and nothing is stored.
#[tokio::test]
async fn bad_input_is_rejected_clearly() {
    let redis = RedisServer::start();
    let server = JobsServer::start(store_args(Some(redis.url()))).await;
    let mut c = server.client().await;
    let cases = [
        (
            pb::SubmitJobRequest::default(),
            Code::InvalidArgument,
            "text must not be empty",
        ),
        (
            pb::SubmitJobRequest {
                text: "x".repeat(64 * 1024 + 1),
                ..Default::default()
            },
            Code::InvalidArgument,
            "the limit is 65536 bytes",
        ),
        (
            pb::SubmitJobRequest {
                text: "x".into(),
                kind: "No pe".into(),
                ..Default::default()
            },
            Code::InvalidArgument,
            "kind \"No pe\" is malformed",
        ),
        (
            pb::SubmitJobRequest {
                text: "x".into(),
                max_attempts: 1000,
                ..Default::default()
            },
            Code::InvalidArgument,
            "max_attempts",
        ),
        (
            pb::SubmitJobRequest {
                text: "x".into(),
                delay: Some(prost_types::Duration {
                    seconds: -5,
                    nanos: 0,
                }),
                ..Default::default()
            },
            Code::InvalidArgument,
            "delay must not be negative",
        ),
    ];
    for (req, code, msg) in cases {
        let e = c.submit_job(req).await.unwrap_err();
        assert_eq!(e.code(), code, "{}", e.message());
        assert!(
            e.message().contains(msg),
            "{:?} should contain {msg:?}",
            e.message()
        );
    }
    let e = c
        .get_job(pb::GetJobRequest {
            job_id: "01NOPE".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("01NOPE"));
    let e = c
        .get_job(pb::GetJobRequest {
            job_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .watch_job(pb::WatchJobRequest {
            job_id: "01NOPE".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .list_jobs(pb::ListJobsRequest {
            page_size: 10_000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // non-UTF-8 bytes in the `text` string field: refused while decoding, as INVALID_ARGUMENT
    #[derive(Clone, PartialEq, prost::Message)]
    struct RawSubmit {
        #[prost(bytes = "vec", tag = "1")]
        text: Vec<u8>,
    }
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<RawSubmit, pb::SubmitJobResponse>::default();
    let e = grpc
        .unary(
            tonic::Request::new(RawSubmit {
                text: vec![0xff, 0xfe, b'a'],
            }),
            "/pfc.jobs.v1.JobService/SubmitJob".parse().unwrap(),
            codec,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert!(e.message().contains("UTF-8"), "{}", e.message());

    let stats = c
        .get_stats(pb::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.submitted_total, 0, "no bad request stored anything");
}

/// Redis stopped: calls fail with UNAVAILABLE and health turns NOT_SERVING (but "liveness"
/// stays SERVING, so Kubernetes does not restart the pod); Redis back: the same server
/// recovers by itself, without a restart.
#[tokio::test]
async fn redis_outage_then_recovery() {
    let mut redis = RedisServer::start();
    let server = JobsServer::start(store_args(Some(redis.url()))).await;
    let mut c = server.client().await;
    submit(&mut c, "uppercase", "before").await;

    redis.stop();
    let e = c
        .submit_job(pb::SubmitJobRequest {
            text: "during".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{}", e.message());
    let addr = server.addr;
    pfc_testkit::wait_until("NOT_SERVING", Duration::from_secs(10), || async move {
        (health(addr).await == Some(false)).then_some(())
    })
    .await;
    assert_eq!(health_of(addr, "liveness").await, Some(true));
    assert_eq!(health_of(addr, pfc_jobs::SERVICE_NAME).await, Some(false));

    redis.restart();
    server.wait_serving().await;
    let id = pfc_testkit::wait_until("submit after recovery", Duration::from_secs(10), || {
        let mut c = c.clone();
        async move {
            c.submit_job(pb::SubmitJobRequest {
                text: "after".into(),
                ..Default::default()
            })
            .await
            .ok()
            .map(|r| r.into_inner().job_id)
        }
    })
    .await;
    assert_eq!(get(&mut c, &id).await.status(), pb::JobStatus::Queued);
}

/// Lists page newest first through ListJobs tokens and filter by status.
#[tokio::test]
async fn list_jobs_pages() {
    let redis = RedisServer::start();
    let server = JobsServer::start(store_args(Some(redis.url()))).await;
    let mut c = server.client().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(submit(&mut c, "uppercase", &format!("job {i}")).await);
    }
    let p1 = c
        .list_jobs(pb::ListJobsRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p1.total_size, 5);
    assert_eq!(p1.jobs[0].id, ids[4]);
    let p2 = c
        .list_jobs(pb::ListJobsRequest {
            page_size: 2,
            page_token: p1.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p2.jobs[0].id, ids[2]);
    let queued = c
        .list_jobs(pb::ListJobsRequest {
            status: pb::JobStatus::Queued as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queued.jobs.len(), 5);
}
