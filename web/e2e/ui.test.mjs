// End-to-end tests of the web UI in real headless Chromium (Debian's, driven by playwright-core).
//
// Starts `pfc dev` (all roles in one process, in-memory store) on free ports, then drives the
// UI like a person: submit "bonjour le monde", watch the row turn done with "BONJOUR LE MONDE"
// without reloading, open the detail, look at the queue stats. Run by scripts/test-web.sh;
// PFC_BIN names the binary. UPDATE_SCREENSHOTS=1 rewrites docs/screenshots/*.png.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM, PFC, SHOTS, freePort, waitReady } from "./harness.mjs";

let server, base, ctx, page, logs = "";

before(async () => {
  const [grpc, http] = [await freePort(), await freePort()];
  base = `http://127.0.0.1:${http}`;
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
  await ctx?.close();
  if (server) {
    server.kill("SIGTERM");
    await new Promise((r) => server.once("exit", r));
  }
});

const shot = async (name) => SHOTS && page.screenshot({ path: join(SHOTS, name), fullPage: true });

test("the jobs page loads with the kinds offered and a live stream", async () => {
  await page.goto(base + "/");
  await page.locator("#conn.conn-live").waitFor({ timeout: 15_000 });
  await page.locator('#kinds option[value="reverse"]').waitFor({ state: "attached", timeout: 10_000 });
  const kinds = await page.locator("#kinds option").evaluateAll((os) => os.map((o) => o.value));
  assert.ok(kinds.includes("uppercase") && kinds.includes("reverse"), `kinds: ${kinds}`);
  assert.equal(await page.inputValue("#kind"), "uppercase");
});

test("submitting 'bonjour le monde' shows BONJOUR LE MONDE and done without reloading", async (t) => {
  await page.goto(base + "/#/jobs");
  await page.evaluate(() => (window.__sameDocument = true));
  await page.fill("#text", "bonjour le monde");
  const clicked = Date.now();
  await page.click("#submit");
  const row = page.locator('tr.job-row[data-status="done"]', { hasText: "BONJOUR LE MONDE" }).first();
  await row.waitFor({ timeout: 20_000 });
  t.diagnostic(`submit click -> done row with the result: ${Date.now() - clicked} ms`);
  assert.match(await row.textContent(), /bonjour le monde/);
  assert.equal(await page.evaluate(() => window.__sameDocument), true, "the page reloaded");
});

test("a job submitted by another client appears live, and its detail shows the timeline", async () => {
  await page.goto(base + "/#/jobs");
  await page.locator("#conn.conn-live").waitFor({ timeout: 15_000 });
  const res = await fetch(`${base}/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ text: "salut depuis curl" }),
  });
  const { job_id } = await res.json();
  const row = page.locator(`tr[data-job-id="${job_id}"][data-status="done"]`);
  await row.waitFor({ timeout: 20_000 });
  await row.locator("a").click();
  await page.locator("#job-result").waitFor();
  assert.equal(await page.locator("#job-result").textContent(), "SALUT DEPUIS CURL");
  assert.equal(await page.locator("#job-status").getAttribute("data-status"), "done");
  const steps = await page.locator("#timeline li").count();
  assert.ok(steps >= 3, `timeline has ${steps} steps`);
  await shot("02-job-detail.png");
});

test("a delayed job can be cancelled from its detail page", async () => {
  const res = await fetch(`${base}/api/v1/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ text: "later", delay_ms: 600_000 }),
  });
  assert.equal(res.status, 201);
  const { job_id } = await res.json();
  await page.goto(`${base}/#/jobs/${job_id}`);
  await page.locator('#job-status[data-status="scheduled"]').waitFor({ timeout: 10_000 });
  await page.click("#cancel");
  await page.locator('#job-status[data-status="cancelled"]').waitFor({ timeout: 10_000 });
});

