// The errors the SDK throws, and the one handlers throw to fail a job for good.
import { Code, ConnectError } from "@connectrpc/connect";

/** Base class of every error the SDK throws. */
export class PfcError extends Error {
  override name = "PfcError";
}

/** A call to pfc failed: `code` is the gRPC status code, `rawMessage` pfc's message. */
export class RpcError extends PfcError {
  override name = "RpcError";
  constructor(
    readonly code: Code,
    readonly rawMessage: string,
    options?: { cause?: unknown },
  ) {
    super(rawMessage ? `${Code[code]}: ${rawMessage}` : Code[code], options);
  }
}

/** No job has that id (or it expired). */
export class JobNotFoundError extends RpcError {
  override name = "JobNotFoundError";
}

/** `Client.wait` ran out of time before the job finished; `job` is its last state, if known. */
export class WaitTimeoutError extends PfcError {
  override name = "WaitTimeoutError";
  constructor(
    readonly jobId: string,
    readonly timeoutMs: number,
    readonly job?: unknown,
  ) {
    super(`job ${jobId} did not finish within ${timeoutMs} ms`);
  }
}

/**
 * Throw it from a handler to fail the job at once, without retrying it. Any other error fails
 * the delivery retryably: pfc retries the job with backoff while attempts remain.
 */
export class PermanentError extends Error {
  override name = "PermanentError";
}

/** Maps any error of a Connect call to the SDK's errors. */
export function fromConnect(e: unknown): Error {
  if (e instanceof PfcError) return e;
  const err = ConnectError.from(e);
  if (err.code === Code.NotFound) return new JobNotFoundError(err.code, err.rawMessage, { cause: e });
  return new RpcError(err.code, err.rawMessage, { cause: e });
}

export { Code };
