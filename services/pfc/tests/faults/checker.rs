//! The checker: pure logic, no I/O. It reads a [`History`] (what the client was told, what
//! the workers ran, which faults happened when) and the store's final word on every job
//! ([`Final`]), and returns the [`Violation`]s of pfc's promises plus a [`Summary`].
//!
//! The promises checked, for every job whose submit was acknowledged:
//! - it exists and reached a terminal state, once (the store's terminal counters match the
//!   terminal jobs);
//! - DONE with the right result, or FAILED only because its processor failed (a `fail` job),
//!   after all its attempts — or because the worker holding its last attempt was killed or
//!   paused past its lease (by design: the worker may have died *because* of the job);
//! - it ran at least once, and the outcome the store kept is the one reported by the delivery
//!   the store names (its `attempts` and `worker_id`): a late report from a zombie (a worker
//!   paused past its lease) never overwrote a newer delivery;
//! - one idempotency key, one job.
//!
//! Jobs run more than once are at-least-once working as designed: counted, not failed.
//!
//! Times are Unix milliseconds. Worker log times and Redis `TIME` come from the same host
//! clock, so they are compared directly (with [`CheckConfig::tolerance_ms`] for rounding).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// Error of the `fail` processor (services/processors).
pub const FAIL_ERROR: &str = "the fail processor always fails";

/// How a job should end, from its spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// DONE with this result.
    Done(String),
    /// FAILED by its processor with this error, after `max_attempts` deliveries.
    ProcessorFails(String),
}

/// One job the client submits (under one idempotency key, however many tries it takes).
#[derive(Clone, Debug)]
pub struct JobSpec {
    /// Idempotency key (unique per spec).
    pub key: String,
    /// Processor.
    pub kind: String,
    /// Input.
    pub text: String,
    /// Deliveries allowed.
    pub max_attempts: u32,
    /// The expected end.
    pub expect: Expect,
}

/// The answer to one submit call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Accepted: the job id.
    Accepted(String),
    /// An error (gRPC code and message, or a client-side timeout).
    Error(String),
}

/// One submit call and its answer.
#[derive(Clone, Debug)]
pub struct SubmitRecord {
    /// The spec's idempotency key.
    pub key: String,
    /// When the call was made.
    pub at_ms: i64,
    /// The answer.
    pub answer: Answer,
}

/// How one processor run ended (the worker's `outcome` log field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Success.
    Done,
    /// Retryable failure.
    Retry,
    /// Permanent failure.
    Fail,
}

/// One processor run, from a worker's "job finished" log line.
#[derive(Clone, Debug)]
pub struct Run {
    /// The job.
    pub job_id: String,
    /// The delivery's fencing token (`attempt`, or `delivery`).
    pub attempt: u64,
    /// The worker that ran it.
    pub worker: String,
    /// How it ended.
    pub outcome: RunOutcome,
    /// When the processor returned.
    pub at_ms: i64,
}

/// A report the store refused as stale (the worker's "report ignored" log line).
#[derive(Clone, Debug)]
pub struct StaleReport {
    /// The job.
    pub job_id: String,
    /// The worker.
    pub worker: String,
}

/// The kinds of fault the suite injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// `kill -9` of a worker (restarted).
    WorkerKill,
    /// `kill -9` of a jobs server (restarted; clients fail over).
    JobsKill,
    /// SIGSTOP of Redis for longer than the lease, then SIGCONT.
    RedisPause,
    /// SIGKILL of Redis and a restart from its append-only file.
    RedisRestart,
    /// SIGSTOP of a worker past its lease, then SIGCONT (the zombie).
    WorkerPause,
    /// SIGTERM of a worker (graceful stop: it gives unfinished jobs back), then a new one.
    WorkerTerm,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::WorkerKill,
        FaultKind::JobsKill,
        FaultKind::RedisPause,
        FaultKind::RedisRestart,
        FaultKind::WorkerPause,
        FaultKind::WorkerTerm,
    ];
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultKind::WorkerKill => "kill -9 worker",
            FaultKind::JobsKill => "kill -9 jobs server",
            FaultKind::RedisPause => "SIGSTOP redis",
            FaultKind::RedisRestart => "restart redis (SIGKILL, AOF)",
            FaultKind::WorkerPause => "SIGSTOP worker (zombie)",
            FaultKind::WorkerTerm => "SIGTERM worker (graceful)",
        })
    }
}

/// One injected fault.
#[derive(Clone, Debug)]
pub struct FaultRecord {
    /// What.
    pub kind: FaultKind,
    /// On what: a worker id, `jobs-N` or `redis`.
    pub target: String,
    /// When it began (kill, SIGSTOP).
    pub start_ms: i64,
    /// When it was undone (restart ready, SIGCONT).
    pub end_ms: i64,
    /// For worker faults: the jobs the victim held when it was hit (id, attempts then).
    pub held: Vec<(String, u32)>,
}

/// Everything recorded while the suite ran.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Job specs, one per idempotency key.
    pub specs: Vec<JobSpec>,
    /// Every submit call.
    pub submits: Vec<SubmitRecord>,
    /// Every processor run the workers logged.
    pub runs: Vec<Run>,
    /// Every report refused as stale.
    pub stale: Vec<StaleReport>,
    /// Every fault.
    pub faults: Vec<FaultRecord>,
    /// pfc processes that exited by themselves (crashes), by name.
    pub exits: Vec<String>,
}

