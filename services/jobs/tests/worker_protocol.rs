//! The worker protocol (`pfc.worker.v1.WorkerService`) seen by a raw gRPC client, message by
//! message, against a real `pfc jobs` server on a real redis-server: Hello validation, flow
//! control, fencing, what becomes of a stream's jobs when it breaks, goes silent, closes or
//! the server shuts down, results, and resuming after a reconnect.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use pfc_proto::jobs::v1 as jpb;
use pfc_proto::jobs::v1::job_service_client::JobServiceClient;
use pfc_proto::worker::v1 as pb;
use pfc_proto::worker::v1::work_request::Message as In;
use pfc_proto::worker::v1::work_response::Message as Out;
use pfc_proto::worker::v1::worker_service_client::WorkerServiceClient;
use pfc_testkit::RedisServer;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: pfc_jobs::Config,
}

/// `pfc jobs` on 127.0.0.1:0 over a private redis-server.
struct Server {
    addr: SocketAddr,
    stop: pfc_runtime::Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _redis: RedisServer,
}

impl Server {
    async fn start(extra: &[&str]) -> Self {
        let redis = RedisServer::start();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = redis.url();
        let addr_s = addr.to_string();
        let mut argv = vec!["pfc-jobs", "--redis-url", &url, "--grpc-addr", &addr_s];
        argv.extend_from_slice(&["--retry-backoff", "100ms"]);
        argv.extend_from_slice(extra);
        let config = Args::parse_from(argv).config;
        let stop = pfc_runtime::Shutdown::new();
        let task = tokio::spawn(pfc_jobs::run(listener, config, stop.wait()));
        pfc_testkit::wait_until("jobs server up", Duration::from_secs(10), || async move {
            let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .ok()?
                .connect()
                .await
                .ok()?;
            JobServiceClient::new(ch)
                .get_stats(jpb::GetStatsRequest {})
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        Self {
            addr,
            stop,
            task,
            _redis: redis,
        }
    }

    async fn channel(&self) -> Channel {
        channel(self.addr).await
    }

    async fn jobs(&self) -> JobServiceClient<Channel> {
        JobServiceClient::new(self.channel().await)
    }

    async fn submit(&self, kind: &str, payload: serde_json::Value) -> String {
        self.jobs()
            .await
            .submit_job(jpb::SubmitJobRequest {
                kind: kind.into(),
                payload: serde_json::to_vec(&payload).unwrap(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .job_id
    }

    async fn job(&self, id: &str) -> jpb::Job {
        self.jobs()
            .await
            .get_job(jpb::GetJobRequest { job_id: id.into() })
            .await
            .unwrap()
            .into_inner()
            .job
            .unwrap()
    }

    async fn stats(&self) -> jpb::GetStatsResponse {
        self.jobs()
            .await
            .get_stats(jpb::GetStatsRequest {})
            .await
            .unwrap()
            .into_inner()
    }
}

async fn channel(addr: SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A TCP proxy to `target` for one connection; aborting the task cuts the connection at once
/// (both sockets closed, no HTTP/2 goodbye), as the death of a process would.
async fn cuttable(target: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut c, _) = l.accept().await.unwrap();
        let mut s = tokio::net::TcpStream::connect(target).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut c, &mut s).await;
    });
    (addr, task)
}

/// A worker speaking the protocol by hand.
struct Raw {
    tx: Option<mpsc::Sender<pb::WorkRequest>>,
    rx: Streaming<pb::WorkResponse>,
    welcome: pb::Welcome,
}

fn hello(kinds: &[&str], concurrency: u32) -> pb::Hello {
    pb::Hello {
        name: "raw".into(),
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
        concurrency,
        sdk: "test".into(),
        ..Default::default()
    }
}

/// Opens a stream, sends `first`, returns the stream and its first answer.
async fn open(
    ch: Channel,
    first: pb::WorkRequest,
) -> (
    mpsc::Sender<pb::WorkRequest>,
    Streaming<pb::WorkResponse>,
    Result<Option<Out>, Status>,
) {
    let (tx, rx) = mpsc::channel(64);
    tx.send(first).await.unwrap();
    let mut resp = WorkerServiceClient::new(ch)
        .work(ReceiverStream::new(rx))
        .await
        .expect("Work answers at once")
        .into_inner();
    let first = resp.message().await.map(|m| m.and_then(|m| m.message));
    (tx, resp, first)
}

impl Raw {
    async fn connect(server: &Server, h: pb::Hello) -> Self {
        Self::try_connect(server, h).await.expect("welcome")
    }

    async fn try_connect(server: &Server, h: pb::Hello) -> Result<Self, Status> {
        Self::connect_at(server.addr, h).await
    }

    async fn connect_at(addr: SocketAddr, h: pb::Hello) -> Result<Self, Status> {
        let first = pb::WorkRequest {
            message: Some(In::Hello(h)),
        };
        let (tx, rx, answer) = open(channel(addr).await, first).await;
        match answer? {
            Some(Out::Welcome(welcome)) => Ok(Self {
                tx: Some(tx),
                rx,
                welcome,
            }),
            other => panic!("expected a Welcome, got {other:?}"),
        }
    }

    async fn send(&self, m: In) {
        self.tx
            .as_ref()
            .expect("stream open")
            .send(pb::WorkRequest { message: Some(m) })
            .await
            .unwrap();
    }

    /// The next message within `within`: `None` on timeout, `Some(Err)` for the final status.
    async fn next(&mut self, within: Duration) -> Option<Result<Option<Out>, Status>> {
        match tokio::time::timeout(within, self.rx.message()).await {
            Err(_) => None,
            Ok(r) => Some(r.map(|m| m.and_then(|m| m.message))),
        }
    }

    async fn assignment(&mut self) -> pb::JobAssignment {
        match self.next(Duration::from_secs(5)).await {
            Some(Ok(Some(Out::Assignment(a)))) => a,
            other => panic!("expected an assignment, got {other:?}"),
        }
    }

    async fn ack(&mut self) -> pb::ReportAck {
        match self.next(Duration::from_secs(5)).await {
            Some(Ok(Some(Out::Ack(a)))) => a,
            other => panic!("expected an ack, got {other:?}"),
        }
    }

    /// Nothing arrives for `d`.
    async fn quiet(&mut self, d: Duration) {
        if let Some(m) = self.next(d).await {
            panic!("expected nothing, got {m:?}");
        }
    }

    /// Waits for the stream's final status.
    async fn end(&mut self, within: Duration) -> Status {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                None => panic!("the stream did not end within {within:?}"),
                Some(Err(st)) => return st,
                Some(Ok(None)) => return Status::ok(""),
                Some(Ok(Some(_))) => {}
            }
        }
    }

