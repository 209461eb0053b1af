//! Redis-backed [`JobStore`]: hashes, lists and sorted sets changed only by Lua scripts.
//!
//! Every state change is one script, so it is atomic; every key a script touches is declared
//! in `KEYS` and shares the hash tag `{queue}`, so the layout works unchanged on Redis Cluster.
//! `docs/design.md` explains the layout, the lease clock, fencing and cleanup.
//!
//! # Layout
//! - `conn`: the connection layer (shared multiplexed connections, `TCP_NODELAY`, keepalive).
//! - `keys`: key names, in the order the scripts read them.
//! - `record`: job records and events as the scripts write them (JSON).
//! - `events`: the one pub/sub subscription per process, with gap and silence detection.
//! - `submit`: the submit batcher (many submits per round trip, one result each).
//! - this file: the [`JobStore`] implementation.

mod conn;
mod events;
mod keys;
mod record;
mod submit;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::{Script, Value};
use tokio::sync::{broadcast, mpsc, Mutex};

use crate::model::*;
use crate::{JobStore, Result, StoreError};
use conn::{is_transport, Conns};
use keys::Keys;
use record::{corrupt, job_from_record};

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("../lua/prelude.lua"),
            include_str!(concat!("../lua/", $file))
        ))
    };
}

/// The queue scripts, loaded once per Redis (and again after a restart or `SCRIPT FLUSH`).
#[derive(Clone)]
pub(crate) struct Scripts {
    submit: Script,
    take: Script,
    heartbeat: Script,
    complete: Script,
    release: Script,
    cancel: Script,
    sweep: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            submit: script!("submit.lua"),
            take: script!("take.lua"),
            heartbeat: script!("heartbeat.lua"),
            complete: script!("complete.lua"),
            release: script!("release.lua"),
            cancel: script!("cancel.lua"),
            sweep: script!("sweep.lua"),
        }
    }

    fn all(&self) -> [&Script; 7] {
        [
            &self.submit,
            &self.take,
            &self.heartbeat,
            &self.complete,
            &self.release,
            &self.cancel,
            &self.sweep,
        ]
    }

    /// Loads every script on `conn` (after a `NOSCRIPT`).
    async fn load(&self, conns: &Conns, conn: &mut MultiplexedConnection) -> Result<()> {
        for s in self.all() {
            conns.check(s.prepare_invoke().load_async(conn).await)?;
        }
        Ok(())
    }
}

fn is_noscript(e: &redis::RedisError) -> bool {
    e.code() == Some("NOSCRIPT")
}

/// Most jobs deleted by one sweep call; housekeeping repeats while batches come back full.
const SWEEP_BATCH: usize = 500;
/// Most sweep calls per housekeeping tick (so one tick stays short after a long outage).
const SWEEP_ROUNDS: usize = 40;
/// How long a take retries the same request after a lost reply before giving up.
const TAKE_RETRY_FOR: Duration = Duration::from_secs(60);

/// Redis-backed job store. Cheap to share (`Arc`).
pub struct RedisStore {
    conns: Arc<Conns>,
    client: redis::Client,
    keys: Arc<Keys>,
    config: StoreConfig,
    scripts: Scripts,
    events: broadcast::Sender<Feed>,
    listener: OnceLock<()>,
    /// Dedicated connection for BLPOP (a blocking command would stall a shared connection).
    blocking: Mutex<Option<MultiplexedConnection>>,
    /// Submits waiting to go to Redis together (see [`submit::batcher`]).
    submits: OnceLock<mpsc::UnboundedSender<submit::Pending>>,
}

impl RedisStore {
    /// Creates the store. Does not need Redis to be up yet: calls fail with
    /// [`StoreError::is_unavailable`] errors until it is, and recover by themselves after.
    pub fn new(url: &str, config: StoreConfig) -> Result<Arc<Self>> {
        let client = conn::client(url)?;
        Ok(Arc::new(Self {
            conns: Arc::new(Conns::new(client.clone(), 4)),
            client,
            keys: Arc::new(Keys::new("default")),
            config,
            scripts: Scripts::new(),
            events: broadcast::channel(4096).0,
            listener: OnceLock::new(),
            blocking: Mutex::new(None),
            submits: OnceLock::new(),
        }))
    }

