"""Pure logic: payload encoding, job decoding, addresses. No network."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

import pfc
from pfc import _channel, _codec
from pfc.jobs.v1 import jobs_pb2


def test_encode_json_bytes_and_blobs():
    """JSON values are compact UTF-8 JSON; bytes and Blobs keep their content type."""
    assert _codec.encode({"w": 64, "name": "héllo"}) == ('{"w":64,"name":"héllo"}'.encode(), "application/json")
    assert _codec.encode(None) == (b"null", "application/json")
    assert _codec.encode(b"\x00") == (b"\x00", "application/octet-stream")
    assert _codec.encode(pfc.Bytes(b"png", "image/png")) == (b"png", "image/png")
    with pytest.raises(ValueError):
        _codec.encode(float("inf"))
    with pytest.raises(TypeError):
        _codec.encode(object())


def test_decode_by_content_type():
    """Empty and (+)json content types decode as JSON, text/* as str, the rest as a Bytes."""
    assert _codec.decode(b'{"a":[1]}', "") == {"a": [1]}
    assert _codec.decode(b"1", "application/json; charset=utf-8") == 1
    assert _codec.decode(b'"x"', "application/vnd.thing+json") == "x"
    assert _codec.decode(b"hi", "text/plain; charset=utf-8") == "hi"
    assert _codec.decode(b"\x89PNG", "image/png") == pfc.Bytes(b"\x89PNG", "image/png")
    assert _codec.decode(b"", "application/json") is None


def test_job_from_pb_json_job():
    """A payload job shows its payload and result decoded, its status as a lowercase word."""
    pb = jobs_pb2.Job(
        id="01J", kind="resize", status=jobs_pb2.JOB_STATUS_DONE, payload=b'{"w":64}',
        content_type="application/json", result_payload=b'{"ok":true}',
        result_content_type="application/json", attempts=1, max_attempts=3, progress=100,
    )
    pb.finished_at.FromDatetime(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    job = pfc.Job.from_pb(pb)
    assert (job.id, job.kind, job.status, job.payload, job.result) == ("01J", "resize", "done", {"w": 64}, {"ok": True})
    assert job.finished and job.error is None and job.progress == 100
    assert job.finished_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert job.started_at is None


def test_job_from_pb_text_job_and_failure():
    """A text job (built-in kinds) shows its text as payload and its string result; a failed
    job its error."""
    job = pfc.Job.from_pb(jobs_pb2.Job(id="1", kind="uppercase", text="abc", result="ABC",
                                       status=jobs_pb2.JOB_STATUS_DONE))
    assert (job.payload, job.result) == ("abc", "ABC")
    failed = pfc.Job.from_pb(jobs_pb2.Job(id="2", status=jobs_pb2.JOB_STATUS_FAILED, error="boom"))
    assert failed.status == "failed" and failed.error == "boom" and failed.result is None
    queued = pfc.Job.from_pb(jobs_pb2.Job(id="3", status=jobs_pb2.JOB_STATUS_QUEUED))
    assert not queued.finished


def test_addresses():
    """host:port is plaintext; http:// too; https:// is TLS; a missing port gets the default."""
    assert _channel.target("localhost:50051") == ("localhost:50051", False)
    assert _channel.target("http://127.0.0.1:9/") == ("127.0.0.1:9", False)
    assert _channel.target("https://pfc.example.com") == ("pfc.example.com:443", True)
    assert _channel.target("pfc") == ("pfc:50051", False)
    assert _channel.target("[::1]:7") == ("[::1]:7", False)


def test_submit_rejects_payload_and_text():
    """submit takes a payload or a text, not both (checked before any call)."""
    with pfc.Client("127.0.0.1:1") as c:
        with pytest.raises(ValueError):
            c.submit("k", {"a": 1}, text="x")


def test_unreachable_server_is_an_rpc_error():
    """A call to a port nobody listens on raises pfc.RpcError UNAVAILABLE."""
    import grpc

    with pfc.Client("127.0.0.1:1", timeout=2) as c:
        with pytest.raises(pfc.RpcError) as e:
            c.get("x")
    assert e.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
