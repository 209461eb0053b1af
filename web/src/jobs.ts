// The Jobs page: submit a text with a processor, and the recent jobs whose statuses change
// live (WatchJobs via the store). Keyboard: Ctrl/⌘+Enter submits, rows are links.
import type { Page } from "./pages.js";
import type { Job, Kind } from "./gen/pfc/jobs/v1/jobs_pb.js";
import { JobStatus } from "./gen/pfc/jobs/v1/jobs_pb.js";
import { errorMessage, jobs } from "./client.js";
import { store } from "./store.js";
import { ago, badge, date, h, shortId, statusName, truncate } from "./util.js";

const FILTERS: [string, JobStatus][] = [
  ["All", JobStatus.UNSPECIFIED],
  ["Queued", JobStatus.QUEUED],
  ["Scheduled", JobStatus.SCHEDULED],
  ["Processing", JobStatus.PROCESSING],
  ["Done", JobStatus.DONE],
  ["Failed", JobStatus.FAILED],
  ["Cancelled", JobStatus.CANCELLED],
];

const DELAYS: [string, number][] = [
  ["Now", 0],
  ["in 5 s", 5],
  ["in 30 s", 30],
  ["in 1 min", 60],
  ["in 5 min", 300],
];

let kindsCache: Kind[] | undefined;

export const jobsPage: Page = {
  id: "jobs",
  title: "Jobs",
  slot: "main",
  render(root, params) {
    if (params[0]) {
      // #/jobs/<id> is the detail view; imported lazily to keep this file about the list.
      let cleanup: void | (() => void);
      let left = false;
      void import("./detail.js").then((m) => {
        if (!left) cleanup = m.renderDetail(root, params[0]);
      });
      return () => {
        left = true;
        if (cleanup) cleanup();
      };
    }
    return renderList(root);
  },
};

