//! `pfc.jobs.v1.ScheduleService` ([`Schedules`]) and the scheduler duty of a jobs server
//! ([`start`]): periodic jobs stored beside the job store, each tick submitted exactly once
//! by the elected scheduler (`pfc_schedule`, `docs/design.md` "Schedules").
//!
//! A schedule's job is a `SubmitJobRequest` checked by the same rules as `SubmitJob`
//! ([`Jobs::check_submit`]), at creation and again at every tick.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pfc_proto::jobs::v1 as pb;
use pfc_proto::jobs::v1::schedule_service_server::{ScheduleService, ScheduleServiceServer};
use pfc_proto::timestamp_from_ms;
use pfc_queue::{JobStore, StoreArgs};
use pfc_schedule::declared::{self, DeclaredSchedules};
use pfc_schedule::{
    CatchUp, MemoryScheduleStore, RedisScheduleStore, Schedule, ScheduleError, ScheduleState,
    ScheduleStore, Scheduler, Source, Spec,
};
use tonic::{Request, Response, Status};

use crate::convert::status_to_pb;
use crate::error::JobError;
use crate::service::Jobs;
use crate::validate::{is_valid_kind, truncate, MAX_KIND};

/// The gRPC service name, as health checks and reflection know it.
pub const SCHEDULE_SERVICE_NAME: &str = "pfc.jobs.v1.ScheduleService";

/// Schedules settings of a jobs server (`pfc jobs`, `pfc dev`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ScheduleArgs {
    /// JSON file of schedules to create (or update) at startup, so they exist after a fresh
    /// install: `{"schedules": [{"name", "cron" | "every", "time_zone", "catch_up", "job"}]}`.
    #[arg(long, env = "PFC_SCHEDULES_FILE")]
    pub schedules_file: Option<PathBuf>,
}

/// The ScheduleService: cheap to clone.
#[derive(Clone)]
pub struct Schedules {
    store: Arc<dyn ScheduleStore>,
    jobs_store: Arc<dyn JobStore>,
    jobs: Jobs,
}

/// Opens the schedule store beside the job store: Redis (same URL and settings, own hash
/// slot) when a URL is set, memory otherwise.
pub fn open_store(args: &StoreArgs) -> pfc_queue::Result<Arc<dyn ScheduleStore>> {
    Ok(match args.redis_connections()? {
        Some(conns) => Arc::new(RedisScheduleStore::new(conns)),
        None => Arc::new(MemoryScheduleStore::new()),
    })
}

/// Everything a schedule call can fail with, as a status (the one mapping).
fn status(e: ScheduleError) -> Status {
    match e {
        e @ ScheduleError::NotFound(_) => Status::not_found(e.to_string()),
        e @ ScheduleError::AlreadyExists(_) => Status::already_exists(e.to_string()),
        e @ ScheduleError::Full(_) => Status::resource_exhausted(e.to_string()),
        e if e.is_unavailable() => {
            tracing::warn!(error = %e, "schedule store unavailable");
            Status::unavailable("schedule store unavailable; retry later")
        }
        e => {
            tracing::error!(error = %e, "schedule store error");
            Status::internal("internal schedule store error")
        }
    }
}

fn invalid(m: impl Into<String>) -> Status {
    Status::invalid_argument(m.into())
}

impl Schedules {
    /// A service over `store`, submitting through `jobs_store` with `jobs`' submit rules.
    pub fn new(store: Arc<dyn ScheduleStore>, jobs_store: Arc<dyn JobStore>, jobs: Jobs) -> Self {
        Self {
            store,
            jobs_store,
            jobs,
        }
    }

    /// As a tonic service, with the JobService's decode limit (a template carries a payload).
    pub fn into_server(self, decode_limit: usize) -> ScheduleServiceServer<Self> {
        ScheduleServiceServer::new(self).max_decoding_message_size(decode_limit)
    }

