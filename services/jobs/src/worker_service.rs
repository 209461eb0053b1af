//! The `pfc.worker.v1.WorkerService`: the worker protocol (`docs/workers.md`) over the job
//! store, so a program in any language can run jobs with the guarantees of the built-in
//! worker.
//!
//! Each `Work` stream is a *session*, one task that owns the stream's state: the worker's id
//! and kinds, the leases it holds (job id → delivery, the fence of every report), how many of
//! them are still unanswered (flow control: never more than the declared concurrency), and
//! the messages waiting to go out. Around it, small helper tasks do the store calls that may
//! take a while, so the session always keeps reading: a **take** (never cancelled: Redis may
//! have leased the batch, so whoever gets its result when the session is gone releases it),
//! a **reporter** (completions and releases in batches, retried while the store is down), a
//! **heartbeat** (the stream's leases every lease/3, while the worker is heard from) and
//! **progress** (coalesced per job).
//!
//! How a session ends decides what becomes of the jobs still running on the worker:
//! - the stream broke (process killed, connection reset), the worker went silent for a whole
//!   lease, or it broke the protocol: [`JobStore::abandon`] — requeued at once, the delivery
//!   counts towards max attempts (a job that crashes its worker still reaches its dead letter);
//! - the worker closed its side, or the server is shutting down (after a bounded wait for the
//!   answers): [`JobStore::release`] — requeued at once, the attempt refunded.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use pfc_proto::timestamp_from_ms;
use pfc_proto::worker::v1 as pb;
use pfc_proto::worker::v1::work_request::Message as In;
use pfc_proto::worker::v1::work_response::Message as Out;
use pfc_proto::worker::v1::worker_service_server::{WorkerService, WorkerServiceServer};
use pfc_queue::{
    Completion, CompletionResult, Job, JobStore, LeaseRef, Outcome, Payload, WorkerInfo, JSON,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::metrics::JobLabels;

/// The gRPC service name, as health checks and reflection know it.
pub const WORKER_SERVICE_NAME: &str = "pfc.worker.v1.WorkerService";

/// Content type of text inputs and results (the built-in processors' jobs).
pub const TEXT: &str = "text/plain; charset=utf-8";

/// Most kinds one worker may declare.
pub const MAX_KINDS: usize = 64;
/// Most jobs one stream may run at once.
pub const MAX_CONCURRENCY: u32 = 1024;
/// Longest error message stored from a `JobFailed` (longer ones are cut).
pub const MAX_ERROR_BYTES: usize = 4096;
/// How long a new stream may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a take waits for a job when none is due (then it is sent again).
const TAKE_WAIT: Duration = Duration::from_millis(500);

/// Settings of the worker service (shared by `pfc jobs` and `pfc dev`).
#[derive(Clone, Debug, clap::Args)]
pub struct WorkerServiceArgs {
    /// Largest result a worker may report (`JobSucceeded.result`), in bytes.
    #[arg(long, env = "PFC_MAX_RESULT_BYTES", default_value_t = 1024 * 1024)]
    pub max_result_bytes: usize,
    /// On shutdown, how long connected workers may take to answer the jobs they hold before
    /// those are given back to the queue.
    #[arg(long, env = "PFC_WORKER_DRAIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub worker_drain_timeout: Duration,
}

impl Default for WorkerServiceArgs {
    fn default() -> Self {
        Self {
            max_result_bytes: 1024 * 1024,
            worker_drain_timeout: Duration::from_secs(10),
        }
    }
}

/// The WorkerService: cheap to clone; every stream gets its own session task.
#[derive(Clone)]
pub struct Workers {
    store: Arc<dyn JobStore>,
    lease: Duration,
    args: WorkerServiceArgs,
    stop: pfc_runtime::Shutdown,
}

impl Workers {
    /// A WorkerService over `store` whose leases last `lease` (the store's). When `stop` is
    /// triggered, sessions stop leasing, give their workers `worker_drain_timeout` to answer,
    /// release the rest and end with UNAVAILABLE (the workers reconnect elsewhere).
    pub fn new(
        store: Arc<dyn JobStore>,
        lease: Duration,
        args: WorkerServiceArgs,
        stop: pfc_runtime::Shutdown,
    ) -> Self {
        Self {
            store,
            lease,
            args,
            stop,
        }
    }

    /// As a tonic service, with a decode limit that leaves room for the largest result.
    pub fn into_server(self) -> WorkerServiceServer<Self> {
        let max = (self.args.max_result_bytes + 64 * 1024).max(4 * 1024 * 1024);
        WorkerServiceServer::new(self).max_decoding_message_size(max)
    }

    fn heartbeat_every(&self) -> Duration {
        (self.lease / 3).max(Duration::from_millis(50))
    }
}

/// What `ListKinds` answers: the built-in kinds (described), then every other kind declared
/// by a live worker (by name); each with the number of live workers declaring it and their
/// total concurrency (shared with their other kinds).
pub fn kinds(
    registry: &pfc_processors::Registry,
    workers: &[WorkerInfo],
) -> Vec<pfc_proto::jobs::v1::Kind> {
    use pfc_proto::jobs::v1::Kind;
    let mut declared: std::collections::BTreeMap<&str, (u32, u32)> = Default::default();
    for w in workers {
        for k in &w.kinds {
            let e = declared.entry(k.as_str()).or_default();
            e.0 += 1;
            e.1 = e.1.saturating_add(w.concurrency);
        }
    }
    let mut out: Vec<Kind> = registry
        .iter()
        .map(|p| {
            let (workers, concurrency) = declared.remove(p.name()).unwrap_or_default();
            Kind {
                name: p.name().into(),
                description: p.description().into(),
                builtin: true,
                workers,
                concurrency,
            }
        })
        .collect();
    out.extend(
        declared
            .into_iter()
            .map(|(name, (workers, concurrency))| Kind {
                name: name.into(),
                workers,
                concurrency,
                ..Default::default()
            }),
    );
    out
}

/// True when `kind` matches `[a-z0-9][a-z0-9._-]{0,63}` (the rule of submits, too).
pub fn valid_kind(kind: &str) -> bool {
    crate::validate::is_valid_kind(kind)
}

/// True for names and ids made of `[A-Za-z0-9._-]`, 1 to `max` bytes.
fn valid_name(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

/// A Hello that passed validation.
#[derive(Debug)]
struct Hello {
    name: String,
    kinds: Vec<String>,
    /// Queues to take from; empty: every queue.
    queues: Vec<String>,
    concurrency: usize,
    sdk: String,
    resume: Option<String>,
    held: Vec<(LeaseRef, u32)>,
}

/// Checks a Hello; the message of an error says which field is wrong and why.
fn validate_hello(h: pb::Hello) -> Result<Hello, Status> {
    let name = if h.name.is_empty() {
        "worker".to_owned()
    } else {
        h.name
    };
    if !valid_name(&name, 64) {
        return Err(Status::invalid_argument(format!(
            "Hello.name {name:?} must be 1 to 64 characters of [A-Za-z0-9._-]"
        )));
    }
    if h.kinds.is_empty() || h.kinds.len() > MAX_KINDS {
        return Err(Status::invalid_argument(format!(
            "Hello.kinds has {} kinds; a worker declares 1 to {MAX_KINDS}",
            h.kinds.len()
        )));
    }
    let mut kinds: Vec<String> = Vec::with_capacity(h.kinds.len());
    for k in h.kinds {
        if !valid_kind(&k) {
            return Err(Status::invalid_argument(format!(
                "Hello.kinds: {k:?} is not a kind: use [a-z0-9][a-z0-9._-]{{0,63}}"
            )));
        }
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    if h.queues.len() > MAX_KINDS {
        return Err(Status::invalid_argument(format!(
            "Hello.queues has {} queues; a worker names at most {MAX_KINDS} (none: every queue)",
            h.queues.len()
        )));
    }
    let mut queues: Vec<String> = Vec::with_capacity(h.queues.len());
    for q in h.queues {
        if !pfc_queue::is_valid_queue(&q) {
            return Err(Status::invalid_argument(format!(
                "Hello.queues: {:?} is not a queue name: use [a-z0-9][a-z0-9._-]{{0,63}}",
                crate::validate::truncate(&q, 80)
            )));
        }
        if !queues.contains(&q) {
            queues.push(q);
        }
    }
    if !(1..=MAX_CONCURRENCY).contains(&h.concurrency) {
        return Err(Status::invalid_argument(format!(
            "Hello.concurrency is {}; it must be 1 to {MAX_CONCURRENCY}",
            h.concurrency
        )));
    }
    if h.sdk.len() > 64 {
        return Err(Status::invalid_argument(
            "Hello.sdk is longer than 64 bytes",
        ));
    }
    let resume = if h.worker_id.is_empty() {
        if !h.held.is_empty() {
            return Err(Status::invalid_argument(
                "Hello.held needs Hello.worker_id (the id of the stream that held them)",
            ));
        }
        None
    } else if valid_name(&h.worker_id, 128) {
        Some(h.worker_id)
    } else {
        return Err(Status::invalid_argument(
            "Hello.worker_id must be 1 to 128 characters of [A-Za-z0-9._-]",
        ));
    };
    if h.held.len() > h.concurrency as usize {
        return Err(Status::invalid_argument(format!(
            "Hello.held names {} jobs, more than the concurrency {}",
            h.held.len(),
            h.concurrency
        )));
    }
    let mut held: Vec<(LeaseRef, u32)> = Vec::with_capacity(h.held.len());
    for j in h.held {
        if j.job_id.is_empty() || j.job_id.len() > 128 {
            return Err(Status::invalid_argument(
                "Hello.held: a job_id is empty or too long",
            ));
        }
        if !held.iter().any(|(l, _)| l.job_id == j.job_id) {
            let lease = LeaseRef {
                job_id: j.job_id,
                delivery: j.delivery,
            };
            held.push((lease, j.attempt.max(1)));
        }
    }
    Ok(Hello {
        name,
        kinds,
        queues,
        concurrency: h.concurrency as usize,
        sdk: h.sdk,
        resume,
        held,
    })
}

type WorkStream = Pin<Box<dyn Stream<Item = Result<pb::WorkResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl WorkerService for Workers {
    type WorkStream = WorkStream;

    /// Answers at once; the session reads the Hello (so a client that waits for the
    /// response headers before it writes works too) and ends the stream with a status when it
    /// is wrong.
    async fn work(
        &self,
        req: Request<Streaming<pb::WorkRequest>>,
    ) -> Result<Response<Self::WorkStream>, Status> {
        if self.stop.is_triggered() {
            return Err(Status::unavailable(
                "the jobs server is shutting down; connect to another one",
            ));
        }
        let peer = req.remote_addr();
        // A worker credential limited to some kinds (set by the access guard, if on).
        let allowed = req
            .extensions()
            .get::<pfc_access::Caller>()
            .and_then(|c| c.kinds.clone());
        let inbound = req.into_inner();
        // Messages the session may have queued for the client before it stops reading its
        // reports: one per slot for assignments, acks and revocations, plus slack. A client
        // that leaves more than this unread is stuck (see `Session::push`).
        let (tx, rx) = mpsc::channel(4 * MAX_CONCURRENCY as usize + 1024);
        let this = self.clone();
        tokio::spawn(
            async move {
                if let Err(status) = this.session(inbound, tx.clone(), allowed).await {
                    let _ = tx.try_send(Err(status));
                }
            }
            .instrument(tracing::info_span!("Work", peer = ?peer, worker = tracing::field::Empty)),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Where a lease is, seen from the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Assigned, not answered yet: holds a slot.
    Running,
    /// Answered (report or release sent to the store), not applied yet: the lease is still
    /// renewed, the slot is free.
    Reporting,
}

/// What the reporter does with one answer.
enum Op {
    /// A report; `rejected` is the reason when the worker's result was refused (the job is
    /// failed with it).
    Complete {
        completion: Completion,
        rejected: Option<String>,
        /// For `pfc_jobs_finished_total`.
        labels: Option<Arc<JobLabels>>,
    },
    /// A release; `silent`: the worker never saw the job (taken after a Drain), no ack.
    Release { lease: LeaseRef, silent: bool },
}

/// What became of one answer.
struct Done {
    lease: LeaseRef,
    outcome: pb::ReportOutcome,
    message: String,
    silent: bool,
}

/// Why a session ended.
enum End {
    /// The worker closed its side of the stream.
    Closed,
    /// The stream broke (transport error, reset, the client went away).
    Broken(String),
    /// Nothing heard from the worker for a whole lease.
    Silent,
    /// The worker broke the protocol.
    Violation(Status),
    /// The server is shutting down.
    Shutdown,
}

type Tx = mpsc::Sender<Result<pb::WorkResponse, Status>>;
/// Where a take's batch arrives (`Err`: the take failed; the next one backs off).
type TakeRx = mpsc::Receiver<Result<Vec<Job>, ()>>;

/// A lease the stream holds.
#[derive(Clone, Debug)]
struct Held {
    delivery: u64,
    /// The store's attempt number of the delivery (sets the retry backoff).
    attempt: u32,
    state: State,
    /// Queue, kind and attempts of the job for the metrics (`None` for a lease the worker
    /// resumed after reconnecting: the core has not seen that job).
    labels: Option<Arc<JobLabels>>,
}

struct Session {
    id: String,
    kinds: Vec<String>,
    queues: Vec<String>,
    concurrency: usize,
    held: HashMap<String, Held>,
    running: usize,
    draining: bool,
    tx: Tx,
    ops: mpsc::UnboundedSender<Op>,
}

impl Session {
    /// Queues a message for the worker. The queue is large enough for everything a worker
    /// that reads its stream can have pending; when it is full the worker is stuck.
    fn push(&self, m: Out) -> Result<(), End> {
        match self.tx.try_send(Ok(pb::WorkResponse { message: Some(m) })) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(End::Broken("response stream closed".into()))
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                Err(End::Violation(Status::resource_exhausted(
                    "the worker does not read its stream: too many unread messages",
                )))
            }
        }
    }

    fn ack(
        &self,
        lease: &LeaseRef,
        outcome: pb::ReportOutcome,
        message: String,
    ) -> Result<(), End> {
        self.push(Out::Ack(pb::ReportAck {
            job_id: lease.job_id.clone(),
            delivery: lease.delivery,
            outcome: outcome as i32,
            message,
        }))
    }

    fn revoke(&self, lease: &LeaseRef) -> Result<(), End> {
        self.push(Out::Revoked(pb::JobRevoked {
            job_id: lease.job_id.clone(),
            delivery: lease.delivery,
        }))
    }

    /// True when the stream holds `lease` and has not answered it yet.
    fn running(&self, job_id: &str, delivery: u64) -> bool {
        self.held
            .get(job_id)
            .is_some_and(|h| h.delivery == delivery && h.state == State::Running)
    }

    /// Marks a running lease answered: its slot is free, its lease stays until applied.
    /// Returns its attempt number.
    fn answered(&mut self, job_id: &str) -> u32 {
        match self.held.get_mut(job_id) {
            Some(h) if h.state == State::Running => {
                h.state = State::Reporting;
                self.running -= 1;
                h.attempt
            }
            Some(h) => h.attempt,
            None => 1,
        }
    }

    fn leases(&self, only_running: bool) -> Vec<LeaseRef> {
        self.held
            .iter()
            .filter(|(_, h)| !only_running || h.state == State::Running)
            .map(|(id, h)| LeaseRef {
                job_id: id.clone(),
                delivery: h.delivery,
            })
            .collect()
    }

    fn info(&self) -> WorkerInfo {
        WorkerInfo {
            id: self.id.clone(),
            concurrency: self.concurrency as u32,
            in_flight: self.held.len() as u32,
            kinds: self.kinds.clone(),
            last_seen: 0,
        }
    }
}

impl Workers {
    /// One stream, from Hello to its end. An error is the stream's final status.
    async fn session(
        &self,
        mut inbound: Streaming<pb::WorkRequest>,
        tx: Tx,
        allowed: Option<Vec<String>>,
    ) -> Result<(), Status> {
        let first = tokio::select! {
            m = tokio::time::timeout(HELLO_TIMEOUT, inbound.next()) => m.map_err(|_| {
                Status::deadline_exceeded("no Hello within 10 s of opening the stream")
            })?,
            _ = self.stop.wait() => return Err(Status::unavailable("the jobs server is shutting down; connect to another one")),
        };
        let hello = match first {
            Some(Ok(pb::WorkRequest {
                message: Some(In::Hello(h)),
            })) => validate_hello(h)?,
            Some(Ok(_)) => {
                return Err(Status::failed_precondition(
                    "the first message of a Work stream must be a Hello",
                ))
            }
            Some(Err(status)) => return Err(status),
            None => return Ok(()),
        };
        if let Some(allowed) = &allowed {
            if let Some(k) = hello.kinds.iter().find(|k| !allowed.contains(k)) {
                return Err(Status::permission_denied(format!(
                    "Hello.kinds: this worker key may run only {allowed:?}, not {k:?}"
                )));
            }
        }
        let id = hello
            .resume
            .clone()
            .unwrap_or_else(|| format!("{}-{:08x}", hello.name, rand::random::<u32>()));
        tracing::Span::current().record("worker", id.as_str());
        tracing::info!(
            worker = %id,
            kinds = ?hello.kinds,
            queues = ?hello.queues,
            concurrency = hello.concurrency,
            sdk = %hello.sdk,
            resumed = hello.held.len(),
            "worker connected"
        );

        let (ops_tx, ops_rx) = mpsc::unbounded_channel();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let reporter = tokio::spawn(reporter(self.store.clone(), id.clone(), ops_rx, done_tx));
        let mut s = Session {
            id: id.clone(),
            kinds: hello.kinds,
            queues: hello.queues,
            concurrency: hello.concurrency,
            held: HashMap::new(),
            running: 0,
            draining: false,
            tx,
            ops: ops_tx,
        };
        let _connected = crate::metrics::worker_session();
        for (l, attempt) in hello.held {
            let held = Held {
                delivery: l.delivery,
                attempt,
                state: State::Running,
                labels: None,
            };
            s.held.insert(l.job_id, held);
            s.running += 1;
        }
        let hb = self.heartbeat_every();
        let welcome = Out::Welcome(pb::Welcome {
            worker_id: id.clone(),
            lease_ms: self.lease.as_millis() as u32,
            heartbeat_ms: hb.as_millis() as u32,
            max_result_bytes: self.args.max_result_bytes as u32,
        });
        let (end, take_in_flight) = match s.push(welcome) {
            Ok(()) => self.serve(&mut s, &mut inbound, &mut done_rx).await,
            Err(end) => (end, None),
        };

        // The worker can no longer answer the jobs it runs: give them back at once.
        let running = s.leases(true);
        let requeued = running.len();
        for l in &running {
            s.held.remove(&l.job_id);
        }
        s.running = 0;
        let (graceful, status) = match &end {
            End::Closed => (true, None),
            End::Shutdown => (
                true,
                Some(Status::unavailable(
                    "the jobs server is shutting down; reconnect (to another one)",
                )),
            ),
            End::Broken(_) => (false, None),
            End::Silent => (
                false,
                Some(Status::deadline_exceeded(format!(
                    "nothing heard from the worker for {:?} (send a Heartbeat every {:?}): its jobs were requeued",
                    self.lease, hb
                ))),
            ),
            End::Violation(st) => (false, Some(st.clone())),
        };
        give_back(&*self.store, &id, &running, graceful).await;
        // a take still in flight: its batch was never seen by the worker (never cancel a
        // take; wait for it, so a shutdown does not strand its jobs until their leases expire)
        if let Some(mut rx) = take_in_flight {
            if let Ok(Some(Ok(jobs))) =
                tokio::time::timeout(Duration::from_secs(5), rx.recv()).await
            {
                let leases: Vec<LeaseRef> = jobs.iter().map(LeaseRef::of).collect();
                give_back(&*self.store, &id, &leases, true).await;
            }
        }
        // Answers already sent to the store still land (and are acknowledged if the worker
        // still listens): wait for the reporter to finish them.
        drop(s.ops);
        let flush = async {
            while let Some(d) = done_rx.recv().await {
                if !d.silent {
                    let _ = s.tx.try_send(Ok(pb::WorkResponse {
                        message: Some(Out::Ack(pb::ReportAck {
                            job_id: d.lease.job_id,
                            delivery: d.lease.delivery,
                            outcome: d.outcome as i32,
                            message: d.message,
                        })),
                    }));
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(10), flush)
            .await
            .is_err()
        {
            tracing::warn!(worker = %id, "reports still unapplied 10 s after the stream ended; their leases will expire");
        }
        let _ = reporter.await;
        if let Err(e) = self.store.unregister_worker(&id).await {
            tracing::debug!(worker = %id, error = %e, "failed to unregister the worker");
        }
        let why = match &end {
            End::Closed => "closed by the worker".to_owned(),
            End::Broken(e) => format!("broken: {e}"),
            End::Silent => "worker silent for a lease".to_owned(),
            End::Violation(st) => format!("protocol violation: {}", st.message()),
            End::Shutdown => "server shutting down".to_owned(),
        };
        tracing::info!(worker = %id, end = %why, requeued, "worker disconnected");
        match status {
            Some(st) => Err(st),
            None => Ok(()),
        }
    }

    /// The session loop: reads the worker's messages, leases jobs while it has free slots,
    /// keeps the leases alive, applies answers. Returns why it ended, and the take still in
    /// flight, if any.
    async fn serve(
        &self,
        s: &mut Session,
        inbound: &mut Streaming<pb::WorkRequest>,
        done_rx: &mut mpsc::UnboundedReceiver<Done>,
    ) -> (End, Option<TakeRx>) {
        let (take_tx, mut take_rx): (_, TakeRx) = mpsc::channel(1);
        let (lost_tx, mut lost_rx) = mpsc::unbounded_channel::<Vec<LeaseRef>>();
        let (progress_tx, progress_rx) = mpsc::unbounded_channel::<(LeaseRef, u32)>();
        tokio::spawn(progress(
            self.store.clone(),
            s.id.clone(),
            progress_rx,
            lost_tx.clone(),
        ));
        let every = self.heartbeat_every();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let mut taking = false;
        let mut take_backoff = Duration::ZERO;
        let mut beating = false;
        let (beat_tx, mut beat_rx) = mpsc::channel::<()>(1);
        let mut stopping: Option<Instant> = None;

        loop {
            // lease more while there are free slots (one take at a time, never cancelled)
            if !taking && !s.draining && s.running < s.concurrency {
                taking = true;
                let max = s.concurrency - s.running;
                tokio::spawn(take(
                    self.store.clone(),
                    s.id.clone(),
                    s.queues.clone(),
                    s.kinds.clone(),
                    max,
                    take_backoff,
                    take_tx.clone(),
                ));
            }
            if stopping.is_some() && s.held.is_empty() {
                return (End::Shutdown, taking.then_some(take_rx));
            }
            let deadline = stopping.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let r: Result<(), End> = tokio::select! {
                m = inbound.next() => match m {
                    Some(Ok(m)) => {
                        last_heard = Instant::now();
                        self.handle(s, m, &progress_tx)
                    }
                    Some(Err(status)) => Err(End::Broken(status.to_string())),
                    None => Err(End::Closed),
                },
                Some(taken) = take_rx.recv() => {
                    taking = false;
                    match taken {
                        Ok(jobs) => {
                            take_backoff = Duration::ZERO;
                            self.assign(s, jobs)
                        }
                        Err(()) => {
                            take_backoff = (take_backoff * 2).clamp(Duration::from_millis(100), Duration::from_secs(2));
                            Ok(())
                        }
                    }
                }
                Some(d) = done_rx.recv() => {
                    if s.held.get(&d.lease.job_id).is_some_and(|h| h.delivery == d.lease.delivery) {
                        s.held.remove(&d.lease.job_id);
                    }
                    if d.silent { Ok(()) } else { s.ack(&d.lease, d.outcome, d.message) }
                }
                Some(lost) = lost_rx.recv() => {
                    let mut r = Ok(());
                    for l in lost {
                        if s.running(&l.job_id, l.delivery) {
                            tracing::warn!(worker = %s.id, job_id = %l.job_id, delivery = l.delivery, "lease lost; job revoked");
                            s.held.remove(&l.job_id);
                            s.running -= 1;
                            r = r.and(s.revoke(&l));
                        }
                    }
                    r
                }
                Some(()) = beat_rx.recv() => { beating = false; Ok(()) }
                _ = tick.tick() => {
                    let quiet = last_heard.elapsed();
                    if quiet > self.lease {
                        Err(End::Silent)
                    } else {
                        // renew only while the worker is heard from: a frozen or partitioned
                        // worker loses its leases as a dead one would
                        if quiet <= 2 * every && !beating {
                            beating = true;
                            tokio::spawn(heartbeat(
                                self.store.clone(),
                                s.info(),
                                s.leases(false),
                                lost_tx.clone(),
                                beat_tx.clone(),
                            ));
                        }
                        Ok(())
                    }
                }
                _ = self.stop.wait(), if stopping.is_none() => {
                    s.draining = true;
                    stopping = Some(Instant::now() + self.args.worker_drain_timeout);
                    tracing::info!(worker = %s.id, held = s.held.len(), "shutting down: no more assignments");
                    Ok(())
                }
                _ = tokio::time::sleep_until(deadline), if stopping.is_some() => Err(End::Shutdown),
                _ = s.tx.closed() => Err(End::Broken("response stream closed".into())),
            };
            if let Err(end) = r {
                return (end, taking.then_some(take_rx));
            }
        }
    }

    /// Hands leased jobs to the worker, or gives them straight back after a Drain.
    fn assign(&self, s: &mut Session, jobs: Vec<Job>) -> Result<(), End> {
        for job in jobs {
            let lease = LeaseRef::of(&job);
            let mut held = Held {
                delivery: job.delivery,
                attempt: job.attempts,
                state: State::Running,
                labels: Some(Arc::new(JobLabels {
                    queue: job.queue.clone(),
                    kind: job.kind.clone(),
                    max_attempts: job.max_attempts,
                })),
            };
            if s.draining {
                held.state = State::Reporting;
                s.held.insert(job.id.clone(), held);
                let _ = s.ops.send(Op::Release {
                    lease,
                    silent: true,
                });
                continue;
            }
            s.held.insert(job.id.clone(), held);
            s.running += 1;
            s.push(Out::Assignment(assignment(job)))?;
        }
        Ok(())
    }

    /// Applies one worker message.
    fn handle(
        &self,
        s: &mut Session,
        m: pb::WorkRequest,
        progress_tx: &mpsc::UnboundedSender<(LeaseRef, u32)>,
    ) -> Result<(), End> {
        let violation = |m: String| Err(End::Violation(Status::invalid_argument(m)));
        match m.message {
            None => violation(
                "empty WorkRequest: set one of hello, progress, succeeded, failed, drain, release, heartbeat"
                    .into(),
            ),
            Some(In::Hello(_)) => Err(End::Violation(Status::failed_precondition(
                "Hello sent twice: a stream says Hello once, as its first message",
            ))),
            Some(In::Heartbeat(_)) => Ok(()),
            Some(In::Drain(_)) => {
                if !s.draining {
                    tracing::info!(worker = %s.id, held = s.held.len(), "worker draining");
                }
                s.draining = true;
                Ok(())
            }
            Some(In::Progress(p)) => {
                if p.percent > 100 {
                    return violation(format!(
                        "JobProgress.percent is {} for job {}; it must be 0 to 100",
                        p.percent, p.job_id
                    ));
                }
                let lease = LeaseRef {
                    job_id: p.job_id,
                    delivery: p.delivery,
                };
                if s.running(&lease.job_id, lease.delivery) {
                    let _ = progress_tx.send((lease, p.percent));
                    Ok(())
                } else if s
                    .held
                    .get(&lease.job_id)
                    .is_some_and(|h| h.delivery == lease.delivery)
                {
                    Ok(()) // progress after its own answer: nothing to record
                } else {
                    s.revoke(&lease)
                }
            }
            Some(In::Succeeded(r)) => {
                let lease = LeaseRef {
                    job_id: r.job_id,
                    delivery: r.delivery,
                };
                if !s.running(&lease.job_id, lease.delivery) {
                    return s.ack(&lease, pb::ReportOutcome::Stale, String::new());
                }
                let (outcome, rejected) =
                    match result_outcome(r.result, &r.content_type, self.args.max_result_bytes) {
                        Ok(o) => (o, None),
                        Err(why) => (
                            Outcome::Failed {
                                error: why.clone(),
                                retryable: false,
                            },
                            Some(why),
                        ),
                    };
                self.report(s, lease, outcome, rejected);
                Ok(())
            }
            Some(In::Failed(f)) => {
                let lease = LeaseRef {
                    job_id: f.job_id,
                    delivery: f.delivery,
                };
                if !s.running(&lease.job_id, lease.delivery) {
                    return s.ack(&lease, pb::ReportOutcome::Stale, String::new());
                }
                let mut error = if f.error.is_empty() {
                    "the worker reported a failure without a message".to_owned()
                } else {
                    f.error
                };
                truncate(&mut error, MAX_ERROR_BYTES);
                let outcome = Outcome::Failed {
                    error,
                    retryable: !f.permanent,
                };
                self.report(s, lease, outcome, None);
                Ok(())
            }
            Some(In::Release(r)) => {
                for job_id in r.job_ids {
                    match s.held.get(&job_id).cloned() {
                        Some(Held {
                            delivery,
                            state: State::Running,
                            ..
                        }) => {
                            s.answered(&job_id);
                            let _ = s.ops.send(Op::Release {
                                lease: LeaseRef { job_id, delivery },
                                silent: false,
                            });
                        }
                        other => {
                            let delivery = other.map(|h| h.delivery).unwrap_or(0);
                            s.ack(
                                &LeaseRef { job_id, delivery },
                                pb::ReportOutcome::Stale,
                                String::new(),
                            )?;
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn report(&self, s: &mut Session, lease: LeaseRef, outcome: Outcome, rejected: Option<String>) {
        let attempt = s.answered(&lease.job_id);
        let labels = s.held.get(&lease.job_id).and_then(|h| h.labels.clone());
        let completion = Completion {
            job_id: lease.job_id,
            attempt,
            delivery: lease.delivery,
            worker_id: s.id.clone(),
            outcome,
        };
        let _ = s.ops.send(Op::Complete {
            completion,
            rejected,
            labels,
        });
    }
}

/// The store outcome of a `JobSucceeded`, or why the result is refused.
fn result_outcome(bytes: Vec<u8>, content_type: &str, max: usize) -> Result<Outcome, String> {
    if bytes.len() > max {
        return Err(format!(
            "the worker's result is {} bytes; the limit is {max} bytes",
            bytes.len()
        ));
    }
    let ct = content_type.trim();
    if ct.is_empty() || ct.eq_ignore_ascii_case(JSON) {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
            return Err(format!("the worker's result is not valid JSON: {e}"));
        }
        return Ok(Outcome::DonePayload(Payload::json(bytes)));
    }
    if is_text(ct) {
        return String::from_utf8(bytes)
            .map(Outcome::Done)
            .map_err(|_| "the worker's text result is not valid UTF-8".to_owned());
    }
    Ok(Outcome::DonePayload(Payload {
        bytes,
        content_type: ct.to_owned(),
    }))
}

/// `text/plain` with a UTF-8 (or no) charset: a text result.
fn is_text(ct: &str) -> bool {
    let mut parts = ct.split(';').map(str::trim);
    let essence = parts.next().unwrap_or("");
    essence.eq_ignore_ascii_case("text/plain")
        && parts.all(|p| {
            p.split_once('=').is_none_or(|(k, v)| {
                !k.trim().eq_ignore_ascii_case("charset")
                    || v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            })
        })
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// The assignment message for a leased job.
fn assignment(job: Job) -> pb::JobAssignment {
    let (payload, content_type) = match job.payload {
        Some(p) => (p.bytes, p.content_type),
        None => (job.text.into_bytes(), TEXT.to_owned()),
    };
    pb::JobAssignment {
        job_id: job.id,
        kind: job.kind,
        payload,
        content_type,
        delivery: job.delivery,
        attempt: job.attempts,
        max_attempts: job.max_attempts,
        traceparent: job.traceparent.unwrap_or_default(),
        created_at: Some(timestamp_from_ms(job.created_at)),
    }
}

/// One take; its batch goes to the session, or back to the queue when the session is gone.
async fn take(
    store: Arc<dyn JobStore>,
    worker: String,
    queues: Vec<String>,
    kinds: Vec<String>,
    max: usize,
    backoff: Duration,
    tx: mpsc::Sender<Result<Vec<Job>, ()>>,
) {
    if !backoff.is_zero() {
        tokio::time::sleep(backoff).await;
    }
    match store
        .take_from(&worker, &queues, &kinds, max, TAKE_WAIT)
        .await
    {
        Ok(jobs) => {
            if let Err(e) = tx.send(Ok(jobs)).await {
                let Ok(jobs) = e.0 else { return };
                let leases: Vec<LeaseRef> = jobs.iter().map(LeaseRef::of).collect();
                give_back(&*store, &worker, &leases, true).await;
            }
        }
        Err(e) => {
            tracing::warn!(worker = %worker, error = %e, "failed to take jobs; retrying");
            let _ = tx.send(Err(())).await;
        }
    }
}

/// Requeues `leases` at once: released (attempt refunded) when `graceful`, else abandoned
/// (the delivery counts). Retried for a few seconds; after that the leases expire.
async fn give_back(store: &dyn JobStore, worker: &str, leases: &[LeaseRef], graceful: bool) {
    if leases.is_empty() {
        return;
    }
    let mut backoff = Duration::from_millis(50);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = if graceful {
            store.release(worker, leases).await
        } else {
            store.abandon(worker, leases).await
        };
        match r {
            Ok(()) => return,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(worker, error = %e, "failed to requeue jobs; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                tracing::warn!(worker, error = %e, jobs = leases.len(), "failed to requeue jobs; their leases will expire");
                return;
            }
        }
    }
}

/// Counts an applied report in `pfc_jobs_finished_total`: a failure with attempts left (and
/// not permanent) is `retried`, as the store then schedules another delivery.
fn count_finished(labels: Option<&JobLabels>, c: &Completion) {
    let status = match &c.outcome {
        Outcome::Done(_) | Outcome::DonePayload(_) => "done",
        Outcome::Failed { retryable, .. } => {
            let left = labels.is_some_and(|l| c.attempt < l.max_attempts);
            if *retryable && left {
                "retried"
            } else {
                "failed"
            }
        }
    };
    crate::metrics::finished(labels, status);
}

/// Applies answers in batches (one round trip for many), in order, retrying while the store
/// is unavailable (the heartbeat keeps their leases meanwhile). Ends when the session drops
/// its sender and everything sent was applied (or 60 s of failures).
async fn reporter(
    store: Arc<dyn JobStore>,
    worker: String,
    mut rx: mpsc::UnboundedReceiver<Op>,
    tx: mpsc::UnboundedSender<Done>,
) {
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let mut completions = Vec::new();
        let mut rejected = Vec::new();
        let mut labels = Vec::new();
        let mut releases = Vec::new();
        for op in batch.drain(..) {
            match op {
                Op::Complete {
                    completion,
                    rejected: r,
                    labels: l,
                } => {
                    completions.push(completion);
                    rejected.push(r);
                    labels.push(l);
                }
                Op::Release { lease, silent } => releases.push((lease, silent)),
            }
        }
        if !completions.is_empty() {
            let results = retry("report jobs", || store.complete(&completions)).await;
            for (i, c) in completions.into_iter().enumerate() {
                let result = results.as_ref().and_then(|r| r.get(i).copied());
                let (outcome, message) = match (result, rejected[i].take()) {
                    (Some(CompletionResult::Stale), _) => (pb::ReportOutcome::Stale, String::new()),
                    (Some(_), Some(why)) => (pb::ReportOutcome::Rejected, why),
                    (Some(_), None) => (pb::ReportOutcome::Applied, String::new()),
                    // never applied (store down for a minute): the lease expires
                    (None, _) => (pb::ReportOutcome::Stale, String::new()),
                };
                if result == Some(CompletionResult::Applied) {
                    count_finished(labels[i].as_deref(), &c);
                }
                if outcome == pb::ReportOutcome::Stale {
                    tracing::debug!(worker = %worker, job_id = %c.job_id, delivery = c.delivery, "report ignored: lease was lost");
                }
                let _ = tx.send(Done {
                    lease: LeaseRef {
                        job_id: c.job_id,
                        delivery: c.delivery,
                    },
                    outcome,
                    message,
                    silent: false,
                });
            }
        }
        if !releases.is_empty() {
            let leases: Vec<LeaseRef> = releases.iter().map(|(l, _)| l.clone()).collect();
            let ok = retry("release jobs", || store.release(&worker, &leases))
                .await
                .is_some();
            for (lease, silent) in releases {
                let _ = tx.send(Done {
                    lease,
                    outcome: if ok {
                        pb::ReportOutcome::Applied
                    } else {
                        pb::ReportOutcome::Stale
                    },
                    message: String::new(),
                    silent,
                });
            }
        }
    }
}

/// Runs `f` until it succeeds, with backoff, for up to 60 s.
async fn retry<T, F, Fut>(what: &str, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = pfc_queue::Result<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut backoff = Duration::from_millis(50);
    loop {
        match f().await {
            Ok(v) => return Some(v),
            Err(e) if Instant::now() < deadline => {
                tracing::warn!(error = %e, "failed to {what}; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                tracing::error!(error = %e, "failed to {what} for 60 s; giving up (leases expire)");
                return None;
            }
        }
    }
}

/// One heartbeat of the stream's leases; the lost ones go back to the session.
async fn heartbeat(
    store: Arc<dyn JobStore>,
    info: WorkerInfo,
    leases: Vec<LeaseRef>,
    lost_tx: mpsc::UnboundedSender<Vec<LeaseRef>>,
    done: mpsc::Sender<()>,
) {
    match store.heartbeat(&info, &leases).await {
        Ok(lost) if !lost.is_empty() => {
            let _ = lost_tx.send(lost);
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(worker = %info.id, error = %e, "heartbeat failed"),
    }
    let _ = done.send(()).await;
}

/// Records progress, latest value per job first; a lease the store no longer knows is lost.
async fn progress(
    store: Arc<dyn JobStore>,
    worker: String,
    mut rx: mpsc::UnboundedReceiver<(LeaseRef, u32)>,
    lost_tx: mpsc::UnboundedSender<Vec<LeaseRef>>,
) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 256).await > 0 {
        let mut latest: HashMap<LeaseRef, u32> = HashMap::new();
        for (l, p) in batch.drain(..) {
            latest.insert(l, p);
        }
        let mut lost = Vec::new();
        for (l, p) in latest {
            match store.progress(&worker, &l, p).await {
                Ok(true) => {}
                Ok(false) => lost.push(l),
                Err(e) => {
                    tracing::debug!(worker = %worker, error = %e, "failed to record progress")
                }
            }
        }
        if !lost.is_empty() {
            let _ = lost_tx.send(lost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ListKinds: built-in kinds first (with the workers that declared them), then declared
    /// kinds by name, with live workers and total concurrency.
    #[test]
    fn kinds_of_live_workers() {
        let w = |id: &str, c: u32, kinds: &[&str]| WorkerInfo {
            id: id.into(),
            concurrency: c,
            in_flight: 0,
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            last_seen: 0,
        };
        let registry = pfc_processors::Registry::builtin();
        let list = super::kinds(
            &registry,
            &[
                w("a", 8, &["resize", "uppercase"]),
                w("b", 4, &["resize", "email"]),
            ],
        );
        let builtin = registry.iter().count();
        assert!(list[..builtin]
            .iter()
            .all(|k| k.builtin && !k.description.is_empty()));
        let upper = list.iter().find(|k| k.name == "uppercase").unwrap();
        assert_eq!((upper.workers, upper.concurrency), (1, 8));
        let rest: Vec<_> = list[builtin..]
            .iter()
            .map(|k| (k.name.as_str(), k.workers, k.concurrency, k.builtin))
            .collect();
        assert_eq!(rest, [("email", 1, 4, false), ("resize", 2, 12, false)]);
        let idle = super::kinds(&registry, &[]);
        assert_eq!(idle.len(), builtin);
        assert!(idle.iter().all(|k| k.workers == 0));
    }

    /// Kinds follow `[a-z0-9][a-z0-9._-]{0,63}`.
    #[test]
    fn kinds() {
        for ok in ["a", "resize", "img.resize-v2_x", "0", &"a".repeat(64)] {
            assert!(valid_kind(ok), "{ok}");
        }
        for bad in ["", "Resize", "-a", ".a", "a b", "é", &"a".repeat(65), "a/b"] {
            assert!(!valid_kind(bad), "{bad}");
        }
    }

    /// Hello validation names the wrong field; duplicates are merged; resume needs an id.
    #[test]
    fn hello() {
        let ok = pb::Hello {
            name: "host-1".into(),
            kinds: vec!["a".into(), "b".into(), "a".into()],
            concurrency: 8,
            sdk: "pfc-rust/0.1.0".into(),
            ..Default::default()
        };
        let h = validate_hello(ok.clone()).unwrap();
        assert_eq!(h.kinds, ["a", "b"]);
        assert_eq!((h.name.as_str(), h.concurrency), ("host-1", 8));
        let err = |h: pb::Hello| validate_hello(h).unwrap_err();
        let e = err(pb::Hello {
            kinds: vec![],
            ..ok.clone()
        });
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("Hello.kinds"), "{}", e.message());
        let e = err(pb::Hello {
            kinds: vec!["Bad".into()],
            ..ok.clone()
        });
        assert!(e.message().contains("\"Bad\""), "{}", e.message());
        let e = err(pb::Hello {
            kinds: (0..65).map(|i| format!("k{i}")).collect(),
            ..ok.clone()
        });
        assert!(e.message().contains("1 to 64"), "{}", e.message());
        for c in [0, 1025] {
            let e = err(pb::Hello {
                concurrency: c,
                ..ok.clone()
            });
            assert!(e.message().contains("concurrency"), "{}", e.message());
        }
        let e = err(pb::Hello {
            name: "a b".into(),
            ..ok.clone()
        });
        assert!(e.message().contains("Hello.name"), "{}", e.message());
        let e = err(pb::Hello {
            held: vec![pb::HeldJob {
                job_id: "j".into(),
                delivery: 1,
                attempt: 1,
            }],
            ..ok.clone()
        });
        assert!(e.message().contains("worker_id"), "{}", e.message());
        let h = validate_hello(pb::Hello {
            name: String::new(),
            worker_id: "w-1".into(),
            held: vec![pb::HeldJob {
                job_id: "j".into(),
                delivery: 1,
                attempt: 1,
            }],
            ..ok
        })
        .unwrap();
        assert_eq!(h.name, "worker");
        assert_eq!(h.resume.as_deref(), Some("w-1"));
        assert_eq!(h.held.len(), 1);
    }

    /// JSON results are validated, text must be UTF-8, other types pass through, and the size
    /// limit applies to all.
    #[test]
    fn results() {
        assert_eq!(
            result_outcome(b"{\"ok\":true}".to_vec(), "", 100).unwrap(),
            Outcome::DonePayload(Payload::json(b"{\"ok\":true}".to_vec()))
        );
        assert!(result_outcome(b"{nope".to_vec(), "application/json", 100)
            .unwrap_err()
            .contains("not valid JSON"));
        assert_eq!(
            result_outcome(b"HI".to_vec(), TEXT, 100).unwrap(),
            Outcome::Done("HI".into())
        );
        assert_eq!(
            result_outcome(b"HI".to_vec(), "text/plain", 100).unwrap(),
            Outcome::Done("HI".into())
        );
        assert!(result_outcome(vec![0xff], TEXT, 100).is_err());
        assert_eq!(
            result_outcome(vec![1, 2], "image/png", 100).unwrap(),
            Outcome::DonePayload(Payload {
                bytes: vec![1, 2],
                content_type: "image/png".into()
            })
        );
        // text/plain in another charset is bytes, not text
        assert!(matches!(
            result_outcome(b"x".to_vec(), "text/plain; charset=latin1", 100).unwrap(),
            Outcome::DonePayload(_)
        ));
        assert!(result_outcome(vec![b'1'; 101], "", 100)
            .unwrap_err()
            .contains("limit is 100 bytes"));
    }
}
