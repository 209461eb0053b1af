//! The `pfc.jobs.v1.JobService` implementation: validation, then the store.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use pfc_processors::Registry;
use pfc_proto::jobs::v1 as pb;
use pfc_proto::jobs::v1::job_service_server::JobService;
use pfc_proto::timestamp_to_ms;
use pfc_queue::{
    now_ms, queue_or_default, JobStore, ListQuery, NewJob, Payload, MAX_PRIORITY, MIN_PRIORITY,
};
use tonic::{Request, Response, Status};

use crate::convert::*;
use crate::error::JobError;
use crate::hub::Hub;
use crate::validate::{check_queue, is_valid_kind, payload_type, truncate, DEFAULT_KIND, MAX_KIND};

/// Limits and defaults applied to requests.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest accepted `text`, in bytes.
    pub max_text_bytes: usize,
    /// Largest accepted `payload`, in bytes.
    pub max_payload_bytes: usize,
    /// `max_attempts` when the request leaves it 0.
    pub default_max_attempts: u32,
    /// The watch hub's safety net: with jobs watched and no event at all for this long, every
    /// watched job is re-read ([`crate::hub::SILENCE`] by default). Tests set it beyond their
    /// length to prove that watchers get every end from events alone.
    pub watch_silence: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_text_bytes: 64 * 1024,
            max_payload_bytes: 1024 * 1024,
            default_max_attempts: 3,
            watch_silence: crate::hub::SILENCE,
        }
    }
}

/// Longest accepted idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;
/// Largest `max_attempts` a request may ask for.
pub const MAX_ATTEMPTS_LIMIT: u32 = 25;
/// Largest page of `ListJobs`.
pub const MAX_PAGE_SIZE: u32 = 200;
/// Most jobs one `SubmitJobs` call may carry: enough to amortise a round trip many times over,
/// small enough that one call's answer stays a few hundred KiB and no caller holds the store's
/// submit batcher for long.
pub const MAX_BATCH: usize = 1000;
/// Furthest a job can be scheduled ahead.
pub const MAX_DELAY: Duration = Duration::from_secs(30 * 24 * 3600);

