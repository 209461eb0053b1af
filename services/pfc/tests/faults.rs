//! The fault-injection suite: the real split deployment — redis-server with AOF
//! (`appendfsync always`), two `pfc jobs`, three `pfc worker` processes — under a steady load
//! of submits over gRPC, with faults injected at random moments from a seeded schedule:
//! `kill -9` of a worker and of a jobs server (both restarted; the client fails over),
//! SIGSTOP of Redis for longer than the lease, a Redis restart (SIGKILL, data kept by the
//! AOF), a worker paused past its lease then resumed (the zombie), and a graceful worker
//! restart (SIGTERM: unfinished jobs are given back).
//!
//! It records a history — every submit with its answer, every processor run (job, attempt,
//! worker) from the workers' JSON logs, every fault — and the checker (`faults/checker.rs`,
//! pure, unit-tested) verifies it against the store's final word. See docs/reliability.md.
//!
//! Settings: `PFC_FAULTS_SEED` (default 1), `PFC_FAULTS_SECS` (default 60),
//! `PFC_FAULTS_RATE` (jobs/s, default 40), `PFC_FAULTS_KEEP=1` (keep the logs of a passing
//! run). A failing run always keeps them and prints where.

mod common;

mod faults {
    pub mod checker;
    pub mod cluster;
    pub mod load;
    pub mod logs;
    pub mod schedule;
}

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use faults::checker::{self, CheckConfig, FaultKind, FaultRecord, Final, History, Report};
use faults::cluster::{self, Cluster};
use faults::load::{self, now_ms, Client, Load};
use faults::schedule::{self, Planned};
use pfc_proto::jobs::v1 as pb;

struct Settings {
    seed: u64,
    secs: u64,
    rate: f64,
    keep: bool,
}

impl Settings {
    fn from_env() -> Self {
        fn var<T: std::str::FromStr>(k: &str, default: T) -> T {
            match std::env::var(k) {
                Ok(v) => v
                    .parse()
                    .unwrap_or_else(|_| panic!("{k}={v:?} is not a valid value")),
                Err(_) => default,
            }
        }
        Self {
            seed: var("PFC_FAULTS_SEED", 1),
            secs: var("PFC_FAULTS_SECS", 60),
            rate: var("PFC_FAULTS_RATE", 40.0),
            keep: var("PFC_FAULTS_KEEP", 0u8) == 1,
        }
    }
}

/// Under steady load and a seeded schedule of crashes, pauses and restarts, every
/// acknowledged job reaches a terminal state once, with the right outcome, from the
/// delivery the store accepted; duplicates are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_under_load() {
    let s = Settings::from_env();
    let dir = cluster::workdir(s.seed).expect("work dir");
    eprintln!(
        "fault suite: seed {} ({}s at {} jobs/s); logs in {}",
        s.seed,
        s.secs,
        s.rate,
        dir.display()
    );
    // a bound on everything: load, faults, drain (2 min) and reads
    let budget = Duration::from_secs(s.secs + 300);
    let started = Instant::now();
    let outcome = tokio::time::timeout(budget, run(&s, &dir)).await;
    let report = match outcome {
        Err(_) => panic!(
            "the fault suite did not finish within {budget:?}; logs in {}",
            dir.display()
        ),
        Ok(Err(e)) => panic!("harness error: {e:#}\nlogs in {}", dir.display()),
        Ok(Ok(r)) => r,
    };
    let (report, timeline) = report;
    let text = format!(
        "fault suite, seed {}, {} s of load at {} jobs/s, {:.0} s in all\n{timeline}{report}",
        s.seed,
        s.secs,
        s.rate,
        started.elapsed().as_secs_f64()
    );
    eprintln!("{text}");
    let _ = std::fs::write(dir.join("summary.txt"), &text);
    if !report.violations.is_empty() {
        write_violations(&dir, &report);
        panic!(
            "{} violations (by type above); every one in {}/violations.txt, logs in {}\nreproduce: PFC_FAULTS_SEED={} PFC_FAULTS_SECS={} just faults",
            report.violations.len(),
            dir.display(),
            dir.display(),
            s.seed,
            s.secs
        );
    }
    if !s.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn write_violations(dir: &Path, report: &Report) {
    let all: Vec<String> = report.violations.iter().map(|v| v.to_string()).collect();
    let _ = std::fs::write(dir.join("violations.txt"), all.join("\n") + "\n");
}