    async fn succeed(&self, a: &pb::JobAssignment, result: &str) {
        self.send(In::Succeeded(pb::JobSucceeded {
            job_id: a.job_id.clone(),
            delivery: a.delivery,
            result: result.as_bytes().to_vec(),
            content_type: String::new(),
        }))
        .await;
    }
}

fn outcome(a: &pb::ReportAck) -> pb::ReportOutcome {
    pb::ReportOutcome::try_from(a.outcome).unwrap()
}

/// A bad Hello ends the stream with INVALID_ARGUMENT naming the field; a stream that starts
/// with anything else is FAILED_PRECONDITION; a good one is welcomed with its id and timings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_is_validated() {
    let server = Server::start(&[]).await;
    let cases: Vec<(pb::Hello, &str)> = vec![
        (hello(&[], 1), "Hello.kinds"),
        (hello(&["Resize"], 1), "\"Resize\""),
        (hello(&["a b"], 1), "not a kind"),
        (hello(&["ok"], 0), "concurrency"),
        (hello(&["ok"], 1025), "concurrency"),
    ];
    for (h, needle) in cases {
        let st = Raw::try_connect(&server, h.clone()).await.err().unwrap();
        assert_eq!(st.code(), Code::InvalidArgument, "{h:?}: {st:?}");
        assert!(st.message().contains(needle), "{h:?}: {}", st.message());
    }
    let many: Vec<String> = (0..65).map(|i| format!("k{i}")).collect();
    let st = Raw::try_connect(
        &server,
        pb::Hello {
            kinds: many,
            ..hello(&[], 1)
        },
    )
    .await
    .err()
    .unwrap();
    assert_eq!(st.code(), Code::InvalidArgument);

    let first = pb::WorkRequest {
        message: Some(In::Heartbeat(pb::Heartbeat {})),
    };
    let (_tx, _rx, answer) = open(server.channel().await, first).await;
    let st = answer.unwrap_err();
    assert_eq!(st.code(), Code::FailedPrecondition, "{st:?}");
    assert!(st.message().contains("must be a Hello"), "{}", st.message());

    let w = Raw::connect(&server, hello(&["resize", "resize", "email"], 4)).await;
    assert!(w.welcome.worker_id.starts_with("raw-"), "{:?}", w.welcome);
    assert_eq!((w.welcome.lease_ms, w.welcome.heartbeat_ms), (3000, 1000));
    assert_eq!(w.welcome.max_result_bytes, 1024 * 1024);
    let other = Raw::connect(&server, hello(&["resize"], 4)).await;
    assert_ne!(
        w.welcome.worker_id, other.welcome.worker_id,
        "ids are unique"
    );
}

