// The Worker's side of the protocol, against a scripted server (fake.mjs): no pfc needed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Worker, PermanentError, Bytes, RpcError, Code, VERSION } from "../dist/index.js";
import { startFake } from "./fake.mjs";

const quiet = { info() {}, warn() {} };
const json = (bytes) => JSON.parse(new TextDecoder().decode(bytes));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function setup(kinds, options = {}) {
  const fake = await startFake();
  const worker = new Worker(fake.url, { handleSignals: false, logger: quiet, ...options });
  for (const [kind, fn] of Object.entries(kinds)) worker.handle(kind, fn);
  const run = worker.run();
  return { fake, worker, run };
}

async function finish({ fake, worker, run }, stream) {
  worker.stop();
  await stream.recvCase("drain");
  assert.equal(await stream.recv(), null, "the worker half-closes once nothing is held");
  stream.end();
  await run;
  fake.close();
}

test("a token (option or PFC_TOKEN) is sent as authorization: Bearer on the Work stream", async () => {
  const t = await setup({ resize: () => 1 }, { token: "pfc_0123456789abcdef_secret" });
  const [stream] = await t.fake.welcome();
  assert.equal(stream.authorization, "Bearer pfc_0123456789abcdef_secret");
  await finish(t, stream);
  const saved = process.env.PFC_TOKEN;
  process.env.PFC_TOKEN = "from-env";
  try {
    const u = await setup({ resize: () => 1 });
    const [s2] = await u.fake.welcome();
    assert.equal(s2.authorization, "Bearer from-env");
    await finish(u, s2);
  } finally {
    if (saved === undefined) delete process.env.PFC_TOKEN;
    else process.env.PFC_TOKEN = saved;
  }
  const v = await setup({ resize: () => 1 });
  const [s3] = await v.fake.welcome();
  assert.equal(s3.authorization, null, "no token, no header");
  await finish(v, s3);
});

test("Hello declares name, sorted kinds, queues, concurrency and SDK", async () => {
  const t = await setup({ resize: () => 1, "crop.v2": () => 2 }, { concurrency: 5, name: "resizer", queues: ["mail", "a.b"] });
  const [stream, hello] = await t.fake.welcome("resizer-abc");
  assert.equal(hello.name, "resizer");
  assert.deepEqual(hello.kinds, ["crop.v2", "resize"]);
  assert.deepEqual(hello.queues, ["mail", "a.b"]);
  assert.equal(hello.concurrency, 5);
  assert.equal(hello.sdk, `pfc-node/${VERSION}`);
  assert.equal(hello.workerId, "");
  await sleep(50);
  assert.equal(t.worker.workerId, "resizer-abc");
  await finish(t, stream);
});

test("handlers get the decoded payload and return JSON results echoing the delivery", async () => {
  const seen = {};
  const t = await setup({
    double: async (job) => {
      seen.job = { id: job.id, kind: job.kind, payload: job.payload, attempt: job.attempt };
      return { w: job.payload.w * 2, list: [1, "two", null] };
    },
    plain: (job) => `sync ${job.payload.length}`,
  });
  const [stream] = await t.fake.welcome();
  stream.assign("j1", "double", '{"w": 64}', { delivery: 7n, attempt: 2 });
  const ok = await stream.recvCase("succeeded");
  assert.equal(ok.jobId, "j1");
  assert.equal(ok.delivery, 7n);
  assert.equal(ok.contentType, "application/json");
  assert.deepEqual(json(ok.result), { w: 128, list: [1, "two", null] });
  assert.deepEqual(seen.job, { id: "j1", kind: "double", payload: { w: 64 }, attempt: 2 });
  stream.ack("j1", 7n);
  stream.assign("j2", "plain", "[1,2,3]", { delivery: 8n });
  const ok2 = await stream.recvCase("succeeded");
  assert.equal(json(ok2.result), "sync 3");
  stream.ack("j2", 8n);
  await finish(t, stream);
});

