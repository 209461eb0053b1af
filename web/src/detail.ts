// A job's detail: status, fields, progress, input/result/error (JSON pretty-printed), the
// timeline of its transitions, and a Cancel button while it is queued or scheduled. Follows
// the job live with WatchJob.
import type { Job } from "./gen/pfc/jobs/v1/jobs_pb.js";
import { JobStatus } from "./gen/pfc/jobs/v1/jobs_pb.js";
import { Code, ConnectError, errorMessage, isAbort, jobs } from "./client.js";
import { store, type Step } from "./store.js";
import { ago, badge, date, fmtMs, fmtTime, h, isTerminal, statusName } from "./util.js";
import { input, ioBlock, output } from "./payload.js";

export function renderDetail(root: HTMLElement, id: string): () => void {
  const ctl = new AbortController();
  let error = "";
  let notFound = false;
  let cancelling = false;
  let cancelError = "";

  const view = h("div", { class: "page detail-page" });
  root.replaceChildren(view);

  const field = (label: string, value: Node | string, testid?: string) =>
    h("div", { class: "field-view" }, h("dt", {}, label), h("dd", testid ? { "data-field": testid } : {}, value));

  const timeline = (job: Job): HTMLElement => {
    const steps: Step[] = [...(store.steps.get(id)?.values() ?? [])].sort((a, b) => a.version - b.version);
    const created = date(job.createdAt);
    const items: { at?: Date; status: string; label: string; note: string; cls: string }[] = [];
    items.push({ at: created, status: "created", label: "Submitted", note: job.kind, cls: "created" });
    if (steps.length <= 1) {
      // Transitions before this page loaded are not replayed; rebuild them from the timestamps.
      const runAt = date(job.runAt);
      if (runAt && created && runAt.getTime() - created.getTime() > 1000) items.push({ at: runAt, status: "scheduled", label: "Due", note: "", cls: "scheduled" });
      if (job.startedAt) items.push({ at: date(job.startedAt), status: "processing", label: "Processing", note: `attempt ${job.attempts}${job.workerId ? ` on ${job.workerId}` : ""}`, cls: "processing" });
      if (job.finishedAt) items.push({ at: date(job.finishedAt), status: statusName(job.status), label: cap(statusName(job.status)), note: job.error ?? "", cls: statusName(job.status) });
    } else {
      let prev: Step | undefined;
      for (const s of steps) {
        const before = prev;
        prev = s;
        if (s.version <= 1 && s.status === JobStatus.QUEUED) continue; // same as "Submitted"
        if (s.status === JobStatus.PROCESSING && before?.status === JobStatus.PROCESSING && before.attempts === s.attempts) {
          // a new version within the same delivery: the worker reported progress
          items.push({ at: s.at, status: "progress", label: "Progress", note: s.progress !== undefined ? `${s.progress}%` : "", cls: "processing" });
          continue;
        }
        const note = [s.status === JobStatus.PROCESSING ? `attempt ${s.attempts}` : "", s.workerId && s.status === JobStatus.PROCESSING ? `on ${s.workerId}` : "", s.status === JobStatus.SCHEDULED || s.status === JobStatus.FAILED ? s.error : ""].filter(Boolean).join(" · ");
        items.push({ at: s.at, status: statusName(s.status), label: cap(statusName(s.status)), note, cls: statusName(s.status) });
      }
    }
    return h("ol", { class: "timeline", id: "timeline" }, ...items.map((it, i) => {
      const prev = i > 0 ? items[i - 1].at : undefined;
      const delta = prev && it.at ? `+${fmtMs(it.at.getTime() - prev.getTime())}` : "";
      return h("li", { class: `step step-${it.cls}`, "data-status": it.status },
        h("span", { class: "dot", "aria-hidden": "true" }),
        h("div", { class: "step-body" },
          h("div", { class: "step-head" }, h("strong", {}, it.label), h("time", { datetime: it.at?.toISOString() ?? "" }, fmtTime(it.at)), delta ? h("span", { class: "muted" }, delta) : null),
          it.note ? h("div", { class: "muted step-note" }, it.note) : null));
    }));
  };

  const cancel = async () => {
    cancelling = true;
    cancelError = "";
    render();
    try {
      const res = await jobs.cancelJob({ jobId: id });
      if (res.job) store.upsert(res.job);
    } catch (e) {
      cancelError = ConnectError.from(e).code === Code.FailedPrecondition ? "Too late: a worker already took this job." : errorMessage(e);
    }
    cancelling = false;
    render();
  };

  const runAgain = async (job: Job) => {
    try {
      const res = await jobs.submitJob({ text: job.text, payload: job.payload, contentType: job.contentType, kind: job.kind, maxAttempts: job.maxAttempts });
      if (res.job) store.upsert(res.job);
      location.hash = `#/jobs/${res.jobId}`;
    } catch (e) {
      cancelError = errorMessage(e);
      render();
    }
  };

  const render = () => {
    const job = store.jobs.get(id);
    const back = h("a", { href: "#/jobs", class: "back" }, "← All jobs");
    if (!job) {
      view.replaceChildren(back, notFound
        ? h("div", { class: "card empty" }, h("p", { class: "empty-title" }, "Job not found"), h("p", { class: "muted" }, `No job with id ${id} — it may have expired.`))
        : error
          ? h("div", { class: "banner error", role: "alert" }, error)
          : h("div", { class: "card empty" }, h("p", { class: "muted" }, "Loading…")));
      return;
    }
    const st = statusName(job.status);
    const canCancel = job.status === JobStatus.QUEUED || job.status === JobStatus.SCHEDULED;
    const started = date(job.startedAt), finished = date(job.finishedAt), created = date(job.createdAt);
    // Any store update re-renders the page; a long block the user opened must stay open
    // (and one they closed, closed), so its state is carried over by the id of its contents.
    const opened = new Map<string, boolean>();
    for (const d of view.querySelectorAll<HTMLDetailsElement>("details.collapsible")) {
      const key = d.querySelector("[id]")?.id;
      if (key) opened.set(key, d.open);
    }
    view.replaceChildren(
      back,
      h("section", { class: "card detail-head" },
        h("div", { class: "detail-title" },
          h("h2", {}, "Job ", h("span", { class: "mono", id: "job-id" }, job.id)),
          h("span", { id: "job-status", "data-status": st }, badge(job.status)),
          h("div", { class: "spacer" }),
          canCancel ? h("button", { type: "button", class: "danger", id: "cancel", disabled: cancelling, onclick: () => void cancel() }, cancelling ? "Cancelling…" : "Cancel job") : null,
          isTerminal(job.status) ? h("button", { type: "button", id: "run-again", title: "Submit a new job with the same input and kind", onclick: () => void runAgain(job) }, "Run again") : null),
        cancelError ? h("p", { class: "form-status error", role: "alert" }, cancelError) : null,
        h("dl", { class: "fields" },
          field("Kind", job.kind),
          field("Attempts", `${job.attempts} of ${job.maxAttempts}`, "attempts"),
          job.progress !== undefined && job.status === JobStatus.PROCESSING ? field("Progress", progressBar(job.progress), "progress") : null,
          field("Created", created ? `${created.toLocaleString()} (${ago(created)})` : "—"),
          field("Queue time", started && created ? fmtMs(started.getTime() - created.getTime()) : "—"),
          field("Run time", finished && started ? fmtMs(finished.getTime() - started.getTime()) : job.status === JobStatus.PROCESSING ? "running…" : "—"),
          field("Worker", job.workerId || "—"),
          job.idempotencyKey ? field("Idempotency key", job.idempotencyKey) : null,
          job.runAt && job.status === JobStatus.SCHEDULED ? field("Runs at", date(job.runAt)!.toLocaleString()) : null,
        )),
      h("div", { class: "detail-grid" },
        h("section", { class: "card" },
          h("h3", {}, "Input"), ioBlock(input(job), "job-text"),
          h("h3", {}, "Result"),
          output(job).type !== "none"
            ? ioBlock(output(job), "job-result", "result")
            : h("p", { class: "muted", id: "job-result-pending" }, isTerminal(job.status) ? "No result." : "Not yet — this page updates by itself."),
          job.error ? h("div", {}, h("h3", {}, "Error"), h("pre", { class: "io err", id: "job-error" }, job.error)) : null),
        h("section", { class: "card" }, h("h3", {}, "Timeline"), timeline(job))),
    );
    for (const d of view.querySelectorAll<HTMLDetailsElement>("details.collapsible")) {
      const was = opened.get(d.querySelector("[id]")?.id ?? "");
      if (was !== undefined) d.open = was;
    }
  };

  const watch = async () => {
    try {
      for await (const res of jobs.watchJob({ jobId: id }, { signal: ctl.signal })) {
        if (res.job) store.upsert(res.job);
      }
    } catch (e) {
      if (isAbort(e)) return;
      const err = ConnectError.from(e);
      if (err.code === Code.NotFound || err.code === Code.InvalidArgument) notFound = true;
      else if (!store.jobs.get(id)) error = errorMessage(e);
      render();
    }
  };

  const unsub = store.subscribe(render);
  const tick = setInterval(render, 15_000);
  render();
  void watch();
  return () => {
    ctl.abort();
    unsub();
    clearInterval(tick);
  };
}

function progressBar(pct: number): HTMLElement {
  const p = Math.max(0, Math.min(100, pct));
  return h("span", { class: "progress" },
    h("span", { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": p }, h("span", { style: `width: ${p}%` })),
    ` ${p}%`);
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