/// A job's status in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Waiting for its run time or a retry.
    Scheduled,
    /// In the queue.
    Queued,
    /// Leased.
    Processing,
    /// Finished.
    Done,
    /// Failed for good.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl Status {
    fn terminal(self) -> bool {
        matches!(self, Status::Done | Status::Failed | Status::Cancelled)
    }
}

/// A job as the store has it at the end (from `GetJob`/`ListJobs`).
#[derive(Clone, Debug)]
pub struct FinalJob {
    /// Id.
    pub id: String,
    /// Idempotency key.
    pub key: String,
    /// Status.
    pub status: Status,
    /// Result, when DONE.
    pub result: Option<String>,
    /// Last error.
    pub error: Option<String>,
    /// Deliveries so far (the last delivery's fencing token).
    pub attempts: u32,
    /// Deliveries allowed.
    pub max_attempts: u32,
    /// Worker of the last delivery.
    pub worker_id: String,
    /// Start of the last delivery.
    pub started_at_ms: Option<i64>,
    /// When it became terminal.
    pub finished_at_ms: Option<i64>,
}

/// The store's terminal counters (`GetStats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Jobs accepted.
    pub submitted: u64,
    /// DONE transitions.
    pub done: u64,
    /// FAILED transitions.
    pub failed: u64,
    /// CANCELLED transitions.
    pub cancelled: u64,
}

/// The store's final word.
#[derive(Clone, Debug, Default)]
pub struct Final {
    /// Every job read, by id (the acknowledged ones, plus whatever `ListJobs` listed); an
    /// acknowledged id missing here was NOT_FOUND.
    pub jobs: BTreeMap<String, FinalJob>,
    /// True when `jobs` is the whole store (`ListJobs` paged to the end).
    pub complete: bool,
    /// The counters.
    pub totals: Totals,
}

/// Checker settings.
#[derive(Clone, Copy, Debug)]
pub struct CheckConfig {
    /// The store's lease.
    pub lease_ms: i64,
    /// Slack when comparing a log time with a store time (ms rounding).
    pub tolerance_ms: i64,
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self {
            lease_ms: 3000,
            tolerance_ms: 5,
        }
    }
}

/// A broken promise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// An acknowledged job the store does not know.
    Lost {
        /// Key.
        key: String,
        /// Id.
        job_id: String,
    },
    /// A job that never reached a terminal state.
    NotTerminal {
        /// Id.
        job_id: String,
        /// Where it is stuck.
        status: Status,
    },
    /// DONE with another result than its processor computes.
    WrongResult {
        /// Id.
        job_id: String,
        /// Expected.
        expected: String,
        /// Stored.
        got: Option<String>,
    },
    /// DONE although its processor always fails, or CANCELLED although nobody cancelled.
    WrongOutcome {
        /// Id.
        job_id: String,
        /// What happened.
        detail: String,
    },
    /// FAILED with "lease expired" while the worker holding it was alive and running.
    LeaseExpiredWorkerAlive {
        /// Id.
        job_id: String,
        /// The worker.
        worker: String,
        /// The store's error.
        error: String,
        /// True when Redis was paused or restarting just before (the lease clock ran while
        /// nobody could renew).
        redis_outage: bool,
        /// True when that worker never finished this delivery (e.g. a lost take reply).
        never_ran: bool,
        /// True when that worker had been stopped gracefully (SIGTERM) before: it should
        /// have given the job back.
        graceful_stop: bool,
    },
    /// FAILED for another reason than its processor failing.
    UnexpectedFailure {
        /// Id.
        job_id: String,
        /// The store's error.
        error: String,
    },
    /// FAILED by its processor with attempts left.
    GaveUpEarly {
        /// Id.
        job_id: String,
        /// Deliveries made.
        attempts: u32,
        /// Deliveries allowed.
        max_attempts: u32,
    },
    /// Terminal by a processor outcome, but no worker ever finished running it.
    NeverRan {
        /// Id.
        job_id: String,
    },
    /// The stored outcome is not the report of the delivery the store names: another
    /// delivery's (a zombie's) report was applied.
    NotFromAcceptedDelivery {
        /// Id.
        job_id: String,
        /// The delivery the store names.
        attempt: u32,
        /// Its worker.
        worker: String,
        /// Why.
        detail: String,
    },
    /// Two jobs for one idempotency key.
    IdempotencyBroken {
        /// Key.
        key: String,
        /// The job ids.
        ids: Vec<String>,
    },
    /// A pfc process exited by itself under the faults, or did not stop on SIGTERM.
    ProcessExited {
        /// Which.
        name: String,
    },
    /// The terminal counters disagree with the terminal jobs: some job reached a terminal
    /// state more than once (or a transition was not counted).
    TerminalCount {
        /// done + failed + cancelled counters.
        transitions: u64,
        /// Terminal jobs in the store.
        terminal_jobs: u64,
    },
}

