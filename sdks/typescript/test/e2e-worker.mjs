// A worker written with the SDK, run as its own process by e2e.test.mjs from a scratch project
// that installed the SDK with `npm install` (so "pfc-sdk" resolves as it would for a user).
//
//   node e2e-worker.mjs --addr http://127.0.0.1:50051 --prefix ts-1a2b [--events FILE]
//
// Its kinds are `<prefix>.<name>`, so every test has kinds of its own on a shared server.
// With --events the batch handler appends `start|done <job id> <unix time> <worker id>` lines.
import { appendFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { PermanentError, Worker } from "pfc-sdk";

const { values: a } = parseArgs({
  options: {
    addr: { type: "string" },
    prefix: { type: "string" },
    concurrency: { type: "string", default: "8" },
    events: { type: "string" },
  },
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const note = (what, job) => {
  if (a.events) appendFileSync(a.events, `${what} ${job.id} ${(Date.now() / 1000).toFixed(3)} ${job.workerId}\n`);
};

const worker = new Worker(a.addr, { concurrency: Number(a.concurrency), name: `e2e-ts-${process.pid}` });
worker.handle(`${a.prefix}.echo`, async (job) => ({ echo: job.payload, kind: job.kind, attempt: job.attempt, sdk: "typescript" }));
worker.handle(`${a.prefix}.flaky`, async (job) => {
  throw new Error(`flaky failure on attempt ${job.attempt}`);
});
worker.handle(`${a.prefix}.permanent`, async (job) => {
  throw new PermanentError(`cannot handle ${job.payload.why}`);
});
worker.handle(`${a.prefix}.progress`, async (job) => {
  for (const pct of [25, 50, 75]) {
    job.progress(pct);
    await sleep(300);
  }
  return { steps: 3 };
});
worker.handle(`${a.prefix}.batch`, async (job) => {
  note("start", job);
  await sleep(job.payload.ms);
  note("done", job);
  return { i: job.payload.i };
});
await worker.run();
console.log("drained");
