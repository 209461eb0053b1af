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
use redis::{Script, Value};
use tokio::sync::{broadcast, mpsc, Mutex};

use crate::model::*;
use crate::{JobStore, Result, StoreError};
use conn::{is_transport, Backend, Conns};
pub use conn::{Conn, RedisConnections};
use keys::Keys;
use record::{corrupt, job_from_record};

macro_rules! script {
    ($sharded:expr, $file:literal) => {{
        let src = concat!(
            include_str!("../lua/prelude.lua"),
            include_str!(concat!("../lua/", $file))
        );
        // on a cluster, events go over sharded pub/sub (the channel has the queue's slot)
        if $sharded {
            Script::new(&src.replace("redis.call('PUBLISH'", "redis.call('SPUBLISH'"))
        } else {
            Script::new(src)
        }
    }};
}

/// The queue scripts, loaded once per Redis (and again after a restart or `SCRIPT FLUSH`).
#[derive(Clone)]
pub(crate) struct Scripts {
    submit: Script,
    take: Script,
    heartbeat: Script,
    complete: Script,
    release: Script,
    abandon: Script,
    cancel: Script,
    sweep: Script,
    progress: Script,
    lead: Script,
}

impl Scripts {
    fn new(sharded: bool) -> Self {
        Self {
            submit: script!(sharded, "submit.lua"),
            take: script!(sharded, "take.lua"),
            heartbeat: script!(sharded, "heartbeat.lua"),
            complete: script!(sharded, "complete.lua"),
            release: script!(sharded, "release.lua"),
            abandon: script!(sharded, "abandon.lua"),
            cancel: script!(sharded, "cancel.lua"),
            sweep: script!(sharded, "sweep.lua"),
            progress: script!(sharded, "progress.lua"),
            lead: script!(sharded, "lead.lua"),
        }
    }

