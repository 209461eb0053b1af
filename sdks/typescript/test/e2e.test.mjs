// End to end: real worker processes written with the SDK against real pfc servers.
//
// scripts/test-sdks.sh starts redis-server, `pfc jobs` on it and `pfc dev`, exports their
// addresses (PFC_TEST_JOBS_ADDR, PFC_TEST_DEV_ADDR, PFC_TEST_DEV_HTTP) and a scratch project
// with the SDK installed (PFC_TS_APP). Every test declares kinds of its own (a random prefix)
// so the tests share the servers. Without those variables the tests are skipped
// (PFC_SDK_E2E=required makes that an error).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, createWriteStream, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Client, Code, JobNotFoundError, RpcError, WaitTimeoutError } from "../dist/index.js";
import { JobService } from "../dist/gen/pfc/jobs/v1/jobs_pb.js";

const SERVERS = { jobs: process.env.PFC_TEST_JOBS_ADDR, dev: process.env.PFC_TEST_DEV_ADDR };
const DEV_HTTP = process.env.PFC_TEST_DEV_HTTP;
const APP = process.env.PFC_TS_APP;
const LOGS = process.env.PFC_SDK_LOGS ?? tmpdir();
const ready = SERVERS.jobs && SERVERS.dev && APP;
if (!ready && process.env.PFC_SDK_E2E === "required") {
  throw new Error("PFC_TEST_JOBS_ADDR / PFC_TEST_DEV_ADDR / PFC_TS_APP are not set");
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const here = fileURLToPath(new URL(".", import.meta.url));
if (ready) copyFileSync(join(here, "e2e-worker.mjs"), join(APP, "e2e-worker.mjs"));

// A test that fails half-way does not leave its worker processes running.
const started = new Set();
process.on("exit", () => {
  for (const proc of started) if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
});

/** An e2e-worker.mjs process. */
class WorkerProc {
  constructor(addr, prefix, { events, concurrency = 8 } = {}) {
    this.log = join(LOGS, `ts-worker-${prefix}-${randomBytes(3).toString("hex")}.log`);
    const args = [join(APP, "e2e-worker.mjs"), "--addr", `http://${addr}`, "--prefix", prefix, "--concurrency", String(concurrency)];
    if (events) args.push("--events", events);
    this.proc = spawn(process.execPath, args, { cwd: APP, stdio: ["ignore", "pipe", "pipe"] });
    started.add(this.proc);
    const out = createWriteStream(this.log);
    this.proc.stdout.pipe(out);
    this.proc.stderr.pipe(out);
    this.exited = new Promise((r) => this.proc.on("exit", (code, sig) => r(code ?? sig)));
  }
  async stop(ms = 20_000) {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGTERM");
    const t = setTimeout(() => this.proc.kill("SIGKILL"), ms);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }
  output() {
    return readFileSync(this.log, "utf8");
  }
}

const prefix = () => `ts-${randomBytes(4).toString("hex")}`;

function lines(path) {
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {}
  return text.split("\n").map((l) => l.split(" ")).filter((p) => p.length === 4);
}

/** Polls GetStats until `n` live workers declare `kind`. */
async function waitForWorkers(addr, kind, n, ms = 15_000) {
  const rpc = createClient(JobService, createGrpcTransport({ baseUrl: `http://${addr}` }));
  const end = Date.now() + ms;
  for (;;) {
    const { workers } = await rpc.getStats({});
    const live = workers.filter((w) => w.kinds.includes(kind));
    if (live.length >= n) return;
    if (Date.now() > end) throw new Error(`${n} worker(s) for ${kind} not live after ${ms} ms: ${live.map((w) => w.id)}`);
    await sleep(50);
  }
}

/** Runs `fn` with a fresh worker process; checks it drains and exits 0 on SIGTERM. */
async function withWorker(addr, fn) {
  const p = prefix();
  const w = new WorkerProc(addr, p);
  try {
    await fn(p, w);
  } finally {
    const code = await w.stop();
    assert.equal(code, 0, `worker exited ${code} on SIGTERM:\n${w.output()}`);
    assert.match(w.output(), /drained/);
  }
}

for (const [name, addr] of Object.entries(SERVERS)) {
  describe(`against pfc ${name}`, { skip: !ready && "no pfc servers: run scripts/test-sdks.sh" }, () => {
    const client = ready ? new Client(`http://${addr}`) : undefined;

    test("a custom kind with a JSON payload round-trips as JSON (gRPC, and REST on pfc dev)", (t) =>
      withWorker(addr, async (p) => {
        const payload = { w: 64, tags: ["a", "b"], nested: { ok: true, n: null }, text: "héllo" };
        const id = await client.submit(`${p}.echo`, payload);
        const job = await client.wait(id, { timeoutMs: 30_000 });
        assert.equal(job.status, "done", JSON.stringify(job.error));
        assert.deepEqual(job.result, { echo: payload, kind: `${p}.echo`, attempt: 1, sdk: "typescript" });
        assert.deepEqual(job.payload, payload);
        assert.equal(job.attempts, 1);
        assert.match(job.workerId, /^e2e-ts-/);
        if (name === "dev") {
          const rest = await (await fetch(`${DEV_HTTP}/api/v1/jobs/${id}`)).json();
          assert.equal(rest.status, "done");
          if (!("payload" in rest)) {
            t.todo(`REST does not show JSON payloads and results yet (issue 11 item 1): ${JSON.stringify(rest)}`);
            return;
          }
          assert.deepEqual(rest.payload, payload);
          assert.deepEqual(rest.result, job.result);
        }
      }));

    test("a thrown error is retried with backoff, then fails with the handler's message", () =>
      withWorker(addr, async (p) => {
        const t0 = Date.now();
        const id = await client.submit(`${p}.flaky`, { n: 1 }, { maxAttempts: 2 });
        const job = await client.wait(id, { timeoutMs: 30_000 });
        assert.equal(job.status, "failed");
        assert.equal(job.attempts, 2);
        assert.equal(job.error, "flaky failure on attempt 2");
        assert.ok(Date.now() - t0 >= 400, "the retry waited for its backoff");
      }));

    test("PermanentError fails the job at once", () =>
      withWorker(addr, async (p) => {
        const id = await client.submit(`${p}.permanent`, { why: "a corrupt image" }, { maxAttempts: 5 });
        const job = await client.wait(id, { timeoutMs: 30_000 });
        assert.equal(job.status, "failed");
        assert.equal(job.attempts, 1);
        assert.equal(job.error, "cannot handle a corrupt image");
      }));

    test("progress reaches a WatchJob stream", () =>
      withWorker(addr, async (p) => {
        const id = await client.submit(`${p}.progress`, {});
        const seen = [];
        let last;
        for await (const job of client.watch(id, { timeoutMs: 30_000 })) {
          if (job.progress !== undefined && seen.at(-1) !== job.progress) seen.push(job.progress);
          last = job;
        }
        assert.equal(last.status, "done");
        assert.deepEqual(last.result, { steps: 3 });
        assert.deepEqual(seen.filter((x) => [25, 50, 75].includes(x)), [25, 50, 75]);
      }));

    test("client: get, cancel, idempotency keys, delays, not found, invalid kinds", async () => {
      const p = prefix();
      const id = await client.submit(`${p}.nobody`, { a: 1 }, { idempotencyKey: `${p}-key` });
      assert.equal(await client.submit(`${p}.nobody`, { a: 1 }, { idempotencyKey: `${p}-key` }), id);
      const job = await client.get(id);
      assert.deepEqual([job.status, job.payload, job.kind], ["queued", { a: 1 }, `${p}.nobody`]);
      assert.equal((await client.cancel(id)).status, "cancelled");
      assert.equal((await client.wait(id, { timeoutMs: 10_000 })).status, "cancelled");
      const delayed = await client.get(await client.submit(`${p}.nobody`, [1, 2], { delayMs: 60_000 }));
      assert.equal(delayed.status, "scheduled");
      assert.ok(delayed.runAt instanceof Date);
      await assert.rejects(client.get("01ARZ3NDEKTSV4RRFFQ69G5FAV"), JobNotFoundError);
      await assert.rejects(client.submit("Not A Kind", {}), (e) => e instanceof RpcError && e.code === Code.InvalidArgument);
      await assert.rejects(client.wait(delayed.id, { timeoutMs: 500 }), WaitTimeoutError);
    });

    test("kill -9 of one of two workers mid-batch of 500: nothing lost, redelivered at once", async () => {
      const p = prefix();
      const kind = `${p}.batch`;
      const dir = mkdtempSync(join(tmpdir(), "pfc-ts-"));
      const evA = join(dir, "a.events"), evB = join(dir, "b.events");
      // The whole batch waits queued first, so that A is busy whenever it is killed.
      const ids = [];
      for (let i = 0; i < 500; i += 50) {
        ids.push(...(await Promise.all(Array.from({ length: 50 }, (_, k) => client.submit(kind, { i: i + k, ms: 40 })))));
      }
      const a = new WorkerProc(addr, p, { events: evA });
      const b = new WorkerProc(addr, p, { events: evB });
      let killedAt, jobs;
      try {
        await waitForWorkers(addr, kind, 2);
        const end = Date.now() + 30_000;
        // Kill A once it has finished some jobs and holds others: its jobs run 8 at a time
        // and end together, so "60 done" alone can land between two batches, A holding none.
        const held = () => {
          const l = lines(evA);
          const done = l.filter((x) => x[0] === "done").length;
          return done >= 60 && l.filter((x) => x[0] === "start").length > done;
        };
        while (!held()) {
          assert.ok(Date.now() < end, "worker A finished nothing");
          await sleep(5);
        }
        a.proc.kill("SIGKILL");
        killedAt = Date.now() / 1000;
        await a.exited;
        jobs = await Promise.all(ids.map((id) => client.wait(id, { timeoutMs: 60_000 })));
      } finally {
        a.proc.kill("SIGKILL");
        assert.equal(await b.stop(), 0, b.output());
      }
      assert.deepEqual(jobs.map((j) => j.status), Array(500).fill("done"));
      assert.deepEqual(jobs.map((j) => j.result), Array.from({ length: 500 }, (_, i) => ({ i })));
      const aLines = lines(evA);
      const aId = aLines[0][3];
      const startedByA = new Set(aLines.filter((l) => l[0] === "start").map((l) => l[1]));
      const redelivered = jobs.filter((j) => startedByA.has(j.id) && j.workerId !== aId);
      assert.ok(redelivered.length > 0, "A held no job when it was killed");
      assert.ok(redelivered.every((j) => j.attempts >= 2));
      const bStarts = new Map(lines(evB).filter((l) => l[0] === "start").map((l) => [l[1], Number(l[2])]));
      const restart = Math.max(...redelivered.map((j) => bStarts.get(j.id))) - killedAt;
      const done = Math.max(...redelivered.map((j) => j.finishedAt.getTime() / 1000)) - killedAt;
      const report = `${name}: kill -9 with ${redelivered.length} job(s) held: last redelivered job restarted ${Math.round(restart * 1000)} ms and done ${Math.round(done * 1000)} ms after the kill`;
      console.log(report);
      writeFileSync(join(LOGS, `ts-kill9-${name}.txt`), report + "\n");
      assert.ok(restart < 2.0, report);
    });
  });
}

