// The live job store shared by every jobs page: jobs seen so far, their transitions, and one
// WatchJobs stream for the whole app (statuses change live; nothing is polled). The stream
// reconnects with backoff; after a reconnect, or when the server sends a resync (it may have
// dropped transitions), pages reload their list to catch up.
import type { Job, JobEvent } from "./gen/pfc/jobs/v1/jobs_pb.js";
import { JobStatus } from "./gen/pfc/jobs/v1/jobs_pb.js";
import { errorMessage, isAbort, jobs } from "./client.js";
import { date, isTerminal } from "./util.js";

export type Live = "connecting" | "live" | "offline";

/** One step of a job's timeline. */
export interface Step {
  version: number;
  status: JobStatus;
  at?: Date;
  attempts: number;
  workerId: string;
  error: string;
  /** Progress the worker had reported (0–100), if any. */
  progress?: number;
}

type Listener = () => void;

/** At most this many ids are fetched one by one per batch; more become one ListJobs. */
const BATCH = 8;
/** Jobs kept in memory. */
const MAX_JOBS = 2000;

class Store {
  jobs = new Map<string, Job>();
  steps = new Map<string, Map<number, Step>>();
  live: Live = "connecting";
  liveError = "";
  private listeners = new Set<Listener>();
  private resyncs = new Set<Listener>();
  private scheduled = false;
  private fetching = new Set<string>();

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Called after the live stream (re)connects or the server asks for a resync, so a page
   *  can reload what it shows. */
  onResync(fn: Listener): () => void {
    this.resyncs.add(fn);
    return () => this.resyncs.delete(fn);
  }

  /** Notifies listeners once per animation frame, however many updates arrived. */
  emit(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      for (const fn of this.listeners) fn();
    });
  }

  /** Stores a job unless a newer version is already known. */
  upsert(job: Job): void {
    const cur = this.jobs.get(job.id);
    if (cur && cur.version > job.version) return;
    this.jobs.set(job.id, job);
    this.addStep(job.id, {
      version: Number(job.version),
      status: job.status,
      at: date(job.updatedAt),
      attempts: job.attempts,
      workerId: job.workerId,
      error: job.error ?? "",
      progress: job.progress,
    });
    this.emit();
  }

  private addStep(id: string, step: Step): void {
    let m = this.steps.get(id);
    if (!m) this.steps.set(id, (m = new Map()));
    if (!m.has(step.version)) m.set(step.version, step);
  }

  private onEvent(ev: JobEvent): void {
    this.addStep(ev.jobId, {
      version: Number(ev.version),
      status: ev.status,
      at: date(ev.at),
      attempts: ev.attempts,
      workerId: ev.workerId,
      error: ev.error,
      progress: ev.progress,
    });
    const cur = this.jobs.get(ev.jobId);
    if (cur && ev.version > cur.version) {
      // Apply what the event carries now; fetch the full job (result, error) when it ends.
      this.jobs.set(ev.jobId, { ...cur, status: ev.status, attempts: ev.attempts, version: ev.version, workerId: ev.workerId || cur.workerId, updatedAt: ev.at, progress: ev.progress ?? (ev.status === JobStatus.PROCESSING ? cur.progress : undefined) });
      this.emit();
    }
    if (!cur || isTerminal(ev.status)) this.queueFetch(ev.jobId);
  }

  /**
   * Jobs to fetch (new ones, finished ones), batched every 250 ms so a busy queue never turns
   * into a flood of calls: a few ids are fetched one by one, a burst becomes one ListJobs of
   * the newest jobs (the ones the list shows; older rows keep the status from the events).
   */
  private pending = new Set<string>();
  private flushTimer: number | undefined;

  private queueFetch(id: string): void {
    this.pending.add(id);
    this.flushTimer ??= window.setTimeout(() => void this.flush(), 250);
  }

  private async flush(): Promise<void> {
    const ids = [...this.pending];
    this.pending.clear();
    try {
      if (ids.length <= BATCH) {
        await Promise.all(ids.map((id) => this.refresh(id)));
      } else {
        const res = await jobs.listJobs({ pageSize: 100 });
        for (const j of res.jobs) this.upsert(j);
      }
    } catch {
      // The live indicator reports connectivity; the next event or reconnect catches up.
    }
    this.prune();
    this.flushTimer = undefined;
    if (this.pending.size) this.queueFetch([...this.pending][0]);
  }

  /** Keeps memory bounded in a tab left open on a busy queue: the newest MAX_JOBS jobs. */
  private prune(): void {
    if (this.jobs.size <= MAX_JOBS) return;
    const ids = [...this.jobs.keys()].sort();
    for (const id of ids.slice(0, ids.length - MAX_JOBS)) {
      this.jobs.delete(id);
      this.steps.delete(id);
    }
    this.emit();
  }

  /** Fetches a job's latest state (one request at a time per job). */
  async refresh(id: string): Promise<Job | undefined> {
    if (this.fetching.has(id)) return this.jobs.get(id);
    this.fetching.add(id);
    try {
      const res = await jobs.getJob({ jobId: id });
      if (res.job) this.upsert(res.job);
      return res.job;
    } catch {
      return undefined;
    } finally {
      this.fetching.delete(id);
    }
  }

  /** Follows WatchJobs forever, reconnecting with backoff (0.5 s doubling to 10 s). */
  async start(): Promise<void> {
    let backoff = 500;
    for (;;) {
      const ctl = new AbortController();
      try {
        this.setLive("connecting");
        const stream = jobs.watchJobs({}, { signal: ctl.signal });
        let first = true;
        // The stream sends nothing until a job changes, so mark it live once headers arrive:
        // a tiny probe call confirms the server answers before the first event.
        void jobs.listKinds({}).then(() => {
          if (first) {
            first = false;
            this.setLive("live");
            backoff = 500;
            for (const fn of this.resyncs) fn();
          }
        }, () => {});
        for await (const res of stream) {
          if (first) {
            first = false;
            this.setLive("live");
            for (const fn of this.resyncs) fn();
          }
          backoff = 500;
          if (res.event) this.onEvent(res.event);
          // the server says transitions may have been missed: pages reload what they show
          else if (res.resync) for (const fn of this.resyncs) fn();
        }
        this.setLive("offline", "the live stream ended");
      } catch (e) {
        if (isAbort(e)) return;
        this.setLive("offline", errorMessage(e));
      }
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 10_000);
    }
  }

  private setLive(live: Live, err = ""): void {
    this.live = live;
    this.liveError = err;
    this.emit();
  }
}

export const store = new Store();
