// A pfc worker in Node: runs "resize" jobs (pretend image resizing) until SIGTERM / Ctrl-C.
//
//   pfc dev                                      # or: cargo run -p pfc -- dev
//   (cd sdks/typescript && npm ci && npm run build)
//   node sdks/typescript/examples/resize-worker.mjs
//   node sdks/typescript/examples/submit.mjs     # submits a job and prints its result
//
// Watch the jobs run at http://localhost:8000.
import { PermanentError, Worker } from "pfc-sdk";

const worker = new Worker(process.env.PFC_URL ?? "http://localhost:50051", { concurrency: 8 });

worker.handle("resize", async (job) => {
  const { w, h = w } = job.payload;
  if (!(w > 0 && h > 0)) throw new PermanentError(`bad size ${w}x${h}`); // failed at once
  for (let step = 1; step <= 4; step++) {
    await new Promise((r) => setTimeout(r, 250)); // the real work
    job.progress(step * 25);
  }
  return { w, h, bytes: w * h * 3 }; // any JSON value
});

await worker.run(); // resolves after SIGTERM / SIGINT has finished the running jobs
