//! The behaviour every [`ScheduleStore`] must have — with the [`Scheduler`] on top of it —
//! as async checks that `tests/contract.rs` runs on both stores (a fresh pair per check).
//! Each panics with a message saying what broke.

use std::sync::Arc;

use pfc_proto::jobs::v1::SubmitJobRequest;
use pfc_queue::{JobStore, ListQuery, NewJob};

use crate::scheduler::BuildJob;
use crate::{
    idempotency_key, CatchUp, Schedule, ScheduleError, ScheduleStore, Scheduler, Source, Spec,
};

/// A schedule every `every_ms` submitting an `uppercase` job with `text`.
pub fn sample(name: &str, every_ms: i64, now: i64) -> Schedule {
    Schedule {
        name: name.to_owned(),
        spec: Spec::every(every_ms, now).expect("valid interval"),
        job: SubmitJobRequest {
            kind: "uppercase".into(),
            text: format!("tick of {name}"),
            ..Default::default()
        },
        catch_up: CatchUp::FireOnce,
        paused: false,
        source: Source::Api,
        created_ms: now,
    }
}

/// The simplest template → job mapping (the jobs core uses its submit validation instead).
pub fn build() -> BuildJob {
    Arc::new(|s: &Schedule| {
        Ok(NewJob {
            kind: s.job.kind.clone(),
            text: s.job.text.clone(),
            max_attempts: 3,
            ..Default::default()
        })
    })
}

async fn jobs_of(jobs: &dyn JobStore, name: &str) -> Vec<pfc_queue::Job> {
    let page = jobs
        .list(ListQuery {
            limit: 1000,
            ..ListQuery::default()
        })
        .await
        .expect("list jobs");
    page.jobs
        .into_iter()
        .filter(|j| j.text == format!("tick of {name}"))
        .collect()
}

/// Create, get, list (by name), duplicate names refused, delete.
pub async fn crud(store: Arc<dyn ScheduleStore>) {
    let now = store.now().await.unwrap();
    let b = sample("b-report", 60_000, now);
    store.create(&b, Some(now + 60_000)).await.unwrap();
    store
        .create(&sample("a-clean", 5_000, now), None)
        .await
        .unwrap();
    assert!(matches!(
        store.create(&b, None).await,
        Err(ScheduleError::AlreadyExists(n)) if n == "b-report"
    ));
    let got = store.get("b-report").await.unwrap().expect("stored");
    assert_eq!(got.schedule, b, "the definition round-trips");
    assert_eq!(got.next_ms, Some(now + 60_000));
    assert_eq!(got.last, None);
    let names: Vec<_> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.schedule.name)
        .collect();
    assert_eq!(names, ["a-clean", "b-report"]);
    assert!(store.get("nope").await.unwrap().is_none());
    assert!(store.delete("b-report").await.unwrap());
    assert!(!store.delete("b-report").await.unwrap());
    assert!(store.get("b-report").await.unwrap().is_none());
}

/// `advance` is a compare-and-set on `next`: only the first of two schedulers holding the
/// same tick moves it; `replace` is one on the definition.
pub async fn compare_and_set(store: Arc<dyn ScheduleStore>) {
    let now = store.now().await.unwrap();
    let s = sample("cas", 1_000, now);
    store.create(&s, Some(now + 1_000)).await.unwrap();
    assert!(!store
        .advance("cas", now, Some(now + 5), None)
        .await
        .unwrap());
    assert!(store
        .advance("cas", now + 1_000, Some(now + 2_000), None)
        .await
        .unwrap());
    assert!(
        !store
            .advance("cas", now + 1_000, Some(now + 3_000), None)
            .await
            .unwrap(),
        "a second scheduler holding the same tick cannot advance"
    );
    assert_eq!(
        store.get("cas").await.unwrap().unwrap().next_ms,
        Some(now + 2_000)
    );
    assert!(!store.advance("missing", 1, None, None).await.unwrap());
    // due: next ≤ now
    assert_eq!(store.due(now + 1_999).await.unwrap(), vec![]);
    assert_eq!(
        store.due(now + 2_000).await.unwrap(),
        vec![("cas".to_owned(), now + 2_000)]
    );
    // replace: pause clears next; a writer holding the old definition loses
    let mut paused = s.clone();
    paused.paused = true;
    assert!(store.replace(&s, &paused, Some(None)).await.unwrap());
    assert!(!store.replace(&s, &paused, Some(None)).await.unwrap());
    let got = store.get("cas").await.unwrap().unwrap();
    assert!(got.schedule.paused);
    assert_eq!(got.next_ms, None);
    assert!(
        !store
            .advance("cas", now + 2_000, Some(now + 3_000), None)
            .await
            .unwrap(),
        "a round in flight cannot advance a paused schedule"
    );
    assert!(matches!(
        store
            .replace(&sample("ghost", 1_000, now), &paused, None)
            .await,
        Err(ScheduleError::NotFound(_))
    ));
}