    /// The key prefix of the default queue (`pfc:{default}:`), for tools and tests.
    pub fn prefix(&self) -> &str {
        self.keys.prefix()
    }

    fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }

    /// A script invocation with the queue's keys and events channel already in place.
    fn call<'a>(&self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        for k in self.keys.all() {
            inv.key(k);
        }
        inv.arg(self.keys.channel());
        inv
    }

    /// Runs a pipeline of script calls, loading the scripts if Redis lost them (restart,
    /// `SCRIPT FLUSH`) and running it again. Only for pipelines whose scripts are all
    /// idempotent (complete, heartbeat): a NOSCRIPT reply means that entry did not run, but
    /// the others did.
    async fn run_pipe<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T> {
        let mut conn = self.conns.get().await?;
        match pipe.query_async::<T>(&mut conn).await {
            Err(e) if is_noscript(&e) => {
                self.scripts.load(&self.conns, &mut conn).await?;
                self.conns.check(pipe.query_async::<T>(&mut conn).await)
            }
            other => self.conns.check(other),
        }
    }

    async fn invoke<T: redis::FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        let mut conn = self.conns.get().await?;
        self.conns.check(inv.invoke_async(&mut conn).await)
    }

    fn start_listener(&self) {
        self.listener.get_or_init(|| {
            tokio::spawn(events::listen(
                self.client.clone(),
                self.conns.clone(),
                self.keys.channel().to_owned(),
                self.events.clone(),
            ));
        });
    }

    async fn blpop_wake(&self, timeout: Duration) -> Result<()> {
        let mut guard = self.blocking.lock().await;
        if guard.is_none() {
            *guard = Some(
                self.client
                    .get_multiplexed_async_connection_with_config(&conn::config(
                        Duration::from_secs(3),
                    ))
                    .await?,
            );
        }
        let conn = guard.as_mut().expect("connection set above");
        let secs = timeout.as_secs_f64().clamp(0.01, 2.0);
        let r: redis::RedisResult<Value> = redis::cmd("BLPOP")
            .arg(self.keys.key("wake"))
            .arg(format!("{secs:.3}"))
            .query_async(conn)
            .await;
        if let Err(e) = r {
            *guard = None;
            return Err(e.into());
        }
        Ok(())
    }

    /// Reads jobs by id (record, input, result) in one round trip; `None` for unknown ids.
    async fn read_jobs(
        &self,
        conn: &mut MultiplexedConnection,
        ids: &[String],
    ) -> Result<Vec<Option<Job>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        type Col = Vec<Option<Vec<u8>>>;
        let (records, inputs, outputs): (Col, Col, Col) = self.conns.check(
            redis::pipe()
                .cmd("HMGET")
                .arg(self.keys.key("jobs"))
                .arg(ids)
                .cmd("HMGET")
                .arg(self.keys.key("input"))
                .arg(ids)
                .cmd("HMGET")
                .arg(self.keys.key("output"))
                .arg(ids)
                .query_async(conn)
                .await,
        )?;
        records
            .into_iter()
            .zip(inputs)
            .zip(outputs)
            .map(|((r, i), o)| r.map(|r| job_from_record(&r, i, o)).transpose())
            .collect()
    }

    /// One take request, retried with the same request id after a lost reply, so a batch
    /// Redis leased is never stranded (the receipt returns it again).
    async fn take_once(&self, worker: &str, max: usize) -> Result<(i64, i64, Vec<Job>)> {
        let request = new_job_id();
        let receipt = self.keys.take_receipt(&request);
        let give_up = tokio::time::Instant::now() + TAKE_RETRY_FOR;
        let mut backoff = Duration::from_millis(50);
        loop {
            let mut inv = self.call(&self.scripts.take);
            inv.key(&receipt)
                .arg(worker)
                .arg(max)
                .arg(Self::ms(self.config.lease))
                .arg(Self::ms(self.config.retention))
                .arg(Self::ms(self.config.clock_gap()))
                .arg(&request);
            match self.invoke::<(i64, i64, Vec<Vec<u8>>)>(&inv).await {
                Ok((now, next_due, flat)) => {
                    let jobs = flat
                        .chunks(2)
                        .map(|c| job_from_record(&c[0], c.get(1).cloned(), None))
                        .collect::<Result<Vec<_>>>()?;
                    return Ok((now, next_due, jobs));
                }
                Err(StoreError::Redis(e))
                    if is_transport(&e) && max > 0 && tokio::time::Instant::now() < give_up =>
                {
                    tracing::debug!(error = %e, "take reply lost; retrying the same request");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[async_trait]
impl JobStore for RedisStore {
    async fn submit(&self, new: NewJob) -> Result<Submitted> {
        let tx = self.submits.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(submit::batcher(
                self.conns.clone(),
                self.scripts.clone(),
                self.keys.clone(),
                rx,
            ));
            tx
        });
        submit::submit(self, tx, new).await
    }

    async fn get(&self, id: &str) -> Result<Option<Job>> {
        let mut conn = self.conns.get().await?;
        Ok(self
            .read_jobs(&mut conn, &[id.to_owned()])
            .await?
            .pop()
            .flatten())
    }

    async fn list(&self, q: ListQuery) -> Result<Page> {
        let index = match q.status {
            Some(s) => self.keys.key(&format!("status:{}", s.as_str())),
            None => self.keys.key("all"),
        };
        let limit = q.limit.max(1);
        let max = match &q.before {
            Some(b) => format!("({b}"),
            None => "+".to_owned(),
        };
        let mut conn = self.conns.get().await?;
        let (ids, total): (Vec<String>, u64) = match q.status {
            // QUEUED and PROCESSING have no index of their own (design.md): page the queue list
            // from its tail (newest) and the lease set (bounded by worker concurrency)
            Some(Status::Queued) => {
                let key = self.keys.key("queued");
                let len: i64 = self
                    .conns
                    .check(redis::cmd("LLEN").arg(&key).query_async(&mut conn).await)?;
                let end = match &q.before {
                    None => len - 1,
                    Some(b) => {
                        let pos: Option<i64> = self.conns.check(
                            redis::cmd("LPOS")
                                .arg(&key)
                                .arg(b)
                                .arg("RANK")
                                .arg(-1)
                                .query_async(&mut conn)
                                .await,
                        )?;
                        // a cursor job that left the queue ends the listing
                        pos.map_or(-1, |p| p - 1)
                    }
                };
                let mut ids: Vec<String> = if end < 0 {
                    Vec::new()
                } else {
                    let start = (end - limit as i64).max(0);
                    self.conns.check(
                        redis::cmd("LRANGE")
                            .arg(&key)
                            .arg(start)
                            .arg(end)
                            .query_async(&mut conn)
                            .await,
                    )?
                };
                ids.reverse();
                (ids, len.max(0) as u64)
            }
            Some(Status::Processing) => {
                let mut all: Vec<String> = self.conns.check(
                    redis::cmd("ZRANGE")
                        .arg(self.keys.key("leases"))
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut conn)
                        .await,
                )?;
                let total = all.len() as u64;
                all.sort_unstable_by(|a, b| b.cmp(a));
                let ids = all
                    .into_iter()
                    .filter(|id| q.before.as_ref().is_none_or(|b| id < b))
                    .take(limit + 1)
                    .collect();
                (ids, total)
            }
            _ => self.conns.check(
                redis::pipe()
                    .cmd("ZREVRANGEBYLEX")
                    .arg(&index)
                    .arg(&max)
                    .arg("-")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit + 1)
                    .cmd("ZCARD")
                    .arg(&index)
                    .query_async(&mut conn)
                    .await,
            )?,
        };
        let found = self.read_jobs(&mut conn, &ids).await?;
        let gone = found.iter().filter(|j| j.is_none()).count() as u64;
        let mut jobs: Vec<Job> = found.into_iter().flatten().collect();
        let next = if ids.len() > limit {
            jobs.truncate(limit);
            // continue after the last id examined on this page, alive or not
            ids.get(limit - 1).cloned()
        } else {
            None
        };
        Ok(Page {
            jobs,
            next,
            total: total.saturating_sub(gone),
        })
    }

    async fn cancel(&self, id: &str) -> Result<Job> {
        let mut inv = self.call(&self.scripts.cancel);
        inv.arg(id).arg(Self::ms(self.config.retention));
        let r: Vec<Value> = self.invoke(&inv).await?;
        let mut it = r.into_iter();
        let code: i64 = it
            .next()
            .and_then(|v| redis::from_redis_value(v).ok())
            .unwrap_or(0);
        match code {
            1 => self
                .get(id)
                .await?
                .ok_or_else(|| StoreError::NotFound(id.to_owned())),
            2 => {
                let status: String = it
                    .next()
                    .and_then(|v| redis::from_redis_value(v).ok())
                    .unwrap_or_default();
                let status = status
                    .parse()
                    .map_err(|e: UnknownStatus| corrupt(id, e.to_string()))?;
                Err(StoreError::InvalidState {
                    id: id.to_owned(),
                    status,
                    action: "cancel",
                })
            }
            _ => Err(StoreError::NotFound(id.to_owned())),
        }
    }

    async fn stats(&self) -> Result<Stats> {
        let mut conn = self.conns.get().await?;
        let k = &self.keys;
        let ttl = Self::ms(self.config.worker_ttl) as i64;
        let (queued, scheduled, processing, counters, time): (
            u64,
            u64,
            u64,
            HashMap<String, u64>,
            (i64, i64),
        ) = self.conns.check(
            redis::pipe()
                .cmd("LLEN")
                .arg(k.key("queued"))
                .cmd("ZCARD")
                .arg(k.key("scheduled"))
                .cmd("ZCARD")
                .arg(k.key("leases"))
                .cmd("HGETALL")
                .arg(k.key("stats"))
                .cmd("TIME")
                .query_async(&mut conn)
                .await,
        )?;
        let now = time.0 * 1000 + time.1 / 1000;
        let live: Vec<(String, i64)> = self.conns.check(
            redis::cmd("ZRANGEBYSCORE")
                .arg(k.key("workers"))
                .arg(now - ttl)
                .arg("+inf")
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await,
        )?;
        let mut workers = Vec::with_capacity(live.len());
        if !live.is_empty() {
            let ids: Vec<&str> = live.iter().map(|(id, _)| id.as_str()).collect();
            let infos: Vec<Option<String>> = self.conns.check(
                redis::cmd("HMGET")
                    .arg(k.key("winfo"))
                    .arg(&ids)
                    .query_async(&mut conn)
                    .await,
            )?;
            for ((id, seen), info) in live.into_iter().zip(infos) {
                let mut nums = info
                    .as_deref()
                    .unwrap_or("")
                    .split(' ')
                    .map(|n| n.parse::<u32>().unwrap_or(0));
                workers.push(WorkerInfo {
                    id,
                    concurrency: nums.next().unwrap_or(0),
                    in_flight: nums.next().unwrap_or(0),
                    last_seen: seen,
                });
            }
        }
        let c = |k: &str| counters.get(k).copied().unwrap_or(0);
        Ok(Stats {
            queued,
            scheduled,
            processing,
            done_total: c("done"),
            failed_total: c("failed"),
            cancelled_total: c("cancelled"),
            submitted_total: c("submitted"),
            retried_total: c("retried"),
            workers,
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Feed> {
        self.start_listener();
        self.events.subscribe()
    }

    async fn take(&self, worker: &str, max: usize, wait: Duration) -> Result<Vec<Job>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let (now, next_due, jobs) = self.take_once(worker, max).await?;
            if !jobs.is_empty() {
                return Ok(jobs);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(Vec::new());
            }
            // never nap longer than half the clock gap: every lease keeper ticks more often
            // than the gap, or a quiet wait would look like an outage (design.md)
            let mut nap = left.min(self.config.clock_gap() / 2);
            if next_due >= 0 {
                nap = nap.min(Duration::from_millis((next_due - now).max(10) as u64));
            }
            self.blpop_wake(nap).await?;
        }
    }

    async fn heartbeat(&self, worker: &WorkerInfo, leases: &[LeaseRef]) -> Result<Vec<LeaseRef>> {
        let mut inv = self.call(&self.scripts.heartbeat);
        inv.arg(&worker.id)
            .arg(worker.concurrency)
            .arg(worker.in_flight)
            .arg(Self::ms(self.config.lease))
            .arg(Self::ms(self.config.worker_ttl))
            .arg(Self::ms(self.config.clock_gap()));
        for l in leases {
            inv.arg(&l.job_id).arg(l.delivery);
        }
        let lost: Vec<String> = self.invoke(&inv).await?;
        Ok(lost
            .chunks(2)
            .filter_map(|c| {
                Some(LeaseRef {
                    job_id: c.first()?.clone(),
                    delivery: c.get(1)?.parse().ok()?,
                })
            })
            .collect())
    }

    async fn complete(&self, completions: &[Completion]) -> Result<Vec<CompletionResult>> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for c in completions {
            let (outcome, payload, backoff) = match &c.outcome {
                Outcome::Done(r) => ("done", r.as_str(), 0),
                Outcome::Failed {
                    error,
                    retryable: true,
                } => (
                    "retry",
                    error.as_str(),
                    Self::ms(self.config.backoff(c.attempt)),
                ),
                Outcome::Failed {
                    error,
                    retryable: false,
                } => ("fail", error.as_str(), 0),
            };
            let mut inv = self.call(&self.scripts.complete);
            inv.arg(&c.job_id)
                .arg(&c.worker_id)
                .arg(c.delivery)
                .arg(outcome)
                .arg(payload)
                .arg(Self::ms(self.config.retention))
                .arg(backoff);
            pipe.invoke_script(&inv);
        }
        // complete is idempotent (a report applied once is "already applied" the next
        // time), so the whole pipeline may be sent again after NOSCRIPT
        let applied: Vec<i64> = self.run_pipe(&pipe).await?;
        Ok(applied
            .into_iter()
            .map(|a| match a {
                1 => CompletionResult::Applied,
                2 => CompletionResult::Duplicate,
                _ => CompletionResult::Stale,
            })
            .collect())
    }

    async fn release(&self, worker: &str, leases: &[LeaseRef]) -> Result<()> {
        if leases.is_empty() {
            return Ok(());
        }
        let mut inv = self.call(&self.scripts.release);
        inv.arg(worker);
        for l in leases {
            inv.arg(&l.job_id).arg(l.delivery);
        }
        let _: i64 = self.invoke(&inv).await?;
        Ok(())
    }

    async fn unregister_worker(&self, worker: &str) -> Result<()> {
        let mut conn = self.conns.get().await?;
        let _: () = self.conns.check(
            redis::pipe()
                .cmd("ZREM")
                .arg(self.keys.key("workers"))
                .arg(worker)
                .cmd("HDEL")
                .arg(self.keys.key("winfo"))
                .arg(worker)
                .query_async(&mut conn)
                .await,
        )?;
        Ok(())
    }

    async fn maintain(&self) -> Result<()> {
        self.take_once("maintenance", 0).await?;
        for _ in 0..SWEEP_ROUNDS {
            let mut inv = self.call(&self.scripts.sweep);
            inv.arg(SWEEP_BATCH);
            let swept: usize = self.invoke(&inv).await?;
            if swept < SWEEP_BATCH {
                break;
            }
        }
        Ok(())
    }

    /// A real write (not just `PING`): a replica after a failover (`READONLY`) or a Redis out
    /// of memory (`OOM`) answers PING but refuses writes, and health must say so.
    async fn ping(&self) -> Result<()> {
        let mut conn = self.conns.get().await?;
        let _: () = self.conns.check(
            redis::cmd("SET")
                .arg(self.keys.key("health"))
                .arg(now_ms())
                .arg("PX")
                .arg(60_000)
                .query_async(&mut conn)
                .await,
        )?;
        Ok(())
    }
}
