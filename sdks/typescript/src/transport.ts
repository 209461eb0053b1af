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

/** `token` if given, else the PFC_TOKEN environment variable (empty: none). */
export function tokenFromEnv(token?: string): string | undefined {
  const t = (token ?? process.env.PFC_TOKEN ?? "").trim();
  return t || undefined;
}

/**
 * A gRPC transport to pfc (plaintext HTTP/2 for http://, TLS for https://). With a `token`
 * (an API key or Login token, for a server running with --auth-required), every call carries
 * `authorization: Bearer <token>`.
 */
export function grpcTransport(url: string, token?: string): Transport {
  const bearer = tokenFromEnv(token);
  return createGrpcTransport({
    baseUrl: baseUrl(url),
    interceptors: bearer
      ? [
          (next) => async (req) => {
            req.header.set("authorization", `Bearer ${bearer}`);
            return next(req);
          },
        ]
      : [],
    // Notice a dead connection under an otherwise quiet worker stream.
    pingIntervalMs: 20_000,
    pingTimeoutMs: 10_000,
  });
}