    /// The scheduler that fires these schedules (each tick's job built by the submit rules).
    pub fn scheduler(&self) -> Scheduler {
        let jobs = self.jobs.clone();
        Scheduler::new(
            self.store.clone(),
            self.jobs_store.clone(),
            Arc::new(move |s: &Schedule| jobs.check_submit(&s.job).map_err(|e| e.to_string())),
        )
    }

    /// Checks a job template: as SubmitJob would, and without the fields the scheduler owns.
    fn check_job(
        &self,
        job: Option<&pb::SubmitJobRequest>,
    ) -> Result<pb::SubmitJobRequest, Status> {
        let Some(job) = job else {
            return Err(invalid(
                "job is required: the job each tick submits (kind, text or payload, ...)",
            ));
        };
        if !job.idempotency_key.is_empty() {
            return Err(invalid(
                "job.idempotency_key must be empty: the scheduler sets it to schedule:<name>:<tick-ms>",
            ));
        }
        if job.run_at.is_some() || job.delay.is_some() {
            return Err(invalid(
                "job.run_at and job.delay must be empty: a tick's job runs when the tick is due",
            ));
        }
        self.jobs.check_submit(job).map_err(|e| match e {
            JobError::InvalidArgument(m) => invalid(format!("job.{m}")),
            e => Status::from(e),
        })?;
        Ok(job.clone())
    }

    /// A create request as the schedule to store (`now` anchors an interval).
    fn check(&self, s: &pb::Schedule, now: i64) -> Result<Schedule, Status> {
        if !is_valid_kind(&s.name) {
            return Err(invalid(format!(
                "name {:?} is malformed: 1 to {MAX_KIND} characters of a-z, 0-9, '.', '_' or '-', \
                 starting with a letter or digit (e.g. \"nightly-report\")",
                truncate(&s.name, 80)
            )));
        }
        let spec = match (s.cron.is_empty(), &s.every) {
            (false, None) => Spec::cron(&s.cron, &s.time_zone),
            (true, Some(d)) => {
                if !s.time_zone.is_empty() {
                    return Err(invalid(
                        "time_zone applies to cron only; an interval has no zone",
                    ));
                }
                let ms = d
                    .seconds
                    .saturating_mul(1000)
                    .saturating_add(i64::from(d.nanos) / 1_000_000);
                Spec::every(ms, now)
            }
            _ => return Err(invalid("set exactly one of cron and every")),
        }
        .map_err(|e| invalid(e.to_string()))?;
        let catch_up = match pb::CatchUp::try_from(s.catch_up) {
            Ok(pb::CatchUp::Unspecified | pb::CatchUp::FireOnce) => CatchUp::FireOnce,
            Ok(pb::CatchUp::Skip) => CatchUp::Skip,
            Err(_) => {
                return Err(invalid(format!(
                    "catch_up {} is unknown; use CATCH_UP_FIRE_ONCE (1) or CATCH_UP_SKIP (2)",
                    s.catch_up
                )))
            }
        };
        Ok(Schedule {
            name: s.name.clone(),
            spec,
            job: self.check_job(s.job.as_ref())?,
            catch_up,
            paused: s.paused,
            source: Source::Api,
            created_ms: now,
        })
    }

    /// The protobuf view, with the last job's current status.
    async fn view(&self, st: ScheduleState) -> pb::Schedule {
        let last_status = match st.last.as_ref().and_then(|l| l.job_id.as_deref()) {
            Some(id) => match self.jobs_store.get(id).await {
                Ok(Some(j)) => status_to_pb(j.status),
                _ => pb::JobStatus::Unspecified,
            },
            None => pb::JobStatus::Unspecified,
        };
        to_pb(st, last_status)
    }

    async fn get_state(&self, name: &str) -> Result<ScheduleState, Status> {
        self.store
            .get(name)
            .await
            .map_err(status)?
            .ok_or_else(|| status(ScheduleError::NotFound(name.to_owned())))
    }