    fn all(&self) -> [&Script; 10] {
        [
            &self.lead,
            &self.abandon,
            &self.progress,
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
    async fn load(&self, conns: &Conns, conn: &mut Conn) -> Result<()> {
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

/// How the store uses Redis beyond its URL.
#[derive(Clone, Debug, Default)]
pub struct RedisMode {
    /// The URL names the seed nodes of a Redis Cluster.
    pub cluster: bool,
    /// Replicas that must acknowledge every change a caller is told about (`WAIT`); 0 = none.
    pub wait_replicas: u32,
}

/// Most time a change waits for its replicas before the call answers UNAVAILABLE.
pub(crate) const WAIT_TIMEOUT_MS: u64 = 2000;

/// Redis-backed job store. Cheap to share (`Arc`).
pub struct RedisStore {
    conns: Arc<Conns>,
    keys: Arc<Keys>,
    /// Replicas that must acknowledge a change before a caller is told about it (`WAIT`).
    wait_replicas: u32,
    config: StoreConfig,
    scripts: Scripts,
    events: broadcast::Sender<Feed>,
    listener: OnceLock<()>,
    /// Dedicated connection for BLPOP (a blocking command would stall a shared connection).
    blocking: Mutex<Option<Conn>>,
    /// Submits waiting to go to Redis together (see [`submit::batcher`]).
    submits: OnceLock<mpsc::UnboundedSender<submit::Pending>>,
    /// This process's id in the housekeeping election.
    instance: String,
    /// Every known kind (`kinds` set), cached: housekeeping declares their lists.
    kinds: std::sync::Mutex<(Option<tokio::time::Instant>, Vec<String>)>,
}

/// How long the known kinds are cached (a script that meets an unknown one asks for a refresh).
const KINDS_TTL: Duration = Duration::from_secs(1);

impl RedisStore {
    /// Creates the store. Does not need Redis to be up yet: calls fail with
    /// [`StoreError::is_unavailable`] errors until it is, and recover by themselves after.
    pub fn new(url: &str, config: StoreConfig) -> Result<Arc<Self>> {
        Self::open(url, config, &RedisMode::default())
    }

    /// Creates the store on one server or, with `mode.cluster`, on a Redis Cluster whose seed
    /// nodes `url` names (comma-separated `redis://` URLs).
    pub fn open(url: &str, config: StoreConfig, mode: &RedisMode) -> Result<Arc<Self>> {
        let backend = if mode.cluster {
            // checked now, so a bad URL fails at startup, not at the first call
            conn::cluster_client(url, conn::RESPONSE_TIMEOUT, None)?;
            Backend::Cluster(url.to_owned())
        } else {
            Backend::Single(conn::client(url)?)
        };
        Ok(Arc::new(Self {
            conns: Arc::new(Conns::new(backend)),
            keys: Arc::new(Keys::new("default")),
            wait_replicas: mode.wait_replicas,
            config,
            scripts: Scripts::new(mode.cluster),
            events: broadcast::channel(4096).0,
            listener: OnceLock::new(),
            blocking: Mutex::new(None),
            submits: OnceLock::new(),
            kinds: std::sync::Mutex::new((None, Vec::new())),
            instance: new_job_id(),
        }))
    }

    /// The key prefix of the default queue (`pfc:{default}:`), for tools and tests.
    pub fn prefix(&self) -> &str {
        self.keys.prefix()
    }

    fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }

    /// A script invocation with the queue's keys, `own` (`KEYS[19]`, or a placeholder), the
    /// lists of `kinds` and the events channel already in place.
    fn call<'a>(
        &self,
        script: &'a Script,
        own: Option<&str>,
        kinds: &[String],
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        for k in self.keys.all() {
            inv.key(k);
        }
        match own {
            Some(k) => inv.key(k),
            None => inv.key(self.keys.placeholder()),
        };
        for kind in kinds {
            inv.key(self.keys.ready(kind)).key(self.keys.wake(kind));
        }
        inv.arg(self.keys.channel());
        inv.arg(serde_json::to_string(kinds).unwrap_or_else(|_| "[]".into()));
        inv
    }

    /// Every known kind (cached for [`KINDS_TTL`]; `refresh` forces a read).
    async fn known_kinds(&self, refresh: bool) -> Result<Vec<String>> {
        {
            let g = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
            if let (false, Some(at)) = (refresh, g.0) {
                if at.elapsed() < KINDS_TTL {
                    return Ok(g.1.clone());
                }
            }
        }
        let mut conn = self.conns.get().await?;
        let mut kinds: Vec<String> = self.conns.check(
            redis::cmd("SMEMBERS")
                .arg(self.keys.key("kinds"))
                .query_async(&mut conn)
                .await,
        )?;
        kinds.sort();
        *self.kinds.lock().unwrap_or_else(|p| p.into_inner()) =
            (Some(tokio::time::Instant::now()), kinds.clone());
        Ok(kinds)
    }

    /// `own` first, then every other known kind.
    async fn kinds_with(&self, own: &[String], refresh: bool) -> Result<Vec<String>> {
        let mut all: Vec<String> = own.to_vec();
        for k in self.known_kinds(refresh).await? {
            if !own.contains(&k) {
                all.push(k);
            }
        }
        Ok(all)
    }

    /// Runs a pipeline of script calls, loading the scripts if Redis lost them (restart,
    /// `SCRIPT FLUSH`) and running it again. Only for pipelines whose scripts are all
    /// idempotent (complete, heartbeat): a NOSCRIPT reply means that entry did not run, but
    /// the others did.
    async fn run_pipe_on<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<(T, Conn)> {
        let mut conn = self.conns.get().await?;
        let r = match pipe.query_async::<T>(&mut conn).await {
            Err(e) if is_noscript(&e) => {
                self.scripts.load(&self.conns, &mut conn).await?;
                self.conns.check(pipe.query_async::<T>(&mut conn).await)
            }
            other => self.conns.check(other),
        }?;
        Ok((r, conn))
    }

    /// Waits for the configured replicas to acknowledge what was written on `conn`; an
    /// error when too few did in time (the change is applied on the master but may be lost in
    /// a failover, so the caller must not be told it is safe).
    async fn wait_replicas(&self, conn: &mut Conn) -> Result<()> {
        if self.wait_replicas == 0 {
            return Ok(());
        }
        let acked = self
            .conns
            .check(conn::wait(conn, self.keys.slot(), self.wait_replicas, WAIT_TIMEOUT_MS).await)?;
        if acked < i64::from(self.wait_replicas) {
            return Err(StoreError::Unavailable(format!(
                "change acknowledged by {acked} of {} replicas within {WAIT_TIMEOUT_MS} ms",
                self.wait_replicas
            )));
        }
        Ok(())
    }

    /// Invokes a script and, when configured, waits for its replicas.
    async fn invoke_durable<T: redis::FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        let mut conn = self.conns.get().await?;
        let v = self.conns.check(inv.invoke_async(&mut conn).await)?;
        self.wait_replicas(&mut conn).await?;
        Ok(v)
    }

    async fn invoke<T: redis::FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        let mut conn = self.conns.get().await?;
        Ok(self.conns.check(inv.invoke_async(&mut conn).await)?)
    }

