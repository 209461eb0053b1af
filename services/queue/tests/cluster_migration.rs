//! A slot migration under load (issue 12): the slot of the `default` queue moves from its
//! master to another one while a producer submits and a worker takes and completes, the way
//! `redis-cli --cluster reshard` moves it (`IMPORTING`/`MIGRATING`, `MIGRATE` in batches, then
//! `SETSLOT … NODE`). Clients meanwhile get `ASK` and `TRYAGAIN` answers, which the cluster
//! client follows and retries; afterwards `MOVED` sends them to the new owner. Nothing
//! acknowledged may be lost, and nothing may be stranded: every acknowledged job reaches DONE.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pfc_queue::*;
use pfc_testkit::RedisCluster;

/// A key of the `default` queue: it names the queue's slot.
const QUEUE_KEY: &str = "pfc:{default}:jobs";

#[tokio::test]
async fn slot_migration_under_load_loses_and_strands_nothing() {
    let c = RedisCluster::start(3, 0);
    let s: Arc<dyn JobStore> = RedisStore::open(
        &c.urls(),
        StoreConfig {
            retention: Duration::from_secs(600),
            lease: Duration::from_secs(3),
            ..StoreConfig::default()
        },
        &RedisMode {
            cluster: true,
            wait_replicas: 0,
        },
    )
    .expect("cluster store");
    s.ping().await.expect("cluster reachable");
    let kinds = vec!["uppercase".to_string()];
    let stop = Arc::new(AtomicBool::new(false));

    // a worker: take, complete (a failed complete is retried: it is fenced, so idempotent)
    let worker = {
        let (s, stop, kinds) = (s.clone(), stop.clone(), kinds.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match s.take("w", &kinds, 32, Duration::from_millis(200)).await {
                    Ok(jobs) => {
                        let c: Vec<Completion> = jobs
                            .iter()
                            .map(|j| Completion::of(j, "w", Outcome::Done(j.text.to_uppercase())))
                            .collect();
                        while !c.is_empty() && s.complete(&c).await.is_err() {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
    };
    // a producer; only acknowledged submits count
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let producer = {
        let (s, stop, acked, errors) = (s.clone(), stop.clone(), acked.clone(), errors.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let r = s
                    .submit(NewJob {
                        kind: "uppercase".into(),
                        text: format!("job {i}"),
                        ..Default::default()
                    })
                    .await;
                match r {
                    Ok(sub) => acked.lock().unwrap().push(sub.job.id),
                    Err(e) => errors.lock().unwrap().push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(acked.lock().unwrap().len() > 20, "load is running");
    let from = c.master_of(QUEUE_KEY).expect("owner");
    let to = *c
        .masters()
        .iter()
        .find(|m| **m != from)
        .expect("another master");
    // small batches make the migration last while the load runs through it
    let t = Instant::now();
    let moved = c.migrate_slot(QUEUE_KEY, to, 3);
    eprintln!(
        "migration: {moved} keys moved from {from} to {to} in {:?}",
        t.elapsed()
    );
    assert_eq!(c.master_of(QUEUE_KEY), Some(to), "the slot moved");
    assert!(moved >= 5, "the queue's keys were moved ({moved})");
    // keeps serving on the new owner
    let n = acked.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.lock().unwrap().len() < n + 20 {
        assert!(
            Instant::now() < deadline,
            "not serving after the migration: {:?}",
            errors.lock().unwrap().last()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    producer.await.unwrap();
    worker.await.unwrap();

    // what is left runs to the end; every acknowledged job is DONE, none twice
    let drain = {
        let (s, kinds) = (s.clone(), kinds.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(jobs) = s.take("w2", &kinds, 64, Duration::from_millis(200)).await {
                    let c: Vec<Completion> = jobs
                        .iter()
                        .map(|j| Completion::of(j, "w2", Outcome::Done(j.text.to_uppercase())))
                        .collect();
                    let _ = s.complete(&c).await;
                }
            }
        })
    };
    let ids = acked.lock().unwrap().clone();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    let deadline = Instant::now() + Duration::from_secs(30);
    let missing = loop {
        let mut missing = Vec::new();
        for id in &ids {
            match s.get(id).await {
                Ok(Some(j)) if j.status == Status::Done => {}
                other => missing.push((id.clone(), other.map(|j| j.map(|j| j.status)).ok())),
            }
        }
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    drain.abort();
    let errors = errors.lock().unwrap();
    eprintln!(
        "migration: {} acknowledged jobs, {} submits refused during it (e.g. {:?})",
        ids.len(),
        errors.len(),
        errors.first()
    );
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged jobs not done after the migration: {:?}",
        missing.len(),
        ids.len(),
        &missing[..missing.len().min(5)]
    );
}