/// The JobService: cheap to clone; its clones share one watch [`Hub`].
#[derive(Clone)]
pub struct Jobs {
    store: Arc<dyn JobStore>,
    registry: Registry,
    limits: Limits,
    hub: Arc<Hub>,
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl Jobs {
    /// A JobService over `store`, accepting the kinds in `registry`. Inside a tokio runtime
    /// its watch hub subscribes to the store's events at once.
    pub fn new(store: Arc<dyn JobStore>, registry: Registry, limits: Limits) -> Self {
        Self {
            hub: Arc::new(Hub::with_silence(store.clone(), limits.watch_silence)),
            store,
            registry,
            limits,
        }
    }

    /// The request limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The watch hub serving this service's `WatchJob` and `WatchJobs` streams.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The job a `SubmitJob` request describes, checked by the same rules and limits (the
    /// scheduler builds each tick's job with it, so a schedule's job is a submit like any).
    pub fn check_submit(&self, r: &pb::SubmitJobRequest) -> Result<NewJob, JobError> {
        self.validate_submit(r)
    }

    /// A submit checked against the rules and limits, as the job to store. A job has text
    /// or a payload (exactly one); kinds are open: any well-formed name is accepted, and a
    /// kind no worker has declared yet waits queued until one does.
    fn validate_submit(&self, r: &pb::SubmitJobRequest) -> Result<NewJob, JobError> {
        let kind = if r.kind.is_empty() {
            DEFAULT_KIND
        } else {
            r.kind.as_str()
        };
        if !is_valid_kind(kind) {
            return Err(JobError::InvalidArgument(format!(
                "kind {:?} is malformed: a kind is 1 to {MAX_KIND} characters of a-z, 0-9, \
                 '.', '_' or '-', starting with a letter or digit (e.g. \"resize\", \
                 \"images.resize-v2\")",
                truncate(kind, 80)
            )));
        }
        let payload = if !r.payload.is_empty() {
            if !r.text.is_empty() {
                return Err(JobError::InvalidArgument(
                    "a job has either text or a payload, not both".into(),
                ));
            }
            Some(self.validate_payload(kind, r)?)
        } else if !r.content_type.is_empty() {
            return Err(JobError::InvalidArgument(format!(
                "content_type is {:?} but the payload is empty",
                truncate(&r.content_type, 80)
            )));
        } else if r.text.is_empty() {
            return Err(JobError::InvalidArgument(
                "text must not be empty (a job needs text or a payload)".into(),
            ));
        } else if r.text.len() > self.limits.max_text_bytes {
            return Err(JobError::InvalidArgument(format!(
                "text is {} bytes; the limit is {} bytes",
                r.text.len(),
                self.limits.max_text_bytes
            )));
        } else {
            None
        };
        let queue = queue_or_default(&r.queue);
        check_queue("queue", queue)?;
        if r.idempotency_key.len() > MAX_IDEMPOTENCY_KEY {
            return Err(JobError::InvalidArgument(format!(
                "idempotency_key is {} bytes; the limit is {MAX_IDEMPOTENCY_KEY}",
                r.idempotency_key.len()
            )));
        }
        if !(MIN_PRIORITY..=MAX_PRIORITY).contains(&r.priority) {
            return Err(JobError::InvalidArgument(format!(
                "priority is {}; it must be {MIN_PRIORITY} to {MAX_PRIORITY} (higher runs first)",
                r.priority
            )));
        }
        if r.max_attempts > MAX_ATTEMPTS_LIMIT {
            return Err(JobError::InvalidArgument(format!(
                "max_attempts is {}; the limit is {MAX_ATTEMPTS_LIMIT}",
                r.max_attempts
            )));
        }
        let now = now_ms();
        let run_at = match (&r.run_at, &r.delay) {
            (Some(t), _) => Some(timestamp_to_ms(t)),
            (None, Some(d)) => {
                if d.seconds < 0 || d.nanos < 0 {
                    return Err(JobError::InvalidArgument(
                        "delay must not be negative".into(),
                    ));
                }
                let ms = d
                    .seconds
                    .saturating_mul(1000)
                    .saturating_add(i64::from(d.nanos) / 1_000_000);
                Some(now.saturating_add(ms))
            }
            (None, None) => None,
        };
        if let Some(t) = run_at {
            if t - now > MAX_DELAY.as_millis() as i64 {
                return Err(JobError::InvalidArgument(
                    "run_at/delay is more than 30 days ahead".into(),
                ));
            }
        }
        Ok(NewJob {
            queue: queue.to_owned(),
            priority: r.priority,
            kind: kind.to_owned(),
            text: r.text.clone(),
            payload,
            idempotency_key: (!r.idempotency_key.is_empty()).then(|| r.idempotency_key.clone()),
            run_at: run_at.filter(|t| *t > now),
            max_attempts: if r.max_attempts == 0 {
                self.limits.default_max_attempts
            } else {
                r.max_attempts
            },
            traceparent: None,
        })
    }

    /// The payload of a submit without text: within the size limit, valid JSON unless it
    /// declares another content type, and not for a built-in text processor.
    fn validate_payload(&self, kind: &str, r: &pb::SubmitJobRequest) -> Result<Payload, JobError> {
        if r.payload.len() > self.limits.max_payload_bytes {
            return Err(JobError::PayloadTooLarge {
                size: r.payload.len(),
                limit: self.limits.max_payload_bytes,
            });
        }
        if self.registry.get(kind).is_some() {
            return Err(JobError::InvalidArgument(format!(
                "kind {kind:?} is a built-in text processor: send text, not a payload"
            )));
        }
        let content_type = payload_type(&r.content_type)?;
        if content_type.is_none() {
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(&r.payload) {
                return Err(JobError::InvalidArgument(format!(
                    "payload is not valid JSON ({e}); an empty content_type means \
                     application/json, set content_type to send other bytes"
                )));
            }
        }
        Ok(Payload {
            bytes: r.payload.clone(),
            content_type: content_type.unwrap_or_else(|| pfc_queue::JSON.to_owned()),
        })
    }

    /// Pauses or resumes the queue `name` (checked: a well-formed name of a queue that exists).
    async fn set_paused(&self, name: &str, paused: bool) -> Result<pb::Queue, JobError> {
        check_queue("name", name)?;
        let q = self.store.set_paused(name, paused).await?;
        tracing::info!(queue = name, paused, "queue paused or resumed");
        Ok(queue_to_pb(q))
    }

    async fn get_job(&self, id: &str) -> Result<pb::Job, JobError> {
        if id.is_empty() {
            return Err(JobError::InvalidArgument("job_id must not be empty".into()));
        }
        match self.store.get(id).await? {
            Some(j) => Ok(job_to_pb(j)),
            None => Err(JobError::NotFound(id.to_owned())),
        }
    }
}

/// `stream`, counted in `pfc_jobs_watch_streams{rpc}` for as long as it is open.
fn counted<S: Stream + Send + 'static>(
    rpc: &'static str,
    stream: S,
) -> impl Stream<Item = S::Item> {
    let open = crate::metrics::watch_stream(rpc);
    stream.map(move |item| {
        let _ = &open; // the guard lives (and counts) as long as the stream
        item
    })
}

