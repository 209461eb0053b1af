//! The client side: a steady load of submits over gRPC with failover between the jobs
//! servers, and the reads that give the store's final word. Every call has a timeout; a
//! failed submit is retried with the same idempotency key (on the other server first) for
//! up to [`SUBMIT_GIVE_UP`], and every answer is recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use futures::StreamExt;
use pfc_proto::jobs::v1 as pb;
use pfc_proto::jobs::v1::job_service_client::JobServiceClient;
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};

use super::checker::{Answer, FinalJob, JobSpec, Status, SubmitRecord, Totals};
use super::schedule;

/// Deadline of one call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// A submit is retried for this long, then given up (recorded as never acknowledged).
pub const SUBMIT_GIVE_UP: Duration = Duration::from_secs(30);

/// A JobService client.
pub type Client = JobServiceClient<Channel>;

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One lazily connected client per jobs server; they reconnect by themselves after a restart.
pub fn clients(urls: &[String]) -> anyhow::Result<Vec<Client>> {
    urls.iter()
        .map(|u| {
            let ch = Endpoint::from_shared(u.clone())?
                .connect_timeout(Duration::from_secs(1))
                .timeout(CALL_TIMEOUT)
                .tcp_nodelay(true)
                .connect_lazy();
            Ok(JobServiceClient::new(ch))
        })
        .collect()
}

/// Calls `f` on the servers in turn (starting at `first`) until one answers within the
/// call timeout, for at most `budget`.
async fn with_failover<T, F, Fut>(
    clients: &[Client],
    first: usize,
    budget: Duration,
    mut f: F,
) -> Result<T, tonic::Status>
where
    F: FnMut(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let deadline = tokio::time::Instant::now() + budget;
    let mut k = first;
    loop {
        let c = clients[k % clients.len()].clone();
        let r = match tokio::time::timeout(CALL_TIMEOUT + Duration::from_secs(1), f(c)).await {
            Ok(r) => r,
            Err(_) => Err(tonic::Status::deadline_exceeded("client-side timeout")),
        };
        match r {
            Ok(v) => return Ok(v),
            Err(e) if !retryable(e.code()) => return Err(e),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => {}
        }
        k += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn retryable(code: tonic::Code) -> bool {
    !matches!(
        code,
        tonic::Code::InvalidArgument
            | tonic::Code::NotFound
            | tonic::Code::OutOfRange
            | tonic::Code::Unimplemented
            | tonic::Code::PermissionDenied
            | tonic::Code::Unauthenticated
            | tonic::Code::FailedPrecondition
    )
}

/// The running load.
pub struct Load {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<JobSpec>>,
    records: Arc<Mutex<Vec<SubmitRecord>>>,
}

impl Load {
    /// Submits `rate` jobs/s (the seeded mix of [`schedule::job`]) until stopped.
    pub fn start(clients: Vec<Client>, seed: u64, rate: f64) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let records: Arc<Mutex<Vec<SubmitRecord>>> = Arc::default();
        let recs = records.clone();
        let task = tokio::spawn(async move {
            let mut specs = Vec::new();
            let mut tasks = JoinSet::new();
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for seq in 0.. {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                while tasks.try_join_next().is_some() {}
                // the client's own bound: with the store down, don't pile up without limit
                if tasks.len() >= 5000 {
                    continue;
                }
                let spec = schedule::job(seed, seq);
                specs.push(spec.clone());
                tasks.spawn(submit(clients.clone(), spec, seq as usize, recs.clone()));
            }
            // every submit task ends within its give-up time
            while tasks.join_next().await.is_some() {}
            specs
        });
        Self {
            stop,
            task,
            records,
        }
    }

    /// Stops submitting, waits for the submits in flight; returns the specs and records.
    pub async fn stop(self) -> anyhow::Result<(Vec<JobSpec>, Vec<SubmitRecord>)> {
        let _ = self.stop.send(true);
        let budget = SUBMIT_GIVE_UP + CALL_TIMEOUT + Duration::from_secs(10);
        let specs = tokio::time::timeout(budget, self.task)
            .await
            .context("submits in flight did not end")?
            .context("load task")?;
        let records = std::mem::take(&mut *self.records.lock().expect("lock"));
        Ok((specs, records))
    }
}

/// One spec: submit until an answer names a job, recording every answer.
async fn submit(
    clients: Vec<Client>,
    spec: JobSpec,
    seq: usize,
    records: Arc<Mutex<Vec<SubmitRecord>>>,
) {
    let deadline = tokio::time::Instant::now() + SUBMIT_GIVE_UP;
    let req = pb::SubmitJobRequest {
        text: spec.text.clone(),
        kind: spec.kind.clone(),
        idempotency_key: spec.key.clone(),
        max_attempts: spec.max_attempts,
        ..Default::default()
    };
    for k in 0.. {
        // spread the load over both servers; fail over to the other one on an error
        let server = (seq + k) % clients.len();
        let at_ms = now_ms();
        let mut c = clients[server].clone();
        let r = match tokio::time::timeout(
            CALL_TIMEOUT + Duration::from_secs(1),
            c.submit_job(req.clone()),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(tonic::Status::deadline_exceeded("client-side timeout")),
        };
        let (answer, again) = match r {
            Ok(resp) => (Answer::Accepted(resp.into_inner().job_id), false),
            Err(e) => {
                let mut msg = format!("{:?}: {}", e.code(), e.message());
                msg.truncate(200);
                (Answer::Error(msg), retryable(e.code()))
            }
        };
        records.lock().expect("lock").push(SubmitRecord {
            key: spec.key.clone(),
            at_ms,
            answer,
        });
        if !again || tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100 * (k as u64 + 1).min(5))).await;
    }
}

