"""Worker: runs handlers for job kinds over one `pfc.worker.v1.WorkerService/Work` stream.

The worker sends Hello (name, kinds, concurrency), gets Welcome, then runs every
JobAssignment it is sent and answers each with JobSucceeded or JobFailed; the server never
has more than `concurrency` of its jobs in flight and keeps their leases alive while the
stream is open and the worker is heard from (a Heartbeat when it has nothing else to say).
On SIGTERM (or :meth:`Worker.stop`) it sends Drain, gives back with Release the jobs it has
not started, waits for the running ones (up to ``drain_timeout``), then closes the stream.
A broken stream is reopened with backoff, resuming the jobs still held (Hello.worker_id +
held) so their results still count; the server revokes those it has given away meanwhile.

Sync handlers run in a thread pool of ``concurrency`` threads; ``async def`` handlers run on
the worker's asyncio loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import random
import re
import signal
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set, Tuple, Union

import grpc

from . import _channel
from ._codec import decode, encode
from ._errors import PermanentError, RpcError, from_rpc
from ._job import timestamp
from ._version import SDK
from .worker.v1 import worker_pb2 as pb
from .worker.v1 import worker_pb2_grpc

log = logging.getLogger("pfc.worker")

KIND = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")
MAX_CONCURRENCY = 1024

# Errors of the first exchange that reconnecting cannot fix: the worker's setup is wrong.
_FATAL = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.FAILED_PRECONDITION,
}

Handler = Callable[["RunningJob"], Union[Any, Awaitable[Any]]]


class RunningJob:
    """A job handed to a handler.

    ``payload`` is decoded (a JSON value, ``str`` for text, :class:`pfc.Bytes` otherwise);
    ``attempt`` counts from 1. Call :meth:`progress` to report how far it is.
    """

    __slots__ = (
        "id", "kind", "payload", "content_type", "attempt", "max_attempts", "delivery",
        "traceparent", "created_at", "worker_id", "_slot", "_worker",
    )

    def __init__(self, a: pb.JobAssignment, worker: "Worker", slot: "_Slot") -> None:
        self.id: str = a.job_id
        self.kind: str = a.kind
        self.content_type: str = a.content_type
        self.payload: Any = decode(a.payload, a.content_type)
        self.attempt: int = a.attempt
        self.max_attempts: int = a.max_attempts
        self.delivery: int = a.delivery
        self.traceparent: str = a.traceparent
        self.created_at: Optional[datetime] = timestamp(a.created_at, a.HasField("created_at"))
        self.worker_id: str = worker.worker_id or ""
        self._slot = slot
        self._worker = worker

    @property
    def revoked(self) -> bool:
        """True once the worker no longer holds the job (revoked, given back at the drain
        timeout): its result would be ignored, so a long handler may stop early."""
        return self._slot.dropped

    def progress(self, percent: float) -> None:
        """Reports progress (0..100; clamped). Callable from sync and async handlers."""
        pct = int(max(0, min(100, percent)))
        self._worker._call_in_loop(self._worker._progress, self._slot, pct)

    def __repr__(self) -> str:
        return f"RunningJob(id={self.id!r}, kind={self.kind!r}, attempt={self.attempt})"


@dataclass(eq=False)
class _Slot:
    """One assignment the worker holds, until the server acknowledges its report."""

    job_id: str
    delivery: int
    attempt: int
    kind: str
    # pending (a sync handler waiting for a thread) → running → reported (waiting for the ack);
    # or pending → released (given back before it started).
    state: str = "pending"
    report: Optional[pb.WorkRequest] = None
    # No report may be sent any more: revoked or given back.
    dropped: bool = False
    task: Optional[asyncio.Future] = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> bool:
        """pending → running; False when the job was given back first."""
        with self.lock:
            if self.state != "pending":
                return False
            self.state = "running"
            return True

    def give_back(self) -> bool:
        """pending → released; False when the handler already started."""
        with self.lock:
            if self.state != "pending":
                return False
            self.state = "released"
            self.dropped = True
            return True

    def drop(self) -> None:
        self.dropped = True
        if self.task is not None:
            self.task.cancel()  # a sync handler's thread runs on; its result is dropped


class _Released(Exception):
    """The job was given back before its sync handler got a thread."""


class _Session:
    """One Work stream: its outgoing messages."""

    def __init__(self) -> None:
        self.out: asyncio.Queue = asyncio.Queue()
        self.welcomed = False
        self.draining = False
        self.closed = False
        self.last_sent = 0.0
        # Releases not acknowledged yet, by job id (a STALE ack may carry delivery 0).
        self.releases: Set[str] = set()

    def send(self, msg: Optional[pb.WorkRequest]) -> None:
        if self.closed:
            return
        self.last_sent = asyncio.get_running_loop().time()
        self.out.put_nowait(msg)
        if msg is None:
            self.closed = True

    async def requests(self):
        while True:
            msg = await self.out.get()
            if msg is None:
                return
            yield msg


class Worker:
    """Runs handlers for job kinds.

    >>> worker = pfc.Worker("localhost:50051", concurrency=8)
    >>> @worker.handler("resize")
    ... def resize(job):
    ...     return {"w": job.payload["w"]}
    >>> worker.run()   # blocks; SIGTERM or Ctrl-C drains

    A handler returns any JSON value (or bytes / :class:`pfc.Bytes`); raising fails the
    delivery and pfc retries it with backoff while attempts remain; raising
    :class:`pfc.PermanentError` fails the job at once.
    """

    def __init__(
        self,
        addr: str = "localhost:50051",
        concurrency: int = 8,
        *,
        name: Optional[str] = None,
        credentials: Optional[grpc.ChannelCredentials] = None,
        drain_timeout: float = 30.0,
        token: Optional[str] = None,
        queues: Tuple[str, ...] = (),
    ) -> None:
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be 1..={MAX_CONCURRENCY}, not {concurrency}")
        # Queues to take jobs from (the kind rule, at most 64); none: every queue.
        queues = tuple(queues)
        if len(queues) > 64:
            raise ValueError(f"{len(queues)} queues; a worker names at most 64")
        for q in queues:
            if not isinstance(q, str) or not KIND.match(q):
                raise ValueError(f"invalid queue {q!r}: must match [a-z0-9][a-z0-9._-]{{0,63}}")
        self.queues = queues
        self.addr = addr
        self.concurrency = concurrency
        self.name = name or _default_name()
        self.drain_timeout = drain_timeout
        self._credentials = credentials
        # A worker API key (scope `worker`) for a jobs server with --auth-required, sent as
        # `authorization: Bearer …`; default: the PFC_TOKEN environment variable.
        self._metadata = _channel.bearer(_channel.token_from_env(token))
        self._handlers: Dict[str, Tuple[Handler, bool]] = {}
        self._held: Dict[str, _Slot] = {}
        self._session: Optional[_Session] = None
        # Resuming: the last stream's lease and when it broke (loop time).
        self._lease = 0.0
        self._lost_at: Optional[float] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop: Optional[asyncio.Event] = None
        self._changed: Optional[asyncio.Event] = None
        self._stop_requested = False
        self._force = False
        self._executor: Optional[concurrent.futures.ThreadPoolExecutor] = None
        #: The id the server gave this worker (set once connected).
        self.worker_id: Optional[str] = None

    # -- registration -------------------------------------------------------------------

    def handler(self, kind: str) -> Callable[[Handler], Handler]:
        """Decorator: ``@worker.handler("resize")`` registers a sync or async handler."""

        def register(fn: Handler) -> Handler:
            self.handle(kind, fn)
            return fn

        return register

    def handle(self, kind: str, fn: Handler) -> None:
        """Registers ``fn`` for jobs of ``kind`` (``[a-z0-9][a-z0-9._-]{0,63}``)."""
        if not KIND.match(kind):
            raise ValueError(f"invalid kind {kind!r}: must match [a-z0-9][a-z0-9._-]{{0,63}}")
        if kind in self._handlers:
            raise ValueError(f"a handler for {kind!r} is already registered")
        self._handlers[kind] = (fn, inspect.iscoroutinefunction(fn))

    # -- running ------------------------------------------------------------------------

    def run(self) -> None:
        """Connects and runs jobs until SIGTERM / SIGINT (or :meth:`stop`), then drains:
        finishes the running jobs, gives back the others, and returns. Raises
        :class:`pfc.RpcError` if pfc refuses the worker (e.g. an invalid kind)."""
        main = threading.current_thread() is threading.main_thread()
        asyncio.run(self.run_async(handle_signals=main))

    def stop(self) -> None:
        """Asks the worker to drain and return from :meth:`run` (any thread; a second call
        stops at once, giving back the running jobs)."""
        if self._stop_requested:
            self._force = True
        self._stop_requested = True
        self._call_in_loop(self._on_stop)

    async def run_async(self, *, handle_signals: bool = False) -> None:
        """:meth:`run` for code that already has an asyncio loop."""
        if not self._handlers:
            raise ValueError("no handlers: register one with @worker.handler(kind)")
        loop = self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        if self._stop_requested:
            self._stop.set()
        installed = []
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, self._on_signal, sig)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError):
                    pass
        if any(not is_async for _, is_async in self._handlers.values()):
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.concurrency, thread_name_prefix="pfc-job"
            )
        channel = _channel.aio_channel(self.addr, self._credentials)
        stub = worker_pb2_grpc.WorkerServiceStub(channel)
        try:
            failures = 0
            while not self._stop.is_set():
                welcomed = False
                try:
                    welcomed = await self._run_session(stub)
                    if self._stop.is_set():
                        break
                    log.warning("pfc closed the worker stream; reconnecting")
                except grpc.aio.AioRpcError as e:
                    welcomed = getattr(e, "_pfc_welcomed", False)
                    if self._stop.is_set():
                        break
                    if e.code() in _FATAL and not welcomed:
                        raise from_rpc(e) from None
                    log.warning(
                        "worker stream failed (%s: %s); reconnecting", e.code().name, e.details()
                    )
                failures = 0 if welcomed else failures + 1
                pause = min(5.0, 0.1 * 2**failures) * (0.5 + random.random() / 2)
                try:
                    await asyncio.wait_for(self._stop.wait(), pause)
                except asyncio.TimeoutError:
                    pass
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            for slot in self._held.values():
                slot.drop()
            self._held.clear()
            await channel.close(grace=None)
            if self._executor is not None:
                # Threads of handlers still running after the drain finish on their own.
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None
            self._loop = None

    # -- one stream ---------------------------------------------------------------------

    async def _run_session(self, stub: worker_pb2_grpc.WorkerServiceStub) -> bool:
        """Runs one Work stream until it ends. Returns whether it was welcomed; a stream error
        is raised with ``_pfc_welcomed`` set on it."""
        s = _Session()
        loop = asyncio.get_running_loop()
        if self._held and self._lost_at is not None and loop.time() - self._lost_at > self._lease:
            # Too late to resume: pfc has requeued these jobs (or will); start afresh.
            log.warning("reconnected after the lease: dropping %d job(s) held", len(self._held))
            for slot in self._held.values():
                slot.drop()
            self._held.clear()
        held = [
            pb.HeldJob(job_id=x.job_id, delivery=x.delivery, attempt=x.attempt)
            for x in self._held.values()
        ]
        s.send(
            pb.WorkRequest(
                hello=pb.Hello(
                    name=self.name,
                    kinds=sorted(self._handlers),
                    concurrency=self.concurrency,
                    queues=list(self.queues),
                    sdk=SDK,
                    worker_id=(self.worker_id or "") if held else "",
                    held=held,
                )
            )
        )
        self._session = s
        call = stub.Work(s.requests(), metadata=self._metadata)
        tasks: List[asyncio.Future] = []
        try:
            async for resp in call:
                which = resp.WhichOneof("message")
                if not s.welcomed:
                    if which != "welcome":
                        raise RpcError(grpc.StatusCode.INTERNAL, f"expected Welcome, got {which}")
                    self._welcomed(s, resp.welcome, tasks, call)
                elif which == "assignment":
                    self._assign(s, resp.assignment)
                elif which == "ack":
                    self._ack(s, resp.ack)
                elif which == "revoked":
                    slot = self._held.get(resp.revoked.job_id)
                    if slot is not None and slot.delivery == resp.revoked.delivery:
                        log.warning("job %s was revoked", slot.job_id)
                        del self._held[slot.job_id]
                        slot.drop()
                        self._notify()
            return s.welcomed
        except grpc.aio.AioRpcError as e:
            e._pfc_welcomed = s.welcomed  # type: ignore[attr-defined]
            raise
        finally:
            if s.welcomed:
                self._lost_at = loop.time()
            s.closed = True
            if self._session is s:
                self._session = None
            for t in tasks:
                t.cancel()
            call.cancel()
            self._notify()

    def _welcomed(self, s: _Session, w: pb.Welcome, tasks: list, call: Any) -> None:
        s.welcomed = True
        self.worker_id = w.worker_id
        self._lease = w.lease_ms / 1000
        log.info(
            "connected to %s as %s (kinds %s, concurrency %d)",
            self.addr, w.worker_id, ", ".join(sorted(self._handlers)), self.concurrency,
        )
        if w.heartbeat_ms:
            tasks.append(asyncio.ensure_future(self._heartbeats(s, w.heartbeat_ms / 1000)))
        # Reports of resumed jobs that finished while the worker was disconnected.
        for slot in self._held.values():
            if slot.report is not None:
                s.send(slot.report)
        tasks.append(asyncio.ensure_future(self._drain_when_stopped(s, call)))

    async def _heartbeats(self, s: _Session, every: float) -> None:
        loop = asyncio.get_running_loop()
        period = max(0.05, every / 2)
        while not s.closed:
            await asyncio.sleep(period)
            if loop.time() - s.last_sent >= period:
                s.send(pb.WorkRequest(heartbeat=pb.Heartbeat()))

    def _assign(self, s: _Session, a: pb.JobAssignment) -> None:
        previous = self._held.pop(a.job_id, None)
        if previous is not None:
            previous.drop()
        if s.draining:  # sent before the server saw our Drain: give it back unstarted
            self._release(s, [(a.job_id, a.delivery)])
            return
        slot = _Slot(job_id=a.job_id, delivery=a.delivery, attempt=a.attempt, kind=a.kind)
        self._held[a.job_id] = slot
        entry = self._handlers.get(a.kind)
        if entry is None:
            slot.state = "running"
            self._finish(slot, _failed(a, f"no handler for kind {a.kind!r}", False))
            return
        slot.task = asyncio.ensure_future(self._execute(slot, a, *entry))

    def _ack(self, s: _Session, ack: pb.ReportAck) -> None:
        if ack.outcome == pb.REPORT_OUTCOME_STALE:
            log.warning("report on job %s was stale (its lease was lost)", ack.job_id)
        elif ack.outcome == pb.REPORT_OUTCOME_REJECTED:
            log.warning("result of job %s was rejected: %s", ack.job_id, ack.message)
        s.releases.discard(ack.job_id)
        slot = self._held.get(ack.job_id)
        if slot is not None and slot.delivery == ack.delivery and slot.state == "reported":
            del self._held[ack.job_id]
        self._notify()

    async def _execute(self, slot: _Slot, a: pb.JobAssignment, fn: Handler, is_async: bool) -> None:
        job = RunningJob(a, self, slot)
        try:
            if is_async:
                slot.start()
                result = await fn(job)
            else:
                assert self._executor is not None
                result = await asyncio.get_running_loop().run_in_executor(
                    self._executor, _call_sync, slot, fn, job
                )
        except (_Released, asyncio.CancelledError):
            return  # given back, revoked, or the worker is stopping: nothing to report
        except PermanentError as e:
            log.info("job %s failed permanently: %s", job.id, e)
            self._finish(slot, _failed(a, _message(e), True))
            return
        except Exception as e:  # noqa: BLE001 - any handler error fails the delivery
            log.warning(
                "job %s failed (attempt %d): %r", job.id, job.attempt, e,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            self._finish(slot, _failed(a, _message(e), False))
            return
        try:
            data, ctype = encode(result)
        except (TypeError, ValueError) as e:
            self._finish(slot, _failed(a, f"result is not JSON: {e}", True))
            return
        self._finish(
            slot,
            pb.WorkRequest(
                succeeded=pb.JobSucceeded(
                    job_id=a.job_id, delivery=a.delivery, result=data, content_type=ctype
                )
            ),
        )

    def _finish(self, slot: _Slot, msg: pb.WorkRequest) -> None:
        """Sends a job's report, now or after the next Welcome (a resumed stream)."""
        if slot.dropped or self._held.get(slot.job_id) is not slot:
            return
        slot.state = "reported"
        slot.report = msg
        s = self._session
        if s is not None and s.welcomed:
            s.send(msg)
        self._notify()

    def _progress(self, slot: _Slot, pct: int) -> None:
        s = self._session
        if s is not None and s.welcomed and not slot.dropped and self._held.get(slot.job_id) is slot:
            s.send(
                pb.WorkRequest(
                    progress=pb.JobProgress(job_id=slot.job_id, delivery=slot.delivery, percent=pct)
                )
            )

    def _release(self, s: _Session, jobs: List[Tuple[str, int]]) -> None:
        if not jobs:
            return
        for job_id, delivery in jobs:
            slot = self._held.get(job_id)
            if slot is not None and slot.delivery == delivery:
                del self._held[job_id]
                slot.drop()
            s.releases.add(job_id)
        s.send(pb.WorkRequest(release=pb.Release(job_ids=[j for j, _ in jobs])))
        self._notify()

    # -- stopping -----------------------------------------------------------------------

    def _on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if self._stop_requested:
            log.warning("%s again: stopping now, giving back running jobs", name)
        else:
            log.info("%s: draining (finishing running jobs, then stopping)", name)
        self.stop()

    def _on_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
        self._notify()

    async def _drain_when_stopped(self, s: _Session, call: Any) -> None:
        assert self._stop is not None
        await self._stop.wait()
        s.draining = True
        s.send(pb.WorkRequest(drain=pb.Drain()))
        unstarted = [x for x in list(self._held.values()) if x.give_back()]
        self._release(s, [(x.job_id, x.delivery) for x in unstarted])
        running = sum(1 for x in self._held.values() if x.state == "running")
        log.info("draining: %d running job(s) to finish, %d given back", running, len(unstarted))
        await self._until(
            lambda: self._force or not any(x.state == "running" for x in self._held.values()),
            self.drain_timeout,
        )
        still = [x for x in self._held.values() if x.state == "running"]
        if still:
            log.warning("giving back %d job(s) still running", len(still))
            self._release(s, [(x.job_id, x.delivery) for x in still])
        # Wait (briefly) for the server to acknowledge every report, then close our side.
        await self._until(lambda: not self._held and not s.releases, 5.0)
        s.send(None)
        # The server ends its side once it has seen ours; don't hang on one that doesn't.
        await asyncio.sleep(5.0)
        call.cancel()

    async def _until(self, done: Callable[[], bool], timeout: float) -> None:
        assert self._changed is not None
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not done() and loop.time() < end:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(0.5, max(0.0, end - loop.time())))
            except asyncio.TimeoutError:
                pass

    # -- helpers ------------------------------------------------------------------------

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _call_in_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Runs ``fn(*args)`` on the worker's loop: directly from it, else thread-safely."""
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: the worker has stopped
            pass


def _default_name() -> str:
    """The host name, cut to what Hello.name allows (1-64 of [A-Za-z0-9._-])."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:64]
    return name or "python-worker"


def _call_sync(slot: _Slot, fn: Handler, job: RunningJob) -> Any:
    if not slot.start():
        raise _Released()
    return fn(job)


def _failed(a: pb.JobAssignment, error: str, permanent: bool) -> pb.WorkRequest:
    return pb.WorkRequest(
        failed=pb.JobFailed(job_id=a.job_id, delivery=a.delivery, error=error, permanent=permanent)
    )


def _message(e: BaseException) -> str:
    return str(e) or type(e).__name__