/// The server never has more than `concurrency` unanswered assignments on a stream: with 10
/// jobs queued a worker of concurrency 3 gets 3, and one more per answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_more_than_concurrency() {
    let server = Server::start(&[]).await;
    for i in 0..10 {
        server.submit("flow", serde_json::json!({ "i": i })).await;
    }
    let mut w = Raw::connect(&server, hello(&["flow"], 3)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let a = w.assignment().await;
        assert_eq!(a.kind, "flow");
        assert_eq!(a.content_type, "application/json");
        assert_eq!((a.delivery, a.attempt, a.max_attempts), (1, 1, 3));
        let v: serde_json::Value = serde_json::from_slice(&a.payload).unwrap();
        assert!(v["i"].is_number());
        held.push(a);
    }
    w.quiet(Duration::from_millis(800)).await;
    let s = server.stats().await;
    assert_eq!((s.processing, s.queued), (3, 7));
    let me = s
        .workers
        .iter()
        .find(|x| x.id == w.welcome.worker_id)
        .expect("the stream's worker is live in GetStats");
    assert_eq!(
        (me.concurrency, me.kinds.clone()),
        (3, vec!["flow".to_owned()])
    );
    // one answer frees one slot
    w.succeed(&held[0], "1").await;
    let mut acks = 0;
    let mut assigned = 0;
    while acks + assigned < 2 {
        match w.next(Duration::from_secs(5)).await {
            Some(Ok(Some(Out::Ack(a)))) => {
                assert_eq!(outcome(&a), pb::ReportOutcome::Applied);
                acks += 1;
            }
            Some(Ok(Some(Out::Assignment(_)))) => assigned += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((acks, assigned), (1, 1));
    w.quiet(Duration::from_millis(500)).await;
    assert_eq!(server.stats().await.processing, 3);
}

/// A worker may declare kinds nobody submitted: it is welcomed and waits; jobs of other kinds
/// are never handed to it; the first job of its kind reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kinds_wait() {
    let server = Server::start(&[]).await;
    server.submit("somebody.else", serde_json::json!(1)).await;
    let mut w = Raw::connect(&server, hello(&["never.seen-before"], 2)).await;
    w.quiet(Duration::from_millis(800)).await;
    // ListKinds: the built-in kinds, and the live worker's kind with its concurrency
    let kinds = server
        .jobs()
        .await
        .list_kinds(jpb::ListKindsRequest {})
        .await
        .unwrap()
        .into_inner()
        .kinds;
    assert!(kinds.iter().any(|k| k.name == "uppercase" && k.builtin));
    let mine = kinds
        .iter()
        .find(|k| k.name == "never.seen-before")
        .expect("a live worker's kind is listed");
    assert_eq!(
        (mine.workers, mine.concurrency, mine.builtin),
        (1, 2, false)
    );
    let id = server
        .submit("never.seen-before", serde_json::json!({"x": 1}))
        .await;
    let a = w.assignment().await;
    assert_eq!(a.job_id, id);
    assert_eq!(server.stats().await.queued, 1, "the other kind still waits");
}