fn ms(t: &Option<prost_types::Timestamp>) -> Option<i64> {
    t.as_ref()
        .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// The checker's view of a job.
pub fn final_job(j: &pb::Job) -> FinalJob {
    let status = match j.status() {
        pb::JobStatus::Scheduled | pb::JobStatus::Unspecified => Status::Scheduled,
        pb::JobStatus::Queued => Status::Queued,
        pb::JobStatus::Processing => Status::Processing,
        pb::JobStatus::Done => Status::Done,
        pb::JobStatus::Failed => Status::Failed,
        pb::JobStatus::Cancelled => Status::Cancelled,
    };
    FinalJob {
        id: j.id.clone(),
        key: j.idempotency_key.clone(),
        status,
        result: j.result.clone(),
        error: j.error.clone(),
        attempts: j.attempts,
        max_attempts: j.max_attempts,
        worker_id: j.worker_id.clone(),
        started_at_ms: ms(&j.started_at),
        finished_at_ms: ms(&j.finished_at),
    }
}

/// `GetJob` for each id (16 at a time): the jobs found, and the ids NOT_FOUND.
pub async fn get_jobs(
    clients: &[Client],
    ids: Vec<String>,
) -> anyhow::Result<(Vec<pb::Job>, Vec<String>)> {
    let results: Vec<(String, Result<Option<pb::Job>, tonic::Status>)> = futures::stream::iter(ids)
        .map(|id| async move {
            let r = with_failover(clients, 0, Duration::from_secs(20), |mut c| {
                let id = id.clone();
                async move {
                    match c.get_job(pb::GetJobRequest { job_id: id }).await {
                        Ok(r) => Ok(r.into_inner().job),
                        Err(e) if e.code() == tonic::Code::NotFound => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            })
            .await;
            (id, r)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    for (id, r) in results {
        match r {
            Ok(Some(j)) => found.push(j),
            Ok(None) => missing.push(id),
            Err(e) => bail!("GetJob {id} failed: {e}"),
        }
    }
    Ok((found, missing))
}

/// Every job of `status` (UNSPECIFIED = all), paging `ListJobs` to the end.
pub async fn list_jobs(
    clients: &[Client],
    status: pb::JobStatus,
    budget: Duration,
) -> anyhow::Result<Vec<pb::Job>> {
    let deadline = tokio::time::Instant::now() + budget;
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            bail!("ListJobs did not reach the last page within {budget:?}");
        }
        let page = with_failover(clients, 0, left, |mut c| {
            let page_token = token.clone();
            async move {
                c.list_jobs(pb::ListJobsRequest {
                    status: status as i32,
                    page_size: 200,
                    page_token,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner())
            }
        })
        .await
        .context("ListJobs")?;
        out.extend(page.jobs);
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        token = page.next_page_token;
    }
}

/// The jobs each worker holds now: worker id → (job id, attempts).
pub async fn held_by_worker(clients: &[Client]) -> HashMap<String, Vec<(String, u32)>> {
    let mut m: HashMap<String, Vec<(String, u32)>> = HashMap::new();
    let jobs = list_jobs(clients, pb::JobStatus::Processing, Duration::from_secs(2))
        .await
        .unwrap_or_default();
    for j in jobs {
        m.entry(j.worker_id.clone())
            .or_default()
            .push((j.id.clone(), j.attempts));
    }
    m
}

/// The queue's counters.
pub async fn stats(clients: &[Client]) -> anyhow::Result<pb::GetStatsResponse> {
    with_failover(clients, 0, Duration::from_secs(20), |mut c| async move {
        c.get_stats(pb::GetStatsRequest {})
            .await
            .map(|r| r.into_inner())
    })
    .await
    .context("GetStats")
}

/// The terminal counters.
pub fn totals(s: &pb::GetStatsResponse) -> Totals {
    Totals {
        submitted: s.submitted_total,
        done: s.done_total,
        failed: s.failed_total,
        cancelled: s.cancelled_total,
    }
}

/// Waits until nothing is queued, scheduled or in flight (or `timeout`); false on timeout.
pub async fn drained(clients: &[Client], timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Ok(s) = stats(clients).await {
            if s.queued + s.scheduled + s.processing == 0 {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}