test("errors are retryable, PermanentError is permanent, bad results fail, bytes pass through", async () => {
  const t = await setup({
    k: (job) => {
      switch (job.payload) {
        case "boom":
          throw new Error("disk on fire");
        case "never":
          throw new PermanentError("bad input: never");
        case "nan":
          return NaN;
        case "bytes":
          return new Uint8Array([0, 1]);
        default:
          return new Bytes(new TextEncoder().encode("<p>"), "text/html");
      }
    },
  });
  const [stream] = await t.fake.welcome();
  ["boom", "never", "nan", "bytes", "blob"].forEach((p, i) => stream.assign(`j${i}`, "k", JSON.stringify(p), { delivery: BigInt(i + 1) }));
  const out = {};
  for (let i = 0; i < 5; i++) {
    const m = await stream.recv();
    out[m.message.value.jobId] = m.message;
    stream.ack(m.message.value.jobId, m.message.value.delivery);
  }
  assert.equal(out.j0.case, "failed");
  assert.equal(out.j0.value.error, "disk on fire");
  assert.equal(out.j0.value.permanent, false);
  assert.equal(out.j1.value.error, "bad input: never");
  assert.equal(out.j1.value.permanent, true);
  assert.equal(out.j2.case, "failed");
  assert.ok(out.j2.value.permanent && out.j2.value.error.includes("not JSON"));
  assert.equal(out.j3.case, "succeeded");
  assert.deepEqual([...out.j3.value.result], [0, 1]);
  assert.equal(out.j3.value.contentType, "application/octet-stream");
  assert.equal(out.j4.value.contentType, "text/html");
  await finish(t, stream);
});

test("job.progress sends JobProgress with the delivery, clamped to 0..100", async () => {
  const t = await setup({
    k: async (job) => {
      job.progress(40.7);
      job.progress(250);
      job.progress(-1);
      return 1;
    },
  });
  const [stream] = await t.fake.welcome();
  stream.assign("p", "k", "null", { delivery: 11n });
  const got = [];
  for (let i = 0; i < 3; i++) {
    const m = await stream.recv();
    assert.equal(m.message.case, "progress");
    got.push([m.message.value.jobId, m.message.value.delivery, m.message.value.percent]);
  }
  assert.deepEqual(got, [["p", 11n, 40], ["p", 11n, 100], ["p", 11n, 0]]);
  await stream.recvCase("succeeded");
  stream.ack("p", 11n);
  await finish(t, stream);
});

test("stop drains: Drain, late assignments Released, the running job still reports", async () => {
  let release;
  const gate = new Promise((r) => (release = r));
  const ran = [];
  const t = await setup({
    slow: async (job) => {
      ran.push(job.id);
      await gate;
      return "finished";
    },
  }, { concurrency: 2 });
  const [stream] = await t.fake.welcome();
  stream.assign("running", "slow");
  await sleep(100);
  t.worker.stop();
  await stream.recvCase("drain");
  stream.assign("late", "slow", "null", { delivery: 2n });
  const rel = await stream.recvCase("release");
  assert.deepEqual(rel.jobIds, ["late"]);
  stream.ack("late", 2n);
  release();
  const ok = await stream.recvCase("succeeded");
  assert.equal(ok.jobId, "running");
  stream.ack("running");
  assert.equal(await stream.recv(), null);
  stream.end();
  await t.run;
  assert.deepEqual(ran, ["running"]);
  t.fake.close();
});

test("a job still running at the drain timeout is Released, not reported", async () => {
  const t = await setup({ stuck: (job) => new Promise((r) => job.signal.addEventListener("abort", () => r("late"))) }, { drainTimeoutMs: 300 });
  const [stream] = await t.fake.welcome();
  stream.assign("s1", "stuck");
  await sleep(50);
  t.worker.stop();
  await stream.recvCase("drain");
  const rel = await stream.recvCase("release", 3000);
  assert.deepEqual(rel.jobIds, ["s1"]);
  stream.ack("s1");
  assert.equal(await stream.recv(), null);
  stream.end();
  await t.run;
  t.fake.close();
});

test("a revoked job is aborted and not reported", async () => {
  let aborted = false;
  const t = await setup({
    k: (job) =>
      job.id === "revoke-me"
        ? new Promise((r) => job.signal.addEventListener("abort", () => ((aborted = true), r("ignored"))))
        : job.id,
  });
  const [stream] = await t.fake.welcome();
  stream.assign("revoke-me", "k", "null", { delivery: 5n });
  await sleep(50);
  stream.send({ case: "revoked", value: { jobId: "revoke-me", delivery: 5n } });
  stream.assign("other", "k", "null", { delivery: 6n });
  const ok = await stream.recvCase("succeeded");
  assert.equal(ok.jobId, "other");
  assert.ok(aborted);
  stream.ack("other", 6n);
  await finish(t, stream);
});

