//! The hub's routing, on a real [`MemoryStore`] whose events reach the hub only when the test
//! passes them on ([`Hub::with_feed`]): a test can lose events, inject a [`Feed::Gap`], and
//! count the store reads the hub makes.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pfc_proto::jobs::v1 as pb;
use pfc_queue::{
    Completion, CompletionResult, Feed, Job, JobEvent, JobStore, LeaseRef, MemoryStore, NewJob,
    Outcome, StoreConfig,
};
use tokio::sync::broadcast;

use super::{Hub, Watch};

/// A MemoryStore, and the feed its hub sees (only what the test passes on).
struct Tap {
    store: Arc<MemoryStore>,
    feed: broadcast::Sender<Feed>,
}

impl Deref for Tap {
    type Target = MemoryStore;
    fn deref(&self) -> &MemoryStore {
        &self.store
    }
}

impl Tap {
    /// The store, a hub over it, and the receiver of the store's real events (for the test
    /// to pass on or drop).
    fn new(retention: Duration) -> (Tap, Hub, broadcast::Receiver<Feed>) {
        let store = Arc::new(MemoryStore::new(StoreConfig {
            retention,
            ..Default::default()
        }));
        let real = store.subscribe();
        let feed = broadcast::channel(1024).0;
        let hub = Hub::with_feed(store.clone(), feed.subscribe());
        (Tap { store, feed }, hub, real)
    }

    fn send(&self, f: Feed) {
        self.feed.send(f).expect("the hub is subscribed");
    }
}

