// Worker: runs handlers for job kinds over one pfc.worker.v1.WorkerService/Work stream.
//
// The worker sends Hello (name, kinds, concurrency), gets Welcome, then runs every
// JobAssignment it is sent and answers each with JobSucceeded or JobFailed; the server never
// has more than `concurrency` of its jobs in flight and keeps their leases alive while the
// stream is open and the worker is heard from (a Heartbeat when it has nothing else to say).
// On SIGTERM (or stop()) it sends Drain, releases assignments that crossed the Drain, waits
// for the running jobs (up to drainTimeoutMs), then closes the stream. A broken stream is
// reopened with backoff, resuming the jobs still held (Hello.worker_id + held) so their
// results still count; the server revokes those it has given away meanwhile.
import { hostname } from "node:os";
import { Code, ConnectError, createClient, type Client as ConnectClient, type Transport } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { decode, encode } from "./codec.js";
import { PermanentError, RpcError } from "./errors.js";
import {
  ReportOutcome,
  WorkerService,
  type JobAssignment,
  type WorkRequestSchema,
  type WorkResponse,
} from "./gen/pfc/worker/v1/worker_pb.js";
import { grpcTransport } from "./transport.js";
import { SDK } from "./version.js";

type WorkRequestInit = MessageInitShape<typeof WorkRequestSchema>;

const KIND = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const MAX_CONCURRENCY = 1024;
// Errors of the first exchange that reconnecting cannot fix: the worker's setup is wrong.
const FATAL = new Set([
  Code.InvalidArgument,
  Code.Unimplemented,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.FailedPrecondition,
]);

/** A job handed to a handler. */
export interface RunningJob<P = any> {
  readonly id: string;
  readonly kind: string;
  /** Decoded: a JSON value, a string for text, `Bytes` otherwise. */
  readonly payload: P;
  readonly contentType: string;
  /** 1-based. */
  readonly attempt: number;
  readonly maxAttempts: number;
  /** The delivery number (the fence echoed in every report). */
  readonly delivery: bigint;
  /** W3C traceparent of the submit. */
  readonly traceparent: string;
  readonly createdAt?: Date;
  readonly workerId: string;
  /** Aborted when the worker no longer holds the job (revoked, given back): stop early. */
  readonly signal: AbortSignal;
  /** Reports progress, 0..100 (clamped). */
  progress(percent: number): void;
}

/** A handler: returns any JSON value (or `Bytes` / `Uint8Array`), sync or async. */
export type Handler<P = any> = (job: RunningJob<P>) => unknown;

/** Where the worker logs (default: console.error, info included). */
export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
}

/** Options of `new Worker`. */
export interface WorkerOptions {
  /** Jobs run at once, 1..1024 (default 8). */
  concurrency?: number;
  /** Name shown in pfc (default: the host name); the server adds a unique suffix. */
  name?: string;
  /** Queues to take jobs from (`[a-z0-9][a-z0-9._-]{0,63}`, at most 64); default: every queue. */
  queues?: string[];
  /** On stop, how long running jobs may take before they are given back (default 30 s). */
  drainTimeoutMs?: number;
  /** Drain on SIGTERM and SIGINT while run() runs (default true). */
  handleSignals?: boolean;
  /** A transport of your own (TLS, interceptors); default: gRPC over HTTP/2 to `url`. */
  transport?: Transport;
  /** A worker API key (scope `worker`) for a server with --auth-required; default PFC_TOKEN. */
  token?: string;
  logger?: Logger;
}

const defaultLogger: Logger = {
  info: (m) => console.error(`pfc: ${m}`),
  warn: (m) => console.error(`pfc: ${m}`),
};

/** Messages to the server, as an async iterable the Work call consumes. */
class Outbox implements AsyncIterable<WorkRequestInit> {
  private items: WorkRequestInit[] = [];
  private wakeup?: () => void;
  private closed = false;
  lastSent = Date.now();

  push(msg: WorkRequestInit): void {
    if (this.closed) return;
    this.lastSent = Date.now();
    this.items.push(msg);
    this.wakeup?.();
  }

  /** Ends the stream after what is queued. */
  close(): void {
    this.closed = true;
    this.wakeup?.();
  }

  // A generator: Connect-ES needs the iterator's throw() and return().
  async *[Symbol.asyncIterator](): AsyncGenerator<WorkRequestInit> {
    for (;;) {
      const item = this.items.shift();
      if (item) {
        yield item;
        continue;
      }
      if (this.closed) return;
      await new Promise<void>((r) => (this.wakeup = r));
      this.wakeup = undefined;
    }
  }
}

