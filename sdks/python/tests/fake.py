"""A scripted WorkerService on loopback: the tests play the server's side of the protocol."""

from __future__ import annotations

import asyncio
from typing import Optional

import grpc

from pfc.worker.v1 import worker_pb2 as pb
from pfc.worker.v1 import worker_pb2_grpc


class Stream:
    """One Work stream as the server sees it."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self.context = context
        self.inbox: asyncio.Queue = asyncio.Queue()  # WorkRequest, or None at the worker's half-close
        self.outbox: asyncio.Queue = asyncio.Queue()  # WorkResponse, None ends the stream, or a (code, msg) abort
        self.ended = asyncio.Event()

    async def recv(self, timeout: float = 5.0) -> Optional[pb.WorkRequest]:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def recv_kind(self, which: str, timeout: float = 5.0) -> pb.WorkRequest:
        """The next message of type `which`, skipping progress reports and heartbeats."""
        while True:
            msg = await self.recv(timeout)
            assert msg is not None, f"stream half-closed while waiting for {which}"
            got = msg.WhichOneof("message")
            if got == which:
                return msg
            assert got in ("progress", "heartbeat"), f"expected {which}, got {msg}"

    def send(self, **kw) -> None:
        self.outbox.put_nowait(pb.WorkResponse(**kw))

    def assign(self, job_id: str, kind: str, payload: bytes = b"null", delivery: int = 1,
               attempt: int = 1, content_type: str = "application/json") -> None:
        self.send(assignment=pb.JobAssignment(
            job_id=job_id, kind=kind, payload=payload, content_type=content_type,
            delivery=delivery, attempt=attempt, max_attempts=3))

    def ack(self, job_id: str, delivery: int = 1) -> None:
        self.send(ack=pb.ReportAck(job_id=job_id, delivery=delivery, outcome=pb.REPORT_OUTCOME_APPLIED))

    def end(self) -> None:
        self.outbox.put_nowait(None)

    def abort(self, code: grpc.StatusCode, msg: str) -> None:
        self.outbox.put_nowait((code, msg))


class FakeWorkerService(worker_pb2_grpc.WorkerServiceServicer):
    def __init__(self) -> None:
        self.streams: asyncio.Queue = asyncio.Queue()

    async def Work(self, request_iterator, context):  # noqa: N802 - gRPC method name
        stream = Stream(context)
        await self.streams.put(stream)

        async def pump():
            try:
                async for msg in request_iterator:
                    await stream.inbox.put(msg)
            except Exception:  # noqa: BLE001 - the client went away
                pass
            await stream.inbox.put(None)

        reader = asyncio.ensure_future(pump())
        try:
            while True:
                out = await stream.outbox.get()
                if out is None:
                    return
                if isinstance(out, tuple):
                    await context.abort(*out)
                yield out
        finally:
            reader.cancel()
            stream.ended.set()


async def start() -> tuple[grpc.aio.Server, FakeWorkerService, str]:
    server = grpc.aio.server()
    svc = FakeWorkerService()
    worker_pb2_grpc.add_WorkerServiceServicer_to_server(svc, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, svc, f"127.0.0.1:{port}"


async def welcome(svc: FakeWorkerService, worker_id: str = "w-1") -> tuple[Stream, pb.Hello]:
    """Accepts the next stream: reads its Hello, answers Welcome."""
    stream = await asyncio.wait_for(svc.streams.get(), 5)
    hello = await stream.recv()
    assert hello is not None and hello.WhichOneof("message") == "hello", hello
    stream.send(welcome=pb.Welcome(worker_id=worker_id, lease_ms=3000))
    return stream, hello.hello