/// Reports about jobs the stream does not hold (unknown id, wrong delivery) are answered
/// STALE and change nothing; progress about them is answered with JobRevoked; the held job
/// still completes with the right delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_on_jobs_not_held_are_stale() {
    let server = Server::start(&[]).await;
    let id = server.submit("fence", serde_json::json!(null)).await;
    let mut w = Raw::connect(&server, hello(&["fence"], 1)).await;
    let a = w.assignment().await;
    w.send(In::Succeeded(pb::JobSucceeded {
        job_id: "01NOTAJOB".into(),
        delivery: 1,
        result: b"1".to_vec(),
        content_type: String::new(),
    }))
    .await;
    let ack = w.ack().await;
    assert_eq!(
        (ack.job_id.as_str(), outcome(&ack)),
        ("01NOTAJOB", pb::ReportOutcome::Stale)
    );
    w.send(In::Failed(pb::JobFailed {
        job_id: id.clone(),
        delivery: a.delivery + 1,
        error: "wrong delivery".into(),
        permanent: true,
    }))
    .await;
    assert_eq!(outcome(&w.ack().await), pb::ReportOutcome::Stale);
    w.send(In::Release(pb::Release {
        job_ids: vec!["01NOTAJOB".into()],
    }))
    .await;
    assert_eq!(outcome(&w.ack().await), pb::ReportOutcome::Stale);
    w.send(In::Progress(pb::JobProgress {
        job_id: "01NOTAJOB".into(),
        delivery: 1,
        percent: 10,
    }))
    .await;
    match w.next(Duration::from_secs(5)).await {
        Some(Ok(Some(Out::Revoked(r)))) => assert_eq!(r.job_id, "01NOTAJOB"),
        other => panic!("expected JobRevoked, got {other:?}"),
    }
    assert_eq!(server.job(&id).await.status(), jpb::JobStatus::Processing);
    w.succeed(&a, "{\"ok\":true}").await;
    assert_eq!(outcome(&w.ack().await), pb::ReportOutcome::Applied);
    let job = server.job(&id).await;
    assert_eq!(job.status(), jpb::JobStatus::Done);
    assert_eq!(job.result_payload, b"{\"ok\":true}");
    assert_eq!(job.result_content_type, "application/json");
}

/// Malformed or out-of-order messages end the stream with a clear status, and the jobs the
/// stream held go to another worker at once (their delivery counted): none lost, none held
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_end_the_stream_and_requeue() {
    let server = Server::start(&[]).await;
    let cases: Vec<(In, Option<In>, Code, &str)> = vec![
        (
            In::Hello(hello(&["m"], 1)),
            None,
            Code::FailedPrecondition,
            "Hello sent twice",
        ),
        (
            In::Heartbeat(pb::Heartbeat {}),
            Some(In::Progress(pb::JobProgress {
                job_id: String::new(),
                delivery: 0,
                percent: 101,
            })),
            Code::InvalidArgument,
            "percent is 101",
        ),
    ];
    for (case, (first, second, code, needle)) in cases.into_iter().enumerate() {
        // a kind per case: the previous case's worker, going away, may still have a take in
        // flight (whose batch it then gives back)
        let kind = format!("m{case}");
        let id = server.submit(&kind, serde_json::json!("x")).await;
        let mut bad = Raw::connect(&server, hello(&[&kind], 1)).await;
        let a = bad.assignment().await;
        assert_eq!(a.job_id, id);
        let msg = second.unwrap_or(first);
        bad.send(msg).await;
        let st = bad.end(Duration::from_secs(5)).await;
        assert_eq!(st.code(), code, "{st:?}");
        assert!(st.message().contains(needle), "{}", st.message());
        // the job is given to the next worker at once, as its second delivery
        let started = Instant::now();
        let mut good = Raw::connect(&server, hello(&[&kind], 1)).await;
        let b = good.assignment().await;
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(
            (b.job_id.as_str(), b.delivery, b.attempt),
            (id.as_str(), 2, 2)
        );
        good.succeed(&b, "\"done\"").await;
        assert_eq!(outcome(&good.ack().await), pb::ReportOutcome::Applied);
        assert_eq!(server.job(&id).await.status(), jpb::JobStatus::Done);
    }
    // an empty WorkRequest
    let mut bad = Raw::connect(&server, hello(&["m"], 1)).await;
    bad.tx
        .as_ref()
        .unwrap()
        .send(pb::WorkRequest { message: None })
        .await
        .unwrap();
    let st = bad.end(Duration::from_secs(5)).await;
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(
        st.message().contains("empty WorkRequest"),
        "{}",
        st.message()
    );
    let s = server.stats().await;
    assert_eq!((s.queued, s.processing, s.done_total), (0, 0, 2));
}

