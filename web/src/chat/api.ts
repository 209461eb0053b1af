// Chat over the gateway's REST + Server-Sent Events API (services/gateway/src/chat.rs).
// Live messages are pushed (EventSource), never polled; presence is a heartbeat every TTL/3.

export interface ChatMessage { id: string; room: string; author: string; text: string; sent_at: string }
export interface Member { username: string; last_seen_at: string }
export interface Presence { count: number; members: Member[] }
export interface Session { token: string; username: string; expires_at: string }
export interface Room { name: string; last_activity_at: string; unread_count: number; last_read_id?: string }
/** `join` / `leave` events: who came or went, and how many are online after. */
export interface MemberEvent { username: string; online_count: number }
/** `typing` events (never about oneself): show until `typing: false` or `expires_in_ms`. */
export interface TypingEvent { username: string; typing: boolean; expires_in_ms: number }

/** An API error with the server's message (`{"error":{"code","message"}}`). */
export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

const KEY = "pfc.chat.session";

export function loadSession(): Session | null {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) ?? "null") as Session | null;
    if (s && Date.parse(s.expires_at) > Date.now() + 5000) return s;
  } catch { /* a corrupt entry is the same as none */ }
  return null;
}

export function saveSession(s: Session | null): void {
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}

async function call<T>(method: string, path: string, token?: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let resp: Response;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "unavailable", "pfc is unreachable — is the server running?");
  }
  if (resp.status === 204) return undefined as T;
  const json = await resp.json().catch(() => null);
  if (!resp.ok) {
    const e = json?.error ?? {};
    throw new ApiError(resp.status, e.code ?? "error", e.message ?? `HTTP ${resp.status}`);
  }
  return json as T;
}

const room = (r: string) => `/api/v1/rooms/${encodeURIComponent(r)}`;

export const api = {
  login: (username: string) =>
    call<Session & { token_type: string }>("POST", "/api/v1/auth/login", undefined, { username }),
  rooms: (t: string) => call<{ rooms: Room[] }>("GET", "/api/v1/rooms", t),
  /** Typing signal: never stored; others see it for `expires_in_ms` unless renewed. */
  typing: (t: string, r: string, typing: boolean) =>
    call<{ expires_in_ms: number }>("POST", `${room(r)}/typing`, t, { typing }),
  /** Read marker: the newest message read (unread counts in `rooms`). */
  markRead: (t: string, r: string, id: string) =>
    call<{ last_read_id?: string }>("PUT", `${room(r)}/read`, t, { last_read_id: id }),
  history: (t: string, r: string, before?: string) =>
    call<{ messages: ChatMessage[]; next_before?: string }>(
      "GET", `${room(r)}/messages?limit=50${before ? `&before=${encodeURIComponent(before)}` : ""}`, t),
  send: (t: string, r: string, text: string) => call<ChatMessage>("POST", `${room(r)}/messages`, t, { text }),
  heartbeat: (t: string, r: string) =>
    call<{ ttl_seconds: number; online_count: number }>("POST", `${room(r)}/presence`, t),
  leave: (t: string, r: string) => call<void>("DELETE", `${room(r)}/presence`, t),
  online: (t: string, r: string) => call<Presence>("GET", `${room(r)}/presence`, t),
  /** The room's live events; `after` is the newest message already shown ("0-0" for none).
   *  EventSource reconnects by itself, sending Last-Event-ID, so nothing is missed. */
  events: (t: string, r: string, after: string) =>
    new EventSource(`${room(r)}/events?access_token=${encodeURIComponent(t)}&after=${encodeURIComponent(after)}`),
};

/** Room names: 1-64 letters, digits, `_`, `-`, `.` (the server checks too). */
export function validRoom(r: string): boolean {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(r);
}
