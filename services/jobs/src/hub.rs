//! The watch hub: one task per process reads the store's event feed and routes each
//! transition only to the streams that watch that job (`WatchJob`) or whose status filter
//! matches (`WatchJobs`), so the cost of an event does not grow with the number of watchers.
//!
//! **Per job** the hub keeps the last complete state it knows (a [`pb::Job`]), the streams
//! watching it, and the events it could not apply yet. An event whose version is the next one
//! is applied to the known state — status, attempts, error, worker, times and, for DONE, the
//! result all travel with the event — so a transition costs no store read. The job is read
//! again only when that is not enough:
//! - a version hole (an event was lost) or a [`Feed::Gap`] / broadcast lag (events may have
//!   been lost): every watched job is re-read, a few reads at a time;
//! - an event that lacks a field the state needs: a DONE without its result (over 16 KiB, or
//!   bytes that are not JSON, travel only in the job), a retry's `run_at`;
//! - the event feed was silent for [`SILENCE`] while jobs are watched (a safety net against a
//!   dead event connection that nobody noticed).
//!
//! Versions order everything: a state or event never replaces a newer one, and a stream is sent
//! only states newer than the last one it got, so nothing is reordered or sent twice.
//! A terminal job that expired before the hub could read it ends its streams with the terminal
//! state its event announced, or, if even that was lost, with NOT_FOUND "ended and expired".
//!
//! **Slow clients never block the hub**: each stream has a small bounded channel and the hub
//! only `try_send`s. A stream whose channel is full is marked *behind*; a small task waits for
//! room and then sends it the job's latest state (intermediate transitions are skipped, never
//! reordered). A `WatchJobs` stream that falls behind, or that may have missed events because of
//! a gap, gets a `resync` message (re-list, then keep applying events).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use pfc_proto::jobs::v1 as pb;
use pfc_proto::timestamp_from_ms;
use pfc_queue::{Feed, Job, JobEvent, JobStore, Status};
use tokio::sync::{broadcast, mpsc, Notify};
use tokio::task::AbortHandle;
use tonic::Status as GrpcStatus;

use crate::convert::{event_to_pb, job_to_pb, status_to_pb};
use crate::error::JobError;

/// Messages a `WatchJob` stream buffers before it counts as slow.
const JOB_BUFFER: usize = 8;
/// Messages a `WatchJobs` stream buffers before it counts as slow.
const ALL_BUFFER: usize = 256;
/// Store reads in flight at once when many watched jobs need a re-read (after a gap).
const READ_CONCURRENCY: usize = 16;
/// Events kept per job while its state is unknown or has a hole; more means "re-read".
const MAX_PENDING: usize = 64;
/// With jobs watched and no event at all for this long, every watched job is re-read.
pub const SILENCE: Duration = Duration::from_secs(5);

type JobItem = Result<pb::WatchJobResponse, GrpcStatus>;
type AllItem = Result<pb::WatchJobsResponse, GrpcStatus>;

/// The process's watch hub (see the module docs). Cheap to share; its tasks stop when it drops.
pub struct Hub {
    shared: Arc<Shared>,
    tasks: OnceLock<Vec<AbortHandle>>,
}

struct Shared {
    store: Arc<dyn JobStore>,
    state: Mutex<State>,
    /// Wakes the reader when `State::reads` gets ids.
    reads: Notify,
    /// Store reads made so far (the first read of each `WatchJob`, and re-reads).
    reads_made: AtomicU64,
    /// No event for this long with jobs watched: re-read them all.
    silence: Duration,
}

#[derive(Default)]
struct State {
    /// Watched jobs by id.
    jobs: HashMap<String, Entry>,
    /// `WatchJobs` streams by key.
    all: HashMap<u64, AllSub>,
    /// Jobs waiting for a re-read, in order.
    reads: VecDeque<String>,
    next_key: u64,
}

