//! The [`JobStore`] implementation of [`RedisStore`]: every call finds its queue (from the
//! job id, or the caller's list of queues) and runs that queue's scripts on its keys. Calls
//! that span queues (a take from several, a heartbeat or a batch of reports on jobs of
//! several, listing, stats, housekeeping) are one call per queue: each queue is its own slot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use tokio::sync::{broadcast, mpsc};

use super::conn::Conn;
use super::record::{self, corrupt};
use super::registry::Queue;
use super::{submit, RedisStore, SWEEP_BATCH, SWEEP_ROUNDS};
use crate::model::*;
use crate::queues::{queue_or_default, sort_key, QueueInfo, QueueLimits, DEFAULT_QUEUE};
use crate::{JobStore, Result, StoreError};

impl RedisStore {
    /// Groups `items` by the queue of their job id, in order of first appearance; each group
    /// holds the items' indices.
    fn by_queue<T>(&self, items: &[T], id: impl Fn(&T) -> &str) -> Vec<(Arc<Queue>, Vec<usize>)> {
        let mut groups: Vec<(Arc<Queue>, Vec<usize>)> = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let name = crate::queue_of(id(it));
            match groups.iter_mut().find(|(q, _)| q.name == name) {
                Some((_, ix)) => ix.push(i),
                None => groups.push((self.registry.get(name), vec![i])),
            }
        }
        groups
    }

    /// The queue `name` when it exists (is in the registry).
    async fn existing_queue(&self, name: &str) -> Result<Arc<Queue>> {
        let mut names = self.queue_names().await?;
        if !names.iter().any(|n| n == name) {
            // created by another process within the cache's lifetime?
            self.registry.forget_listing();
            names = self.queue_names().await?;
        }
        if names.iter().any(|n| n == name) {
            Ok(self.registry.get(name))
        } else {
            Err(StoreError::QueueNotFound(name.to_owned()))
        }
    }

    /// Sets settings of queue `q` (`conf`; an empty value deletes) and wakes its workers.
    async fn configure(&self, q: &Queue, fields: &[(&str, &str)]) -> Result<()> {
        let kinds = self.known_kinds(q, true).await?;
        let mut inv = self.call(q, &self.scripts.configure, None, &kinds);
        for (f, v) in fields {
            inv.arg(*f).arg(*v);
        }
        let _: Vec<String> = self.invoke_durable(q, &inv).await?;
        Ok(())
    }

    /// Depth, in-flight work and counters of one queue, and its kinds.
    async fn queue_info(&self, conn: &mut Conn, q: &Queue) -> Result<(QueueInfo, Vec<String>)> {
        let k = &q.keys;
        type Read = (
            u64,
            u64,
            u64,
            HashMap<String, u64>,
            Vec<String>,
            HashMap<String, String>,
        );
        let (queued, scheduled, processing, counters, kinds, conf): Read = self.conns.check(
            redis::pipe()
                .cmd("ZCARD")
                .arg(k.key("status:queued"))
                .cmd("ZCARD")
                .arg(k.key("scheduled"))
                .cmd("ZCARD")
                .arg(k.key("leases"))
                .cmd("HGETALL")
                .arg(k.key("stats"))
                .cmd("SMEMBERS")
                .arg(k.key("kinds"))
                .cmd("HGETALL")
                .arg(k.key("conf"))
                .query_async(conn)
                .await,
        )?;
        let c = |k: &str| counters.get(k).copied().unwrap_or(0);
        Ok((
            QueueInfo {
                name: q.name.clone(),
                queued,
                scheduled,
                processing,
                submitted_total: c("submitted"),
                done_total: c("done"),
                failed_total: c("failed"),
                cancelled_total: c("cancelled"),
                retried_total: c("retried"),
                paused: conf.get("paused").is_some_and(|p| p == "1"),
                limits: QueueLimits {
                    concurrency: conf
                        .get("concurrency")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                    rate: conf.get("rate").and_then(|v| v.parse().ok()).unwrap_or(0),
                    rate_period_ms: conf.get("period").and_then(|v| v.parse().ok()).unwrap_or(0),
                },
            },
            kinds,
        ))
    }

    /// Up to `n` ids of queue `q`, newest first, older than the ULID `cursor`, and how many
    /// the filter matches in that queue.
    async fn list_ids(
        &self,
        conn: &mut Conn,
        q: &Queue,
        status: Option<Status>,
        cursor: Option<&str>,
        n: usize,
    ) -> Result<(Vec<String>, u64)> {
        if status == Some(Status::Processing) {
            // PROCESSING has no index of its own (design.md): page the lease set (bounded by
            // worker concurrency)
            let mut all: Vec<String> = self.conns.check(
                redis::cmd("ZRANGE")
                    .arg(q.keys.key("leases"))
                    .arg(0)
                    .arg(-1)
                    .query_async(conn)
                    .await,
            )?;
            let total = all.len() as u64;
            all.sort_unstable_by(|a, b| sort_key(b).cmp(sort_key(a)));
            let ids = all
                .into_iter()
                .filter(|id| cursor.is_none_or(|c| sort_key(id) < c))
                .take(n)
                .collect();
            return Ok((ids, total));
        }
        let index = match status {
            Some(s) => q.keys.key(&format!("status:{}", s.as_str())),
            None => q.keys.key("all"),
        };
        // ids of one queue share their prefix, so lexicographic order is ULID order
        let max = match cursor {
            Some(c) if q.name == DEFAULT_QUEUE => format!("({c}"),
            Some(c) => format!("({}.{c}", q.name),
            None => "+".to_owned(),
        };
        Ok(self.conns.check(
            redis::pipe()
                .cmd("ZREVRANGEBYLEX")
                .arg(&index)
                .arg(&max)
                .arg("-")
                .arg("LIMIT")
                .arg(0)
                .arg(n)
                .cmd("ZCARD")
                .arg(&index)
                .query_async(conn)
                .await,
        )?)
    }
}

