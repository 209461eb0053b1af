//! `pfc bench`: a load generator for the jobs core, over gRPC like any client.
//!
//! It opens one `WatchJobs` stream (to see every job finish without polling), then submits
//! `--jobs` jobs from `--concurrency` tasks — as fast as possible, or at a fixed `--rate` —
//! and reports the submit rate, end-to-end throughput (first submit → last done), submit→done
//! latency percentiles, and for every process named with `--pid NAME=PID`, the CPU time per
//! job and the resident memory, read from `/proc`.
//!
//! # Layout
//! - [`Args`]: flags. [`run`]: the benchmark. [`ProcStat`]: `/proc` readings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pfc_proto::jobs::v1 as pb;
use pfc_proto::jobs::v1::job_service_client::JobServiceClient;
use tonic::transport::Endpoint;

/// Benchmark settings.
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// JobService address.
    #[arg(long, env = "PFC_JOBS_URL", default_value = "http://127.0.0.1:50051")]
    pub url: String,
    /// More JobService addresses (repeatable): the connections are spread over `--url` and
    /// these, as clients of a deployment with several jobs servers would be.
    #[arg(long = "also-url")]
    pub also_urls: Vec<String>,
    /// Jobs to submit.
    #[arg(long, default_value_t = 100_000)]
    pub jobs: usize,
    /// Concurrent submitters.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Submit at this many jobs/s instead of as fast as possible (latency runs).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Processor kind.
    #[arg(long, default_value = "uppercase")]
    pub kind: String,
    /// Job text.
    #[arg(long, default_value = "bonjour le monde")]
    pub text: String,
    /// gRPC connections to spread submitters over.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// A process to measure, as NAME=PID (repeatable): CPU time per job and RSS.
    #[arg(long = "pid", value_parser = parse_pid)]
    pub pids: Vec<(String, u32)>,
    /// Give up waiting for completions after this long.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

fn parse_pid(s: &str) -> Result<(String, u32), String> {
    let (n, p) = s.split_once('=').ok_or("expected NAME=PID")?;
    Ok((
        n.to_owned(),
        p.parse().map_err(|e| format!("bad pid: {e}"))?,
    ))
}

/// CPU time and memory of a process, from `/proc/<pid>/stat` and `/proc/<pid>/status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStat {
    /// user + system CPU seconds so far.
    pub cpu_secs: f64,
    /// Resident set size now, KiB.
    pub rss_kib: u64,
    /// Peak resident set size, KiB.
    pub hwm_kib: u64,
}