impl Violation {
    /// A short name of the violation's type, for counts.
    pub fn label(&self) -> &'static str {
        match self {
            Violation::Lost { .. } => "acknowledged job lost",
            Violation::NotTerminal { .. } => "job never reached a terminal state",
            Violation::WrongResult { .. } => "wrong result",
            Violation::WrongOutcome { .. } => "wrong outcome",
            Violation::LeaseExpiredWorkerAlive {
                graceful_stop: true,
                ..
            } => "FAILED 'lease expired' after its worker's graceful stop (not given back)",
            Violation::LeaseExpiredWorkerAlive {
                redis_outage: true, ..
            } => "FAILED 'lease expired' after a Redis outage (worker alive)",
            Violation::LeaseExpiredWorkerAlive {
                never_ran: true, ..
            } => "FAILED 'lease expired' without running (worker alive)",
            Violation::LeaseExpiredWorkerAlive { .. } => "FAILED 'lease expired' (worker alive)",
            Violation::UnexpectedFailure { .. } => "FAILED without its processor failing",
            Violation::GaveUpEarly { .. } => "FAILED with attempts left",
            Violation::NeverRan { .. } => "terminal without ever running",
            Violation::NotFromAcceptedDelivery { .. } => {
                "stored outcome not from the accepted delivery (stale report applied)"
            }
            Violation::IdempotencyBroken { .. } => "two jobs for one idempotency key",
            Violation::ProcessExited { .. } => "pfc process crashed (or hung on SIGTERM)",
            Violation::TerminalCount { .. } => "terminal transitions != terminal jobs",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.label())?;
        match self {
            Violation::Lost { key, job_id } => write!(f, "job {job_id} (key {key})"),
            Violation::NotTerminal { job_id, status } => write!(f, "job {job_id} is {status:?}"),
            Violation::WrongResult {
                job_id,
                expected,
                got,
            } => write!(f, "job {job_id}: expected {expected:?}, got {got:?}"),
            Violation::WrongOutcome { job_id, detail } => write!(f, "job {job_id}: {detail}"),
            Violation::LeaseExpiredWorkerAlive {
                job_id,
                worker,
                error,
                ..
            } => write!(f, "job {job_id} on worker {worker}: {error:?}"),
            Violation::UnexpectedFailure { job_id, error } => {
                write!(f, "job {job_id}: {error:?}")
            }
            Violation::GaveUpEarly {
                job_id,
                attempts,
                max_attempts,
            } => write!(f, "job {job_id}: {attempts} of {max_attempts} deliveries"),
            Violation::NeverRan { job_id } => write!(f, "job {job_id}"),
            Violation::NotFromAcceptedDelivery {
                job_id,
                attempt,
                worker,
                detail,
            } => write!(f, "job {job_id} delivery {attempt} on {worker}: {detail}"),
            Violation::IdempotencyBroken { key, ids } => write!(f, "key {key}: {ids:?}"),
            Violation::ProcessExited { name } => f.write_str(name),
            Violation::TerminalCount {
                transitions,
                terminal_jobs,
            } => write!(
                f,
                "{transitions} terminal transitions counted, {terminal_jobs} terminal jobs"
            ),
        }
    }
}

/// Figures of a run.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Faults injected, by kind.
    pub faults: BTreeMap<FaultKind, usize>,
    /// Job specs (idempotency keys).
    pub specs: usize,
    /// Submit calls.
    pub submit_calls: usize,
    /// Submit calls answered with an error (then retried).
    pub submit_errors: usize,
    /// Specs acknowledged with a job id.
    pub acknowledged: usize,
    /// Specs never acknowledged (the client gave up).
    pub unacknowledged: usize,
    /// Jobs in the store whose submit was never acknowledged.
    pub orphans: usize,
    /// Acknowledged jobs DONE.
    pub done: usize,
    /// Acknowledged jobs FAILED by their processor, as expected.
    pub failed_by_processor: usize,
    /// Acknowledged jobs FAILED because their worker was killed/paused on their last attempt.
    pub failed_with_worker: usize,
    /// Processor runs logged.
    pub runs: usize,
    /// Jobs run more often than they needed (retries after a processor failure excluded).
    pub duplicated_jobs: usize,
    /// Runs beyond the needed ones, over all jobs.
    pub extra_runs: usize,
    /// Reports refused as stale.
    pub stale_reports: usize,
    /// Jobs a zombie held when it was paused.
    pub zombie_held: usize,
    /// Reports of a zombie refused as stale, for jobs it held when paused.
    pub zombie_refused: usize,
    /// Jobs a zombie held whose stored outcome is the zombie's (it reported before anyone
    /// took the job over: legitimate, its delivery was still the current one).
    pub zombie_accepted: usize,
    /// Longest time from a spec's first submit call to the one that was acknowledged: (ms, key).
    pub worst_ack: Option<(i64, String)>,
    /// Jobs a killed or paused worker held that another worker started again.
    pub redelivered: usize,
    /// Worst time from a worker fault to another worker starting one of its jobs: (ms, job).
    pub worst_redelivery: Option<(i64, String)>,
}

/// Violations and figures.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every broken promise.
    pub violations: Vec<Violation>,
    /// Figures.
    pub summary: Summary,
}

