"""The exceptions the SDK raises, and the one handlers raise to fail a job for good."""

from __future__ import annotations

import grpc


class Error(Exception):
    """Base class of every error the SDK raises."""


class RpcError(Error):
    """A call to pfc failed; ``code`` is the gRPC status code, ``message`` pfc's message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}" if message else code.name)
        self.code = code
        self.message = message


class JobNotFound(RpcError):
    """No job has that id (or it expired)."""


class WaitTimeout(Error, TimeoutError):
    """``Client.wait`` ran out of time before the job finished; ``job`` is its last state."""

    def __init__(self, job_id: str, timeout: float, job: object = None) -> None:
        super().__init__(f"job {job_id} did not finish within {timeout:g} s")
        self.job_id = job_id
        self.job = job


class PermanentError(Exception):
    """Raise it from a handler to fail the job at once, without retrying it.

    Any other exception fails the delivery retryably: pfc retries the job with backoff while
    attempts remain, then fails it with the last message.
    """


def from_rpc(err: grpc.RpcError) -> RpcError:
    """Maps a grpc error to the SDK's exceptions."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = (err.details() if hasattr(err, "details") else None) or ""
    if code == grpc.StatusCode.NOT_FOUND:
        return JobNotFound(code, details)
    return RpcError(code, details)
