//! Submits: batched onto shared round trips, each with its own result, retried by job id.
//!
//! Whatever submits are waiting when a pipeline starts go in it, so under load one round trip
//! (one syscall on each side) carries many jobs, while a lone submit still goes out at once.
//! Each submit stays its own atomic script, and each gets its **own** result (the pipeline
//! ignores errors, so one refused entry fails only its caller). The job id is chosen here,
//! before the first try, and `submit.lua` is idempotent per id: an entry whose reply was lost
//! (timeout, broken connection) or that met `NOSCRIPT` is simply sent again, and never
//! creates a second job.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::conn::{is_transport, Conns};
use super::registry::Queue;
use super::{is_noscript, RedisStore, Scripts};
use crate::model::*;
use crate::{Result, StoreError};

/// Most submits in one pipeline.
const BATCH: usize = 256;
/// Pipelines in flight at once.
const PIPELINES: usize = 4;
/// How long a submit keeps trying after transport errors before it answers UNAVAILABLE.
const RETRY_FOR: Duration = Duration::from_secs(5);

/// One submit waiting for its batch.
pub(crate) struct Pending {
    queue: Arc<Queue>,
    kind: String,
    args: Vec<Vec<u8>>,
    reply: oneshot::Sender<std::result::Result<Value, redis::RedisError>>,
}

/// Sends waiting submits as pipelines (runs for the store's lifetime).
pub(crate) async fn batcher(
    conns: Arc<Conns>,
    scripts: Scripts,
    wait_replicas: u32,
    mut rx: mpsc::UnboundedReceiver<Pending>,
) {
    let slots = Arc::new(Semaphore::new(PIPELINES));
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        let jobs = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
        let (conns, scripts) = (conns.clone(), scripts.clone());
        tokio::spawn(async move {
            // one pipeline per queue: each queue is its own slot (and its own WAIT)
            let mut groups: Vec<Vec<Pending>> = Vec::new();
            for j in jobs {
                match groups.iter_mut().find(|g| g[0].queue.name == j.queue.name) {
                    Some(g) => g.push(j),
                    None => groups.push(vec![j]),
                }
            }
            for g in groups {
                let queue = g[0].queue.clone();
                send(&conns, &scripts, &queue, wait_replicas, g).await;
            }
            drop(permit);
        });
    }
}

async fn send(conns: &Conns, scripts: &Scripts, queue: &Queue, wait: u32, jobs: Vec<Pending>) {
    let keys = &queue.keys;
    let pipe = |jobs: &[Pending]| {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for j in jobs {
            let mut inv = scripts.submit.prepare_invoke();
            for k in keys.all() {
                inv.key(k);
            }
            inv.key(keys.placeholder())
                .key(keys.ready(&j.kind))
                .key(keys.wake(&j.kind));
            inv.arg(keys.channel());
            inv.arg(serde_json::to_string(&[&j.kind]).unwrap_or_default());
            for a in &j.args {
                inv.arg(a.as_slice());
            }
            pipe.invoke_script(&inv);
        }
        pipe
    };
    // with WAIT, too few replicas acknowledging fails the whole batch (the jobs exist on the
    // master but may not survive a failover); the error is a transport one, so each submit
    // is retried with its job id (idempotent) and finally answers UNAVAILABLE
    let replicated = |conn: &mut super::Conn| {
        let mut conn = conn.clone();
        async move {
            if wait == 0 {
                return Ok(());
            }
            let acked =
                super::conn::wait(&mut conn, keys.slot(), wait, super::WAIT_TIMEOUT_MS).await?;
            if acked < i64::from(wait) {
                return Err(redis::RedisError::from(std::io::Error::other(format!(
                    "submit acknowledged by {acked} of {wait} replicas"
                ))));
            }
            Ok(())
        }
    };
    let mut conn = match conns.get().await {
        Ok(c) => c,
        Err(e) => {
            let e = redis::RedisError::from(std::io::Error::other(e.to_string()));
            for j in jobs {
                let _ = j.reply.send(Err(e.clone()));
            }
            return;
        }
    };
    let results = pipe(&jobs)
        .query_async::<Vec<redis::RedisResult<Value>>>(&mut conn)
        .await;
    let results = match results {
        Ok(r) if r.len() == jobs.len() => match replicated(&mut conn).await {
            Ok(()) => r,
            Err(e) => jobs.iter().map(|_| Err(e.clone())).collect(),
        },
        Ok(_) => {
            let e = redis::RedisError::from(std::io::Error::other("short pipeline reply"));
            jobs.iter().map(|_| Err(e.clone())).collect()
        }
        Err(e) => {
            let e = conns.fail(e);
            jobs.iter().map(|_| Err(e.clone())).collect()
        }
    };
    // entries that met NOSCRIPT did not run: load the scripts, send only those again
    let mut again = Vec::new();
    for (j, r) in jobs.into_iter().zip(results) {
        match r {
            Err(e) if is_noscript(&e) => again.push(j),
            r => {
                let _ = j.reply.send(r);
            }
        }
    }
    if again.is_empty() {
        return;
    }
    if let Err(e) = scripts.load(conns, &mut conn).await {
        let e = redis::RedisError::from(std::io::Error::other(e.to_string()));
        for j in again {
            let _ = j.reply.send(Err(e.clone()));
        }
        return;
    }
    let results = pipe(&again)
        .query_async::<Vec<redis::RedisResult<Value>>>(&mut conn)
        .await;
    match results {
        Ok(r) if r.len() == again.len() => {
            let r: Vec<_> = match replicated(&mut conn).await {
                Ok(()) => r,
                Err(e) => again.iter().map(|_| Err(e.clone())).collect(),
            };
            for (j, r) in again.into_iter().zip(r) {
                let _ = j.reply.send(r);
            }
        }
        other => {
            let e = match other {
                Err(e) => conns.fail(e),
                Ok(_) => redis::RedisError::from(std::io::Error::other("short pipeline reply")),
            };
            for j in again {
                let _ = j.reply.send(Err(e.clone()));
            }
        }
    }
}

