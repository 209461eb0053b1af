// BullMQ peer benchmark (docs/benchmarks.md): the load shapes `pfc bench` measures, run by
// BullMQ's own producer and worker on the same Redis, so both are compared in one run.
//
//   node bench.mjs --redis redis://127.0.0.1:16379 --shape throughput --jobs 50000
//   node bench.mjs --redis redis://127.0.0.1:16379 --shape watch --clients 256 --secs 20
//
// Shapes:
// - throughput: one producer keeps 32 adds in flight (BullMQ's usual bench), one worker with
//   concurrency 50 uppercases the text; jobs/s from the first add to the last completion.
// - watch: `--clients` clients, each in a loop: add a job, then wait for *that* job to finish
//   (`job.waitUntilFinished(queueEvents)`, what a caller waiting on its own job does); jobs/s
//   and submit→done latency percentiles. Start times are taken when the client sends (a
//   closed loop: no coordinated omission hides here, each client measures its own jobs).
import { Queue, Worker, QueueEvents } from "bullmq";

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
}

const url = new URL(arg("redis", "redis://127.0.0.1:6379"));
const connection = { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null };
const shape = arg("shape", "throughput");
const name = `bench-${shape}-${process.pid}`;

function pct(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function throughput() {
  const jobs = Number(arg("jobs", "50000"));
  const inflight = Number(arg("inflight", "32"));
  const queue = new Queue(name, { connection });
  let done = 0;
  let resolveAll;
  const all = new Promise((r) => (resolveAll = r));
  const worker = new Worker(name, async (job) => job.data.text.toUpperCase(), {
    connection,
    concurrency: Number(arg("concurrency", "50")),
    removeOnComplete: { age: 3600 },
  });
  worker.on("completed", () => {
    done += 1;
    if (done === jobs) resolveAll();
  });
  await worker.waitUntilReady();
  const start = process.hrtime.bigint();
  let next = 0;
  async function producer() {
    while (next < jobs) {
      const i = next++;
      await queue.add("uppercase", { text: `bonjour le monde ${i}` }, { removeOnComplete: { age: 3600 } });
    }
  }
  await Promise.all(Array.from({ length: inflight }, producer));
  await all;
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(JSON.stringify({ peer: "bullmq", shape, jobs, secs: +secs.toFixed(2), jobs_per_s: Math.round(jobs / secs) }));
  await worker.close();
  await queue.close();
}

async function watch() {
  const clients = Number(arg("clients", "256"));
  const secs = Number(arg("secs", "20"));
  const queue = new Queue(name, { connection });
  const events = new QueueEvents(name, { connection });
  await events.waitUntilReady();
  const worker = new Worker(name, async (job) => job.data.text.toUpperCase(), {
    connection,
    concurrency: Number(arg("concurrency", "50")),
  });
  await worker.waitUntilReady();
  const lat = [];
  let errors = 0;
  const end = Date.now() + secs * 1000;
  const start = process.hrtime.bigint();
  async function client(c) {
    let i = 0;
    while (Date.now() < end) {
      const t0 = process.hrtime.bigint();
      try {
        const job = await queue.add("uppercase", { text: `client ${c} job ${i++}` });
        await job.waitUntilFinished(events, 30000);
        lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
      } catch {
        errors += 1;
      }
    }
  }
  await Promise.all(Array.from({ length: clients }, (_, c) => client(c)));
  const took = Number(process.hrtime.bigint() - start) / 1e9;
  lat.sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      peer: "bullmq",
      shape,
      clients,
      jobs: lat.length,
      errors,
      secs: +took.toFixed(2),
      jobs_per_s: Math.round(lat.length / took),
      p50_ms: +pct(lat, 50).toFixed(2),
      p99_ms: +pct(lat, 99).toFixed(2),
      max_ms: +(lat[lat.length - 1] ?? 0).toFixed(2),
    }),
  );
  await worker.close();
  await events.close();
  await queue.close();
}

const run = shape === "watch" ? watch : throughput;
run().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
