"""pfc: submit jobs to pfc and run workers for them, over gRPC.

    import pfc

    client = pfc.Client("localhost:50051")
    job_id = client.submit("resize", {"w": 64})
    job = client.wait(job_id, timeout=30)       # job.status == "done", job.result

    worker = pfc.Worker("localhost:50051", concurrency=8)

    @worker.handler("resize")
    def resize(job):                            # job.id, .kind, .payload, .attempt, .progress()
        return {"ok": True}                     # any JSON value

    worker.run()                                # blocks; SIGTERM drains

Raising from a handler fails the delivery and pfc retries it with backoff; raising
:class:`PermanentError` fails the job at once. ``async def`` handlers run on asyncio.
"""

from ._client import Client
from ._codec import Bytes
from ._errors import Error, JobNotFound, PermanentError, RpcError, WaitTimeout
from ._job import TERMINAL, Job
from ._version import __version__
from ._worker import RunningJob, Worker

__all__ = [
    "Bytes",
    "Client",
    "Error",
    "Job",
    "JobNotFound",
    "PermanentError",
    "RpcError",
    "RunningJob",
    "TERMINAL",
    "WaitTimeout",
    "Worker",
    "__version__",
]