/// One watched job.
#[derive(Default)]
struct Entry {
    /// The last complete state known (None until the first read).
    job: Option<pb::Job>,
    /// Events not applied yet, by version: ahead of a hole, waiting for a re-read, or
    /// received before the first read.
    pending: BTreeMap<u64, JobEvent>,
    /// A re-read is queued or in flight.
    read_pending: bool,
    /// Another re-read is needed once the one in flight is merged (it may predate the need).
    read_again: bool,
    /// The streams end with this NOT_FOUND message (the job expired unseen).
    end: Option<String>,
    subs: Vec<JobSub>,
}

struct JobSub {
    key: u64,
    tx: mpsc::Sender<JobItem>,
    /// Version of the last state sent (0: none yet).
    sent: u64,
    /// The channel was full: a catch-up task owns the next send.
    behind: bool,
}

struct AllSub {
    tx: mpsc::Sender<AllItem>,
    /// Only transitions into these statuses (empty: all).
    statuses: Vec<Status>,
    /// The channel was full: a catch-up task will send a resync when there is room.
    behind: bool,
}

impl Hub {
    /// A hub over `store`, following its event feed. Inside a tokio runtime it starts at once,
    /// so the store's event subscription is set up before the first stream opens; otherwise on
    /// first use.
    pub fn new(store: Arc<dyn JobStore>) -> Self {
        Self::with_silence(store, SILENCE)
    }

    /// [`Hub::new`] with the safety re-read after `silence` instead of [`SILENCE`].
    pub fn with_silence(store: Arc<dyn JobStore>, silence: Duration) -> Self {
        let hub = Self::idle(store, silence);
        if tokio::runtime::Handle::try_current().is_ok() {
            hub.start(None);
        }
        hub
    }

    /// A hub that reads jobs from `store` but takes its events from `feed` (tests decide what
    /// it sees). Must be called inside a tokio runtime.
    pub fn with_feed(store: Arc<dyn JobStore>, feed: broadcast::Receiver<Feed>) -> Self {
        let hub = Self::idle(store, SILENCE);
        hub.start(Some(feed));
        hub
    }

    fn idle(store: Arc<dyn JobStore>, silence: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                state: Mutex::default(),
                reads: Notify::new(),
                reads_made: AtomicU64::new(0),
                silence,
            }),
            tasks: OnceLock::new(),
        }
    }

    fn start(&self, feed: Option<broadcast::Receiver<Feed>>) {
        self.tasks.get_or_init(|| {
            // subscribe here, not in the task, so no event after this call can be missed
            let feed = feed.unwrap_or_else(|| self.shared.store.subscribe());
            vec![
                tokio::spawn(follow(self.shared.clone(), feed)).abort_handle(),
                tokio::spawn(read_loop(self.shared.clone())).abort_handle(),
            ]
        });
    }

    /// `WatchJob`: the job's current state, then every transition, ending after a terminal
    /// state. NOT_FOUND when the job is unknown or expired.
    pub async fn watch_job(&self, id: &str) -> Result<Watch<pb::WatchJobResponse>, JobError> {
        self.start(None);
        let (tx, rx) = mpsc::channel(JOB_BUFFER);
        // join before reading: any transition after the read reaches the entry
        let key = {
            let mut st = self.shared.lock();
            let key = st.key();
            st.jobs.entry(id.to_owned()).or_default().subs.push(JobSub {
                key,
                tx,
                sent: 0,
                behind: false,
            });
            key
        };
        let guard = Unregister {
            shared: Arc::downgrade(&self.shared),
            target: Target::Job(id.to_owned(), key),
        };
        let read = self.shared.get(id).await;
        let outcome = {
            let mut st = self.shared.lock();
            let known = st.jobs.get(id).is_some_and(|e| e.job.is_some());
            match read {
                // `None` when others watching saw it: it ended and expired, and the entry
                // ends them all, this stream too
                Ok(job) if job.is_some() || known => {
                    self.shared.merge(&mut st, id, job);
                    Ok(())
                }
                Ok(_) => Err(JobError::NotFound(id.to_owned())),
                Err(e) => Err(e.into()),
            }
        };
        // on error the guard (dropped after the lock) takes this stream out of the hub
        outcome.map(|()| Watch { rx, _guard: guard })
    }

    /// `WatchJobs`: transitions into `statuses` (all when empty), with a resync message when
    /// some may have been missed.
    pub fn watch_jobs(&self, statuses: Vec<Status>) -> Watch<pb::WatchJobsResponse> {
        self.start(None);
        let (tx, rx) = mpsc::channel(ALL_BUFFER);
        let mut st = self.shared.lock();
        let key = st.key();
        st.all.insert(
            key,
            AllSub {
                tx,
                statuses,
                behind: false,
            },
        );
        Watch {
            rx,
            _guard: Unregister {
                shared: Arc::downgrade(&self.shared),
                target: Target::All(key),
            },
        }
    }

    /// Jobs watched and `WatchJobs` streams open, for tests and metrics.
    pub fn watching(&self) -> (usize, usize) {
        let st = self.shared.lock();
        (st.jobs.len(), st.all.len())
    }

    /// Store reads this hub has made: one per `WatchJob` opened, plus re-reads (gaps, holes,
    /// events that lack a field). For tests and metrics.
    pub fn reads(&self) -> u64 {
        self.shared.reads_made.load(Ordering::Relaxed)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        for t in self.tasks.get().into_iter().flatten() {
            t.abort();
        }
    }
}