impl Report {
    /// Violation counts by type.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for v in &self.violations {
            *m.entry(v.label()).or_insert(0) += 1;
        }
        m
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        writeln!(f, "faults injected:")?;
        for k in FaultKind::ALL {
            writeln!(
                f,
                "  {:<32} {}",
                k.to_string(),
                s.faults.get(&k).unwrap_or(&0)
            )?;
        }
        writeln!(
            f,
            "jobs: {} specs, {} acknowledged, {} never acknowledged (client gave up), {} orphans (created, answer lost)",
            s.specs, s.acknowledged, s.unacknowledged, s.orphans
        )?;
        writeln!(
            f,
            "submits: {} calls, {} answered with an error (retried with the same idempotency key)",
            s.submit_calls, s.submit_errors
        )?;
        writeln!(
            f,
            "outcomes: {} done, {} failed by their processor (expected), {} failed with their killed/paused worker (by design)",
            s.done, s.failed_by_processor, s.failed_with_worker
        )?;
        writeln!(
            f,
            "runs: {} processor runs; duplicates: {} jobs ran more often than needed ({} extra runs; retries after a processor failure not counted); {} stale reports refused",
            s.runs, s.duplicated_jobs, s.extra_runs, s.stale_reports
        )?;
        writeln!(
            f,
            "zombies: held {} jobs when paused; {} of their reports refused as stale, {} jobs kept the zombie's outcome (not taken over in time)",
            s.zombie_held, s.zombie_refused, s.zombie_accepted
        )?;
        if let Some((ms, key)) = &s.worst_ack {
            writeln!(
                f,
                "submit: worst time from first call to acknowledgement {:.2} s ({key})",
                *ms as f64 / 1000.0
            )?;
        }
        match &s.worst_redelivery {
            Some((ms, job)) => writeln!(
                f,
                "redelivery: {} jobs of killed/paused workers restarted elsewhere; worst {:.2} s (job {job})",
                s.redelivered,
                *ms as f64 / 1000.0
            )?,
            None => writeln!(f, "redelivery: no job of a killed/paused worker was restarted elsewhere")?,
        }
        if self.violations.is_empty() {
            writeln!(f, "violations: none")?;
        } else {
            writeln!(f, "violations: {}", self.violations.len())?;
            for (label, n) in self.counts() {
                writeln!(f, "  {n:>6}  {label}")?;
                for v in self
                    .violations
                    .iter()
                    .filter(|v| v.label() == label)
                    .take(3)
                {
                    writeln!(f, "          e.g. {v}")?;
                }
            }
        }
        Ok(())
    }
}

/// Checks `history` against the store's final word.
pub fn check(history: &History, fin: &Final, cfg: &CheckConfig) -> Report {
    let mut violations = Vec::new();
    let mut s = Summary {
        specs: history.specs.len(),
        submit_calls: history.submits.len(),
        submit_errors: history
            .submits
            .iter()
            .filter(|r| matches!(r.answer, Answer::Error(_)))
            .count(),
        runs: history.runs.len(),
        stale_reports: history.stale.len(),
        ..Summary::default()
    };
    for f in &history.faults {
        *s.faults.entry(f.kind).or_insert(0) += 1;
    }
    for name in &history.exits {
        violations.push(Violation::ProcessExited { name: name.clone() });
    }

    // one key, one job: ids from the answers and from the store
    let mut ids_by_key: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in &history.submits {
        if let Answer::Accepted(id) = &r.answer {
            ids_by_key.entry(&r.key).or_default().insert(id);
        }
    }
    let acked: BTreeMap<&str, &str> = history
        .submits
        .iter()
        .filter_map(|r| match &r.answer {
            Answer::Accepted(id) => Some((r.key.as_str(), id.as_str())),
            Answer::Error(_) => None,
        })
        .rev() // the first answer wins
        .collect();
    let spec_keys: BTreeSet<&str> = history.specs.iter().map(|x| x.key.as_str()).collect();
    let mut first_call: HashMap<&str, i64> = HashMap::new();
    for r in &history.submits {
        let first = *first_call.entry(&r.key).or_insert(r.at_ms);
        if matches!(r.answer, Answer::Accepted(_)) {
            let d = r.at_ms - first;
            if s.worst_ack.as_ref().is_none_or(|(w, _)| d > *w) {
                s.worst_ack = Some((d, r.key.clone()));
            }
        }
    }
    for j in fin.jobs.values() {
        if spec_keys.contains(j.key.as_str()) {
            let ids = ids_by_key.entry(&j.key).or_default();
            if !acked.contains_key(j.key.as_str()) {
                s.orphans += 1;
            }
            ids.insert(&j.id);
        }
    }
    for (key, ids) in &ids_by_key {
        if ids.len() > 1 {
            violations.push(Violation::IdempotencyBroken {
                key: (*key).to_owned(),
                ids: ids.iter().map(|i| (*i).to_owned()).collect(),
            });
        }
    }

    let mut runs_by_job: HashMap<&str, Vec<&Run>> = HashMap::new();
    for r in &history.runs {
        runs_by_job.entry(&r.job_id).or_default().push(r);
    }
    for runs in runs_by_job.values() {
        let extra = extra_runs(runs);
        if extra > 0 {
            s.duplicated_jobs += 1;
            s.extra_runs += extra;
        }
    }

    for spec in &history.specs {
        let Some(&id) = acked.get(spec.key.as_str()) else {
            s.unacknowledged += 1;
            continue;
        };
        s.acknowledged += 1;
        let Some(job) = fin.jobs.get(id) else {
            violations.push(Violation::Lost {
                key: spec.key.clone(),
                job_id: id.to_owned(),
            });
            continue;
        };
        let runs = runs_by_job.get(id).map(Vec::as_slice).unwrap_or(&[]);
        check_job(history, cfg, spec, job, runs, &mut s, &mut violations);
    }

    if fin.complete {
        let terminal = fin.jobs.values().filter(|j| j.status.terminal()).count() as u64;
        let t = fin.totals;
        let transitions = t.done + t.failed + t.cancelled;
        if transitions != terminal {
            violations.push(Violation::TerminalCount {
                transitions,
                terminal_jobs: terminal,
            });
        }
    }

    redelivery(history, fin, &mut s);
    Report {
        violations,
        summary: s,
    }
}

