//! Regression tests for the core's defects under real time and real faults (issue 10): each
//! one failed on the earlier store and passes now. Real redis-server processes, paused with
//! SIGSTOP, flushed, made read-only or out of memory — nothing mocked.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pfc_queue::*;
use pfc_testkit::RedisServer;

fn config(lease: Duration, retention: Duration) -> StoreConfig {
    StoreConfig {
        retention,
        lease,
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_millis(200),
        worker_ttl: Duration::from_secs(5),
    }
}

fn kinds() -> Vec<String> {
    vec!["uppercase".into()]
}

fn job(text: &str, max_attempts: u32) -> NewJob {
    NewJob {
        kind: "uppercase".into(),
        text: text.into(),
        max_attempts,
        ..Default::default()
    }
}

fn done(j: &Job, worker: &str) -> Completion {
    Completion::of(j, worker, Outcome::Done(j.text.to_uppercase()))
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn redis_info(conn: &mut redis::aio::MultiplexedConnection, field: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn total(s: &dyn JobStore, status: Option<Status>) -> u64 {
    s.list(ListQuery {
        status,
        limit: 1,
        before: None,
        ..Default::default()
    })
    .await
    .unwrap()
    .total
}

/// Runs `secs` of steady load (≈1,000 jobs/s: submit, take, complete) with housekeeping every
/// 500 ms, as a jobs server does.
async fn steady_load(s: &Arc<dyn JobStore>, secs: u64) -> u64 {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut n = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last_maintain = Instant::now();
    while Instant::now() < end {
        tick.tick().await;
        let subs =
            futures::future::join_all((0..100).map(|i| s.submit(job(&format!("j{i}"), 3)))).await;
        assert!(subs.iter().all(|r| r.is_ok()));
        let mut left = 100;
        while left > 0 {
            let taken = s
                .take("w", &kinds(), left, Duration::from_millis(200))
                .await
                .unwrap();
            left -= taken.len();
            let c: Vec<Completion> = taken.iter().map(|j| done(j, "w")).collect();
            s.complete(&c).await.unwrap();
        }
        n += 100;
        if last_maintain.elapsed() >= Duration::from_millis(500) {
            s.maintain().await.unwrap();
            last_maintain = Instant::now();
        }
    }
    n
}

/// Cleanup keeps up with a steady 1,000 jobs/s and is not stalled by long-delayed jobs at
/// the old end of the indexes: after the retention, the indexes, the totals `ListJobs`
/// reports and Redis's memory are back at their baseline (the earlier sweep looked at the
/// 200 oldest ids per call and stalled behind live ones).
async fn cleanup_keeps_up(
    s: Arc<dyn JobStore>,
    mut redis: Option<redis::aio::MultiplexedConnection>,
) {
    // 200 jobs due in 30 days sit at the old end of every index, as in the issue
    let later = now_ms() + 30 * 24 * 3600 * 1000;
    for i in 0..200 {
        s.submit(NewJob {
            run_at: Some(later),
            ..job(&format!("later {i}"), 3)
        })
        .await
        .unwrap();
    }
    steady_load(&s, 2).await; // warm-up: Redis's allocator reaches its working size
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.maintain().await.unwrap();
    let base_mem = match redis.as_mut() {
        Some(c) => redis_info(c, "used_memory").await,
        None => 0,
    };
    let secs = std::env::var("PFC_TEST_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let n = steady_load(&s, secs).await;
    assert!(n >= 500 * secs, "load ran ({n} jobs in {secs} s)");
    // retention (2 s) plus two housekeeping ticks
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.maintain().await.unwrap();
    assert_eq!(
        total(&*s, None).await,
        200,
        "only the delayed jobs are left in `all`"
    );
    assert_eq!(total(&*s, Some(Status::Done)).await, 0, "no done ids left");
    assert_eq!(total(&*s, Some(Status::Scheduled)).await, 200);
    if let Some(c) = redis.as_mut() {
        let mem = redis_info(c, "used_memory").await;
        let jobs: u64 = redis::cmd("HLEN")
            .arg("pfc:{default}:jobs")
            .query_async(c)
            .await
            .unwrap();
        let expiring: u64 = redis::cmd("ZCARD")
            .arg("pfc:{default}:expiring")
            .query_async(c)
            .await
            .unwrap();
        assert_eq!(
            (jobs, expiring),
            (200, 0),
            "records of finished jobs are gone"
        );
        assert!(
            mem < base_mem + 512 * 1024,
            "used_memory back at baseline after {n} jobs: {mem} vs {base_mem}"
        );
    }
}

/// Cleanup keeps up (Redis store, real redis-server).
#[tokio::test]
async fn redis_cleanup_keeps_up_with_steady_load() {
    let server = RedisServer::start();
    let s: Arc<dyn JobStore> = RedisStore::new(
        &server.url(),
        config(Duration::from_secs(3), Duration::from_secs(2)),
    )
    .unwrap();
    cleanup_keeps_up(s, Some(raw(&server).await)).await;
}

/// Cleanup keeps up (memory store).
#[tokio::test]
async fn memory_cleanup_keeps_up_with_steady_load() {
    let s: Arc<dyn JobStore> = Arc::new(MemoryStore::new(config(
        Duration::from_secs(3),
        Duration::from_secs(2),
    )));
    cleanup_keeps_up(s, None).await;
}

/// Keeps `leases` alive like a worker does (every lease/3, errors ignored) until aborted.
fn heartbeats(
    s: Arc<dyn JobStore>,
    worker: &str,
    leases: Vec<LeaseRef>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let info = WorkerInfo {
        id: worker.into(),
        concurrency: 16,
        in_flight: leases.len() as u32,
        last_seen: 0,
        kinds: kinds(),
    };
    tokio::spawn(async move {
        loop {
            let _ = s.heartbeat(&info, &leases).await;
            tokio::time::sleep(every).await;
        }
    })
}

/// A Redis outage longer than the lease fails no live job: jobs on their last attempt,
/// leased by a worker that keeps heartbeating, are all DONE after Redis was paused (SIGSTOP)
/// for 4 leases and resumed, and the worker's results are accepted (the lease clock moved
/// the deadlines by the pause; before, every lease expired at once on resume).
#[tokio::test]
async fn outage_longer_than_the_lease_fails_no_live_job() {
    let mut server = RedisServer::start();
    let lease = Duration::from_secs(1);
    let s: Arc<dyn JobStore> =
        RedisStore::new(&server.url(), config(lease, Duration::from_secs(60))).unwrap();
    for i in 0..20 {
        s.submit(job(&format!("slow {i}"), 1)).await.unwrap();
    }
    let taken = s
        .take("w", &kinds(), 20, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(taken.len(), 20);
    let hb = heartbeats(
        s.clone(),
        "w",
        taken.iter().map(LeaseRef::of).collect(),
        lease / 3,
    );
    let house = {
        let s = s.clone();
        tokio::spawn(async move {
            loop {
                let _ = s.maintain().await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.pause();
    tokio::time::sleep(lease * 4).await;
    server.resume();
    // housekeeping and heartbeats run again for a while before the worker reports
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let c: Vec<Completion> = taken.iter().map(|j| done(j, "w")).collect();
    let r = s.complete(&c).await.unwrap();
    hb.abort();
    house.abort();
    assert!(
        r.iter().all(|r| *r == CompletionResult::Applied),
        "every report accepted: {r:?}"
    );
    for j in &taken {
        let got = s.get(&j.id).await.unwrap().unwrap();
        assert_eq!(got.status, Status::Done, "{}: {:?}", j.id, got.error);
    }
}

/// A take whose reply is lost (Redis paused past the response timeout, then resumed) still
/// hands the worker the batch Redis leased: nothing is stranded in PROCESSING with an attempt
/// used up (before, the worker got an error and the jobs waited for their leases to expire —
/// `max_attempts = 1` jobs failed without ever running).
#[tokio::test]
async fn lost_take_reply_strands_nothing() {
    let mut server = RedisServer::start();
    let s: Arc<dyn JobStore> = RedisStore::new(
        &server.url(),
        config(Duration::from_secs(3), Duration::from_secs(60)),
    )
    .unwrap();
    for i in 0..5 {
        s.submit(job(&format!("t{i}"), 1)).await.unwrap();
    }
    s.ping().await.unwrap();
    server.pause();
    let taker = {
        let s = s.clone();
        tokio::spawn(async move { s.take("w", &kinds(), 5, Duration::ZERO).await })
    };
    // past the 2 s response timeout: the first try's reply is lost
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.resume();
    let taken = taker
        .await
        .unwrap()
        .expect("take succeeds once Redis is back");
    assert_eq!(taken.len(), 5, "the batch Redis leased reaches the worker");
    let st = s.stats().await.unwrap();
    assert_eq!((st.processing, st.queued), (5, 0));
    let c: Vec<Completion> = taken.iter().map(|j| done(j, "w")).collect();
    assert!(s
        .complete(&c)
        .await
        .unwrap()
        .iter()
        .all(|r| *r == CompletionResult::Applied));
}

/// The fence is the owner and the delivery, not the attempt number (which a release gives
/// back): after worker 1 released a job and worker 2 took it (attempt 1 again), worker 1's
/// late report and heartbeat are refused and worker 2's result stands.
async fn released_delivery_cannot_report(s: Arc<dyn JobStore>) {
    let id = s.submit(job("x", 3)).await.unwrap().job.id;
    let first = s
        .take("w1", &kinds(), 1, Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    s.release("w1", &[LeaseRef::of(&first)]).await.unwrap();
    let second = s
        .take("w2", &kinds(), 1, Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.id, id);
    assert_eq!(second.attempts, first.attempts, "the attempt was refunded");
    assert_ne!(
        second.delivery, first.delivery,
        "deliveries are never reused"
    );
    let info = WorkerInfo {
        id: "w1".into(),
        concurrency: 1,
        in_flight: 1,
        last_seen: 0,
        kinds: kinds(),
    };
    assert_eq!(
        s.heartbeat(&info, &[LeaseRef::of(&first)]).await.unwrap(),
        [LeaseRef::of(&first)],
        "the old delivery's lease is lost"
    );
    let late = Completion::of(&first, "w1", Outcome::Done("LATE".into()));
    assert_eq!(
        s.complete(&[late]).await.unwrap(),
        [CompletionResult::Stale]
    );
    let mine = Completion::of(&second, "w2", Outcome::Done("X".into()));
    assert_eq!(
        s.complete(&[mine]).await.unwrap(),
        [CompletionResult::Applied]
    );
    let j = s.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (j.result.as_deref(), j.worker_id.as_deref()),
        (Some("X"), Some("w2"))
    );
}

/// Owner + delivery fencing (Redis store).
#[tokio::test]
async fn redis_released_delivery_cannot_report() {
    let server = RedisServer::start();
    let s = RedisStore::new(
        &server.url(),
        config(Duration::from_secs(3), Duration::from_secs(60)),
    );
    released_delivery_cannot_report(s.unwrap()).await;
}

/// Owner + delivery fencing (memory store).
#[tokio::test]
async fn memory_released_delivery_cannot_report() {
    released_delivery_cannot_report(Arc::new(MemoryStore::new(config(
        Duration::from_secs(3),
        Duration::from_secs(60),
    ))))
    .await;
}

/// Submits in flight while Redis pauses past the response timeout all succeed once it is
/// back, each creating exactly one job (before, the whole pipeline failed although Redis ran
/// it later, and the callers' retries made duplicates); after `SCRIPT FLUSH` too (the
/// NOSCRIPT fallback re-ran the whole pipeline).
#[tokio::test]
async fn submits_across_a_pause_and_a_script_flush_create_each_job_once() {
    let mut server = RedisServer::start();
    let s: Arc<dyn JobStore> = RedisStore::new(
        &server.url(),
        config(Duration::from_secs(3), Duration::from_secs(60)),
    )
    .unwrap();
    s.submit(job("warm", 1)).await.unwrap();
    server.pause();
    let subs = {
        let s = s.clone();
        tokio::spawn(async move {
            futures::future::join_all((0..50).map(|i| {
                let s = s.clone();
                async move { s.submit(job(&format!("p{i}"), 1)).await }
            }))
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.resume();
    let subs = subs.await.unwrap();
    let ids: HashSet<String> = subs
        .into_iter()
        .map(|r| r.expect("submit answered after the pause").job.id)
        .collect();
    assert_eq!(ids.len(), 50);
    let mut conn = raw(&server).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let more =
        futures::future::join_all((0..100).map(|i| s.submit(job(&format!("f{i}"), 1)))).await;
    assert!(more.iter().all(|r| r.is_ok()));
    assert_eq!(
        total(&*s, None).await,
        151,
        "every submit made exactly one job"
    );
    let st = s.stats().await.unwrap();
    assert_eq!((st.submitted_total, st.queued), (151, 151));
}

/// An idempotency key holds for as long as its job is unfinished, however long that is, and
/// then for the retention (before, its TTL ran from submit: a job running longer than the
/// retention could be submitted again).
async fn idempotency_key_outlives_a_long_job(s: Arc<dyn JobStore>, retention: Duration) {
    let keyed = NewJob {
        idempotency_key: Some("order-1".into()),
        ..job("x", 3)
    };
    let first = s.submit(keyed.clone()).await.unwrap();
    let j = s
        .take("w", &kinds(), 1, Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    let hb = heartbeats(
        s.clone(),
        "w",
        vec![LeaseRef::of(&j)],
        Duration::from_millis(200),
    );
    tokio::time::sleep(retention * 3).await;
    let again = s.submit(keyed.clone()).await.unwrap();
    assert!(!again.created, "the key still names the running job");
    assert_eq!(again.job.id, first.job.id);
    s.complete(&[done(&j, "w")]).await.unwrap();
    hb.abort();
    let still = s.submit(keyed.clone()).await.unwrap();
    assert_eq!(
        (still.created, still.job.id.clone()),
        (false, first.job.id.clone())
    );
    tokio::time::sleep(retention + Duration::from_millis(300)).await;
    s.maintain().await.unwrap();
    let fresh = s.submit(keyed).await.unwrap();
    assert!(fresh.created, "after the retention the key is free again");
}

/// Idempotency keys outlive long jobs (Redis store).
#[tokio::test]
async fn redis_idempotency_key_outlives_a_long_job() {
    let server = RedisServer::start();
    let retention = Duration::from_millis(700);
    let s = RedisStore::new(&server.url(), config(Duration::from_secs(1), retention)).unwrap();
    idempotency_key_outlives_a_long_job(s, retention).await;
}

/// Idempotency keys outlive long jobs (memory store).
#[tokio::test]
async fn memory_idempotency_key_outlives_a_long_job() {
    let retention = Duration::from_millis(700);
    let s = Arc::new(MemoryStore::new(config(Duration::from_secs(1), retention)));
    idempotency_key_outlives_a_long_job(s, retention).await;
}

/// The Redis event subscription recovers from a silent connection (Redis paused longer than
/// the silence limit) and from being killed (`CLIENT KILL TYPE pubsub`), and tells watchers
/// with a `Gap` each time; events flow again after (before, a dead subscription was never
/// noticed and a reconnect said nothing).
#[tokio::test]
async fn event_subscription_reports_gaps_and_recovers() {
    let mut server = RedisServer::start();
    let s = RedisStore::new(
        &server.url(),
        config(Duration::from_secs(3), Duration::from_secs(60)),
    )
    .unwrap();
    let mut rx = s.subscribe();
    async fn next_gap(rx: &mut tokio::sync::broadcast::Receiver<Feed>, within: Duration) {
        let until = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Ok(Feed::Gap)) => return,
                Ok(_) => continue,
                Err(_) => panic!("no gap signalled within {within:?}"),
            }
        }
    }
    async fn event_for(s: &RedisStore, rx: &mut tokio::sync::broadcast::Receiver<Feed>) {
        let id = s.submit(job("e", 1)).await.unwrap().job.id;
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Ok(Feed::Event(e))) if e.job_id == id => return,
                Ok(_) => continue,
                Err(_) => panic!("no event for {id}"),
            }
        }
    }
    next_gap(&mut rx, Duration::from_secs(5)).await; // the first subscribe
    event_for(&s, &mut rx).await;
    server.pause();
    tokio::time::sleep(Duration::from_secs(7)).await;
    server.resume();
    next_gap(&mut rx, Duration::from_secs(10)).await;
    event_for(&s, &mut rx).await;
    let mut conn = raw(&server).await;
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    next_gap(&mut rx, Duration::from_secs(5)).await;
    event_for(&s, &mut rx).await;
}

/// Health follows real writes, not PING: a Redis out of memory (`OOM`) or turned into a
/// read-only replica (`READONLY`) answers PING but refuses writes, and `ping()` fails then.
#[tokio::test]
async fn health_follows_writes() {
    let server = RedisServer::start();
    let other = RedisServer::start();
    let s = RedisStore::new(
        &server.url(),
        config(Duration::from_secs(3), Duration::from_secs(60)),
    )
    .unwrap();
    s.ping().await.unwrap();
    let mut conn = raw(&server).await;
    let set = |k: &'static str, v: String| {
        let mut c = conn.clone();
        async move {
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg(k)
                .arg(v)
                .query_async(&mut c)
                .await
                .unwrap();
        }
    };
    set("maxmemory-policy", "noeviction".into()).await;
    set("maxmemory", "1".into()).await;
    assert!(s.ping().await.is_err(), "OOM: health must fail");
    assert!(s.submit(job("x", 1)).await.is_err());
    set("maxmemory", "0".into()).await;
    s.ping().await.unwrap();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(other.port())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        s.ping().await.is_err(),
        "READONLY replica: health must fail"
    );
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut conn)
        .await
        .unwrap();
    s.ping().await.unwrap();
}

/// Every key a script touches is declared in `KEYS` (Redis Cluster and Dragonfly refuse
/// undeclared keys mid-script, after `LPOP`, which stranded a job): no script names a key
/// other than through `K.<name>`, `INDEX[...]`, `READY[...]`/`WAKE[...]` (the declared lists
/// of the kinds a call names) or `KEYS[n]`.
#[test]
fn scripts_declare_every_key() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/lua");
    let mut calls = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let src = std::fs::read_to_string(&path).unwrap();
        for (n, line) in src.lines().enumerate() {
            let mut rest = line;
            while let Some(i) = rest.find("redis.call('") {
                rest = &rest[i + "redis.call('".len()..];
                let cmd = &rest[..rest.find('\'').unwrap()];
                let after = rest[cmd.len() + 1..].trim_start();
                calls += 1;
                if matches!(cmd, "TIME") {
                    continue;
                }
                let arg = after.trim_start_matches(',').trim_start();
                let ok = if cmd == "PUBLISH" {
                    arg.starts_with("channel")
                } else {
                    // READY/WAKE map declared kinds to their declared lists (KEYS[22...]);
                    // `list` and `lists[...]` (take's heads) are locals taken from READY
                    [
                        "K.", "INDEX[", "KEYS[", "READY[", "WAKE[", "list,", "list)", "lists[",
                    ]
                    .iter()
                    .any(|p| arg.starts_with(p))
                };
                assert!(
                    ok,
                    "{}:{}: {cmd} on an undeclared key: {line}",
                    path.display(),
                    n + 1
                );
            }
        }
    }
    assert!(calls > 50, "scanned the scripts ({calls} calls)");
}

/// Housekeeping runs in one jobs process at a time: of two stores on one Redis, only the
/// elected one does it; when the leader stops, the other takes over within its term (2 s).
#[tokio::test]
async fn housekeeping_is_done_by_one_elected_process() {
    let server = RedisServer::start();
    let cfg = config(Duration::from_secs(3), Duration::from_secs(60));
    let a = RedisStore::new(&server.url(), cfg.clone()).unwrap();
    let b = RedisStore::new(&server.url(), cfg).unwrap();
    a.maintain().await.unwrap(); // a leads
    let id = a
        .submit(NewJob {
            run_at: Some(now_ms() + 100),
            ..job("due soon", 1)
        })
        .await
        .unwrap()
        .job
        .id;
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.maintain().await.unwrap();
    assert_eq!(
        a.get(&id).await.unwrap().unwrap().status,
        Status::Scheduled,
        "the follower did no housekeeping"
    );
    a.maintain().await.unwrap();
    assert_eq!(a.get(&id).await.unwrap().unwrap().status, Status::Queued);
    // the leader stops renewing: after its term the follower leads
    let id2 = a
        .submit(NewJob {
            run_at: Some(now_ms() + 100),
            ..job("due later", 1)
        })
        .await
        .unwrap()
        .job
        .id;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    b.maintain().await.unwrap();
    assert_eq!(a.get(&id2).await.unwrap().unwrap().status, Status::Queued);
}

/// After an outage every lease has at least a full lease left, not only what it had when
/// Redis stopped: workers must reconnect before they can heartbeat again. Here the worker's
/// last heartbeat was half a lease before Redis paused and its next one comes 0.8 lease after
/// the resume, while housekeeping runs throughout — its job must still be its own.
#[tokio::test]
async fn a_lease_survives_the_reconnect_after_an_outage() {
    let mut server = RedisServer::start();
    let lease = Duration::from_secs(1);
    let s: Arc<dyn JobStore> =
        RedisStore::new(&server.url(), config(lease, Duration::from_secs(60))).unwrap();
    s.submit(job("reconnecting", 1)).await.unwrap();
    let j = s
        .take("w", &kinds(), 1, Duration::from_secs(1))
        .await
        .unwrap()
        .remove(0);
    let house = {
        let s = s.clone();
        tokio::spawn(async move {
            loop {
                let _ = s.maintain().await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let info = WorkerInfo {
        id: "w".into(),
        concurrency: 1,
        in_flight: 1,
        last_seen: 0,
        kinds: kinds(),
    };
    assert!(s
        .heartbeat(&info, &[LeaseRef::of(&j)])
        .await
        .unwrap()
        .is_empty());
    tokio::time::sleep(lease / 2).await;
    server.pause();
    tokio::time::sleep(lease * 4).await;
    server.resume();
    tokio::time::sleep(lease * 8 / 10).await;
    let lost = s.heartbeat(&info, &[LeaseRef::of(&j)]).await.unwrap();
    house.abort();
    assert!(
        lost.is_empty(),
        "the lease expired during the reconnect: {lost:?}"
    );
    assert_eq!(
        s.complete(&[done(&j, "w")]).await.unwrap(),
        [CompletionResult::Applied]
    );
}