/// The hub's one feed reader: routes events, turns gaps, lag and silence into re-reads.
async fn follow(shared: Arc<Shared>, mut feed: broadcast::Receiver<Feed>) {
    // one timer for the silence check, not one per event
    let mut silence = tokio::time::interval(shared.silence);
    silence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    silence.tick().await;
    let mut heard = false;
    loop {
        let item = tokio::select! {
            item = feed.recv() => item,
            _ = silence.tick() => {
                if !std::mem::take(&mut heard) {
                    shared.on_gap(false);
                }
                continue;
            }
        };
        heard = true;
        match item {
            Ok(Feed::Event(ev)) => shared.on_event(ev),
            Ok(Feed::Gap) => {
                tracing::debug!("job event feed gap: re-reading watched jobs");
                shared.on_gap(true);
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    skipped = n,
                    "watch hub fell behind the job event feed; re-reading watched jobs"
                );
                shared.on_gap(true);
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Re-reads queued jobs, [`READ_CONCURRENCY`] at a time; failed reads are retried shortly.
async fn read_loop(shared: Arc<Shared>) {
    loop {
        let batch: Vec<String> = {
            let mut st = shared.lock();
            let n = st.reads.len().min(256);
            st.reads.drain(..n).collect()
        };
        if batch.is_empty() {
            shared.reads.notified().await;
            continue;
        }
        let mut failed = Vec::new();
        let mut results = futures::stream::iter(batch)
            .map(|id| {
                let shared = shared.clone();
                async move {
                    let r = shared.get(&id).await;
                    (id, r)
                }
            })
            .buffer_unordered(READ_CONCURRENCY);
        while let Some((id, r)) = results.next().await {
            let mut st = shared.lock();
            match r {
                Ok(job) => {
                    let again = st.jobs.get_mut(&id).is_some_and(|e| {
                        e.read_pending = false;
                        std::mem::take(&mut e.read_again)
                    });
                    shared.merge(&mut st, &id, job);
                    // a need that arose while this read was in flight, unless the merge
                    // already queued a newer read
                    if again {
                        request_read(&mut st, &id, &shared.reads);
                    }
                }
                Err(e) => {
                    tracing::debug!(job_id = %id, error = %e, "watch re-read failed; retrying");
                    failed.push(id);
                }
            }
        }
        if !failed.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut st = shared.lock();
            // still watched: `read_pending` stays set, so push back without touching it
            let again: Vec<String> = failed
                .into_iter()
                .filter(|id| st.jobs.contains_key(id))
                .collect();
            st.reads.extend(again);
        }
    }
}

impl State {
    fn key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }
}

impl Shared {
    async fn get(&self, id: &str) -> pfc_queue::Result<Option<Job>> {
        self.reads_made.fetch_add(1, Ordering::Relaxed);
        self.store.get(id).await
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // the state stays consistent even if a holder panicked: every change is one step
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn on_event(self: &Arc<Self>, ev: JobEvent) {
        let mut st = self.lock();
        if !st.all.is_empty() {
            self.route_to_all(&mut st, &ev);
        }
        let Some(e) = st.jobs.get_mut(ev.job_id.as_str()) else {
            return;
        };
        if e.job.as_ref().is_some_and(|j| ev.version <= j.version) {
            return;
        }
        let id = ev.job_id.clone();
        e.pending.insert(ev.version, ev);
        if e.pending.len() > MAX_PENDING {
            e.pending.pop_first();
            request_read(&mut st, &id, &self.reads);
        }
        self.settle(&mut st, &id);
    }

    /// Sends `ev` to the `WatchJobs` streams whose filter takes it (the message is built once,
    /// and only if one does).
    fn route_to_all(self: &Arc<Self>, st: &mut State, ev: &JobEvent) {
        let mut msg = None;
        let mut gone = Vec::new();
        for (key, sub) in st.all.iter_mut() {
            if sub.behind || !(sub.statuses.is_empty() || sub.statuses.contains(&ev.status)) {
                continue;
            }
            let m = msg
                .get_or_insert_with(|| pb::WatchJobsResponse {
                    event: Some(event_to_pb(ev.clone())),
                    resync: None,
                })
                .clone();
            match sub.tx.try_send(Ok(m)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    sub.behind = true;
                    tokio::spawn(resync_later(
                        Arc::downgrade(self),
                        *key,
                        sub.tx.clone(),
                        pb::ResyncReason::ClientSlow,
                    ));
                }
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push(*key),
            }
        }
        for k in gone {
            st.all.remove(&k);
        }
    }

    /// Events may have been lost: re-read every watched job; with `tell_all`, also send a
    /// resync to every `WatchJobs` stream.
    fn on_gap(self: &Arc<Self>, tell_all: bool) {
        let mut st = self.lock();
        let ids: Vec<String> = st.jobs.keys().cloned().collect();
        for id in ids {
            request_read(&mut st, &id, &self.reads);
        }
        if !tell_all {
            return;
        }
        let msg = resync(pb::ResyncReason::EventsLost);
        let mut gone = Vec::new();
        for (key, sub) in st.all.iter_mut() {
            if sub.behind {
                continue; // its catch-up sends a resync anyway
            }
            match sub.tx.try_send(Ok(msg.clone())) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    sub.behind = true;
                    tokio::spawn(resync_later(
                        Arc::downgrade(self),
                        *key,
                        sub.tx.clone(),
                        pb::ResyncReason::EventsLost,
                    ));
                }
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push(*key),
            }
        }
        for k in gone {
            st.all.remove(&k);
        }
    }

    /// Merges a read of job `id` (`None`: unknown or expired) into its entry, then settles it.
    fn merge(self: &Arc<Self>, st: &mut State, id: &str, read: Option<Job>) {
        let Some(e) = st.jobs.get_mut(id) else {
            return;
        };
        match read {
            Some(job) if e.job.as_ref().is_none_or(|j| job.version > j.version) => {
                e.job = Some(job_to_pb(job));
            }
            Some(_) => {} // not newer than what the entry knows
            None if e.job.is_some() => {
                // Only terminal jobs expire, so it ended while we were not looking: end with
                // the terminal state its event announced, if that event reached us.
                let base = e.job.clone().expect("checked above");
                let last = e.pending.values().rev().find(|ev| ev.status.is_terminal());
                match last {
                    Some(ev) => {
                        let mut j = base;
                        overlay(&mut j, ev);
                        e.pending.clear();
                        e.job = Some(j);
                    }
                    None => {
                        e.end = Some(format!(
                            "job {id} ended and expired before its final state could be read"
                        ))
                    }
                }
            }
            // never read successfully yet: the WatchJob call that opened it reports NOT_FOUND
            None => {}
        }
        self.settle(st, id);
    }

    /// Applies the entry's pending events that follow its state, asks for a re-read where
    /// they can't be applied, sends news to its streams and drops it when nobody watches.
    fn settle(self: &Arc<Self>, st: &mut State, id: &str) {
        let Some(e) = st.jobs.get_mut(id) else {
            return;
        };
        let mut need_read = false;
        if let Some(job) = e.job.as_mut() {
            while let Some((&v, ev)) = e.pending.first_key_value() {
                if v <= job.version {
                    e.pending.pop_first();
                } else if v > job.version + 1 {
                    need_read = true; // a hole: some transition never reached us
                    break;
                } else if let Some(next) = apply(job, ev) {
                    *job = next;
                    e.pending.pop_first();
                } else {
                    need_read = true; // the event lacks fields; it stays as the fallback
                    break;
                }
            }
        }
        let dead = publish(self, id, e);
        if dead {
            st.jobs.remove(id);
        } else if need_read {
            request_read(st, id, &self.reads);
        }
    }
}