impl ProcStat {
    /// Reads `pid`'s counters (`None` if the process is gone or /proc is missing).
    pub fn read(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // fields after the command name (which may contain spaces) start after ") "
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = 100.0; // USER_HZ is 100 on Linux
        let utime: f64 = f.get(11)?.parse().ok()?;
        let stime: f64 = f.get(12)?.parse().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Some(Self {
            cpu_secs: (utime + stime) / ticks,
            rss_kib: kib("VmRSS:"),
            hwm_kib: kib("VmHWM:"),
        })
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the benchmark and prints a report (also returned as text).
pub async fn run(args: Args) -> anyhow::Result<String> {
    let mut channels = Vec::new();
    let urls: Vec<&String> = std::iter::once(&args.url).chain(&args.also_urls).collect();
    for i in 0..args.connections.max(urls.len()) {
        let url = urls[i % urls.len()];
        let ch = Endpoint::from_shared(url.clone())?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("failed to connect to {url}"))?;
        channels.push(ch);
    }
    let mut watch_client = JobServiceClient::new(channels[0].clone());
    let mut events = watch_client
        .watch_jobs(pb::WatchJobsRequest {
            statuses: vec![pb::JobStatus::Done as i32, pb::JobStatus::Failed as i32],
        })
        .await?
        .into_inner();

    // submit time per job id; done times recorded by the watcher
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let early: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let total = args.jobs;
    // counts DONE/FAILED events; returns the time of the last one, or None if the stream ends
    let watcher = {
        let (sent, early, latencies) = (sent.clone(), early.clone(), latencies.clone());
        tokio::spawn(async move {
            let mut finished = 0usize;
            while let Ok(Some(msg)) = events.message().await {
                let Some(ev) = msg.event else { continue };
                if ev.status() != pb::JobStatus::Done && ev.status() != pb::JobStatus::Failed {
                    continue;
                }
                let now = Instant::now();
                let start = sent.lock().expect("lock").remove(&ev.job_id);
                match start {
                    Some(t) => latencies.lock().expect("lock").push(now - t),
                    // done before the submit call returned: the submitter records it
                    None => {
                        early.lock().expect("lock").insert(ev.job_id, now);
                    }
                }
                finished += 1;
                if finished >= total {
                    return Some(now);
                }
            }
            None
        })
    };

    let before: Vec<(String, Option<ProcStat>)> = args
        .pids
        .iter()
        .map(|(n, p)| (n.clone(), ProcStat::read(*p)))
        .collect();
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(1.0 / r.max(1) as f64));
    let mut tasks = Vec::new();
    for i in 0..args.concurrency.max(1) {
        let mut client = JobServiceClient::new(channels[i % channels.len()].clone());
        let (next, sent, early, latencies) =
            (next.clone(), sent.clone(), early.clone(), latencies.clone());
        let (kind, text) = (args.kind.clone(), args.text.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= total {
                    return Ok::<(), tonic::Status>(());
                }
                if let Some(iv) = interval {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(
                        started + iv * n as u32,
                    ))
                    .await;
                }
                let t = Instant::now();
                let id = client
                    .submit_job(pb::SubmitJobRequest {
                        text: text.clone(),
                        kind: kind.clone(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner()
                    .job_id;
                let finished = early.lock().expect("lock").remove(&id);
                match finished {
                    Some(at) => latencies.lock().expect("lock").push(at - t),
                    None => {
                        sent.lock().expect("lock").insert(id, t);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let submitted_in = started.elapsed();
    let last = match tokio::time::timeout(args.timeout, watcher).await {
        Ok(Ok(Some(last))) => last,
        Ok(Ok(None)) => bail!("the WatchJobs stream ended before every job finished"),
        Ok(Err(e)) => bail!("watcher task failed: {e}"),
        Err(_) => bail!("not every job finished within {:?}", args.timeout),
    };
    let e2e = last.saturating_duration_since(started);
    let mut lat = std::mem::take(&mut *latencies.lock().expect("lock"));
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut out = String::new();
    use std::fmt::Write;
    let mode = match args.rate {
        Some(r) => format!("fixed rate {r}/s"),
        None => "as fast as possible".into(),
    };
    writeln!(
        out,
        "jobs: {total} x {:?} ({mode}, {} submitters, {} connections)",
        args.kind, args.concurrency, args.connections
    )?;
    writeln!(
        out,
        "submit rate:      {:>10.0} jobs/s ({:.2} s)",
        total as f64 / submitted_in.as_secs_f64(),
        submitted_in.as_secs_f64()
    )?;
    writeln!(
        out,
        "end to end:       {:>10.0} jobs/s ({:.2} s, first submit -> last done)",
        total as f64 / e2e.as_secs_f64(),
        e2e.as_secs_f64()
    )?;
    writeln!(
        out,
        "submit->done:     p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.9)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    )?;
    for (name, b) in before {
        let pid = args
            .pids
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .unwrap_or(0);
        if let (Some(b), Some(a)) = (b, ProcStat::read(pid)) {
            let cpu = a.cpu_secs - b.cpu_secs;
            writeln!(
                out,
                "{name:<16}  cpu {:>6.2} s = {:>6.1} µs/job ({:>3.0}% of a core)  rss {:>6.1} MiB  peak {:>6.1} MiB",
                cpu,
                cpu * 1e6 / total as f64,
                cpu * 100.0 / e2e.as_secs_f64(),
                a.rss_kib as f64 / 1024.0,
                a.hwm_kib as f64 / 1024.0
            )?;
        }
    }
    if let Some(me) = ProcStat::read(std::process::id()) {
        writeln!(
            out,
            "{:<16}  cpu {:>6.2} s (this load generator)  rss {:>6.1} MiB",
            "bench",
            me.cpu_secs,
            me.rss_kib as f64 / 1024.0
        )?;
    }
    print!("{out}");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Percentiles pick the nearest rank and survive empty input.
    #[test]
    fn percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    /// This process's own /proc entry parses.
    #[test]
    fn reads_proc() {
        let s = ProcStat::read(std::process::id()).unwrap();
        assert!(s.rss_kib > 0);
    }
}
