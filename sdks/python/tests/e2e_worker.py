"""A worker written with the SDK, run as its own process by test_e2e.py.

    python e2e_worker.py --addr 127.0.0.1:50051 --prefix py-1a2b [--events FILE]

Its kinds are ``<prefix>.<name>`` so that every test has kinds of its own on a shared server.
With ``--events`` the batch handler appends ``start|done <job id> <unix time> <worker id>``
lines, for the kill -9 test.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time

import pfc


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--events")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    worker = pfc.Worker(a.addr, concurrency=a.concurrency, name=f"e2e-py-{os.getpid()}")
    events = open(a.events, "a", buffering=1) if a.events else None

    def note(what: str, job: pfc.RunningJob) -> None:
        if events is not None:
            events.write(f"{what} {job.id} {time.time():.6f} {job.worker_id}\n")

    @worker.handler(f"{a.prefix}.echo")
    def echo(job):
        return {"echo": job.payload, "kind": job.kind, "attempt": job.attempt, "sdk": "python"}

    @worker.handler(f"{a.prefix}.flaky")
    def flaky(job):
        raise RuntimeError(f"flaky failure on attempt {job.attempt}")

    @worker.handler(f"{a.prefix}.permanent")
    def permanent(job):
        raise pfc.PermanentError(f"cannot handle {job.payload['why']}")

    @worker.handler(f"{a.prefix}.progress")
    async def progress(job):
        for pct in (25, 50, 75):
            job.progress(pct)
            await asyncio.sleep(0.3)
        return {"steps": 3}

    @worker.handler(f"{a.prefix}.batch")
    def batch(job):
        note("start", job)
        time.sleep(job.payload["ms"] / 1000)
        note("done", job)
        return {"i": job.payload["i"]}

    worker.run()
    print("drained", flush=True)


if __name__ == "__main__":
    main()
