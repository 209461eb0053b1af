//! The job record as the scripts store it: a JSON object in the queue's `jobs` hash (written
//! by Lua's cjson), plus the input and result in their own hashes.

use serde::{Deserialize, Serialize};

use crate::model::{Job, JobEvent, Payload, Status, UnknownStatus};
use crate::{Result, StoreError};

/// Field names are short on purpose: they are stored once per job.
#[derive(Deserialize)]
struct Record {
    id: String,
    kind: String,
    status: String,
    attempts: f64,
    max: f64,
    #[serde(default)]
    d: f64,
    created: f64,
    updated: f64,
    v: f64,
    run_at: Option<f64>,
    started: Option<f64>,
    finished: Option<f64>,
    idem: Option<String>,
    worker: Option<String>,
    tp: Option<String>,
    error: Option<String>,
    /// input content type (absent: plain text)
    ct: Option<String>,
    /// result content type (absent: plain text)
    rt: Option<String>,
    progress: Option<f64>,
    /// priority, when not 0
    pr: Option<f64>,
}

/// A worker's heartbeat info, as kept in the `winfo` hash.
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct WorkerRecord {
    /// concurrency
    #[serde(default)]
    pub c: u32,
    /// in flight
    #[serde(default)]
    pub n: u32,
    /// kinds
    #[serde(default)]
    pub k: Vec<String>,
}

pub(crate) fn corrupt(key: &str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        detail: detail.into(),
    }
}

fn status(id: &str, s: &str) -> Result<Status> {
    s.parse()
        .map_err(|e: UnknownStatus| corrupt(id, e.to_string()))
}

/// Builds a [`Job`] from its record, input and result. (Numbers come as JSON numbers from
/// cjson, which prints integers below 10^14 exactly: times in ms, counters, versions.)
pub(crate) fn job_from_record(
    json: &[u8],
    input: Option<Vec<u8>>,
    output: Option<Vec<u8>>,
) -> Result<Job> {
    let r: Record =
        serde_json::from_slice(json).map_err(|e| corrupt("job record", e.to_string()))?;
    let text = |b: Option<Vec<u8>>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
    let (text_in, payload) = match r.ct {
        Some(ct) => (
            String::new(),
            Some(Payload {
                bytes: input.unwrap_or_default(),
                content_type: ct,
            }),
        ),
        None => (text(input).unwrap_or_default(), None),
    };
    let (result, result_payload) = match (r.rt, output) {
        (Some(rt), Some(b)) => (
            None,
            Some(Payload {
                bytes: b,
                content_type: rt,
            }),
        ),
        (_, o) => (text(o), None),
    };
    Ok(Job {
        status: status(&r.id, &r.status)?,
        kind: r.kind,
        queue: crate::queue_of(&r.id).to_owned(),
        text: text_in,
        payload,
        result,
        result_payload,
        progress: r.progress.map(|p| p as u32),
        priority: r.pr.map_or(0, |p| p as i32),
        error: r.error,
        attempts: r.attempts as u32,
        max_attempts: r.max as u32,
        delivery: r.d as u64,
        created_at: r.created as i64,
        updated_at: r.updated as i64,
        run_at: r.run_at.map(|t| t as i64),
        started_at: r.started.map(|t| t as i64),
        finished_at: r.finished.map(|t| t as i64),
        idempotency_key: r.idem,
        worker_id: r.worker,
        version: r.v as u64,
        traceparent: r.tp,
        id: r.id,
    })
}

/// An event as the scripts publish it.
#[derive(Deserialize)]
struct Event {
    id: String,
    s: String,
    v: f64,
    a: f64,
    k: String,
    at: f64,
    w: Option<String>,
    e: Option<String>,
    r: Option<String>,
    p: Option<f64>,
    rt: Option<String>,
}

/// Parses one published event; `None` for anything else on the channel (liveness pings).
pub(crate) fn parse_event(payload: &[u8]) -> Option<JobEvent> {
    let e: Event = serde_json::from_slice(payload).ok()?;
    Some(JobEvent {
        status: e.s.parse().ok()?,
        version: e.v as u64,
        attempts: e.a as u32,
        kind: e.k,
        at: e.at as i64,
        error: e.e,
        worker_id: e.w,
        result: e.r,
        result_type: e.rt,
        progress: e.p.map(|p| p as u32),
        job_id: e.id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as cjson writes it (escaped slashes, missing optional fields) parses back.
    #[test]
    fn parses_cjson_records() {
        let j = job_from_record(
            br#"{"id":"01J","kind":"uppercase","status":"done","attempts":2,"max":3,"d":4,
                "created":1764627600000,"updated":1764627600123,"v":5,"worker":"w\/1",
                "finished":1764627600123}"#,
            Some(b"in".to_vec()),
            Some(b"IN".to_vec()),
        )
        .unwrap();
        assert_eq!(j.status, Status::Done);
        assert_eq!((j.attempts, j.delivery, j.version), (2, 4, 5));
        assert_eq!(j.created_at, 1_764_627_600_000);
        assert_eq!(j.worker_id.as_deref(), Some("w/1"));
        assert_eq!(j.result.as_deref(), Some("IN"));
        assert_eq!(j.run_at, None);
        assert!(job_from_record(b"{}", None, None).is_err());
    }

    /// Events parse back, with tabs and quotes in errors; pings are ignored.
    #[test]
    fn parses_events() {
        let e = parse_event(
            br#"{"id":"01J","s":"failed","v":4,"a":3,"k":"uppercase","at":1700,"w":"w1","e":"boom\twith \"tab\""}"#,
        )
        .unwrap();
        assert_eq!(e.status, Status::Failed);
        assert_eq!(e.version, 4);
        assert_eq!(e.error.as_deref(), Some("boom\twith \"tab\""));
        assert_eq!(e.worker_id.as_deref(), Some("w1"));
        assert!(parse_event(br#"{"ping":1}"#).is_none());
        assert!(parse_event(b"garbage").is_none());
    }
}
