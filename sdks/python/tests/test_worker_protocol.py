"""The Worker's side of the protocol, against a scripted server (tests/fake.py): no pfc needed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import threading

import grpc
import pytest

import pfc
from pfc.worker.v1 import worker_pb2 as pb

import fake


def run(coro, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def started(worker: pfc.Worker):
    server, svc, addr = await fake.start()
    worker.addr = addr
    task = asyncio.ensure_future(worker.run_async())
    return server, svc, task


def test_hello_declares_name_kinds_concurrency_and_sdk():
    """Hello carries the worker's name, its handlers' kinds (sorted), queues, concurrency and SDK."""

    async def main():
        w = pfc.Worker("unused", concurrency=5, name="resizer", queues=("mail", "a.b"))
        w.handle("resize", lambda job: None)
        w.handle("crop.v2", lambda job: None)
        server, svc, task = await started(w)
        stream, hello = await fake.welcome(svc, "resizer-abc")
        assert hello.name == "resizer"
        assert list(hello.kinds) == ["crop.v2", "resize"]
        assert hello.concurrency == 5
        assert list(hello.queues) == ["mail", "a.b"]
        assert hello.sdk == f"pfc-python/{pfc.__version__}"
        for _ in range(50):
            if w.worker_id:
                break
            await asyncio.sleep(0.02)
        assert w.worker_id == "resizer-abc"
        w.stop()
        assert (await stream.recv_kind("drain")).HasField("drain")
        assert await stream.recv() is None  # nothing held: the worker half-closes at once
        stream.end()
        await task
        await server.stop(None)

    run(main())


def test_sync_and_async_handlers_return_json_results():
    """A sync and an async handler get the decoded payload and the job's fields; what they
    return goes back as a JSON JobSucceeded echoing the delivery."""

    async def main():
        w = pfc.Worker("unused", concurrency=4)
        seen = {}

        @w.handler("sync-kind")
        def sync_handler(job):
            seen["sync"] = (job.id, job.kind, job.payload, job.attempt, threading.current_thread().name)
            return {"w": job.payload["w"] * 2, "list": [1, "two", None]}

        @w.handler("async-kind")
        async def async_handler(job):
            await asyncio.sleep(0.01)
            seen["async"] = (job.id, job.kind, job.payload, job.attempt)
            return "a string is JSON too"

        server, svc, task = await started(w)
        stream, _ = await fake.welcome(svc)
        stream.assign("j1", "sync-kind", b'{"w": 64}', delivery=7, attempt=2)
        stream.assign("j2", "async-kind", b"[1,2]", delivery=3)
        got = {}
        for _ in range(2):
            m = (await stream.recv_kind("succeeded")).succeeded
            got[m.job_id] = m
            stream.ack(m.job_id, m.delivery)
        assert json.loads(got["j1"].result) == {"w": 128, "list": [1, "two", None]}
        assert got["j1"].delivery == 7 and got["j1"].content_type == "application/json"
        assert json.loads(got["j2"].result) == "a string is JSON too"
        assert seen["sync"][:4] == ("j1", "sync-kind", {"w": 64}, 2)
        assert seen["sync"][4].startswith("pfc-job")  # sync handlers run in the thread pool
        assert seen["async"] == ("j2", "async-kind", [1, 2], 1)
        w.stop()
        await stream.recv_kind("drain")
        assert await stream.recv() is None
        stream.end()
        await task
        await server.stop(None)

    run(main())


def test_errors_are_retryable_permanent_or_bad_results():
    """A raised exception is a retryable JobFailed with its message; PermanentError is a
    permanent one; a result JSON cannot encode fails permanently; bytes pass through."""

    async def main():
        w = pfc.Worker("unused")

        @w.handler("k")
        def handler(job):
            if job.payload == "boom":
                raise ValueError("disk on fire")
            if job.payload == "never":
                raise pfc.PermanentError("bad input: never")
            if job.payload == "nan":
                return float("nan")
            if job.payload == "bytes":
                return b"\x00\x01"
            return pfc.Bytes(b"<p>", "text/html")

        server, svc, task = await started(w)
        stream, _ = await fake.welcome(svc)
        for i, p in enumerate(["boom", "never", "nan", "bytes", "blob"]):
            stream.assign(f"j{i}", "k", json.dumps(p).encode(), delivery=i + 1)
        out = {}
        for _ in range(5):
            m = await stream.recv()
            which = m.WhichOneof("message")
            body = getattr(m, which)
            out[body.job_id] = (which, body)
            stream.ack(body.job_id, body.delivery)
        assert out["j0"][0] == "failed" and out["j0"][1].error == "disk on fire" and not out["j0"][1].permanent
        assert out["j1"][0] == "failed" and out["j1"][1].error == "bad input: never" and out["j1"][1].permanent
        assert out["j2"][0] == "failed" and out["j2"][1].permanent and "not JSON" in out["j2"][1].error
        assert out["j3"][0] == "succeeded" and out["j3"][1].result == b"\x00\x01"
        assert out["j3"][1].content_type == "application/octet-stream"
        assert out["j4"][1].content_type == "text/html" and out["j4"][1].result == b"<p>"
        w.stop()
        await stream.recv_kind("drain")
        stream.end()
        await task
        await server.stop(None)

    run(main())


def test_progress_from_sync_and_async_handlers():
    """job.progress(p) sends JobProgress with the job's delivery, clamped to 0..100."""

    async def main():
        w = pfc.Worker("unused")

        @w.handler("sync")
        def s(job):
            job.progress(40.7)
            job.progress(250)
            return 1

        @w.handler("async")
        async def a(job):
            job.progress(-3)
            return 2

        server, svc, task = await started(w)
        stream, _ = await fake.welcome(svc)
        stream.assign("s", "sync", delivery=11)
        msgs = [await stream.recv() for _ in range(3)]
        assert [(m.progress.job_id, m.progress.delivery, m.progress.percent) for m in msgs[:2]] == [
            ("s", 11, 40), ("s", 11, 100)]
        assert msgs[2].WhichOneof("message") == "succeeded"
        stream.assign("a", "async", delivery=12)
        m = await stream.recv()
        assert (m.progress.job_id, m.progress.percent) == ("a", 0)
        await stream.recv_kind("succeeded")
        w.stop()
        await stream.recv_kind("drain")
        stream.end()
        await task
        await server.stop(None)

    run(main())


