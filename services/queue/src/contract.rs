//! The contract every [`JobStore`] must honour, as async checks that panic on violation.
//!
//! `tests/contract.rs` runs each check against a [`crate::MemoryStore`] and a
//! [`crate::RedisStore`] on a real redis-server, so both implementations stay equivalent.

use std::time::Duration;

use crate::model::*;
use crate::JobStore;

fn kinds() -> Vec<String> {
    vec!["uppercase".into()]
}

fn new_job(text: &str) -> NewJob {
    NewJob {
        kind: "uppercase".into(),
        text: text.into(),
        max_attempts: 3,
        ..Default::default()
    }
}

fn done(job: &Job, worker: &str, result: &str) -> Completion {
    Completion::of(job, worker, Outcome::Done(result.into()))
}

/// Submit → take → complete: the job is done with its result, once.
pub async fn submit_take_complete(s: &dyn JobStore) {
    let sub = s.submit(new_job("bonjour le monde")).await.unwrap();
    assert!(sub.created);
    assert_eq!(sub.job.status, Status::Queued);
    let got = s.get(&sub.job.id).await.unwrap().unwrap();
    assert_eq!(got.text, "bonjour le monde");
    assert_eq!(got.status, Status::Queued);

    let taken = s
        .take("w1", &kinds(), 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    let job = &taken[0];
    assert_eq!(job.status, Status::Processing);
    assert_eq!(job.attempts, 1);
    assert_eq!(job.worker_id.as_deref(), Some("w1"));
    assert!(
        s.take("w2", &kinds(), 10, Duration::from_millis(50))
            .await
            .unwrap()
            .is_empty(),
        "no double delivery"
    );

    let r = s
        .complete(&[done(job, "w1", "BONJOUR LE MONDE")])
        .await
        .unwrap();
    assert_eq!(r, [CompletionResult::Applied]);
    let j = s.get(&job.id).await.unwrap().unwrap();
    assert_eq!(j.status, Status::Done);
    assert_eq!(j.result.as_deref(), Some("BONJOUR LE MONDE"));
    assert!(j.finished_at.is_some());
    // a second report of the same delivery (a retry) is a duplicate, not applied twice;
    // another worker's report on it is stale
    assert_eq!(
        s.complete(&[done(job, "w1", "X")]).await.unwrap(),
        [CompletionResult::Duplicate]
    );
    assert_eq!(
        s.complete(&[done(job, "w2", "X")]).await.unwrap(),
        [CompletionResult::Stale]
    );
    assert_eq!(
        s.get(&job.id).await.unwrap().unwrap().result.as_deref(),
        Some("BONJOUR LE MONDE")
    );
    let st = s.stats().await.unwrap();
    assert_eq!(
        (st.queued, st.processing, st.done_total, st.submitted_total),
        (0, 0, 1, 1)
    );
}

/// Jobs are delivered in submit order and `take` honours `max`.
pub async fn fifo_and_batch(s: &dyn JobStore) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(s.submit(new_job(&format!("t{i}"))).await.unwrap().job.id);
    }
    let a = s.take("w", &kinds(), 3, Duration::ZERO).await.unwrap();
    let b = s.take("w", &kinds(), 3, Duration::ZERO).await.unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(b.len(), 2);
    let got: Vec<_> = a.iter().chain(&b).map(|j| j.id.clone()).collect();
    assert_eq!(got, ids);
}