/// A stream that breaks (the client goes away) gives its jobs to another worker at once —
/// well under the lease — with the delivery counted; a stream the worker closes cleanly
/// gives them back with the attempt refunded and ends OK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_or_closed_streams_requeue_at_once() {
    let server = Server::start(&[]).await;
    let ids = [
        server.submit("b", serde_json::json!(1)).await,
        server.submit("b", serde_json::json!(2)).await,
    ];
    let (via, wire) = cuttable(server.addr).await;
    let mut victim = Raw::connect_at(via, hello(&["b"], 2)).await.unwrap();
    victim.assignment().await;
    victim.assignment().await;
    let mut next = Raw::connect(&server, hello(&["b"], 2)).await;
    next.quiet(Duration::from_millis(300)).await;
    // the victim's connection dies, as a killed process's would
    wire.abort();
    let broke = Instant::now();
    let a = next.assignment().await;
    let b = next.assignment().await;
    let took = broke.elapsed();
    eprintln!("a broken stream's jobs were redelivered in {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    for x in [&a, &b] {
        assert!(ids.contains(&x.job_id));
        assert_eq!((x.delivery, x.attempt), (2, 2));
    }
    // closing the sending side while holding them: released, attempts refunded, ends OK
    next.tx = None;
    let st = next.end(Duration::from_secs(5)).await;
    assert_eq!(st.code(), Code::Ok, "{st:?}");
    let mut last = Raw::connect(&server, hello(&["b"], 2)).await;
    let c = last.assignment().await;
    assert_eq!(
        (c.delivery, c.attempt),
        (3, 2),
        "released: attempt refunded"
    );
}

/// A worker that sends nothing for a whole lease (frozen, partitioned) is taken for dead: the
/// stream ends with DEADLINE_EXCEEDED and its job is redelivered; one that heartbeats keeps
/// its job as long as it likes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_worker_loses_its_jobs() {
    let server = Server::start(&[]).await;
    let id = server.submit("s", serde_json::json!(1)).await;
    let kept = server.submit("k", serde_json::json!(1)).await;
    let mut silent = Raw::connect(&server, hello(&["s"], 1)).await;
    let mut alive = Raw::connect(&server, hello(&["k"], 1)).await;
    silent.assignment().await;
    let k = alive.assignment().await;
    let beat = async {
        for _ in 0..11 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            alive.send(In::Heartbeat(pb::Heartbeat {})).await;
        }
    };
    let (st, ()) = tokio::join!(silent.end(Duration::from_secs(6)), beat);
    assert_eq!(st.code(), Code::DeadlineExceeded, "{st:?}");
    assert!(st.message().contains("Heartbeat"), "{}", st.message());
    let job = server.job(&id).await;
    assert_eq!(job.status(), jpb::JobStatus::Queued, "{job:?}");
    // 5.5 s > the 3 s lease: the heartbeating worker still holds its job
    assert_eq!(server.job(&kept).await.status(), jpb::JobStatus::Processing);
    alive.succeed(&k, "1").await;
    assert_eq!(outcome(&alive.ack().await), pb::ReportOutcome::Applied);
}

