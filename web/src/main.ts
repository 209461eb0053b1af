// Entry point: registers the pages, draws the navigation and routes on the URL hash.
import "./style.css";
import { pages, registerPage, type Page } from "./pages.js";
import { jobsPage } from "./jobs.js";
import { statsPage } from "./stats.js";
import { schedulesPage } from "./schedules.js";
import { chatPage } from "./chat/index.js";
import { store } from "./store.js";
import { h } from "./util.js";

registerPage(jobsPage);
registerPage(statsPage);
registerPage(schedulesPage);
// Extension pages go in the separated "ext" nav slot (the Chat page lives in src/chat/):
registerPage(chatPage);

const main = document.getElementById("main")!;
const navMain = document.getElementById("nav-main")!;
const navExt = document.getElementById("nav-ext")!;
const conn = document.getElementById("conn")!;

function drawNav(): void {
  const link = (p: Page) => h("li", {}, h("a", { href: `#/${p.id}`, "data-page": p.id }, p.title));
  navMain.replaceChildren(...pages.filter((p) => (p.slot ?? "main") === "main").map(link));
  navExt.replaceChildren(...pages.filter((p) => p.slot === "ext").map(link));
  navExt.hidden = navExt.childElementCount === 0;
}

let cleanup: void | (() => void);

function route(): void {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const page = pages.find((p) => p.id === parts[0]) ?? pages[0];
  if (cleanup) cleanup();
  cleanup = undefined;
  for (const a of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
    if (a.dataset.page === page.id) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `pfc — ${page.title}`;
  cleanup = page.render(main, parts.slice(1));
}

function drawConn(): void {
  const text = { connecting: "Connecting…", live: "Live", offline: "Offline — retrying" }[store.live];
  conn.className = `conn conn-${store.live}`;
  conn.title = store.liveError;
  conn.textContent = text;
}

drawNav();
window.addEventListener("hashchange", () => {
  route();
  // Move focus to the new content so keyboard and screen-reader users land on it.
  main.focus({ preventScroll: true });
});
// "/" jumps to the job's input field, text or JSON (when not typing elsewhere).
document.addEventListener("keydown", (e) => {
  const t = e.target as HTMLElement;
  if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey || t.closest("input, textarea, select, [contenteditable]")) return;
  const text = ["text", "payload"].map((id) => document.getElementById(id)).find((el) => el?.closest("[hidden]") === null);
  if (text) {
    e.preventDefault();
    text.focus();
  }
});
route();
store.subscribe(drawConn);
drawConn();
void store.start();
