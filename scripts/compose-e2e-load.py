#!/usr/bin/env python3
"""Load + failure test for scripts/compose-e2e.sh (stdlib only).

First submits --sleep-jobs `sleep` jobs (POST /api/v1/jobs, kind "sleep", --sleep-ms each) so
that every worker is busy with jobs that take a while, then N uppercase jobs through the
origin route (POST /jobs) from a thread pool; runs KILL_CMD (e.g.
`podman kill -s KILL pfc-e2e_worker_1`) once KILL_AFTER of those have been accepted, keeps
submitting, then polls every job (GET /jobs/{id}) until it is `done` and checks each result
(the upper-cased text; "slept N ms"). Exit 0 only if no job is lost, stuck or wrong within
--timeout seconds. The summary counts jobs delivered more than once: the killed worker's
in-flight jobs, redelivered after their lease expired.

    compose-e2e-load.py --base http://127.0.0.1:18000 --jobs 2000 --kill-after 500 \
        --kill-cmd 'podman kill -s KILL pfc-e2e_worker_1'
"""

import argparse
import http.client
import json
import shlex
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

_local = threading.local()


def conn(base):
    c = getattr(_local, "conn", None)
    if c is None:
        u = urllib.parse.urlsplit(base)
        c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
        _local.conn = c
    return c


def request(base, method, path, body=None):
    """One HTTP request on this thread's keep-alive connection; retries transport errors."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json"} if data is not None else {}
    for attempt in range(5):
        try:
            c = conn(base)
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            payload = r.read()
            return r.status, (json.loads(payload) if payload else None)
        except (OSError, http.client.HTTPException):
            _local.conn = None
            time.sleep(0.2 * (attempt + 1))
    raise RuntimeError(f"{method} {path}: no response after retries")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=32)
    ap.add_argument("--kill-after", type=int, default=0)
    ap.add_argument("--kill-cmd", default="")
    ap.add_argument("--timeout", type=float, default=180)
    ap.add_argument("--sleep-jobs", type=int, default=0)
    ap.add_argument("--sleep-ms", type=int, default=2000)
    ap.add_argument("--details", default="/api/v1/jobs",
                    help="route with attempts/worker_id per job, for the summary ('' to skip)")
    a = ap.parse_args()

    texts = [f"job {i} bonjour le monde" for i in range(a.jobs)]
    expected = [t.upper() for t in texts]
    ids = [None] * a.jobs
    t0 = time.monotonic()
    if a.sleep_jobs:
        def submit_sleep(_):
            status, body = request(a.base, "POST", "/api/v1/jobs",
                                   {"kind": "sleep", "text": str(a.sleep_ms)})
            if status not in (200, 201) or not body or "job_id" not in body:
                raise RuntimeError(f"POST /api/v1/jobs (sleep) -> {status} {body}")
            return body["job_id"]
        with ThreadPoolExecutor(a.threads) as pool:
            ids += list(pool.map(submit_sleep, range(a.sleep_jobs)))
        texts += [str(a.sleep_ms)] * a.sleep_jobs
        expected += [f"slept {a.sleep_ms} ms"] * a.sleep_jobs
        print(f"  submitted {a.sleep_jobs} sleep jobs of {a.sleep_ms} ms", flush=True)
    accepted = 0
    lock = threading.Lock()
    killed = threading.Event()

    def maybe_kill():
        if a.kill_cmd and not killed.is_set():
            killed.set()
            t = time.monotonic() - t0
            out = subprocess.run(shlex.split(a.kill_cmd), capture_output=True, text=True)
            print(f"  [{t:5.1f}s] {a.kill_after} jobs accepted: {a.kill_cmd} -> rc={out.returncode}",
                  flush=True)
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)

    def submit(i):
        nonlocal accepted
        status, body = request(a.base, "POST", "/jobs", {"text": texts[i]})
        if status not in (200, 201, 202) or not body or "job_id" not in body:
            raise RuntimeError(f"POST /jobs -> {status} {body}")
        ids[i] = body["job_id"]
        with lock:
            accepted += 1
            due = a.kill_after and accepted == a.kill_after
        if due:
            threading.Thread(target=maybe_kill).start()

    t1 = time.monotonic()
    with ThreadPoolExecutor(a.threads) as pool:
        list(pool.map(submit, range(a.jobs)))
    t_submit = time.monotonic() - t1
    print(f"  submitted {a.jobs} uppercase jobs in {t_submit:.1f}s ({a.jobs / t_submit:.0f}/s)", flush=True)

    total = len(ids)
    pending = set(range(total))
    wrong = []
    deadline = time.monotonic() + a.timeout
    rounds = 0

    def check(i):
        status, body = request(a.base, "GET", f"/jobs/{ids[i]}")
        if status != 200:
            return i, f"http {status}", None
        return i, body.get("status"), body.get("result")

    while pending and time.monotonic() < deadline:
        rounds += 1
        with ThreadPoolExecutor(a.threads) as pool:
            results = list(pool.map(check, sorted(pending)))
        for i, status, result in results:
            if status == "done":
                pending.discard(i)
                if result != expected[i]:
                    wrong.append((ids[i], texts[i], result))
            elif status == "failed":
                pending.discard(i)
                wrong.append((ids[i], texts[i], "status=failed"))
        if pending:
            time.sleep(1)
    t_all = time.monotonic() - t0
    print(f"  {total - len(pending)}/{total} done after {t_all:.1f}s ({rounds} polling rounds)",
          flush=True)
    if pending:
        sample = [ids[i] for i in sorted(pending)[:5]]
        print(f"FAIL: {len(pending)} jobs not done within {a.timeout:.0f}s, e.g. {sample}", file=sys.stderr)
    if wrong:
        print(f"FAIL: {len(wrong)} wrong results, e.g. {wrong[:3]}", file=sys.stderr)
    if a.kill_cmd and not killed.is_set():
        print("FAIL: the kill command never ran", file=sys.stderr)
        return 1
    if not pending and not wrong and a.details:
        # Evidence of what the kill did: jobs delivered more than once (the killed worker's
        # in-flight jobs, redelivered after their lease expired) and the share of each worker.
        def detail(i):
            status, body = request(a.base, "GET", f"{a.details}/{ids[i]}")
            return body if status == 200 and isinstance(body, dict) else {}
        with ThreadPoolExecutor(a.threads) as pool:
            bodies = list(pool.map(detail, range(total)))
        retried = sum(1 for b in bodies if (b.get("attempts") or 1) > 1)
        per_worker = {}
        for b in bodies:
            w = b.get("worker_id") or "?"
            per_worker[w] = per_worker.get(w, 0) + 1
        print(f"  {retried} jobs needed more than one delivery; jobs finished per worker: {per_worker}",
              flush=True)
    return 1 if (pending or wrong) else 0


if __name__ == "__main__":
    sys.exit(main())