/** One assignment the worker holds, until the server acknowledges its report. */
interface Slot {
  jobId: string;
  delivery: bigint;
  attempt: number;
  /** running → reported (waiting for the ack). */
  state: "running" | "reported";
  report?: WorkRequestInit;
  abort: AbortController;
}

/** One Work stream. */
interface Session {
  out: Outbox;
  welcomed: boolean;
  draining: boolean;
  /** Releases not acknowledged yet, by job id (a STALE ack may carry delivery 0). */
  releases: Set<string>;
}

/**
 * Runs handlers for job kinds.
 *
 * ```ts
 * const worker = new Worker("http://localhost:50051", { concurrency: 8 });
 * worker.handle("resize", async (job) => ({ w: job.payload.w }));
 * await worker.run();   // resolves after SIGTERM / SIGINT / stop() has drained the worker
 * ```
 * A handler's return value is the job's result; throwing fails the delivery (retried with
 * backoff while attempts remain); throwing `PermanentError` fails the job at once.
 */
export class Worker {
  readonly rpc: ConnectClient<typeof WorkerService>;
  readonly concurrency: number;
  readonly name: string;
  /** Queues it takes jobs from; empty: every queue. */
  readonly queues: string[];
  /** The id pfc gave this worker, once connected. */
  workerId?: string;
  private readonly handlers = new Map<string, Handler>();
  private readonly held = new Map<string, Slot>();
  private readonly drainTimeoutMs: number;
  private readonly handleSignals: boolean;
  private readonly log: Logger;
  private session?: Session;
  private stopping = false;
  private force = false;
  private wake?: () => void;
  private changed?: () => void;
  private streamAbort?: AbortController;
  /** Resuming: the last stream's lease and when it broke. */
  private leaseMs = 0;
  private lostAt?: number;

