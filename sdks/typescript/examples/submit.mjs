// Submits a "resize" job and follows it: run examples/resize-worker.mjs first.
import { Client } from "pfc-sdk";

const client = new Client(process.env.PFC_URL ?? "http://localhost:50051");
const id = await client.submit("resize", { w: Number(process.argv[2] ?? 64) });
console.log("submitted", id);
let job;
for await (job of client.watch(id, { timeoutMs: 60_000 })) {
  console.log(job.status, job.progress === undefined ? "" : `${job.progress}%`);
}
console.log("result:", job.result, "error:", job.error);
