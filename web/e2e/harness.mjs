// Shared by the browser tests: paths, the Chromium binary, free ports and a readiness poll.
import net from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, "../..");
export const PFC = process.env.PFC_BIN ?? join(repo, "target/debug/pfc");
export const SHOTS = process.env.UPDATE_SCREENSHOTS ? join(repo, "docs/screenshots") : null;
export const CHROMIUM = process.env.CHROMIUM ?? process.env.CHROME_PATH ?? "/usr/bin/chromium";

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on("error", fail);
  });
}

/** Polls `url` until it answers 2xx; `logs()` gives the server output for the error. */
export async function waitReady(url, ms, logs) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {}
    if (Date.now() > end) throw new Error(`${url} not ready after ${ms} ms; pfc output:\n${logs()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
