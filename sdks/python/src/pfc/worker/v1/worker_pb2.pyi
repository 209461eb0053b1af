import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReportOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPORT_OUTCOME_UNSPECIFIED: _ClassVar[ReportOutcome]
    REPORT_OUTCOME_APPLIED: _ClassVar[ReportOutcome]
    REPORT_OUTCOME_STALE: _ClassVar[ReportOutcome]
    REPORT_OUTCOME_REJECTED: _ClassVar[ReportOutcome]
REPORT_OUTCOME_UNSPECIFIED: ReportOutcome
REPORT_OUTCOME_APPLIED: ReportOutcome
REPORT_OUTCOME_STALE: ReportOutcome
REPORT_OUTCOME_REJECTED: ReportOutcome

class WorkRequest(_message.Message):
    __slots__ = ("hello", "progress", "succeeded", "failed", "drain", "release", "heartbeat")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    progress: JobProgress
    succeeded: JobSucceeded
    failed: JobFailed
    drain: Drain
    release: Release
    heartbeat: Heartbeat
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., progress: _Optional[_Union[JobProgress, _Mapping]] = ..., succeeded: _Optional[_Union[JobSucceeded, _Mapping]] = ..., failed: _Optional[_Union[JobFailed, _Mapping]] = ..., drain: _Optional[_Union[Drain, _Mapping]] = ..., release: _Optional[_Union[Release, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("name", "kinds", "concurrency", "sdk", "worker_id", "held", "queues")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    SDK_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    name: str
    kinds: _containers.RepeatedScalarFieldContainer[str]
    concurrency: int
    sdk: str
    worker_id: str
    held: _containers.RepeatedCompositeFieldContainer[HeldJob]
    queues: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., kinds: _Optional[_Iterable[str]] = ..., concurrency: _Optional[int] = ..., sdk: _Optional[str] = ..., worker_id: _Optional[str] = ..., held: _Optional[_Iterable[_Union[HeldJob, _Mapping]]] = ..., queues: _Optional[_Iterable[str]] = ...) -> None: ...

class HeldJob(_message.Message):
    __slots__ = ("job_id", "delivery", "attempt")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    delivery: int
    attempt: int
    def __init__(self, job_id: _Optional[str] = ..., delivery: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("worker_id", "lease_ms", "heartbeat_ms", "max_result_bytes")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULT_BYTES_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    lease_ms: int
    heartbeat_ms: int
    max_result_bytes: int
    def __init__(self, worker_id: _Optional[str] = ..., lease_ms: _Optional[int] = ..., heartbeat_ms: _Optional[int] = ..., max_result_bytes: _Optional[int] = ...) -> None: ...

class JobAssignment(_message.Message):
    __slots__ = ("job_id", "kind", "payload", "content_type", "delivery", "attempt", "max_attempts", "traceparent", "created_at")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: str
    payload: bytes
    content_type: str
    delivery: int
    attempt: int
    max_attempts: int
    traceparent: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[str] = ..., payload: _Optional[bytes] = ..., content_type: _Optional[str] = ..., delivery: _Optional[int] = ..., attempt: _Optional[int] = ..., max_attempts: _Optional[int] = ..., traceparent: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JobProgress(_message.Message):
    __slots__ = ("job_id", "delivery", "percent")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    delivery: int
    percent: int
    def __init__(self, job_id: _Optional[str] = ..., delivery: _Optional[int] = ..., percent: _Optional[int] = ...) -> None: ...

class JobSucceeded(_message.Message):
    __slots__ = ("job_id", "delivery", "result", "content_type")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    delivery: int
    result: bytes
    content_type: str
    def __init__(self, job_id: _Optional[str] = ..., delivery: _Optional[int] = ..., result: _Optional[bytes] = ..., content_type: _Optional[str] = ...) -> None: ...

class JobFailed(_message.Message):
    __slots__ = ("job_id", "delivery", "error", "permanent")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PERMANENT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    delivery: int
    error: str
    permanent: bool
    def __init__(self, job_id: _Optional[str] = ..., delivery: _Optional[int] = ..., error: _Optional[str] = ..., permanent: _Optional[bool] = ...) -> None: ...

class Drain(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Release(_message.Message):
    __slots__ = ("job_ids",)
    JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    job_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, job_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class WorkResponse(_message.Message):
    __slots__ = ("welcome", "assignment", "ack", "revoked")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    assignment: JobAssignment
    ack: ReportAck
    revoked: JobRevoked
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., assignment: _Optional[_Union[JobAssignment, _Mapping]] = ..., ack: _Optional[_Union[ReportAck, _Mapping]] = ..., revoked: _Optional[_Union[JobRevoked, _Mapping]] = ...) -> None: ...

class ReportAck(_message.Message):
    __slots__ = ("job_id", "delivery", "outcome", "message")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    delivery: int
    outcome: ReportOutcome
    message: str
    def __init__(self, job_id: _Optional[str] = ..., delivery: _Optional[int] = ..., outcome: _Optional[_Union[ReportOutcome, str]] = ..., message: _Optional[str] = ...) -> None: ...

class JobRevoked(_message.Message):
    __slots__ = ("job_id", "delivery")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    delivery: int
    def __init__(self, job_id: _Optional[str] = ..., delivery: _Optional[int] = ...) -> None: ...
