// A scripted WorkerService on loopback: the tests play the server's side of the protocol.
import http2 from "node:http2";
import { ConnectError, Code } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { WorkerService } from "../dist/gen/pfc/worker/v1/worker_pb.js";

/** An async queue: push() values, `await next(ms)` them. */
export class Queue {
  items = [];
  waiters = [];
  push(v) {
    const w = this.waiters.shift();
    if (w) w(v);
    else this.items.push(v);
  }
  next(ms = 5000) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return new Promise((ok, fail) => {
      const t = setTimeout(() => fail(new Error(`nothing received within ${ms} ms`)), ms);
      this.waiters.push((v) => {
        clearTimeout(t);
        ok(v);
      });
    });
  }
}

/** One Work stream as the server sees it. */
export class Stream {
  inbox = new Queue(); // WorkRequest, or null at the worker's half-close
  outbox = new Queue(); // WorkResponse init, null ends the stream, {abort: [code, msg]} fails it
  recv(ms) {
    return this.inbox.next(ms);
  }
  /** The next message of case `which`, skipping progress and heartbeats. */
  async recvCase(which, ms = 5000) {
    for (;;) {
      const m = await this.recv(ms);
      if (m === null) throw new Error(`stream half-closed while waiting for ${which}`);
      if (m.message.case === which) return m.message.value;
      if (m.message.case !== "progress" && m.message.case !== "heartbeat") {
        throw new Error(`expected ${which}, got ${m.message.case}`);
      }
    }
  }
  send(message) {
    this.outbox.push({ message });
  }
  assign(jobId, kind, payload = "null", { delivery = 1n, attempt = 1, contentType = "application/json" } = {}) {
    this.send({
      case: "assignment",
      value: { jobId, kind, payload: new TextEncoder().encode(payload), contentType, delivery, attempt, maxAttempts: 3 },
    });
  }
  ack(jobId, delivery = 1n, outcome = 1) {
    this.send({ case: "ack", value: { jobId, delivery, outcome } });
  }
  end() {
    this.outbox.push(null);
  }
  abort(code, msg) {
    this.outbox.push({ abort: [code, msg] });
  }
}

/** Starts the fake; `streams` yields each new Work stream. */
export async function startFake() {
  const streams = new Queue();
  const handler = connectNodeAdapter({
    routes(router) {
      router.service(WorkerService, {
        async *work(requests, ctx) {
          const stream = new Stream();
          stream.authorization = ctx.requestHeader.get("authorization");
          streams.push(stream);
          (async () => {
            try {
              for await (const m of requests) stream.inbox.push(m);
            } catch (e) { if (process.env.FAKE_DEBUG) console.error("fake read error", e); }
            stream.inbox.push(null);
          })();
          for (;;) {
            const out = await stream.outbox.next(60_000);
            if (out === null) return;
            if (out.abort) throw new ConnectError(out.abort[1], out.abort[0]);
            yield out;
          }
        },
      });
    },
  });
  const server = http2.createServer(handler);
  const sessions = new Set();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    streams,
    /** Accepts the next stream: reads its Hello, answers Welcome. */
    async welcome(workerId = "w-1", extra = {}) {
      const stream = await streams.next();
      const hello = await stream.recv();
      if (hello?.message.case !== "hello") throw new Error(`expected hello, got ${hello?.message.case}`);
      stream.send({ case: "welcome", value: { workerId, leaseMs: 3000, ...extra } });
      return [stream, hello.message.value];
    },
    close() {
      server.close();
      for (const s of sessions) s.destroy();
    },
  };
}

export { Code };
