// Small DOM and formatting helpers (no framework).
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { JobStatus } from "./gen/pfc/jobs/v1/jobs_pb.js";

type Attrs = Record<string, string | number | boolean | EventListener | undefined | null>;
type Child = Node | string | number | null | undefined | false;

/** `h("div", {class: "x", onclick: f}, child, ...)`: creates an element. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v as EventListener);
    } else if (v === true) {
      el.setAttribute(k, "");
    } else {
      el.setAttribute(k, String(v));
    }
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export const STATUS_NAMES: Record<number, string> = {
  [JobStatus.SCHEDULED]: "scheduled",
  [JobStatus.QUEUED]: "queued",
  [JobStatus.PROCESSING]: "processing",
  [JobStatus.DONE]: "done",
  [JobStatus.FAILED]: "failed",
  [JobStatus.CANCELLED]: "cancelled",
};

export function statusName(s: JobStatus): string {
  return STATUS_NAMES[s] ?? "unknown";
}

export function isTerminal(s: JobStatus): boolean {
  return s === JobStatus.DONE || s === JobStatus.FAILED || s === JobStatus.CANCELLED;
}

export function badge(s: JobStatus): HTMLElement {
  const name = statusName(s);
  return h("span", { class: `badge badge-${name}`, "data-status": name }, name);
}

export function date(ts?: Timestamp): Date | undefined {
  return ts ? timestampDate(ts) : undefined;
}

export function ago(d?: Date, now = Date.now()): string {
  if (!d) return "—";
  const s = Math.round((now - d.getTime()) / 1000);
  if (s < -1) return `in ${fmtDuration(-s)}`;
  if (s < 5) return "just now";
  return `${fmtDuration(s)} ago`;
}

export function fmtDuration(s: number): string {
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d`;
}

export function fmtTime(d?: Date): string {
  return d ? d.toLocaleTimeString(undefined, { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0") : "—";
}

export function fmtMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

export function truncate(s: string, n: number): string {
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

export function shortId(id: string): string {
  return id.length > 12 ? id.slice(-8).toLowerCase() : id;
}
