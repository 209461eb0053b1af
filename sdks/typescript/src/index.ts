// pfc: submit jobs to pfc and run workers for them, over gRPC (Connect-ES, HTTP/2).
//
//   import { Client, Worker, PermanentError } from "pfc-sdk";
//   const client = new Client("http://localhost:50051");
//   const id = await client.submit("resize", { w: 64 });
//   const job = await client.wait(id, { timeoutMs: 30_000 });     // job.status, job.result
//
//   const worker = new Worker("http://localhost:50051", { concurrency: 8 });
//   worker.handle("resize", async (job) => ({ ok: true }));      // job.id, .kind, .payload, .attempt
//   await worker.run();                                           // SIGTERM drains
export { Client, type SubmitOptions, type WaitOptions } from "./client.js";
export { Bytes } from "./codec.js";
export { Code, JobNotFoundError, PermanentError, PfcError, RpcError, WaitTimeoutError } from "./errors.js";
export { TERMINAL, type Job, type Status } from "./job.js";
export { VERSION } from "./version.js";
export { Worker, type Handler, type Logger, type RunningJob, type WorkerOptions } from "./worker.js";