/// Starts the cluster, runs load and faults, drains, reads the final state and checks it.
/// The cluster (every child process) is dropped on every path out of here.
async fn run(s: &Settings, dir: &Path) -> anyhow::Result<(Report, String)> {
    let mut cluster = Cluster::start(dir, 2, 3).await.context("cluster start")?;
    let clients = load::clients(&cluster.jobs_urls())?;
    let plan = schedule::plan(s.seed, Duration::from_secs(s.secs));
    let load = Load::start(clients.clone(), s.seed, s.rate);
    let t0 = tokio::time::Instant::now();
    let mut faults = Vec::new();
    let mut exits = Vec::new();
    let mut timeline = String::from("timeline:\n");
    for p in &plan {
        tokio::time::sleep_until(t0 + p.at).await;
        let f = inject(&mut cluster, &clients, p, &mut exits).await?;
        let line = format!(
            "  t+{:>5.1}s  {:<30} {:<22} {:>5.1} s, {} jobs held",
            p.at.as_secs_f64(),
            f.kind.to_string(),
            f.target,
            (f.end_ms - f.start_ms) as f64 / 1000.0,
            f.held.len()
        );
        eprintln!("{line}");
        timeline.push_str(&line);
        timeline.push('\n');
        faults.push(f);
        exits.extend(cluster.crashed());
        cluster
            .heal()
            .await
            .context("restarting crashed processes")?;
    }
    tokio::time::sleep_until(t0 + Duration::from_secs(s.secs)).await;
    exits.extend(cluster.crashed());
    cluster.heal().await.context("healing after the faults")?;
    let (specs, submits) = load.stop().await?;
    eprintln!("load stopped: {} jobs submitted; draining", specs.len());
    if !load::drained(&clients, Duration::from_secs(120)).await {
        eprintln!("queue not drained after 120 s; checking anyway");
    }
    exits.extend(cluster.crashed());

    // the store's final word: every acknowledged job, and the whole store
    let acked: BTreeSet<String> = submits
        .iter()
        .filter_map(|r| match &r.answer {
            checker::Answer::Accepted(id) => Some(id.clone()),
            checker::Answer::Error(_) => None,
        })
        .collect();
    let (found, _not_found) = load::get_jobs(&clients, acked.into_iter().collect()).await?;
    let listed = load::list_jobs(
        &clients,
        pb::JobStatus::Unspecified,
        Duration::from_secs(60),
    )
    .await;
    let stats = load::stats(&clients).await?;
    let mut fin = Final {
        totals: load::totals(&stats),
        ..Final::default()
    };
    for j in found {
        fin.jobs.insert(j.id.clone(), load::final_job(&j));
    }
    match listed {
        Ok(all) => {
            fin.complete = true;
            for j in all {
                fin.jobs
                    .entry(j.id.clone())
                    .or_insert_with(|| load::final_job(&j));
            }
        }
        Err(e) => eprintln!("could not list the whole store ({e:#}); terminal counts not checked"),
    }

    // the workers' history
    let mut history = History {
        specs,
        submits,
        faults,
        exits,
        ..History::default()
    };
    for path in &cluster.worker_logs {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        let log = faults::logs::parse(&text);
        history.runs.extend(log.runs);
        history.stale.extend(log.stale);
    }
    drop(cluster);
    Ok((
        checker::check(&history, &fin, &CheckConfig::default()),
        timeline,
    ))
}

/// Injects one planned fault and undoes it; returns what happened, when.
async fn inject(
    cluster: &mut Cluster,
    clients: &[Client],
    p: &Planned,
    slow_exits: &mut Vec<String>,
) -> anyhow::Result<FaultRecord> {
    let workers = cluster.workers.len();
    let mut record = FaultRecord {
        kind: p.kind,
        target: String::new(),
        start_ms: 0,
        end_ms: 0,
        held: Vec::new(),
    };
    match p.kind {
        FaultKind::WorkerKill => {
            let slot = (p.pick % workers as u64) as usize;
            record.target = cluster.workers[slot].id.clone();
            record.held = load::held_by_worker(clients)
                .await
                .remove(&record.target)
                .unwrap_or_default();
            record.start_ms = now_ms();
            cluster.kill_worker(slot);
            tokio::time::sleep(p.hold).await;
            cluster.start_worker(slot).await?;
        }
        FaultKind::JobsKill => {
            let i = (p.pick % cluster.jobs.len() as u64) as usize;
            record.target = cluster.jobs[i].name.clone();
            record.start_ms = now_ms();
            cluster.kill_jobs(i);
            tokio::time::sleep(p.hold).await;
            cluster.start_jobs(i).await?;
        }
        FaultKind::RedisPause => {
            record.target = "redis".into();
            record.start_ms = now_ms();
            cluster.redis.pause();
            tokio::time::sleep(p.hold).await;
            cluster.redis.resume();
        }
        FaultKind::RedisRestart => {
            record.target = "redis".into();
            record.start_ms = now_ms();
            cluster.kill_redis();
            tokio::time::sleep(p.hold).await;
            cluster.start_redis();
        }
        FaultKind::WorkerTerm => {
            let slot = (p.pick % workers as u64) as usize;
            record.target = cluster.workers[slot].id.clone();
            record.held = load::held_by_worker(clients)
                .await
                .remove(&record.target)
                .unwrap_or_default();
            record.start_ms = now_ms();
            let (id, exited) = cluster
                .terminate_worker(slot, Duration::from_secs(20))
                .await;
            if !exited {
                slow_exits.push(format!(
                    "worker {id} still running 20 s after SIGTERM (killed)"
                ));
            }
            tokio::time::sleep(p.hold).await;
            cluster.start_worker(slot).await?;
        }
        FaultKind::WorkerPause => {
            // the zombie is the worker holding the most jobs (ties broken by the schedule)
            let mut held = load::held_by_worker(clients).await;
            let slot = (0..workers)
                .max_by_key(|&i| {
                    let n = held.get(&cluster.workers[i].id).map_or(0, Vec::len);
                    (n, (i as u64 + p.pick) % workers as u64)
                })
                .unwrap_or(0);
            record.target = cluster.workers[slot].id.clone();
            record.held = held.remove(&record.target).unwrap_or_default();
            record.start_ms = now_ms();
            cluster.pause_worker(slot)?;
            tokio::time::sleep(p.hold).await;
            cluster.resume_worker(slot)?;
        }
    }
    record.end_ms = now_ms();
    Ok(record)
}