/// Largest per-queue concurrency limit.
pub const MAX_CONCURRENCY_LIMIT: u32 = 100_000;
/// Largest per-queue rate limit (starts per period).
pub const MAX_RATE_LIMIT: u32 = 1_000_000;
/// Longest rate-limit window.
pub const MAX_RATE_PERIOD: Duration = Duration::from_secs(3600);

/// The limits of an UpdateQueue, checked: each in its range, a rate limit with its period.
fn validate_limits(r: &pb::UpdateQueueRequest) -> Result<pfc_queue::QueueLimits, JobError> {
    if r.concurrency_limit > MAX_CONCURRENCY_LIMIT {
        return Err(JobError::InvalidArgument(format!(
            "concurrency_limit is {}; it must be 0 (none) to {MAX_CONCURRENCY_LIMIT}",
            r.concurrency_limit
        )));
    }
    if r.rate_limit > MAX_RATE_LIMIT {
        return Err(JobError::InvalidArgument(format!(
            "rate_limit is {}; it must be 0 (none) to {MAX_RATE_LIMIT}",
            r.rate_limit
        )));
    }
    let period_ms = match &r.rate_period {
        None => 0,
        Some(d) if d.seconds < 0 || d.nanos < 0 => {
            return Err(JobError::InvalidArgument(
                "rate_period must not be negative".into(),
            ))
        }
        Some(d) => (d.seconds as u64)
            .saturating_mul(1000)
            .saturating_add(d.nanos as u64 / 1_000_000),
    };
    if r.rate_limit > 0 && !(1..=MAX_RATE_PERIOD.as_millis() as u64).contains(&period_ms) {
        return Err(JobError::InvalidArgument(
            "rate_period must be 1 ms to 1 h when rate_limit is set".into(),
        ));
    }
    Ok(pfc_queue::QueueLimits {
        concurrency: r.concurrency_limit,
        rate: r.rate_limit,
        rate_period_ms: if r.rate_limit > 0 { period_ms } else { 0 },
    })
}

/// Continues the caller's trace when the request carries a W3C `traceparent` header.
fn adopt_trace<T>(req: &Request<T>) {
    if let Some(tp) = req
        .metadata()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
    {
        pfc_telemetry::set_parent(&tracing::Span::current(), tp);
    }
}

