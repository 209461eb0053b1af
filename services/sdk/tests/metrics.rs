//! The metrics of a jobs core and a worker (both in this process, on a real redis-server):
//! each submit, outcome and stream shows up in the process registry with bounded labels.
//! One test per binary, so the counts are exact (the registry is process-wide).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use pfc_sdk::{Client, HandlerError, Job, JobStatus, Submit, Worker};
use pfc_testkit::RedisServer;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: pfc_jobs::Config,
}

/// The value of the sample `series` (name and labels exactly as exported), if present.
fn sample(series: &str) -> Option<f64> {
    pfc_metrics::render().lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

async fn eventually(series: &str, want: f64) {
    pfc_testkit::wait_until(series, Duration::from_secs(20), || async move {
        (sample(series) == Some(want)).then_some(())
    })
    .await;
}

/// Submits, outcomes (done, retried, failed, cancelled), run times, watch streams, store
/// latency and gRPC codes are all counted; an invented gRPC method is `other`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_and_worker_metrics() {
    let redis = RedisServer::start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (rurl, a) = (redis.url(), addr.to_string());
    let argv = [
        "t",
        "--redis-url",
        &rurl,
        "--grpc-addr",
        &a,
        "--retry-backoff",
        "50ms",
    ];
    let config = Args::parse_from(argv).config;
    let stop = pfc_runtime::Shutdown::new();
    tokio::spawn(pfc_jobs::run(listener, config, stop.wait()));
    let url = format!("http://{addr}");
    let u = url.clone();
    let client = pfc_testkit::wait_until("jobs server", Duration::from_secs(10), || {
        let u = u.clone();
        async move { Client::connect(&u).await.ok() }
    })
    .await;
    let worker = Worker::new(&url)
        .name("m")
        .concurrency(3)
        .handle("m.ok", |_job: Job| async move { Ok(serde_json::json!(1)) })
        .handle("m.flaky", |job: Job| async move {
            if job.attempt() == 1 {
                Err(HandlerError::retryable("first try fails"))
            } else {
                Ok(serde_json::json!(2))
            }
        })
        .handle("m.bad", |_job: Job| async move {
            Err::<serde_json::Value, _>(HandlerError::permanent("never works"))
        });
    let wstop = pfc_runtime::Shutdown::new();
    let wtask = tokio::spawn(worker.run_until(wstop.wait()));
    eventually("pfc_worker_slots_total", 3.0).await;

    // a watch stream is counted while it is open (a job that waits, so the stream does)
    let later = client
        .submit_with(
            Submit::json("m.ok", &1)
                .unwrap()
                .delay(Duration::from_secs(600)),
        )
        .await
        .unwrap();
    let watch = client.watch(&later).await.unwrap();
    assert_eq!(
        sample("pfc_jobs_watch_streams{rpc=\"WatchJob\"}"),
        Some(1.0)
    );
    client.cancel(&later).await.unwrap();
    drop(watch);

    let ok = client.submit("m.ok", &1).await.unwrap();
    let done = client.wait(&ok, Duration::from_secs(20)).await.unwrap();
    assert_eq!(done.status(), JobStatus::Done);

    let flaky = client.submit("m.flaky", &1).await.unwrap();
    let flaky = client.wait(&flaky, Duration::from_secs(20)).await.unwrap();
    assert_eq!(flaky.status(), JobStatus::Done);
    let bad = client.submit("m.bad", &1).await.unwrap();
    let bad = client.wait(&bad, Duration::from_secs(20)).await.unwrap();
    assert_eq!(bad.status(), JobStatus::Failed);

    let q = "queue=\"default\"";
    for (kind, n) in [("m.ok", 2.0), ("m.flaky", 1.0), ("m.bad", 1.0)] {
        assert_eq!(
            sample(&format!("pfc_jobs_submitted_total{{{q},kind=\"{kind}\"}}")),
            Some(n),
            "{kind}"
        );
    }
    for (kind, status) in [
        ("m.ok", "done"),
        ("m.flaky", "retried"),
        ("m.flaky", "done"),
        ("m.bad", "failed"),
        ("m.ok", "cancelled"),
    ] {
        eventually(
            &format!("pfc_jobs_finished_total{{{q},kind=\"{kind}\",status=\"{status}\"}}"),
            1.0,
        )
        .await;
    }
    for (kind, outcome) in [
        ("m.ok", "done"),
        ("m.flaky", "retry"),
        ("m.flaky", "done"),
        ("m.bad", "failed"),
    ] {
        assert_eq!(
            sample(&format!(
                "pfc_job_run_seconds_count{{kind=\"{kind}\",outcome=\"{outcome}\"}}"
            )),
            Some(1.0),
            "{kind} {outcome}"
        );
    }
    eventually("pfc_jobs_watch_streams{rpc=\"WatchJob\"}", 0.0).await;
    eventually("pfc_worker_slots_busy", 0.0).await;
    // the scheduled (then cancelled) job is gone again; gauges are read every 5 s
    eventually("pfc_jobs_scheduled{queue=\"default\"}", 0.0).await;
    eventually("pfc_workers_live", 1.0).await;
    assert_eq!(sample("pfc_worker_sessions"), Some(1.0));
    assert!(
        sample(
            "pfc_store_operation_duration_seconds_count{backend=\"redis\",operation=\"submit\"}"
        ) >= Some(4.0)
    );
    assert_eq!(
        sample("pfc_grpc_server_requests_total{service=\"pfc.jobs.v1.JobService\",method=\"SubmitJob\",code=\"OK\"}"),
        Some(4.0)
    );

    // a refused call counts with its code; an invented method never becomes a series
    let bad_kind = client.submit("", &1).await;
    assert!(bad_kind.is_err());
    let mut raw = tonic::client::Grpc::new(
        tonic::transport::Endpoint::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    raw.ready().await.unwrap();
    let invented: Result<tonic::Response<()>, _> = raw
        .unary(
            tonic::Request::new(()),
            "/pfc.jobs.v1.JobService/NoSuchMethod".parse().unwrap(),
            EmptyCodec,
        )
        .await;
    assert_eq!(invented.unwrap_err().code(), tonic::Code::Unimplemented);
    eventually(
        "pfc_grpc_server_requests_total{service=\"other\",method=\"other\",code=\"UNIMPLEMENTED\"}",
        1.0,
    )
    .await;
    assert!(!pfc_metrics::render().contains("NoSuchMethod"));

    wstop.trigger();
    wtask.await.unwrap().unwrap();
    assert_eq!(sample("pfc_worker_slots_total"), Some(0.0));
    stop.trigger();
}

/// A codec sending and expecting empty messages, for calling a method by path.
#[derive(Default)]
struct EmptyCodec;

impl tonic::codec::Codec for EmptyCodec {
    type Encode = ();
    type Decode = ();
    type Encoder = EmptyCodec;
    type Decoder = EmptyCodec;
    fn encoder(&mut self) -> Self::Encoder {
        EmptyCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        EmptyCodec
    }
}

impl tonic::codec::Encoder for EmptyCodec {
    type Item = ();
    type Error = tonic::Status;
    fn encode(&mut self, _: (), _: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl tonic::codec::Decoder for EmptyCodec {
    type Item = ();
    type Error = tonic::Status;
    fn decode(&mut self, _: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<()>, Self::Error> {
        Ok(Some(()))
    }
}
