// The Jobs page: submit a job — a text for a text processor, or a JSON payload for any kind
// (the known kinds from ListKinds are offered; any well-formed name can be typed) — and the
// recent jobs whose statuses change live (WatchJobs via the store). Keyboard: Ctrl/⌘+Enter
// submits, rows are links.
import type { Page } from "./pages.js";
import type { Job, Kind } from "./gen/pfc/jobs/v1/jobs_pb.js";
import { JobStatus } from "./gen/pfc/jobs/v1/jobs_pb.js";
import { errorMessage, jobs } from "./client.js";
import { store } from "./store.js";
import { ago, badge, date, h, shortId, statusName, truncate } from "./util.js";
import { KIND_PATTERN, input, oneLine, output } from "./payload.js";

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
  const payload = h("textarea", {
    id: "payload", name: "payload", rows: 6, spellcheck: "false", autocomplete: "off",
    placeholder: '{"url": "https://example.com/a.png", "w": 64}', "aria-describedby": "payload-hint",
  });
  const payloadHint = h("p", { id: "payload-hint", class: "hint" });
  // Any kind: the known ones are suggested, a new name can be typed.
  const kind = h("input", {
    id: "kind", name: "kind", type: "text", list: "kinds", value: "uppercase", autocomplete: "off",
    spellcheck: "false", maxlength: 64, "aria-describedby": "kind-hint",
  });
  const kindList = h("datalist", { id: "kinds" });
  const kindHint = h("p", { id: "kind-hint", class: "hint" });
  /** "text" or "json": which input the job carries. */
  let mode: "text" | "json" = "text";
  const modeBtn = (m: "text" | "json", label: string) =>
    h("button", { type: "button", class: "seg", id: `mode-${m}`, "aria-pressed": "false", onclick: () => setMode(m, true) }, label);
  const modes = h("div", { class: "segmented", role: "group", "aria-label": "Input" }, modeBtn("text", "Text"), modeBtn("json", "JSON payload"));
  const textField = h("div", { class: "input-field", id: "text-field" },
    h("label", { for: "text" }, "Text"),
    text,
    h("p", { id: "text-hint", class: "hint" }, "Up to 64 KiB of UTF-8. ", h("kbd", {}, "Ctrl"), "+", h("kbd", {}, "Enter"), " submits, ", h("kbd", {}, "/"), " comes back here."));
  const payloadField = h("div", { class: "input-field", id: "payload-field", hidden: true },
    h("label", { for: "payload" }, "Payload (JSON)"),
    payload,
    payloadHint);
  /** True once the person picked Text or JSON themselves: the kind no longer switches it. */
  let modeChosen = false;
  const setMode = (m: "text" | "json", byHand = false) => {
    mode = m;
    if (byHand) modeChosen = true;
    for (const b of modes.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.id === `mode-${m}`));
    textField.hidden = m !== "text";
    payloadField.hidden = m !== "json";
    if (byHand) (m === "text" ? text : payload).focus();
  };
  setMode("text");

  /** The payload's JSON problem, or "" when it parses (or is empty). */
  const payloadProblem = (): string => {
    if (!payload.value.trim()) return "";
    try {
      JSON.parse(payload.value);
      return "";
    } catch (e) {
      return `Not valid JSON: ${(e as Error).message}`;
    }
  };
  const checkPayload = () => {
    const problem = payloadProblem();
    payload.setAttribute("aria-invalid", String(!!problem));
    payloadHint.className = problem ? "hint error" : "hint";
    payloadHint.textContent = problem || "Any JSON value: an object, array, string, number, true, false or null (up to 1 MiB).";
  };
  payload.addEventListener("input", checkPayload);
  checkPayload();
  const delay = h("select", { id: "delay", name: "delay" },
    ...DELAYS.map(([label, s]) => h("option", { value: s }, label)));
  const maxAttempts = h("input", { id: "max-attempts", name: "max_attempts", type: "number", min: 1, max: 25, placeholder: "3", inputmode: "numeric" });
  const idemKey = h("input", { id: "idem-key", name: "idempotency_key", type: "text", maxlength: 128, placeholder: "optional", autocomplete: "off" });
  const submitBtn = h("button", { id: "submit", type: "submit", class: "primary" }, "Submit job");
  const submitStatus = h("p", { id: "submit-status", class: "form-status", role: "status", "aria-live": "polite" });

  const form = h("form", { class: "card submit-card", novalidate: true },
    h("h2", {}, "New job"),
    h("div", { class: "row kind-row" },
      h("div", { class: "field" }, h("label", { for: "kind" }, "Kind"), kind, kindList),
      h("div", { class: "field" }, h("label", { for: "delay" }, "Run"), delay),
    ),
    kindHint,
    modes,
    textField,
    payloadField,
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

  /** Says what the typed kind is (built in, run by N workers, or new) and picks the input. */
  const showKindHint = () => {
    const name = kind.value.trim();
    const k = kindsCache?.find((k) => k.name === name);
    kind.setAttribute("aria-invalid", String(!!name && !KIND_PATTERN.test(name)));
    kindHint.className = "hint";
    if (!name) {
      kindHint.textContent = "Empty means uppercase.";
    } else if (!KIND_PATTERN.test(name)) {
      kindHint.className = "hint error";
      kindHint.textContent = "A kind is 1 to 64 of a–z, 0–9, '.', '_' or '-', starting with a letter or digit.";
    } else if (k?.builtin) {
      kindHint.textContent = `Built in: ${k.description}`;
    } else if (k) {
      kindHint.textContent = `Run by ${k.workers} live worker${k.workers === 1 ? "" : "s"} (concurrency ${k.concurrency}).`;
    } else {
      kindHint.textContent = "No live worker handles this kind yet: the job waits queued until one does.";
    }
    // Built-in processors take text; other kinds usually take JSON — unless the person chose.
    if (!modeChosen && (KIND_PATTERN.test(name) || !name)) setMode(!name || k?.builtin ? "text" : "json");
  };
  kind.addEventListener("input", showKindHint);
  kind.addEventListener("change", showKindHint);

  const loadKinds = async (fresh = false) => {
    try {
      if (fresh || !kindsCache) kindsCache = (await jobs.listKinds({})).kinds;
      kindList.replaceChildren(...kindsCache.map((k) =>
        h("option", { value: k.name }, k.builtin ? k.description : `${k.workers} worker${k.workers === 1 ? "" : "s"}`)));
      showKindHint();
    } catch (e) {
      kindHint.textContent = `Could not load the kinds: ${errorMessage(e)}`;
    }
  };
  // Live workers come and go: refresh their kinds whenever someone reaches for the field.
  kind.addEventListener("focus", () => void loadKinds(true));
  kind.addEventListener("pointerdown", () => {
    if (document.activeElement === kind) void loadKinds(true);
  });

  const submit = async (ev?: Event) => {
    ev?.preventDefault();
    const fail = (msg: string, el: HTMLElement) => {
      submitStatus.className = "form-status error";
      submitStatus.textContent = msg;
      el.focus();
    };
    const kindName = kind.value.trim();
    if (kindName && !KIND_PATTERN.test(kindName)) return fail("That kind name is not valid (see the hint).", kind);
    const value = text.value;
    const json = payload.value.trim();
    if (mode === "text" && !value.trim()) return fail("Enter some text first.", text);
    if (mode === "json" && !json) return fail("Enter a JSON payload first.", payload);
    if (mode === "json" && payloadProblem()) return fail(payloadProblem(), payload);
    submitBtn.disabled = true;
    submitStatus.className = "form-status";
    submitStatus.textContent = "Submitting…";
    try {
      const secs = Number(delay.value);
      const res = await jobs.submitJob({
        // JSON is sent as typed (the core checks it again and keeps it byte for byte)
        ...(mode === "json" ? { payload: new TextEncoder().encode(json), contentType: "application/json" } : { text: value }),
        kind: kindName,
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
      if (mode === "text") {
        text.value = "";
        text.focus();
      } else {
        payload.focus();
      }
    } catch (e) {
      submitStatus.className = "form-status error";
      submitStatus.textContent = errorMessage(e);
    } finally {
      submitBtn.disabled = false;
    }
  };
  form.addEventListener("submit", submit);
  for (const area of [text, payload]) {
    area.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) void submit(e);
    });
  }

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
      h("th", { scope: "col", class: "wide" }, "Input → result"),
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
    const key = `${job.version}|${job.status}|${job.result?.length ?? -1}|${job.resultPayload.length}|${job.progress ?? ""}|${job.error ?? ""}`;
    if (tr.dataset.key !== key) {
      tr.dataset.key = key;
      tr.dataset.status = statusName(job.status);
      const result = oneLine(output(job));
      const done = output(job).type !== "none";
      const out = done ? result : job.error ? `⚠ ${job.error}` : "";
      const running = job.status === JobStatus.PROCESSING && job.progress !== undefined;
      tr.replaceChildren(
        h("td", {}, badge(job.status), running ? h("span", { class: "progress-pct", "data-progress": job.progress }, ` ${job.progress}%`) : null),
        h("td", {}, h("a", { href: `#/jobs/${job.id}`, class: "mono", title: job.id }, shortId(job.id))),
        h("td", { class: "opt" }, job.kind),
        h("td", { class: "wide" },
          h("span", { class: "text" }, truncate(oneLine(input(job)), 60)),
          out ? h("span", { class: "arrow", "aria-hidden": "true" }, " → ") : null,
          out ? h("span", { class: job.error && !done ? "result err" : "result" }, truncate(out, 60)) : null,
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
      h("p", { class: "muted" }, filter === JobStatus.UNSPECIFIED ? "Submit a job on the left; it will show up here and update live." : "Jobs appear here as soon as one reaches this status."),
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
    void loadKinds(true);
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
