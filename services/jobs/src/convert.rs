//! Conversions between the store's model and the protobuf messages.

use pfc_proto::jobs::v1 as pb;
use pfc_proto::timestamp_from_ms;
use pfc_queue::{Job, JobEvent, Stats, Status};

/// Store status → protobuf enum.
pub fn status_to_pb(s: Status) -> pb::JobStatus {
    match s {
        Status::Scheduled => pb::JobStatus::Scheduled,
        Status::Queued => pb::JobStatus::Queued,
        Status::Processing => pb::JobStatus::Processing,
        Status::Done => pb::JobStatus::Done,
        Status::Failed => pb::JobStatus::Failed,
        Status::Cancelled => pb::JobStatus::Cancelled,
    }
}

/// Protobuf enum → store status (`None` for UNSPECIFIED).
pub fn status_from_pb(s: pb::JobStatus) -> Option<Status> {
    Some(match s {
        pb::JobStatus::Unspecified => return None,
        pb::JobStatus::Scheduled => Status::Scheduled,
        pb::JobStatus::Queued => Status::Queued,
        pb::JobStatus::Processing => Status::Processing,
        pb::JobStatus::Done => Status::Done,
        pb::JobStatus::Failed => Status::Failed,
        pb::JobStatus::Cancelled => Status::Cancelled,
    })
}

/// Store job → protobuf job.
pub fn job_to_pb(j: Job) -> pb::Job {
    pb::Job {
        status: status_to_pb(j.status) as i32,
        id: j.id,
        kind: j.kind,
        queue: j.queue,
        priority: j.priority,
        text: j.text,
        result: j.result,
        error: j.error,
        attempts: j.attempts,
        max_attempts: j.max_attempts,
        created_at: Some(timestamp_from_ms(j.created_at)),
        updated_at: Some(timestamp_from_ms(j.updated_at)),
        run_at: j.run_at.map(timestamp_from_ms),
        started_at: j.started_at.map(timestamp_from_ms),
        finished_at: j.finished_at.map(timestamp_from_ms),
        idempotency_key: j.idempotency_key.unwrap_or_default(),
        worker_id: j.worker_id.unwrap_or_default(),
        version: j.version,
        traceparent: j.traceparent.unwrap_or_default(),
        content_type: j
            .payload
            .as_ref()
            .map(|p| p.content_type.clone())
            .unwrap_or_default(),
        payload: j.payload.map(|p| p.bytes).unwrap_or_default(),
        result_content_type: j
            .result_payload
            .as_ref()
            .map(|p| p.content_type.clone())
            .unwrap_or_default(),
        result_payload: j.result_payload.map(|p| p.bytes).unwrap_or_default(),
        progress: j.progress,
    }
}

/// Store event → protobuf event.
pub fn event_to_pb(e: JobEvent) -> pb::JobEvent {
    pb::JobEvent {
        status: status_to_pb(e.status) as i32,
        job_id: e.job_id,
        version: e.version,
        attempts: e.attempts,
        kind: e.kind,
        at: Some(timestamp_from_ms(e.at)),
        error: e.error.unwrap_or_default(),
        worker_id: e.worker_id.unwrap_or_default(),
        progress: e.progress,
    }
}

/// Store stats → protobuf response.
pub fn stats_to_pb(s: Stats) -> pb::GetStatsResponse {
    pb::GetStatsResponse {
        queued: s.queued,
        scheduled: s.scheduled,
        processing: s.processing,
        done_total: s.done_total,
        failed_total: s.failed_total,
        cancelled_total: s.cancelled_total,
        submitted_total: s.submitted_total,
        retried_total: s.retried_total,
        live_workers: s.workers.len() as u32,
        workers: s
            .workers
            .into_iter()
            .map(|w| pb::WorkerInfo {
                id: w.id,
                concurrency: w.concurrency,
                in_flight: w.in_flight,
                last_seen: Some(timestamp_from_ms(w.last_seen)),
                kinds: w.kinds,
            })
            .collect(),
    }
}

/// A queue as the API shows it.
pub fn queue_to_pb(q: pfc_queue::QueueInfo) -> pb::Queue {
    pb::Queue {
        name: q.name,
        queued: q.queued,
        scheduled: q.scheduled,
        processing: q.processing,
        submitted_total: q.submitted_total,
        done_total: q.done_total,
        failed_total: q.failed_total,
        cancelled_total: q.cancelled_total,
        retried_total: q.retried_total,
        paused: q.paused,
        concurrency_limit: q.limits.concurrency,
        rate_limit: q.limits.rate,
        rate_period: (q.limits.rate_period_ms > 0).then(|| prost_types::Duration {
            seconds: (q.limits.rate_period_ms / 1000) as i64,
            nanos: ((q.limits.rate_period_ms % 1000) * 1_000_000) as i32,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every status maps to its protobuf value and back.
    #[test]
    fn statuses_round_trip() {
        for s in Status::ALL {
            assert_eq!(status_from_pb(status_to_pb(s)), Some(s));
        }
        assert_eq!(status_from_pb(pb::JobStatus::Unspecified), None);
    }
}