/// Results: JSON is validated and stored as JSON, text of a text job as text; a result that
/// is not valid JSON is REJECTED and fails the job with the reason; a permanent failure fails
/// at once; a retryable one is retried as a new delivery with the error kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_and_failures() {
    let server = Server::start(&[]).await;
    let text = server
        .jobs()
        .await
        .submit_job(jpb::SubmitJobRequest {
            text: "bonjour".into(),
            kind: "uppercase".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let mut w = Raw::connect(&server, hello(&["uppercase"], 1)).await;
    let a = w.assignment().await;
    assert_eq!(a.job_id, text);
    assert_eq!(a.content_type, "text/plain; charset=utf-8");
    assert_eq!(a.payload, b"bonjour");
    w.send(In::Succeeded(pb::JobSucceeded {
        job_id: a.job_id.clone(),
        delivery: a.delivery,
        result: b"BONJOUR".to_vec(),
        content_type: "text/plain; charset=utf-8".into(),
    }))
    .await;
    assert_eq!(outcome(&w.ack().await), pb::ReportOutcome::Applied);
    let job = server.job(&text).await;
    assert_eq!(job.result.as_deref(), Some("BONJOUR"));

    let bad = server.submit("r", serde_json::json!(1)).await;
    let perm = server.submit("r", serde_json::json!(2)).await;
    let retry = server.submit("r", serde_json::json!(3)).await;
    let mut w = Raw::connect(&server, hello(&["r"], 3)).await;
    let mut by_id = std::collections::HashMap::new();
    for _ in 0..3 {
        let a = w.assignment().await;
        by_id.insert(a.job_id.clone(), a);
    }
    w.succeed(&by_id[&bad], "{not json").await;
    let ack = w.ack().await;
    assert_eq!(outcome(&ack), pb::ReportOutcome::Rejected);
    assert!(ack.message.contains("not valid JSON"), "{}", ack.message);
    let job = server.job(&bad).await;
    assert_eq!(job.status(), jpb::JobStatus::Failed);
    assert!(job.error().contains("not valid JSON"), "{:?}", job.error);

    w.send(In::Failed(pb::JobFailed {
        job_id: perm.clone(),
        delivery: by_id[&perm].delivery,
        error: "bad input".into(),
        permanent: true,
    }))
    .await;
    assert_eq!(outcome(&w.ack().await), pb::ReportOutcome::Applied);
    let job = server.job(&perm).await;
    assert_eq!((job.status(), job.attempts), (jpb::JobStatus::Failed, 1));
    assert_eq!(job.error(), "bad input");

    w.send(In::Failed(pb::JobFailed {
        job_id: retry.clone(),
        delivery: by_id[&retry].delivery,
        error: "try again".into(),
        permanent: false,
    }))
    .await;
    assert_eq!(outcome(&w.ack().await), pb::ReportOutcome::Applied);
    // retried (backoff 100 ms) as the second delivery of the same stream
    let again = w.assignment().await;
    assert_eq!((again.job_id.as_str(), again.attempt), (retry.as_str(), 2));
    assert_eq!(server.job(&retry).await.error(), "try again");
}

/// Progress is recorded on the job (fenced by the delivery).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_recorded() {
    let server = Server::start(&[]).await;
    let id = server.submit("p", serde_json::json!(1)).await;
    let mut w = Raw::connect(&server, hello(&["p"], 1)).await;
    let a = w.assignment().await;
    w.send(In::Progress(pb::JobProgress {
        job_id: id.clone(),
        delivery: a.delivery,
        percent: 40,
    }))
    .await;
    let srv = &server;
    let id2 = id.clone();
    pfc_testkit::wait_until("progress 40", Duration::from_secs(5), || {
        let id = id2.clone();
        async move { (srv.job(&id).await.progress == Some(40)).then_some(()) }
    })
    .await;
}

/// Drain stops assignments; on shutdown the server waits for answers (bounded), releases
/// what is left (attempt refunded) and ends the stream with UNAVAILABLE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_and_server_shutdown() {
    let server = Server::start(&["--worker-drain-timeout", "1s"]).await;
    let first = server.submit("d", serde_json::json!(1)).await;
    let mut w = Raw::connect(&server, hello(&["d"], 1)).await;
    let a = w.assignment().await;
    assert_eq!(a.job_id, first);
    w.send(In::Drain(pb::Drain {})).await;
    w.succeed(&a, "1").await;
    assert_eq!(outcome(&w.ack().await), pb::ReportOutcome::Applied);
    let waiting = server.submit("d", serde_json::json!(2)).await;
    w.quiet(Duration::from_millis(800)).await;

    let mut holder = Raw::connect(&server, hello(&["d"], 1)).await;
    let b = holder.assignment().await;
    assert_eq!(b.job_id, waiting);
    let beat = async {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            holder.send(In::Heartbeat(pb::Heartbeat {})).await;
        }
    };
    server.stop.trigger();
    let stopped = Instant::now();
    let st = tokio::select! {
        st = w.end(Duration::from_secs(5)) => st,
        _ = beat => unreachable!(),
    };
    assert_eq!(st.code(), Code::Unavailable, "{st:?}");
    let st = holder.end(Duration::from_secs(5)).await;
    assert_eq!(st.code(), Code::Unavailable, "{st:?}");
    assert!(
        stopped.elapsed() >= Duration::from_millis(900),
        "drain timeout honoured"
    );
    server.task.await.unwrap().unwrap();
}

/// A reconnecting worker resumes with its previous id and the jobs it still runs: their
/// reports count (no rerun) — the jobs server it was connected to may have crashed; a job it
/// lost meanwhile is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_reconnect() {
    let server = Server::start(&[]).await;
    let id = server.submit("z", serde_json::json!(1)).await;
    let first = Raw::connect(&server, hello(&["z"], 2)).await;
    let mut first = first;
    let a = first.assignment().await;
    let worker_id = first.welcome.worker_id.clone();
    let resume = pb::Hello {
        worker_id: worker_id.clone(),
        held: vec![
            pb::HeldJob {
                job_id: id.clone(),
                delivery: a.delivery,
                attempt: a.attempt,
            },
            pb::HeldJob {
                job_id: "01GONE".into(),
                delivery: 7,
                attempt: 1,
            },
        ],
        ..hello(&["z"], 2)
    };
    let mut again = Raw::connect(&server, resume).await;
    assert_eq!(again.welcome.worker_id, worker_id);
    match again.next(Duration::from_secs(3)).await {
        Some(Ok(Some(Out::Revoked(r)))) => assert_eq!(r.job_id, "01GONE"),
        other => panic!("expected JobRevoked, got {other:?}"),
    }
    again.succeed(&a, "\"resumed\"").await;
    assert_eq!(outcome(&again.ack().await), pb::ReportOutcome::Applied);
    let job = server.job(&id).await;
    assert_eq!((job.status(), job.attempts), (jpb::JobStatus::Done, 1));
    drop(first);
}

