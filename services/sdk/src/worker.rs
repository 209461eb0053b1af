//! [`Worker`]: runs handlers for your kinds over the worker protocol (`docs/workers.md`).
//!
//! One `Work` stream to the jobs core. The server assigns jobs as the worker has free slots
//! (never more than its concurrency); each runs as its own task; its result, error or
//! progress goes back on the stream, tagged with the job's delivery number. The SDK says
//! `Heartbeat` when it has nothing else to say, so the server keeps the leases alive.
//!
//! When the stream breaks, running handlers keep running and the SDK reconnects with backoff;
//! within a lease it **resumes** (same worker id, the jobs it still runs), so a jobs core that
//! crashed or restarted costs no rerun; reports not yet acknowledged are sent again. Jobs the
//! server says are lost (`JobRevoked`) are aborted.
//!
//! Graceful shutdown (SIGTERM, or the future given to [`Worker::run_until`]): `Drain` (no new
//! jobs), running handlers get `shutdown_timeout` to finish, the rest are aborted and
//! `Release`d (given back to the queue without counting as an attempt), then the stream is
//! closed.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use pfc_proto::worker::v1 as pb;
use pfc_proto::worker::v1::work_request::Message as In;
use pfc_proto::worker::v1::work_response::Message as Out;
use pfc_proto::worker::v1::worker_service_client::WorkerServiceClient;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument;

use crate::job::{HandlerError, Job, Output};
use crate::Error;

type BoxFuture = Pin<Box<dyn Future<Output = Result<Output, HandlerError>> + Send>>;
type Handler = Arc<dyn Fn(Job) -> BoxFuture + Send + Sync>;
type SpanFn = Arc<dyn Fn(&Job) -> tracing::Span + Send + Sync>;

/// What this SDK calls itself in `Hello.sdk`.
pub const SDK: &str = concat!("pfc-rust/", env!("CARGO_PKG_VERSION"));

/// A worker: handlers by kind, a concurrency, and the loop that runs them.
///
/// ```no_run
/// use pfc_sdk::{HandlerError, Job, Worker};
///
/// # async fn demo() -> Result<(), pfc_sdk::Error> {
/// Worker::new("http://127.0.0.1:50051")
///     .concurrency(8)
///     .handle("resize", |job: Job| async move {
///         #[derive(serde::Deserialize)]
///         struct Resize { w: u32 }
///         let input: Resize = job.json()?; // bad input: a permanent failure
///         if input.w == 0 {
///             return Err(HandlerError::permanent("w must be positive"));
///         }
///         job.progress(50);
///         Ok(serde_json::json!({ "w": input.w / 2 }))
///     })
///     .run() // until SIGINT/SIGTERM, then drains
///     .await
/// # }
/// ```
pub struct Worker {
    urls: Vec<String>,
    name: String,
    concurrency: u32,
    queues: Vec<String>,
    handlers: HashMap<String, Handler>,
    shutdown_timeout: Duration,
    job_timeout: Option<Duration>,
    sdk: String,
    span: Option<SpanFn>,
    connected: watch::Sender<bool>,
    token: Option<String>,
}