/// A waiting `take` is woken by a submit instead of sleeping out its timeout.
pub async fn take_waits_for_submit(s: std::sync::Arc<dyn JobStore>) {
    let s2 = s.clone();
    let waiter = tokio::spawn(async move {
        let t = std::time::Instant::now();
        let jobs = s2
            .take("w", &kinds(), 1, Duration::from_secs(5))
            .await
            .unwrap();
        (jobs, t.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = s.submit(new_job("wake")).await.unwrap().job.id;
    let (jobs, elapsed) = waiter.await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id, id);
    assert!(elapsed < Duration::from_secs(2), "take slept {elapsed:?}");
}

/// A lease that is not renewed expires and the job is delivered again, with attempts counted;
/// the old holder's completion is then stale.
pub async fn expired_lease_redelivers(s: &dyn JobStore) {
    let id = s.submit(new_job("x")).await.unwrap().job.id;
    let first = s
        .take("dead", &kinds(), 1, Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(first.attempts, 1);
    // lease in the test config is short; do not heartbeat
    let again = s
        .take("alive", &kinds(), 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "job redelivered after the lease expired");
    assert_eq!(again[0].id, id);
    assert_eq!(again[0].attempts, 2);
    assert_eq!(
        s.complete(&[done(&first, "dead", "late")]).await.unwrap(),
        [CompletionResult::Stale]
    );
    assert_eq!(
        s.complete(&[done(&again[0], "alive", "X")]).await.unwrap(),
        [CompletionResult::Applied]
    );
    assert_eq!(
        s.get(&id).await.unwrap().unwrap().result.as_deref(),
        Some("X")
    );
}

/// Heartbeats keep a lease alive past its duration; a lost lease is reported.
pub async fn heartbeat_renews(s: &dyn JobStore, lease: Duration) {
    s.submit(new_job("x")).await.unwrap();
    let job = s
        .take("w", &kinds(), 1, Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    let info = WorkerInfo {
        id: "w".into(),
        concurrency: 4,
        in_flight: 1,
        last_seen: 0,
        kinds: kinds(),
    };
    let lref = LeaseRef::of(&job);
    let until = std::time::Instant::now() + lease * 2;
    while std::time::Instant::now() < until {
        assert!(s
            .heartbeat(&info, std::slice::from_ref(&lref))
            .await
            .unwrap()
            .is_empty());
        s.maintain().await.unwrap();
        tokio::time::sleep(lease / 4).await;
    }
    assert_eq!(
        s.get(&job.id).await.unwrap().unwrap().status,
        Status::Processing
    );
    let st = s.stats().await.unwrap();
    assert_eq!(st.workers.len(), 1);
    assert_eq!(st.workers[0].concurrency, 4);
    let stale = LeaseRef {
        job_id: job.id.clone(),
        delivery: 99,
    };
    assert_eq!(
        s.heartbeat(&info, std::slice::from_ref(&stale))
            .await
            .unwrap(),
        [stale]
    );
    s.unregister_worker("w").await.unwrap();
    assert!(s.stats().await.unwrap().workers.is_empty());
}

/// A failing job is retried with backoff (scheduled in between) and fails for good after
/// max attempts, with its error kept; a permanent failure fails at once.
pub async fn retries_then_fails(s: &dyn JobStore) {
    let id = s
        .submit(NewJob {
            max_attempts: 2,
            ..new_job("x")
        })
        .await
        .unwrap()
        .job
        .id;
    let fail = |j: &Job| {
        Completion::of(
            j,
            "w",
            Outcome::Failed {
                error: format!("boom {}", j.attempts),
                retryable: true,
            },
        )
    };
    let j1 = s
        .take("w", &kinds(), 1, Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    s.complete(&[fail(&j1)]).await.unwrap();
    let mid = s.get(&id).await.unwrap().unwrap();
    assert_eq!(mid.status, Status::Scheduled);
    assert_eq!(mid.error.as_deref(), Some("boom 1"));
    assert!(mid.run_at.is_some());
    let j2 = s
        .take("w", &kinds(), 1, Duration::from_secs(5))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(j2.attempts, 2);
    s.complete(&[fail(&j2)]).await.unwrap();
    let end = s.get(&id).await.unwrap().unwrap();
    assert_eq!(end.status, Status::Failed);
    assert_eq!(end.error.as_deref(), Some("boom 2"));
    let failed = s
        .list(ListQuery {
            status: Some(Status::Failed),
            limit: 10,
            before: None,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.jobs.len(), 1, "dead letters are listed");

    let id2 = s.submit(new_job("y")).await.unwrap().job.id;
    let j = s
        .take("w", &kinds(), 1, Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    s.complete(&[Completion::of(
        &j,
        "w",
        Outcome::Failed {
            error: "bad input".into(),
            retryable: false,
        },
    )])
    .await
    .unwrap();
    assert_eq!(s.get(&id2).await.unwrap().unwrap().status, Status::Failed);
    let st = s.stats().await.unwrap();
    assert_eq!((st.failed_total, st.retried_total), (2, 1));
}

/// A delayed job is scheduled until due, then delivered.
pub async fn delayed_job(s: &dyn JobStore) {
    let at = now_ms() + 400;
    let sub = s
        .submit(NewJob {
            run_at: Some(at),
            ..new_job("later")
        })
        .await
        .unwrap();
    assert_eq!(sub.job.status, Status::Scheduled);
    assert!(s
        .take("w", &kinds(), 1, Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.stats().await.unwrap().scheduled, 1);
    let jobs = s
        .take("w", &kinds(), 1, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(now_ms() >= at - 5, "delivered before its time");
}

/// The same idempotency key returns the first job instead of a second one.
pub async fn idempotent_submit(s: &dyn JobStore) {
    let a = s
        .submit(NewJob {
            idempotency_key: Some("k1".into()),
            ..new_job("a")
        })
        .await
        .unwrap();
    let b = s
        .submit(NewJob {
            idempotency_key: Some("k1".into()),
            ..new_job("b")
        })
        .await
        .unwrap();
    assert!(a.created);
    assert!(!b.created);
    assert_eq!(a.job.id, b.job.id);
    assert_eq!(b.job.text, "a");
    let c = s
        .submit(NewJob {
            idempotency_key: Some("k2".into()),
            ..new_job("c")
        })
        .await
        .unwrap();
    assert_ne!(c.job.id, a.job.id);
    assert_eq!(s.stats().await.unwrap().submitted_total, 2);
}

/// Queued and scheduled jobs can be cancelled and are never delivered; others can't.
pub async fn cancel(s: &dyn JobStore) {
    let q = s.submit(new_job("q")).await.unwrap().job.id;
    let later = s
        .submit(NewJob {
            run_at: Some(now_ms() + 60_000),
            ..new_job("s")
        })
        .await
        .unwrap()
        .job
        .id;
    assert_eq!(s.cancel(&q).await.unwrap().status, Status::Cancelled);
    assert_eq!(s.cancel(&later).await.unwrap().status, Status::Cancelled);
    assert_eq!(
        s.stats().await.unwrap().queued,
        0,
        "cancelled jobs are not queued"
    );
    assert!(s
        .take("w", &kinds(), 10, Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        s.cancel(&q).await,
        Err(crate::StoreError::InvalidState { .. })
    ));
    assert!(matches!(
        s.cancel("nope").await,
        Err(crate::StoreError::NotFound(_))
    ));
    let p = s.submit(new_job("p")).await.unwrap().job.id;
    s.take("w", &kinds(), 1, Duration::ZERO).await.unwrap();
    assert!(matches!(
        s.cancel(&p).await,
        Err(crate::StoreError::InvalidState {
            status: Status::Processing,
            ..
        })
    ));
    let st = s.stats().await.unwrap();
    assert_eq!((st.queued, st.scheduled, st.cancelled_total), (0, 0, 2));
}

/// Finished jobs expire after the retention time (the store is built with a short one).
pub async fn retention_expires(s: &dyn JobStore, retention: Duration) {
    s.submit(new_job("x")).await.unwrap();
    let j = s
        .take("w", &kinds(), 1, Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    s.complete(&[done(&j, "w", "X")]).await.unwrap();
    assert!(s.get(&j.id).await.unwrap().is_some());
    tokio::time::sleep(retention + Duration::from_millis(300)).await;
    s.maintain().await.unwrap();
    assert!(
        s.get(&j.id).await.unwrap().is_none(),
        "expired job still there"
    );
    let page = s
        .list(ListQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(page.jobs.is_empty());
}

/// Lists page newest first, filter by status, and count.
pub async fn list_pages(s: &dyn JobStore) {
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(s.submit(new_job(&format!("{i}"))).await.unwrap().job.id);
    }
    s.take("w", &kinds(), 2, Duration::ZERO).await.unwrap();
    let p1 = s
        .list(ListQuery {
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(p1.total, 7);
    assert_eq!(
        p1.jobs.iter().map(|j| &j.id).collect::<Vec<_>>(),
        [&ids[6], &ids[5], &ids[4]]
    );
    let p2 = s
        .list(ListQuery {
            limit: 3,
            before: p1.next.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(p2.jobs[0].id, ids[3]);
    let p3 = s
        .list(ListQuery {
            limit: 3,
            before: p2.next.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(p3.jobs.len(), 1);
    assert!(p3.next.is_none());
    let proc = s
        .list(ListQuery {
            status: Some(Status::Processing),
            limit: 10,
            before: None,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(proc.total, 2);
    assert!(proc.jobs.iter().all(|j| j.status == Status::Processing));
    // the five still queued, newest first, two at a time
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let q = ListQuery {
            status: Some(Status::Queued),
            limit: 2,
            before: before.clone(),
            ..Default::default()
        };
        let page = s.list(q).await.unwrap();
        assert_eq!(page.total, 5);
        assert!(page.jobs.iter().all(|j| j.status == Status::Queued));
        seen.extend(page.jobs.iter().map(|j| j.id.clone()));
        match page.next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    let want: Vec<_> = ids[2..].iter().rev().cloned().collect();
    assert_eq!(seen, want);
}

/// Every transition is published, in order, with increasing versions.
pub async fn events_are_published(s: &dyn JobStore) {
    let mut rx = s.subscribe();
    // the Redis listener subscribes asynchronously: give it a moment
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = s.submit(new_job("e")).await.unwrap().job.id;
    let j = s
        .take("w", &kinds(), 1, Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    s.complete(&[done(&j, "w", "E")]).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("event")
            .unwrap();
        let Feed::Event(ev) = ev else { continue };
        if ev.job_id == id {
            seen.push((ev.status, ev.version));
        }
    }
    assert_eq!(
        seen,
        [
            (Status::Queued, 1),
            (Status::Processing, 2),
            (Status::Done, 3)
        ]
    );
}

/// A released job (worker shutdown) is queued again at the front without using an attempt.
pub async fn release_requeues(s: &dyn JobStore) {
    let a = s.submit(new_job("a")).await.unwrap().job.id;
    let b = s.submit(new_job("b")).await.unwrap().job.id;
    let j = s
        .take("w", &kinds(), 1, Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(j.id, a);
    s.release(
        "w",
        &[LeaseRef {
            job_id: a.clone(),
            delivery: 1,
        }],
    )
    .await
    .unwrap();
    let got = s.get(&a).await.unwrap().unwrap();
    assert_eq!((got.status, got.attempts), (Status::Queued, 0));
    let next = s.take("w2", &kinds(), 2, Duration::ZERO).await.unwrap();
    assert_eq!(
        next.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        [a, b]
    );
}

/// An abandoned lease (the worker's stream broke) is queued again at the front at once with
/// its attempt counted; on the last attempt the job fails; a stale lease is skipped.
pub async fn abandon_counts_the_attempt(s: &dyn JobStore) {
    let a = s.submit(new_job("a")).await.unwrap().job.id;
    let b = s.submit(new_job("b")).await.unwrap().job.id;
    let j = s
        .take("w", &kinds(), 1, Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(j.id, a);
    // another worker's name, or an old delivery, abandons nothing
    s.abandon("other", &[LeaseRef::of(&j)]).await.unwrap();
    let stale = LeaseRef {
        job_id: a.clone(),
        delivery: 0,
    };
    s.abandon("w", &[stale]).await.unwrap();
    assert_eq!(s.get(&a).await.unwrap().unwrap().status, Status::Processing);
    s.abandon("w", &[LeaseRef::of(&j)]).await.unwrap();
    let got = s.get(&a).await.unwrap().unwrap();
    assert_eq!((got.status, got.attempts), (Status::Queued, 1));
    assert!(got.error.unwrap().contains("disconnected"));
    let next = s.take("w2", &kinds(), 2, Duration::ZERO).await.unwrap();
    assert_eq!(
        next.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        [a.clone(), b]
    );
    // the last attempt: abandoned means failed
    let one = s
        .submit(NewJob {
            max_attempts: 1,
            ..new_job("c")
        })
        .await
        .unwrap()
        .job
        .id;
    let j = s
        .take("w3", &kinds(), 1, Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(j.id, one);
    s.abandon("w3", &[LeaseRef::of(&j)]).await.unwrap();
    let got = s.get(&one).await.unwrap().unwrap();
    assert_eq!(got.status, Status::Failed);
    assert!(
        got.error
            .as_deref()
            .unwrap()
            .starts_with("lease expired after 1 deliveries"),
        "{:?}",
        got.error
    );
}

/// A worker is handed only jobs of the kinds it declared; a kind nobody handles yet waits
/// queued; several kinds are served fairly in one take; the known kinds are listed.
pub async fn kinds_route_jobs(s: &dyn JobStore) {
    let of = |kind: &str, text: &str| NewJob {
        kind: kind.into(),
        ..new_job(text)
    };
    let resize = s.submit(of("resize", "r1")).await.unwrap().job.id;
    s.submit(of("email", "e1")).await.unwrap();
    s.submit(of("email", "e2")).await.unwrap();
    let mine = s
        .take("w", &["resize".into()], 10, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(
        mine.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        [resize]
    );
    assert!(s
        .take("w", &["nobody".into()], 10, Duration::from_millis(50))
        .await
        .unwrap()
        .is_empty());
    s.submit(of("resize", "r2")).await.unwrap();
    let both = s
        .take("w", &["email".into(), "resize".into()], 2, Duration::ZERO)
        .await
        .unwrap();
    let mut got: Vec<&str> = both.iter().map(|j| j.kind.as_str()).collect();
    got.sort();
    assert_eq!(got, ["email", "resize"], "one of each kind, not two of one");
    let st = s.stats().await.unwrap();
    assert_eq!(st.queued, 1);
    for k in ["email", "resize"] {
        assert!(st.kinds.iter().any(|x| x == k), "{k} in {:?}", st.kinds);
    }
}

/// JSON payloads and results round-trip as bytes with their content type; text jobs keep
/// `text`/`result`; progress reaches the job (fenced by the delivery).
pub async fn payloads_and_progress(s: &dyn JobStore) {
    let body = br#"{"w":64,"name":"caf\u00e9"}"#.to_vec();
    let sub = s
        .submit(NewJob {
            kind: "resize".into(),
            payload: Some(Payload::json(body.clone())),
            ..new_job("")
        })
        .await
        .unwrap();
    assert_eq!(
        sub.job.payload.as_ref().map(|p| p.bytes.clone()),
        Some(body.clone())
    );
    let j = s
        .take("w", &["resize".into()], 1, Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    let p = j.payload.clone().expect("payload delivered");
    assert_eq!((p.bytes, p.content_type.as_str()), (body, JSON));
    assert!(j.text.is_empty());
    assert!(s.progress("w", &LeaseRef::of(&j), 40).await.unwrap());
    assert!(!s.progress("other", &LeaseRef::of(&j), 50).await.unwrap());
    let mid = s.get(&j.id).await.unwrap().unwrap();
    assert_eq!(mid.progress, Some(40));
    assert!(mid.version > j.version);
    let out = Payload::json(br#"{"ok":true}"#.to_vec());
    s.complete(&[Completion::of(&j, "w", Outcome::DonePayload(out.clone()))])
        .await
        .unwrap();
    let end = s.get(&j.id).await.unwrap().unwrap();
    assert_eq!(end.status, Status::Done);
    assert_eq!(end.result_payload, Some(out));
    assert_eq!(end.result, None);
    let ev = JobEvent::of(&end);
    assert_eq!(ev.result.as_deref(), Some(r#"{"ok":true}"#));
}

fn in_queue(queue: &str, text: &str) -> NewJob {
    NewJob {
        queue: queue.into(),
        ..new_job(text)
    }
}

fn names(jobs: &[Job]) -> Vec<String> {
    jobs.iter().map(|j| j.text.clone()).collect()
}

/// Named queues: a job id names its queue and is found by id alone (get, cancel, reports);
/// a worker takes only from the queues it names (all by default); idempotency keys are per
/// queue; lists filter by queue or merge every queue newest first; `queues` counts each.
pub async fn named_queues(s: &dyn JobStore) {
    let m1 = s.submit(in_queue("mail", "m1")).await.unwrap().job;
    assert!(m1.id.starts_with("mail."), "{}", m1.id);
    assert_eq!(m1.queue, "mail");
    let d1 = s.submit(new_job("d1")).await.unwrap().job;
    assert_eq!((d1.queue.as_str(), d1.id.len()), ("default", 26));
    let m2 = s.submit(in_queue("mail", "m2")).await.unwrap().job;
    let r1 = s.submit(in_queue("reports.daily", "r1")).await.unwrap().job;
    assert_eq!(crate::queue_of(&r1.id), "reports.daily");
    let got = s.get(&m1.id).await.unwrap().unwrap();
    assert_eq!((got.queue.as_str(), got.text.as_str()), ("mail", "m1"));
    assert!(s
        .get("nosuch.01ARZ3NDEKTSV4RRFFQ69G5FAV")
        .await
        .unwrap()
        .is_none());

    // idempotency keys are scoped to their queue
    let keyed = |q: &str| NewJob {
        idempotency_key: Some("k".into()),
        ..in_queue(q, "keyed")
    };
    let a = s.submit(keyed("mail")).await.unwrap();
    let b = s.submit(keyed("other")).await.unwrap();
    assert!(a.created && b.created && a.job.id != b.job.id);
    assert!(!s.submit(keyed("mail")).await.unwrap().created);
    s.cancel(&a.job.id).await.unwrap();
    s.cancel(&b.job.id).await.unwrap();

    // listing: one queue, or all merged newest first
    let page = s
        .list(ListQuery {
            queue: Some("mail".into()),
            status: Some(Status::Queued),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&page.jobs), ["m2", "m1"]);
    assert_eq!(page.total, 2);
    let all = |before: Option<String>| ListQuery {
        status: Some(Status::Queued),
        limit: 2,
        before,
        ..Default::default()
    };
    let p1 = s.list(all(None)).await.unwrap();
    assert_eq!(names(&p1.jobs), ["r1", "m2"]);
    assert_eq!(p1.total, 4);
    let p2 = s.list(all(p1.next.clone())).await.unwrap();
    assert_eq!(names(&p2.jobs), ["d1", "m1"]);
    assert!(p2.next.is_none());

    // a worker of "mail" gets only mail jobs, FIFO; one of every queue gets the rest
    let mail = s
        .take_from(
            "w",
            &["mail".into()],
            &kinds(),
            10,
            Duration::from_millis(50),
        )
        .await
        .unwrap();
    assert_eq!(names(&mail), ["m1", "m2"]);
    assert!(mail.iter().all(|j| j.queue == "mail"));
    let rest = s
        .take("w2", &kinds(), 10, Duration::from_millis(50))
        .await
        .unwrap();
    let mut rest = names(&rest);
    rest.sort();
    assert_eq!(rest, ["d1", "r1"]);

    // reports on jobs of several queues in one batch; heartbeats renew them
    let info = WorkerInfo {
        id: "w".into(),
        concurrency: 2,
        in_flight: 2,
        kinds: kinds(),
        last_seen: 0,
    };
    let held: Vec<LeaseRef> = mail.iter().map(LeaseRef::of).collect();
    assert!(s.heartbeat(&info, &held).await.unwrap().is_empty());
    let r = s
        .complete(&[done(&mail[0], "w", "M1"), done(&mail[1], "w", "M2")])
        .await
        .unwrap();
    assert_eq!(r, [CompletionResult::Applied, CompletionResult::Applied]);
    assert_eq!(
        s.get(&m2.id).await.unwrap().unwrap().result.as_deref(),
        Some("M2")
    );

    let qs = s.queues().await.unwrap();
    let q = |n: &str| qs.iter().find(|q| q.name == n).cloned().unwrap_or_default();
    assert_eq!(q("mail").submitted_total, 3);
    assert_eq!((q("mail").done_total, q("mail").cancelled_total), (2, 1));
    assert_eq!(q("default").processing, 1);
    assert_eq!(q("reports.daily").processing, 1);
    assert_eq!(q("other").cancelled_total, 1);
    let st = s.stats().await.unwrap();
    assert_eq!(
        (st.processing, st.done_total, st.submitted_total),
        (2, 2, 6)
    );
    assert!(st.workers.iter().any(|w| w.id == "w"));
}

/// Transitions of jobs in any queue reach subscribers, including a queue created after the
/// subscription.
pub async fn named_queue_events(s: &dyn JobStore) {
    let mut rx = s.subscribe();
    // the Redis listener subscribes asynchronously: give it a moment
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = s.submit(in_queue("fresh", "e")).await.unwrap().job.id;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("event of the new queue")
            .unwrap();
        if matches!(&ev, Feed::Event(e) if e.job_id == id) {
            break;
        }
    }
}

/// Priorities: with one slot, jobs run highest priority first, FIFO within a priority; a job
/// put back (released) runs first within its priority; kinds share one order; priorities
/// belong to their queue.
pub async fn priorities(s: &dyn JobStore) {
    let at = |p: i32, text: &str| NewJob {
        priority: p,
        ..new_job(text)
    };
    for (p, t) in [(0, "a"), (5, "b"), (-3, "c"), (5, "d"), (10, "e"), (0, "f")] {
        s.submit(at(p, t)).await.unwrap();
    }
    s.submit(NewJob {
        kind: "other".into(),
        ..at(7, "k")
    })
    .await
    .unwrap();
    let got = s
        .get(
            &s.list(ListQuery {
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .jobs[0]
                .id,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.priority, 7);
    let both = vec!["uppercase".to_string(), "other".to_string()];
    let mut order = Vec::new();
    for _ in 0..7 {
        let j = s
            .take("w", &both, 1, Duration::ZERO)
            .await
            .unwrap()
            .remove(0);
        if j.text == "b" {
            // given back: first again among priority 5, before "d"
            s.release("w", &[LeaseRef::of(&j)]).await.unwrap();
            let again = s.take("w", &both, 1, Duration::ZERO).await.unwrap();
            assert_eq!(names(&again), ["b"]);
            order.push(again[0].text.clone());
            continue;
        }
        order.push(j.text.clone());
    }
    assert_eq!(order, ["e", "k", "b", "d", "a", "f", "c"]);
    assert!(s
        .take("w", &both, 1, Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
}

/// Pause and resume: a paused queue accepts submits and leases nothing, while other queues
/// keep running; a job in flight finishes; a delayed job still comes due (queued, not run);
/// resume releases everything; an unknown queue is `QueueNotFound`.
pub async fn pause_and_resume(s: &dyn JobStore) {
    assert!(matches!(
        s.set_paused("never-used", true).await,
        Err(crate::StoreError::QueueNotFound(_))
    ));
    let running = s.submit(in_queue("p", "running")).await.unwrap().job;
    let held = s
        .take("w", &kinds(), 1, Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(held.id, running.id);
    let info = s.set_paused("p", true).await.unwrap();
    assert!(info.paused);
    assert!(s
        .queues()
        .await
        .unwrap()
        .iter()
        .any(|q| q.name == "p" && q.paused));
    let waiting = s.submit(in_queue("p", "waiting")).await.unwrap().job;
    assert_eq!(waiting.status, Status::Queued);
    s.submit(NewJob {
        run_at: Some(now_ms() + 100),
        ..in_queue("p", "delayed")
    })
    .await
    .unwrap();
    let other = s.submit(new_job("other")).await.unwrap().job;
    let got = s
        .take("w", &kinds(), 10, Duration::from_millis(400))
        .await
        .unwrap();
    assert_eq!(names(&got), ["other"], "only the running queue serves");
    assert_eq!(got[0].id, other.id);
    assert!(s
        .take_from("w", &["p".into()], &kinds(), 10, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    // the job in flight finishes; the delayed one came due but waits queued
    assert_eq!(
        s.complete(&[done(&held, "w", "R")]).await.unwrap(),
        [CompletionResult::Applied]
    );
    let q = s.set_paused("p", true).await.unwrap();
    assert_eq!((q.queued, q.scheduled, q.processing), (2, 0, 0));
    // resume: a waiting worker is served at once, FIFO
    let resumed = s.set_paused("p", false).await.unwrap();
    assert!(!resumed.paused);
    let got = s
        .take_from("w", &["p".into()], &kinds(), 10, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(names(&got), ["waiting", "delayed"]);
}

/// A concurrency limit of 2 holds across several takers asking for 8 each (sampled after
/// every take), and a finished job frees its slot; unknown queues are `QueueNotFound`.
pub async fn concurrency_limit(s: std::sync::Arc<dyn JobStore>) {
    use crate::QueueLimits;
    assert!(matches!(
        s.set_limits("never-used", QueueLimits::default()).await,
        Err(crate::StoreError::QueueNotFound(_))
    ));
    for i in 0..12 {
        s.submit(in_queue("lim", &format!("j{i}"))).await.unwrap();
    }
    let limits = QueueLimits {
        concurrency: 2,
        ..Default::default()
    };
    assert_eq!(s.set_limits("lim", limits).await.unwrap().limits, limits);
    let mut done_count = 0;
    while done_count < 12 {
        // three workers × 8 slots take at once
        let takes = (0..3).map(|w| {
            let s = s.clone();
            async move {
                s.take(&format!("w{w}"), &kinds(), 8, Duration::from_millis(20))
                    .await
                    .unwrap()
            }
        });
        let got: Vec<Job> = futures::future::join_all(takes)
            .await
            .into_iter()
            .flatten()
            .collect();
        let busy = s
            .queues()
            .await
            .unwrap()
            .into_iter()
            .find(|q| q.name == "lim")
            .unwrap()
            .processing;
        assert!(busy <= 2, "{busy} processing with a limit of 2");
        assert!(got.len() <= 2, "{} leased at once", got.len());
        let c: Vec<Completion> = got
            .iter()
            .map(|j| done(j, j.worker_id.as_deref().unwrap_or(""), "x"))
            .collect();
        done_count += c.len();
        s.complete(&c).await.unwrap();
    }
    let q = s.set_limits("lim", QueueLimits::default()).await.unwrap();
    assert_eq!((q.limits, q.done_total), (QueueLimits::default(), 12));
}

/// A rate limit of 5 starts per second: at most 5 start in the first window, and the 20th
/// start comes at least 3 s after the first (windows at 0, 1, 2 and 3 s; any 1 s window holds
/// at most 5 starts — a sliding log, not fixed buckets, so no burst of 10 across a boundary).
pub async fn rate_limit(s: &dyn JobStore) {
    use crate::QueueLimits;
    for i in 0..20 {
        s.submit(in_queue("rated", &format!("j{i}"))).await.unwrap();
    }
    s.set_limits(
        "rated",
        QueueLimits {
            rate: 5,
            rate_period_ms: 1000,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let start = std::time::Instant::now();
    let mut started = 0;
    let mut first_window = 0;
    while started < 20 {
        let got = s
            .take("w", &kinds(), 20, Duration::from_secs(2))
            .await
            .unwrap();
        if start.elapsed() < Duration::from_millis(900) {
            first_window += got.len();
        }
        started += got.len();
        let c: Vec<Completion> = got.iter().map(|j| done(j, "w", "x")).collect();
        s.complete(&c).await.unwrap();
    }
    assert!(
        first_window <= 5,
        "{first_window} started in the first window"
    );
    // 20 starts at 5 per second: windows 0, 1, 2, 3 s; the last starts no earlier than 3 s
    assert!(
        start.elapsed() >= Duration::from_millis(2900),
        "20 jobs at 5/s took {:?}",
        start.elapsed()
    );
}