    /// Checks every schedule of the file now (a bad file fails the start), then returns them.
    pub fn check_declared(&self, file: &DeclaredSchedules) -> anyhow::Result<Vec<Schedule>> {
        let mut out = Vec::new();
        for d in &file.schedules {
            let s = d.to_schedule(0)?;
            if !is_valid_kind(&s.name) {
                anyhow::bail!("schedules file: name {:?} is malformed", s.name);
            }
            self.check_job(Some(&s.job)).map_err(|e| {
                anyhow::anyhow!(
                    "schedule {:?} in the schedules file: {}",
                    s.name,
                    e.message()
                )
            })?;
            out.push(s);
        }
        Ok(out)
    }
}

/// Store state → protobuf.
fn to_pb(st: ScheduleState, last_status: pb::JobStatus) -> pb::Schedule {
    let s = st.schedule;
    let (cron, time_zone, every) = match s.spec {
        Spec::Cron { expr, time_zone } => (expr, time_zone, None),
        Spec::Every { every_ms, .. } => (
            String::new(),
            String::new(),
            Some(prost_types::Duration {
                seconds: every_ms / 1000,
                nanos: ((every_ms % 1000) * 1_000_000) as i32,
            }),
        ),
    };
    let last = st.last;
    pb::Schedule {
        name: s.name,
        cron,
        time_zone,
        every,
        job: Some(s.job),
        catch_up: match s.catch_up {
            CatchUp::FireOnce => pb::CatchUp::FireOnce,
            CatchUp::Skip => pb::CatchUp::Skip,
        } as i32,
        paused: s.paused,
        next_fire_time: st.next_ms.map(timestamp_from_ms),
        last_fire_time: last.as_ref().map(|l| timestamp_from_ms(l.tick_ms)),
        last_job_id: last
            .as_ref()
            .and_then(|l| l.job_id.clone())
            .unwrap_or_default(),
        last_job_status: last_status as i32,
        last_error: last.and_then(|l| l.error).unwrap_or_default(),
        create_time: Some(timestamp_from_ms(s.created_ms)),
        source: match s.source {
            Source::Api => pb::ScheduleSource::Api,
            Source::Config => pb::ScheduleSource::Config,
        } as i32,
    }
}

#[tonic::async_trait]
impl ScheduleService for Schedules {
    #[tracing::instrument(name = "CreateSchedule", skip_all)]
    async fn create_schedule(
        &self,
        req: Request<pb::CreateScheduleRequest>,
    ) -> Result<Response<pb::CreateScheduleResponse>, Status> {
        let Some(s) = req.get_ref().schedule.as_ref() else {
            return Err(invalid("schedule is required"));
        };
        let now = self.store.now().await.map_err(status)?;
        let schedule = self.check(s, now)?;
        let next = if schedule.paused {
            None
        } else {
            schedule.spec.next_after(now)
        };
        self.store.create(&schedule, next).await.map_err(status)?;
        tracing::info!(schedule = %schedule.name, spec = %schedule.spec.describe(), "schedule created");
        let st = self.get_state(&schedule.name).await?;
        Ok(Response::new(pb::CreateScheduleResponse {
            schedule: Some(self.view(st).await),
        }))
    }

    #[tracing::instrument(name = "GetSchedule", skip_all, fields(name = %req.get_ref().name))]
    async fn get_schedule(
        &self,
        req: Request<pb::GetScheduleRequest>,
    ) -> Result<Response<pb::GetScheduleResponse>, Status> {
        let st = self.get_state(&req.get_ref().name).await?;
        Ok(Response::new(pb::GetScheduleResponse {
            schedule: Some(self.view(st).await),
        }))
    }

