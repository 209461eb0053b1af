//! Redis-backed [`JobStore`]: lists, sorted sets and hashes changed only by Lua scripts.
//!
//! Every state change is one script, so it is atomic; every key of a queue shares the hash
//! tag `{queue}`, so the layout works unchanged on Redis Cluster. `docs/design.md` explains
//! the layout and the reasons. The scripts live in `src/lua/` and share `prelude.lua`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use futures::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script, Value};
use tokio::sync::{broadcast, mpsc, oneshot, Mutex};

use crate::model::*;
use crate::{JobStore, Result, StoreError};

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/prelude.lua"),
            include_str!(concat!("lua/", $file))
        ))
    };
}

struct Scripts {
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
}

/// Long-lived multiplexed connections, created through the deadpool pool.
///
/// A redis-rs `MultiplexedConnection` is built to be shared: concurrent calls on it are
/// pipelined over one socket. Taking a pool object per call instead costs an extra
/// `UNWATCH`+`PING` round trip each time (deadpool's recycle check) — measured at about half
/// of Redis's syscalls under load. So connections are taken out of the pool once, shared, and
/// dropped (a fresh one is created through the pool, with its timeouts) only after a
/// connection-level error.
struct Conns {
    pool: Pool,
    slots: Vec<std::sync::Mutex<Option<MultiplexedConnection>>>,
    next: std::sync::atomic::AtomicUsize,
}

impl Conns {
    fn new(pool: Pool, n: usize) -> Self {
        Self {
            pool,
            slots: (0..n.max(1)).map(|_| std::sync::Mutex::new(None)).collect(),
            next: Default::default(),
        }
    }

    async fn get(&self) -> Result<MultiplexedConnection> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.slots.len();
        if let Some(c) = self.slots[i]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(c.clone());
        }
        let conn = deadpool_redis::Connection::take(self.pool.get().await?);
        *self.slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
        Ok(conn)
    }

    /// Passes a result through (see [`Conns::fail`]).
    fn check<T>(&self, r: redis::RedisResult<T>) -> Result<T> {
        r.map_err(|e| StoreError::from(self.fail(e)))
    }

    /// Forgets every connection after a connection-level error, so the next call reconnects.
    fn fail(&self, e: redis::RedisError) -> redis::RedisError {
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
        {
            for s in &self.slots {
                *s.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
        }
        e
    }
}

/// Redis-backed job store. Cheap to share (`Arc`); holds a connection pool.
pub struct RedisStore {
    conns: Arc<Conns>,
    client: redis::Client,
    prefix: String,
    queue_key: String,
    config: StoreConfig,
    scripts: Scripts,
    events: broadcast::Sender<Feed>,
    listener: OnceLock<()>,
    /// Dedicated connection for BLPOP (a blocking command would stall a shared connection).
    blocking: Mutex<Option<MultiplexedConnection>>,
    /// Submits waiting to go to Redis together (see [`submit_batcher`]).
    submits: OnceLock<mpsc::UnboundedSender<PendingSubmit>>,
}

/// One submit waiting for its batch.
struct PendingSubmit {
    args: Vec<Vec<u8>>,
    reply: oneshot::Sender<Result<Value>>,
}

/// Most submits sent to Redis in one pipeline.
const SUBMIT_BATCH: usize = 256;
/// Pipelines in flight at once.
const SUBMIT_PIPELINES: usize = 4;

