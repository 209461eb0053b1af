// Schedules: periodic jobs (cron in a time zone, or a fixed interval), each tick submitted once
// by the elected scheduler (docs/design.md, "Schedules"). Lists next and last fire and the last
// job's status (refreshed every 2 s while open); create, pause, resume, delete.
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { CatchUp, ScheduleSchema, ScheduleService, type Schedule } from "./gen/pfc/jobs/v1/schedules_pb.js";
import { SubmitJobRequestSchema } from "./gen/pfc/jobs/v1/jobs_pb.js";
import type { Page } from "./pages.js";
import { errorMessage, transport } from "./client.js";
import { ago, badge, date, h } from "./util.js";

const schedules = createClient(ScheduleService, transport);
const PERIOD_MS = 2000;

function when(s: Schedule): string {
  if (s.every) return `every ${Number(s.every.seconds) + s.every.nanos / 1e9}s`;
  return s.timeZone && s.timeZone !== "UTC" ? `${s.cron} (${s.timeZone})` : s.cron;
}

function fire(d?: Date): string {
  return d ? `${d.toLocaleString()} (${ago(d)})` : "—";
}

export const schedulesPage: Page = {
  id: "schedules",
  title: "Schedules",
  slot: "main",
  render(root) {
    const status = h("p", { class: "muted", id: "schedules-status", role: "status" });
    const body = h("tbody");
    const table = h("table", { class: "jobs", id: "schedules-table" },
      h("thead", {}, h("tr", {}, ...["Name", "When", "State", "Next fire", "Last fire", "Last job", ""].map((t) => h("th", {}, t)))),
      body);

    const name = h("input", { id: "schedule-name", required: true, placeholder: "nightly-report", autocomplete: "off" });
    const spec = h("input", { id: "schedule-spec", required: true, placeholder: "0 3 * * *  or  30s" });
    const tz = h("input", { id: "schedule-tz", placeholder: "UTC" });
    const kind = h("input", { id: "schedule-kind", placeholder: "uppercase" });
    const text = h("input", { id: "schedule-text", placeholder: "text for each job" });
    const formError = h("p", { class: "error", id: "schedule-error", role: "alert" });
    const field = (label: string, input: HTMLElement) => h("div", {}, h("label", { for: input.id }, label), input);
    const form = h("form", { class: "card", id: "schedule-form", novalidate: true },
      h("h2", {}, "New schedule"),
      field("Name", name),
      field("Cron (5 or 6 fields) or interval (e.g. 30s, 5m)", spec),
      field("Time zone (cron only)", tz),
      field("Kind", kind),
      field("Text", text),
      formError,
      h("button", { type: "submit", class: "primary", id: "schedule-create" }, "Create schedule"));

    const load = async () => {
      try {
        const r = await schedules.listSchedules({});
        status.textContent = r.schedules.length ? "" : "No schedules yet.";
        body.replaceChildren(...r.schedules.map(row));
      } catch (e) {
        status.textContent = errorMessage(e);
      }
    };

    const act = (label: string, cls: string, f: () => Promise<unknown>) =>
      h("button", { type: "button", class: cls, onclick: async () => {
        try { await f(); } catch (e) { status.textContent = errorMessage(e); }
        await load();
      } }, label);

    const row = (s: Schedule) => h("tr", { "data-schedule": s.name },
      h("td", {}, s.name),
      h("td", {}, h("code", {}, when(s))),
      h("td", {}, s.paused ? "paused" : "active"),
      h("td", {}, fire(date(s.nextFireTime))),
      h("td", {}, fire(date(s.lastFireTime))),
      h("td", {}, s.lastJobId
        ? h("a", { href: `#/jobs/${encodeURIComponent(s.lastJobId)}` }, badge(s.lastJobStatus))
        : s.lastError ? h("span", { class: "error" }, s.lastError) : "—"),
      h("td", {},
        s.paused
          ? act("Resume", "link", () => schedules.updateSchedule({ name: s.name, paused: false }))
          : act("Pause", "link", () => schedules.updateSchedule({ name: s.name, paused: true })),
        " ",
        act("Delete", "link danger", () => schedules.deleteSchedule({ name: s.name }))));

    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      formError.textContent = "";
      const v = spec.value.trim();
      const m = /^(\d+)(ms|s|m|h|d)$/.exec(v);
      const mult: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
      const schedule = create(ScheduleSchema, {
        name: name.value.trim(),
        cron: m ? "" : v,
        timeZone: m ? "" : tz.value.trim(),
        every: m ? { seconds: BigInt(Math.floor(Number(m[1]) * mult[m[2]])), nanos: m[2] === "ms" ? (Number(m[1]) % 1000) * 1e6 : 0 } : undefined,
        catchUp: CatchUp.FIRE_ONCE,
        job: create(SubmitJobRequestSchema, { kind: kind.value.trim(), text: text.value }),
      });
      try {
        await schedules.createSchedule({ schedule });
        form.reset();
        await load();
      } catch (err) {
        formError.textContent = errorMessage(err);
      }
    });

    root.replaceChildren(h("div", { class: "page" },
      form,
      h("section", { class: "card" }, h("h2", {}, "Schedules"), status, table)));
    void load();
    const timer = window.setInterval(() => void load(), PERIOD_MS);
    return () => window.clearInterval(timer);
  },
};