test("a failing job shows its retries, error and failed status live", async () => {
  const res = await fetch(`${base}/api/v1/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ text: "boom", kind: "fail", max_attempts: 2 }),
  });
  const { job_id } = await res.json();
  await page.goto(`${base}/#/jobs/${job_id}`);
  await page.locator('#job-status[data-status="failed"]').waitFor({ timeout: 20_000 });
  assert.match(await page.locator("#job-error").textContent(), /always fails/);
  assert.equal(await page.locator('[data-field="attempts"]').textContent(), "2 of 2");
  // Both deliveries appear when the page saw them live; at least the last one otherwise.
  const processing = await page.locator('#timeline li[data-status="processing"]').count();
  assert.ok(processing >= 1, `deliveries in the timeline: ${processing}`);
  await shot("07-job-failed.png");
  // "Run again" submits a new job with the same text and processor and opens it.
  await page.click("#run-again");
  await page.waitForFunction((old) => location.hash.startsWith("#/jobs/") && !location.hash.endsWith(old), job_id);
  assert.equal(await page.locator("#job-text").textContent(), "boom");
  await page.locator('#job-status[data-status="failed"]').waitFor({ timeout: 20_000 });
});

test("the queue page shows depth, in flight, throughput and live workers", async () => {
  await page.goto(base + "/#/stats");
  await page.locator("#stat-workers .metric-value").waitFor({ timeout: 10_000 });
  const workers = Number(await page.locator("#stat-workers .metric-value").textContent());
  assert.ok(workers >= 1, `live workers: ${workers}`);
  for (const id of ["queued", "processing", "throughput"]) {
    assert.ok(await page.locator(`#stat-${id}`).isVisible(), id);
  }
});

test("a burst of 300 jobs stays live without flooding the server with calls", async (t) => {
  const calls = async (rpc) => {
    const text = await (await fetch(`${base}/metrics`)).text();
    return text.split("\n")
      .filter((l) => l.startsWith("pfc_gateway_http_requests_total") && l.includes(`route="/pfc.jobs.v1.JobService/${rpc}"`))
      .reduce((n, l) => n + Number(l.split(" ").pop()), 0);
  };
  await page.goto(base + "/#/jobs");
  await page.locator("#conn.conn-live").waitFor({ timeout: 15_000 });
  await page.locator("tr.job-row").first().waitFor();
  const before = await calls("GetJob");
  const submitted = [];
  for (let i = 0; i < 6; i++) {
    const batch = await Promise.all(Array.from({ length: 50 }, (_, j) =>
      fetch(`${base}/jobs`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text: `burst ${i * 50 + j}` }) })
        .then((r) => r.json())));
    submitted.push(...batch.map((b) => b.job_id));
  }
  const newest = submitted.sort().at(-1);
  // The newest job is on top (ids are time-ordered) and every visible row ends done.
  await page.waitForFunction((newest) => {
    const rows = [...document.querySelectorAll("tr.job-row")];
    return rows[0]?.dataset.jobId === newest && rows.length >= 50 &&
      rows.slice(0, 50).every((r) => r.dataset.status === "done" && r.textContent.includes("BURST"));
  }, newest, { timeout: 30_000 });
  const getJobs = (await calls("GetJob")) - before;
  t.diagnostic(`GetJob calls for 300 jobs: ${getJobs}`);
  assert.ok(getJobs < 100, `the UI made ${getJobs} GetJob calls for 300 jobs`);
});

test("the schedules page creates a schedule that fires, pauses, resumes and deletes it", async () => {
  await page.goto(base + "/#/schedules");
  await page.fill("#schedule-name", "every-second");
  await page.fill("#schedule-spec", "1s");
  await page.fill("#schedule-text", "tick");
  await page.click("#schedule-create");
  const row = page.locator('#schedules-table tr[data-schedule="every-second"]');
  await row.waitFor({ timeout: 10_000 });
  // it fires: the last job's status badge appears (the page refreshes every 2 s)
  await row.locator(".badge").waitFor({ timeout: 15_000 });
  await row.getByRole("button", { name: "Pause" }).click();
  await row.locator("td", { hasText: "paused" }).waitFor({ timeout: 10_000 });
  await row.getByRole("button", { name: "Resume" }).click();
  await row.locator("td", { hasText: "active" }).waitFor({ timeout: 10_000 });
  // a bad cron is refused with the core's message naming the field
  await page.fill("#schedule-name", "bad");
  await page.fill("#schedule-spec", "61 * * * *");
  await page.click("#schedule-create");
  await page.locator("#schedule-error", { hasText: "cron" }).waitFor({ timeout: 10_000 });
  await row.getByRole("button", { name: "Delete" }).click();
  await row.waitFor({ state: "detached", timeout: 10_000 });
});