/// Sends concurrent submits to Redis as pipelines: whatever is waiting when a pipeline
/// starts goes in it, so under load one round trip (and one syscall on each side) carries
/// many jobs, while a lone submit still goes out at once. Each submit stays its own atomic
/// script; only the transport is shared.
async fn submit_batcher(
    conns: Arc<Conns>,
    script: Script,
    all: Vec<Script>,
    queue_key: String,
    mut rx: mpsc::UnboundedReceiver<PendingSubmit>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(SUBMIT_PIPELINES));
    let mut batch = Vec::with_capacity(SUBMIT_BATCH);
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        if rx.recv_many(&mut batch, SUBMIT_BATCH).await == 0 {
            return;
        }
        let jobs = std::mem::replace(&mut batch, Vec::with_capacity(SUBMIT_BATCH));
        let (conns, script, all, queue_key) = (
            conns.clone(),
            script.clone(),
            all.clone(),
            queue_key.clone(),
        );
        tokio::spawn(async move {
            let mut pipe = redis::pipe();
            for j in &jobs {
                let mut inv = script.key(&queue_key);
                for a in &j.args {
                    inv.arg(a.as_slice());
                }
                pipe.invoke_script(&inv);
            }
            let result: std::result::Result<Vec<Value>, String> = async {
                let mut conn = conns.get().await.map_err(|e| e.to_string())?;
                let r = match pipe.query_async::<Vec<Value>>(&mut conn).await {
                    Err(e) if is_noscript(&e) => {
                        for s in &all {
                            conns
                                .check(s.prepare_invoke().load_async(&mut conn).await)
                                .map_err(|e| e.to_string())?;
                        }
                        pipe.query_async(&mut conn).await
                    }
                    other => other,
                };
                conns.check(r).map_err(|e| e.to_string())
            }
            .await;
            match result {
                Ok(values) => {
                    for (j, v) in jobs.into_iter().zip(values) {
                        let _ = j.reply.send(Ok(v));
                    }
                }
                Err(e) => {
                    for j in jobs {
                        let _ = j.reply.send(Err(StoreError::Unavailable(e.clone())));
                    }
                }
            }
            drop(permit);
        });
    }
}

fn is_noscript(e: &redis::RedisError) -> bool {
    e.code() == Some("NOSCRIPT")
}

