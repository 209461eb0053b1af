#!/usr/bin/env python3
"""Jobs/s through a Python SDK worker: `python sdks/python/tools/bench.py --addr HOST:PORT`.

Submits --jobs jobs of a fresh kind while no worker runs it (so the queue is full), then
starts --workers worker processes (a no-op handler returning a small JSON result) and polls
GetStats until they are all done. Prints the throughput from the first to the last job done,
the worker processes' CPU time per job, and (with --server-pid) the server's. See
docs/benchmarks.md for the numbers and the exact commands.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc

import pfc
from pfc.jobs.v1 import jobs_pb2, jobs_pb2_grpc

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICK


def run_worker(addr: str, kind: str, concurrency: int, use_async: bool) -> None:
    worker = pfc.Worker(addr, concurrency=concurrency, name="bench-py")
    if use_async:

        async def handler(job):
            return {"i": job.payload["i"]}

    else:

        def handler(job):
            return {"i": job.payload["i"]}

    worker.handle(kind, handler)
    worker.run()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--addr", default="127.0.0.1:50051")
    p.add_argument("--jobs", type=int, default=20_000)
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--concurrency", type=int, default=64, help="per worker process")
    p.add_argument("--async", dest="use_async", action="store_true", help="async def handler")
    p.add_argument("--server-pid", type=int, help="report this process's CPU per job too")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--kind", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        run_worker(a.addr, a.kind, a.concurrency, a.use_async)
        return 0

    kind = f"bench.py-{uuid.uuid4().hex[:8]}"
    channel = grpc.insecure_channel(a.addr)
    stats = jobs_pb2_grpc.JobServiceStub(channel)

    def done_total() -> int:
        return stats.GetStats(jobs_pb2.GetStatsRequest(), timeout=10).done_total

    client = pfc.Client(a.addr)
    t0 = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: client.submit(kind, {"i": i}), range(a.jobs), chunksize=64))
    submit_s = time.monotonic() - t0
    print(f"submitted {a.jobs} jobs of {kind} in {submit_s:.2f} s ({a.jobs / submit_s:,.0f}/s, 16 threads)")

    base = done_total()
    server_cpu0 = cpu_seconds(a.server_pid) if a.server_pid else 0.0
    args = [sys.executable, __file__, "--worker", "--addr", a.addr, "--kind", kind,
            "--concurrency", str(a.concurrency)] + (["--async"] if a.use_async else [])
    procs = [subprocess.Popen(args) for _ in range(a.workers)]
    first = last = None
    n_first = 0
    deadline = time.monotonic() + 600
    try:
        while True:
            n = done_total() - base
            now = time.monotonic()
            if first is None and n > 0:
                first, n_first = now, n
            if n >= a.jobs:
                last = now
                break
            if now > deadline:
                raise SystemExit(f"only {n} of {a.jobs} jobs done after 600 s")
            time.sleep(0.02)
        worker_cpu = sum(cpu_seconds(pr.pid) for pr in procs)
        server_cpu = cpu_seconds(a.server_pid) - server_cpu0 if a.server_pid else None
    finally:
        for pr in procs:
            pr.terminate()
        for pr in procs:
            pr.wait(30)
    span = last - first
    rate = (a.jobs - n_first) / span if span > 0 else float("inf")
    mode = "async def" if a.use_async else "def"
    print(f"{a.jobs} jobs through {a.workers} Python worker(s) x concurrency {a.concurrency} "
          f"({mode} handler): {rate:,.0f} jobs/s ({span:.2f} s from first to last done)")
    print(f"worker CPU: {worker_cpu / a.jobs * 1e6:.0f} µs/job ({worker_cpu:.1f} s)")
    if server_cpu is not None:
        print(f"server CPU: {server_cpu / a.jobs * 1e6:.0f} µs/job ({server_cpu:.1f} s)")
    client.close()
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