impl Worker {
    /// A worker for the jobs core at `url` (e.g. `http://127.0.0.1:50051`), named after the
    /// host, with concurrency 8 and a 20 s shutdown timeout. Add handlers with
    /// [`Worker::handle`].
    ///
    /// `url` may list several jobs-core addresses separated by commas: the worker uses one
    /// and moves to the next at once when its stream breaks (behind a Kubernetes Service one
    /// address is enough: the Service does that).
    pub fn new(url: impl Into<String>) -> Self {
        let urls: Vec<String> = url
            .into()
            .split(',')
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "worker".into());
        Self {
            urls,
            name,
            concurrency: 8,
            queues: Vec::new(),
            handlers: HashMap::new(),
            shutdown_timeout: Duration::from_secs(20),
            job_timeout: None,
            sdk: SDK.into(),
            span: None,
            connected: watch::channel(false).0,
            token: std::env::var("PFC_TOKEN")
                .ok()
                .filter(|t| !t.trim().is_empty()),
        }
    }

    /// The credential sent as `authorization: Bearer <token>` on the worker stream: a worker
    /// API key (scope `worker`) when the jobs core requires credentials. Defaults to the
    /// `PFC_TOKEN` environment variable.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.token = (!token.trim().is_empty()).then(|| token.trim().to_owned());
        self
    }

    /// The worker's name (`[A-Za-z0-9._-]`, at most 64): its id is the name plus a suffix
    /// the server adds.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Jobs run at once, 1 to 1024: the server never assigns more.
    pub fn concurrency(mut self, n: u32) -> Self {
        self.concurrency = n;
        self
    }

    /// Takes jobs only from these queues (`[a-z0-9][a-z0-9._-]{0,63}`, at most 64); none (the
    /// default) means every queue, including queues created later.
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.queues = queues.into_iter().map(Into::into).collect();
        self
    }

    /// Runs `handler` for every job of `kind` (`[a-z0-9][a-z0-9._-]{0,63}`). It returns
    /// anything that converts into an [`Output`] (a `serde_json::Value`, a `String` for text,
    /// [`Output::json`] of any serializable value), or a [`HandlerError`]: retryable by
    /// default (any `std::error::Error` converts with `?`), or [`HandlerError::permanent`].
    pub fn handle<F, Fut, O>(mut self, kind: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, HandlerError>> + Send + 'static,
        O: Into<Output>,
    {
        let handler: Handler = Arc::new(move |job| {
            let fut = handler(job);
            Box::pin(async move { fut.await.map(Into::into) })
        });
        self.handlers.insert(kind.into(), handler);
        self
    }

    /// On shutdown, how long running handlers may take before they are aborted and their
    /// jobs given back (default 20 s; keep it under Kubernetes'
    /// `terminationGracePeriodSeconds`).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// A handler running longer than this fails (retryably). Default: no limit.
    pub fn job_timeout(mut self, timeout: Duration) -> Self {
        self.job_timeout = Some(timeout);
        self
    }

    /// The span each job runs in (default: `job` with id, kind and attempt), e.g. to continue
    /// the submitter's trace from [`Job::traceparent`].
    pub fn job_span(
        mut self,
        span: impl Fn(&Job) -> tracing::Span + Send + Sync + 'static,
    ) -> Self {
        self.span = Some(Arc::new(span));
        self
    }

    /// What the worker calls its SDK in `Hello.sdk` (default `pfc-rust/<version>`).
    pub fn sdk_name(mut self, sdk: impl Into<String>) -> Self {
        self.sdk = sdk.into();
        self
    }

    /// True while a stream to the jobs core is open and welcomed (for health checks).
    pub fn connected(&self) -> watch::Receiver<bool> {
        self.connected.subscribe()
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully (see the module docs).
    /// Returns an error only for a configuration the jobs core refuses; connection trouble is
    /// retried forever.
    pub async fn run(self) -> Result<(), Error> {
        self.run_until(signal()).await
    }

    /// Runs until `shutdown` resolves, then shuts down gracefully.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        self.validate()?;
        let _slots = crate::metrics::Slots::new(self.concurrency);
        let mut r = Runner::new(self);
        tokio::pin!(shutdown);
        let result = r.run(shutdown).await;
        r.cfg.connected.send_replace(false);
        result
    }

    fn validate(&self) -> Result<(), Error> {
        if self.handlers.is_empty() {
            return Err(Error::Config(
                "no handlers: add one with Worker::handle".into(),
            ));
        }
        if self.handlers.len() > 64 {
            return Err(Error::Config(format!(
                "{} kinds; a worker handles at most 64",
                self.handlers.len()
            )));
        }
        for kind in self.handlers.keys() {
            if !valid_kind(kind) {
                return Err(Error::Config(format!(
                    "{kind:?} is not a kind: use [a-z0-9][a-z0-9._-]{{0,63}}"
                )));
            }
        }
        if self.queues.len() > 64 {
            return Err(Error::Config(format!(
                "{} queues; a worker names at most 64 (none: every queue)",
                self.queues.len()
            )));
        }
        for queue in &self.queues {
            // the same rule as kinds
            if !valid_kind(queue) {
                return Err(Error::Config(format!(
                    "{queue:?} is not a queue name: use [a-z0-9][a-z0-9._-]{{0,63}}"
                )));
            }
        }
        if !(1..=1024).contains(&self.concurrency) {
            return Err(Error::Config(format!(
                "concurrency {} is out of range 1..=1024",
                self.concurrency
            )));
        }
        if self.urls.is_empty() {
            return Err(Error::Config("no jobs-core URL".into()));
        }
        for url in &self.urls {
            crate::client::endpoint(url)?;
        }
        Ok(())
    }
}

