// Client: submit jobs, read them, wait for them, cancel them (pfc.jobs.v1.JobService).
import { Code, ConnectError, createClient, type Client as ConnectClient, type Transport } from "@connectrpc/connect";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { encode } from "./codec.js";
import { fromConnect, WaitTimeoutError } from "./errors.js";
import { JobService } from "./gen/pfc/jobs/v1/jobs_pb.js";
import { jobFromPb, type Job } from "./job.js";
import { grpcTransport } from "./transport.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { SubmitJobRequestSchema } from "./gen/pfc/jobs/v1/jobs_pb.js";

/** Options of `Client.submit`. */
export interface SubmitOptions {
  /** Content type of a `Uint8Array` payload (default application/octet-stream). */
  contentType?: string;
  /** Submit a text job instead (the input of the built-in kinds: uppercase, ...). */
  text?: string;
  /** A repeated key returns the first job's id. */
  idempotencyKey?: string;
  /** Run after this many milliseconds. */
  delayMs?: number;
  /** Run at this time. */
  runAt?: Date;
  /** Deliveries allowed (server default 3). */
  maxAttempts?: number;
  /** Queue name (default "default"). */
  queue?: string;
}

/** Options of `Client.watch` and `Client.wait`. */
export interface WaitOptions {
  /** Give up after this long with a WaitTimeoutError. */
  timeoutMs?: number;
  /** Stop early. */
  signal?: AbortSignal;
}

const RESUMABLE = new Set([Code.Unavailable, Code.Internal, Code.Unknown]);

/**
 * A connection to pfc's jobs core.
 *
 * ```ts
 * const client = new Client("http://localhost:50051");
 * const id = await client.submit("resize", { w: 64 });
 * const job = await client.wait(id, { timeoutMs: 30_000 });   // job.status === "done", job.result
 * ```
 */
export class Client {
  readonly rpc: ConnectClient<typeof JobService>;
  /** Deadline of each unary call, in ms (0: none). */
  timeoutMs: number;

  /** `token`: an API key or Login token sent on every call (default: PFC_TOKEN). */
  constructor(
    url: string = "http://localhost:50051",
    options: { transport?: Transport; timeoutMs?: number; token?: string } = {},
  ) {
    this.rpc = createClient(JobService, options.transport ?? grpcTransport(url, options.token));
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Submits a job of `kind` with a JSON payload (or `Bytes` / `Uint8Array`) and returns its id. */
  async submit(kind: string, payload?: unknown, options: SubmitOptions = {}): Promise<string> {
    const req: MessageInitShape<typeof SubmitJobRequestSchema> = { kind };
    if (options.text !== undefined) {
      if (payload !== undefined) throw new TypeError("give a payload or a text, not both");
      req.text = options.text;
    } else {
      const { data, contentType } = encode(payload);
      req.payload = data;
      req.contentType = options.contentType ?? contentType;
    }
    if (options.idempotencyKey) req.idempotencyKey = options.idempotencyKey;
    if (options.runAt) req.runAt = timestampFromDate(options.runAt);
    else if (options.delayMs !== undefined) {
      req.delay = durationFromMs(Math.max(0, Math.round(options.delayMs)));
    }
    if (options.maxAttempts) req.maxAttempts = options.maxAttempts;
    if (options.queue) req.queue = options.queue;
    const res = await this.call(() => this.rpc.submitJob(req, this.callOptions()));
    return res.jobId;
  }

  /** The job now. Throws JobNotFoundError for an unknown or expired id. */
  async get(jobId: string): Promise<Job> {
    const res = await this.call(() => this.rpc.getJob({ jobId }, this.callOptions()));
    return jobFromPb(res.job!);
  }

  /** Cancels a queued or scheduled job and returns it (FailedPrecondition otherwise). */
  async cancel(jobId: string): Promise<Job> {
    const res = await this.call(() => this.rpc.cancelJob({ jobId }, this.callOptions()));
    return jobFromPb(res.job!);
  }

  /**
   * The job's current state, then its state after every transition (progress included), ending
   * after it finishes. A stream broken by the network is resumed.
   */
  async *watch(jobId: string, options: WaitOptions = {}): AsyncGenerator<Job, void, undefined> {
    const deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
    let last: Job | undefined;
    let failures = 0;
    for (;;) {
      const remaining = deadline === undefined ? undefined : Math.max(1, deadline - Date.now());
      try {
        for await (const res of this.rpc.watchJob({ jobId }, { timeoutMs: remaining, signal: options.signal })) {
          failures = 0;
          const job = jobFromPb(res.job!);
          if (!last || job.version !== last.version || job.progress !== last.progress) yield job;
          last = job;
          if (job.finished) return;
        }
      } catch (e) {
        const err = ConnectError.from(e);
        if (err.code === Code.DeadlineExceeded) throw new WaitTimeoutError(jobId, options.timeoutMs ?? 0, last);
        if (!RESUMABLE.has(err.code) || options.signal?.aborted) throw fromConnect(e);
        failures += 1;
        if (deadline === undefined && failures > 20) throw fromConnect(e);
      }
      const pause = Math.min(2000, 50 * 2 ** failures);
      if (deadline !== undefined && Date.now() + pause >= deadline) {
        throw new WaitTimeoutError(jobId, options.timeoutMs ?? 0, last);
      }
      await new Promise((r) => setTimeout(r, pause));
    }
  }

  /**
   * Resolves once the job is done, failed or cancelled. It does not throw for a failed job:
   * look at `job.status` and `job.error`. Throws WaitTimeoutError after `timeoutMs`.
   */
  async wait(jobId: string, options: WaitOptions = {}): Promise<Job> {
    let job: Job | undefined;
    for await (job of this.watch(jobId, options));
    return job!;
  }

  private callOptions() {
    return this.timeoutMs ? { timeoutMs: this.timeoutMs } : {};
  }

  private async call<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw fromConnect(e);
    }
  }
}