def test_stop_drains_finishes_running_jobs_and_releases_late_ones():
    """stop(): Drain first; an assignment that crossed the Drain is Released unstarted; the
    running job still reports its result; the worker half-closes once all is acknowledged."""

    async def main():
        w = pfc.Worker("unused", concurrency=2)
        gate = threading.Event()
        ran = []

        @w.handler("slow")
        def slow(job):
            ran.append(job.id)
            gate.wait(10)
            return "finished"

        server, svc, task = await started(w)
        stream, _ = await fake.welcome(svc)
        stream.assign("running", "slow")
        await asyncio.sleep(0.2)
        w.stop()
        await stream.recv_kind("drain")
        stream.assign("late", "slow", delivery=2)
        rel = await stream.recv_kind("release")
        assert list(rel.release.job_ids) == ["late"]
        stream.send(ack=pb.ReportAck(job_id="late", delivery=2, outcome=pb.REPORT_OUTCOME_APPLIED))
        assert not task.done()  # still waiting for the running job
        gate.set()
        done = await stream.recv_kind("succeeded")
        assert done.succeeded.job_id == "running"
        assert json.loads(done.succeeded.result) == "finished"
        stream.ack("running")
        assert await stream.recv() is None
        stream.end()
        await task
        assert ran == ["running"]
        await server.stop(None)

    run(main())


def test_drain_timeout_gives_back_running_jobs():
    """A job still running when drain_timeout expires is Released, not reported."""

    async def main():
        w = pfc.Worker("unused", drain_timeout=0.3)

        @w.handler("stuck")
        async def stuck(job):
            await asyncio.sleep(60)

        server, svc, task = await started(w)
        stream, _ = await fake.welcome(svc)
        stream.assign("s1", "stuck")
        await asyncio.sleep(0.1)
        w.stop()
        await stream.recv_kind("drain")
        rel = await stream.recv_kind("release", timeout=3)
        assert list(rel.release.job_ids) == ["s1"]
        stream.ack("s1")
        assert await stream.recv() is None
        stream.end()
        await task
        await server.stop(None)

    run(main())