/// Two schedulers on the same stores, rounds interleaved: each due tick becomes one job, and
/// a scheduler that crashed after submitting (next not advanced) leads to no second job.
pub async fn one_job_per_tick(store: Arc<dyn ScheduleStore>, jobs: Arc<dyn JobStore>) {
    let now = store.now().await.unwrap();
    let s = sample("twice", 60_000, now - 61_000);
    let tick = now - 1_000; // on the schedule's grid, 1 s late (a failover, not a miss)
    store.create(&s, Some(tick)).await.unwrap();
    // a scheduler submitted this tick and died before advancing
    let mut job = (build())(&s).unwrap();
    job.idempotency_key = Some(idempotency_key("twice", tick));
    let first = jobs.submit(job).await.unwrap().job.id;
    let a = Scheduler::new(store.clone(), jobs.clone(), build());
    let b = Scheduler::new(store.clone(), jobs.clone(), build());
    let (ra, rb) = tokio::join!(a.round(), b.round());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ra.fired + rb.fired <= 1, "{ra:?} {rb:?}");
    for _ in 0..3 {
        a.round().await.unwrap();
        b.round().await.unwrap();
    }
    let made = jobs_of(&*jobs, "twice").await;
    assert_eq!(made.len(), 1, "one job for the tick: {made:?}");
    assert_eq!(made[0].id, first);
    let st = store.get("twice").await.unwrap().unwrap();
    let next = st.next_ms.unwrap();
    assert!(next > now, "next moved past now: {next} vs {now}");
    let last = st.last.expect("last fire recorded");
    assert_eq!(last.tick_ms, tick);
    assert_eq!(last.job_id.as_deref(), Some(first.as_str()));
}

/// After an outage that missed many ticks: `fire_once` submits one job (for the oldest
/// missed tick), `skip` none; both continue with the first tick after now.
pub async fn catch_up(store: Arc<dyn ScheduleStore>, jobs: Arc<dyn JobStore>) {
    let now = store.now().await.unwrap();
    let anchor = now - 600_000;
    let once = sample("once", 10_000, anchor);
    let mut skip = sample("skip", 10_000, anchor);
    skip.catch_up = CatchUp::Skip;
    let missed = anchor + 10_000; // 59 ticks ago
    store.create(&once, Some(missed)).await.unwrap();
    store.create(&skip, Some(missed)).await.unwrap();
    let sch = Scheduler::new(store.clone(), jobs.clone(), build());
    for _ in 0..3 {
        sch.round().await.unwrap();
    }
    let fired = jobs_of(&*jobs, "once").await;
    assert_eq!(fired.len(), 1, "fire_once: one job for the outage");
    assert!(jobs_of(&*jobs, "skip").await.is_empty(), "skip: none");
    for name in ["once", "skip"] {
        let st = store.get(name).await.unwrap().unwrap();
        assert!(st.next_ms.unwrap() > now, "{name} continues after now");
    }
    assert_eq!(
        store
            .get("once")
            .await
            .unwrap()
            .unwrap()
            .last
            .unwrap()
            .tick_ms,
        missed
    );
}

/// A paused schedule fires nothing, even with a due tick left from before the pause.
pub async fn paused_fires_nothing(store: Arc<dyn ScheduleStore>, jobs: Arc<dyn JobStore>) {
    let now = store.now().await.unwrap();
    let mut s = sample("sleepy", 1_000, now - 10_000);
    s.paused = true;
    store.create(&s, Some(now - 1)).await.unwrap();
    let sch = Scheduler::new(store.clone(), jobs.clone(), build());
    for _ in 0..3 {
        sch.round().await.unwrap();
    }
    assert!(jobs_of(&*jobs, "sleepy").await.is_empty());
}

/// A template that no longer builds records the error as the last fire and moves on (no
/// retry storm, no stuck schedule).
pub async fn bad_template_is_recorded(store: Arc<dyn ScheduleStore>, jobs: Arc<dyn JobStore>) {
    let now = store.now().await.unwrap();
    let s = sample("broken", 1_000, now - 10_000);
    let tick = now - 1_000;
    store.create(&s, Some(tick)).await.unwrap();
    let refuse: BuildJob = Arc::new(|_| Err("text: too long".to_owned()));
    Scheduler::new(store.clone(), jobs.clone(), refuse)
        .round()
        .await
        .unwrap();
    let st = store.get("broken").await.unwrap().unwrap();
    let last = st.last.unwrap();
    assert_eq!(last.tick_ms, tick);
    assert_eq!(last.error.as_deref(), Some("text: too long"));
    assert!(st.next_ms.unwrap() > tick, "the schedule moved on");
}

/// Ticks delayed by a failover (seen less than [`crate::SKIP_GRACE_MS`] late) each fire once,
/// in order: a leader change costs no tick.
pub async fn delayed_ticks_each_fire(store: Arc<dyn ScheduleStore>, jobs: Arc<dyn JobStore>) {
    let now = store.now().await.unwrap();
    let s = sample("delayed", 1_000, now - 10_000);
    let first = now - 3_000;
    store.create(&s, Some(first)).await.unwrap();
    let sch = Scheduler::new(store.clone(), jobs.clone(), build());
    for _ in 0..6 {
        sch.round().await.unwrap();
    }
    let mut keys: Vec<String> = jobs_of(&*jobs, "delayed")
        .await
        .into_iter()
        .filter_map(|j| j.idempotency_key)
        .collect();
    keys.sort();
    let want: Vec<String> = (0..keys.len() as i64)
        .map(|k| idempotency_key("delayed", first + k * 1_000))
        .collect();
    assert!(keys.len() >= 3, "the three delayed ticks fired: {keys:?}");
    assert_eq!(keys, want, "consecutive ticks, none twice, none skipped");
}
