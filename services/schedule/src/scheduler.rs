//! [`Scheduler`]: the loop every `pfc jobs` process runs; the elected one fires due ticks.
//!
//! A round: win (or renew) the election, which also reads the store's clock; read which
//! schedules are due; for each, submit tick `t = next` with the idempotency key
//! `schedule:<name>:<t>`, then compare-and-set `next` from `t` to the first tick after now.
//! Why that is exactly once: `docs/design.md`, "Schedules".

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pfc_queue::{JobStore, NewJob};

use crate::{idempotency_key, CatchUp, LastFire, Result, Schedule, ScheduleState, ScheduleStore};

/// How often each process runs a round (a tick fires at most this late, plus a round trip).
pub const ROUND: Duration = Duration::from_millis(250);
/// The election term: a new scheduler takes over at most this long after one dies.
pub const TERM: Duration = Duration::from_secs(2);
/// A scheduler fires only this soon after winning its election (its monotonic clock), so a
/// process stalled mid-round stops instead of firing on an old view.
pub const FIRE_WINDOW: Duration = Duration::from_secs(1);
/// A tick seen more than this late was **missed** (an outage), not just delayed by a leader
/// failover (at most a term and a round): a delayed tick fires and the schedule continues with
/// the tick after it; a missed one fires once ([`CatchUp::FireOnce`]) or not at all
/// ([`CatchUp::Skip`]) and the schedule continues with the first tick after now.
pub const SKIP_GRACE_MS: i64 = 5_000;

/// Builds the job a schedule submits from its template (the jobs core's own submit
/// validation), or says why it cannot.
pub type BuildJob = Arc<dyn Fn(&Schedule) -> std::result::Result<NewJob, String> + Send + Sync>;

/// Fires due ticks of the schedules in `store` as jobs in `jobs`.
pub struct Scheduler {
    store: Arc<dyn ScheduleStore>,
    jobs: Arc<dyn JobStore>,
    build: BuildJob,
    instance: String,
}

/// What one round did, for tests and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// False when another process leads.
    pub led: bool,
    /// Ticks submitted and advanced past by this scheduler.
    pub fired: usize,
    /// Ticks skipped by [`CatchUp::Skip`].
    pub skipped: usize,
}

impl Scheduler {
    /// A scheduler with its own election id.
    pub fn new(store: Arc<dyn ScheduleStore>, jobs: Arc<dyn JobStore>, build: BuildJob) -> Self {
        Self {
            store,
            jobs,
            build,
            instance: pfc_queue::new_job_id(),
        }
    }

    /// Runs a round every [`ROUND`] until `shutdown` resolves. Store errors end the round
    /// (the due ticks stay due and the next round retries them with the same keys).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut every = tokio::time::interval(ROUND);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = every.tick() => {}
            }
            if let Err(e) = self.round().await {
                tracing::debug!(error = %e, "schedule round failed");
            }
        }
    }

    /// One round: elect, then fire whatever is due.
    #[tracing::instrument(name = "schedule_round", skip(self), level = "debug")]
    pub async fn round(&self) -> Result<Round> {
        let won = Instant::now();
        let Some(now) = self.store.lead(&self.instance, TERM).await? else {
            return Ok(Round::default());
        };
        let mut round = Round {
            led: true,
            ..Round::default()
        };
        for (name, tick) in self.store.due(now).await? {
            if won.elapsed() > FIRE_WINDOW {
                tracing::debug!("schedule round ran out of its window; the next one continues");
                break;
            }
            let Some(st) = self.store.get(&name).await? else {
                continue;
            };
            if st.schedule.paused || st.next_ms != Some(tick) {
                continue;
            }
            self.handle(st, tick, now, &mut round).await?;
        }
        Ok(round)
    }

    /// Fires (or skips) tick `tick` of one schedule, then advances it.
    async fn handle(
        &self,
        st: ScheduleState,
        tick: i64,
        now: i64,
        round: &mut Round,
    ) -> Result<()> {
        let s = &st.schedule;
        let missed = now - tick > SKIP_GRACE_MS;
        // a delayed tick is followed by its successor (fired next round if due too); after
        // a miss the schedule jumps past now, so an outage costs at most one job
        let next = if missed {
            s.spec.next_after(now)
        } else {
            s.spec.next_after(tick)
        };
        if missed && s.catch_up == CatchUp::Skip {
            if self.store.advance(&s.name, tick, next, None).await? {
                tracing::info!(schedule = %s.name, tick, late_ms = now - tick, "missed tick skipped");
                round.skipped += 1;
            }
            return Ok(());
        }
        let last = match (self.build)(s) {
            Ok(mut job) => {
                job.idempotency_key = Some(idempotency_key(&s.name, tick));
                job.run_at = None;
                match self.jobs.submit(job).await {
                    Ok(sub) => {
                        tracing::info!(
                            schedule = %s.name, tick, job_id = %sub.job.id,
                            created = sub.created, late_ms = now - tick, "schedule fired"
                        );
                        LastFire {
                            tick_ms: tick,
                            at_ms: now,
                            job_id: Some(sub.job.id),
                            error: None,
                        }
                    }
                    // the tick stays due: the next round submits it again, same key
                    Err(e) if e.is_unavailable() => return Err(e.into()),
                    Err(e) => failed(tick, now, e.to_string()),
                }
            }
            Err(e) => failed(tick, now, e),
        };
        if let Some(e) = &last.error {
            tracing::warn!(schedule = %s.name, tick, error = %e, "schedule tick not submitted");
        }
        if self.store.advance(&s.name, tick, next, Some(&last)).await? {
            round.fired += 1;
        }
        Ok(())
    }
}

fn failed(tick: i64, now: i64, error: String) -> LastFire {
    LastFire {
        tick_ms: tick,
        at_ms: now,
        job_id: None,
        error: Some(error),
    }
}
