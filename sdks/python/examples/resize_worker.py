"""A pfc worker in Python: runs "resize" jobs (pretend image resizing) until SIGTERM / Ctrl-C.

    pip install sdks/python
    pfc dev                                  # in another terminal (or cargo run -p pfc -- dev)
    python sdks/python/examples/resize_worker.py
    python sdks/python/examples/submit.py    # submits a job and prints its result

Watch the jobs run at http://localhost:8000.
"""

import logging
import os
import time

import pfc

logging.basicConfig(level=logging.INFO)
worker = pfc.Worker(os.environ.get("PFC_ADDR", "localhost:50051"), concurrency=8)


@worker.handler("resize")
def resize(job):
    w, h = job.payload["w"], job.payload.get("h", job.payload["w"])
    if w <= 0 or h <= 0:
        raise pfc.PermanentError(f"bad size {w}x{h}")  # failed at once, not retried
    for step in range(1, 5):
        time.sleep(0.25)  # the real work
        job.progress(step * 25)
    return {"w": w, "h": h, "bytes": w * h * 3}  # any JSON value


worker.run()  # blocks; SIGTERM finishes running jobs, gives back the rest, then returns
