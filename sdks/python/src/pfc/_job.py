"""Job: what the client sees of a job (GetJob, WatchJob, CancelJob)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

from google.protobuf.timestamp_pb2 import Timestamp

from ._codec import decode
from .jobs.v1 import jobs_pb2

#: Statuses from which a job never moves.
TERMINAL = frozenset({"done", "failed", "cancelled"})

_STATUS = {
    jobs_pb2.JOB_STATUS_SCHEDULED: "scheduled",
    jobs_pb2.JOB_STATUS_QUEUED: "queued",
    jobs_pb2.JOB_STATUS_PROCESSING: "processing",
    jobs_pb2.JOB_STATUS_DONE: "done",
    jobs_pb2.JOB_STATUS_FAILED: "failed",
    jobs_pb2.JOB_STATUS_CANCELLED: "cancelled",
}


def status_name(value: int) -> str:
    """``JOB_STATUS_DONE`` → ``"done"``; an unknown value → ``"unknown"``."""
    return _STATUS.get(value, "unknown")


def timestamp(ts: Timestamp, present: bool = True) -> Optional[datetime]:
    """A protobuf Timestamp as an aware UTC datetime, None when unset."""
    if not present or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Job:
    """A job as pfc stores it.

    ``status`` is one of "scheduled", "queued", "processing", "done", "failed", "cancelled".
    ``payload`` and ``result`` are decoded: a JSON value, a ``str`` for text, a :class:`Bytes`
    for other content types. ``result`` is set once the job is done; ``error`` is the last
    delivery's error (also while a retry is scheduled).
    """

    id: str
    kind: str
    status: str
    payload: Any
    result: Any
    error: Optional[str]
    attempts: int
    max_attempts: int
    progress: Optional[int]
    worker_id: str
    queue: str
    idempotency_key: str
    content_type: str
    result_content_type: str
    created_at: Optional[datetime]
    updated_at: Optional[datetime]
    run_at: Optional[datetime]
    started_at: Optional[datetime]
    finished_at: Optional[datetime]
    version: int
    raw: jobs_pb2.Job = field(repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """True once the job is done, failed or cancelled."""
        return self.status in TERMINAL

    @classmethod
    def from_pb(cls, j: jobs_pb2.Job) -> "Job":
        if j.content_type or j.payload:
            payload = decode(j.payload, j.content_type)
        else:
            payload = j.text
        if j.result_content_type or j.result_payload:
            result = decode(j.result_payload, j.result_content_type)
        elif j.HasField("result"):
            result = j.result
        else:
            result = None
        return cls(
            id=j.id,
            kind=j.kind,
            status=status_name(j.status),
            payload=payload,
            result=result,
            error=j.error if j.HasField("error") else None,
            attempts=j.attempts,
            max_attempts=j.max_attempts,
            progress=j.progress if j.HasField("progress") else None,
            worker_id=j.worker_id,
            queue=j.queue,
            idempotency_key=j.idempotency_key,
            content_type=j.content_type,
            result_content_type=j.result_content_type,
            created_at=timestamp(j.created_at, j.HasField("created_at")),
            updated_at=timestamp(j.updated_at, j.HasField("updated_at")),
            run_at=timestamp(j.run_at, j.HasField("run_at")),
            started_at=timestamp(j.started_at, j.HasField("started_at")),
            finished_at=timestamp(j.finished_at, j.HasField("finished_at")),
            version=j.version,
            raw=j,
        )