function renderList(root: HTMLElement): () => void {
  let filter = JobStatus.UNSPECIFIED;
  let nextToken = "";
  /** Rows shown: one page per "Show more"; newer jobs push older ones down and out (a live tail). */
  let cap = 50;
  let loaded = false;
  let loadError = "";
  let total = 0;
  /** Jobs the last ListJobs returned, plus every job seen since (new ones come first). */
  const visible = new Set<string>();

  // ---- submit form
  const text = h("textarea", {
    id: "text", name: "text", rows: 4, required: true, maxlength: 65536,
    placeholder: "bonjour le monde", "aria-describedby": "text-hint",
  });
  const kind = h("select", { id: "kind", name: "kind", "aria-describedby": "kind-hint" });
  const kindHint = h("p", { id: "kind-hint", class: "hint" });
  const delay = h("select", { id: "delay", name: "delay" },
    ...DELAYS.map(([label, s]) => h("option", { value: s }, label)));
  const maxAttempts = h("input", { id: "max-attempts", name: "max_attempts", type: "number", min: 1, max: 25, placeholder: "3", inputmode: "numeric" });
  const idemKey = h("input", { id: "idem-key", name: "idempotency_key", type: "text", maxlength: 128, placeholder: "optional", autocomplete: "off" });
  const submitBtn = h("button", { id: "submit", type: "submit", class: "primary" }, "Submit job");
  const submitStatus = h("p", { id: "submit-status", class: "form-status", role: "status", "aria-live": "polite" });

  const form = h("form", { class: "card submit-card", novalidate: true },
    h("h2", {}, "New job"),
    h("label", { for: "text" }, "Text"),
    text,
    h("p", { id: "text-hint", class: "hint" }, "Up to 64 KiB of UTF-8. ", h("kbd", {}, "Ctrl"), "+", h("kbd", {}, "Enter"), " submits, ", h("kbd", {}, "/"), " comes back here."),
    h("div", { class: "row" },
      h("div", { class: "field" }, h("label", { for: "kind" }, "Processor"), kind),
      h("div", { class: "field" }, h("label", { for: "delay" }, "Run"), delay),
    ),
    kindHint,
    h("details", { class: "advanced" },
      h("summary", {}, "Advanced"),
      h("div", { class: "row" },
        h("div", { class: "field" }, h("label", { for: "max-attempts" }, "Max attempts"), maxAttempts),
        h("div", { class: "field" }, h("label", { for: "idem-key" }, "Idempotency key"), idemKey),
      ),
    ),
    h("div", { class: "actions" }, submitBtn),
    submitStatus,
  );

  const showKindHint = () => {
    const k = kindsCache?.find((k) => k.name === kind.value);
    kindHint.textContent = k?.description ?? "";
  };
  kind.addEventListener("change", showKindHint);

  const loadKinds = async () => {
    try {
      kindsCache ??= (await jobs.listKinds({})).kinds;
      kind.replaceChildren(...kindsCache.map((k) => h("option", { value: k.name }, k.name)));
      if (kindsCache.some((k) => k.name === "uppercase")) kind.value = "uppercase";
      showKindHint();
    } catch (e) {
      kind.replaceChildren(h("option", { value: "" }, "uppercase (default)"));
      kindHint.textContent = `Could not load processors: ${errorMessage(e)}`;
    }
  };

  const submit = async (ev?: Event) => {
    ev?.preventDefault();
    const value = text.value;
    if (!value.trim()) {
      submitStatus.className = "form-status error";
      submitStatus.textContent = "Enter some text first.";
      text.focus();
      return;
    }
    submitBtn.disabled = true;
    submitStatus.className = "form-status";
    submitStatus.textContent = "Submitting…";
    try {
      const secs = Number(delay.value);
      const res = await jobs.submitJob({
        text: value,
        kind: kind.value,
        delay: secs ? { seconds: BigInt(secs), nanos: 0 } : undefined,
        maxAttempts: Number(maxAttempts.value) || 0,
        idempotencyKey: idemKey.value.trim(),
      });
      if (res.job) store.upsert(res.job);
      submitStatus.className = "form-status ok";
      submitStatus.replaceChildren(
        res.created ? "Submitted " : "Already submitted (same idempotency key): ",
        h("a", { href: `#/jobs/${res.jobId}` }, shortId(res.jobId)),
      );
      text.value = "";
      text.focus();
    } catch (e) {
      submitStatus.className = "form-status error";
      submitStatus.textContent = errorMessage(e);
    } finally {
      submitBtn.disabled = false;
    }
  };
  form.addEventListener("submit", submit);
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) void submit(e);
  });

  // ---- list
  const chips = h("div", { class: "chips", role: "group", "aria-label": "Filter by status" },
    ...FILTERS.map(([label, s]) => {
      const b = h("button", { type: "button", class: "chip", "data-filter": statusName(s) || "all", "aria-pressed": s === filter ? "true" : "false" }, label);
      b.addEventListener("click", () => {
        filter = s;
        visible.clear();
        nextToken = "";
        cap = 50;
        for (const c of chips.querySelectorAll("button")) c.setAttribute("aria-pressed", String(c === b));
        void load();
      });
      return b;
    }));
  const count = h("span", { class: "muted", id: "job-count" });
  const tbody = h("tbody", { id: "jobs-body" });
  const table = h("table", { class: "jobs", id: "jobs-table" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Status"),
      h("th", { scope: "col" }, "Job"),
      h("th", { scope: "col", class: "opt" }, "Kind"),
      h("th", { scope: "col", class: "wide" }, "Text → result"),
      h("th", { scope: "col", class: "num opt" }, "Attempts"),
      h("th", { scope: "col", class: "opt" }, "Created"),
    )),
    tbody);
  const empty = h("div", { class: "empty", id: "jobs-empty", hidden: true });
  const errorBox = h("div", { class: "banner error", role: "alert", hidden: true });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Show more");
  more.addEventListener("click", () => {
    cap += 50;
    void load(true);
  });

  const listCard = h("section", { class: "card list-card", "aria-labelledby": "recent-title" },
    h("div", { class: "card-head" }, h("h2", { id: "recent-title" }, "Recent jobs"), count),
    chips, errorBox, h("div", { class: "table-wrap" }, table), empty, h("div", { class: "actions center" }, more));

  root.replaceChildren(h("div", { class: "page jobs-page" }, form, listCard));

  const rows = new Map<string, HTMLTableRowElement>();

  const rowFor = (job: Job): HTMLTableRowElement => {
    let tr = rows.get(job.id);
    if (!tr) {
      tr = h("tr", { "data-job-id": job.id, class: "job-row" });
      tr.addEventListener("click", (e) => {
        if ((e.target as HTMLElement).closest("a")) return;
        location.hash = `#/jobs/${job.id}`;
      });
      rows.set(job.id, tr);
    }
    const key = `${job.version}|${job.status}|${job.result?.length ?? -1}|${job.error ?? ""}`;
    if (tr.dataset.key !== key) {
      tr.dataset.key = key;
      tr.dataset.status = statusName(job.status);
      const out = job.result ?? (job.error ? `⚠ ${job.error}` : "");
      tr.replaceChildren(
        h("td", {}, badge(job.status)),
        h("td", {}, h("a", { href: `#/jobs/${job.id}`, class: "mono", title: job.id }, shortId(job.id))),
        h("td", { class: "opt" }, job.kind),
        h("td", { class: "wide" },
          h("span", { class: "text" }, truncate(job.text, 60)),
          out ? h("span", { class: "arrow", "aria-hidden": "true" }, " → ") : null,
          out ? h("span", { class: job.error && !job.result ? "result err" : "result" }, truncate(out, 60)) : null,
          !out && job.status === JobStatus.SCHEDULED && job.runAt ? h("span", { class: "muted due" }, ` · due ${ago(date(job.runAt))}`) : null),
        h("td", { class: "num opt" }, `${job.attempts}/${job.maxAttempts}`),
        h("td", { class: "muted opt", title: date(job.createdAt)?.toISOString() ?? "" }, ago(date(job.createdAt))),
      );
    }
    return tr;
  };

  const render = () => {
    // Forget ids the store dropped (it keeps the newest jobs only), so a tab left open on a
    // busy queue stays small.
    for (const id of visible) if (!store.jobs.has(id)) visible.delete(id);
    const list = [...visible]
      .map((id) => store.jobs.get(id))
      .filter((j): j is Job => !!j && (filter === JobStatus.UNSPECIFIED || j.status === filter))
      .sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    const hiddenRows = Math.max(0, list.length - cap);
    list.length = Math.min(list.length, cap);
    const wanted = list.map(rowFor);
    // Keyed update: only move rows whose position changed (keeps focus on a row's link).
    wanted.forEach((tr, i) => {
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] ?? null);
    });
    while (tbody.children.length > wanted.length) tbody.lastElementChild!.remove();
    const label = filter === JobStatus.UNSPECIFIED ? "jobs" : `${statusName(filter)} jobs`;
    count.textContent = loaded && !loadError ? `${Math.max(total, list.length)} ${label}` : "";
    table.hidden = list.length === 0;
    empty.hidden = !loaded || list.length > 0 || !!loadError;
    empty.replaceChildren(
      h("p", { class: "empty-title" }, filter === JobStatus.UNSPECIFIED ? "No jobs yet" : `No ${statusName(filter)} jobs`),
      h("p", { class: "muted" }, filter === JobStatus.UNSPECIFIED ? "Submit a text on the left; it will show up here and update live." : "Jobs appear here as soon as one reaches this status."),
    );
    more.hidden = !nextToken && hiddenRows === 0;
    errorBox.hidden = !loadError;
    if (loadError) errorBox.replaceChildren(h("strong", {}, "Could not load jobs. "), loadError, " ", h("button", { type: "button", class: "link", onclick: () => void load() }, "Retry"));
    // Refresh relative times of rows that did not change.
    for (const tr of wanted) {
      const j = store.jobs.get(tr.dataset.jobId!);
      const cell = tr.lastElementChild as HTMLElement | null;
      if (j && cell) cell.textContent = ago(date(j.createdAt));
    }
  };

  const load = async (next = false) => {
    try {
      const res = await jobs.listJobs({ status: filter, pageSize: 50, pageToken: next ? nextToken : "" });
      if (next || !nextToken) nextToken = res.nextPageToken;
      for (const j of res.jobs) {
        visible.add(j.id);
        store.upsert(j);
      }
      total = Number(res.totalSize);
      loadError = "";
    } catch (e) {
      loadError = errorMessage(e);
    }
    loaded = true;
    render();
  };

  // Jobs that appear while the page is open (from any client) join the list.
  const known = new Set(store.jobs.keys());
  const unsub = store.subscribe(() => {
    for (const id of store.jobs.keys()) {
      if (!known.has(id)) {
        known.add(id);
        if (loaded && !visible.has(id)) {
          visible.add(id);
          if (filter === JobStatus.UNSPECIFIED) total++;
        }
      }
    }
    render();
  });
  const unresync = store.onResync(() => {
    if (!kindsCache) void loadKinds();
    void load();
  });
  const tick = setInterval(render, 10_000);

  void loadKinds();
  void load();
  text.focus();
  return () => {
    unsub();
    unresync();
    clearInterval(tick);
  };
}