/// The store's next real event.
async fn next(real: &mut broadcast::Receiver<Feed>) -> JobEvent {
    match tokio::time::timeout(Duration::from_secs(2), real.recv()).await {
        Ok(Ok(Feed::Event(ev))) => ev,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Passes the store's next real event on to the hub.
async fn pass(tap: &Tap, real: &mut broadcast::Receiver<Feed>) -> JobEvent {
    let ev = next(real).await;
    tap.send(Feed::Event(ev.clone()));
    ev
}

async fn submit(tap: &Tap, text: &str) -> String {
    tap.submit(NewJob {
        kind: "uppercase".into(),
        text: text.into(),
        max_attempts: 3,
        ..Default::default()
    })
    .await
    .unwrap()
    .job
    .id
}

async fn take(tap: &Tap, n: usize) -> Vec<Job> {
    let kinds = ["uppercase".to_owned()];
    tap.take("w1", &kinds, n, Duration::ZERO).await.unwrap()
}

async fn done(tap: &Tap, job: &Job) {
    let c = Completion::of(job, "w1", Outcome::Done(job.text.to_uppercase()));
    assert_eq!(
        tap.complete(&[c]).await.unwrap(),
        [CompletionResult::Applied]
    );
}

/// The next message of a stream (`None`: it ended).
async fn recv<T>(w: &mut Watch<T>) -> Option<std::result::Result<T, tonic::Status>> {
    tokio::time::timeout(Duration::from_secs(2), w.next())
        .await
        .expect("the stream stayed silent")
}

async fn job(w: &mut Watch<pb::WatchJobResponse>) -> pb::Job {
    recv(w)
        .await
        .expect("stream ended")
        .expect("stream failed")
        .job
        .unwrap()
}

async fn silent<T: std::fmt::Debug>(w: &mut Watch<T>) {
    if let Ok(m) = tokio::time::timeout(Duration::from_millis(50), w.next()).await {
        panic!("expected nothing, got {m:?}");
    }
}

/// Each transition reaches only the streams watching that job, and the `WatchJobs` streams
/// whose filter matches; applying it costs no store read (the DONE event carries the result).
#[tokio::test]
async fn events_go_only_to_their_watchers_without_reads() {
    let (tap, hub, mut real) = Tap::new(Duration::from_secs(3600));
    let a = submit(&tap, "a").await;
    let b = submit(&tap, "b").await;
    let (mut a1, mut a2) = (
        hub.watch_job(&a).await.unwrap(),
        hub.watch_job(&a).await.unwrap(),
    );
    let mut wb = hub.watch_job(&b).await.unwrap();
    let mut done_only = hub.watch_jobs(vec![pfc_queue::Status::Done]);
    let mut every = hub.watch_jobs(vec![]);
    for w in [&mut a1, &mut a2, &mut wb] {
        assert_eq!(job(w).await.status(), pb::JobStatus::Queued);
    }
    assert_eq!(hub.reads(), 3, "one read per WatchJob call");
    for id in [&a, &b] {
        pass(&tap, &mut real).await; // the submits: old news for the job streams
        let ev = recv(&mut every).await.unwrap().unwrap().event.unwrap();
        assert_eq!((&ev.job_id, ev.status()), (id, pb::JobStatus::Queued));
    }

    let taken = take(&tap, 1).await;
    assert_eq!(taken[0].id, a);
    pass(&tap, &mut real).await;
    for w in [&mut a1, &mut a2] {
        let j = job(w).await;
        assert_eq!(
            (j.status(), j.version, j.attempts),
            (pb::JobStatus::Processing, 2, 1)
        );
        assert_eq!(j.worker_id, "w1");
    }
    let ev = recv(&mut every).await.unwrap().unwrap().event.unwrap();
    assert_eq!(
        (ev.job_id.as_str(), ev.status()),
        (a.as_str(), pb::JobStatus::Processing)
    );
    silent(&mut done_only).await;
    silent(&mut wb).await;

    done(&tap, &taken[0]).await;
    pass(&tap, &mut real).await;
    // what the streams are sent, built from the events, is exactly what the store holds
    let stored = crate::convert::job_to_pb(tap.get(&a).await.unwrap().unwrap());
    for w in [&mut a1, &mut a2] {
        let j = job(w).await;
        assert_eq!(j.result.as_deref(), Some("A"));
        assert_eq!(j, stored);
        assert!(recv(w).await.is_none(), "the stream ends after DONE");
    }
    for w in [&mut done_only, &mut every] {
        let ev = recv(w).await.unwrap().unwrap().event.unwrap();
        assert_eq!(
            (ev.job_id.as_str(), ev.status()),
            (a.as_str(), pb::JobStatus::Done)
        );
    }
    silent(&mut wb).await;
    assert_eq!(
        hub.reads(),
        3,
        "no read for a transition the event describes"
    );
    assert_eq!(hub.watching(), (1, 2), "a's entry is gone, b's stays");
}

/// After a gap (events lost), every watched job is re-read once and each stream catches up
/// with its job's current state; `WatchJobs` streams are told to resync.
#[tokio::test]
async fn a_gap_rereads_every_watched_job_and_resyncs() {
    let (tap, hub, mut real) = Tap::new(Duration::from_secs(3600));
    let a = submit(&tap, "a").await;
    let b = submit(&tap, "b").await;
    next(&mut real).await;
    next(&mut real).await;
    let mut wa = hub.watch_job(&a).await.unwrap();
    let mut wb = hub.watch_job(&b).await.unwrap();
    let mut every = hub.watch_jobs(vec![]);
    job(&mut wa).await;
    job(&mut wb).await;
    let taken = take(&tap, 2).await;
    done(&tap, &taken[0]).await;
    for _ in 0..3 {
        next(&mut real).await; // lost: processing a, processing b, done a
    }
    silent(&mut wa).await;
    let before = hub.reads();

    tap.send(Feed::Gap);
    let j = job(&mut wa).await;
    assert_eq!(
        (j.status(), j.result.as_deref()),
        (pb::JobStatus::Done, Some("A"))
    );
    assert!(recv(&mut wa).await.is_none());
    assert_eq!(job(&mut wb).await.status(), pb::JobStatus::Processing);
    let m = recv(&mut every).await.unwrap().unwrap();
    assert!(m.event.is_none());
    assert_eq!(m.resync.unwrap().reason(), pb::ResyncReason::EventsLost);
    assert_eq!(hub.reads() - before, 2, "one read per watched job");
}

/// An event whose version skips one (its predecessor was lost) makes the hub read the job
/// rather than apply the event to a stale state.
#[tokio::test]
async fn a_version_hole_is_filled_by_a_read() {
    let (tap, hub, mut real) = Tap::new(Duration::from_secs(3600));
    let a = submit(&tap, "a").await;
    next(&mut real).await;
    let mut wa = hub.watch_job(&a).await.unwrap();
    job(&mut wa).await;
    let taken = take(&tap, 1).await;
    next(&mut real).await; // lost: processing (v2)
    done(&tap, &taken[0]).await;
    let ev = pass(&tap, &mut real).await; // done (v3)
    assert_eq!(ev.version, 3);
    let j = job(&mut wa).await;
    assert_eq!((j.status(), j.version), (pb::JobStatus::Done, 3));
    assert_eq!(hub.reads(), 2, "the open, then one read for the hole");
    assert!(recv(&mut wa).await.is_none());
}

/// A DONE event without its result (as the Redis store sends today) is completed by a read;
/// if the job already expired, the stream still ends DONE — not NOT_FOUND.
#[tokio::test]
async fn done_without_result_after_expiry_still_ends_done() {
    let (tap, hub, mut real) = Tap::new(Duration::from_millis(20));
    let a = submit(&tap, "a").await;
    next(&mut real).await;
    let mut wa = hub.watch_job(&a).await.unwrap();
    job(&mut wa).await;
    let taken = take(&tap, 1).await;
    pass(&tap, &mut real).await;
    assert_eq!(job(&mut wa).await.status(), pb::JobStatus::Processing);
    done(&tap, &taken[0]).await;
    let mut ev = next(&mut real).await;
    ev.result = None;
    tokio::time::sleep(Duration::from_millis(40)).await;
    tap.maintain().await.unwrap();
    assert!(tap.get(&a).await.unwrap().is_none(), "expired");
    tap.send(Feed::Event(ev));
    let j = job(&mut wa).await;
    assert_eq!((j.status(), j.version), (pb::JobStatus::Done, 3));
    assert!(recv(&mut wa).await.is_none());
}

/// A job that ended and expired while every event about it was lost ends its streams with
/// NOT_FOUND saying so, instead of leaving them open forever.
#[tokio::test]
async fn an_end_lost_with_its_job_is_reported() {
    let (tap, hub, mut real) = Tap::new(Duration::from_millis(20));
    let a = submit(&tap, "a").await;
    next(&mut real).await;
    let mut wa = hub.watch_job(&a).await.unwrap();
    job(&mut wa).await;
    let taken = take(&tap, 1).await;
    done(&tap, &taken[0]).await;
    tokio::time::sleep(Duration::from_millis(40)).await;
    tap.maintain().await.unwrap();
    tap.send(Feed::Gap);
    let err = recv(&mut wa).await.unwrap().unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(
        err.message().contains("ended and expired"),
        "{}",
        err.message()
    );
    assert!(recv(&mut wa).await.is_none());
}

/// A `WatchJobs` client that stops reading never blocks the hub: its buffer fills, later
/// events skip it, and when it reads again it finds a resync after what was buffered.
#[tokio::test]
async fn a_slow_watch_jobs_stream_gets_a_resync() {
    let (tap, hub, mut real) = Tap::new(Duration::from_secs(3600));
    let mut slow = hub.watch_jobs(vec![]);
    let mut fast = hub.watch_jobs(vec![]);
    for i in 0..300 {
        submit(&tap, &format!("j{i}")).await;
        pass(&tap, &mut real).await;
        let m = recv(&mut fast).await.unwrap().unwrap();
        assert!(m.event.is_some(), "the fast stream gets every event");
    }
    for _ in 0..super::ALL_BUFFER {
        assert!(recv(&mut slow).await.unwrap().unwrap().event.is_some());
    }
    let m = recv(&mut slow).await.unwrap().unwrap();
    assert_eq!(m.resync.unwrap().reason(), pb::ResyncReason::ClientSlow);
    submit(&tap, "after").await;
    pass(&tap, &mut real).await;
    assert!(
        recv(&mut slow).await.unwrap().unwrap().event.is_some(),
        "live again"
    );
}

/// A `WatchJob` client that stops reading while its job changes many times gets, when it
/// reads again, what was buffered and then the latest state: versions only ever increase,
/// and it still ends with the terminal state.
#[tokio::test]
async fn a_slow_watch_job_stream_catches_up_in_order() {
    let (tap, hub, mut real) = Tap::new(Duration::from_secs(3600));
    let a = submit(&tap, "a").await;
    next(&mut real).await;
    let mut wa = hub.watch_job(&a).await.unwrap();
    for _ in 0..10 {
        let t = take(&tap, 1).await;
        pass(&tap, &mut real).await;
        tap.release("w1", &[LeaseRef::of(&t[0])]).await.unwrap();
        pass(&tap, &mut real).await;
    }
    let t = take(&tap, 1).await;
    pass(&tap, &mut real).await;
    done(&tap, &t[0]).await;
    pass(&tap, &mut real).await;
    let mut versions = Vec::new();
    while let Some(m) = recv(&mut wa).await {
        versions.push(m.unwrap().job.unwrap().version);
    }
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert!(
        versions.len() < 23,
        "some intermediate states were skipped: {versions:?}"
    );
    assert_eq!(versions.last(), Some(&23), "ends with DONE (v23)");
}

/// Progress reports reach the job's watchers as new versions (same delivery, same start
/// time) without a store read; a retry — whose `run_at` no event carries — is read.
#[tokio::test]
async fn progress_needs_no_read_and_a_retry_is_read() {
    let (tap, hub, mut real) = Tap::new(Duration::from_secs(3600));
    let a = submit(&tap, "a").await;
    next(&mut real).await;
    let mut wa = hub.watch_job(&a).await.unwrap();
    job(&mut wa).await;
    let t = take(&tap, 1).await;
    pass(&tap, &mut real).await;
    let running = job(&mut wa).await;
    for p in [30, 60] {
        assert!(tap.progress("w1", &LeaseRef::of(&t[0]), p).await.unwrap());
        pass(&tap, &mut real).await;
        let j = job(&mut wa).await;
        assert_eq!(
            (j.status(), j.progress),
            (pb::JobStatus::Processing, Some(p))
        );
        assert_eq!(j.started_at, running.started_at);
    }
    let stored = crate::convert::job_to_pb(tap.get(&a).await.unwrap().unwrap());
    assert_eq!(job_now(&hub, &a), Some(stored));
    assert_eq!(hub.reads(), 1, "only the open read");

    let fail = Outcome::Failed {
        error: "boom".into(),
        retryable: true,
    };
    tap.complete(&[Completion::of(&t[0], "w1", fail)])
        .await
        .unwrap();
    pass(&tap, &mut real).await;
    let j = job(&mut wa).await;
    assert_eq!(j.status(), pb::JobStatus::Scheduled);
    assert!(j.run_at.is_some(), "read from the store");
    assert_eq!(j.error.as_deref(), Some("boom"));
    assert_eq!(hub.reads(), 2);
}

/// The state the hub holds for a watched job.
fn job_now(hub: &Hub, id: &str) -> Option<pb::Job> {
    hub.shared.lock().jobs.get(id).and_then(|e| e.job.clone())
}
