// gRPC over HTTP/2 (Connect-ES's Node transport), shared by Client and Worker.
import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

/** `"localhost:50051"`, `"http://host:port"` or `"https://host"` → a base URL. */
export function baseUrl(url: string): string {
  let u = url.trim().replace(/\/+$/, "");
  if (!u) throw new TypeError("empty pfc address");
  if (!/^https?:\/\//.test(u)) u = `http://${u}`;
  const parsed = new URL(u);
  if (!parsed.port) parsed.port = parsed.protocol === "https:" ? "443" : "50051";
  return parsed.origin;
}

/** A gRPC transport to pfc (plaintext HTTP/2 for http://, TLS for https://). */
export function grpcTransport(url: string): Transport {
  return createGrpcTransport({
    baseUrl: baseUrl(url),
    // Notice a dead connection under an otherwise quiet worker stream.
    pingIntervalMs: 20_000,
    pingTimeoutMs: 10_000,
  });
}
