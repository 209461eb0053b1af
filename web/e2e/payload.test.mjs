// End-to-end tests of JSON jobs in the web UI, in real headless Chromium: `pfc dev` on free
// ports and a worker written with the TypeScript SDK (sdks/typescript, built by
// scripts/test-web.sh) for a kind pfc does not know. A person picks that kind, types a JSON
// payload (a broken one is refused before sending), and sees the progress, then the JSON
// result pretty-printed; a long payload starts collapsed. UPDATE_SCREENSHOTS=1 rewrites
// docs/screenshots/08-job-json.png.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";
import { CHROMIUM, PFC, SHOTS, freePort, repo, waitReady } from "./harness.mjs";

const KIND = "e2e.resize-v2";
let server, base, grpcUrl, ctx, page, worker, running, logs = "";
/** Releases the job the worker is holding (it reports 50 % and waits for this). */
let release = () => {};

before(async () => {
  const [grpc, http] = [await freePort(), await freePort()];
  base = `http://127.0.0.1:${http}`;
  grpcUrl = `http://127.0.0.1:${grpc}`;
  server = spawn(PFC, ["dev"], {
    env: { ...process.env, PFC_GRPC_ADDR: `127.0.0.1:${grpc}`, PFC_HTTP_ADDR: `127.0.0.1:${http}`, PFC_LOG: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  server.stdout.on("data", (d) => (logs += d));
  server.stderr.on("data", (d) => (logs += d));
  await waitReady(`${base}/readyz`, 30_000, () => logs);
  ctx = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "pfc-e2e-")), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = ctx.pages()[0] ?? (await ctx.newPage());
  page.on("pageerror", (e) => (logs += `\n[pageerror] ${e}`));
});

after(async () => {
  worker?.stop();
  await running;
  await ctx?.close();
  if (server) {
    server.kill("SIGTERM");
    await new Promise((r) => server.once("exit", r));
  }
});

const shot = async (name) => SHOTS && page.screenshot({ path: join(SHOTS, name), fullPage: true });

/** Starts the SDK worker for KIND: it reports 50 %, waits for `release()` on `{"hold": true}`. */
async function startWorker() {
  const sdk = await import(pathToFileURL(join(repo, "sdks/typescript/dist/index.js")).href);
  worker = new sdk.Worker(grpcUrl, { concurrency: 4, handleSignals: false, name: "e2e-worker", logger: { info() {}, warn() {} } });
  worker.handle(KIND, async (job) => {
    const { w, h, hold } = job.payload;
    job.progress(50);
    if (hold) await new Promise((r) => (release = r));
    return { w, h, pixels: w * h, thumb: { format: "png", sizes: [16, 32] }, ok: true };
  });
  running = worker.run();
  // Live once ListKinds counts it.
  for (let i = 0; i < 100; i++) {
    const { kinds } = await (await fetch(`${base}/api/v1/kinds`)).json();
    if (kinds.some((k) => k.name === KIND && k.workers >= 1)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the SDK worker never declared ${KIND}; pfc output:\n${logs}`);
}

test("a new kind can be typed: the form says it waits queued and switches to a JSON payload", async () => {
  await page.goto(base + "/#/jobs");
  await page.locator("#conn.conn-live").waitFor({ timeout: 15_000 });
  await page.fill("#kind", "Not A Kind");
  assert.match(await page.locator("#kind-hint").textContent(), /1 to 64 of a–z/);
  await page.fill("#kind", "nobody.handles-this");
  assert.match(await page.locator("#kind-hint").textContent(), /waits queued/);
  assert.ok(await page.locator("#payload").isVisible(), "JSON payload field shown for a new kind");
  assert.ok(!(await page.locator("#text").isVisible()), "text field hidden");
  await page.fill("#kind", "uppercase");
  assert.ok(await page.locator("#text").isVisible(), "text again for a built-in kind");
});

test("a JSON job from the form runs on an SDK worker: progress, then the result pretty-printed", async () => {
  await startWorker();
  await page.goto(base + "/#/jobs");
  await page.locator("#conn.conn-live").waitFor({ timeout: 15_000 });
  // the live worker's kind is offered
  await page.click("#kind");
  await page.locator(`#kinds option[value="${KIND}"]`).waitFor({ state: "attached", timeout: 10_000 });
  await page.fill("#kind", KIND);
  assert.match(await page.locator("#kind-hint").textContent(), /1 live worker/);
  await page.click("#mode-json");

  // broken JSON is refused before anything is sent
  const before = await (await fetch(`${base}/api/v1/stats`)).json();
  await page.fill("#payload", '{"w": 64, "h": 48,');
  assert.match(await page.locator("#payload-hint").textContent(), /Not valid JSON/);
  await page.click("#submit");
  assert.match(await page.locator("#submit-status").textContent(), /Not valid JSON/);
  const after = await (await fetch(`${base}/api/v1/stats`)).json();
  assert.equal(after.submitted_total, before.submitted_total, "nothing was submitted");

  await page.fill("#payload", '{"w": 64, "h": 48, "name": "chat.png", "hold": true}');
  await page.click("#submit");
  const link = page.locator("#submit-status a");
  await link.waitFor({ timeout: 10_000 });
  const id = (await link.getAttribute("href")).split("/").pop();
  const row = page.locator(`tr[data-job-id="${id}"]`);
  await row.waitFor({ timeout: 10_000 });
  assert.match(await row.textContent(), /"w": 64, "h": 48, "name": "chat.png"/);
  await page.locator(`tr[data-job-id="${id}"][data-status="processing"] [data-progress="50"]`).waitFor({ timeout: 10_000 });

  await link.click();
  await page.locator('[data-field="progress"]').waitFor({ timeout: 10_000 });
  assert.match(await page.locator('[data-field="progress"]').textContent(), /50%/);
  const input = page.locator("#job-text");
  assert.equal(await input.getAttribute("data-format"), "json");
  assert.equal(await input.textContent(), '{\n  "w": 64,\n  "h": 48,\n  "name": "chat.png",\n  "hold": true\n}');
  assert.equal(await page.locator("#job-result-pending").count(), 1);

  release();
  await page.locator('#job-status[data-status="done"]').waitFor({ timeout: 15_000 });
  const result = page.locator("#job-result");
  assert.equal(await result.getAttribute("data-format"), "json");
  const text = await result.textContent();
  assert.deepEqual(JSON.parse(text), { w: 64, h: 48, pixels: 3072, thumb: { format: "png", sizes: [16, 32] }, ok: true });
  assert.match(text, /^\{\n {2}"w": 64,\n {2}"h": 48,\n {2}"pixels": 3072,/, "pretty-printed");
  assert.equal(await result.evaluate((el) => getComputedStyle(el).fontFamily.includes("monospace")), true);
  assert.ok(await result.locator(".j-key").count() >= 5, "keys highlighted");
  await shot("08-job-json.png");

  // the list shows the result in one line
  await page.click("a.back");
  const done = page.locator(`tr[data-job-id="${id}"][data-status="done"]`);
  await done.waitFor({ timeout: 10_000 });
  assert.match(await done.textContent(), /"pixels": 3072/);
});

test("a long JSON payload starts collapsed and opens on click", async () => {
  const items = Array.from({ length: 40 }, (_, i) => ({ i, name: `item ${i}` }));
  const res = await fetch(`${base}/api/v1/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ kind: KIND, payload: { w: 2, h: 3, items } }),
  });
  assert.equal(res.status, 201);
  const { job_id } = await res.json();
  await page.goto(`${base}/#/jobs/${job_id}`);
  await page.locator('#job-status[data-status="done"]').waitFor({ timeout: 15_000 });
  const box = page.locator("details.collapsible", { has: page.locator("#job-text") });
  assert.equal(await box.getAttribute("open"), null, "collapsed");
  assert.match(await box.locator("summary").textContent(), /\d+ lines/);
  assert.ok(!(await page.locator("#job-text").isVisible()));
  await box.locator("summary").click();
  await page.locator("#job-text").waitFor({ state: "visible", timeout: 5_000 });
  assert.match(await page.locator("#job-text").textContent(), /"name": "item 39"/);
  // Another job's events re-render the page: the block the user opened stays open.
  const other = await fetch(`${base}/api/v1/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ kind: KIND, payload: { w: 1, h: 1 } }),
  });
  assert.equal(other.status, 201);
  const otherId = (await other.json()).job_id;
  await page.waitForFunction(async (oid) => {
    const r = await fetch(`/api/v1/jobs/${oid}`);
    return r.ok && (await r.json()).status === "done";
  }, otherId, { timeout: 15_000, polling: 100 });
  await page.waitForTimeout(300); // the store notifies once per animation frame
  assert.notEqual(await box.getAttribute("open"), null, "still open after a re-render");
  assert.ok(await page.locator("#job-text").isVisible());
  // the short result is shown open
  assert.ok(await page.locator("#job-result").isVisible());
});