#[tonic::async_trait]
impl JobService for Jobs {
    #[tracing::instrument(name = "SubmitJob", skip_all, fields(job_id, kind))]
    async fn submit_job(
        &self,
        req: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::SubmitJobResponse>, Status> {
        adopt_trace(&req);
        let mut new = self.validate_submit(req.get_ref())?;
        new.traceparent = pfc_telemetry::current_traceparent();
        tracing::Span::current().record("kind", new.kind.as_str());
        let sub = self.store.submit(new).await.map_err(JobError::from)?;
        if sub.created {
            crate::metrics::submitted(&sub.job.queue, &sub.job.kind);
        }
        tracing::Span::current().record("job_id", sub.job.id.as_str());
        tracing::debug!(created = sub.created, "job submitted");
        Ok(Response::new(pb::SubmitJobResponse {
            job_id: sub.job.id.clone(),
            created: sub.created,
            job: Some(job_to_pb(sub.job)),
        }))
    }

    #[tracing::instrument(name = "SubmitJobs", skip_all, fields(jobs = req.get_ref().jobs.len()))]
    async fn submit_jobs(
        &self,
        req: Request<pb::SubmitJobsRequest>,
    ) -> Result<Response<pb::SubmitJobsResponse>, Status> {
        adopt_trace(&req);
        let jobs = &req.get_ref().jobs;
        if jobs.is_empty() || jobs.len() > MAX_BATCH {
            return Err(JobError::InvalidArgument(format!(
                "jobs has {} entries; a batch has 1 to {MAX_BATCH}",
                jobs.len()
            ))
            .into());
        }
        let traceparent = pfc_telemetry::current_traceparent();
        // Submitted concurrently: the store's submit batcher sends them to Redis in a few
        // pipelines, and each job still gets its own answer (idempotency key included).
        let submits = jobs.iter().map(|r| {
            let new = self.validate_submit(r).map(|mut new| {
                new.traceparent = traceparent.clone();
                new
            });
            async move {
                let sub = self.store.submit(new?).await.map_err(JobError::from)?;
                Ok::<_, JobError>(sub)
            }
        });
        let results = futures::future::join_all(submits)
            .await
            .into_iter()
            .map(|r| pb::SubmitJobResult {
                outcome: Some(match r {
                    Ok(sub) => pb::submit_job_result::Outcome::Submitted(pb::SubmitJobResponse {
                        job_id: sub.job.id.clone(),
                        created: sub.created,
                        job: Some(job_to_pb(sub.job)),
                    }),
                    Err(e) => {
                        let status = Status::from(e);
                        pb::submit_job_result::Outcome::Error(pb::SubmitError {
                            code: status.code() as i32,
                            message: status.message().to_owned(),
                        })
                    }
                }),
            })
            .collect();
        Ok(Response::new(pb::SubmitJobsResponse { results }))
    }

    #[tracing::instrument(name = "GetJob", skip_all, fields(job_id = %req.get_ref().job_id))]
    async fn get_job(
        &self,
        req: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::GetJobResponse>, Status> {
        let job = self.get_job(&req.get_ref().job_id).await?;
        Ok(Response::new(pb::GetJobResponse { job: Some(job) }))
    }

    type WatchJobStream = EventStream<pb::WatchJobResponse>;

    #[tracing::instrument(name = "WatchJob", skip_all, fields(job_id = %req.get_ref().job_id))]
    async fn watch_job(
        &self,
        req: Request<pb::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let id = req.into_inner().job_id;
        if id.is_empty() {
            return Err(JobError::InvalidArgument("job_id must not be empty".into()).into());
        }
        let stream = self.hub.watch_job(&id).await?;
        Ok(Response::new(Box::pin(counted("WatchJob", stream))))
    }

    type WatchJobsStream = EventStream<pb::WatchJobsResponse>;

    #[tracing::instrument(name = "WatchJobs", skip_all)]
    async fn watch_jobs(
        &self,
        req: Request<pb::WatchJobsRequest>,
    ) -> Result<Response<Self::WatchJobsStream>, Status> {
        let mut wanted = Vec::new();
        for s in &req.get_ref().statuses {
            let st = pb::JobStatus::try_from(*s)
                .ok()
                .and_then(status_from_pb)
                .ok_or_else(|| {
                    JobError::InvalidArgument(format!("unknown status value {s} in statuses"))
                })?;
            wanted.push(st);
        }
        Ok(Response::new(Box::pin(counted(
            "WatchJobs",
            self.hub.watch_jobs(wanted),
        ))))
    }

    #[tracing::instrument(name = "ListJobs", skip_all)]
    async fn list_jobs(
        &self,
        req: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let r = req.into_inner();
        let status = pb::JobStatus::try_from(r.status)
            .map_err(|_| JobError::InvalidArgument(format!("unknown status value {}", r.status)))?;
        if r.page_size > MAX_PAGE_SIZE {
            return Err(JobError::InvalidArgument(format!(
                "page_size is {}; the limit is {MAX_PAGE_SIZE}",
                r.page_size
            ))
            .into());
        }
        if !r.page_token.is_empty()
            && (r.page_token.len() > 128
                || !r
                    .page_token
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c)))
        {
            return Err(JobError::InvalidArgument(
                "page_token is not a token from a previous page".into(),
            )
            .into());
        }
        if !r.queue.is_empty() {
            check_queue("queue", &r.queue)?;
        }
        let page = self
            .store
            .list(ListQuery {
                queue: (!r.queue.is_empty()).then(|| r.queue.clone()),
                status: status_from_pb(status),
                limit: if r.page_size == 0 {
                    50
                } else {
                    r.page_size as usize
                },
                before: (!r.page_token.is_empty()).then_some(r.page_token),
            })
            .await
            .map_err(JobError::from)?;
        Ok(Response::new(pb::ListJobsResponse {
            jobs: page.jobs.into_iter().map(job_to_pb).collect(),
            next_page_token: page.next.unwrap_or_default(),
            total_size: page.total,
        }))
    }