/// Submits `new` through the batcher, retrying transport failures with the same job id.
pub(crate) async fn submit(
    store: &RedisStore,
    tx: &mpsc::UnboundedSender<Pending>,
    queue: Arc<Queue>,
    new: NewJob,
) -> Result<Submitted> {
    let id = crate::new_id_in(&queue.name);
    let run_at = new.run_at.map(|t| t.to_string()).unwrap_or_default();
    let (input, ct) = match &new.payload {
        Some(p) => (p.bytes.clone(), p.content_type.clone()),
        None => (new.text.clone().into_bytes(), String::new()),
    };
    let args: Vec<Vec<u8>> = vec![
        id.clone().into_bytes(),
        new.kind.clone().into_bytes(),
        input,
        new.max_attempts.max(1).to_string().into_bytes(),
        run_at.into_bytes(),
        new.idempotency_key.clone().unwrap_or_default().into_bytes(),
        new.traceparent.clone().unwrap_or_default().into_bytes(),
        ct.into_bytes(),
        new.priority
            .clamp(MIN_PRIORITY, MAX_PRIORITY)
            .to_string()
            .into_bytes(),
    ];
    let give_up = tokio::time::Instant::now() + RETRY_FOR;
    let mut backoff = Duration::from_millis(50);
    let reply = loop {
        let (reply, rx) = oneshot::channel();
        tx.send(Pending {
            queue: queue.clone(),
            kind: new.kind.clone(),
            args: args.clone(),
            reply,
        })
        .map_err(|_| StoreError::Closed)?;
        match rx.await.map_err(|_| StoreError::Closed)? {
            Ok(v) => break v,
            Err(e) if is_transport(&e) && tokio::time::Instant::now() < give_up => {
                tracing::debug!(job_id = %id, error = %e, "submit reply lost; retrying the same job id");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            Err(e) => return Err(e.into()),
        }
    };
    let bad = |e: redis::ParsingError| super::corrupt("submit", e.to_string());
    let mut parts: Vec<Value> = redis::from_redis_value(reply).map_err(bad)?;
    parts.resize(4, Value::Nil);
    let mut parts = parts.into_iter();
    let mut next = || parts.next().unwrap_or(Value::Nil);
    let code: i64 = redis::from_redis_value(next()).map_err(bad)?;
    let job_id: String = redis::from_redis_value(next()).map_err(bad)?;
    let now: Option<i64> = redis::from_redis_value(next()).map_err(bad)?;
    let status: Option<String> = redis::from_redis_value(next()).map_err(bad)?;
    match code {
        // created now, by this call
        1 => {
            let status = status
                .unwrap_or_default()
                .parse()
                .map_err(|e: UnknownStatus| super::corrupt(&job_id, e.to_string()))?;
            let now = now.unwrap_or_else(now_ms);
            Ok(Submitted {
                job: Job {
                    id: job_id,
                    kind: new.kind,
                    queue: queue.name.clone(),
                    priority: new.priority.clamp(MIN_PRIORITY, MAX_PRIORITY),
                    status,
                    text: if new.payload.is_some() {
                        String::new()
                    } else {
                        new.text
                    },
                    payload: new.payload,
                    result: None,
                    result_payload: None,
                    progress: None,
                    error: None,
                    attempts: 0,
                    max_attempts: new.max_attempts.max(1),
                    delivery: 0,
                    created_at: now,
                    updated_at: now,
                    run_at: new.run_at.filter(|_| status == Status::Scheduled),
                    started_at: None,
                    finished_at: None,
                    idempotency_key: new.idempotency_key,
                    worker_id: None,
                    version: 1,
                    traceparent: new.traceparent,
                },
                created: true,
            })
        }
        // 2: created by an earlier try of this call whose reply was lost; 0: an existing job
        // with the same idempotency key
        c => {
            let job = crate::JobStore::get(store, &job_id)
                .await?
                .ok_or_else(|| StoreError::NotFound(job_id.clone()))?;
            Ok(Submitted {
                job,
                created: c == 2,
            })
        }
    }
}
