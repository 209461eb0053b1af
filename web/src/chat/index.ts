// The Chat page (#/chat/<room>): log in with a pseudo, pick or create a room, read the
// history, get new messages pushed live, see who is online and how many, who joins, leaves
// and types, unread counts per room (from the read marker kept on the server), log out.
// Messages are rendered as text only: `h()` appends strings as text nodes (never innerHTML).
import "./chat.css";
import type { Page } from "../pages.js";
import { h } from "../util.js";
import { api, ApiError, type ChatMessage, loadSession, type MemberEvent, type Presence, saveSession, type Session, type TypingEvent, validRoom } from "./api.js";

const DEFAULT_ROOM = "general";
/** Renew the typing signal this often while typing (the server shows one for 6 s). */
const TYPING_RENEW_MS = 3000;
/** Re-read the room list (unread counts) this often. */
const ROOMS_REFRESH_MS = 30_000;

export const chatPage: Page = {
  id: "chat",
  title: "Chat",
  slot: "ext",
  render(root, params) {
    const view = h("div", { class: "page chat-page" });
    root.replaceChildren(view);
    let stop: (() => void) | undefined;
    const draw = () => {
      stop?.();
      const session = loadSession();
      stop = session ? roomView(view, session, params[0] ?? DEFAULT_ROOM, logout) : loginView(view, draw);
    };
    const logout = () => {
      stop?.();
      stop = undefined;
      saveSession(null);
      draw();
    };
    draw();
    return () => stop?.();
  },
};

function loginView(view: HTMLElement, done: () => void): () => void {
  const input = h("input", { id: "chat-username", name: "username", autocomplete: "username", maxlength: 32, placeholder: "e.g. alice", required: true });
  const status = h("p", { class: "form-status", role: "alert" });
  const button = h("button", { class: "primary", type: "submit", id: "chat-login" }, "Enter the chat");
  const form = h("form", { class: "card chat-login", onsubmit: async (ev: Event) => {
    ev.preventDefault();
    button.disabled = true;
    status.className = "form-status";
    status.textContent = "";
    try {
      const s = await api.login(input.value.trim());
      saveSession({ token: s.token, username: s.username, expires_at: s.expires_at });
      done();
    } catch (e) {
      status.className = "form-status error";
      status.textContent = e instanceof ApiError ? e.message : String(e);
      button.disabled = false;
    }
  } },
    h("h2", {}, "Join the chat"),
    h("label", { for: "chat-username" }, "Pseudo"),
    input,
    h("p", { class: "hint" }, "1-32 letters, digits, _ - ."),
    h("div", { class: "actions" }, button),
    status);
  view.replaceChildren(form);
  input.focus();
  return () => {};
}

