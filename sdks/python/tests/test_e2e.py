"""End to end: real worker processes written with the SDK against real pfc servers.

scripts/test-sdks.sh starts redis-server, `pfc jobs` on it and `pfc dev`, and exports their
addresses (PFC_TEST_JOBS_ADDR, PFC_TEST_DEV_ADDR, PFC_TEST_DEV_HTTP). Every test declares
kinds of its own (a random prefix), so the tests share the servers without seeing each
other's jobs. Without those variables the tests are skipped (PFC_SDK_E2E=required makes
that an error).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

import pfc
from pfc.jobs.v1 import jobs_pb2, jobs_pb2_grpc

HERE = Path(__file__).resolve().parent
SERVERS = {"jobs": os.environ.get("PFC_TEST_JOBS_ADDR"), "dev": os.environ.get("PFC_TEST_DEV_ADDR")}
DEV_HTTP = os.environ.get("PFC_TEST_DEV_HTTP")
LOGS = Path(os.environ.get("PFC_SDK_LOGS") or "/tmp")

if not all(SERVERS.values()):
    if os.environ.get("PFC_SDK_E2E") == "required":
        raise RuntimeError("PFC_TEST_JOBS_ADDR / PFC_TEST_DEV_ADDR are not set")
    pytest.skip("no pfc servers: run scripts/test-sdks.sh", allow_module_level=True)


_STARTED: list = []


@pytest.fixture(autouse=True)
def _no_leftover_workers():
    """A test that fails half-way does not leave its worker processes running."""
    yield
    while _STARTED:
        w = _STARTED.pop()
        if w.proc.poll() is None:
            w.kill()


class WorkerProc:
    """An e2e_worker.py process."""

    def __init__(self, addr: str, prefix: str, events: Path | None = None, concurrency: int = 8):
        self.log = LOGS / f"py-worker-{prefix}-{uuid.uuid4().hex[:6]}.log"
        args = [sys.executable, str(HERE / "e2e_worker.py"), "--addr", addr, "--prefix", prefix,
                "--concurrency", str(concurrency)]
        if events is not None:
            args += ["--events", str(events)]
        self.out = open(self.log, "w")
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=subprocess.STDOUT)
        _STARTED.append(self)

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.out.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        if not self.out.closed:
            self.out.close()

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture(params=["jobs", "dev"])
def server(request):
    """Each test runs against `pfc jobs` + Redis and against `pfc dev`."""
    return request.param, SERVERS[request.param]


@pytest.fixture
def prefix():
    return f"py-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def worker(server, prefix):
    w = WorkerProc(server[1], prefix)
    yield w
    code = w.stop()
    assert code == 0, f"worker exited {code} on SIGTERM:\n{w.output()}"
    assert "drained" in w.output()


def wait_for_workers(addr: str, kind: str, n: int, timeout: float = 15) -> None:
    """Polls GetStats until `n` live workers declare `kind`."""
    with grpc.insecure_channel(addr) as ch:
        stub = jobs_pb2_grpc.JobServiceStub(ch)
        end = time.monotonic() + timeout
        while True:
            workers = stub.GetStats(jobs_pb2.GetStatsRequest(), timeout=5).workers
            live = [w.id for w in workers if kind in w.kinds]
            if len(live) >= n:
                return
            if time.monotonic() > end:
                raise AssertionError(f"{n} worker(s) for {kind} not live after {timeout} s: {live}")
            time.sleep(0.05)


def test_json_payload_round_trip(server, prefix, worker):
    """A custom kind with a JSON payload runs in an SDK worker process; the result comes back
    as JSON over gRPC (and through pfc dev's REST gateway)."""
    name, addr = server
    payload = {"w": 64, "tags": ["a", "b"], "nested": {"ok": True, "n": None}, "text": "héllo"}
    with pfc.Client(addr) as client:
        job_id = client.submit(f"{prefix}.echo", payload)
        job = client.wait(job_id, timeout=30)
    assert job.status == "done", job
    assert job.result == {"echo": payload, "kind": f"{prefix}.echo", "attempt": 1, "sdk": "python"}
    assert job.payload == payload
    assert job.kind == f"{prefix}.echo" and job.attempts == 1 and job.error is None
    assert job.worker_id.startswith("e2e-py-")
    if name == "dev":
        with urllib.request.urlopen(f"{DEV_HTTP}/api/v1/jobs/{job_id}", timeout=10) as r:
            rest = json.load(r)
        assert rest["status"] == "done", rest
        if "payload" not in rest:
            pytest.xfail(f"REST does not show JSON payloads and results yet (issue 11 item 1): {rest}")
        assert rest["payload"] == payload, rest
        assert rest["result"] == job.result, rest


def test_retryable_failure_is_retried_then_fails_with_the_message(server, prefix, worker):
    """A handler that raises is retried with backoff until max_attempts, then the job fails
    with the handler's message."""
    with pfc.Client(server[1]) as client:
        job_id = client.submit(f"{prefix}.flaky", {"n": 1}, max_attempts=2)
        t0 = time.monotonic()
        job = client.wait(job_id, timeout=30)
    assert job.status == "failed", job
    assert job.attempts == 2
    assert job.error == "flaky failure on attempt 2"
    assert time.monotonic() - t0 >= 0.4  # the retry waited for its backoff (500 ms by default)


def test_permanent_error_fails_at_once(server, prefix, worker):
    """PermanentError fails the job on its first attempt, with its message."""
    with pfc.Client(server[1]) as client:
        job_id = client.submit(f"{prefix}.permanent", {"why": "a corrupt image"}, max_attempts=5)
        job = client.wait(job_id, timeout=30)
    assert job.status == "failed"
    assert job.attempts == 1
    assert job.error == "cannot handle a corrupt image"


def test_progress_reaches_watch(server, prefix, worker):
    """Progress reported by an async handler reaches a WatchJob stream before the result."""
    with pfc.Client(server[1]) as client:
        job_id = client.submit(f"{prefix}.progress", {})
        seen = []
        for job in client.watch(job_id, timeout=30):
            if job.progress is not None and (not seen or seen[-1] != job.progress):
                seen.append(job.progress)
            last = job
    assert last.status == "done" and last.result == {"steps": 3}
    assert [p for p in seen if p in (25, 50, 75)] == [25, 50, 75], seen


def test_client_get_cancel_idempotency_and_not_found(server, prefix):
    """A job of a kind no worker runs waits queued; get shows it, cancel cancels it; a repeated
    idempotency key returns the same job; an unknown id is JobNotFound."""
    with pfc.Client(server[1]) as client:
        job_id = client.submit(f"{prefix}.nobody", {"a": 1}, idempotency_key=f"{prefix}-key")
        assert client.submit(f"{prefix}.nobody", {"a": 1}, idempotency_key=f"{prefix}-key") == job_id
        job = client.get(job_id)
        assert (job.status, job.payload, job.kind) == ("queued", {"a": 1}, f"{prefix}.nobody")
        assert client.cancel(job_id).status == "cancelled"
        assert client.wait(job_id, timeout=10).status == "cancelled"
        delayed = client.get(client.submit(f"{prefix}.nobody", [1, 2], delay=60))
        assert delayed.status == "scheduled" and delayed.run_at is not None
        with pytest.raises(pfc.JobNotFound):
            client.get("01ARZ3NDEKTSV4RRFFQ69G5FAV")
        with pytest.raises(pfc.RpcError) as e:
            client.submit("Not A Kind", {})
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(pfc.WaitTimeout):
            client.wait(delayed.id, timeout=0.5)


def test_kill_9_mid_batch_loses_nothing(server, prefix, tmp_path):
    """kill -9 of one of two SDK workers in the middle of 500 jobs: every job is done, the
    killed worker's jobs are redelivered at once (the server sees the stream break), well
    under the 3 s lease."""
    name, addr = server
    kind = f"{prefix}.batch"
    events_a, events_b = tmp_path / "a.events", tmp_path / "b.events"
    with pfc.Client(addr) as client, ThreadPoolExecutor(8) as pool:
        # The whole batch waits queued first, so that A is busy whenever it is killed.
        ids = list(pool.map(lambda i: client.submit(kind, {"i": i, "ms": 40}), range(500)))
    a = WorkerProc(addr, prefix, events_a)
    b = WorkerProc(addr, prefix, events_b)
    try:
        wait_for_workers(addr, kind, 2)
        with pfc.Client(addr) as client, ThreadPoolExecutor(8) as pool:
            # Kill A once it has finished some jobs and holds others.
            end = time.monotonic() + 30
            # Its jobs run 8 at a time and end together, so "60 done" alone can land between
            # two batches, A holding none: wait for a start without its done.
            def held() -> bool:
                lines = list(_lines(events_a))
                done = sum(1 for l in lines if l[0] == "done")
                return done >= 60 and sum(1 for l in lines if l[0] == "start") > done

            while not held():
                assert time.monotonic() < end, "worker A finished nothing"
                time.sleep(0.005)
            a.proc.send_signal(signal.SIGKILL)
            killed_at = time.time()
            a.proc.wait()
            jobs = list(pool.map(lambda i: client.wait(i, timeout=60), ids))
    finally:
        if a.proc.poll() is None:
            a.kill()
        else:
            a.out.close()
        assert b.stop() == 0, b.output()
    assert [j.status for j in jobs] == ["done"] * 500, [j for j in jobs if j.status != "done"][:3]
    assert [j.result for j in jobs] == [{"i": i} for i in range(500)]
    a_lines = list(_lines(events_a))
    a_id = a_lines[0][3]
    started_by_a = {l[1] for l in a_lines if l[0] == "start"}
    redelivered = [j for j in jobs if j.id in started_by_a and j.worker_id != a_id]
    assert redelivered, "A held no job when it was killed"
    assert all(j.attempts >= 2 for j in redelivered)
    b_starts = {l[1]: float(l[2]) for l in _lines(events_b) if l[0] == "start"}
    restart = max(b_starts[j.id] for j in redelivered) - killed_at
    done = max(j.finished_at.timestamp() for j in redelivered) - killed_at
    report = (f"{name}: kill -9 with {len(redelivered)} job(s) held: last redelivered job "
              f"restarted {restart * 1000:.0f} ms and done {done * 1000:.0f} ms after the kill")
    print(report)
    (LOGS / f"py-kill9-{name}.txt").write_text(report + "\n")
    assert restart < 2.0, report  # the lease is 3 s: redelivery came from the broken stream


def test_sigterm_drains_and_releases(server, prefix, tmp_path):
    """SIGTERM while jobs run: the worker finishes what it started, the rest stays queued for
    the next worker, and the process exits 0."""
    name, addr = server
    kind = f"{prefix}.batch"
    events = tmp_path / "w.events"
    w = WorkerProc(addr, prefix, events, concurrency=4)
    wait_for_workers(addr, kind, 1)
    with pfc.Client(addr) as client:
        ids = [client.submit(kind, {"i": i, "ms": 300}) for i in range(12)]
        end = time.monotonic() + 20
        while sum(1 for l in _lines(events) if l[0] == "start") < 4:
            assert time.monotonic() < end
            time.sleep(0.01)
        assert w.stop() == 0, w.output()
        lines = list(_lines(events))
        started = {l[1] for l in lines if l[0] == "start"}
        finished = {l[1] for l in lines if l[0] == "done"}
        assert started == finished, "a started job was not finished before exit"
        states = [client.get(i) for i in ids]
        assert {j.id for j in states if j.status == "done"} == started
        assert all(j.status == "queued" for j in states if j.id not in started), states
        # A second worker runs what is left.
        w2 = WorkerProc(addr, prefix)
        try:
            rest = [client.wait(i, timeout=30) for i in ids]
        finally:
            assert w2.stop() == 0
    assert all(j.status == "done" for j in rest)


def _lines(path: Path):
    try:
        text = path.read_text()
    except FileNotFoundError:
        return
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4:
            yield parts