/// Named queues over the protocol: a worker that names queues (`Hello.queues`) is assigned
/// only their jobs, one that names none every queue's; a job is found by its id alone; bad
/// queue names are INVALID_ARGUMENT naming the field; ListQueues counts each queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_choose_queues() {
    let server = Server::start(&[]).await;
    let st = Raw::try_connect(
        &server,
        pb::Hello {
            queues: vec!["Bad Queue".into()],
            ..hello(&["q"], 1)
        },
    )
    .await
    .err()
    .unwrap();
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
    assert!(st.message().contains("Hello.queues"), "{}", st.message());

    let mut jobs = server.jobs().await;
    let submit = |queue: &str| jpb::SubmitJobRequest {
        kind: "q".into(),
        payload: b"1".to_vec(),
        queue: queue.into(),
        ..Default::default()
    };
    let st = jobs.submit_job(submit("NOPE")).await.unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().contains("queue"), "{}", st.message());
    let st = jobs
        .list_jobs(jpb::ListJobsRequest {
            queue: "a b".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);

    let mail = jobs.submit_job(submit("mail")).await.unwrap().into_inner();
    assert!(mail.job_id.starts_with("mail."), "{}", mail.job_id);
    assert_eq!(mail.job.unwrap().queue, "mail");
    let other = jobs
        .submit_job(submit(""))
        .await
        .unwrap()
        .into_inner()
        .job_id;

    let mut w = Raw::connect(
        &server,
        pb::Hello {
            queues: vec!["mail".into()],
            ..hello(&["q"], 4)
        },
    )
    .await;
    let a = w.assignment().await;
    assert_eq!(a.job_id, mail.job_id);
    w.quiet(Duration::from_millis(700)).await;
    let mut any = Raw::connect(&server, hello(&["q"], 4)).await;
    assert_eq!(any.assignment().await.job_id, other);

    w.succeed(&a, "2").await;
    assert_eq!(outcome(&w.ack().await), pb::ReportOutcome::Applied);
    let job = server.job(&mail.job_id).await;
    assert_eq!(
        (job.queue.as_str(), job.status()),
        ("mail", jpb::JobStatus::Done)
    );
    let page = jobs
        .list_jobs(jpb::ListJobsRequest {
            queue: "mail".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.jobs.len(), 1);
    let qs = jobs
        .list_queues(jpb::ListQueuesRequest {})
        .await
        .unwrap()
        .into_inner()
        .queues;
    let names: Vec<&str> = qs.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["default", "mail"]);
    assert_eq!((qs[1].done_total, qs[1].submitted_total), (1, 1));
    assert_eq!((qs[0].processing, qs[0].submitted_total), (1, 1));
}

/// Priorities over the protocol: out of range is INVALID_ARGUMENT with the range; a worker
/// with one slot is assigned the highest priority first, FIFO within one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slot_runs_by_priority() {
    let server = Server::start(&[]).await;
    let mut jobs = server.jobs().await;
    let submit = |priority: i32, n: u32| jpb::SubmitJobRequest {
        kind: "q".into(),
        payload: n.to_string().into_bytes(),
        priority,
        ..Default::default()
    };
    for bad in [11, -11, i32::MAX] {
        let st = jobs.submit_job(submit(bad, 0)).await.unwrap_err();
        assert_eq!(st.code(), Code::InvalidArgument);
        assert!(st.message().contains("-10 to 10"), "{}", st.message());
    }
    let mut ids = Vec::new();
    for (p, n) in [(0, 1), (3, 2), (-10, 3), (3, 4), (10, 5)] {
        let r = jobs.submit_job(submit(p, n)).await.unwrap().into_inner();
        assert_eq!(r.job.unwrap().priority, p);
        ids.push(r.job_id);
    }
    let mut w = Raw::connect(&server, hello(&["q"], 1)).await;
    // the slot is free once the answer is read, so the next assignment may come before the
    // ack of the previous answer
    let mut order = Vec::new();
    while order.len() < 5 {
        match w.next(Duration::from_secs(5)).await {
            Some(Ok(Some(Out::Assignment(a)))) => {
                order.push(ids.iter().position(|id| *id == a.job_id).unwrap() + 1);
                w.succeed(&a, "0").await;
            }
            Some(Ok(Some(Out::Ack(a)))) => assert_eq!(outcome(&a), pb::ReportOutcome::Applied),
            other => panic!("expected an assignment or an ack, got {other:?}"),
        }
    }
    assert_eq!(order, [5, 2, 4, 1, 3]);
}