    #[tracing::instrument(name = "ListSchedules", skip_all)]
    async fn list_schedules(
        &self,
        _req: Request<pb::ListSchedulesRequest>,
    ) -> Result<Response<pb::ListSchedulesResponse>, Status> {
        let all = self.store.list().await.map_err(status)?;
        // one GetJob per schedule for its last job's status, 16 at a time, order kept
        let schedules = futures::stream::iter(all)
            .map(|st| self.view(st))
            .buffered(16)
            .collect()
            .await;
        Ok(Response::new(pb::ListSchedulesResponse { schedules }))
    }

    #[tracing::instrument(name = "UpdateSchedule", skip_all, fields(name = %req.get_ref().name))]
    async fn update_schedule(
        &self,
        req: Request<pb::UpdateScheduleRequest>,
    ) -> Result<Response<pb::UpdateScheduleResponse>, Status> {
        let r = req.get_ref();
        if let Some(paused) = r.paused {
            // compare-and-set on the definition; a concurrent writer makes us read again
            let mut applied = false;
            for _ in 0..5 {
                let cur = self.get_state(&r.name).await?;
                if cur.schedule.paused == paused {
                    applied = true;
                    break;
                }
                let mut new = cur.schedule.clone();
                new.paused = paused;
                let next = if paused {
                    None
                } else {
                    let now = self.store.now().await.map_err(status)?;
                    new.spec.next_after(now)
                };
                if self
                    .store
                    .replace(&cur.schedule, &new, Some(next))
                    .await
                    .map_err(status)?
                {
                    tracing::info!(schedule = %r.name, paused, "schedule updated");
                    applied = true;
                    break;
                }
            }
            if !applied {
                return Err(Status::aborted("the schedule kept changing; retry"));
            }
        }
        let st = self.get_state(&r.name).await?;
        Ok(Response::new(pb::UpdateScheduleResponse {
            schedule: Some(self.view(st).await),
        }))
    }

    #[tracing::instrument(name = "DeleteSchedule", skip_all, fields(name = %req.get_ref().name))]
    async fn delete_schedule(
        &self,
        req: Request<pb::DeleteScheduleRequest>,
    ) -> Result<Response<pb::DeleteScheduleResponse>, Status> {
        let name = &req.get_ref().name;
        if !self.store.delete(name).await.map_err(status)? {
            return Err(status(ScheduleError::NotFound(name.clone())));
        }
        tracing::info!(schedule = %name, "schedule deleted");
        Ok(Response::new(pb::DeleteScheduleResponse {}))
    }
}

/// Sets up schedules for a jobs server: opens the store beside the job store, checks the
/// schedules file (a bad one fails the start), and spawns the duty that applies it (retrying
/// while the store is unreachable) and then runs the scheduler until `shutdown`.
pub fn start(
    store_args: &StoreArgs,
    args: &ScheduleArgs,
    jobs_store: Arc<dyn JobStore>,
    jobs: Jobs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(Schedules, tokio::task::JoinHandle<()>)> {
    use anyhow::Context;
    let store = open_store(store_args).context("failed to open the schedule store")?;
    let service = Schedules::new(store.clone(), jobs_store, jobs);
    let declared = match &args.schedules_file {
        Some(path) => {
            service.check_declared(&DeclaredSchedules::load(path).map_err(anyhow::Error::msg)?)?
        }
        None => Vec::new(),
    };
    if store_args.job_ttl < Duration::from_secs(60) {
        tracing::warn!(
            job_ttl = ?store_args.job_ttl,
            "PFC_JOB_TTL is under a minute: a schedule tick's idempotency key lives only that \
             long after its job ends (see docs/design.md, \"Schedules\")"
        );
    }
    let scheduler = service.scheduler();
    let duty = tokio::spawn(async move {
        let run = async {
            while let Err(e) = declared::apply(&*store, &declared).await {
                tracing::warn!(error = %e, "failed to apply the schedules file; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = run => {}
            _ = scheduler.run(shutdown) => {}
        }
    });
    Ok((service, duty))
}