function roomView(view: HTMLElement, session: Session, room: string, logout: () => void): () => void {
  const t = session.token;
  const ids = new Set<string>();
  let oldest: string | undefined;
  let newest = "0-0";
  let source: EventSource | undefined;
  let beat: number | undefined;
  let roomsTimer: number | undefined;
  let closed = false;
  let typingSentAt = 0;
  let readTimer: number | undefined;
  let markedRead = "";
  const typists = new Map<string, number>(); // username → timer hiding the indicator

  // ---- layout
  const roomsList = h("ul", { class: "chat-rooms", id: "chat-rooms" });
  const newRoom = h("input", { id: "chat-new-room", placeholder: "room name", maxlength: 64, "aria-label": "Room to join or create" });
  const roomForm = h("form", { class: "chat-room-form", onsubmit: (ev: Event) => {
    ev.preventDefault();
    const r = newRoom.value.trim();
    if (!validRoom(r)) {
      banner("Room names are 1-64 letters, digits, _ - .");
      return;
    }
    location.hash = `#/chat/${encodeURIComponent(r)}`;
  } }, newRoom, h("button", { type: "submit" }, "Join"));
  const who = h("ul", { class: "chat-online", id: "chat-online", "aria-label": "Online" });
  const count = h("span", { class: "chat-count", id: "chat-count", "aria-live": "polite" }, "0");
  const live = h("span", { class: "conn", id: "chat-live" }, "Connecting…");
  const older = h("button", { class: "link", id: "chat-older", hidden: true, onclick: () => void loadOlder() }, "Load older messages");
  const list = h("ol", { class: "chat-messages", id: "chat-messages", "aria-live": "polite" });
  const scroller = h("div", { class: "chat-scroll" }, older, list);
  const typingLine = h("div", { class: "chat-typing", id: "chat-typing", "aria-live": "polite" });
  const errorBox = h("div", { class: "banner error", id: "chat-error", hidden: true, role: "alert" });
  const text = h("textarea", { id: "chat-text", rows: 2, maxlength: 2000, placeholder: `Message #${room}`, "aria-label": "Message" });
  const send = h("button", { class: "primary", type: "submit", id: "chat-send" }, "Send");
  const composer = h("form", { class: "chat-composer", onsubmit: (ev: Event) => { ev.preventDefault(); void sendMessage(); } }, text, send);
  text.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); void sendMessage(); }
  });
  text.addEventListener("input", () => {
    const now = Date.now();
    if (text.value.trim() && now - typingSentAt > TYPING_RENEW_MS) {
      typingSentAt = now;
      void api.typing(t, room, true).catch(() => {}); // best effort (429 when too fast)
    } else if (!text.value.trim() && typingSentAt) {
      stoppedTyping();
    }
  });

  view.replaceChildren(
    h("aside", { class: "card chat-side" },
      h("div", { class: "chat-me" }, "Signed in as ", h("strong", { id: "chat-me" }, session.username)),
      h("button", { class: "danger", id: "chat-logout", onclick: logout }, "Log out"),
      h("h3", {}, "Rooms"), roomsList, roomForm,
      h("h3", {}, "Online ", h("span", { class: "muted" }, "("), count, h("span", { class: "muted" }, ")")), who),
    h("section", { class: "card chat-main" },
      h("div", { class: "card-head" }, h("h2", { id: "chat-room" }, `#${room}`), live),
      errorBox, scroller, typingLine, composer));

  function banner(msg: string): void {
    errorBox.textContent = msg;
    errorBox.hidden = !msg;
  }

  function failed(e: unknown): void {
    if (e instanceof ApiError && e.status === 401) {
      saveSession(null); // expired or rejected token: back to the login form
      logout();
      return;
    }
    banner(e instanceof ApiError ? e.message : String(e));
  }

  function item(m: ChatMessage): HTMLElement {
    const mine = m.author === session.username;
    const at = new Date(m.sent_at);
    return h("li", { class: `chat-msg${mine ? " mine" : ""}`, "data-id": m.id },
      h("div", { class: "chat-meta" },
        h("span", { class: "chat-author" }, m.author),
        h("time", { datetime: m.sent_at, title: at.toLocaleString() }, at.toLocaleTimeString(undefined, { hour12: false }))),
      // Text only: a string child becomes a text node, so markup is shown, never run.
      h("div", { class: "chat-text" }, m.text));
  }

  function nearBottom(): boolean {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  }

  function append(m: ChatMessage): void {
    if (ids.has(m.id)) return;
    ids.add(m.id);
    const stick = nearBottom();
    list.append(item(m));
    newest = m.id;
    typist(m.author, false);
    if (stick || m.author === session.username) scroller.scrollTop = scroller.scrollHeight;
    markRead();
  }

  /** Moves the read marker to the newest message shown (debounced; only while visible). */
  function markRead(): void {
    if (readTimer !== undefined || document.visibilityState !== "visible") return;
    readTimer = window.setTimeout(() => {
      readTimer = undefined;
      if (closed || newest === "0-0" || newest === markedRead) return;
      const id = newest;
      void api.markRead(t, room, id).then(() => { markedRead = id; }).catch(() => {});
    }, 300);
  }

  function stoppedTyping(): void {
    if (!typingSentAt) return;
    typingSentAt = 0;
    void api.typing(t, room, false).catch(() => {});
  }

  /** A system line in the message list (text only, like messages). */
  function notice(textContent: string): void {
    const stick = nearBottom();
    list.append(h("li", { class: "chat-event" }, textContent));
    if (stick) scroller.scrollTop = scroller.scrollHeight;
  }

  function drawTyping(): void {
    const names = [...typists.keys()].sort();
    typingLine.textContent = names.length === 0 ? ""
      : names.length === 1 ? `${names[0]} is typing…`
      : names.length <= 3 ? `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]} are typing…`
      : "Several people are typing…";
  }

  function typist(username: string, on: boolean, ms = 6000): void {
    const old = typists.get(username);
    if (old !== undefined) clearTimeout(old);
    if (on) typists.set(username, window.setTimeout(() => typist(username, false), ms));
    else typists.delete(username);
    drawTyping();
  }

  function drawPresence(p: Presence): void {
    count.textContent = String(p.count);
    who.replaceChildren(...p.members.map((m) =>
      h("li", { class: m.username === session.username ? "me" : "" }, m.username)));
  }

  async function loadRooms(): Promise<void> {
    try {
      const { rooms } = await api.rooms(t);
      const unread = new Map(rooms.map((r) => [r.name, r.unread_count]));
      const names = rooms.map((r) => r.name);
      if (!names.includes(room)) names.unshift(room);
      roomsList.replaceChildren(...names.map((n) => {
        const count = n === room ? 0 : unread.get(n) ?? 0;
        const badge = count > 0
          ? h("span", { class: "chat-unread", "aria-label": `${count} unread` }, count >= 100 ? "99+" : String(count))
          : "";
        return h("li", {}, h("a", { href: `#/chat/${encodeURIComponent(n)}`, "data-room": n, "aria-current": n === room ? "page" : undefined }, `#${n}`, badge));
      }));
    } catch (e) { failed(e); }
  }

  async function loadOlder(): Promise<void> {
    if (!oldest) return;
    try {
      const page = await api.history(t, room, oldest);
      const top = scroller.scrollHeight - scroller.scrollTop;
      for (const m of page.messages) {
        if (ids.has(m.id)) continue;
        ids.add(m.id);
        list.prepend(item(m));
      }
      oldest = page.next_before;
      older.hidden = !oldest;
      scroller.scrollTop = scroller.scrollHeight - top;
    } catch (e) { failed(e); }
  }

  async function sendMessage(): Promise<void> {
    const body = text.value;
    if (!body.trim()) return;
    send.disabled = true;
    try {
      append(await api.send(t, room, body));
      text.value = "";
      stoppedTyping();
      banner("");
    } catch (e) { failed(e); } finally {
      send.disabled = false;
      text.focus();
    }
  }

  async function heartbeat(): Promise<void> {
    try { await api.heartbeat(t, room); } catch (e) { failed(e); }
  }

  async function leaveRoom(): Promise<void> {
    try { await api.leave(t, room); } catch { /* best effort: presence expires anyway */ }
  }

  function connect(): void {
    source = api.events(t, room, newest);
    source.onopen = () => { live.className = "conn conn-live"; live.textContent = "Live"; };
    source.onerror = () => { live.className = "conn conn-offline"; live.textContent = "Reconnecting…"; };
    source.addEventListener("message", (ev) => append(JSON.parse((ev as MessageEvent).data)));
    source.addEventListener("presence", (ev) => drawPresence(JSON.parse((ev as MessageEvent).data)));
    source.addEventListener("join", (ev) => {
      const e = JSON.parse((ev as MessageEvent).data) as MemberEvent;
      if (e.username !== session.username) notice(`${e.username} joined`);
    });
    source.addEventListener("leave", (ev) => {
      const e = JSON.parse((ev as MessageEvent).data) as MemberEvent;
      typist(e.username, false);
      if (e.username !== session.username) notice(`${e.username} left`);
    });
    source.addEventListener("typing", (ev) => {
      const e = JSON.parse((ev as MessageEvent).data) as TypingEvent;
      typist(e.username, e.typing, e.expires_in_ms);
    });
    source.addEventListener("error", (ev) => {
      const data = (ev as MessageEvent).data;
      if (!data) return; // a transport error: EventSource reconnects with Last-Event-ID
      const err = JSON.parse(data).error ?? {};
      if (err.code === "unauthenticated") failed(new ApiError(401, err.code, err.message));
    });
  }

  async function start(): Promise<void> {
    if (!validRoom(room)) {
      banner("Room names are 1-64 letters, digits, _ - .");
      return;
    }
    void loadRooms();
    try {
      const page = await api.history(t, room);
      if (closed) return;
      for (const m of [...page.messages].reverse()) append(m);
      oldest = page.next_before;
      older.hidden = !oldest;
      scroller.scrollTop = scroller.scrollHeight;
      const hb = await api.heartbeat(t, room);
      if (closed) return;
      beat = window.setInterval(() => void heartbeat(), Math.max(1, hb.ttl_seconds / 3) * 1000);
      connect(); // resumes after the newest message shown: no gap, no duplicate
      markRead();
      roomsTimer = window.setInterval(() => void loadRooms(), ROOMS_REFRESH_MS);
      text.focus();
    } catch (e) { failed(e); }
  }

  const onVisible = () => { if (document.visibilityState === "visible") markRead(); };
  document.addEventListener("visibilitychange", onVisible);
  const onUnload = () => {
    // Leave at once when the tab closes (keepalive lets the request outlive the page).
    void fetch(`/api/v1/rooms/${encodeURIComponent(room)}/presence`, { method: "DELETE", headers: { authorization: `Bearer ${t}` }, keepalive: true });
  };
  window.addEventListener("pagehide", onUnload);
  void start();

  return () => {
    closed = true;
    source?.close();
    if (beat !== undefined) clearInterval(beat);
    if (roomsTimer !== undefined) clearInterval(roomsTimer);
    if (readTimer !== undefined) clearTimeout(readTimer);
    for (const timer of typists.values()) clearTimeout(timer);
    stoppedTyping();
    if (newest !== "0-0" && newest !== markedRead) void api.markRead(t, room, newest).catch(() => {});
    window.removeEventListener("pagehide", onUnload);
    document.removeEventListener("visibilitychange", onVisible);
    void leaveRoom();
  };
}
