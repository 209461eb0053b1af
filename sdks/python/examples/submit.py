"""Submits a "resize" job and waits for it: run examples/resize_worker.py first."""

import os
import sys

import pfc

with pfc.Client(os.environ.get("PFC_ADDR", "localhost:50051")) as client:
    job_id = client.submit("resize", {"w": int(sys.argv[1]) if len(sys.argv) > 1 else 64})
    print("submitted", job_id)
    for job in client.watch(job_id, timeout=60):
        print(job.status, f"{job.progress}%" if job.progress is not None else "")
    print("result:", job.result, "error:", job.error)