    fn start_listener(&self) {
        self.listener.get_or_init(|| {
            tokio::spawn(events::listen(
                self.conns.backend().clone(),
                self.conns.clone(),
                self.keys.channel().to_owned(),
                self.events.clone(),
            ));
        });
    }

    async fn blpop_wake(&self, kinds: &[String], timeout: Duration) -> Result<()> {
        if kinds.is_empty() {
            tokio::time::sleep(timeout).await;
            return Ok(());
        }
        let mut guard = self.blocking.lock().await;
        if guard.is_none() {
            *guard = Some(self.conns.backend().connect(Duration::from_secs(3)).await?);
        }
        let conn = guard.as_mut().expect("connection set above");
        let secs = timeout.as_secs_f64().clamp(0.01, 2.0);
        let mut cmd = redis::cmd("BLPOP");
        for k in kinds {
            cmd.arg(self.keys.wake(k));
        }
        let r: redis::RedisResult<Value> = cmd.arg(format!("{secs:.3}")).query_async(conn).await;
        if let Err(e) = r {
            *guard = None;
            return Err(e.into());
        }
        Ok(())
    }

    /// Reads jobs by id (record, input, result) in one round trip; `None` for unknown ids.
    async fn read_jobs(&self, conn: &mut Conn, ids: &[String]) -> Result<Vec<Option<Job>>> {
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
    async fn take_once(
        &self,
        worker: &str,
        own: &[String],
        max: usize,
    ) -> Result<(i64, i64, Vec<Job>)> {
        let request = new_job_id();
        let receipt = self.keys.take_receipt(&request);
        let give_up = tokio::time::Instant::now() + TAKE_RETRY_FOR;
        let mut backoff = Duration::from_millis(50);
        let mut refresh = false;
        loop {
            let kinds = match self.kinds_with(own, refresh).await {
                Ok(k) => k,
                // the same retry as a lost take reply below
                Err(StoreError::Redis(e))
                    if is_transport(&e) && max > 0 && tokio::time::Instant::now() < give_up =>
                {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut inv = self.call(&self.scripts.take, Some(&receipt), &kinds);
            inv.arg(worker)
                .arg(own.len())
                .arg(max)
                .arg(Self::ms(self.config.lease))
                .arg(Self::ms(self.config.retention))
                .arg(Self::ms(self.config.clock_gap()))
                .arg(&request);
            match self.invoke::<(i64, i64, Vec<Vec<u8>>, i64)>(&inv).await {
                Ok((now, next_due, flat, missing)) => {
                    let jobs = flat
                        .chunks(2)
                        .map(|c| job_from_record(&c[0], c.get(1).cloned(), None))
                        .collect::<Result<Vec<_>>>()?;
                    if missing == 1 && jobs.is_empty() && !refresh {
                        // housekeeping met a kind this process did not know yet
                        refresh = true;
                        continue;
                    }
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
                self.wait_replicas,
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
            // PROCESSING has no index of its own (design.md): page the lease set (bounded
            // by worker concurrency)
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
        let mut inv = self.call(&self.scripts.cancel, None, &[]);
        inv.arg(id).arg(Self::ms(self.config.retention));
        let r: Vec<Value> = self.invoke_durable(&inv).await?;
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
        let (queued, scheduled, processing, counters, time, mut kinds): (
            u64,
            u64,
            u64,
            HashMap<String, u64>,
            (i64, i64),
            Vec<String>,
        ) = self.conns.check(
            redis::pipe()
                .cmd("ZCARD")
                .arg(k.key("status:queued"))
                .cmd("ZCARD")
                .arg(k.key("scheduled"))
                .cmd("ZCARD")
                .arg(k.key("leases"))
                .cmd("HGETALL")
                .arg(k.key("stats"))
                .cmd("TIME")
                .cmd("SMEMBERS")
                .arg(k.key("kinds"))
                .query_async(&mut conn)
                .await,
        )?;
        kinds.sort();
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
                let info: record::WorkerRecord = info
                    .and_then(|i| serde_json::from_str(&i).ok())
                    .unwrap_or_default();
                workers.push(WorkerInfo {
                    id,
                    concurrency: info.c,
                    in_flight: info.n,
                    kinds: info.k,
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
            kinds,
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Feed> {
        // the receiver first: the listener's first `Gap` must not go out before it exists
        let rx = self.events.subscribe();
        self.start_listener();
        rx
    }

    async fn take(
        &self,
        worker: &str,
        kinds: &[String],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Job>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let (now, next_due, jobs) = self.take_once(worker, kinds, max).await?;
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
            self.blpop_wake(kinds, nap).await?;
        }
    }

    async fn heartbeat(&self, worker: &WorkerInfo, leases: &[LeaseRef]) -> Result<Vec<LeaseRef>> {
        let mut inv = self.call(&self.scripts.heartbeat, None, &[]);
        let info = record::WorkerRecord {
            c: worker.concurrency,
            n: worker.in_flight,
            k: worker.kinds.clone(),
        };
        inv.arg(&worker.id)
            .arg(serde_json::to_string(&info).unwrap_or_default())
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
            let mut rt = "";
            let (outcome, payload, backoff) = match &c.outcome {
                Outcome::Done(r) => ("done", r.as_bytes(), 0),
                Outcome::DonePayload(p) => {
                    rt = p.content_type.as_str();
                    ("done", p.bytes.as_slice(), 0)
                }
                Outcome::Failed {
                    error,
                    retryable: true,
                } => (
                    "retry",
                    error.as_bytes(),
                    Self::ms(self.config.backoff(c.attempt)),
                ),
                Outcome::Failed {
                    error,
                    retryable: false,
                } => ("fail", error.as_bytes(), 0),
            };
            let mut inv = self.call(&self.scripts.complete, None, &[]);
            inv.arg(&c.job_id)
                .arg(&c.worker_id)
                .arg(c.delivery)
                .arg(outcome)
                .arg(payload)
                .arg(Self::ms(self.config.retention))
                .arg(backoff)
                .arg(rt);
            pipe.invoke_script(&inv);
        }
        // complete is idempotent (a report applied once is "already applied" the next
        // time), so the whole pipeline may be sent again after NOSCRIPT
        let (applied, mut conn): (Vec<i64>, Conn) = self.run_pipe_on(&pipe).await?;
        self.wait_replicas(&mut conn).await?;
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
        for refresh in [false, true] {
            let kinds = self.known_kinds(refresh).await?;
            let mut inv = self.call(&self.scripts.release, None, &kinds);
            inv.arg(worker);
            for l in leases {
                inv.arg(&l.job_id).arg(l.delivery);
            }
            let (_, missing): (i64, i64) = self.invoke(&inv).await?;
            if missing == 0 {
                break;
            }
        }
        Ok(())
    }

    async fn abandon(&self, worker: &str, leases: &[LeaseRef]) -> Result<()> {
        if leases.is_empty() {
            return Ok(());
        }
        for refresh in [false, true] {
            let kinds = self.known_kinds(refresh).await?;
            let mut inv = self.call(&self.scripts.abandon, None, &kinds);
            inv.arg(worker).arg(Self::ms(self.config.retention));
            for l in leases {
                inv.arg(&l.job_id).arg(l.delivery);
            }
            let (_, missing): (i64, i64) = self.invoke(&inv).await?;
            if missing == 0 {
                break;
            }
        }
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

    async fn progress(&self, worker: &str, lease: &LeaseRef, progress: u32) -> Result<bool> {
        let mut inv = self.call(&self.scripts.progress, None, &[]);
        inv.arg(&lease.job_id)
            .arg(worker)
            .arg(lease.delivery)
            .arg(progress.min(100));
        let r: i64 = self.invoke(&inv).await?;
        Ok(r == 1)
    }

    /// Periodic housekeeping runs in one `pfc jobs` process at a time (the leader, elected
    /// with a 2 s term renewed on every tick), not in every replica: N replicas would do the
    /// same work N times. Workers' takes still do housekeeping too, so nothing waits for a
    /// leader after one dies.
    async fn maintain(&self) -> Result<()> {
        let mut inv = self.call(&self.scripts.lead, Some(&self.keys.key("leader")), &[]);
        inv.arg(&self.instance).arg(2000);
        let leads: i64 = self.invoke(&inv).await?;
        if leads != 1 {
            return Ok(());
        }
        self.take_once("maintenance", &[], 0).await?;
        for _ in 0..SWEEP_ROUNDS {
            let mut inv = self.call(&self.scripts.sweep, None, &[]);
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