/// Queues a re-read of `id` (once: a need that arises while a read is in flight queues
/// another one after it).
fn request_read(st: &mut State, id: &str, reads: &Notify) {
    let Some(e) = st.jobs.get_mut(id) else {
        return;
    };
    if e.read_pending {
        e.read_again = true;
    } else {
        e.read_pending = true;
        st.reads.push_back(id.to_owned());
        reads.notify_one();
    }
}

/// Sends the entry's state (or its end) to every stream that has not seen it yet; a stream
/// ends (its sender drops) after a terminal state or an error. Returns true when no stream is
/// left.
fn publish(shared: &Arc<Shared>, id: &str, e: &mut Entry) -> bool {
    let (job, end) = (e.job.as_ref(), e.end.as_ref());
    e.subs.retain_mut(|sub| {
        if sub.behind {
            return true; // its catch-up task sends next
        }
        let full = |sub: &mut JobSub| {
            sub.behind = true;
            tokio::spawn(catch_up(
                Arc::downgrade(shared),
                id.to_owned(),
                sub.key,
                sub.tx.clone(),
            ));
            true
        };
        if let Some(j) = job.filter(|j| j.version > sub.sent) {
            let msg = pb::WatchJobResponse {
                job: Some(j.clone()),
            };
            match sub.tx.try_send(Ok(msg)) {
                Ok(()) if is_terminal(j) => return false,
                Ok(()) => sub.sent = j.version,
                Err(mpsc::error::TrySendError::Full(_)) => return full(sub),
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        if let Some(msg) = end {
            return match sub.tx.try_send(Err(GrpcStatus::not_found(msg.clone()))) {
                Err(mpsc::error::TrySendError::Full(_)) => full(sub),
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => false,
            };
        }
        true
    });
    e.subs.is_empty()
}

/// A `WatchJob` stream was full: wait for room, then send what it has not seen — the job's
/// latest state, then its end if it ended with an error.
async fn catch_up(shared: Weak<Shared>, id: String, key: u64, tx: mpsc::Sender<JobItem>) {
    loop {
        let Ok(permit) = tx.reserve().await else {
            return; // the client went away; its guard unregisters it
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut st = shared.lock();
        let Some(e) = st.jobs.get_mut(&id) else {
            return;
        };
        let (job, end) = (e.job.clone(), e.end.clone());
        let Some(sub) = e.subs.iter_mut().find(|s| s.key == key) else {
            return;
        };
        let finished = match (job, end) {
            (Some(j), end) if j.version > sub.sent => {
                sub.sent = j.version;
                let terminal = is_terminal(&j);
                permit.send(Ok(pb::WatchJobResponse { job: Some(j) }));
                if !terminal && end.is_some() {
                    continue; // the error follows once there is room again
                }
                terminal
            }
            (_, Some(msg)) => {
                permit.send(Err(GrpcStatus::not_found(msg)));
                true
            }
            _ => false,
        };
        if finished {
            e.subs.retain(|s| s.key != key);
            if e.subs.is_empty() {
                st.jobs.remove(&id);
            }
        } else {
            sub.behind = false;
        }
        return;
    }
}

/// A `WatchJobs` stream was full (or had to be told about a gap while full): wait for room,
/// then send one resync.
async fn resync_later(
    shared: Weak<Shared>,
    key: u64,
    tx: mpsc::Sender<AllItem>,
    reason: pb::ResyncReason,
) {
    let Ok(permit) = tx.reserve().await else {
        return;
    };
    let Some(shared) = shared.upgrade() else {
        return;
    };
    let mut st = shared.lock();
    if let Some(sub) = st.all.get_mut(&key) {
        sub.behind = false;
        permit.send(Ok(resync(reason)));
    }
}

fn resync(reason: pb::ResyncReason) -> pb::WatchJobsResponse {
    pb::WatchJobsResponse {
        event: None,
        resync: Some(pb::Resync {
            reason: reason as i32,
        }),
    }
}

fn is_terminal(j: &pb::Job) -> bool {
    matches!(
        pb::JobStatus::try_from(j.status),
        Ok(pb::JobStatus::Done | pb::JobStatus::Failed | pb::JobStatus::Cancelled)
    )
}

/// Writes what `ev` says onto `j`. Both stores publish the record's own fields (status,
/// version, attempts, time, worker, error, progress), so those are copied as they are; a
/// delivery's start and a terminal state's end time are the event's time, and a DONE event's
/// result becomes the text or payload result.
fn overlay(j: &mut pb::Job, ev: &JobEvent) {
    let at = Some(timestamp_from_ms(ev.at));
    let was = pb::JobStatus::try_from(j.status).ok();
    j.status = status_to_pb(ev.status) as i32;
    j.version = ev.version;
    j.attempts = ev.attempts;
    j.updated_at = at;
    j.worker_id = ev.worker_id.clone().unwrap_or_default();
    j.error = ev.error.clone();
    j.progress = ev.progress;
    match ev.status {
        // a new delivery (not a progress report, which keeps the status)
        Status::Processing if was != Some(pb::JobStatus::Processing) => j.started_at = at,
        Status::Processing => {}
        // due (or given back): no run time any more
        Status::Queued => j.run_at = None,
        Status::Done | Status::Failed | Status::Cancelled => j.finished_at = at,
        Status::Scheduled => {}
    }
    if ev.status == Status::Done {
        match (&ev.result, &ev.result_type) {
            (Some(r), Some(ct)) => {
                j.result = None;
                j.result_payload = r.as_bytes().to_vec();
                j.result_content_type = ct.clone();
            }
            (Some(r), None) => j.result = Some(r.clone()),
            (None, _) => {}
        }
    }
}

/// The state after `ev` (the next version of `j`), or `None` when the event does not carry
/// everything that state needs and the job must be read instead: a retry's `run_at`, or the
/// result of a DONE that was too large (or not JSON) to travel with its event.
fn apply(j: &pb::Job, ev: &JobEvent) -> Option<pb::Job> {
    let complete = match ev.status {
        Status::Scheduled => false,
        Status::Done => ev.result.is_some(),
        _ => true,
    };
    complete.then(|| {
        let mut next = j.clone();
        overlay(&mut next, ev);
        next
    })
}

/// A stream of watch messages; leaving the hub when dropped (the client went away).
pub struct Watch<T> {
    rx: mpsc::Receiver<Result<T, GrpcStatus>>,
    _guard: Unregister,
}

impl<T> Stream for Watch<T> {
    type Item = Result<T, GrpcStatus>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

enum Target {
    Job(String, u64),
    All(u64),
}

struct Unregister {
    shared: Weak<Shared>,
    target: Target,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let mut st = shared.lock();
        match &self.target {
            Target::All(key) => {
                st.all.remove(key);
            }
            Target::Job(id, key) => {
                if let Some(e) = st.jobs.get_mut(id) {
                    e.subs.retain(|s| s.key != *key);
                    if e.subs.is_empty() {
                        st.jobs.remove(id);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
