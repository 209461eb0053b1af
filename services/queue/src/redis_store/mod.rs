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
//! - `registry`: the queues (each its own slot) and the `pfc:queues` set naming them.
//! - `submit`: the submit batcher (many submits per round trip, one result each).
//! - `store`: the [`JobStore`] implementation.
//! - this file: the store, its scripts and the calls they share.

mod conn;
mod events;
mod keys;
mod record;
mod registry;
mod store;
mod submit;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::{Script, Value};
use tokio::sync::{broadcast, mpsc, Mutex};

use crate::model::*;
use crate::{Result, StoreError};
use conn::{is_transport, Backend, Conns};
pub use conn::{Conn, RedisConnections};
use record::{corrupt, job_from_record};
use registry::{Queue, Registry, QUEUES_KEY};

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
    configure: Script,
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
            configure: script!(sharded, "configure.lua"),
        }
    }

    fn all(&self) -> [&Script; 11] {
        [
            &self.configure,
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
    /// The default queue (also home of the worker registry, the leader key and health).
    default: Arc<Queue>,
    /// Every queue met so far.
    registry: Registry,
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
}

/// How long the known kinds are cached (a script that meets an unknown one asks for a refresh).
const KINDS_TTL: Duration = Duration::from_secs(1);
/// Longest nap of an idle take from several queues on a cluster (it cannot block on all).
const MULTI_QUEUE_NAP: Duration = Duration::from_millis(200);

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
        let registry = Registry::default();
        Ok(Arc::new(Self {
            conns: Arc::new(Conns::new(backend)),
            default: registry.get(crate::DEFAULT_QUEUE),
            registry,
            wait_replicas: mode.wait_replicas,
            config,
            scripts: Scripts::new(mode.cluster),
            events: broadcast::channel(4096).0,
            listener: OnceLock::new(),
            blocking: Mutex::new(None),
            submits: OnceLock::new(),
            instance: new_job_id(),
        }))
    }

    /// The key prefix of the default queue (`pfc:{default}:`), for tools and tests.
    pub fn prefix(&self) -> &str {
        self.default.keys.prefix()
    }

    /// The key prefix of queue `queue` (`pfc:{<queue>}:`), for tools and tests.
    pub fn prefix_of(&self, queue: &str) -> String {
        self.registry.get(queue).keys.prefix().to_owned()
    }

    /// The queue a job id belongs to.
    fn queue_of(&self, id: &str) -> Arc<Queue> {
        self.registry.get(crate::queue_of(id))
    }

    /// Adds `queue` to the registry set before its first submit from this process.
    async fn register(&self, queue: &Queue) -> Result<()> {
        if self.registry.is_registered(&queue.name) {
            return Ok(());
        }
        let mut conn = self.conns.get().await?;
        let _: i64 = self.conns.check(
            redis::cmd("SADD")
                .arg(QUEUES_KEY)
                .arg(&queue.name)
                .query_async(&mut conn)
                .await,
        )?;
        self.registry.mark_registered(&queue.name);
        Ok(())
    }

    /// Every queue name (the registry set and the default queue), sorted; cached for
    /// [`registry::QUEUES_TTL`]. While the set cannot be read (Redis down), the queues this
    /// process already knows: the calls on them retry or fail by their own rules (a take keeps
    /// its request id across a lost reply, see `take_once`).
    async fn queue_names(&self) -> Result<Vec<String>> {
        if let Some(l) = self.registry.cached() {
            return Ok(l);
        }
        let read = async {
            let mut conn = self.conns.get().await?;
            let names = self.conns.check(
                redis::cmd("SMEMBERS")
                    .arg(QUEUES_KEY)
                    .query_async::<Vec<String>>(&mut conn)
                    .await,
            )?;
            Ok::<_, StoreError>(names)
        };
        match read.await {
            Ok(names) => Ok(self.registry.store(names)),
            Err(e) if e.is_unavailable() => {
                tracing::debug!(error = %e, "queue registry unreadable; using the known queues");
                Ok(self.registry.known())
            }
            Err(e) => Err(e),
        }
    }

    /// The queues `names` (empty: every queue).
    async fn queues_named(&self, names: &[String]) -> Result<Vec<Arc<Queue>>> {
        let names = if names.is_empty() {
            self.queue_names().await?
        } else {
            names.to_vec()
        };
        Ok(names.iter().map(|n| self.registry.get(n)).collect())
    }

    fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }

    /// A script invocation with the queue's keys, `own` (`KEYS[21]`, or a placeholder), the
    /// lists of `kinds` and the events channel already in place.
    fn call<'a>(
        &self,
        q: &Queue,
        script: &'a Script,
        own: Option<&str>,
        kinds: &[String],
    ) -> redis::ScriptInvocation<'a> {
        let keys = &q.keys;
        let mut inv = script.prepare_invoke();
        for k in keys.all() {
            inv.key(k);
        }
        match own {
            Some(k) => inv.key(k),
            None => inv.key(keys.placeholder()),
        };
        for kind in kinds {
            inv.key(keys.ready(kind)).key(keys.wake(kind));
        }
        inv.arg(keys.channel());
        inv.arg(serde_json::to_string(kinds).unwrap_or_else(|_| "[]".into()));
        inv
    }

    /// Every known kind of queue `q` (cached for [`KINDS_TTL`]; `refresh` forces a read).
    async fn known_kinds(&self, q: &Queue, refresh: bool) -> Result<Vec<String>> {
        {
            let g = q.kinds.lock().unwrap_or_else(|p| p.into_inner());
            if let (false, Some(at)) = (refresh, g.0) {
                if at.elapsed() < KINDS_TTL {
                    return Ok(g.1.clone());
                }
            }
        }
        let mut conn = self.conns.get().await?;
        let mut kinds: Vec<String> = self.conns.check(
            redis::cmd("SMEMBERS")
                .arg(q.keys.key("kinds"))
                .query_async(&mut conn)
                .await,
        )?;
        kinds.sort();
        *q.kinds.lock().unwrap_or_else(|p| p.into_inner()) =
            (Some(tokio::time::Instant::now()), kinds.clone());
        Ok(kinds)
    }

    /// `own` first, then every other known kind.
    async fn kinds_with(&self, q: &Queue, own: &[String], refresh: bool) -> Result<Vec<String>> {
        let mut all: Vec<String> = own.to_vec();
        for k in self.known_kinds(q, refresh).await? {
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
    async fn wait_replicas(&self, conn: &mut Conn, q: &Queue) -> Result<()> {
        if self.wait_replicas == 0 {
            return Ok(());
        }
        let acked = self
            .conns
            .check(conn::wait(conn, q.keys.slot(), self.wait_replicas, WAIT_TIMEOUT_MS).await)?;
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
        q: &Queue,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        let mut conn = self.conns.get().await?;
        let v = self.conns.check(inv.invoke_async(&mut conn).await)?;
        self.wait_replicas(&mut conn, q).await?;
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
                self.default.keys.channel().to_owned(),
                self.events.clone(),
            ));
        });
    }

    /// Blocks until a job of `kinds` may be ready in one of `queues`, or `timeout`. On a
    /// cluster a `BLPOP` can only wait on keys of one slot, so a take from several queues
    /// naps (at most [`MULTI_QUEUE_NAP`]) instead of blocking.
    async fn blpop_wake(
        &self,
        queues: &[Arc<Queue>],
        kinds: &[String],
        timeout: Duration,
    ) -> Result<()> {
        if kinds.is_empty() || queues.is_empty() {
            tokio::time::sleep(timeout).await;
            return Ok(());
        }
        if queues.len() > 1 && matches!(self.conns.backend(), Backend::Cluster(_)) {
            tokio::time::sleep(timeout.min(MULTI_QUEUE_NAP)).await;
            return Ok(());
        }
        let mut guard = self.blocking.lock().await;
        if guard.is_none() {
            *guard = Some(self.conns.backend().connect(Duration::from_secs(3)).await?);
        }
        let conn = guard.as_mut().expect("connection set above");
        let secs = timeout.as_secs_f64().clamp(0.01, 2.0);
        let mut cmd = redis::cmd("BLPOP");
        for q in queues {
            for k in kinds {
                cmd.arg(q.keys.wake(k));
            }
        }
        let r: redis::RedisResult<Value> = cmd.arg(format!("{secs:.3}")).query_async(conn).await;
        if let Err(e) = r {
            *guard = None;
            return Err(e.into());
        }
        Ok(())
    }

    /// Reads jobs by id (record, input, result) in one round trip; `None` for unknown ids.
    async fn read_jobs(
        &self,
        conn: &mut Conn,
        q: &Queue,
        ids: &[String],
    ) -> Result<Vec<Option<Job>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        type Col = Vec<Option<Vec<u8>>>;
        let (records, inputs, outputs): (Col, Col, Col) = self.conns.check(
            redis::pipe()
                .cmd("HMGET")
                .arg(q.keys.key("jobs"))
                .arg(ids)
                .cmd("HMGET")
                .arg(q.keys.key("input"))
                .arg(ids)
                .cmd("HMGET")
                .arg(q.keys.key("output"))
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
        q: &Queue,
        worker: &str,
        own: &[String],
        max: usize,
    ) -> Result<(i64, i64, Vec<Job>)> {
        let request = new_job_id();
        let receipt = q.keys.take_receipt(&request);
        let give_up = tokio::time::Instant::now() + TAKE_RETRY_FOR;
        let mut backoff = Duration::from_millis(50);
        let mut refresh = false;
        loop {
            let kinds = match self.kinds_with(q, own, refresh).await {
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
            let mut inv = self.call(q, &self.scripts.take, Some(&receipt), &kinds);
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