def test_revoked_job_is_not_reported():
    """After JobRevoked the worker drops the job: its handler is cancelled, no report is sent."""

    async def main():
        w = pfc.Worker("unused")
        cancelled = asyncio.Event()

        @w.handler("k")
        async def handler(job):
            if job.id == "revoke-me":
                try:
                    await asyncio.sleep(60)
                except asyncio.CancelledError:
                    cancelled.set()
                    raise
            return job.id

        server, svc, task = await started(w)
        stream, _ = await fake.welcome(svc)
        stream.assign("revoke-me", "k", delivery=5)
        await asyncio.sleep(0.1)
        stream.send(revoked=pb.JobRevoked(job_id="revoke-me", delivery=5))
        await asyncio.wait_for(cancelled.wait(), 5)
        stream.assign("other", "k", delivery=6)
        m = await stream.recv_kind("succeeded")
        assert m.succeeded.job_id == "other"
        stream.ack("other", 6)
        w.stop()
        await stream.recv_kind("drain")
        assert await stream.recv() is None
        stream.end()
        await task
        await server.stop(None)

    run(main())


def test_broken_stream_is_resumed_with_the_held_jobs():
    """When the stream breaks the worker opens a new one whose Hello names the worker and the
    jobs it still holds; the result of such a job is reported on the new stream."""

    async def main():
        w = pfc.Worker("unused")
        gate = asyncio.Event()

        @w.handler("k")
        async def handler(job):
            if job.id == "old":
                await gate.wait()
                return "old done"
            return job.id

        server, svc, task = await started(w)
        stream, _ = await fake.welcome(svc, "w-1")
        stream.assign("old", "k", delivery=3, attempt=2)
        await asyncio.sleep(0.1)
        stream.abort(grpc.StatusCode.UNAVAILABLE, "server restarting")
        stream2, hello = await fake.welcome(svc, "w-1")
        assert hello.worker_id == "w-1"
        assert [(h.job_id, h.delivery, h.attempt) for h in hello.held] == [("old", 3, 2)]
        gate.set()
        m = await stream2.recv_kind("succeeded")
        assert (m.succeeded.job_id, json.loads(m.succeeded.result)) == ("old", "old done")
        stream2.ack("old", 3)
        w.stop()
        await stream2.recv_kind("drain")
        assert await stream2.recv() is None
        stream2.end()
        await task
        await server.stop(None)

    run(main())


def test_a_report_finished_while_disconnected_is_sent_after_the_resume():
    """A job that finished while the stream was down is reported after the next Welcome."""

    async def main():
        w = pfc.Worker("unused")
        done = asyncio.Event()

        @w.handler("k")
        async def handler(job):
            await done.wait()
            return 42

        server, svc, task = await started(w)
        stream, _ = await fake.welcome(svc, "w-1")
        stream.assign("j", "k", delivery=9)
        await asyncio.sleep(0.05)
        stream.abort(grpc.StatusCode.UNAVAILABLE, "gone")
        await stream.ended.wait()
        done.set()  # finishes with no stream open
        stream2, hello = await fake.welcome(svc, "w-1")
        assert [h.job_id for h in hello.held] == ["j"]
        m = await stream2.recv_kind("succeeded")
        assert (m.succeeded.job_id, m.succeeded.delivery, m.succeeded.result) == ("j", 9, b"42")
        stream2.ack("j", 9)
        w.stop()
        await stream2.recv_kind("drain")
        stream2.end()
        await task
        await server.stop(None)

    run(main())


def test_no_resume_after_the_lease():
    """A worker that reconnects later than the lease starts afresh: no worker_id, no held jobs,
    and the old job's result is never sent."""

    async def main():
        w = pfc.Worker("unused")
        gate = asyncio.Event()

        @w.handler("k")
        async def handler(job):
            await gate.wait()
            return job.id

        server, svc, task = await started(w)
        stream = await asyncio.wait_for(svc.streams.get(), 5)
        await stream.recv()
        stream.send(welcome=pb.Welcome(worker_id="w-1", lease_ms=20, heartbeat_ms=0))
        stream.assign("old", "k")
        await asyncio.sleep(0.05)
        stream.abort(grpc.StatusCode.UNAVAILABLE, "gone")
        stream2, hello = await fake.welcome(svc, "w-2")
        assert hello.worker_id == "" and list(hello.held) == []
        gate.set()
        stream2.assign("new", "k")
        m = await stream2.recv_kind("succeeded")
        assert m.succeeded.job_id == "new"
        stream2.ack("new")
        w.stop()
        await stream2.recv_kind("drain")
        assert await stream2.recv() is None
        stream2.end()
        await task
        await server.stop(None)

    run(main())