fn check_job(
    history: &History,
    cfg: &CheckConfig,
    spec: &JobSpec,
    job: &FinalJob,
    runs: &[&Run],
    s: &mut Summary,
    violations: &mut Vec<Violation>,
) {
    let id = job.id.clone();
    match job.status {
        Status::Done => {
            match &spec.expect {
                Expect::Done(want) => {
                    if job.result.as_deref() != Some(want.as_str()) {
                        violations.push(Violation::WrongResult {
                            job_id: id.clone(),
                            expected: want.clone(),
                            got: job.result.clone(),
                        });
                    }
                }
                Expect::ProcessorFails(_) => violations.push(Violation::WrongOutcome {
                    job_id: id.clone(),
                    detail: format!("DONE with {:?}, but its processor always fails", job.result),
                }),
            }
            s.done += 1;
            accepted_delivery(cfg, job, runs, &[RunOutcome::Done], violations);
        }
        Status::Failed => {
            let error = job.error.clone().unwrap_or_default();
            let by_processor = matches!(&spec.expect, Expect::ProcessorFails(e) if *e == error);
            if by_processor {
                s.failed_by_processor += 1;
                if job.attempts < job.max_attempts {
                    violations.push(Violation::GaveUpEarly {
                        job_id: id.clone(),
                        attempts: job.attempts,
                        max_attempts: job.max_attempts,
                    });
                }
                accepted_delivery(
                    cfg,
                    job,
                    runs,
                    &[RunOutcome::Retry, RunOutcome::Fail],
                    violations,
                );
            } else if error.starts_with("lease expired") {
                let at = job.finished_at_ms.unwrap_or(i64::MAX);
                if worker_fault_explains(history, cfg, &job.worker_id, at) {
                    s.failed_with_worker += 1;
                } else {
                    let ran = runs
                        .iter()
                        .any(|r| r.worker == job.worker_id && r.attempt == u64::from(job.attempts));
                    violations.push(Violation::LeaseExpiredWorkerAlive {
                        job_id: id.clone(),
                        worker: job.worker_id.clone(),
                        error,
                        redis_outage: redis_outage_before(history, cfg, at),
                        never_ran: !ran,
                        graceful_stop: history.faults.iter().any(|f| {
                            f.kind == FaultKind::WorkerTerm
                                && f.target == job.worker_id
                                && f.start_ms <= at
                        }),
                    });
                }
            } else {
                violations.push(Violation::UnexpectedFailure {
                    job_id: id.clone(),
                    error,
                });
            }
        }
        Status::Cancelled => violations.push(Violation::WrongOutcome {
            job_id: id.clone(),
            detail: "CANCELLED, but nobody cancelled it".into(),
        }),
        status => violations.push(Violation::NotTerminal {
            job_id: id.clone(),
            status,
        }),
    }
}

/// The store's outcome must be the report of the delivery it names: that worker finished
/// that delivery with a matching outcome, before the store recorded it.
fn accepted_delivery(
    cfg: &CheckConfig,
    job: &FinalJob,
    runs: &[&Run],
    outcomes: &[RunOutcome],
    violations: &mut Vec<Violation>,
) {
    if runs.is_empty() {
        violations.push(Violation::NeverRan {
            job_id: job.id.clone(),
        });
        return;
    }
    let finished = job.finished_at_ms.unwrap_or(i64::MAX);
    let own = runs
        .iter()
        .filter(|r| {
            r.attempt == u64::from(job.attempts)
                && r.worker == job.worker_id
                && outcomes.contains(&r.outcome)
        })
        .map(|r| r.at_ms)
        .min();
    let detail = match own {
        None => format!(
            "that delivery never finished; the outcome came from another run ({})",
            describe(runs)
        ),
        Some(at) if at > finished + cfg.tolerance_ms => format!(
            "that delivery finished {} ms after the store recorded the outcome; it came from another run ({})",
            at - finished,
            describe(runs)
        ),
        Some(_) => return,
    };
    violations.push(Violation::NotFromAcceptedDelivery {
        job_id: job.id.clone(),
        attempt: job.attempts,
        worker: job.worker_id.clone(),
        detail,
    });
}