impl RedisStore {
    /// Creates the store. Does not need Redis to be up yet: calls fail with
    /// [`StoreError::is_unavailable`] errors until it is, and recover by themselves after.
    pub fn new(url: &str, config: StoreConfig) -> Result<Arc<Self>> {
        let client = redis::Client::open(url)?;
        let mut cfg = deadpool_redis::Config::from_url(url);
        cfg.pool = Some(PoolConfig {
            max_size: 32,
            timeouts: Timeouts {
                wait: Some(Duration::from_secs(2)),
                create: Some(Duration::from_secs(2)),
                recycle: Some(Duration::from_secs(1)),
            },
            ..Default::default()
        });
        let pool = cfg
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| StoreError::Corrupt {
                key: "config".into(),
                detail: format!("bad redis url: {e}"),
            })?;
        let queue = "default";
        let prefix = format!("pfc:{{{queue}}}:");
        Ok(Arc::new(Self {
            conns: Arc::new(Conns::new(pool, 4)),
            client,
            queue_key: format!("{prefix}queued"),
            prefix,
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
        &self.prefix
    }

    fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }

    /// Runs a pipeline of script calls, loading the scripts once if Redis lost them (restart,
    /// `SCRIPT FLUSH`) and retrying.
    async fn run_pipe<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T> {
        let mut conn = self.conns.get().await?;
        match pipe.query_async::<T>(&mut conn).await {
            Err(e) if is_noscript(&e) => {
                for s in self.scripts.all() {
                    self.conns
                        .check(s.prepare_invoke().load_async(&mut conn).await)?;
                }
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
            let client = self.client.clone();
            let channel = format!("{}events", self.prefix);
            let tx = self.events.clone();
            tokio::spawn(async move {
                let mut backoff = Duration::from_millis(100);
                loop {
                    match client.get_async_pubsub().await {
                        Ok(mut ps) => {
                            if ps.subscribe(&channel).await.is_ok() {
                                backoff = Duration::from_millis(100);
                                // events published while no subscription was live are lost:
                                // tell watchers to re-read (also covers the first subscribe)
                                let _ = tx.send(Feed::Gap);
                                let mut stream = ps.into_on_message();
                                while let Some(msg) = stream.next().await {
                                    if let Ok(payload) = msg.get_payload::<String>() {
                                        if let Some(ev) = parse_event(&payload) {
                                            let _ = tx.send(Feed::Event(ev));
                                        }
                                    }
                                }
                            }
                            tracing::warn!("job event subscription lost; reconnecting");
                        }
                        Err(e) => tracing::debug!(error = %e, "job event subscription failed"),
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            });
        });
    }

    async fn blpop_wake(&self, timeout: Duration) -> Result<()> {
        let mut guard = self.blocking.lock().await;
        if guard.is_none() {
            let cfg = AsyncConnectionConfig::new()
                .set_response_timeout(Some(Duration::from_secs(3)))
                .set_connection_timeout(Some(Duration::from_secs(2)));
            *guard = Some(
                self.client
                    .get_multiplexed_async_connection_with_config(&cfg)
                    .await?,
            );
        }
        let conn = guard.as_mut().expect("connection set above");
        let secs = timeout.as_secs_f64().clamp(0.01, 2.0);
        let r: redis::RedisResult<Value> = redis::cmd("BLPOP")
            .arg(format!("{}wake", self.prefix))
            .arg(format!("{secs:.3}"))
            .query_async(conn)
            .await;
        if let Err(e) = r {
            *guard = None;
            return Err(e.into());
        }
        Ok(())
    }
}

fn parse_event(s: &str) -> Option<JobEvent> {
    let mut it = s.splitn(8, '\t');
    let job_id = it.next()?.to_owned();
    let status = it.next()?.parse().ok()?;
    let version = it.next()?.parse().ok()?;
    let attempts = it.next()?.parse().ok()?;
    let kind = it.next()?.to_owned();
    let at = it.next()?.parse().ok()?;
    let worker = it.next()?;
    let error = it.next().unwrap_or("");
    Some(JobEvent {
        job_id,
        status,
        version,
        attempts,
        kind,
        at,
        error: (!error.is_empty()).then(|| error.to_owned()),
        worker_id: (!worker.is_empty()).then(|| worker.to_owned()),
        result: None,
    })
}

fn corrupt(key: &str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        detail: detail.into(),
    }
}

/// Builds a [`Job`] from its hash fields.
fn job_from_fields(mut f: HashMap<String, String>) -> Result<Job> {
    let id = f.remove("id").ok_or_else(|| corrupt("job", "missing id"))?;
    let num = |f: &HashMap<String, String>, k: &str| -> Result<i64> {
        f.get(k)
            .ok_or_else(|| corrupt(&id, format!("missing {k}")))?
            .parse()
            .map_err(|_| corrupt(&id, format!("bad {k}")))
    };
    let opt = |f: &HashMap<String, String>, k: &str| f.get(k).and_then(|v| v.parse::<i64>().ok());
    let status: Status = f
        .get("status")
        .ok_or_else(|| corrupt(&id, "missing status"))?
        .parse()
        .map_err(|e: UnknownStatus| corrupt(&id, e.to_string()))?;
    Ok(Job {
        status,
        attempts: num(&f, "attempts")? as u32,
        max_attempts: num(&f, "max")? as u32,
        created_at: num(&f, "created")?,
        updated_at: num(&f, "updated")?,
        version: num(&f, "v")? as u64,
        run_at: opt(&f, "run_at"),
        started_at: opt(&f, "started"),
        finished_at: opt(&f, "finished"),
        kind: f.remove("kind").unwrap_or_default(),
        queue: "default".into(),
        text: f.remove("text").unwrap_or_default(),
        result: f.remove("result"),
        error: f.remove("error"),
        idempotency_key: f.remove("idem"),
        worker_id: f.remove("worker"),
        traceparent: f.remove("tp"),
        id,
    })
}

fn fields_from_value(v: Value) -> Result<HashMap<String, String>> {
    redis::from_redis_value(v).map_err(|e| corrupt("job", e.to_string()))
}

#[async_trait]
impl JobStore for RedisStore {
    async fn submit(&self, new: NewJob) -> Result<Submitted> {
        let id = new_job_id();
        let run_at = new.run_at.map(|t| t.to_string()).unwrap_or_default();
        let tx = self.submits.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let all = self.scripts.all().into_iter().cloned().collect();
            tokio::spawn(submit_batcher(
                self.conns.clone(),
                self.scripts.submit.clone(),
                all,
                self.queue_key.clone(),
                rx,
            ));
            tx
        });
        let args: Vec<Vec<u8>> = vec![
            self.prefix.clone().into_bytes(),
            id.clone().into_bytes(),
            new.kind.clone().into_bytes(),
            new.text.clone().into_bytes(),
            new.max_attempts.max(1).to_string().into_bytes(),
            run_at.into_bytes(),
            new.idempotency_key.clone().unwrap_or_default().into_bytes(),
            new.traceparent.clone().unwrap_or_default().into_bytes(),
            Self::ms(self.config.retention).to_string().into_bytes(),
        ];
        let (reply, rx) = oneshot::channel();
        tx.send(PendingSubmit { args, reply })
            .map_err(|_| StoreError::Closed)?;
        let value = rx.await.map_err(|_| StoreError::Closed)??;
        let (flag, rest): (i64, Vec<Value>) = {
            let v: Vec<Value> =
                redis::from_redis_value(value).map_err(|e| corrupt("submit", e.to_string()))?;
            let mut it = v.into_iter();
            let flag = it
                .next()
                .and_then(|v| redis::from_redis_value::<i64>(v).ok())
                .ok_or_else(|| corrupt("submit", "bad reply"))?;
            (flag, it.collect())
        };
        if flag == 0 {
            let existing: String = rest
                .into_iter()
                .next()
                .and_then(|v| redis::from_redis_value(v).ok())
                .ok_or_else(|| corrupt("submit", "bad reply"))?;
            let job = self
                .get(&existing)
                .await?
                .ok_or(StoreError::NotFound(existing))?;
            return Ok(Submitted {
                job,
                created: false,
            });
        }
        let mut it = rest.into_iter().skip(1);
        let now: i64 = it
            .next()
            .and_then(|v| redis::from_redis_value(v).ok())
            .ok_or_else(|| corrupt("submit", "bad reply"))?;
        let status: String = it
            .next()
            .and_then(|v| redis::from_redis_value(v).ok())
            .ok_or_else(|| corrupt("submit", "bad reply"))?;
        let status: Status = status
            .parse()
            .map_err(|e: UnknownStatus| corrupt("submit", e.to_string()))?;
        Ok(Submitted {
            created: true,
            job: Job {
                id,
                kind: new.kind,
                queue: "default".into(),
                status,
                text: new.text,
                result: None,
                error: None,
                attempts: 0,
                max_attempts: new.max_attempts.max(1),
                created_at: now,
                updated_at: now,
                run_at: (status == Status::Scheduled)
                    .then_some(new.run_at)
                    .flatten(),
                started_at: None,
                finished_at: None,
                idempotency_key: new.idempotency_key,
                worker_id: None,
                version: 1,
                traceparent: new.traceparent,
            },
        })
    }