def test_default_name_is_a_valid_hello_name():
    """The default name (the host name) fits Hello.name's rule."""
    import re

    w = pfc.Worker("x")
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", w.name)


def test_heartbeats_when_idle():
    """With Welcome.heartbeat_ms set, an idle worker sends Heartbeats."""

    async def main():
        w = pfc.Worker("unused")
        w.handle("k", lambda job: None)
        server, svc, task = await started(w)
        stream = await asyncio.wait_for(svc.streams.get(), 5)
        await stream.recv()
        stream.send(welcome=pb.Welcome(worker_id="w", lease_ms=300, heartbeat_ms=100))
        m = await stream.recv(2)
        assert m.WhichOneof("message") == "heartbeat"
        w.stop()
        await stream.recv_kind("drain")
        stream.end()
        await task
        await server.stop(None)

    run(main())


def test_rejected_hello_is_raised():
    """A Hello the server rejects (INVALID_ARGUMENT) ends run() with pfc.RpcError: retrying
    cannot fix the worker's setup."""

    async def main():
        w = pfc.Worker("unused")
        w.handle("k", lambda job: None)
        server, svc, task = await started(w)
        stream = await asyncio.wait_for(svc.streams.get(), 5)
        await stream.recv()
        stream.abort(grpc.StatusCode.INVALID_ARGUMENT, "concurrency 5000 is over 1024")
        with pytest.raises(pfc.RpcError) as e:
            await task
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "over 1024" in str(e.value)
        await server.stop(None)

    run(main())


def test_local_validation():
    """Kinds, concurrency and a missing handler are checked before connecting."""
    with pytest.raises(ValueError, match="invalid kind"):
        pfc.Worker("x").handle("Bad Kind", lambda j: None)
    with pytest.raises(ValueError, match="concurrency"):
        pfc.Worker("x", concurrency=0)
    with pytest.raises(ValueError, match="no handlers"):
        pfc.Worker("x").run()
    w = pfc.Worker("x")
    w.handle("k", lambda j: None)
    with pytest.raises(ValueError, match="already registered"):
        w.handle("k", lambda j: None)


def test_sigterm_drains_a_worker_process():
    """A worker process gets SIGTERM mid-job: it sends Drain, finishes the job, exits 0."""

    async def main():
        server, svc, addr = await fake.start()
        script = textwrap.dedent(f"""
            import time, pfc
            w = pfc.Worker({addr!r})
            @w.handler("k")
            def k(job):
                print("started", flush=True)
                time.sleep(0.5)
                return "ok"
            w.run()
            print("exited", flush=True)
        """)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE)
        stream, _ = await fake.welcome(svc)
        stream.assign("j", "k")
        assert (await asyncio.wait_for(proc.stdout.readline(), 10)).strip() == b"started"
        proc.send_signal(signal.SIGTERM)
        await stream.recv_kind("drain")
        m = await stream.recv_kind("succeeded")
        assert m.succeeded.job_id == "j"
        stream.ack("j")
        assert await stream.recv() is None
        stream.end()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        assert (await proc.stdout.read()).strip() == b"exited"
        await server.stop(None)

    run(main())


if os.environ.get("PFC_SDK_DEBUG"):
    import logging

    logging.basicConfig(level=logging.DEBUG)


def test_queues_are_checked():
    """A malformed queue name or more than 64 queues is refused before connecting."""
    with pytest.raises(ValueError):
        pfc.Worker("unused", queues=("Bad Queue",))
    with pytest.raises(ValueError):
        pfc.Worker("unused", queues=tuple(f"q{i}" for i in range(65)))
    assert pfc.Worker("unused").queues == ()
