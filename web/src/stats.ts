// Queue statistics: depth, in flight, throughput computed from the counters, live workers.
// GetStats is a snapshot, so this page samples it every 2 s while it is open.
import type { GetStatsResponse } from "./gen/pfc/jobs/v1/jobs_pb.js";
import type { Page } from "./pages.js";
import { errorMessage, jobs } from "./client.js";
import { ago, date, h } from "./util.js";

const PERIOD_MS = 2000;
const WINDOW = 60; // samples kept: 2 minutes

interface Sample {
  t: number;
  done: number;
  failed: number;
  submitted: number;
}

const samples: Sample[] = [];

export const statsPage: Page = {
  id: "stats",
  title: "Queue",
  slot: "main",
  render(root) {
    let last: GetStatsResponse | undefined;
    let error = "";
    const view = h("div", { class: "page stats-page" });
    root.replaceChildren(view);

    const rate = (key: keyof Omit<Sample, "t">, span = 5): number | undefined => {
      if (samples.length < 2) return undefined;
      const a = samples[Math.max(0, samples.length - 1 - span)];
      const b = samples[samples.length - 1];
      const dt = (b.t - a.t) / 1000;
      return dt > 0 ? Math.max(0, (b[key] - a[key]) / dt) : undefined;
    };

    const card = (id: string, label: string, value: string, sub = "") =>
      h("div", { class: "card metric", id: `stat-${id}` },
        h("div", { class: "metric-label" }, label),
        h("div", { class: "metric-value" }, value),
        sub ? h("div", { class: "metric-sub muted" }, sub) : null);

    const peak = (): number => {
      let max = 0;
      for (let i = 1; i < samples.length; i++) {
        const dt = (samples[i].t - samples[i - 1].t) / 1000;
        if (dt > 0) max = Math.max(max, (samples[i].done - samples[i - 1].done) / dt);
      }
      return max;
    };

    const sparkline = (): SVGSVGElement => {
      const W = 600, H = 80;
      const rates: number[] = [];
      for (let i = 1; i < samples.length; i++) {
        const dt = (samples[i].t - samples[i - 1].t) / 1000;
        rates.push(dt > 0 ? Math.max(0, (samples[i].done - samples[i - 1].done) / dt) : 0);
      }
      const max = Math.max(1, ...rates);
      const step = W / Math.max(1, rates.length - 1);
      const pts = rates.map((r, i) => `${(W - (rates.length - 1 - i) * step).toFixed(1)},${(H - 4 - (r / max) * (H - 8)).toFixed(1)}`);
      const ns = "http://www.w3.org/2000/svg";
      const svg = document.createElementNS(ns, "svg");
      svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
      svg.setAttribute("preserveAspectRatio", "none");
      svg.setAttribute("class", "spark");
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-label", `Jobs done per second over the last ${Math.round((samples.length * PERIOD_MS) / 1000)} seconds, peak ${max.toFixed(1)}`);
      if (pts.length > 1) {
        const area = document.createElementNS(ns, "polygon");
        area.setAttribute("points", `${pts[0].split(",")[0]},${H} ${pts.join(" ")} ${W},${H}`);
        area.setAttribute("class", "spark-area");
        const line = document.createElementNS(ns, "polyline");
        line.setAttribute("points", pts.join(" "));
        line.setAttribute("class", "spark-line");
        svg.append(area, line);
      }
      return svg;
    };

    const render = () => {
      if (!last) {
        view.replaceChildren(error
          ? h("div", { class: "banner error", role: "alert" }, h("strong", {}, "Could not load statistics. "), error)
          : h("div", { class: "card empty" }, h("p", { class: "muted" }, "Loading…")));
        return;
      }
      const s = last;
      const fmtRate = (r?: number) => (r === undefined ? "…" : r < 10 ? r.toFixed(2) : r.toFixed(0));
      const done = rate("done"), failed = rate("failed"), submitted = rate("submitted");
      const finished = Number(s.doneTotal + s.failedTotal);
      const successPct = finished ? ((Number(s.doneTotal) / finished) * 100).toFixed(1) + "%" : "—";
      view.replaceChildren(
        ...(error ? [h("div", { class: "banner warn", role: "alert" }, "Live refresh failed: ", error)] : []),
        h("div", { class: "metrics" },
          card("queued", "Queue depth", String(s.queued), "waiting for a worker"),
          card("processing", "In flight", String(s.processing), "running on workers"),
          card("scheduled", "Scheduled", String(s.scheduled), "delayed or retrying"),
          card("workers", "Live workers", String(s.liveWorkers), `${s.workers.reduce((a, w) => a + w.concurrency, 0)} slots`),
          card("throughput", "Throughput", `${fmtRate(done)}/s`, `in ${fmtRate(submitted)}/s · failed ${fmtRate(failed)}/s`),
          card("success", "Success rate", successPct, "done / (done + failed)"),
        ),
        h("section", { class: "card" },
          h("div", { class: "card-head" }, h("h2", {}, "Jobs done per second"), h("span", { class: "muted" }, `peak ${peak().toFixed(peak() < 10 ? 1 : 0)}/s · last ${Math.round((samples.length * PERIOD_MS) / 1000)} s`)),
          samples.length < 3 ? h("div", { class: "spark-empty muted" }, "Collecting samples…") : sparkline()),
        h("div", { class: "detail-grid" },
          h("section", { class: "card" },
            h("h2", {}, "Totals"),
            h("dl", { class: "fields totals" },
              ...([["Submitted", s.submittedTotal], ["Done", s.doneTotal], ["Failed", s.failedTotal], ["Cancelled", s.cancelledTotal], ["Retried deliveries", s.retriedTotal]] as const)
                .map(([k, v]) => h("div", { class: "field-view" }, h("dt", {}, k), h("dd", { class: "num" }, Number(v).toLocaleString())))),
            h("p", { class: "hint" }, "Counters since the store started.")),
          h("section", { class: "card" },
            h("h2", {}, "Workers"),
            s.workers.length === 0
              ? h("div", { class: "empty" }, h("p", { class: "empty-title" }, "No live workers"), h("p", { class: "muted" }, "Queued jobs wait until a worker sends a heartbeat. Start one with ", h("code", {}, "pfc worker"), "."))
              : h("table", { class: "jobs workers" },
                h("thead", {}, h("tr", {}, h("th", {}, "Worker"), h("th", { class: "num" }, "Busy"), h("th", {}, "Load"), h("th", {}, "Last seen"))),
                h("tbody", {}, ...s.workers.map((w) => {
                  const pct = w.concurrency ? Math.round((w.inFlight / w.concurrency) * 100) : 0;
                  return h("tr", {},
                    h("td", { class: "mono" }, w.id),
                    h("td", { class: "num" }, `${w.inFlight}/${w.concurrency}`),
                    h("td", {}, h("div", { class: "bar", role: "img", "aria-label": `${pct}% busy` }, h("span", { style: `width:${pct}%` }))),
                    h("td", { class: "muted" }, ago(date(w.lastSeen))));
                })))),
        ),
      );
    };

    const poll = async () => {
      try {
        last = await jobs.getStats({});
        samples.push({ t: Date.now(), done: Number(last.doneTotal), failed: Number(last.failedTotal), submitted: Number(last.submittedTotal) });
        while (samples.length > WINDOW) samples.shift();
        error = "";
      } catch (e) {
        error = errorMessage(e);
      }
      render();
    };

    render();
    void poll();
    const timer = setInterval(() => void poll(), PERIOD_MS);
    return () => clearInterval(timer);
  },
};