test("when pfc is unreachable the page says so, and Retry recovers", async () => {
  const ctx2 = page.context();
  await ctx2.route("**/pfc.jobs.v1.JobService/**", (r) => r.abort("connectionrefused"));
  try {
    await page.goto("about:blank");
    await page.goto(base + "/#/jobs");
    await page.getByText("Could not load jobs.").waitFor({ timeout: 10_000 });
    await page.locator("#conn.conn-offline").waitFor({ timeout: 10_000 });
    assert.equal(await page.inputValue("#kind"), "uppercase");
    assert.match(await page.locator("#kind-hint").textContent(), /Could not load the kinds/);
  } finally {
    await ctx2.unroute("**/pfc.jobs.v1.JobService/**");
  }
  await page.getByRole("button", { name: "Retry" }).click();
  await page.locator("tr.job-row").first().waitFor({ timeout: 10_000 });
  await page.locator("#conn.conn-live").waitFor({ timeout: 15_000 });
});

test("the keyboard reaches everything: / focuses the text, Ctrl+Enter submits", async () => {
  await page.goto(base + "/#/stats");
  await page.goto(base + "/#/jobs");
  await page.locator("#conn.conn-live").waitFor({ timeout: 15_000 });
  await page.evaluate(() => (document.activeElement instanceof HTMLElement) && document.activeElement.blur());
  await page.keyboard.press("/");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "text");
  await page.keyboard.type("au clavier");
  await page.keyboard.press("Control+Enter");
  await page.locator('tr.job-row[data-status="done"]', { hasText: "AU CLAVIER" }).first().waitFor({ timeout: 15_000 });
});

test("an unknown job shows a clear not-found state", async () => {
  await page.goto(`${base}/#/jobs/01HZZZZZZZZZZZZZZZZZZZZZZZ`);
  await page.getByText("Job not found").waitFor({ timeout: 10_000 });
});

test("the API docs page renders the OpenAPI document", async () => {
  await page.goto(base + "/docs");
  await page.getByText("/api/v1/jobs").first().waitFor({ timeout: 15_000 });
  await shot("04-api-docs.png");
});

test("screenshots of the main views (UPDATE_SCREENSHOTS=1)", { skip: !SHOTS }, async () => {
  // A realistic mix: several processors, one still running, one scheduled, one cancelled.
  const submit = (body) => fetch(`${base}/api/v1/jobs`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  }).then((r) => r.json());
  await page.goto(base + "/#/stats");
  for (let i = 0; i < 14; i++) {
    const n = [10, 25, 40, 30, 15, 35, 20][i % 7];
    await Promise.all(Array.from({ length: n }, (_, j) => submit({ text: `load ${i}-${j}`, kind: j % 2 ? "reverse" : "uppercase" })));
    await page.waitForTimeout(900);
  }
  await submit({ text: "Le cœur a ses raisons que la raison ne connaît point", kind: "wordcount" });
  await submit({ text: "hello world", kind: "sha256" });
  await submit({ text: "25000", kind: "sleep" });
  await submit({ text: "send the weekly report", delay_ms: 900_000 });
  const c = await submit({ text: "never mind", delay_ms: 900_000 });
  await fetch(`${base}/api/v1/jobs/${c.job_id}/cancel`, { method: "POST" });
  await submit({ text: "Bonjour le monde", kind: "reverse" });
  await page.waitForTimeout(2500);
  await shot("03-queue.png");
  await page.goto(base + "/#/jobs");
  await page.locator("tr.job-row").first().waitFor();
  await page.fill("#text", "bonjour le monde");
  await page.waitForTimeout(800);
  await page.screenshot({ path: join(SHOTS, "01-jobs.png") });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(SHOTS, "05-jobs-mobile.png") });
  await page.setViewportSize({ width: 1280, height: 800 });
});