  constructor(
    readonly url: string = "http://localhost:50051",
    options: WorkerOptions = {},
  ) {
    const concurrency = options.concurrency ?? 8;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > MAX_CONCURRENCY) {
      throw new RangeError(`concurrency must be 1..${MAX_CONCURRENCY}, not ${concurrency}`);
    }
    this.concurrency = concurrency;
    const queues = [...(options.queues ?? [])];
    if (queues.length > 64) throw new RangeError(`${queues.length} queues; a worker names at most 64`);
    for (const q of queues) {
      if (!KIND.test(q)) throw new TypeError(`invalid queue ${JSON.stringify(q)}: must match [a-z0-9][a-z0-9._-]{0,63}`);
    }
    this.queues = queues;
    // The host name, cut to what Hello.name allows (1-64 of [A-Za-z0-9._-]).
    this.name = options.name ?? (hostname().replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 64) || "node-worker");
    this.drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
    this.handleSignals = options.handleSignals ?? true;
    this.log = options.logger ?? defaultLogger;
    this.rpc = createClient(WorkerService, options.transport ?? grpcTransport(url, options.token));
  }

  /** Registers `handler` for jobs of `kind` (`[a-z0-9][a-z0-9._-]{0,63}`). */
  handle<P = any>(kind: string, handler: Handler<P>): this {
    if (!KIND.test(kind)) throw new TypeError(`invalid kind ${JSON.stringify(kind)}: must match [a-z0-9][a-z0-9._-]{0,63}`);
    if (this.handlers.has(kind)) throw new TypeError(`a handler for ${JSON.stringify(kind)} is already registered`);
    this.handlers.set(kind, handler as Handler);
    return this;
  }

  /** Asks the worker to drain and run() to resolve; a second call gives back running jobs at once. */
  stop(): void {
    if (this.stopping) this.force = true;
    this.stopping = true;
    this.wake?.();
    this.changed?.();
    const s = this.session;
    if (s?.welcomed && !s.draining) this.drain(s);
  }

  /**
   * Connects and runs jobs until SIGTERM / SIGINT / stop(), then drains: finishes the running
   * jobs, gives back the others, and resolves. Rejects with RpcError if pfc refuses the worker.
   */
  async run(): Promise<void> {
    if (this.handlers.size === 0) throw new TypeError("no handlers: register one with worker.handle(kind, fn)");
    const onSignal = (sig: NodeJS.Signals) => {
      this.log.info(this.stopping ? `${sig} again: stopping now, giving back running jobs` : `${sig}: draining (finishing running jobs, then stopping)`);
      this.stop();
    };
    if (this.handleSignals) {
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
    }
    try {
      let failures = 0;
      while (!this.stopping) {
        let welcomed = false;
        try {
          welcomed = await this.runSession();
          if (this.stopping) break;
          this.log.warn("pfc closed the worker stream; reconnecting");
        } catch (e) {
          if (this.stopping) break;
          const err = ConnectError.from(e);
          welcomed = (e as { pfcWelcomed?: boolean }).pfcWelcomed ?? false;
          if (!welcomed && FATAL.has(err.code)) throw new RpcError(err.code, err.rawMessage, { cause: e });
          this.log.warn(`worker stream failed (${Code[err.code]}: ${err.rawMessage}); reconnecting`);
        }
        failures = welcomed ? 0 : failures + 1;
        const pause = Math.min(5000, 100 * 2 ** failures) * (0.5 + Math.random() / 2);
        await new Promise<void>((r) => {
          const t = setTimeout(r, pause);
          this.wake = () => {
            clearTimeout(t);
            r();
          };
        });
        this.wake = undefined;
      }
    } finally {
      if (this.handleSignals) {
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
      }
      for (const slot of this.held.values()) slot.abort.abort();
      this.held.clear();
    }
  }

  /** One Work stream, until it ends. Resolves to whether it was welcomed. */
  private async runSession(): Promise<boolean> {
    const s: Session = { out: new Outbox(), welcomed: false, draining: false, releases: new Set() };
    if (this.held.size && this.lostAt !== undefined && Date.now() - this.lostAt > this.leaseMs) {
      // Too late to resume: pfc has requeued these jobs (or will); start afresh.
      this.log.warn(`reconnected after the lease: dropping ${this.held.size} job(s) held`);
      for (const slot of this.held.values()) slot.abort.abort();
      this.held.clear();
    }
    const resume = [...this.held.values()].map(({ jobId, delivery, attempt }) => ({ jobId, delivery, attempt }));
    s.out.push({
      message: {
        case: "hello",
        value: {
          name: this.name,
          kinds: [...this.handlers.keys()].sort(),
          concurrency: this.concurrency,
          queues: this.queues,
          sdk: SDK,
          workerId: resume.length ? (this.workerId ?? "") : "",
          held: resume,
        },
      },
    });
    this.session = s;
    const abort = new AbortController();
    this.streamAbort = abort;
    let heartbeat: NodeJS.Timeout | undefined;
    try {
      for await (const res of this.rpc.work(s.out, { signal: abort.signal })) {
        if (!s.welcomed) {
          if (res.message.case !== "welcome") {
            throw new RpcError(Code.Internal, `expected Welcome, got ${res.message.case}`);
          }
          s.welcomed = true;
          const w = res.message.value;
          this.workerId = w.workerId;
          this.leaseMs = w.leaseMs;
          this.log.info(
            `connected to ${this.url} as ${w.workerId} (kinds ${[...this.handlers.keys()].sort().join(", ")}, concurrency ${this.concurrency})`,
          );
          if (w.heartbeatMs > 0) {
            const every = Math.max(50, Math.floor(w.heartbeatMs / 2));
            heartbeat = setInterval(() => {
              if (Date.now() - s.out.lastSent >= every) s.out.push({ message: { case: "heartbeat", value: {} } });
            }, every);
            heartbeat.unref();
          }
          // Reports of resumed jobs that finished while disconnected.
          for (const slot of this.held.values()) if (slot.report) s.out.push(slot.report);
          if (this.stopping) this.drain(s);
          continue;
        }
        this.onMessage(s, res);
      }
      return s.welcomed;
    } catch (e) {
      if (e && typeof e === "object") (e as { pfcWelcomed?: boolean }).pfcWelcomed = s.welcomed;
      throw e;
    } finally {
      clearInterval(heartbeat);
      if (s.welcomed) this.lostAt = Date.now();
      s.out.close();
      abort.abort();
      if (this.session === s) this.session = undefined;
    }
  }

  private onMessage(s: Session, res: WorkResponse): void {
    const m = res.message;
    switch (m.case) {
      case "assignment":
        this.assign(s, m.value);
        break;
      case "ack": {
        const { jobId, delivery, outcome, message } = m.value;
        if (outcome === ReportOutcome.STALE) this.log.warn(`report on job ${jobId} was stale (its lease was lost)`);
        if (outcome === ReportOutcome.REJECTED) this.log.warn(`result of job ${jobId} was rejected: ${message}`);
        s.releases.delete(jobId);
        const slot = this.held.get(jobId);
        if (slot && slot.delivery === delivery && slot.state === "reported") this.held.delete(jobId);
        this.changed?.();
        break;
      }
      case "revoked": {
        const slot = this.held.get(m.value.jobId);
        if (slot && slot.delivery === m.value.delivery) {
          this.log.warn(`job ${slot.jobId} was revoked`);
          this.held.delete(slot.jobId);
          slot.abort.abort();
          this.changed?.();
        }
        break;
      }
      default:
        break;
    }
  }

  private assign(s: Session, a: JobAssignment): void {
    const previous = this.held.get(a.jobId);
    if (previous) previous.abort.abort();
    if (s.draining) {
      // Sent before the server saw our Drain: give it back unstarted.
      this.release(s, [{ jobId: a.jobId, delivery: a.delivery }]);
      return;
    }
    const slot: Slot = {
      jobId: a.jobId,
      delivery: a.delivery,
      attempt: a.attempt,
      state: "running",
      abort: new AbortController(),
    };
    this.held.set(a.jobId, slot);
    void this.execute(slot, a);
  }

  private async execute(slot: Slot, a: JobAssignment): Promise<void> {
    const handler = this.handlers.get(a.kind);
    let report: WorkRequestInit;
    const failed = (error: string, permanent: boolean): WorkRequestInit => ({
      message: { case: "failed", value: { jobId: a.jobId, delivery: a.delivery, error, permanent } },
    });
    if (!handler) {
      report = failed(`no handler for kind ${JSON.stringify(a.kind)}`, false);
    } else {
      try {
        const job = this.runningJob(slot, a);
        const result = await handler(job);
        try {
          const { data, contentType } = encode(result);
          report = { message: { case: "succeeded", value: { jobId: a.jobId, delivery: a.delivery, result: data, contentType } } };
        } catch (e) {
          report = failed(`result is not JSON: ${messageOf(e)}`, true);
        }
      } catch (e) {
        const permanent = e instanceof PermanentError;
        if (permanent) this.log.info(`job ${a.jobId} failed permanently: ${messageOf(e)}`);
        else if (!slot.abort.signal.aborted) this.log.warn(`job ${a.jobId} failed (attempt ${a.attempt}): ${messageOf(e)}`);
        report = failed(messageOf(e), permanent);
      }
    }
    if (this.held.get(slot.jobId) !== slot || slot.abort.signal.aborted) return; // revoked or given back
    slot.state = "reported";
    slot.report = report;
    const s = this.session;
    if (s?.welcomed) s.out.push(report); // otherwise sent after the next Welcome (resume)
    this.changed?.();
  }

  private runningJob(slot: Slot, a: JobAssignment): RunningJob {
    const worker = this;
    return {
      id: a.jobId,
      kind: a.kind,
      payload: decode(a.payload, a.contentType),
      contentType: a.contentType,
      attempt: a.attempt,
      maxAttempts: a.maxAttempts,
      delivery: a.delivery,
      traceparent: a.traceparent,
      createdAt: a.createdAt ? timestampDate(a.createdAt) : undefined,
      workerId: this.workerId ?? "",
      signal: slot.abort.signal,
      progress(percent: number) {
        const pct = Math.trunc(Math.max(0, Math.min(100, Number(percent) || 0)));
        const s = worker.session;
        if (s?.welcomed && worker.held.get(a.jobId) === slot) {
          s.out.push({ message: { case: "progress", value: { jobId: a.jobId, delivery: a.delivery, percent: pct } } });
        }
      },
    };
  }

  private release(s: Session, jobs: { jobId: string; delivery: bigint }[]): void {
    if (jobs.length === 0) return;
    for (const j of jobs) {
      const slot = this.held.get(j.jobId);
      if (slot && slot.delivery === j.delivery) {
        this.held.delete(j.jobId);
        slot.abort.abort();
      }
      s.releases.add(j.jobId);
    }
    s.out.push({ message: { case: "release", value: { jobIds: jobs.map((j) => j.jobId) } } });
  }

  /** Drain: no new jobs, finish (or after the timeout give back) running ones, close. */
  private drain(s: Session): void {
    s.draining = true;
    s.out.push({ message: { case: "drain", value: {} } });
    const running = [...this.held.values()].filter((slot) => slot.state === "running").length;
    this.log.info(`draining: ${running} running job(s) to finish`);
    void (async () => {
      const until = async (done: () => boolean, ms: number) => {
        const end = Date.now() + ms;
        while (!done() && Date.now() < end && this.session === s) {
          await new Promise<void>((r) => {
            const t = setTimeout(r, Math.min(500, Math.max(0, end - Date.now())));
            this.changed = () => {
              clearTimeout(t);
              r();
            };
          });
        }
        this.changed = undefined;
      };
      await until(() => this.force || ![...this.held.values()].some((x) => x.state === "running"), this.drainTimeoutMs);
      const still = [...this.held.values()].filter((x) => x.state === "running");
      if (still.length && this.session === s) {
        this.log.warn(`giving back ${still.length} job(s) still running`);
        this.release(s, still);
      }
      // Wait (briefly) for every report to be acknowledged, then close our side.
      await until(() => this.held.size === 0 && s.releases.size === 0, 5000);
      s.out.close();
      // The server ends its side once it has seen ours; don't hang on one that doesn't.
      setTimeout(() => this.streamAbort?.abort(), 5000).unref();
    })();
  }
}

function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}
