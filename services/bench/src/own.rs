//! The `watch-own` shape: many clients, each submitting a job and following that job with
//! `WatchJob` until its stream ends, then the next.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use pfc_proto::jobs::v1 as pb;
use pfc_proto::jobs::v1::job_service_client::JobServiceClient;
use tonic::transport::Channel;

use crate::{scheduled, Args, Measured};

/// What one client saw of one job.
enum Seen {
    /// The stream ended after a terminal state, this long after the job's (scheduled) start.
    Terminal(Duration),
    /// The submit or the stream failed, or the stream ended early.
    Failed(String),
}

/// Runs `--concurrency` clients over `channels` until `--jobs` jobs went through (or, with
/// `--duration`, until that time is up).
pub(crate) async fn run(args: &Args, channels: &[Channel]) -> anyhow::Result<Measured> {
    let (total, until) = match args.duration {
        Some(d) => (usize::MAX, Some(Instant::now() + d)),
        None => (args.jobs, None),
    };
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let last_end: Arc<Mutex<Instant>> = Arc::new(Mutex::new(started));
    let mut tasks = Vec::new();
    for i in 0..args.concurrency.max(1) {
        let mut client = JobServiceClient::new(channels[i % channels.len()].clone());
        let (next, last_end) = (next.clone(), last_end.clone());
        let (kind, text, rate) = (args.kind.clone(), args.text.clone(), args.rate);
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut submitted = started;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total || until.is_some_and(|u| Instant::now() >= u) {
                    return (seen, submitted);
                }
                let due = scheduled(started, rate, n);
                if let Some(due) = due {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
                }
                let t = due.unwrap_or_else(Instant::now);
                let s = one(&mut client, &kind, &text, t, &mut submitted).await;
                if matches!(s, Seen::Terminal(_)) {
                    let mut l = last_end.lock().expect("lock");
                    *l = (*l).max(Instant::now());
                }
                seen.push(s);
            }
        }));
    }
    let mut latencies = Vec::with_capacity(args.jobs.min(1 << 20));
    let mut errors = 0;
    let mut first_error = None;
    let mut submitted_at = started;
    let all = futures::future::join_all(tasks);
    let Ok(results) = tokio::time::timeout(args.timeout, all).await else {
        bail!("not every job finished within {:?}", args.timeout);
    };
    for r in results {
        let (seen, submitted) = r?;
        submitted_at = submitted_at.max(submitted);
        for s in seen {
            match s {
                Seen::Terminal(d) => latencies.push(d),
                Seen::Failed(e) => {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    if let Some(e) = first_error {
        eprintln!("{errors} streams failed; the first: {e}");
    }
    let e2e = last_end
        .lock()
        .expect("lock")
        .saturating_duration_since(started);
    Ok(Measured {
        jobs: latencies.len() + errors,
        submitted_in: submitted_at.saturating_duration_since(started),
        e2e,
        latencies,
        errors,
    })
}

/// Submits one job and follows it to the end of its `WatchJob` stream.
async fn one(
    client: &mut JobServiceClient<Channel>,
    kind: &str,
    text: &str,
    t: Instant,
    submitted: &mut Instant,
) -> Seen {
    let id = match client
        .submit_job(pb::SubmitJobRequest {
            text: text.to_owned(),
            kind: kind.to_owned(),
            ..Default::default()
        })
        .await
    {
        Ok(r) => r.into_inner().job_id,
        Err(s) => return Seen::Failed(format!("submit: {s}")),
    };
    *submitted = Instant::now();
    let mut stream = match client
        .watch_job(pb::WatchJobRequest { job_id: id.clone() })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return Seen::Failed(format!("{id}: WatchJob: {s}")),
    };
    let mut terminal = None;
    loop {
        match stream.message().await {
            Ok(Some(m)) => {
                let status = m.job.map(|j| j.status()).unwrap_or_default();
                if matches!(
                    status,
                    pb::JobStatus::Done | pb::JobStatus::Failed | pb::JobStatus::Cancelled
                ) {
                    terminal = Some(t.elapsed());
                }
            }
            Ok(None) => break,
            Err(s) => return Seen::Failed(format!("{id}: stream: {s}")),
        }
    }
    match terminal {
        Some(d) => Seen::Terminal(d),
        None => Seen::Failed(format!("{id}: stream ended without a terminal state")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed-rate schedule spaces jobs by 1/rate from the start; flat out has no schedule.
    #[test]
    fn schedule() {
        let t = Instant::now();
        assert_eq!(
            scheduled(t, Some(1000), 500),
            Some(t + Duration::from_millis(500))
        );
        assert_eq!(scheduled(t, None, 5), None);
    }
}
