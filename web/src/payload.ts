// How a job's input and output are shown: text as is, JSON payloads and results pretty-printed
// (monospace, lightly highlighted, collapsible when long), other bytes as their size, content
// type and a base64 preview. JSON is re-indented token by token, never parsed into numbers and
// objects, so what the page shows is exactly what was sent (key order, big numbers).
import type { Job } from "./gen/pfc/jobs/v1/jobs_pb.js";
import { h } from "./util.js";

/** A kind name as the core accepts it. */
export const KIND_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** Past this many lines (or characters), a JSON block starts collapsed. */
const LONG_LINES = 16;
const LONG_CHARS = 1500;

const decoder = new TextDecoder("utf-8", { fatal: true });

/** True for a JSON content type (empty means JSON on submit). */
export function isJson(contentType: string): boolean {
  const essence = contentType.split(";")[0].trim().toLowerCase();
  return essence === "" || essence === "application/json";
}

/** One side of a job: its text, JSON text, or other bytes. */
export type Io =
  | { type: "text"; text: string }
  | { type: "json"; text: string }
  | { type: "bytes"; bytes: Uint8Array; contentType: string }
  | { type: "none" };

/** The job's input. */
export function input(job: Job): Io {
  if (job.payload.length || job.contentType) return io(job.payload, job.contentType || "application/json");
  return { type: "text", text: job.text };
}

/** The job's output, if any. */
export function output(job: Job): Io {
  if (job.result !== undefined) return { type: "text", text: job.result };
  if (job.resultContentType) return io(job.resultPayload, job.resultContentType);
  return { type: "none" };
}

function io(bytes: Uint8Array, contentType: string): Io {
  if (isJson(contentType)) {
    try {
      return { type: "json", text: decoder.decode(bytes).trim() };
    } catch {
      // not UTF-8: shown as bytes below
    }
  }
  return { type: "bytes", bytes, contentType };
}

/** A one-line summary for the jobs list: compact JSON, or "12 B image/png". */
export function oneLine(v: Io): string {
  switch (v.type) {
    case "text": return v.text;
    case "json": return compact(v.text);
    case "bytes": return `${fmtBytes(v.bytes.length)} ${v.contentType}`;
    case "none": return "";
  }
}

/** JSON text without the whitespace between tokens. */
export function compact(json: string): string {
  let out = "";
  for (const t of tokens(json)) out += t.text === ":" ? ": " : t.text === "," ? ", " : t.text;
  return out;
}

/** JSON text re-indented with two spaces. */
export function pretty(json: string): string {
  return prettyTokens(json).map((t) => t.text).join("");
}

type Token = { text: string; cls?: "key" | "str" | "num" | "lit" | "punct" };

/** JSON tokens (strings copied verbatim, whitespace dropped). Never throws on bad input. */
function* tokens(json: string): Generator<Token> {
  let i = 0;
  while (i < json.length) {
    const c = json[i];
    if (c === " " || c === "\n" || c === "\r" || c === "\t") { i++; continue; }
    if (c === '"') {
      let j = i + 1;
      while (j < json.length && json[j] !== '"') j += json[j] === "\\" ? 2 : 1;
      yield { text: json.slice(i, j + 1), cls: "str" };
      i = j + 1;
    } else if ("{}[],:".includes(c)) {
      yield { text: c, cls: "punct" };
      i++;
    } else {
      let j = i;
      while (j < json.length && !' \n\r\t{}[],:"'.includes(json[j])) j++;
      const word = json.slice(i, j);
      yield { text: word, cls: /^[-0-9]/.test(word) ? "num" : "lit" };
      i = j;
    }
  }
}

/** Tokens of the pretty-printed text, with the newlines and indentation as plain tokens. */
function prettyTokens(json: string): Token[] {
  const all = [...tokens(json)];
  const out: Token[] = [];
  let depth = 0;
  const nl = () => out.push({ text: "\n" + "  ".repeat(depth) });
  all.forEach((t, i) => {
    const next = all[i + 1]?.text;
    if (t.text === "{" || t.text === "[") {
      out.push(t);
      if (next === "}" || next === "]") return; // {} and [] stay on one line
      depth++;
      nl();
    } else if (t.text === "}" || t.text === "]") {
      const prev = all[i - 1]?.text;
      if (prev !== "{" && prev !== "[") {
        depth = Math.max(0, depth - 1);
        nl();
      }
      out.push(t);
    } else if (t.text === ",") {
      out.push(t);
      nl();
    } else if (t.text === ":") {
      out.push({ text: ": ", cls: "punct" });
    } else {
      // a string followed by ":" is an object key
      out.push(t.cls === "str" && next === ":" ? { text: t.text, cls: "key" } : t);
    }
  });
  return out;
}

/** Pretty JSON as highlighted DOM (text nodes only: nothing from the job becomes markup). */
function jsonPre(json: string, id: string | undefined, cls: string): HTMLElement {
  const pre = h("pre", { class: `io json ${cls}`, id, "data-format": "json" });
  for (const t of prettyTokens(json)) {
    pre.append(t.cls && t.cls !== "punct" ? h("span", { class: `j-${t.cls}` }, t.text) : t.text);
  }
  return pre;
}

export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function base64(bytes: Uint8Array, max: number): string {
  let s = "";
  for (const b of bytes.subarray(0, max)) s += String.fromCharCode(b);
  return btoa(s);
}

/**
 * One side of a job as a block for the detail page. `id` goes on the element holding the
 * content (tests and links find it there); `cls` adds e.g. "result" or "err".
 */
export function ioBlock(v: Io, id: string, cls = ""): HTMLElement {
  switch (v.type) {
    case "text":
      return h("pre", { class: `io ${cls}`, id }, v.text);
    case "json": {
      const pre = jsonPre(v.text, id, cls);
      const lines = pre.textContent!.split("\n").length;
      if (lines <= LONG_LINES && v.text.length <= LONG_CHARS) return h("div", { class: "io-wrap" }, label("JSON"), pre);
      // Long: collapsed to a one-line preview; the summary says how much there is.
      return h("details", { class: "io-wrap collapsible" },
        h("summary", {}, label("JSON"), h("span", { class: "muted" }, ` ${lines} lines · ${fmtBytes(v.text.length)} `),
          h("span", { class: "mono preview" }, compact(v.text).slice(0, 80))),
        pre);
    }
    case "bytes":
      return h("div", { class: "io-wrap" }, label(v.contentType),
        h("pre", { class: `io ${cls}`, id, "data-format": "bytes" },
          `${fmtBytes(v.bytes.length)} (base64${v.bytes.length > 96 ? ", first 96 bytes" : ""}):\n${base64(v.bytes, 96)}`));
    case "none":
      return h("span", {});
  }
}

function label(text: string): HTMLElement {
  return h("span", { class: "io-label" }, text);
}