    async fn get(&self, id: &str) -> Result<Option<Job>> {
        let mut conn = self.conns.get().await?;
        let f: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("{}job:{id}", self.prefix))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.conns.fail(e))?;
        if f.is_empty() {
            return Ok(None);
        }
        job_from_fields(f).map(Some)
    }

    async fn list(&self, q: ListQuery) -> Result<Page> {
        let index = match q.status {
            Some(s) => format!("{}status:{}", self.prefix, s.as_str()),
            None => format!("{}all", self.prefix),
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
                let key = format!("{}queued", self.prefix);
                let len: i64 = redis::cmd("LLEN")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| self.conns.fail(e))?;
                let end = match &q.before {
                    None => len - 1,
                    Some(b) => {
                        let pos: Option<i64> = redis::cmd("LPOS")
                            .arg(&key)
                            .arg(b)
                            .arg("RANK")
                            .arg(-1)
                            .query_async(&mut conn)
                            .await
                            .map_err(|e| self.conns.fail(e))?;
                        // a cursor job that left the queue ends the listing
                        pos.map_or(-1, |p| p - 1)
                    }
                };
                let mut ids: Vec<String> = if end < 0 {
                    Vec::new()
                } else {
                    let start = (end - limit as i64).max(0);
                    redis::cmd("LRANGE")
                        .arg(&key)
                        .arg(start)
                        .arg(end)
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| self.conns.fail(e))?
                };
                ids.reverse();
                (ids, len.max(0) as u64)
            }
            Some(Status::Processing) => {
                let mut all: Vec<String> = redis::cmd("ZRANGE")
                    .arg(format!("{}leases", self.prefix))
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| self.conns.fail(e))?;
                let total = all.len() as u64;
                all.sort_unstable_by(|a, b| b.cmp(a));
                let ids = all
                    .into_iter()
                    .filter(|id| q.before.as_ref().is_none_or(|b| id < b))
                    .take(limit + 1)
                    .collect();
                (ids, total)
            }
            _ => redis::pipe()
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
                .await
                .map_err(|e| self.conns.fail(e))?,
        };
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HGETALL").arg(format!("{}job:{id}", self.prefix));
        }
        let hashes: Vec<HashMap<String, String>> = if ids.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut conn)
                .await
                .map_err(|e| self.conns.fail(e))?
        };
        let mut jobs = Vec::with_capacity(ids.len());
        let mut gone = Vec::new();
        for (id, f) in ids.iter().zip(hashes) {
            if f.is_empty() {
                gone.push(id.clone());
            } else {
                jobs.push(job_from_fields(f)?);
            }
        }
        let has_index = !matches!(q.status, Some(Status::Queued | Status::Processing));
        if has_index && !gone.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("ZREM")
                .arg(&index)
                .arg(&gone)
                .query_async(&mut conn)
                .await;
        }
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
            total: total.saturating_sub(gone.len() as u64),
        })
    }

    async fn cancel(&self, id: &str) -> Result<Job> {
        let r: Vec<Value> = self
            .invoke(
                self.scripts
                    .cancel
                    .key(&self.queue_key)
                    .arg(&self.prefix)
                    .arg(id)
                    .arg(Self::ms(self.config.retention)),
            )
            .await?;
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
        let p = &self.prefix;
        let ttl = Self::ms(self.config.worker_ttl) as i64;
        let (queued, scheduled, processing, counters, time): (
            u64,
            u64,
            u64,
            HashMap<String, u64>,
            (i64, i64),
        ) = redis::pipe()
            .cmd("LLEN")
            .arg(format!("{p}queued"))
            .cmd("ZCARD")
            .arg(format!("{p}scheduled"))
            .cmd("ZCARD")
            .arg(format!("{p}leases"))
            .cmd("HGETALL")
            .arg(format!("{p}stats"))
            .cmd("TIME")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.conns.fail(e))?;
        let now = time.0 * 1000 + time.1 / 1000;
        let live: Vec<(String, i64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(format!("{p}workers"))
            .arg(now - ttl)
            .arg("+inf")
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.conns.fail(e))?;
        let mut workers = Vec::with_capacity(live.len());
        if !live.is_empty() {
            let mut pipe = redis::pipe();
            for (id, _) in &live {
                pipe.cmd("HMGET")
                    .arg(format!("{p}worker:{id}"))
                    .arg("concurrency")
                    .arg("in_flight");
            }
            let infos: Vec<(Option<u32>, Option<u32>)> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| self.conns.fail(e))?;
            for ((id, seen), (c, n)) in live.into_iter().zip(infos) {
                workers.push(WorkerInfo {
                    id,
                    concurrency: c.unwrap_or(0),
                    in_flight: n.unwrap_or(0),
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
            let (now, next_due, jobs): (i64, i64, Vec<Value>) = self
                .invoke(
                    self.scripts
                        .take
                        .key(&self.queue_key)
                        .arg(&self.prefix)
                        .arg(worker)
                        .arg(max)
                        .arg(Self::ms(self.config.lease))
                        .arg(Self::ms(self.config.retention)),
                )
                .await?;
            if !jobs.is_empty() {
                return jobs
                    .into_iter()
                    .map(|v| job_from_fields(fields_from_value(v)?))
                    .collect();
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(Vec::new());
            }
            let mut nap = left;
            if next_due >= 0 {
                nap = nap.min(Duration::from_millis((next_due - now).max(10) as u64));
            }
            self.blpop_wake(nap).await?;
        }
    }

    async fn heartbeat(&self, worker: &WorkerInfo, leases: &[LeaseRef]) -> Result<Vec<LeaseRef>> {
        let mut inv = self.scripts.heartbeat.key(&self.queue_key);
        inv.arg(&self.prefix)
            .arg(&worker.id)
            .arg(worker.concurrency)
            .arg(worker.in_flight)
            .arg(Self::ms(self.config.lease))
            .arg(Self::ms(self.config.worker_ttl));
        for l in leases {
            inv.arg(&l.job_id).arg(l.attempt);
        }
        let lost: Vec<String> = self.invoke(&inv).await?;
        Ok(lost
            .chunks(2)
            .filter_map(|c| {
                Some(LeaseRef {
                    job_id: c.first()?.clone(),
                    attempt: c.get(1)?.parse().ok()?,
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
            pipe.invoke_script(
                self.scripts
                    .complete
                    .key(&self.queue_key)
                    .arg(&self.prefix)
                    .arg(&c.job_id)
                    .arg(c.attempt)
                    .arg(outcome)
                    .arg(payload)
                    .arg(Self::ms(self.config.retention))
                    .arg(backoff),
            );
        }
        let applied: Vec<i64> = self.run_pipe(&pipe).await?;
        Ok(applied
            .into_iter()
            .map(|a| {
                if a == 1 {
                    CompletionResult::Applied
                } else {
                    CompletionResult::Stale
                }
            })
            .collect())
    }

    async fn release(&self, worker: &str, leases: &[LeaseRef]) -> Result<()> {
        if leases.is_empty() {
            return Ok(());
        }
        let mut inv = self.scripts.release.key(&self.queue_key);
        inv.arg(&self.prefix).arg(worker);
        for l in leases {
            inv.arg(&l.job_id).arg(l.attempt);
        }
        let _: i64 = self.invoke(&inv).await?;
        Ok(())
    }

    async fn unregister_worker(&self, worker: &str) -> Result<()> {
        let mut conn = self.conns.get().await?;
        let _: () = redis::pipe()
            .cmd("ZREM")
            .arg(format!("{}workers", self.prefix))
            .arg(worker)
            .cmd("DEL")
            .arg(format!("{}worker:{worker}", self.prefix))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.conns.fail(e))?;
        Ok(())
    }

    async fn maintain(&self) -> Result<()> {
        let _: Value = self
            .invoke(
                self.scripts
                    .take
                    .key(&self.queue_key)
                    .arg(&self.prefix)
                    .arg("maintenance")
                    .arg(0)
                    .arg(Self::ms(self.config.lease))
                    .arg(Self::ms(self.config.retention)),
            )
            .await?;
        let mut inv = self.scripts.sweep.key(&self.queue_key);
        inv.arg(&self.prefix).arg("all");
        for s in Status::ALL.into_iter().filter(|s| s.is_terminal()) {
            inv.arg(format!("status:{}", s.as_str()));
        }
        let _: i64 = self.invoke(&inv).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.conns.get().await?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.conns.fail(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events published by the scripts parse back, including errors that contain tabs.
    #[test]
    fn parses_events() {
        let e = parse_event("01J\tfailed\t4\t3\tuppercase\t1700\tw1\tboom\twith tab").unwrap();
        assert_eq!(e.status, Status::Failed);
        assert_eq!(e.version, 4);
        assert_eq!(e.error.as_deref(), Some("boom\twith tab"));
        assert_eq!(e.worker_id.as_deref(), Some("w1"));
        let e = parse_event("01J\tqueued\t1\t0\tuppercase\t1700\t\t").unwrap();
        assert_eq!(e.error, None);
        assert_eq!(e.worker_id, None);
        assert!(parse_event("garbage").is_none());
    }
}