    #[tracing::instrument(name = "CancelJob", skip_all, fields(job_id = %req.get_ref().job_id))]
    async fn cancel_job(
        &self,
        req: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::CancelJobResponse>, Status> {
        let id = &req.get_ref().job_id;
        if id.is_empty() {
            return Err(JobError::InvalidArgument("job_id must not be empty".into()).into());
        }
        let job = self.store.cancel(id).await.map_err(JobError::from)?;
        crate::metrics::finished(
            Some(&crate::metrics::JobLabels {
                queue: job.queue.clone(),
                kind: job.kind.clone(),
                max_attempts: job.max_attempts,
            }),
            "cancelled",
        );
        Ok(Response::new(pb::CancelJobResponse {
            job: Some(job_to_pb(job)),
        }))
    }

    #[tracing::instrument(name = "GetStats", skip_all)]
    async fn get_stats(
        &self,
        _req: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::GetStatsResponse>, Status> {
        let stats = self.store.stats().await.map_err(JobError::from)?;
        Ok(Response::new(stats_to_pb(stats)))
    }

    /// The built-in kinds, then every kind a live worker declared, each with its live
    /// workers and their total concurrency.
    #[tracing::instrument(name = "ListKinds", skip_all)]
    async fn list_kinds(
        &self,
        _req: Request<pb::ListKindsRequest>,
    ) -> Result<Response<pb::ListKindsResponse>, Status> {
        let stats = self.store.stats().await.map_err(JobError::from)?;
        Ok(Response::new(pb::ListKindsResponse {
            kinds: crate::worker_service::kinds(&self.registry, &stats.workers),
        }))
    }

    #[tracing::instrument(name = "PauseQueue", skip_all, fields(queue = %req.get_ref().name))]
    async fn pause_queue(
        &self,
        req: Request<pb::PauseQueueRequest>,
    ) -> Result<Response<pb::PauseQueueResponse>, Status> {
        let queue = self.set_paused(&req.get_ref().name, true).await?;
        Ok(Response::new(pb::PauseQueueResponse { queue: Some(queue) }))
    }

    #[tracing::instrument(name = "ResumeQueue", skip_all, fields(queue = %req.get_ref().name))]
    async fn resume_queue(
        &self,
        req: Request<pb::ResumeQueueRequest>,
    ) -> Result<Response<pb::ResumeQueueResponse>, Status> {
        let queue = self.set_paused(&req.get_ref().name, false).await?;
        Ok(Response::new(pb::ResumeQueueResponse {
            queue: Some(queue),
        }))
    }

    #[tracing::instrument(name = "UpdateQueue", skip_all, fields(queue = %req.get_ref().name))]
    async fn update_queue(
        &self,
        req: Request<pb::UpdateQueueRequest>,
    ) -> Result<Response<pb::UpdateQueueResponse>, Status> {
        let r = req.into_inner();
        check_queue("name", &r.name)?;
        let limits = validate_limits(&r)?;
        let q = self
            .store
            .set_limits(&r.name, limits)
            .await
            .map_err(JobError::from)?;
        tracing::info!(queue = %r.name, ?limits, "queue limits set");
        Ok(Response::new(pb::UpdateQueueResponse {
            queue: Some(queue_to_pb(q)),
        }))
    }

    #[tracing::instrument(name = "ListQueues", skip_all)]
    async fn list_queues(
        &self,
        _req: Request<pb::ListQueuesRequest>,
    ) -> Result<Response<pb::ListQueuesResponse>, Status> {
        let queues = self.store.queues().await.map_err(JobError::from)?;
        Ok(Response::new(pb::ListQueuesResponse {
            queues: queues.into_iter().map(queue_to_pb).collect(),
        }))
    }
}