fn valid_kind(kind: &str) -> bool {
    let b = kind.as_bytes();
    (1..=64).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
}

/// Resolves on SIGINT or SIGTERM.
async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("received SIGTERM, shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT, shutting down"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A job whose handler runs.
struct Running {
    delivery: u64,
    attempt: u32,
    abort: AbortHandle,
    /// The `kind` label of its run time (a handler kind, or `other`).
    kind: String,
    started: std::time::Instant,
}

impl Drop for Running {
    /// A slot is busy exactly as long as its `Running` entry exists (finished, revoked or
    /// aborted alike).
    fn drop(&mut self) {
        crate::metrics::METRICS.busy.dec();
    }
}

/// How a session (one stream) ended.
enum End {
    /// Shut down and nothing left to report: stop.
    Done,
    /// The stream or connection was lost: reconnect.
    Lost(String),
}

/// A handler's outcome.
type Finished = (String, u64, Result<Output, HandlerError>);

struct Runner {
    cfg: Worker,
    tasks: JoinSet<()>,
    running: HashMap<String, Running>,
    /// Reports and releases sent (or to send) and not yet acknowledged: sent again after a
    /// reconnect. Job id → (delivery, attempt, message).
    unacked: HashMap<String, (u64, u32, In)>,
    done_tx: mpsc::UnboundedSender<Finished>,
    done_rx: mpsc::UnboundedReceiver<Finished>,
    progress_tx: mpsc::UnboundedSender<(String, u64, u32)>,
    progress_rx: mpsc::UnboundedReceiver<(String, u64, u32)>,
    /// The id of the last welcome (to resume with).
    worker_id: Option<String>,
    /// The lease of the last welcome, and when its stream ended.
    lease: Duration,
    lost_at: Option<Instant>,
    started: bool,
    /// Streams welcomed so far (a welcome resets the reconnect backoff).
    welcomes: u64,
    /// Set at shutdown: when running handlers are aborted and released.
    deadline: Option<Instant>,
    /// The URL in use (index into the worker's URLs).
    url: usize,
}

impl Runner {
    fn new(cfg: Worker) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (progress_tx, progress_rx) = mpsc::unbounded_channel();
        Self {
            cfg,
            tasks: JoinSet::new(),
            running: HashMap::new(),
            unacked: HashMap::new(),
            done_tx,
            done_rx,
            progress_tx,
            progress_rx,
            worker_id: None,
            lease: Duration::from_secs(3),
            lost_at: None,
            started: false,
            welcomes: 0,
            deadline: None,
            url: 0,
        }
    }

    fn stopping(&self) -> bool {
        self.deadline.is_some()
    }

    fn idle(&self) -> bool {
        self.running.is_empty() && self.unacked.is_empty() && self.done_rx.is_empty()
    }

    async fn run(&mut self, mut shutdown: Pin<&mut impl Future<Output = ()>>) -> Result<(), Error> {
        let mut backoff = Duration::from_millis(100);
        // failed tries since the last welcome: every URL is tried once before backing off
        let mut failed = 0usize;
        loop {
            if self.stopping() && self.idle() {
                return Ok(());
            }
            let welcomes = self.welcomes;
            let end = self.session(&mut shutdown).await?;
            self.cfg.connected.send_replace(false);
            match end {
                End::Done => return Ok(()),
                End::Lost(why) => {
                    if self.lost_at.is_none() {
                        self.lost_at = Some(Instant::now());
                    }
                    if self.stopping() && self.idle() {
                        return Ok(());
                    }
                    // a hard deadline after shutdown: whatever is left is the lease's business
                    if self
                        .deadline
                        .is_some_and(|d| Instant::now() > d + Duration::from_secs(5))
                    {
                        self.abort_all();
                        return Ok(());
                    }
                    if self.welcomes > welcomes {
                        backoff = Duration::from_millis(100);
                        failed = 0;
                    }
                    failed += 1;
                    let urls = self.cfg.urls.len();
                    self.url = (self.url + 1) % urls;
                    // jobs still held must be resumed within the lease: retry often meanwhile
                    let holding = !self.idle();
                    let cap = if holding {
                        Duration::from_millis(500)
                    } else {
                        Duration::from_secs(5)
                    };
                    let nap = if !failed.is_multiple_of(urls) {
                        Duration::ZERO // the next URL, at once
                    } else {
                        let nap = backoff.min(cap).mul_f64(rand::random_range(0.8..1.2));
                        backoff = (backoff * 2).min(cap);
                        nap
                    };
                    tracing::warn!(reason = %why, retry_in = ?nap, next = %self.cfg.urls[self.url], "connection to the jobs core lost; reconnecting");
                    tokio::select! {
                        _ = tokio::time::sleep(nap) => {}
                        _ = &mut shutdown, if !self.stopping() => self.begin_shutdown(),
                    }
                }
            }
        }
    }

    fn begin_shutdown(&mut self) {
        tracing::info!(
            running = self.running.len(),
            "worker stopping: no new jobs; draining"
        );
        self.deadline = Some(Instant::now() + self.cfg.shutdown_timeout);
    }

    fn abort_all(&mut self) {
        for (_, r) in self.running.drain() {
            r.abort.abort();
        }
        self.unacked.clear();
    }

    /// Moves finished handlers' outcomes into `unacked` (as reports to send).
    fn collect_finished(&mut self) -> Vec<In> {
        let mut out = Vec::new();
        while let Ok(f) = self.done_rx.try_recv() {
            if let Some(m) = self.finished(f) {
                out.push(m);
            }
        }
        out
    }

    /// The report for one finished handler, recorded as unacknowledged; `None` when the job
    /// was revoked meanwhile.
    fn finished(&mut self, (job_id, delivery, result): Finished) -> Option<In> {
        let run = self.running.remove(&job_id)?;
        if run.delivery != delivery {
            self.running.insert(job_id, run);
            return None;
        }
        let worker = self.worker_id.clone().unwrap_or_default();
        let outcome = match &result {
            Ok(_) => "done",
            Err(e) if e.is_permanent() => "failed",
            Err(_) => "retry",
        };
        crate::metrics::METRICS
            .run
            .get_or_create(&[("kind", run.kind.clone()), ("outcome", outcome.to_owned())])
            .observe(run.started.elapsed().as_secs_f64());
        let (msg, label) = match result {
            Ok(output) => {
                let (result, content_type) = output.into_wire();
                let m = In::Succeeded(pb::JobSucceeded {
                    job_id: job_id.clone(),
                    delivery,
                    result,
                    content_type,
                });
                (m, "done")
            }
            Err(e) => {
                let permanent = e.is_permanent();
                tracing::info!(job_id = %job_id, error = %e.message(), permanent, "job failed");
                let m = In::Failed(pb::JobFailed {
                    job_id: job_id.clone(),
                    delivery,
                    error: e.message().to_owned(),
                    permanent,
                });
                (m, if permanent { "fail" } else { "retry" })
            }
        };
        // one line per handler run, with the delivery's fencing token (a history to check)
        tracing::info!(job_id = %job_id, attempt = run.attempt, delivery, worker = %worker, outcome = label, "job finished");
        self.unacked
            .insert(job_id, (delivery, run.attempt, msg.clone()));
        Some(msg)
    }

    fn start(&mut self, a: pb::JobAssignment) {
        let handler = self.cfg.handlers.get(&a.kind).cloned();
        let kind_label = if handler.is_some() {
            a.kind.clone()
        } else {
            pfc_metrics::labels::OTHER.to_owned()
        };
        let created_at = a
            .created_at
            .as_ref()
            .map(|t| {
                SystemTime::UNIX_EPOCH
                    + Duration::new(t.seconds.max(0) as u64, t.nanos.max(0) as u32)
            })
            .unwrap_or_else(SystemTime::now);
        let job = Job {
            id: a.job_id.clone(),
            kind: a.kind,
            payload: a.payload,
            content_type: a.content_type,
            delivery: a.delivery,
            attempt: a.attempt,
            max_attempts: a.max_attempts,
            traceparent: a.traceparent,
            created_at,
            progress: self.progress_tx.clone(),
        };
        let span = match &self.cfg.span {
            Some(f) => f(&job),
            None => {
                tracing::info_span!("job", job_id = %job.id, kind = %job.kind, attempt = job.attempt)
            }
        };
        let done = self.done_tx.clone();
        let timeout = self.cfg.job_timeout;
        let id = a.job_id.clone();
        let delivery = a.delivery;
        let abort = self.tasks.spawn(
            async move {
                let kind = job.kind.clone();
                let result = match handler {
                    None => Err(HandlerError::permanent(format!(
                        "this worker has no handler for kind {kind:?}"
                    ))),
                    Some(h) => run_handler(h, job, timeout).await,
                };
                let _ = done.send((id, delivery, result));
            }
            .instrument(span),
        );
        crate::metrics::METRICS.busy.inc();
        self.running.insert(
            a.job_id,
            Running {
                delivery,
                attempt: a.attempt,
                abort,
                kind: kind_label,
                started: std::time::Instant::now(),
            },
        );
    }

    /// One stream: connect, Hello (resuming if it can), then serve until it ends.
    async fn session(
        &mut self,
        shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> Result<End, Error> {
        // resume only within the lease: after it, the jobs are someone else's
        let resume =
            self.worker_id.is_some() && self.lost_at.is_none_or(|t| t.elapsed() < self.lease);
        let pending = self.collect_finished();
        drop(pending); // recorded in `unacked`, sent below
        if !resume && (!self.running.is_empty() || !self.unacked.is_empty()) {
            tracing::warn!(
                running = self.running.len(),
                "disconnected for longer than the lease: dropping the jobs held (they are redelivered)"
            );
            self.abort_all();
        }
        let url = self.cfg.urls[self.url].clone();
        let endpoint = crate::client::endpoint(&url)?;
        let channel = match endpoint.connect().await {
            Ok(c) => c,
            Err(e) => return Ok(End::Lost(format!("failed to connect to {url}: {e}"))),
        };
        let (tx, rx) = mpsc::channel::<pb::WorkRequest>(1024);
        let mut held: Vec<pb::HeldJob> = Vec::new();
        if resume {
            for (id, r) in &self.running {
                held.push(pb::HeldJob {
                    job_id: id.clone(),
                    delivery: r.delivery,
                    attempt: r.attempt,
                });
            }
            for (id, (d, attempt, _)) in &self.unacked {
                if !self.running.contains_key(id) {
                    held.push(pb::HeldJob {
                        job_id: id.clone(),
                        delivery: *d,
                        attempt: *attempt,
                    });
                }
            }
        }
        let hello = pb::Hello {
            name: self.cfg.name.clone(),
            kinds: {
                let mut k: Vec<String> = self.cfg.handlers.keys().cloned().collect();
                k.sort();
                k
            },
            concurrency: self.cfg.concurrency,
            queues: self.cfg.queues.clone(),
            sdk: self.cfg.sdk.clone(),
            worker_id: if resume {
                self.worker_id.clone().unwrap_or_default()
            } else {
                String::new()
            },
            held,
        };
        let _ = tx.try_send(pb::WorkRequest {
            message: Some(In::Hello(hello)),
        });
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        if let Some(token) = &self.cfg.token {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| Error::Config("the token is not printable ASCII".into()))?;
            request.metadata_mut().insert("authorization", value);
        }
        let mut inbound = match WorkerServiceClient::new(channel).work(request).await {
            Ok(r) => r.into_inner(),
            Err(st) => return refused(st),
        };
        let welcome = match tokio::time::timeout(Duration::from_secs(10), inbound.message()).await {
            Err(_) => return Ok(End::Lost("no Welcome within 10 s".into())),
            Ok(Err(st)) => return refused(st),
            Ok(Ok(None)) => return Ok(End::Lost("stream ended before Welcome".into())),
            Ok(Ok(Some(pb::WorkResponse {
                message: Some(Out::Welcome(w)),
            }))) => w,
            Ok(Ok(Some(other))) => {
                return Ok(End::Lost(format!("expected Welcome, got {other:?}")))
            }
        };
        let id = welcome.worker_id.clone();
        if !resume {
            // new id: whatever was held under the old one is gone
            self.abort_all();
        }
        self.worker_id = Some(id.clone());
        self.lease = Duration::from_millis(u64::from(welcome.lease_ms.max(1)));
        self.lost_at = None;
        self.welcomes += 1;
        let beat = Duration::from_millis(u64::from(welcome.heartbeat_ms.clamp(50, 60_000)));
        let kinds: Vec<&String> = self.cfg.handlers.keys().collect();
        if !self.started {
            self.started = true;
            tracing::info!(worker = %id, concurrency = self.cfg.concurrency, kinds = ?kinds, "worker started");
        } else {
            tracing::info!(worker = %id, resumed = resume, held = self.running.len(), "worker reconnected");
        }
        self.cfg.connected.send_replace(true);

        let mut s = Stream {
            tx,
            last_sent: Instant::now(),
        };
        // what the previous stream could not deliver
        let again: Vec<In> = self.unacked.values().map(|(_, _, m)| m.clone()).collect();
        for m in again {
            if !s.send(m).await {
                return Ok(End::Lost("stream closed".into()));
            }
        }
        if self.stopping() && !s.send(In::Drain(pb::Drain {})).await {
            return Ok(End::Lost("stream closed".into()));
        }
        let mut tick = tokio::time::interval(beat / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut released = false;
        loop {
            if self.stopping() && self.idle() {
                return Ok(self.close(s, inbound).await);
            }
            let deadline = self
                .deadline
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let ok = tokio::select! {
                m = inbound.message() => match m {
                    Ok(Some(m)) => self.on_message(m, &mut s).await,
                    Ok(None) => return Ok(End::Lost("the jobs core ended the stream".into())),
                    Err(st) => return Ok(End::Lost(format!("{}: {}", st.code(), st.message()))),
                },
                Some(f) = self.done_rx.recv() => match self.finished(f) {
                    Some(m) => s.send(m).await,
                    None => true,
                },
                Some((job_id, delivery, percent)) = self.progress_rx.recv() => {
                    if self.running.get(&job_id).is_some_and(|r| r.delivery == delivery) {
                        s.send(In::Progress(pb::JobProgress { job_id, delivery, percent })).await
                    } else {
                        true
                    }
                }
                _ = tick.tick() => {
                    if s.last_sent.elapsed() >= beat / 2 {
                        crate::metrics::METRICS.heartbeats.inc();
                        s.send(In::Heartbeat(pb::Heartbeat {})).await
                    } else {
                        true
                    }
                }
                _ = &mut *shutdown, if !self.stopping() => {
                    self.begin_shutdown();
                    s.send(In::Drain(pb::Drain {})).await
                }
                _ = tokio::time::sleep_until(deadline), if self.stopping() => {
                    if released {
                        // acks did not come within 5 s of the release: stop waiting
                        return Ok(End::Done);
                    }
                    released = true;
                    self.deadline = Some(Instant::now() + Duration::from_secs(5));
                    self.release_running(&mut s).await
                }
            };
            while self.tasks.try_join_next().is_some() {}
            if !ok {
                return Ok(End::Lost("stream closed".into()));
            }
        }
    }

    /// Aborts what still runs at the shutdown deadline and gives it back.
    async fn release_running(&mut self, s: &mut Stream) -> bool {
        // outcomes that arrived meanwhile are reported, not released
        let finished = self.collect_finished();
        for m in finished {
            if !s.send(m).await {
                return false;
            }
        }
        if self.running.is_empty() {
            return true;
        }
        let ids: Vec<String> = self.running.keys().cloned().collect();
        tracing::warn!(
            jobs = ids.len(),
            "shutdown timeout: giving unfinished jobs back"
        );
        for (id, r) in self.running.drain() {
            r.abort.abort();
            let m = In::Release(pb::Release {
                job_ids: vec![id.clone()],
            });
            self.unacked.insert(id, (r.delivery, r.attempt, m));
        }
        s.send(In::Release(pb::Release { job_ids: ids })).await
    }

    async fn on_message(&mut self, m: pb::WorkResponse, s: &mut Stream) -> bool {
        match m.message {
            Some(Out::Assignment(a)) => {
                if self.stopping() {
                    // assigned before our Drain arrived: give it straight back
                    let id = a.job_id.clone();
                    let m = In::Release(pb::Release {
                        job_ids: vec![id.clone()],
                    });
                    self.unacked.insert(id, (a.delivery, a.attempt, m.clone()));
                    return s.send(m).await;
                }
                self.start(a);
                true
            }
            Some(Out::Ack(ack)) => {
                if self
                    .unacked
                    .get(&ack.job_id)
                    .is_some_and(|(d, _, _)| *d == ack.delivery)
                {
                    self.unacked.remove(&ack.job_id);
                }
                match pb::ReportOutcome::try_from(ack.outcome) {
                    Ok(pb::ReportOutcome::Stale) => {
                        crate::metrics::METRICS.leases_lost.inc();
                        tracing::warn!(job_id = %ack.job_id, delivery = ack.delivery, "report ignored: lease was lost")
                    }
                    Ok(pb::ReportOutcome::Rejected) => {
                        tracing::error!(job_id = %ack.job_id, reason = %ack.message, "result refused by the jobs core; the job failed")
                    }
                    _ => {}
                }
                true
            }
            Some(Out::Revoked(r)) => {
                if let Some(run) = self.running.get(&r.job_id) {
                    if run.delivery == r.delivery {
                        crate::metrics::METRICS.leases_lost.inc();
                        tracing::warn!(job_id = %r.job_id, delivery = r.delivery, "job revoked (its lease was lost); handler aborted");
                        run.abort.abort();
                        self.running.remove(&r.job_id);
                    }
                }
                if self
                    .unacked
                    .get(&r.job_id)
                    .is_some_and(|(d, _, _)| *d == r.delivery)
                {
                    self.unacked.remove(&r.job_id);
                }
                true
            }
            Some(Out::Welcome(_)) | None => true,
        }
    }

    /// Shut down with nothing left: close our side, let the server end the stream.
    async fn close(&mut self, s: Stream, mut inbound: tonic::Streaming<pb::WorkResponse>) -> End {
        drop(s);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(_)) = inbound.message().await {}
        })
        .await;
        tracing::info!(worker = %self.worker_id.as_deref().unwrap_or(""), "worker stopped");
        End::Done
    }
}

