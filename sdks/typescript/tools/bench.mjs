// Jobs/s through a Node SDK worker: `node sdks/typescript/tools/bench.mjs --addr http://HOST:PORT`.
//
// Like sdks/python/tools/bench.py: submits --jobs jobs of a fresh kind while no worker runs it,
// starts --workers worker processes (a no-op handler returning a small JSON result), and polls
// GetStats until all are done; prints the throughput from the first to the last job done and
// the workers' CPU time per job (from /proc). Build first: `npm ci && npm run build`.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createClient } from "@connectrpc/connect";
import { Client, Worker } from "../dist/index.js";
import { JobService } from "../dist/gen/pfc/jobs/v1/jobs_pb.js";
import { grpcTransport } from "../dist/transport.js";

const { values: a } = parseArgs({
  options: {
    addr: { type: "string", default: "http://127.0.0.1:50051" },
    jobs: { type: "string", default: "20000" },
    workers: { type: "string", default: "1" },
    concurrency: { type: "string", default: "64" },
    worker: { type: "boolean", default: false },
    kind: { type: "string" },
  },
});

if (a.worker) {
  const w = new Worker(a.addr, { concurrency: Number(a.concurrency), name: "bench-ts", logger: { info() {}, warn: console.error } });
  w.handle(a.kind, (job) => ({ i: job.payload.i }));
  await w.run();
  process.exit(0);
}

const cpu = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(")").pop().trim().split(" ");
  return f.slice(11, 15).reduce((s, x) => s + Number(x), 0) / 100; // USER_HZ
};
const n = Number(a.jobs);
const kind = `bench.ts-${randomBytes(4).toString("hex")}`;
const client = new Client(a.addr);
const stats = createClient(JobService, grpcTransport(a.addr));
let t0 = performance.now();
for (let i = 0; i < n; i += 256) {
  await Promise.all(Array.from({ length: Math.min(256, n - i) }, (_, k) => client.submit(kind, { i: i + k })));
}
console.log(`submitted ${n} jobs of ${kind} in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
const base = (await stats.getStats({})).doneTotal;
const self = fileURLToPath(import.meta.url);
const procs = Array.from({ length: Number(a.workers) }, () =>
  spawn(process.execPath, [self, "--worker", "--addr", a.addr, "--kind", kind, "--concurrency", a.concurrency], { stdio: "inherit" }),
);
let first, firstN = 0, last;
for (;;) {
  const done = Number((await stats.getStats({})).doneTotal - base);
  const now = performance.now();
  if (first === undefined && done > 0) [first, firstN] = [now, done];
  if (done >= n) {
    last = now;
    break;
  }
  await new Promise((r) => setTimeout(r, 20));
}
const workerCpu = procs.reduce((s, p) => s + cpu(p.pid), 0);
for (const p of procs) p.kill("SIGTERM");
const span = (last - first) / 1000;
console.log(`${n} jobs through ${a.workers} Node worker(s) x concurrency ${a.concurrency}: ${Math.round((n - firstN) / span)} jobs/s (${span.toFixed(2)} s from first to last done)`);
console.log(`worker CPU: ${Math.round((workerCpu / n) * 1e6)} µs/job (${workerCpu.toFixed(1)} s)`);
