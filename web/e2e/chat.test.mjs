// End-to-end tests of the Chat page in real headless Chromium (playwright-core), two people in
// two separate browser contexts against one `pfc dev` (auth + chat in one process, in-memory
// store). Run by scripts/test-web.sh; PFC_BIN names the binary. UPDATE_SCREENSHOTS=1 rewrites
// docs/screenshots/06-chat.png.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM, PFC, SHOTS, freePort, waitReady } from "./harness.mjs";

let server, base, browser, alice, bob, logs = "";

async function person() {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => (logs += `\n[pageerror] ${e}`));
  return page;
}

async function login(page, name, room = "lobby") {
  await page.goto(`${base}/#/chat/${room}`);
  await page.fill("#chat-username", name);
  await page.click("#chat-login");
  await page.locator("#chat-live.conn-live").waitFor({ timeout: 15_000 });
}

before(async () => {
  const [grpc, http] = [await freePort(), await freePort()];
  base = `http://127.0.0.1:${http}`;
  server = spawn(PFC, ["dev"], {
    env: { ...process.env, PFC_GRPC_ADDR: `127.0.0.1:${grpc}`, PFC_HTTP_ADDR: `127.0.0.1:${http}`, PFC_LOG: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  server.stdout.on("data", (d) => (logs += d));
  server.stderr.on("data", (d) => (logs += d));
  await waitReady(`${base}/healthz`, 30_000, () => logs);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  alice = await person();
  bob = await person();
});

after(async () => {
  await browser?.close();
  if (server) {
    server.kill("SIGTERM");
    await new Promise((r) => server.once("exit", r));
  }
});

test("two people exchange messages live and see the online count change", async () => {
  await login(alice, "alice");
  await alice.locator("#chat-count", { hasText: "1" }).waitFor({ timeout: 10_000 });
  await login(bob, "bob");
  // Both see two people online (pushed, not polled: the page never reloads).
  await alice.locator("#chat-count", { hasText: "2" }).waitFor({ timeout: 10_000 });
  await bob.locator("#chat-count", { hasText: "2" }).waitFor({ timeout: 10_000 });
  assert.deepEqual(await alice.locator("#chat-online li").allTextContents(), ["alice", "bob"]);

  await alice.fill("#chat-text", "salut bob");
  await alice.click("#chat-send");
  await bob.locator(".chat-msg", { hasText: "salut bob" }).waitFor({ timeout: 10_000 });
  await bob.fill("#chat-text", "salut alice");
  await bob.press("#chat-text", "Enter");
  await alice.locator(".chat-msg", { hasText: "salut alice" }).waitFor({ timeout: 10_000 });
  assert.equal(await alice.locator(".chat-msg").count(), 2, "no duplicates");

  // Bob logs out: alice's count drops at once (Leave), not after the presence TTL.
  await bob.click("#chat-logout");
  await bob.locator("#chat-username").waitFor();
  await alice.locator("#chat-count", { hasText: "1" }).waitFor({ timeout: 10_000 });
});

test("markup in messages is shown as text, never run", async () => {
  await login(bob, "bob");
  await alice.evaluate(() => (window.__pwned = 0));
  const evil = ["<script>window.__pwned = 1</script>", "<img src=x onerror=\"window.__pwned = 2\">"];
  for (const text of evil) {
    await bob.fill("#chat-text", text);
    await bob.click("#chat-send");
    await alice.locator(".chat-text", { hasText: text }).waitFor({ timeout: 10_000 });
  }
  assert.equal(await alice.locator(".chat-messages img, .chat-messages script").count(), 0);
  assert.equal(await alice.evaluate(() => window.__pwned), 0);
  const shown = await alice.locator(".chat-text").allTextContents();
  for (const text of evil) assert.ok(shown.includes(text), `${text} shown verbatim`);
});

test("history survives a reload, rooms can be created, and bad input gets a clear error", async () => {
  await alice.reload();
  await alice.locator(".chat-msg", { hasText: "salut bob" }).waitFor({ timeout: 10_000 });
  await alice.fill("#chat-text", "x".repeat(2000) + "y");
  // maxlength stops the browser at 2,000; the server's own limit is checked by the Rust tests.
  assert.equal((await alice.inputValue("#chat-text")).length, 2000);
  await alice.fill("#chat-new-room", "dev-room");
  await alice.click(".chat-room-form button");
  await alice.locator("#chat-room", { hasText: "#dev-room" }).waitFor();
  await alice.locator("#chat-live.conn-live").waitFor({ timeout: 15_000 });
  await alice.fill("#chat-text", "first in dev-room");
  await alice.click("#chat-send");
  await alice.locator(".chat-msg", { hasText: "first in dev-room" }).waitFor();
  assert.equal(await alice.locator(".chat-msg").count(), 1, "rooms are separate");
  await alice.fill("#chat-new-room", "bad room!");
  await alice.click(".chat-room-form button");
  await alice.locator("#chat-error", { hasText: "Room names" }).waitFor();
  if (SHOTS) {
    await bob.goto(`${base}/#/chat/lobby`);
    await bob.locator("#chat-live.conn-live").waitFor({ timeout: 15_000 });
    await bob.screenshot({ path: join(SHOTS, "06-chat.png") });
  }
});

test("joins, leaves and typing show live; a returning user sees unread counts per room", async () => {
  // Both in #events (pages from the earlier tests are logged in).
  await alice.goto(`${base}/#/chat/events`);
  await alice.locator("#chat-live.conn-live").waitFor({ timeout: 15_000 });
  await bob.goto(`${base}/#/chat/events`);
  await bob.locator("#chat-live.conn-live").waitFor({ timeout: 15_000 });
  await alice.locator(".chat-event", { hasText: "bob joined" }).waitFor({ timeout: 10_000 });

  // Bob types: alice sees it (bob does not see himself); sending clears it.
  await bob.locator("#chat-text").pressSequentially("hel", { delay: 30 });
  await alice.locator("#chat-typing", { hasText: "bob is typing…" }).waitFor({ timeout: 10_000 });
  assert.equal(await bob.locator("#chat-typing").textContent(), "");
  await bob.press("#chat-text", "Enter");
  await alice.locator(".chat-msg", { hasText: "hel" }).waitFor({ timeout: 10_000 });
  await alice.locator("#chat-typing", { hasText: /^$/ }).waitFor({ timeout: 10_000 });

  // Bob goes to another room: alice sees him leave.
  await bob.goto(`${base}/#/chat/elsewhere`);
  await alice.locator(".chat-event", { hasText: "bob left" }).waitFor({ timeout: 10_000 });

  // Alice has read #events; she moves to the lobby, bob writes twice in #events.
  await alice.goto(`${base}/#/chat/lobby`);
  await alice.locator("#chat-live.conn-live").waitFor({ timeout: 15_000 });
  await bob.goto(`${base}/#/chat/events`);
  await bob.locator("#chat-live.conn-live").waitFor({ timeout: 15_000 });
  for (const text of ["while you were away", "and again"]) {
    await bob.fill("#chat-text", text);
    await bob.click("#chat-send");
    await bob.locator(".chat-msg", { hasText: text }).waitFor();
  }
  // Alice comes back (reload): #events shows 2 unread; opening it clears the count.
  await alice.reload();
  const badge = alice.locator('#chat-rooms a[data-room="events"] .chat-unread');
  await badge.waitFor({ timeout: 10_000 });
  assert.equal(await badge.textContent(), "2");
  if (SHOTS) await alice.screenshot({ path: join(SHOTS, "08-chat-unread.png") });
  await alice.click('#chat-rooms a[data-room="events"]');
  await alice.locator(".chat-msg", { hasText: "and again" }).waitFor({ timeout: 10_000 });
  await alice.goto(`${base}/#/chat/lobby`);
  await alice.locator('#chat-rooms a[data-room="events"]').waitFor({ timeout: 10_000 });
  await alice.waitForTimeout(500);
  await alice.reload();
  await alice.locator('#chat-rooms a[data-room="events"]').waitFor({ timeout: 10_000 });
  assert.equal(await badge.count(), 0, "read after opening the room");
});
