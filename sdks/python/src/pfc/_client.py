"""Client: submit jobs, read them, wait for them, cancel them (pfc.jobs.v1.JobService)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any, Iterator, Optional, Union

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from . import _channel
from ._codec import encode
from ._errors import RpcError, WaitTimeout, from_rpc
from ._job import Job
from .jobs.v1 import jobs_pb2, jobs_pb2_grpc

# WatchJob streams that break for these reasons are resumed (the job's state is re-read first).
_RESUMABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


class Client:
    """A connection to pfc's jobs core.

    >>> client = pfc.Client("localhost:50051")
    >>> job_id = client.submit("resize", {"w": 64})
    >>> client.wait(job_id, timeout=30).result

    ``addr`` is ``host:port`` (plaintext), ``http://host:port``, or ``https://host[:port]``
    (TLS with the system roots; pass ``credentials`` for anything else). Thread-safe; close it
    with :meth:`close` or use it as a context manager.
    """

    def __init__(
        self,
        addr: str = "localhost:50051",
        *,
        credentials: Optional[grpc.ChannelCredentials] = None,
        timeout: Optional[float] = 30.0,
        token: Optional[str] = None,
    ) -> None:
        # Sent as `authorization: Bearer …` on every call (a jobs server with
        # --auth-required needs it); default: the PFC_TOKEN environment variable.
        self._metadata = _channel.bearer(_channel.token_from_env(token))
        self._channel = _channel.sync_channel(addr, credentials)
        self._stub = jobs_pb2_grpc.JobServiceStub(self._channel)
        #: Deadline of each unary call, in seconds (None: no deadline).
        self.timeout = timeout

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection."""
        self._channel.close()

    def submit(
        self,
        kind: str,
        payload: Any = None,
        *,
        content_type: Optional[str] = None,
        text: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        delay: Union[float, timedelta, None] = None,
        run_at: Optional[datetime] = None,
        max_attempts: Optional[int] = None,
        queue: Optional[str] = None,
    ) -> str:
        """Submits a job of ``kind`` and returns its id.

        ``payload`` is any JSON value, or bytes / :class:`pfc.Bytes` for other content types
        (``content_type`` overrides the type). ``text`` instead submits a text job, the input of
        the built-in kinds (``uppercase``, ...). ``delay`` (seconds or a timedelta) or ``run_at``
        schedules it; ``max_attempts`` bounds deliveries (server default 3); a repeated
        ``idempotency_key`` returns the first job's id.
        """
        req = jobs_pb2.SubmitJobRequest(kind=kind)
        if text is not None:
            if payload is not None:
                raise ValueError("give a payload or a text, not both")
            req.text = text
        else:
            req.payload, ctype = encode(payload)
            req.content_type = content_type or ctype
        if idempotency_key:
            req.idempotency_key = idempotency_key
        if run_at is not None:
            ts = Timestamp()
            ts.FromDatetime(run_at)
            req.run_at.CopyFrom(ts)
        elif delay is not None:
            d = Duration()
            d.FromTimedelta(delay if isinstance(delay, timedelta) else timedelta(seconds=delay))
            req.delay.CopyFrom(d)
        if max_attempts:
            req.max_attempts = max_attempts
        if queue:
            req.queue = queue
        return self._call(self._stub.SubmitJob, req).job_id

    def get(self, job_id: str) -> Job:
        """The job now. Raises :class:`pfc.JobNotFound` for an unknown or expired id."""
        return Job.from_pb(self._call(self._stub.GetJob, jobs_pb2.GetJobRequest(job_id=job_id)).job)

    def cancel(self, job_id: str) -> Job:
        """Cancels a queued or scheduled job and returns it (FAILED_PRECONDITION otherwise)."""
        req = jobs_pb2.CancelJobRequest(job_id=job_id)
        return Job.from_pb(self._call(self._stub.CancelJob, req).job)

    def watch(self, job_id: str, timeout: Optional[float] = None) -> Iterator[Job]:
        """Yields the job's current state, then its state after every transition (progress
        included), and stops after it finishes. A stream broken by the network is resumed.
        Raises :class:`pfc.WaitTimeout` after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last: Optional[Job] = None
        failures = 0
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                stream = self._stub.WatchJob(
                    jobs_pb2.WatchJobRequest(job_id=job_id),
                    timeout=remaining,
                    metadata=self._metadata,
                )
                for resp in stream:
                    failures = 0
                    job = Job.from_pb(resp.job)
                    if last is None or job.version != last.version or job.progress != last.progress:
                        yield job
                    last = job
                    if job.finished:
                        return
            except grpc.RpcError as e:
                code = e.code()
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise WaitTimeout(job_id, timeout or 0.0, last) from None
                if code not in _RESUMABLE:
                    raise from_rpc(e) from None
                failures += 1
                if deadline is None and failures > 20:
                    raise from_rpc(e) from None
            # The stream ended (or broke) before a terminal state: resume it after a pause.
            pause = min(2.0, 0.05 * 2**failures)
            if deadline is not None and time.monotonic() + pause >= deadline:
                raise WaitTimeout(job_id, timeout or 0.0, last)
            time.sleep(pause)

    def wait(self, job_id: str, timeout: Optional[float] = None) -> Job:
        """Blocks until the job is done, failed or cancelled, and returns it.

        It does not raise for a failed job: look at ``job.status`` and ``job.error``. Raises
        :class:`pfc.WaitTimeout` after ``timeout`` seconds (None: no limit).
        """
        job = None
        for job in self.watch(job_id, timeout=timeout):
            pass
        assert job is not None and job.finished  # watch returns only after a terminal state
        return job

    def _call(self, method: Any, req: Any) -> Any:
        try:
            return method(req, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc(e) from None


__all__ = ["Client", "RpcError"]
