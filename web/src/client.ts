// The pfc client: Connect-ES over gRPC-web, same origin as the UI, generated from ../proto.
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Code, ConnectError } from "@connectrpc/connect";
import { JobService } from "./gen/pfc/jobs/v1/jobs_pb.js";

export const transport = createGrpcWebTransport({ baseUrl: window.location.origin });

export const jobs = createClient(JobService, transport);

/** A message for people, from any error a call can throw. */
export function errorMessage(e: unknown): string {
  const err = ConnectError.from(e);
  // A fetch that never reached the server (refused, offline, DNS) surfaces as a TypeError.
  if (/failed to fetch|networkerror|load failed/i.test(err.rawMessage)) {
    return "pfc is unreachable — is the server running?";
  }
  switch (err.code) {
    case Code.Unavailable:
      return "pfc is unreachable — is the server running?";
    case Code.DeadlineExceeded:
      return "pfc did not answer in time";
    default:
      return err.rawMessage || String(Code[err.code]);
  }
}

export function isAbort(e: unknown): boolean {
  return ConnectError.from(e).code === Code.Canceled;
}

export { Code, ConnectError };
