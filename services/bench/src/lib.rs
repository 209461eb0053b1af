//! `pfc bench`: a load generator for the jobs core, over gRPC like any client.
//!
//! Two load shapes (`--shape`):
//! - `watch-all` (default): one `WatchJobs` stream sees every job finish without polling, while
//!   `--concurrency` tasks submit `--jobs` jobs — a few producers and a dashboard.
//! - `watch-own`: `--concurrency` clients each submit a job, follow *that* job with `WatchJob`
//!   until its stream ends, and repeat — what an SDK's `wait`, the UI's detail page or a
//!   per-job SSE stream does. Every stream must end with a terminal state; errors are counted.
//!
//! Jobs go as fast as possible, or at a fixed `--rate`; at a fixed rate each job's clock starts
//! at its *scheduled* time, not after the client got to it, so a stalled system shows in the
//! latencies (no coordinated omission). It reports the submit rate, end-to-end throughput
//! (first submit → last terminal state), submit→terminal latency percentiles, and for every
//! process named with `--pid NAME=PID`, the CPU time per job and the resident memory, read
//! from `/proc`.
//!
//! # Layout
//! - [`Args`], [`Shape`]: flags. [`run`]: the benchmark. [`ProcStat`]: `/proc` readings.
//! - `own`: the `watch-own` shape.

mod own;

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
    /// Load shape: one `WatchJobs` for all jobs, or every client watching its own job.
    #[arg(long, value_enum, default_value_t = Shape::WatchAll)]
    pub shape: Shape,
    /// Same as `--shape watch-own`.
    #[arg(long)]
    pub watch_own: bool,
    /// `watch-own` only: keep going for this long instead of stopping after `--jobs` jobs.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
}

impl Args {
    /// The load shape asked for (`--watch-own` wins over `--shape`).
    pub fn shape(&self) -> Shape {
        if self.watch_own {
            Shape::WatchOwn
        } else {
            self.shape
        }
    }
}

/// How the load generator follows its jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// One `WatchJobs` stream (filtered to DONE/FAILED) sees every job finish.
    WatchAll,
    /// Each client submits, follows that job with `WatchJob` to its end, and repeats.
    WatchOwn,
}

/// What a load shape measured.
struct Measured {
    /// Jobs that went through (submitted and followed to their end, or failed).
    jobs: usize,
    /// First submit → last submit answered.
    submitted_in: Duration,
    /// First submit → last terminal state seen.
    e2e: Duration,
    /// Submit → terminal state, per job.
    latencies: Vec<Duration>,
    /// Streams that ended without a terminal state, or failed.
    errors: usize,
}

/// When job `n` is due: `None` flat out, else its slot in the fixed-rate schedule.
fn scheduled(started: Instant, rate: Option<u64>, n: usize) -> Option<Instant> {
    rate.map(|r| started + Duration::from_secs_f64(n as f64 / r.max(1) as f64))
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
    let before: Vec<(String, Option<ProcStat>)> = args
        .pids
        .iter()
        .map(|(n, p)| (n.clone(), ProcStat::read(*p)))
        .collect();
    let m = match args.shape() {
        Shape::WatchAll => watch_all(&args, &channels).await?,
        Shape::WatchOwn => own::run(&args, &channels).await?,
    };
    report(&args, &before, m)
}

/// The `watch-all` shape: one `WatchJobs` stream, `--concurrency` submitters.
async fn watch_all(
    args: &Args,
    channels: &[tonic::transport::Channel],
) -> anyhow::Result<Measured> {
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

    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let rate = args.rate;
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
                let due = scheduled(started, rate, n);
                if let Some(due) = due {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
                }
                // at a fixed rate the clock starts at the scheduled time (no coordinated omission)
                let t = due.unwrap_or_else(Instant::now);
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
    let latencies = std::mem::take(&mut *latencies.lock().expect("lock"));
    Ok(Measured {
        jobs: total,
        submitted_in,
        e2e,
        latencies,
        errors: 0,
    })
}

/// Prints (and returns) the report of a run.
fn report(
    args: &Args,
    before: &[(String, Option<ProcStat>)],
    m: Measured,
) -> anyhow::Result<String> {
    let Measured {
        jobs: total,
        submitted_in,
        e2e,
        latencies: mut lat,
        errors,
    } = m;
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut out = String::new();
    use std::fmt::Write;
    let mode = match args.rate {
        Some(r) => format!("fixed rate {r}/s"),
        None => "as fast as possible".into(),
    };
    let who = match args.shape() {
        Shape::WatchAll => "submitters, one WatchJobs",
        Shape::WatchOwn => "clients each watching its own job",
    };
    writeln!(
        out,
        "jobs: {total} x {:?} ({mode}, {} {who}, {} connections)",
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
        "end to end:       {:>10.0} jobs/s ({:.2} s, first submit -> last terminal state)",
        total as f64 / e2e.as_secs_f64(),
        e2e.as_secs_f64()
    )?;
    writeln!(
        out,
        "submit->terminal: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.9)),
        ms(percentile(&lat, 0.99)),
        ms(percentile(&lat, 0.999)),
        ms(lat.last().copied().unwrap_or_default())
    )?;
    if args.shape() == Shape::WatchOwn {
        writeln!(out, "stream errors:    {errors:>10}")?;
    }
    for (name, b) in before.iter().cloned() {
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