#[async_trait]
impl JobStore for RedisStore {
    async fn submit(&self, new: NewJob) -> Result<Submitted> {
        let q = self.registry.get(queue_or_default(&new.queue));
        self.register(&q).await?;
        let tx = self.submits.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(submit::batcher(
                self.conns.clone(),
                self.scripts.clone(),
                self.wait_replicas,
                rx,
            ));
            tx
        });
        submit::submit(self, tx, q, new).await
    }

    async fn get(&self, id: &str) -> Result<Option<Job>> {
        let q = self.queue_of(id);
        let mut conn = self.conns.get().await?;
        Ok(self
            .read_jobs(&mut conn, &q, &[id.to_owned()])
            .await?
            .pop()
            .flatten())
    }

    /// One queue's indexes, or every queue's merged by ULID (each queue is read up to a page
    /// past the cursor, so a page costs one round trip per queue).
    async fn list(&self, query: ListQuery) -> Result<Page> {
        let queues = match &query.queue {
            Some(n) => vec![self.registry.get(n)],
            None => self.queues_named(&[]).await?,
        };
        let limit = query.limit.max(1);
        let cursor = query.before.as_deref().map(sort_key);
        let mut conn = self.conns.get().await?;
        let mut ids: Vec<(String, usize)> = Vec::new();
        let mut total = 0;
        for (qi, q) in queues.iter().enumerate() {
            let (found, n) = self
                .list_ids(&mut conn, q, query.status, cursor, limit + 1)
                .await?;
            total += n;
            ids.extend(found.into_iter().map(|id| (id, qi)));
        }
        ids.sort_by(|a, b| sort_key(&b.0).cmp(sort_key(&a.0)));
        ids.truncate(limit + 1);
        let mut found: HashMap<String, Job> = HashMap::new();
        let mut gone = 0u64;
        for (qi, q) in queues.iter().enumerate() {
            let mine: Vec<String> = ids
                .iter()
                .filter(|(_, i)| *i == qi)
                .map(|(id, _)| id.clone())
                .collect();
            for (id, job) in mine.iter().zip(self.read_jobs(&mut conn, q, &mine).await?) {
                match job {
                    Some(j) => {
                        found.insert(id.clone(), j);
                    }
                    None => gone += 1,
                }
            }
        }
        let mut jobs: Vec<Job> = ids.iter().filter_map(|(id, _)| found.remove(id)).collect();
        let next = if ids.len() > limit {
            jobs.truncate(limit);
            // continue after the last id examined on this page, alive or not
            ids.get(limit - 1).map(|(id, _)| id.clone())
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
        let q = self.queue_of(id);
        let mut inv = self.call(&q, &self.scripts.cancel, None, &[]);
        inv.arg(id).arg(Self::ms(self.config.retention));
        let r: Vec<Value> = self.invoke_durable(&q, &inv).await?;
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
        let queues = self.queues_named(&[]).await?;
        let mut conn = self.conns.get().await?;
        let mut st = Stats::default();
        let mut kinds = std::collections::BTreeSet::new();
        for q in &queues {
            let (i, k) = self.queue_info(&mut conn, q).await?;
            st.queued += i.queued;
            st.scheduled += i.scheduled;
            st.processing += i.processing;
            st.submitted_total += i.submitted_total;
            st.done_total += i.done_total;
            st.failed_total += i.failed_total;
            st.cancelled_total += i.cancelled_total;
            st.retried_total += i.retried_total;
            kinds.extend(k);
        }
        st.kinds = kinds.into_iter().collect();
        // workers register in the default queue (heartbeat.lua)
        let k = &self.default.keys;
        let ttl = Self::ms(self.config.worker_ttl) as i64;
        let time: (i64, i64) = self
            .conns
            .check(redis::cmd("TIME").query_async(&mut conn).await)?;
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
                st.workers.push(WorkerInfo {
                    id,
                    concurrency: info.c,
                    in_flight: info.n,
                    kinds: info.k,
                    last_seen: seen,
                });
            }
        }
        Ok(st)
    }

    async fn queues(&self) -> Result<Vec<QueueInfo>> {
        let queues = self.queues_named(&[]).await?;
        let mut conn = self.conns.get().await?;
        let mut out = Vec::with_capacity(queues.len());
        for q in &queues {
            out.push(self.queue_info(&mut conn, q).await?.0);
        }
        Ok(out)
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<QueueInfo> {
        let q = self.existing_queue(queue).await?;
        self.configure(&q, &[("paused", if paused { "1" } else { "" })])
            .await?;
        let mut conn = self.conns.get().await?;
        Ok(self.queue_info(&mut conn, &q).await?.0)
    }

    async fn set_limits(&self, queue: &str, limits: QueueLimits) -> Result<QueueInfo> {
        let q = self.existing_queue(queue).await?;
        let opt = |v: u64| if v == 0 { String::new() } else { v.to_string() };
        let (rate, period) = if limits.rate == 0 || limits.rate_period_ms == 0 {
            (String::new(), String::new())
        } else {
            (opt(limits.rate.into()), opt(limits.rate_period_ms))
        };
        let concurrency = opt(limits.concurrency.into());
        self.configure(
            &q,
            &[
                ("concurrency", &concurrency),
                ("rate", &rate),
                ("period", &period),
            ],
        )
        .await?;
        let mut conn = self.conns.get().await?;
        Ok(self.queue_info(&mut conn, &q).await?.0)
    }

    fn subscribe(&self) -> broadcast::Receiver<Feed> {
        // the receiver first: the listener's first `Gap` must not go out before it exists
        let rx = self.events.subscribe();
        self.start_listener();
        rx
    }

    /// One take script per queue (each is its own slot), queue after queue from a random
    /// one until the batch is full; a take from one queue is one call, as before queues.
    async fn take_from(
        &self,
        worker: &str,
        queues: &[String],
        kinds: &[String],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Job>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // read each round: a queue created meanwhile is served within the registry's TTL
            let qs = self.queues_named(queues).await?;
            let start = if qs.len() > 1 {
                rand::random_range(0..qs.len())
            } else {
                0
            };
            let mut got = Vec::new();
            let (mut now, mut next_due) = (0, -1);
            for i in 0..qs.len() {
                if got.len() >= max {
                    break;
                }
                let q = &qs[(start + i) % qs.len()];
                let (n, due, jobs) = self.take_once(q, worker, kinds, max - got.len()).await?;
                now = n;
                if due >= 0 && (next_due < 0 || due < next_due) {
                    next_due = due;
                }
                got.extend(jobs);
            }
            if !got.is_empty() {
                return Ok(got);
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
            self.blpop_wake(&qs, kinds, nap).await?;
        }
    }

    /// One heartbeat script per queue the worker holds jobs of; the default queue's also
    /// records the worker as live (workers are registered there).
    async fn heartbeat(&self, worker: &WorkerInfo, leases: &[LeaseRef]) -> Result<Vec<LeaseRef>> {
        let info = record::WorkerRecord {
            c: worker.concurrency,
            n: worker.in_flight,
            k: worker.kinds.clone(),
        };
        let info = serde_json::to_string(&info).unwrap_or_default();
        let mut groups = self.by_queue(leases, |l| &l.job_id);
        if !groups.iter().any(|(q, _)| q.name == DEFAULT_QUEUE) {
            groups.push((self.default.clone(), Vec::new()));
        }
        let mut lost = Vec::new();
        for (q, ix) in groups {
            let mut inv = self.call(&q, &self.scripts.heartbeat, None, &[]);
            inv.arg(&worker.id)
                .arg(if q.name == DEFAULT_QUEUE {
                    info.as_str()
                } else {
                    ""
                })
                .arg(Self::ms(self.config.lease))
                .arg(Self::ms(self.config.worker_ttl))
                .arg(Self::ms(self.config.clock_gap()));
            for i in ix {
                inv.arg(&leases[i].job_id).arg(leases[i].delivery);
            }
            let l: Vec<String> = self.invoke(&inv).await?;
            lost.extend(l.chunks(2).filter_map(|c| {
                Some(LeaseRef {
                    job_id: c.first()?.clone(),
                    delivery: c.get(1)?.parse().ok()?,
                })
            }));
        }
        Ok(lost)
    }

    async fn complete(&self, completions: &[Completion]) -> Result<Vec<CompletionResult>> {
        let mut out = vec![CompletionResult::Stale; completions.len()];
        for (q, ix) in self.by_queue(completions, |c| &c.job_id) {
            let mut pipe = redis::pipe();
            for &i in &ix {
                let c = &completions[i];
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
                let mut inv = self.call(&q, &self.scripts.complete, None, &[]);
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
            self.wait_replicas(&mut conn, &q).await?;
            for (i, a) in ix.into_iter().zip(applied) {
                out[i] = match a {
                    1 => CompletionResult::Applied,
                    2 => CompletionResult::Duplicate,
                    _ => CompletionResult::Stale,
                };
            }
        }
        Ok(out)
    }

    async fn release(&self, worker: &str, leases: &[LeaseRef]) -> Result<()> {
        for (q, ix) in self.by_queue(leases, |l| &l.job_id) {
            for refresh in [false, true] {
                let kinds = self.known_kinds(&q, refresh).await?;
                let mut inv = self.call(&q, &self.scripts.release, None, &kinds);
                inv.arg(worker);
                for &i in &ix {
                    inv.arg(&leases[i].job_id).arg(leases[i].delivery);
                }
                let (_, missing): (i64, i64) = self.invoke(&inv).await?;
                if missing == 0 {
                    break;
                }
            }
        }
        Ok(())
    }

    async fn abandon(&self, worker: &str, leases: &[LeaseRef]) -> Result<()> {
        for (q, ix) in self.by_queue(leases, |l| &l.job_id) {
            for refresh in [false, true] {
                let kinds = self.known_kinds(&q, refresh).await?;
                let mut inv = self.call(&q, &self.scripts.abandon, None, &kinds);
                inv.arg(worker).arg(Self::ms(self.config.retention));
                for &i in &ix {
                    inv.arg(&leases[i].job_id).arg(leases[i].delivery);
                }
                let (_, missing): (i64, i64) = self.invoke(&inv).await?;
                if missing == 0 {
                    break;
                }
            }
        }
        Ok(())
    }

    async fn unregister_worker(&self, worker: &str) -> Result<()> {
        let k = &self.default.keys;
        let mut conn = self.conns.get().await?;
        let _: () = self.conns.check(
            redis::pipe()
                .cmd("ZREM")
                .arg(k.key("workers"))
                .arg(worker)
                .cmd("HDEL")
                .arg(k.key("winfo"))
                .arg(worker)
                .query_async(&mut conn)
                .await,
        )?;
        Ok(())
    }

    async fn progress(&self, worker: &str, lease: &LeaseRef, progress: u32) -> Result<bool> {
        let q = self.queue_of(&lease.job_id);
        let mut inv = self.call(&q, &self.scripts.progress, None, &[]);
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
    /// leader after one dies. The leader keeps every queue.
    async fn maintain(&self) -> Result<()> {
        let d = &self.default;
        let mut inv = self.call(d, &self.scripts.lead, Some(&d.keys.key("leader")), &[]);
        inv.arg(&self.instance).arg(2000);
        let leads: i64 = self.invoke(&inv).await?;
        if leads != 1 {
            return Ok(());
        }
        for q in self.queues_named(&[]).await? {
            self.take_once(&q, "maintenance", &[], 0).await?;
            for _ in 0..SWEEP_ROUNDS {
                let mut inv = self.call(&q, &self.scripts.sweep, None, &[]);
                inv.arg(SWEEP_BATCH);
                let swept: usize = self.invoke(&inv).await?;
                if swept < SWEEP_BATCH {
                    break;
                }
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
                .arg(self.default.keys.key("health"))
                .arg(now_ms())
                .arg("PX")
                .arg(60_000)
                .query_async(&mut conn)
                .await,
        )?;
        Ok(())
    }
}
