"""Payloads and results on the wire: JSON by default, text, or bytes with a content type."""

from __future__ import annotations

import json
from typing import Any, NamedTuple, Union

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
OCTETS = "application/octet-stream"


class Bytes(NamedTuple):
    """Bytes with a content type: a payload or result that is not JSON.

    ``client.submit("thumb", pfc.Bytes(png, "image/png"))``, or ``return pfc.Bytes(data, "image/png")``
    from a handler.
    """

    data: bytes
    content_type: str = OCTETS


def is_json(content_type: str) -> bool:
    """Empty (the protocol's default), application/json, or any +json type."""
    if not content_type:
        return True
    base = content_type.split(";", 1)[0].strip().lower()
    return base == JSON or base.endswith("+json")


def encode(value: Any) -> tuple[bytes, str]:
    """A Python value as (bytes, content type): Bytes and bytes as they are, anything else as JSON.

    Raises TypeError or ValueError for a value JSON cannot represent (NaN too: pfc validates).
    """
    if isinstance(value, Bytes):
        return bytes(value.data), value.content_type or OCTETS
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), OCTETS
    data = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return data.encode(), JSON


Decoded = Union[Any, str, Bytes]


def decode(data: bytes, content_type: str) -> Decoded:
    """Bytes with a content type as a Python value: JSON decoded, text as str, else a Bytes."""
    if is_json(content_type):
        return json.loads(data) if data else None
    if content_type.split(";", 1)[0].strip().lower().startswith("text/"):
        return data.decode("utf-8", errors="replace")
    return Bytes(data, content_type)