/// PauseQueue/ResumeQueue over gRPC: NOT_FOUND for an unknown queue, INVALID_ARGUMENT for a
/// malformed name; a worker is assigned nothing from a paused queue (which still accepts
/// submits) and gets its jobs as soon as it is resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_queue_assigns_nothing() {
    let server = Server::start(&[]).await;
    let mut jobs = server.jobs().await;
    let st = jobs
        .pause_queue(jpb::PauseQueueRequest {
            name: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::NotFound, "{st:?}");
    let st = jobs
        .pause_queue(jpb::PauseQueueRequest { name: "A B".into() })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
    let submit = || jpb::SubmitJobRequest {
        kind: "q".into(),
        payload: b"1".to_vec(),
        queue: "p".into(),
        ..Default::default()
    };
    jobs.submit_job(submit()).await.unwrap();
    let q = jobs
        .pause_queue(jpb::PauseQueueRequest { name: "p".into() })
        .await
        .unwrap()
        .into_inner()
        .queue
        .unwrap();
    assert!(q.paused);
    let id = jobs.submit_job(submit()).await.unwrap().into_inner().job_id;
    let mut w = Raw::connect(&server, hello(&["q"], 4)).await;
    w.quiet(Duration::from_millis(800)).await;
    let q = jobs
        .resume_queue(jpb::ResumeQueueRequest { name: "p".into() })
        .await
        .unwrap()
        .into_inner()
        .queue
        .unwrap();
    assert!(!q.paused);
    let first = w.assignment().await;
    let second = w.assignment().await;
    assert_eq!(second.job_id, id, "FIFO after resume ({})", first.job_id);
}

/// UpdateQueue's concurrency limit over the protocol: with a limit of 2, three workers with
/// 8 slots each never hold more than 2 of the queue's jobs unanswered (sampled every round,
/// with ListQueues), and every job still runs; out-of-range limits are INVALID_ARGUMENT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_holds_across_workers() {
    let server = Server::start(&[]).await;
    let mut jobs = server.jobs().await;
    for _ in 0..12 {
        jobs.submit_job(jpb::SubmitJobRequest {
            kind: "q".into(),
            payload: b"1".to_vec(),
            queue: "lim".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let limit = |n: u32| jpb::UpdateQueueRequest {
        name: "lim".into(),
        concurrency_limit: n,
        ..Default::default()
    };
    let st = jobs.update_queue(limit(100_001)).await.unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
    let q = jobs
        .update_queue(limit(2))
        .await
        .unwrap()
        .into_inner()
        .queue
        .unwrap();
    assert_eq!(q.concurrency_limit, 2);
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(Raw::connect(&server, hello(&["q"], 8)).await);
    }
    let mut done = 0;
    while done < 12 {
        // hold what arrives for a while, then answer it all
        let mut held: Vec<(usize, pb::JobAssignment)> = Vec::new();
        for _ in 0..3 {
            for (i, w) in workers.iter_mut().enumerate() {
                while let Some(Ok(Some(m))) = w.next(Duration::from_millis(100)).await {
                    if let Out::Assignment(a) = m {
                        held.push((i, a));
                    }
                }
            }
        }
        assert!(
            held.len() <= 2,
            "{} jobs held at once with a limit of 2",
            held.len()
        );
        let qs = jobs
            .list_queues(jpb::ListQueuesRequest {})
            .await
            .unwrap()
            .into_inner();
        let lim = qs.queues.iter().find(|q| q.name == "lim").unwrap();
        assert!(lim.processing <= 2, "{} processing", lim.processing);
        for (i, a) in &held {
            workers[*i].succeed(a, "0").await;
        }
        done += held.len();
    }
}