/// Runs beyond what the job needed: one per failed delivery (a retry is not a duplicate)
/// and one success. A zombie's late run, or a run whose report was lost, is extra.
fn extra_runs(runs: &[&Run]) -> usize {
    let failed: BTreeSet<u64> = runs
        .iter()
        .filter(|r| r.outcome != RunOutcome::Done)
        .map(|r| r.attempt)
        .collect();
    let done = runs.iter().any(|r| r.outcome == RunOutcome::Done);
    runs.len() - failed.len() - usize::from(done)
}

fn describe(runs: &[&Run]) -> String {
    runs.iter()
        .map(|r| format!("{} #{} {:?}", r.worker, r.attempt, r.outcome))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A lease-expired failure is by design when the worker holding the job was killed before
/// it, or paused around it.
fn worker_fault_explains(history: &History, cfg: &CheckConfig, worker: &str, at: i64) -> bool {
    history.faults.iter().any(|f| {
        f.target == worker
            && match f.kind {
                FaultKind::WorkerKill => f.start_ms <= at + cfg.tolerance_ms,
                FaultKind::WorkerPause => {
                    f.start_ms <= at + cfg.tolerance_ms && at <= f.end_ms + cfg.lease_ms + 1000
                }
                _ => false,
            }
    })
}

/// Was Redis paused or restarting within a lease (plus housekeeping slack) before `at`?
fn redis_outage_before(history: &History, cfg: &CheckConfig, at: i64) -> bool {
    history.faults.iter().any(|f| {
        matches!(f.kind, FaultKind::RedisPause | FaultKind::RedisRestart)
            && f.start_ms <= at
            && at <= f.end_ms + cfg.lease_ms + 2000
    })
}

fn redelivery(history: &History, fin: &Final, s: &mut Summary) {
    for f in &history.faults {
        if !matches!(
            f.kind,
            FaultKind::WorkerKill | FaultKind::WorkerPause | FaultKind::WorkerTerm
        ) {
            continue;
        }
        for (id, attempts) in &f.held {
            let Some(job) = fin.jobs.get(id) else {
                continue;
            };
            if f.kind == FaultKind::WorkerPause {
                s.zombie_held += 1;
                let expired = job
                    .error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("lease expired"));
                if job.worker_id == f.target
                    && job.attempts == *attempts
                    && job.status.terminal()
                    && !(job.status == Status::Failed && expired)
                {
                    s.zombie_accepted += 1;
                }
                s.zombie_refused += history
                    .stale
                    .iter()
                    .filter(|r| r.job_id == *id && r.worker == f.target)
                    .count();
            }
            // the next delivery, on another worker: its start is the store's `started_at`
            // only when there was exactly one more delivery
            if job.attempts == attempts + 1 && job.worker_id != f.target {
                if let Some(started) = job.started_at_ms {
                    s.redelivered += 1;
                    let d = started - f.start_ms;
                    if s.worst_redelivery.as_ref().is_none_or(|(w, _)| d > *w) {
                        s.worst_redelivery = Some((d, id.clone()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: &str, expect: Expect, max: u32) -> JobSpec {
        JobSpec {
            key: key.into(),
            kind: match expect {
                Expect::Done(_) => "uppercase".into(),
                Expect::ProcessorFails(_) => "fail".into(),
            },
            text: "a".into(),
            max_attempts: max,
            expect,
        }
    }

    fn ack(key: &str, id: &str) -> SubmitRecord {
        SubmitRecord {
            key: key.into(),
            at_ms: 0,
            answer: Answer::Accepted(id.into()),
        }
    }

    fn run(id: &str, attempt: u64, worker: &str, outcome: RunOutcome, at: i64) -> Run {
        Run {
            job_id: id.into(),
            attempt,
            worker: worker.into(),
            outcome,
            at_ms: at,
        }
    }

    fn done(id: &str, key: &str, result: &str, attempts: u32, worker: &str, at: i64) -> FinalJob {
        FinalJob {
            id: id.into(),
            key: key.into(),
            status: Status::Done,
            result: Some(result.into()),
            error: None,
            attempts,
            max_attempts: 3,
            worker_id: worker.into(),
            started_at_ms: Some(at - 10),
            finished_at_ms: Some(at),
        }
    }

    fn failed(id: &str, key: &str, error: &str, attempts: u32, worker: &str, at: i64) -> FinalJob {
        FinalJob {
            status: Status::Failed,
            result: None,
            error: Some(error.into()),
            max_attempts: attempts,
            ..done(id, key, "", attempts, worker, at)
        }
    }

    fn fin(jobs: Vec<FinalJob>, totals: Totals) -> Final {
        Final {
            jobs: jobs.into_iter().map(|j| (j.id.clone(), j)).collect(),
            complete: true,
            totals,
        }
    }

    fn totals(done: u64, failed: u64) -> Totals {
        Totals {
            submitted: done + failed,
            done,
            failed,
            cancelled: 0,
        }
    }

    fn labels(r: &Report) -> Vec<&'static str> {
        r.violations.iter().map(Violation::label).collect()
    }

    /// A clean history passes, and a duplicate run is counted, not failed.
    #[test]
    fn clean_history_with_a_duplicate_passes() {
        let h = History {
            specs: vec![spec("k1", Expect::Done("A".into()), 3)],
            submits: vec![
                SubmitRecord {
                    answer: Answer::Error("unavailable".into()),
                    ..ack("k1", "j1")
                },
                ack("k1", "j1"),
            ],
            runs: vec![
                run("j1", 1, "w1", RunOutcome::Done, 100),
                run("j1", 2, "w2", RunOutcome::Done, 200),
            ],
            ..History::default()
        };
        let f = fin(vec![done("j1", "k1", "A", 2, "w2", 201)], totals(1, 0));
        let r = check(&h, &f, &CheckConfig::default());
        assert!(r.violations.is_empty(), "{r}");
        assert_eq!(r.summary.duplicated_jobs, 1);
        assert_eq!(r.summary.extra_runs, 1);
        assert_eq!(r.summary.submit_errors, 1);
        assert_eq!((r.summary.acknowledged, r.summary.done), (1, 1));
    }

    /// A lost job, a stuck job and a wrong result are all reported.
    #[test]
    fn lost_stuck_and_wrong_results_fail() {
        let h = History {
            specs: vec![
                spec("k1", Expect::Done("A".into()), 3),
                spec("k2", Expect::Done("B".into()), 3),
                spec("k3", Expect::Done("C".into()), 3),
                spec("k4", Expect::Done("D".into()), 3),
            ],
            submits: vec![
                ack("k1", "j1"),
                ack("k2", "j2"),
                ack("k3", "j3"),
                // never acknowledged: not checked
                SubmitRecord {
                    answer: Answer::Error("deadline".into()),
                    ..ack("k4", "")
                },
            ],
            runs: vec![run("j3", 1, "w1", RunOutcome::Done, 100)],
            ..History::default()
        };
        let mut stuck = done("j2", "k2", "", 1, "w1", 0);
        stuck.status = Status::Processing;
        let f = fin(
            vec![stuck, done("j3", "k3", "c", 1, "w1", 101)],
            totals(1, 0),
        );
        let r = check(&h, &f, &CheckConfig::default());
        assert_eq!(
            labels(&r),
            [
                "acknowledged job lost",
                "job never reached a terminal state",
                "wrong result"
            ]
        );
        assert_eq!(r.summary.unacknowledged, 1);
    }

    /// A `fail` job FAILED by its processor after all attempts is fine; with attempts left,
    /// or DONE, it is not.
    #[test]
    fn processor_failures() {
        let fails = || Expect::ProcessorFails(FAIL_ERROR.into());
        let h = History {
            specs: vec![
                spec("k1", fails(), 2),
                spec("k2", fails(), 2),
                spec("k3", fails(), 2),
            ],
            submits: vec![ack("k1", "j1"), ack("k2", "j2"), ack("k3", "j3")],
            runs: vec![
                run("j1", 1, "w1", RunOutcome::Retry, 100),
                run("j1", 2, "w1", RunOutcome::Retry, 700),
                run("j2", 1, "w1", RunOutcome::Retry, 100),
                run("j3", 1, "w1", RunOutcome::Done, 100),
            ],
            ..History::default()
        };
        let mut early = failed("j2", "k2", FAIL_ERROR, 1, "w1", 101);
        early.max_attempts = 2;
        let f = fin(
            vec![
                failed("j1", "k1", FAIL_ERROR, 2, "w1", 701),
                early,
                done("j3", "k3", "x", 1, "w1", 101),
            ],
            totals(1, 2),
        );
        let r = check(&h, &f, &CheckConfig::default());
        assert_eq!(labels(&r), ["FAILED with attempts left", "wrong outcome"]);
        assert_eq!(r.summary.failed_by_processor, 2);
        // two failed deliveries of j1 are retries, not duplicates
        assert_eq!(r.summary.duplicated_jobs, 0);
    }

    /// "lease expired" is by design when the job's worker was killed (or paused) first, and
    /// a violation when the worker was alive — flagged as a Redis outage when one was on.
    #[test]
    fn lease_expiry_is_excused_only_by_a_worker_fault() {
        let err = "lease expired after 1 deliveries (worker w lost)";
        let h = History {
            specs: vec![
                spec("k1", Expect::Done("A".into()), 1),
                spec("k2", Expect::Done("B".into()), 1),
                spec("k3", Expect::Done("C".into()), 1),
                spec("k4", Expect::Done("D".into()), 1),
                spec("k5", Expect::Done("E".into()), 1),
                spec("k6", Expect::Done("F".into()), 1),
            ],
            submits: ["k1", "k2", "k3", "k4", "k5", "k6"]
                .iter()
                .enumerate()
                .map(|(i, k)| ack(k, &format!("j{}", i + 1)))
                .collect(),
            runs: vec![run("j4", 1, "w3", RunOutcome::Done, 20_000)],
            faults: vec![
                FaultRecord {
                    kind: FaultKind::WorkerKill,
                    target: "w1".into(),
                    start_ms: 1000,
                    end_ms: 2000,
                    held: vec![],
                },
                FaultRecord {
                    kind: FaultKind::WorkerPause,
                    target: "w2".into(),
                    start_ms: 1000,
                    end_ms: 7000,
                    held: vec![],
                },
                FaultRecord {
                    kind: FaultKind::RedisPause,
                    target: "redis".into(),
                    start_ms: 12_000,
                    end_ms: 18_000,
                    held: vec![],
                },
                FaultRecord {
                    kind: FaultKind::WorkerTerm,
                    target: "w4".into(),
                    start_ms: 40_000,
                    end_ms: 41_000,
                    held: vec![],
                },
            ],
            ..History::default()
        };
        let f = fin(
            vec![
                failed("j1", "k1", err, 1, "w1", 4000), // killed before: by design
                failed("j2", "k2", err, 1, "w2", 4000), // paused around: by design
                failed("j3", "k3", err, 1, "w1", 900),  // expired before the kill
                failed("j4", "k4", err, 1, "w3", 18_500), // Redis paused, worker ran it
                failed("j5", "k5", "boom", 1, "w3", 30_000),
                failed("j6", "k6", err, 1, "w4", 44_000), // SIGTERM: should be given back
            ],
            totals(0, 6),
        );
        let r = check(&h, &f, &CheckConfig::default());
        assert_eq!(
            labels(&r),
            [
                "FAILED 'lease expired' without running (worker alive)",
                "FAILED 'lease expired' after a Redis outage (worker alive)",
                "FAILED without its processor failing",
                "FAILED 'lease expired' after its worker's graceful stop (not given back)",
            ]
        );
        assert_eq!(r.summary.failed_with_worker, 2);
    }

    /// The zombie case: the store names delivery 2 (worker w2) but only the zombie's
    /// delivery 1 had finished when the outcome was recorded — its stale report was applied.
    #[test]
    fn zombie_overwrite_is_caught() {
        let h = History {
            specs: vec![
                spec("k1", Expect::Done("A".into()), 3),
                spec("k2", Expect::Done("B".into()), 3),
            ],
            submits: vec![ack("k1", "j1"), ack("k2", "j2")],
            runs: vec![
                // j1: w2's delivery 2 finished after the store recorded DONE at 5000
                run("j1", 1, "zombie", RunOutcome::Done, 4990),
                run("j1", 2, "w2", RunOutcome::Done, 5400),
                // j2: the store names w2's delivery 2, which w2 never finished
                run("j2", 1, "zombie", RunOutcome::Done, 4990),
            ],
            faults: vec![FaultRecord {
                kind: FaultKind::WorkerPause,
                target: "zombie".into(),
                start_ms: 0,
                end_ms: 4900,
                held: vec![("j1".into(), 1), ("j2".into(), 1)],
            }],
            stale: vec![StaleReport {
                job_id: "j1".into(),
                worker: "zombie".into(),
            }],
            ..History::default()
        };
        let f = fin(
            vec![
                done("j1", "k1", "A", 2, "w2", 5000),
                done("j2", "k2", "B", 2, "w2", 5000),
            ],
            totals(2, 0),
        );
        let r = check(&h, &f, &CheckConfig::default());
        assert_eq!(r.counts().values().sum::<usize>(), 2, "{r}");
        assert!(r
            .violations
            .iter()
            .all(|v| matches!(v, Violation::NotFromAcceptedDelivery { .. })));
        assert_eq!(r.summary.zombie_held, 2);
        assert_eq!(r.summary.zombie_accepted, 0);
        assert_eq!(r.summary.zombie_refused, 1);
        // redelivery measured from the pause to the next delivery's start (5000 - 10)
        assert_eq!(r.summary.worst_redelivery, Some((4990, "j1".into())));
    }

    /// Two jobs behind one idempotency key, a job DONE twice (counters), and a DONE job no
    /// worker ever ran are all violations; an orphan is only counted.
    #[test]
    fn duplicates_in_the_store_fail() {
        let h = History {
            specs: vec![
                spec("k1", Expect::Done("A".into()), 3),
                spec("k2", Expect::Done("B".into()), 3),
                spec("k3", Expect::Done("C".into()), 3),
            ],
            submits: vec![
                ack("k1", "j1"),
                ack("k1", "j1b"),
                ack("k2", "j2"),
                SubmitRecord {
                    answer: Answer::Error("timeout".into()),
                    ..ack("k3", "")
                },
            ],
            runs: vec![
                run("j1", 1, "w1", RunOutcome::Done, 10),
                run("j1b", 1, "w1", RunOutcome::Done, 10),
                run("j3", 1, "w1", RunOutcome::Done, 10),
            ],
            ..History::default()
        };
        let f = fin(
            vec![
                done("j1", "k1", "A", 1, "w1", 11),
                done("j1b", "k1", "A", 1, "w1", 11),
                done("j2", "k2", "B", 1, "w1", 11),
                done("j3", "k3", "C", 1, "w1", 11),
            ],
            totals(5, 0),
        );
        let r = check(&h, &f, &CheckConfig::default());
        assert_eq!(
            labels(&r),
            [
                "two jobs for one idempotency key",
                "terminal without ever running",
                "terminal transitions != terminal jobs"
            ],
            "{r}"
        );
        assert_eq!(r.summary.orphans, 1);
        assert_eq!(r.summary.unacknowledged, 1);
    }
}