/// The sending half of a stream.
struct Stream {
    tx: mpsc::Sender<pb::WorkRequest>,
    last_sent: Instant,
}

impl Stream {
    /// False when the stream is gone.
    async fn send(&mut self, m: In) -> bool {
        self.last_sent = Instant::now();
        self.tx
            .send(pb::WorkRequest { message: Some(m) })
            .await
            .is_ok()
    }
}

/// A refused Hello is a configuration error (not retried); anything else is retried.
fn refused(st: tonic::Status) -> Result<End, Error> {
    match st.code() {
        // A missing, revoked or under-scoped credential will not fix itself by reconnecting.
        tonic::Code::InvalidArgument
        | tonic::Code::FailedPrecondition
        | tonic::Code::Unauthenticated
        | tonic::Code::PermissionDenied => Err(Error::Config(st.message().to_owned())),
        tonic::Code::Unimplemented => Ok(End::Lost(
            "the server has no pfc.worker.v1.WorkerService (is this a pfc jobs core?)".into(),
        )),
        _ => Ok(End::Lost(format!("{}: {}", st.code(), st.message()))),
    }
}

async fn run_handler(
    h: Handler,
    job: Job,
    timeout: Option<Duration>,
) -> Result<Output, HandlerError> {
    let fut = AssertUnwindSafe(h(job)).catch_unwind();
    let r = match timeout {
        Some(t) => match tokio::time::timeout(t, fut).await {
            Ok(r) => r,
            Err(_) => return Err(HandlerError::retryable(format!("timed out after {t:?}"))),
        },
        None => fut.await,
    };
    r.unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(HandlerError::retryable(format!("handler panicked: {msg}")))
    })
}
