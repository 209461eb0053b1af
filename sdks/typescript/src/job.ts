// Job: what the client sees of a job (GetJob, WatchJob, CancelJob).
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { decode } from "./codec.js";
import { JobStatus, type Job as PbJob } from "./gen/pfc/jobs/v1/jobs_pb.js";

/** Where a job is in its lifecycle. */
export type Status = "scheduled" | "queued" | "processing" | "done" | "failed" | "cancelled" | "unknown";

/** Statuses from which a job never moves. */
export const TERMINAL: ReadonlySet<Status> = new Set(["done", "failed", "cancelled"]);

const STATUS: Record<number, Status> = {
  [JobStatus.SCHEDULED]: "scheduled",
  [JobStatus.QUEUED]: "queued",
  [JobStatus.PROCESSING]: "processing",
  [JobStatus.DONE]: "done",
  [JobStatus.FAILED]: "failed",
  [JobStatus.CANCELLED]: "cancelled",
};

/**
 * A job as pfc stores it. `payload` and `result` are decoded: a JSON value, a string for text,
 * `Bytes` for other content types. `result` is set once the job is done; `error` is the last
 * delivery's error (also while a retry is scheduled).
 */
export interface Job {
  id: string;
  kind: string;
  status: Status;
  payload: unknown;
  result: unknown;
  error?: string;
  attempts: number;
  maxAttempts: number;
  progress?: number;
  workerId: string;
  queue: string;
  idempotencyKey: string;
  contentType: string;
  resultContentType: string;
  createdAt?: Date;
  updatedAt?: Date;
  runAt?: Date;
  startedAt?: Date;
  finishedAt?: Date;
  version: bigint;
  /** True once the job is done, failed or cancelled. */
  finished: boolean;
  /** The message as received. */
  raw: PbJob;
}

function date(ts: Timestamp | undefined): Date | undefined {
  return ts && (ts.seconds !== 0n || ts.nanos !== 0) ? timestampDate(ts) : undefined;
}

export function statusName(s: JobStatus): Status {
  return STATUS[s] ?? "unknown";
}

export function jobFromPb(j: PbJob): Job {
  const payload = j.contentType || j.payload.length ? decode(j.payload, j.contentType) : j.text;
  const result =
    j.resultContentType || j.resultPayload.length
      ? decode(j.resultPayload, j.resultContentType)
      : (j.result ?? null);
  const status = statusName(j.status);
  return {
    id: j.id,
    kind: j.kind,
    status,
    payload,
    result,
    error: j.error,
    attempts: j.attempts,
    maxAttempts: j.maxAttempts,
    progress: j.progress,
    workerId: j.workerId,
    queue: j.queue,
    idempotencyKey: j.idempotencyKey,
    contentType: j.contentType,
    resultContentType: j.resultContentType,
    createdAt: date(j.createdAt),
    updatedAt: date(j.updatedAt),
    runAt: date(j.runAt),
    startedAt: date(j.startedAt),
    finishedAt: date(j.finishedAt),
    version: j.version,
    finished: TERMINAL.has(status),
    raw: j,
  };
}