test("a broken stream is resumed: Hello names the worker and its held jobs, results still count", async () => {
  let release;
  const gate = new Promise((r) => (release = r));
  const t = await setup({ k: async (job) => (job.id === "old" ? (await gate, "old done") : job.id) });
  const [stream] = await t.fake.welcome("w-1");
  stream.assign("old", "k", "null", { delivery: 3n });
  await sleep(50);
  stream.abort(Code.Unavailable, "server restarting");
  const [stream2, hello] = await t.fake.welcome("w-1");
  assert.equal(hello.workerId, "w-1");
  assert.deepEqual(hello.held.map((h) => [h.jobId, h.delivery, h.attempt]), [["old", 3n, 1]]);
  release();
  const ok = await stream2.recvCase("succeeded");
  assert.equal(ok.jobId, "old");
  assert.equal(json(ok.result), "old done");
  stream2.ack("old", 3n);
  await finish({ ...t }, stream2);
});

test("a worker that reconnects later than the lease starts afresh", async () => {
  let release;
  const gate = new Promise((r) => (release = r));
  const t = await setup({ k: async (job) => (await gate, job.id) });
  const [stream] = await t.fake.welcome("w-1", { leaseMs: 20 });
  stream.assign("old", "k");
  await sleep(50);
  stream.abort(Code.Unavailable, "gone");
  const [stream2, hello] = await t.fake.welcome("w-2");
  assert.equal(hello.workerId, "");
  assert.deepEqual(hello.held, []);
  release();
  stream2.assign("new", "k");
  assert.equal((await stream2.recvCase("succeeded")).jobId, "new");
  stream2.ack("new");
  await finish(t, stream2);
});

test("the default name is a valid Hello name", () => {
  assert.match(new Worker("x").name, /^[A-Za-z0-9._-]{1,64}$/);
});

test("heartbeats are sent when the worker has nothing else to say", async () => {
  const t = await setup({ k: () => 1 });
  const [stream] = await t.fake.welcome("w-1", { heartbeatMs: 100 });
  const m = await stream.recv(2000);
  assert.equal(m.message.case, "heartbeat");
  await finish(t, stream);
});

test("a rejected Hello rejects run() with RpcError", async () => {
  const fake = await startFake();
  const worker = new Worker(fake.url, { handleSignals: false, logger: quiet });
  worker.handle("k", () => 1);
  const run = worker.run();
  const stream = await fake.streams.next();
  await stream.recv();
  stream.abort(Code.InvalidArgument, "concurrency 5000 is over 1024");
  await assert.rejects(run, (e) => e instanceof RpcError && e.code === Code.InvalidArgument && /over 1024/.test(e.message));
  fake.close();
});

test("local validation: kinds, concurrency, no handlers", async () => {
  assert.throws(() => new Worker("x").handle("Bad Kind", () => 1), /invalid kind/);
  assert.throws(() => new Worker("x", { concurrency: 0 }), /concurrency/);
  await assert.rejects(new Worker("x").run(), /no handlers/);
  const w = new Worker("x");
  w.handle("k", () => 1);
  assert.throws(() => w.handle("k", () => 1), /already registered/);
});

test("SIGTERM drains a worker process: Drain, the running job finishes, exit 0", async () => {
  const fake = await startFake();
  const index = fileURLToPath(new URL("../dist/index.js", import.meta.url));
  const script = `
    import { Worker } from ${JSON.stringify(index)};
    const w = new Worker(${JSON.stringify(fake.url)}, { logger: { info() {}, warn() {} } });
    w.handle("k", async () => { console.log("started"); await new Promise((r) => setTimeout(r, 500)); return "ok"; });
    await w.run();
    console.log("exited");
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  const [stream] = await fake.welcome();
  stream.assign("j", "k");
  while (!out.includes("started")) await sleep(20);
  child.kill("SIGTERM");
  await stream.recvCase("drain");
  assert.equal((await stream.recvCase("succeeded")).jobId, "j");
  stream.ack("j");
  assert.equal(await stream.recv(), null);
  stream.end();
  const code = await new Promise((r) => child.on("exit", r));
  assert.equal(code, 0);
  assert.match(out, /exited/);
  fake.close();
});

test("malformed queue names and more than 64 queues are refused before connecting", () => {
  assert.throws(() => new Worker("http://127.0.0.1:1", { queues: ["Bad Queue"] }), TypeError);
  const many = Array.from({ length: 65 }, (_, i) => `q${i}`);
  assert.throws(() => new Worker("http://127.0.0.1:1", { queues: many }), RangeError);
  assert.deepEqual(new Worker("http://127.0.0.1:1").queues, []);
});
